/**
 * The benchmark harness: finds the groups (one module per family in bench/groups/), runs the selected ones in
 * one process, one after another, and renders BENCHMARKS.md with a chart per family.
 *
 * A group module exports `name` (its --only key and chart file name), `title`, optional `description`, `peer`
 * (the peer column's heading), `order` (position in the report; default 100) and `run(context)`, which returns
 * rows or `{ rows, notes, charts }` (bench/README.md has the details; render.js the row fields).
 *
 * Figures are never invented: a measurement that cannot run throws `Unavailable` with the reason, and the row
 * shows "not available" plus that reason. Any other error in a group is recorded as the group's failure and the
 * remaining groups still run.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { writeChart } from '../chart.js';
import { describeMachine } from './machine.js';
import { failureReason, runCommand, runWithPeakRss } from './proc.js';
import { renderMarkdown } from './render.js';
import { median } from './stats.js';

export const BENCH_DIR = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
export const ROOT = path.dirname(BENCH_DIR);
export const SYSTEM_PYTHON = '/usr/bin/python3';

/** A figure that cannot be measured on this machine or in this checkout; the message says why. */
export class Unavailable extends Error {
  constructor(reason) {
    super(reason);
    this.name = 'Unavailable';
  }
}

export function unavailable(reason) {
  throw new Unavailable(reason);
}

function reasonOf(error) {
  if (error instanceof Unavailable) return error.message;
  return `failed: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Peers: Debian's PyTorch for /usr/bin/python3

const PROBE = `
import json, sys
info = {"version": sys.version.split()[0]}
try:
    import torch
    info["torch"] = torch.__version__
except Exception as e:
    info["error"] = f"import torch: {e}"
try:
    import onnx
    info["onnx"] = onnx.__version__
except Exception:
    pass
try:
    import torchvision
    info["torchvision"] = torchvision.__version__
except Exception:
    pass
print(json.dumps(info))
`;

async function probeOnce(python) {
  if (!existsSync(python)) return { available: false, reason: `${python} does not exist` };
  const result = await runCommand(python, ['-c', PROBE], { timeoutMs: 120_000 });
  if (result.code !== 0) return { available: false, reason: `${python} failed: ${failureReason(result)}` };
  const info = JSON.parse(result.stdout.trim().split('\n').at(-1));
  return info.torch ? { available: true, ...info } : { available: false, ...info, reason: info.error };
}

function canSudo() {
  try {
    execFileSync('sudo', ['-n', 'true'], { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

/**
 * Finds PyTorch for the peers. When `import torch` fails, installs Debian's python3-torch and python3-onnx with
 * apt-get (as root, or through password-less sudo) and probes again; otherwise the peers are unavailable.
 */
export async function probePython({ python = SYSTEM_PYTHON, install = true, log = () => {} } = {}) {
  let info = await probeOnce(python);
  if (info.available || !install) return { path: python, ...info };
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const sudo = !asRoot && canSudo();
  if (!asRoot && !sudo) return { path: python, ...info, reason: `${info.reason}; cannot install python3-torch (not root, no password-less sudo)` };
  log('PyTorch is missing: apt-get install -y python3-torch python3-onnx');
  const [command, args] = asRoot ? ['apt-get', []] : ['sudo', ['-n', 'apt-get']];
  const installed = await runCommand(command, [...args, 'install', '-y', 'python3-torch', 'python3-onnx'], {
    timeoutMs: 900_000,
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  if (installed.code !== 0) return { path: python, ...info, reason: `${info.reason}; apt-get install python3-torch failed: ${failureReason(installed)}` };
  info = await probeOnce(python);
  return { path: python, ...info };
}

// ---------------------------------------------------------------------------------------------------------------
// Groups

/** Imports every `*.js` module of `dir` that exports a group; sorted by `order`, then name. */
export async function loadGroups(dir = path.join(BENCH_DIR, 'groups')) {
  const groups = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.js')).sort()) {
    const module = await import(pathToFileURL(path.join(dir, file)).href);
    const group = module.default ?? module;
    if (typeof group.name !== 'string' || typeof group.run !== 'function') {
      throw new Error(`${path.join(dir, file)}: a group module exports name, title and run(context)`);
    }
    groups.push({ order: 100, title: group.name, ...group, run: group.run, file });
  }
  const names = new Set();
  for (const g of groups) {
    if (names.has(g.name)) throw new Error(`two groups are named '${g.name}'`);
    names.add(g.name);
  }
  return groups.sort((a, b) => a.order - b.order || a.name.localeCompare(b.name));
}

/** The groups named in `only` (all when empty); unknown names are an error listing the valid ones. */
export function selectGroups(groups, only = []) {
  if (!only.length) return groups;
  const known = new Map(groups.map((g) => [g.name, g]));
  const unknown = only.filter((n) => !known.has(n));
  if (unknown.length) throw new Error(`unknown group(s) ${unknown.join(', ')}; the groups are ${[...known.keys()].join(', ')}`);
  return groups.filter((g) => only.includes(g.name));
}

// ---------------------------------------------------------------------------------------------------------------
// The context handed to each group

/**
 * options: { root, quick, python (probe result), tmpDir, log }.
 * The context's measuring helpers:
 *   reps(n)                       n repetitions, fewer in --quick mode
 *   sideBySide({ convspec, peer }, { reps, warmup })
 *                                 runs the two measurements alternately (order flipped every repetition);
 *                                 each returns seconds (or any figure); medians → { convspec, peer }, each
 *                                 { value, samples } or { unavailable: reason }
 *   row(name, unit, measured, extra)   a report row from sideBySide's result
 *   timeProcess(command, args, opts)   whole-process wall seconds; Unavailable when it fails
 *   peakRss(command, args, opts)       peak RSS in MiB
 *   convspec(args, opts)               `node bin/convspec.js …` → runCommand result
 *   peerCommand(script, args)          [python, [bench/peers/script, …args]], Unavailable without PyTorch
 *   importDist(relative, names)        a module of dist/ that must export `names`, else Unavailable
 *   tmp(name)                          a path in this run's scratch folder
 *   cache                              a Map shared by the groups of one run
 */
export function createContext(options = {}) {
  const root = options.root ?? ROOT;
  const quick = Boolean(options.quick);
  const tmpDir = options.tmpDir ?? mkdtempSync(path.join(os.tmpdir(), 'convspec-bench-'));
  const log = options.log ?? ((...args) => console.error('[bench]', ...args));
  const python = options.python ?? { available: false, reason: 'not probed' };

  /** A command line for messages: paths in the checkout relative to it, scratch paths as <tmp>/…. */
  const describeCommand = (command, args) =>
    [command === process.execPath ? 'node' : command, ...args]
      .map((a) => {
        const text = String(a);
        if (!path.isAbsolute(text)) return text;
        if (text.startsWith(tmpDir)) return `<tmp>/${path.relative(tmpDir, text)}`;
        if (text.startsWith(root + path.sep)) return path.relative(root, text);
        return text;
      })
      .join(' ');

  const context = {
    root,
    describeCommand,
    quick,
    tmpDir,
    python,
    log,
    cache: new Map(),
    Unavailable,
    unavailable,
    median,
    runCommand,

    reps(n) {
      return quick ? Math.max(1, Math.min(2, Math.ceil(n / 3))) : n;
    },

    tmp(name) {
      const file = path.join(tmpDir, name);
      mkdirSync(path.dirname(file), { recursive: true });
      return file;
    },

    async timeProcess(command, args = [], opts = {}) {
      const result = await runCommand(command, args, { cwd: root, timeoutMs: 300_000, ...opts });
      const ok = opts.accept ? opts.accept(result) : result.code === 0;
      if (!ok) throw new Unavailable(`\`${describeCommand(command, args)}\`: ${failureReason(result)}`);
      return result.seconds;
    },

    async peakRss(command, args = [], opts = {}) {
      const result = await runWithPeakRss(command, args, { cwd: root, timeoutMs: 300_000, ...opts });
      if (result.code !== 0) throw new Unavailable(`\`${describeCommand(command, args)}\`: ${failureReason(result)}`);
      if (result.rssMiB === null) throw new Unavailable(`peak RSS: ${result.how}`);
      return result.rssMiB;
    },

    convspec(args, opts = {}) {
      return runCommand(process.execPath, [path.join(root, 'bin', 'convspec.js'), ...args], { cwd: root, timeoutMs: 300_000, ...opts });
    },

    peerCommand(script, args = []) {
      if (!python.available) throw new Unavailable(`PyTorch is unavailable: ${python.reason}`);
      return [python.path, [path.join(BENCH_DIR, 'peers', script), ...args]];
    },

    async importDist(relative, names = []) {
      const file = path.join(root, 'dist', relative);
      if (!existsSync(file)) throw new Unavailable(`dist/${relative} does not exist in this build`);
      const module = await import(pathToFileURL(file).href);
      const missing = names.filter((n) => !(n in module));
      if (missing.length) throw new Unavailable(`dist/${relative} does not export ${missing.join(', ')}`);
      return module;
    },

    async sideBySide(measures, { reps = 5, warmup = 0 } = {}) {
      const sides = Object.keys(measures);
      const state = Object.fromEntries(sides.map((s) => [s, { samples: [], reason: undefined }]));
      const once = async (side) => {
        const s = state[side];
        if (s.reason !== undefined) return undefined;
        try {
          return await measures[side]();
        } catch (error) {
          s.reason = reasonOf(error);
          log(`${side}: ${s.reason}`);
          return undefined;
        }
      };
      for (let i = 0; i < warmup; i++) for (const side of sides) await once(side);
      for (let i = 0; i < reps; i++) {
        const order = i % 2 === 0 ? sides : [...sides].reverse();
        for (const side of order) {
          const value = await once(side);
          if (typeof value === 'number' && state[side].reason === undefined) state[side].samples.push(value);
        }
      }
      return Object.fromEntries(
        sides.map((side) => {
          const s = state[side];
          if (s.reason !== undefined && s.samples.length === 0) return [side, { unavailable: s.reason }];
          if (s.samples.length === 0) return [side, { unavailable: 'no measurement' }];
          return [side, { value: median(s.samples), samples: s.samples }];
        }),
      );
    },

    row(name, unit, measured, extra = {}) {
      const pick = (m) => (m && typeof m.value === 'number' ? m.value : null);
      const unavailableSides = {};
      for (const side of ['convspec', 'peer']) if (measured?.[side]?.unavailable) unavailableSides[side] = measured[side].unavailable;
      return {
        name,
        unit,
        convspec: pick(measured?.convspec),
        peer: pick(measured?.peer),
        samples: { convspec: measured?.convspec?.samples, peer: measured?.peer?.samples },
        ...(Object.keys(unavailableSides).length ? { unavailable: unavailableSides } : {}),
        ...extra,
      };
    },
  };
  return context;
}

/** A bar chart of the rows that share the most common unit: convspec next to the peer. */
export function defaultChart(group, rows) {
  const counts = new Map();
  for (const r of rows) if (typeof r.convspec === 'number' || typeof r.peer === 'number') counts.set(r.unit, (counts.get(r.unit) ?? 0) + 1);
  if (!counts.size) return undefined;
  const unit = [...counts.entries()].sort((a, b) => b[1] - a[1])[0][0];
  const chosen = rows.filter((r) => r.unit === unit && (typeof r.convspec === 'number' || typeof r.peer === 'number'));
  const values = chosen.flatMap((r) => [r.convspec, r.peer]).filter((v) => typeof v === 'number' && v > 0);
  const log = values.length > 1 && Math.max(...values) / Math.min(...values) > 30;
  return {
    type: 'bar',
    title: group.title ?? group.name,
    unit: unit === 's' ? 'seconds' : unit === 'bytes' ? 'bytes' : unit,
    log,
    categories: chosen.map((r) => r.name),
    series: [
      { name: 'convspec', values: chosen.map((r) => r.convspec) },
      { name: group.peer ?? 'peer', values: chosen.map((r) => r.peer) },
    ],
  };
}

function normaliseOutput(output) {
  if (Array.isArray(output)) return { rows: output, notes: [], charts: undefined };
  return { rows: output?.rows ?? [], notes: output?.notes ?? [], charts: output?.charts };
}

/** Runs each group; returns one result per group (rows, notes, chart links, error, seconds). */
export async function runGroups(groups, context, { chartsDir, reportDir }) {
  const results = [];
  for (const group of groups) {
    const started = performance.now();
    context.log(`group ${group.name}: start`);
    const result = { name: group.name, title: group.title, description: group.description, peer: group.peer, rows: [], notes: [], charts: [], measuredAt: new Date().toISOString() };
    try {
      const { rows, notes, charts } = normaliseOutput(await group.run(context));
      result.rows = rows;
      result.notes = notes;
      const specs = charts ?? [defaultChart(group, rows)].filter(Boolean);
      specs.forEach((spec, i) => {
        const file = path.join(chartsDir, `${group.name}${i === 0 ? '' : `-${spec.id ?? i + 1}`}.png`);
        writeChart(file, spec);
        result.charts.push({ title: spec.title, link: path.relative(reportDir, file).split(path.sep).join('/') });
      });
    } catch (error) {
      result.error = error instanceof Error ? error.message : String(error);
      context.log(`group ${group.name} failed: ${error instanceof Error ? error.stack : error}`);
    }
    result.seconds = (performance.now() - started) / 1000;
    context.log(`group ${group.name}: ${result.seconds.toFixed(1)} s`);
    results.push(result);
  }
  return results;
}

/**
 * The whole run: probe the peers, run the groups, write the report (and the raw results as JSON).
 * options: { only, quick, out, chartsDir, groupsDir, json, peers (false: skip PyTorch), command, log }
 * Groups not run this time (with --only) keep their figures from the previous JSON results when there are any.
 */
export async function runBenchmarks(options = {}) {
  const started = performance.now();
  const root = options.root ?? ROOT;
  const out = path.resolve(options.out ?? path.join(root, 'BENCHMARKS.md'));
  const chartsDir = path.resolve(options.chartsDir ?? path.join(BENCH_DIR, 'charts'));
  const defaultOut = path.join(root, 'BENCHMARKS.md');
  // Raw results: bench/results.json for the real report, beside the report when it goes elsewhere (tests).
  const jsonFile = path.resolve(options.json || (out === defaultOut ? path.join(BENCH_DIR, 'results.json') : out.replace(/\.md$/, '') + '.json'));
  const log = options.log ?? ((...args) => console.error('[bench]', ...args));
  const gpuFile = options.gpuResults ?? (out === defaultOut ? path.join(BENCH_DIR, 'gpu-results.json') : undefined);
  const attachGpu = (results) => {
    if (gpuFile && existsSync(gpuFile)) {
      try {
        results.gpu = JSON.parse(readFileSync(gpuFile, 'utf8'));
      } catch (error) {
        log(`${gpuFile}: ${error.message}`);
      }
    }
    return results;
  };
  if (options.renderOnly) {
    // Only the report: from the raw results of the last run (after a change to render.js, or a new gpu-results.json).
    const results = attachGpu(JSON.parse(readFileSync(jsonFile, 'utf8')));
    const markdown = renderMarkdown(results);
    writeFileSync(out, markdown);
    return { results, markdown, out };
  }
  const all = await loadGroups(options.groupsDir);
  const selected = selectGroups(all, options.only ?? []);

  const python = options.peers === false
    ? { available: false, reason: 'peers disabled (--no-peers)' }
    : await probePython({ log });
  if (!python.available) log(`PyTorch peers unavailable: ${python.reason}`);

  const loadAtStart = os.loadavg()[0];
  const context = createContext({ root, quick: options.quick, python, log });
  let groups;
  try {
    groups = await runGroups(selected, context, { chartsDir, reportDir: path.dirname(out) });
  } finally {
    if (!options.keepTmp) rmSync(context.tmpDir, { recursive: true, force: true });
  }

  // Keep the other families' earlier figures when only some groups ran.
  if (options.only?.length && existsSync(jsonFile)) {
    try {
      const previous = JSON.parse(readFileSync(jsonFile, 'utf8'));
      const ran = new Map(groups.map((g) => [g.name, g]));
      const merged = [];
      for (const g of all) {
        if (ran.has(g.name)) merged.push(ran.get(g.name));
        else {
          const old = previous.groups?.find((p) => p.name === g.name);
          if (old) merged.push({ ...old, notes: [...(old.notes ?? []).filter((n) => !n.startsWith('Measured in an earlier run')), `Measured in an earlier run (${old.measuredAt ?? 'date unknown'}).`] });
        }
      }
      groups = merged;
    } catch (error) {
      log(`could not merge earlier results from ${jsonFile}: ${error.message}`);
    }
  }

  const results = {
    machine: { ...describeMachine(root, python), load: [loadAtStart, os.loadavg()[0]] },
    options: { quick: Boolean(options.quick), only: options.only ?? [], command: options.command ?? 'npm run bench' },
    seconds: (performance.now() - started) / 1000,
    groups,
  };
  // GPU figures come from bench/gpu.sh on another machine; the real report shows the last saved ones.
  const markdown = renderMarkdown(attachGpu(results));
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, markdown);
  if (options.json !== false) {
    mkdirSync(path.dirname(jsonFile), { recursive: true });
    const { gpu, ...measured } = results;
    writeFileSync(jsonFile, JSON.stringify(measured, null, 2) + '\n');
  }
  return { results, markdown, out };
}

/**
 * Inference: convspec's ONNX file next to the one torch.onnx writes for the same architecture, both run by
 * onnxruntime-node in this process (same runtime, same session options), so the comparison is of graph quality
 * alone. ResNet-18 and ResNet-50 at 224×224, batch 1 and 8, 1 and 2 intra-op threads; median latency of
 * `session.run` after warm-up runs, the two files alternating. Also the file sizes.
 *
 * Weights: random for both; ONNX Runtime's speed does not depend on the values. convspec's file is what a user
 * gets from `convspec compile SPEC --target onnx` (default inference passes, BN folded, He-normal weights); while
 * that command is missing or fails, the library's `elaborate` → `randomWeights` → `emitOnnx` (opset 17, no passes)
 * stands in and the notes say so. PyTorch's comes from bench/peers/export.py (reused from the compile group).
 *
 * Targets: latency ratio ≤ 1.02 (within 2 % of torch.onnx's graph), and a file no larger (size ratio ≤ 1).
 */
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { failureReason } from '../lib/proc.js';
import { pseudoRandomInput } from '../lib/inputs.js';

export const name = 'inference';
export const title = 'Inference in ONNX Runtime';
export const order = 20;
export const peer = 'torch.onnx';
export const description =
  'onnxruntime-node (CPU execution provider, default graph optimisations) runs convspec\'s ONNX and the one `torch.onnx.export` writes ' +
  '(PyTorch 1.13, opset 17, dynamic batch) for the same architecture: median `session.run` latency, the two files alternating in one process, ' +
  'after warm-up runs; interop threads 1, threads not spinning between runs (with spinning, the idle session\'s threads took the cores ' +
  'of the running one: ratios between two runs of the same files moved by up to 57 % at 2 threads on 2 cores). Random weights in both.';

const MODELS = [
  { key: 'resnet18', label: 'ResNet-18', spec: 'specs/resnet18.cnn' },
  { key: 'resnet50', label: 'ResNet-50', spec: 'specs/resnet50.cnn' },
];

/** `convspec compile SPEC --target onnx -o DIR` → DIR/<Model>.onnx (the only .onnx written there). */
async function compileConvspec(ctx, model) {
  const dir = ctx.tmp(`inference/cli-${model.key}`);
  const result = await ctx.convspec(['compile', model.spec, '--target', 'onnx', '-o', dir], { timeoutMs: 300_000 });
  if (result.code !== 0) ctx.unavailable(`\`convspec compile ${model.spec} --target onnx\`: ${failureReason(result)}`);
  const file = readdirSync(dir).find((f) => f.endsWith('.onnx'));
  if (!file) ctx.unavailable(`\`convspec compile ${model.spec}\` wrote no .onnx file`);
  return path.join(dir, file);
}

async function emitConvspec(ctx, model) {
  const { elaborate } = await ctx.importDist('elaborate/elaborate.js', ['elaborate']);
  const { randomWeights } = await ctx.importDist('ir/weights.js', ['randomWeights']);
  const { emitOnnx } = await ctx.importDist('codegen/onnx.js', ['emitOnnx']);
  const elaborated = elaborate(path.join(ctx.root, model.spec));
  const errors = elaborated.diagnostics.filter((d) => d.severity === 'error');
  if (!elaborated.graph || errors.length) ctx.unavailable(`${model.spec} does not elaborate: ${errors.map((d) => d.message).join('; ')}`);
  const emitted = emitOnnx(elaborated.graph, randomWeights(elaborated.graph, 0), { opset: 17 });
  const emitErrors = emitted.diagnostics.filter((d) => d.severity === 'error');
  if (emitErrors.length) ctx.unavailable(`emitOnnx fails on ${model.spec}: ${emitErrors.map((d) => `${d.code} ${d.message}`).join('; ')}`);
  const file = ctx.tmp(`inference/convspec-${model.key}.onnx`);
  writeFileSync(file, emitted.bytes);
  return file;
}

async function exportTorch(ctx, model) {
  const cached = ctx.cache.get(`torch-onnx:${model.key}`);
  if (cached && existsSync(cached)) return cached;
  const file = ctx.tmp(`torch/${model.key}.onnx`);
  await ctx.timeProcess(...ctx.peerCommand('export.py', [model.key, '-o', file]));
  ctx.cache.set(`torch-onnx:${model.key}`, file);
  return file;
}

/** Runs a side (producing a file) and keeps the reason when it cannot. */
async function attempt(fn) {
  try {
    return { file: await fn() };
  } catch (error) {
    return { unavailable: error?.name === 'Unavailable' ? error.message : `failed: ${error?.message ?? error}` };
  }
}

/**
 * Where the two files' bytes differ: weight bytes (initializer raw data; both sides store equal tensors, such as
 * the all-zero biases BN folding gives an untrained model, once), what convspec writes that torch.onnx does not
 * (metadata_props: frozen flags, regularisers, spec hash; node doc strings: each node's spec location), and what
 * torch.onnx writes that convspec leaves out (attributes equal to their defaults: unit strides and dilations,
 * group 1, zero pads). Neither writes value_info by default.
 */
async function sizeBreakdown(ctx, model, convspecFile, peerFile) {
  const { decodeModel } = await ctx.importDist('codegen/onnx-model.js', ['decodeModel']);
  const describe = (file) => {
    const decoded = decodeModel(readFileSync(file), file);
    const graph = decoded.graph ?? {};
    const initializers = graph.initializer ?? [];
    const weightBytes = initializers.reduce((sum, t) => sum + (t.rawData?.length ?? 0), 0);
    const metadata = (decoded.metadataProps ?? []).reduce((sum, p) => sum + (p.key?.length ?? 0) + (p.value?.length ?? 0), 0);
    const nodeDocs = (graph.node ?? []).reduce((sum, n) => sum + (n.docString?.length ?? 0), 0);
    const attributes = (graph.node ?? []).reduce((sum, n) => sum + (n.attribute ?? []).length, 0);
    return { initializers: initializers.length, weightBytes, metadata, nodeDocs, attributes, valueInfo: (graph.valueInfo ?? []).length };
  };
  const ours = describe(convspecFile);
  const theirs = describe(peerFile);
  const kib = (bytes) => `${(bytes / 1024).toFixed(1)} KiB`;
  return (
    `${model.label} file size: convspec ${ours.initializers} initializers with ${kib(ours.weightBytes)} of weights, torch.onnx ${theirs.initializers} with ${kib(theirs.weightBytes)}` +
    (ours.weightBytes > theirs.weightBytes
      ? ` (${kib(ours.weightBytes - theirs.weightBytes)} less: it stores equal tensors once, here the all-zero biases that folding the untrained batch norms gives, which trained weights do not have); `
      : '; ') +
    `convspec adds ${kib(ours.metadata)} of metadata_props (frozen flags, regularisers, spec hash), ${kib(ours.nodeDocs)} of node doc strings (each node's location in the spec) and ${ours.valueInfo} value_info shapes (torch.onnx: ${kib(theirs.metadata)}, ${kib(theirs.nodeDocs)}, ${theirs.valueInfo}); ` +
    `convspec writes ${ours.attributes} node attributes, torch.onnx ${theirs.attributes} (convspec leaves out those equal to the operator's default).`
  );
}

/**
 * The operators ONNX Runtime runs for a file: the model it writes out after its graph optimisations (fusions,
 * NCHWc layouts), counted by type. Equal counts for the two files mean the runtime executes the same graph, and
 * latency differences between them are measurement noise.
 */
async function optimisedOperators(ctx, file, label) {
  const ort = await import('onnxruntime-node');
  const { decodeModel } = await ctx.importDist('codegen/onnx-model.js', ['decodeModel']);
  const optimised = ctx.tmp(`inference/optimised-${label}.onnx`);
  const session = await ort.InferenceSession.create(file, { executionProviders: ['cpu'], intraOpNumThreads: 1, optimizedModelFilePath: optimised, logSeverityLevel: 3 });
  await session.release();
  const counts = new Map();
  for (const node of decodeModel(readFileSync(optimised), optimised).graph?.node ?? []) {
    const op = node.domain ? `${node.domain}.${node.opType}` : node.opType;
    counts.set(op, (counts.get(op) ?? 0) + 1);
  }
  return counts;
}

function describeOperators(counts) {
  return [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([op, n]) => `${n} ${op}`).join(', ');
}

async function graphComparison(ctx, model, convspecFile, peerFile) {
  try {
    const ours = await optimisedOperators(ctx, convspecFile, `convspec-${model.key}`);
    const theirs = await optimisedOperators(ctx, peerFile, `torch-${model.key}`);
    const same = ours.size === theirs.size && [...ours].every(([op, n]) => theirs.get(op) === n);
    return same
      ? `${model.label}: after ONNX Runtime's graph optimisations both files run the same operators (${describeOperators(ours)}), so their latencies differ by measurement noise only.`
      : `${model.label}: after ONNX Runtime's graph optimisations convspec's file runs ${describeOperators(ours)}; torch.onnx's ${describeOperators(theirs)}.`;
  } catch (error) {
    return `${model.label}: the optimised graphs could not be compared (${error.message.split('\n')[0]}).`;
  }
}

export async function run(ctx) {
  const { OrtEngine } = await ctx.importDist('runtime/ort/engine.js', ['OrtEngine']);
  const rows = [];
  const notes = [];
  const sources = new Set();
  for (const model of MODELS) {
    ctx.log(`inference: files for ${model.label}`);
    let convspecFile = await attempt(() => compileConvspec(ctx, model));
    if (convspecFile.file) sources.add('`convspec compile --target onnx` (default passes: BN folded)');
    else {
      notes.push(`${model.label}: the compile command did not give a file (${convspecFile.unavailable}); the library's emitOnnx without passes stands in.`);
      convspecFile = await attempt(() => emitConvspec(ctx, model));
      if (convspecFile.file) sources.add('the library: `elaborate` → `randomWeights` → `emitOnnx` (no passes)');
    }
    const files = { convspec: convspecFile, peer: await attempt(() => exportTorch(ctx, model)) };
    const size = (side) => (files[side].file ? { value: statSync(files[side].file).size } : { unavailable: files[side].unavailable });
    rows.push(ctx.row(`${model.label} file size`, 'bytes', { convspec: size('convspec'), peer: size('peer') }, { target: { on: 'ratio', op: '<=', value: 1, text: 'no larger (ratio ≤ 1)' } }));
    if (files.convspec.file && files.peer.file) {
      notes.push(await sizeBreakdown(ctx, model, files.convspec.file, files.peer.file));
      notes.push(await graphComparison(ctx, model, files.convspec.file, files.peer.file));
    }

    for (const threads of [1, 2]) {
      const engines = {};
      for (const side of ['convspec', 'peer']) {
        if (!files[side].file) continue;
        try {
          // no spinning: the two sessions take turns, and one's spinning threads would take the cores of the other
          engines[side] = await OrtEngine.create(files[side].file, { intraOpThreads: threads, interOpThreads: 1, spinning: false, logSeverity: 'error' });
        } catch (error) {
          files[side] = { unavailable: `ONNX Runtime cannot load it: ${error.message.split('\n')[0]}` };
        }
      }
      for (const batch of [1, 8]) {
        const dims = [batch, 3, 224, 224];
        const data = pseudoRandomInput(batch * 3 * 224 * 224, 1);
        const measure = (side) => async () => {
          if (!engines[side]) ctx.unavailable(files[side].unavailable ?? 'no file');
          const engine = engines[side];
          const feeds = { [engine.inputNames[0]]: { data, dims } };
          const started = performance.now();
          await engine.run(feeds);
          return performance.now() - started;
        };
        ctx.log(`inference: ${model.label}, batch ${batch}, ${threads} thread(s)`);
        const heavy = batch * (model.key === 'resnet50' ? 2.3 : 1) / threads;
        const reps = ctx.reps(heavy > 8 ? 15 : heavy > 2 ? 21 : 31);
        const measured = await ctx.sideBySide({ convspec: measure('convspec'), peer: measure('peer') }, { reps, warmup: ctx.quick ? 1 : 3 });
        rows.push(ctx.row(`${model.label}, batch ${batch}, ${threads} thread${threads > 1 ? 's' : ''}`, 'ms', measured, { target: { on: 'ratio', op: '<=', value: 1.02 } }));
      }
      for (const engine of Object.values(engines)) await engine.dispose();
    }
  }
  const latency = rows.filter((r) => r.unit === 'ms');
  notes.push('ms: milliseconds per `session.run` (median); a ratio above 1 means convspec\'s graph runs slower.');
  if (sources.size) notes.push(`convspec's files came from ${[...sources].join(' and ')}.`);
  return {
    rows,
    notes,
    charts: [
      {
        type: 'bar',
        title: 'ONNX Runtime latency, ms per run (log scale)',
        unit: 'ms per run',
        log: true,
        categories: latency.map((r) => r.name.replace(', batch ', ' b').replace(/, (\d) threads?/, ' t$1')),
        series: [
          { name: 'convspec ONNX', values: latency.map((r) => r.convspec) },
          { name: 'torch.onnx', values: latency.map((r) => r.peer) },
        ],
      },
    ],
  };
}

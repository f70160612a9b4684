#!/usr/bin/env node
/**
 * `npm run bench [-- options]`: runs the benchmark groups of bench/groups/ and rewrites BENCHMARKS.md.
 *
 *   --only a,b         run these groups only (the others keep their earlier figures from bench/results.json)
 *   --quick            fewer repetitions (rough figures, a few minutes)
 *   --list             print the groups and exit
 *   --no-peers         do not look for PyTorch (its figures are then "not available")
 *   --out FILE         where to write the report (default BENCHMARKS.md)
 *   --charts-dir DIR   where to write the PNG charts (default bench/charts)
 *   --groups-dir DIR   where the group modules are (default bench/groups)
 *   --json FILE        raw results (default bench/results.json, or beside --out)
 *   --keep-tmp         keep the scratch folder (exported models, generated specs)
 *   --render-only      measure nothing: rewrite the report from the raw results (and bench/gpu-results.json)
 * Exit code 0 when the report was written (whatever the targets say), 2 for a usage error, 1 otherwise.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';

import { loadGroups, runBenchmarks } from './lib/harness.js';

function usage(message) {
  console.error(`bench: ${message}\nusage: node bench/run.js [--only a,b] [--quick] [--list] [--no-peers] [--out FILE] [--charts-dir DIR] [--groups-dir DIR] [--json FILE] [--keep-tmp] [--render-only]`);
  process.exit(2);
}

let parsed;
try {
  parsed = parseArgs({
    options: {
      only: { type: 'string', multiple: true },
      quick: { type: 'boolean', default: false },
      list: { type: 'boolean', default: false },
      'no-peers': { type: 'boolean', default: false },
      out: { type: 'string' },
      'charts-dir': { type: 'string' },
      'groups-dir': { type: 'string' },
      json: { type: 'string' },
      'keep-tmp': { type: 'boolean', default: false },
      'render-only': { type: 'boolean', default: false },
    },
    allowPositionals: false,
  });
} catch (error) {
  usage(error.message);
}
const { values } = parsed;
const only = (values.only ?? []).flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
const groupsDir = values['groups-dir'] ? path.resolve(values['groups-dir']) : undefined;

try {
  if (values.list) {
    for (const group of await loadGroups(groupsDir)) console.log(`${group.name.padEnd(12)} ${group.title}`);
    process.exit(0);
  }
  const args = process.argv.slice(2);
  const { results, out } = await runBenchmarks({
    only,
    quick: values.quick,
    peers: !values['no-peers'],
    out: values.out,
    chartsDir: values['charts-dir'],
    groupsDir,
    json: values.json,
    keepTmp: values['keep-tmp'],
    renderOnly: values['render-only'],
    command: `npm run bench${args.length ? ` -- ${args.join(' ')}` : ''}`,
  });
  const failed = results.groups.filter((g) => g.error);
  console.error(`[bench] wrote ${path.relative(process.cwd(), out) || out} in ${results.seconds.toFixed(1)} s${failed.length ? `; failed groups: ${failed.map((g) => g.name).join(', ')}` : ''}`);
} catch (error) {
  if (error instanceof Error && /^unknown group/.test(error.message)) usage(error.message);
  console.error(`bench: ${error instanceof Error ? error.stack : error}`);
  process.exit(1);
}

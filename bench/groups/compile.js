/**
 * Compile speed: how long a user waits for convspec to check a spec and to compile it to ONNX, next to what a
 * PyTorch user runs for the same model (build + a forward pass to check shapes; build + torch.onnx.export, opset
 * 17, dynamic batch, for the file). Every figure is a whole process, interpreter start-up included.
 *
 * Also the scaling of `check` with model size: synthetic chains of 1k … 10k layers (conv 3×3 → relu pairs,
 * ten layers a line), fitted to t = a·nᵏ on the time above the start-up of a 10-layer chain.
 *
 * Targets (issue "Benchmarks against the tools users would pick instead"): `check specs/resnet50.cnn` < 0.5 s;
 * compile ≥ 10× faster than PyTorch's build + export, i.e. ratio ≤ 0.1.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';

import { fitPowerLaw } from '../lib/stats.js';

export const name = 'compile';
export const title = 'Compile speed';
export const order = 10;
export const peer = 'PyTorch 1.13';
export const description =
  'Whole-process wall time. convspec: `node bin/convspec.js check SPEC` and `… compile SPEC --target onnx -o DIR` ' +
  '(the command as installed: it starts from the single-file bundle `npm run build` makes, with V8\'s code cache; bin/launch.js); ' +
  'the "library" rows run the same work (elaborate, initialise weights, emit ONNX, write) through the library API in one Node process, from the ES modules of dist/ ' +
  '(bench/lib/compile-library.js). PyTorch: bench/peers/export.py (build the torchvision-equivalent model + `torch.onnx.export`, opset 17, ' +
  'dynamic batch; `--forward-only`: build + one forward pass, what a PyTorch user runs to check shapes).';

const MODELS = [
  { key: 'resnet50', label: 'ResNet-50', spec: 'specs/resnet50.cnn' },
  { key: 'resnet18', label: 'ResNet-18', spec: 'specs/resnet18.cnn' },
  { key: 'mobilenet_v2', label: 'MobileNet v2', spec: 'specs/mobilenet_v2.cnn' },
];

/** A chain of `layers` layers (conv 3×3 16→16, pad 1, then relu; ten layers a line), with a shape assert. */
export function chainSpec(layers) {
  const perLine = 10;
  const lines = [`// Synthetic benchmark spec: a chain of ${layers} layers.`, `model Chain${layers} {`, '  input x: f32[N, 16, 8, 8]'];
  let previous = 'x';
  for (let i = 0; i * perLine < layers; i++) {
    const count = Math.min(perLine, layers - i * perLine);
    const ops = Array.from({ length: count }, (_, k) => (k % 2 === 0 ? 'conv(16, 3, pad: 1)' : 'relu'));
    lines.push(`  l${i} = ${previous} -> ${ops.join(' -> ')}`);
    previous = `l${i}`;
  }
  lines.push(`  output ${previous}`, `  assert shape(${previous}) == [N, 16, 8, 8]`, '}', '');
  return lines.join('\n');
}

export async function run(ctx) {
  const rows = [];
  const notes = [];
  const node = process.execPath;
  const checkCommand = (spec) => ctx.timeProcess(node, [path.join(ctx.root, 'bin/convspec.js'), 'check', spec]);

  // check vs PyTorch build + forward
  for (const model of MODELS) {
    ctx.log(`compile: check ${model.label}`);
    const measured = await ctx.sideBySide(
      {
        convspec: () => checkCommand(model.spec),
        peer: () => ctx.timeProcess(...ctx.peerCommand('export.py', [model.key, '--forward-only'])),
      },
      { reps: ctx.reps(5), warmup: 1 },
    );
    rows.push(
      ctx.row(`check ${model.label}`, 's', measured, {
        peerLabel: 'build + forward',
        ...(model.key === 'resnet50' ? { target: { on: 'convspec', op: '<', value: 0.5 } } : {}),
      }),
    );
  }

  // compile (CLI, and the library path) vs PyTorch build + torch.onnx.export
  for (const model of MODELS) {
    ctx.log(`compile: compile ${model.label}`);
    const cliDir = ctx.tmp(`compile-cli/${model.key}`);
    const libraryDir = ctx.tmp(`compile-library/${model.key}`);
    const torchFile = ctx.tmp(`torch/${model.key}.onnx`);
    const long = model.key !== 'mobilenet_v2';
    const measured = await ctx.sideBySide(
      {
        cli: () => ctx.timeProcess(node, [path.join(ctx.root, 'bin/convspec.js'), 'compile', model.spec, '--target', 'onnx', '-o', cliDir]),
        library: () => ctx.timeProcess(node, [path.join(ctx.root, 'bench/lib/compile-library.js'), model.spec, libraryDir]),
        peer: () => ctx.timeProcess(...ctx.peerCommand('export.py', [model.key, '-o', torchFile])),
      },
      { reps: ctx.reps(long ? 3 : 5), warmup: 0 },
    );
    if (measured.peer.value !== undefined) ctx.cache.set(`torch-onnx:${model.key}`, torchFile);
    const target = { on: 'ratio', op: '<=', value: 0.1, text: '≥ 10× faster (ratio ≤ 0.1)' };
    rows.push(ctx.row(`compile ${model.label} → ONNX`, 's', { convspec: measured.cli, peer: measured.peer }, { peerLabel: 'build + export', target }));
    rows.push(ctx.row(`compile ${model.label} → ONNX, library`, 's', { convspec: measured.library, peer: measured.peer }, { peerLabel: 'build + export', target }));
  }

  // a 10,000-layer spec, and check time against layer count
  const sizes = ctx.quick ? [1000, 10000] : [1000, 2000, 5000, 10000];
  const baselineLayers = 10;
  const times = new Map();
  for (const layers of [baselineLayers, ...sizes]) {
    const file = ctx.tmp(`chains/chain${layers}.cnn`);
    writeFileSync(file, chainSpec(layers));
    ctx.log(`compile: check a ${layers}-layer chain`);
    const measured = await ctx.sideBySide({ convspec: () => checkCommand(file) }, { reps: ctx.reps(layers === 10000 ? 5 : 3), warmup: 1 });
    times.set(layers, measured.convspec);
  }
  const big = times.get(10000);
  rows.push(ctx.row('check a 10,000-layer chain', 's', { convspec: big }));

  const valid = sizes.filter((n) => typeof times.get(n)?.value === 'number');
  const base = times.get(baselineLayers)?.value;
  let chart;
  if (valid.length >= 2) {
    const raw = fitPowerLaw(valid, valid.map((n) => times.get(n).value));
    const above = valid.map((n) => times.get(n).value - (base ?? 0));
    const incremental = above.every((t) => t > 0) ? fitPowerLaw(valid, above) : undefined;
    const fit = incremental ?? raw;
    rows.push({
      name: `check time vs layers (${valid.map((n) => `${n / 1000}k`).join(', ')}): exponent k of t ∝ nᵏ`,
      unit: '',
      convspec: fit.exponent,
      peer: null,
      target: { on: 'convspec', op: '<=', value: 1.15, text: 'linear: k ≤ 1.15' },
    });
    notes.push(
      `check scaling: ${valid.map((n) => `${n} layers ${times.get(n).value.toFixed(2)} s`).join(', ')}; a 10-layer chain (start-up) ${base?.toFixed(2) ?? 'n/a'} s.`,
      incremental
        ? `Fit of the time above start-up: k = ${incremental.exponent.toFixed(2)} (r² ${incremental.r2.toFixed(3)}); of the raw whole-process time: k = ${raw.exponent.toFixed(2)} (r² ${raw.r2.toFixed(3)}). ` +
            `${incremental.exponent <= 1.15 ? 'No worse than linear' : incremental.exponent < 1.6 ? 'Somewhat worse than linear' : 'Clearly super-linear'} in the layer count${incremental.exponent < 0.9 ? ' (below 1: costs that do not grow with the spec, such as JIT warm-up, still weigh at 1,000 layers)' : ''}.`
        : `Fit of the raw whole-process time: k = ${raw.exponent.toFixed(2)} (r² ${raw.r2.toFixed(3)}).`,
    );
    chart = {
      type: 'line',
      id: 'scaling',
      title: 'convspec check: seconds vs layers',
      xLabel: 'layers in the spec',
      yLabel: 'seconds (median)',
      series: [
        { name: 'whole process', points: valid.map((n) => [n, times.get(n).value]) },
        ...(base !== undefined ? [{ name: 'above start-up', points: valid.map((n) => [n, times.get(n).value - base]) }] : []),
      ],
    };
  }
  const libraryPhases = await libraryBreakdown(ctx);
  if (libraryPhases) notes.push(libraryPhases);

  const timed = rows.filter((r) => r.unit === 's');
  const charts = [
    {
      type: 'bar',
      title: 'Compile speed: seconds, whole process (log scale)',
      unit: 'seconds',
      log: true,
      categories: timed.map((r) => r.name.replace(' → ONNX', '')),
      series: [
        { name: 'convspec', values: timed.map((r) => r.convspec) },
        { name: 'PyTorch 1.13', values: timed.map((r) => r.peer) },
      ],
    },
    ...(chart ? [chart] : []),
  ];
  return { rows, notes, charts };
}

/** One extra library run of ResNet-50 for the phase breakdown (where the compile time goes). */
async function libraryBreakdown(ctx) {
  const result = await ctx.runCommand(process.execPath, [path.join(ctx.root, 'bench/lib/compile-library.js'), 'specs/resnet50.cnn', ctx.tmp('compile-library/breakdown')], { cwd: ctx.root, timeoutMs: 120_000 });
  if (result.code !== 0) return undefined;
  try {
    const p = JSON.parse(result.stdout.trim().split('\n').at(-1));
    return `ResNet-50 through the library, one run: loading modules ${p.load_s} s, elaborate ${p.elaborate_s} s, set up the weights ${p.weights_s} s, emit ONNX ${p.emit_s} s, write ${p.write_s} s (${(p.bytes / 1e6).toFixed(1)} MB; the He-uniform weights are drawn as they are written, so the write includes drawing them).`;
  } catch {
    return undefined;
  }
}



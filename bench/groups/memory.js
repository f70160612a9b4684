/**
 * Memory: peak resident set size of the whole process (GNU time's %M) for checking and compiling ResNet-50,
 * next to PyTorch building the model and running one forward pass / exporting it. The issues set no target
 * for memory; the table reports the ratio for the record.
 */
import path from 'node:path';

export const name = 'memory';
export const title = 'Peak memory';
export const order = 30;
export const peer = 'PyTorch 1.13';
export const description =
  'Peak RSS of the whole process (GNU time `%M`; without it, `process.resourceUsage().maxRSS` inside a Node child). ' +
  'convspec: `check` and `compile --target onnx` of specs/resnet50.cnn, and the library compile (bench/lib/compile-library.js); ' +
  'PyTorch: bench/peers/export.py resnet50 (`--forward-only` for the check counterpart).';

export async function run(ctx) {
  const node = process.execPath;
  const cli = path.join(ctx.root, 'bin/convspec.js');
  const spec = 'specs/resnet50.cnn';
  const reps = ctx.reps(3);
  const rows = [];

  ctx.log('memory: check ResNet-50');
  const check = await ctx.sideBySide(
    {
      convspec: () => ctx.peakRss(node, [cli, 'check', spec]),
      peer: () => ctx.peakRss(...ctx.peerCommand('export.py', ['resnet50', '--forward-only'])),
    },
    { reps },
  );
  rows.push(ctx.row('check ResNet-50', 'MiB', check, { peerLabel: 'build + forward' }));

  ctx.log('memory: compile ResNet-50');
  const compile = await ctx.sideBySide(
    {
      cli: () => ctx.peakRss(node, [cli, 'compile', spec, '--target', 'onnx', '-o', ctx.tmp('memory/cli')]),
      library: () => ctx.peakRss(node, [path.join(ctx.root, 'bench/lib/compile-library.js'), spec, ctx.tmp('memory/library')]),
      peer: () => ctx.peakRss(...ctx.peerCommand('export.py', ['resnet50'])),
    },
    { reps },
  );
  rows.push(ctx.row('compile ResNet-50 → ONNX', 'MiB', { convspec: compile.cli, peer: compile.peer }, { peerLabel: 'build + export' }));
  rows.push(ctx.row('compile ResNet-50 → ONNX, library', 'MiB', { convspec: compile.library, peer: compile.peer }, { peerLabel: 'build + export' }));
  return {
    rows,
    notes: ['MiB: peak resident set size, median of the repetitions. For scale: ResNet-50\'s float32 weights take 97.5 MiB.'],
  };
}

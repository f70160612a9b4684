/**
 * Training throughput: images per second training the Fashion-MNIST CNN of specs/fashion.cnn (batch 64, Adam,
 * cross-entropy) on the CPU, convspec next to PyTorch with the same number of threads.
 *
 * PyTorch: bench/peers/train_fashion.py — after warm-up steps, timed windows of optimiser steps, median window.
 * convspec, the same method through the library: bench/lib/train-library.js (`TfjsEngine.create` on the wasm
 * backend, `trainModel`, windows timed from `onBatchEnd`), with forward and backward passes on ONNX Runtime
 * (`gradients: 'ort'`, what `convspec train` does on a CPU backend) and, for comparison, on the tfjs tape. And
 * `convspec train` (CLI.md) as a user runs it: 3 epochs minus 1 epoch on a 1,024-image subset
 * (bench/lib/train-cli.js), which cancels start-up and data loading. Threads: the engine's `threads` option (bench/lib/train-library.js
 * --threads) and, for the command, its --threads option when it has one, else the CONVSPEC_WASM_THREADS
 * environment variable, which the wasm backend reads (ARCHITECTURE.md: the threaded build started from a file).
 *
 * Target: convspec ≥ 0.5× PyTorch's throughput (ratio ≥ 0.5).
 */
import path from 'node:path';

import { failureReason } from '../lib/proc.js';
import { DEBIAN_FASHION_MNIST, fashionMnistDirectory, probeTrainCommand, trainThroughput, writeFashionSubset } from '../lib/train-cli.js';

export const name = 'training';
export const title = 'Training throughput';
export const order = 40;
export const peer = 'PyTorch 1.13';
export const description =
  'Fashion-MNIST CNN of specs/fashion.cnn (conv32-conv32-pool-conv64-conv64-pool with batch norm and dropout, dense 10; 96,554 parameters), ' +
  'batch 64, Adam, on the CPU: images per second (higher is better; ratio = convspec ÷ PyTorch). PyTorch: bench/peers/train_fashion.py with ' +
  '`torch.set_num_threads(N)`, timed windows of optimiser steps after warm-up steps; convspec: the same through the library ' +
  "(bench/lib/train-library.js: `trainModel` with forward and backward passes on ONNX Runtime's CPU kernels, the weights and Adam in the tfjs engine on the wasm backend; " +
  'and the same on the tfjs gradient tape), and `convspec train --backend wasm` (3 epochs minus 1 epoch on 1,024 images; its default `--engine auto` takes ONNX Runtime on CPU backends). ' +
  'The target applies to training as `convspec train` runs it; the tape rows show what the wasm backend alone reaches.';

const SUBSET_IMAGES = 1024;
const BATCH = 64;

export async function run(ctx) {
  const data = fashionMnistDirectory(ctx.root);
  const notes = [`Data: ${data === DEBIAN_FASHION_MNIST ? 'Fashion-MNIST from Debian\'s dataset-fashion-mnist' : 'the embedded Fashion-MNIST subset'} (${data}).`];
  const rows = [];
  const command = await probeTrainCommand(ctx.root);
  const subset = command.available ? writeFashionSubset(data, path.join(ctx.tmpDir, 'training', 'fashion-subset'), SUBSET_IMAGES, BATCH) : undefined;
  const steps = ctx.quick ? 10 : 20;
  const windows = ctx.quick ? 2 : 3;

  for (const threads of [1, 2]) {
    ctx.log(`training: ${threads} thread(s)`);
    const librarySide = (gradients) => async () => {
      const script = path.join(ctx.root, 'bench', 'lib', 'train-library.js');
      const result = await ctx.runCommand(process.execPath, [script, '--backend', 'wasm', '--gradients', gradients, '--threads', String(threads), '--batch', String(BATCH), '--steps', String(steps), '--windows', String(windows), '--data', data], { cwd: ctx.root, timeoutMs: 400_000 });
      if (result.code !== 0) ctx.unavailable(`bench/lib/train-library.js: ${failureReason(result)}`);
      const figures = JSON.parse(result.stdout.trim().split('\n').at(-1));
      if (figures.backend !== 'wasm') ctx.unavailable(`the engine ran on ${figures.backend}, not wasm`);
      if (figures.threads !== threads) ctx.unavailable(`the wasm backend ran ${figures.threads} thread(s), not ${threads}`);
      if (figures.gradients !== gradients) ctx.unavailable(`the library computed gradients on ${figures.gradients}, not ${gradients}`);
      return figures.images_per_s;
    };
    const cliSide = async () => {
      if (!command.available) ctx.unavailable(command.reason);
      try {
        const result = await trainThroughput({
          root: ctx.root, dataDir: subset, images: SUBSET_IMAGES, batch: BATCH, backend: 'wasm',
          threads: command.threadsOption ? threads : undefined,
          env: command.threadsOption ? undefined : { CONVSPEC_WASM_THREADS: String(threads) },
          outDir: ctx.tmp(`training/out-${threads}`),
        });
        return result.imagesPerSecond;
      } catch (error) {
        ctx.unavailable(error.message);
      }
    };
    const peerSide = async () => {
      const [python, args] = ctx.peerCommand('train_fashion.py', ['--threads', String(threads), '--batch', String(BATCH), '--steps', String(steps), '--windows', String(windows), '--data', data]);
      const result = await ctx.runCommand(python, args, { cwd: ctx.root, timeoutMs: 300_000 });
      if (result.code !== 0) ctx.unavailable(`train_fashion.py: ${failureReason(result)}`);
      return JSON.parse(result.stdout.trim().split('\n').at(-1)).images_per_s;
    };
    const measured = await ctx.sideBySide({ library: librarySide('ort'), tape: librarySide('tfjs'), cli: cliSide, peer: peerSide }, { reps: ctx.quick ? 1 : 2 });
    const label = `Fashion-MNIST CNN, batch ${BATCH}, ${threads} thread${threads > 1 ? 's' : ''}`;
    const target = { on: 'ratio', op: '>=', value: 0.5, text: '≥ 0.5× PyTorch (ratio ≥ 0.5)' };
    rows.push(ctx.row(label, 'img/s', { convspec: measured.library, peer: measured.peer }, { better: 'higher', target }));
    rows.push(ctx.row(`${label}, \`convspec train\``, 'img/s', { convspec: measured.cli, peer: measured.peer }, { better: 'higher', target }));
    rows.push(ctx.row(`${label}, tfjs tape (wasm)`, 'img/s', { convspec: measured.tape, peer: measured.peer }, { better: 'higher' }));
  }
  notes.push(`PyTorch: ${windows} windows of ${steps} steps after 5 warm-up steps in each process, median window; the row is the median over the processes.`);
  notes.push(...scalingNotes(rows));
  notes.push(...(await arithmeticNotes(ctx, rows)));
  return { rows, notes };
}

/**
 * The arithmetic rate each side sustains: a training step costs about three times the forward MACs (forward,
 * input gradient, filter gradient), so images/s × 3 × MACs × 2 is FLOP/s. On wasm the convolutions run in
 * XNNPACK's SIMD128 kernels (4 float lanes, no fused multiply-add); PyTorch's CPU build runs oneDNN convolutions
 * JIT-compiled for the CPU's AVX2 / AVX-512 with FMA, so the same core does several times the work per cycle: this rate, not the engine's
 * bookkeeping, bounds the ratio.
 */
async function arithmeticNotes(ctx, rows) {
  const one = rows.find((r) => r.name === `Fashion-MNIST CNN, batch ${BATCH}, 1 thread`);
  const tape = rows.find((r) => r.name === `Fashion-MNIST CNN, batch ${BATCH}, 1 thread, tfjs tape (wasm)`);
  if (typeof one?.convspec !== 'number' || typeof one?.peer !== 'number') return [];
  const { elaborate } = await ctx.importDist('elaborate/elaborate.js', ['elaborate']);
  const { computeCost } = await ctx.importDist('passes/cost.js', ['computeCost']);
  const graph = elaborate(path.join(ctx.root, 'specs/fashion.cnn')).graph;
  const macs = graph ? computeCost(graph).totals.macs : undefined;
  if (typeof macs !== 'number') return [];
  const gflops = (imagesPerSecond) => (imagesPerSecond * 3 * macs * 2) / 1e9;
  const tapeRate = typeof tape?.convspec === 'number' ? `, on the tfjs tape (wasm) ${gflops(tape.convspec).toFixed(0)} GFLOP/s` : '';
  return [
    `Arithmetic at 1 thread: a step costs about 3 × ${(macs / 1e6).toFixed(1)}M MACs per image (forward, input and filter gradients), so convspec sustains about ${gflops(one.convspec).toFixed(0)} GFLOP/s with ONNX Runtime's kernels${tapeRate}, and PyTorch ${gflops(one.peer).toFixed(0)} GFLOP/s. ` +
      "On wasm the convolutions are XNNPACK's SIMD128 kernels (4 float lanes, no fused multiply-add); ONNX Runtime's MLAS kernels and PyTorch's oneDNN use this CPU's AVX2/AVX-512 with FMA. The rest of the gap to PyTorch: the step graph's weight gradients (one GEMM per kernel offset, or an unfolded input with 2 threads) and element-wise batch-norm and ReLU gradients, which PyTorch fuses. The native tensorflow backend (@tensorflow/tfjs-node, optional) downloads libtensorflow at install and cannot be installed on this machine.",
  ];
}

/**
 * A side that ran slower with 2 threads than with 1 had no second core to itself (other processes held it), so
 * its 2-thread figure measures contention, not scaling: say so under the table rather than let a ratio stand
 * alone.
 */
function scalingNotes(rows) {
  const notes = [];
  const one = rows.find((r) => r.name === `Fashion-MNIST CNN, batch ${BATCH}, 1 thread`);
  const two = rows.find((r) => r.name === `Fashion-MNIST CNN, batch ${BATCH}, 2 threads`);
  if (!one || !two) return notes;
  for (const [side, label] of [['convspec', 'convspec'], ['peer', 'PyTorch']]) {
    if (typeof one[side] === 'number' && typeof two[side] === 'number' && two[side] < one[side]) {
      notes.push(`${label} trained slower with 2 threads (${two[side].toFixed(0)} img/s) than with 1 (${one[side].toFixed(0)} img/s): no core was free for the second thread during this run, so the 2-thread rows measure contention, not scaling.`);
    }
  }
  return notes;
}

#!/usr/bin/env node
/**
 * GPU figures (run by bench/gpu.sh on a machine with an NVIDIA GPU): convspec on tfjs's GPU backends next to
 * PyTorch on CUDA. Prints one JSON object on stdout; progress goes to stderr.
 *
 *   node bench/gpu-bench.js [--backends tensorflow,webgpu] [--python python3] [--gpu NAME] [--quick]
 *
 * For each backend, in a child process of its own (a clean tfjs): the backend is selected through convspec's
 * `selectBackend` (dist/runtime/tfjs/backend.js; it throws with the reason when the backend cannot run);
 *   - `backendConv`: raw tfjs conv 3×3, 64→64, batch 8 × 56×56, GFLOP/s: shows that the backend really uses the
 *     GPU; it measures tfjs, not convspec's engine;
 *   - `inference`: ResNet-18/50 latency through convspec's tfjs engine (`createEngine`, once dist has it);
 *   - `training`: `convspec train --backend <name>` throughput on Fashion-MNIST (bench/lib/train-cli.js).
 * PyTorch: bench/peers/gpu_torch.py (inference latency and training throughput on CUDA).
 * Anything that cannot run says why (`available: false, reason`); nothing is estimated.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

import { failureReason, runCommand } from './lib/proc.js';
import { median } from './lib/stats.js';
import { fashionMnistDirectory, probeTrainCommand, trainThroughput, writeFashionSubset } from './lib/train-cli.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    backends: { type: 'string', default: 'tensorflow,webgpu' },
    python: { type: 'string', default: 'python3' },
    gpu: { type: 'string', default: '' },
    quick: { type: 'boolean', default: false },
    child: { type: 'string' },
  },
});
const log = (...args) => console.error('[gpu-bench]', ...args);
const reps = values.quick ? 5 : 20;

async function importDist(relative) {
  const file = path.join(root, 'dist', relative);
  if (!existsSync(file)) throw new Error(`dist/${relative} is missing (run npm run build)`);
  return import(pathToFileURL(file).href);
}

async function timeIt(fn, count) {
  for (let i = 0; i < 3; i++) await fn();
  const times = [];
  for (let i = 0; i < count; i++) {
    const start = performance.now();
    await fn();
    times.push(performance.now() - start);
  }
  return median(times);
}

async function backendConv(tf) {
  const x = tf.randomNormal([8, 56, 56, 64]);
  const w = tf.randomNormal([3, 3, 64, 64]);
  const ms = await timeIt(async () => {
    const y = tf.conv2d(x, w, 1, 'same');
    await y.data();
    y.dispose();
  }, reps);
  x.dispose();
  w.dispose();
  const flops = 2 * 8 * 56 * 56 * 64 * 64 * 9;
  return { ms, gflops: flops / (ms / 1000) / 1e9, note: 'raw tfjs conv2d (NHWC), not convspec code' };
}

/** convspec's tfjs engine, when dist has one: `createEngine(graph, weights, { backend })` then run/predict. */
async function engineInference(backend) {
  let createEngine;
  for (const candidate of ['runtime/tfjs/engine.js', 'index.js']) {
    if (!existsSync(path.join(root, 'dist', candidate))) continue;
    const module = await importDist(candidate);
    if (typeof module.createEngine === 'function') {
      createEngine = module.createEngine;
      break;
    }
  }
  if (!createEngine) return { available: false, reason: 'dist has no createEngine (the tfjs engine is not built yet)' };
  const { elaborate } = await importDist('elaborate/elaborate.js');
  const { randomWeights } = await importDist('ir/weights.js');
  const results = {};
  for (const [name, spec] of [['resnet18', 'specs/resnet18.cnn'], ['resnet50', 'specs/resnet50.cnn']]) {
    try {
      const { graph } = elaborate(path.join(root, spec));
      const engine = await createEngine(graph, randomWeights(graph, 0), { backend });
      const run = engine.run ?? engine.predict ?? engine.infer;
      if (typeof run !== 'function') return { available: false, reason: 'the engine has no run/predict/infer method' };
      const inputName = graph.inputs?.[0]?.name ?? 'image';
      for (const batch of [1, 8]) {
        const dims = [batch, 3, 224, 224];
        const data = new Float32Array(batch * 3 * 224 * 224).fill(0.5);
        results[`${name}_b${batch}`] = await timeIt(() => run.call(engine, { [inputName]: { data, dims } }), reps);
      }
      await engine.dispose?.();
    } catch (error) {
      return { available: false, reason: `failed: ${String(error?.message ?? error).split('\n')[0]}`, partial: results };
    }
  }
  return { available: true, ms: results };
}

async function child(backend) {
  const out = { backend };
  try {
    const { selectBackend } = await importDist('runtime/tfjs/backend.js');
    const selection = await selectBackend(backend);
    out.selected = selection.name;
    const tf = await import('@tensorflow/tfjs');
    out.backendConv = await backendConv(tf);
    out.inference = await engineInference(backend);
  } catch (error) {
    out.available = false;
    out.reason = String(error?.message ?? error).split('\n')[0];
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

async function parent() {
  const result = { date: new Date().toISOString(), gpu: values.gpu || 'unknown (nvidia-smi not found)', cpu: os.cpus()[0]?.model, node: process.version, convspec: {}, pytorch: undefined };
  const train = await probeTrainCommand(root);
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'convspec-gpu-'));
  try {
    for (const backend of values.backends.split(',').map((b) => b.trim()).filter(Boolean)) {
      log(`tfjs backend ${backend}`);
      const run = await runCommand(process.execPath, [fileURLToPath(import.meta.url), '--child', backend, ...(values.quick ? ['--quick'] : [])], { cwd: root, timeoutMs: 600_000 });
      let figures;
      try {
        figures = JSON.parse(run.stdout.trim().split('\n').at(-1));
      } catch {
        figures = { backend, available: false, reason: failureReason(run) };
      }
      if (figures.available !== false) {
        if (!train.available) figures.training = { available: false, reason: train.reason };
        else {
          try {
            const images = 4096;
            const data = writeFashionSubset(fashionMnistDirectory(root), path.join(scratch, 'data'), images, 64);
            const t = await trainThroughput({ root, dataDir: data, images, backend, outDir: path.join(scratch, `train-${backend}`) });
            figures.training = { available: true, imagesPerSecond: t.imagesPerSecond };
          } catch (error) {
            figures.training = { available: false, reason: error.message };
          }
        }
      }
      result.convspec[backend] = figures;
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  log(`PyTorch (${values.python})`);
  const py = await runCommand(values.python, [path.join(root, 'bench', 'peers', 'gpu_torch.py'), ...(values.quick ? ['--quick'] : [])], { cwd: root, timeoutMs: 600_000 });
  try {
    result.pytorch = JSON.parse(py.stdout.trim().split('\n').at(-1));
  } catch {
    result.pytorch = { available: false, reason: failureReason(py) };
  }
  process.stdout.write(JSON.stringify(result, null, 2) + '\n');
}

if (values.child) await child(values.child);
else await parent();

#!/usr/bin/env node
/**
 * convspec's training throughput through the library, in one process: elaborate specs/fashion.cnn, create the
 * tfjs engine (`TfjsEngine.create`, backend as asked), and train with `trainModel` (cross-entropy, Adam 1e-3,
 * batch 64) on the first images of Fashion-MNIST. The per-batch times come from the `onBatchEnd` callback:
 * after `warmup` batches (tfjs compiles kernels on first use), `windows` windows of `steps` batches each are
 * timed wall-clock, and the median window's images per second is printed — the method of
 * bench/peers/train_fashion.py, so the two figures compare.
 *
 *   node bench/lib/train-library.js [--backend wasm] [--gradients tfjs|ort] [--threads N] [--batch 64] [--steps 20] [--windows 3] [--warmup 5] [--data DIR]
 * Prints one JSON line. Exit 3 when the library lacks a piece (the reason on stderr).
 */
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

import { median } from './stats.js';
import { fashionMnistDirectory } from './train-cli.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const { values } = parseArgs({
  options: {
    backend: { type: 'string', default: 'wasm' },
    threads: { type: 'string' },
    batch: { type: 'string', default: '64' },
    steps: { type: 'string', default: '20' },
    windows: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '5' },
    data: { type: 'string' },
    spec: { type: 'string', default: 'specs/fashion.cnn' },
    gradients: { type: 'string', default: 'tfjs' },
  },
});
const batch = Number(values.batch);
const steps = Number(values.steps);
const windows = Number(values.windows);
const warmup = Number(values.warmup);

async function need(relative, names) {
  try {
    const module = await import(pathToFileURL(path.join(root, 'dist', relative)).href);
    const missing = names.filter((n) => !(n in module));
    if (missing.length) throw new Error(`does not export ${missing.join(', ')}`);
    return module;
  } catch (error) {
    console.error(`dist/${relative}: ${String(error?.message ?? error).split('\n')[0]}`);
    process.exit(3);
  }
}

const { elaborate } = await need('elaborate/elaborate.js', ['elaborate']);
const { TfjsEngine } = await need('runtime/tfjs/engine.js', ['TfjsEngine']);
const { trainModel } = await need('runtime/tfjs/train.js', ['trainModel']);
const { loadDataset, selectSamples } = await need('runtime/data/index.js', ['loadDataset', 'selectSamples']);

const elaborated = elaborate(path.join(root, values.spec));
if (!elaborated.graph) {
  console.error(`${values.spec}: ${elaborated.diagnostics.map((d) => d.message).join('; ')}`);
  process.exit(1);
}
const images = (warmup + steps * windows) * batch;
const full = loadDataset(values.data ?? fashionMnistDirectory(root));
const dataset = selectSamples(full, Array.from({ length: Math.min(images, full.count) }, (_, i) => i));
const engine = await TfjsEngine.create(elaborated.graph, undefined, { backend: values.backend, seed: 42, ...(values.threads ? { threads: Number(values.threads) } : {}) });

const ends = [];
const ortThreads = values.threads ? Number(values.threads) : 1;
await trainModel(engine, dataset, { epochs: 1, batchSize: batch, seed: 42, gradients: values.gradients, ortThreads }, { onBatchEnd: () => void ends.push(performance.now()) });
const rates = [];
for (let w = 0; w < windows; w++) {
  const first = warmup - 1 + w * steps; // the window starts when batch `first` ended
  const last = first + steps;
  if (last >= ends.length) break;
  rates.push((steps * batch) / ((ends[last] - ends[first]) / 1000));
}
if (!rates.length) {
  console.error(`only ${ends.length} batches ran; need ${warmup + steps}`);
  process.exit(1);
}
console.log(JSON.stringify({ gradients: values.gradients, backend: engine.backend.name, threads: engine.threads ?? null, batch, images_per_s: median(rates), windows: rates.map((r) => Math.round(r * 10) / 10), batches: ends.length }));

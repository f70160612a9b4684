/**
 * Training with the tfjs engine (src/runtime/tfjs/train.ts and friends): the optimizers' update rules against
 * a float64 reference, regularisers and constraints, frozen parameters (bit-identical), batch-norm running
 * statistics, schedules and losses, deterministic runs and exact resumption from a checkpoint, early stopping,
 * and a real run on the embedded Fashion-MNIST subset (wasm backend).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { specGraph } from '../../src/testing.js';
import type { Graph } from '../../src/ir/graph.js';
import { initializeWeights, type WeightTensor } from '../../src/ir/weights.js';
import { createMulberry32, normalSample } from '../../src/random.js';
import { readCheckpoint } from '../../src/runtime/checkpoint.js';
import { loadFashionMnist, type Dataset } from '../../src/runtime/data/index.js';
import { TfjsEngine } from '../../src/runtime/tfjs/engine.js';
import { computeLoss, countCorrect, lossTargets } from '../../src/runtime/tfjs/losses.js';
import type { OptimizerOptions } from '../../src/runtime/tfjs/optimizers.js';
import { learningRateAt } from '../../src/runtime/tfjs/schedules.js';
import { evaluate, trainModel, TrainingError, type BatchProgress } from '../../src/runtime/tfjs/train.js';

const directory = mkdtempSync(join(tmpdir(), 'convspec-train-'));
afterAll(() => rmSync(directory, { recursive: true, force: true }));
beforeAll(async () => {
  (await TfjsEngine.create(compile('model W {\n  input x: f32[N, 1, 2, 2]\n  y = x -> flatten -> dense(2)\n  output y\n}'), undefined, { backend: 'wasm' })).dispose();
});

function compile(text: string): Graph {
  return specGraph(text, { file: 't.cnn' });
}

/** A synthetic dataset: class c images have a bright blob at a class-dependent place, plus noise. */
function syntheticDataset(count: number, shape: [number, number, number], classes: number, seed: number): Dataset {
  const random = createMulberry32(seed);
  const [c, h, w] = shape;
  const images = new Float32Array(count * c * h * w);
  const labels = new Int32Array(count);
  for (let n = 0; n < count; n++) {
    const label = n % classes;
    labels[n] = label;
    for (let i = 0; i < c * h * w; i++) {
      const column = i % w;
      const row = Math.floor(i / w) % h;
      const blob = Math.abs(row - ((label * 3) % h)) + Math.abs(column - ((label * 5) % w)) < 2 ? 1 : 0;
      images[n * c * h * w + i] = blob + 0.3 * normalSample(random);
    }
  }
  return { images, labels, shape, count };
}

function sameBits(a: WeightTensor, b: WeightTensor): boolean {
  return Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength).equals(Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength));
}

// ---------------------------------------------------------------------------------------------------------------

describe('optimizer update rules against a float64 reference', () => {
  // z = x·Wᵀ + b on 3 features, MSE against one-hot targets over 2 classes, whole dataset as one batch
  const text = (extra: string) => `model L {\n  input x: f32[N, 1, 1, 3]\n  z = x -> flatten -> dense(2)\n  output z\n${extra}}`;
  const data: Dataset = {
    images: new Float32Array([0.5, -1, 2, 1.5, 0.25, -0.5, -2, 1, 0.75, 0.1, 0.2, -0.3]),
    labels: new Int32Array([0, 1, 1, 0]),
    shape: [1, 1, 3],
    count: 4,
  };

  function reference(options: OptimizerOptions, steps: number, initial: Map<string, WeightTensor>, l2 = 0): { W: number[]; b: number[] } {
    const W = Array.from(initial.get('z.dense1.weight')!.data);
    const b = Array.from(initial.get('z.dense1.bias')!.data);
    const params = [W, b];
    const kernel = [true, false];
    const state = params.map((p) => ({ v: p.map(() => 0), m: p.map(() => 0), s: p.map(() => 0) }));
    for (let t = 1; t <= steps; t++) {
      const dW = W.map(() => 0);
      const db = b.map(() => 0);
      for (let n = 0; n < 4; n++) {
        const x = Array.from(data.images.subarray(n * 3, n * 3 + 3));
        for (let k = 0; k < 2; k++) {
          const z = b[k]! + x.reduce((sum, xi, i) => sum + xi * W[k * 3 + i]!, 0);
          const target = data.labels[n] === k ? 1 : 0;
          const dz = (2 * (z - target)) / 8;
          db[k]! += dz;
          x.forEach((xi, i) => (dW[k * 3 + i]! += dz * xi));
        }
      }
      const grads = [dW.map((g, i) => g + 2 * l2 * W[i]!), db];
      params.forEach((p, j) => {
        const st = state[j]!;
        p.forEach((w, i) => {
          let g = grads[j]![i]!;
          const lr = options.learningRate;
          if (options.kind === 'sgd') {
            const mu = options.momentum ?? 0;
            st.v[i] = mu * st.v[i]! + g;
            p[i] = w - lr * (options.nesterov ? g + mu * st.v[i]! : mu > 0 ? st.v[i]! : g);
          } else {
            const [b1, b2, eps] = [options.beta1 ?? 0.9, options.beta2 ?? 0.999, options.epsilon ?? 1e-8];
            const decay = options.weightDecay ?? (options.kind === 'adamw' ? 0.01 : 0);
            let current = w;
            if (kernel[j] && decay > 0) {
              if (options.kind === 'adamw') current = w * (1 - lr * decay);
              else g += decay * w;
            }
            st.m[i] = b1 * st.m[i]! + (1 - b1) * g;
            st.s[i] = b2 * st.s[i]! + (1 - b2) * g * g;
            const mHat = st.m[i]! / (1 - b1 ** t);
            const sHat = st.s[i]! / (1 - b2 ** t);
            p[i] = current - (lr * mHat) / (Math.sqrt(sHat) + eps);
          }
        });
      });
    }
    return { W, b };
  }

  const cases: Array<[string, OptimizerOptions, number?]> = [
    ['plain SGD', { kind: 'sgd', learningRate: 0.1 }],
    ['SGD with momentum', { kind: 'sgd', learningRate: 0.1, momentum: 0.9 }],
    ['SGD with Nesterov momentum and L2', { kind: 'sgd', learningRate: 0.05, momentum: 0.8, nesterov: true }, 0.05],
    ['Adam', { kind: 'adam', learningRate: 0.01 }],
    ['Adam with coupled weight decay', { kind: 'adam', learningRate: 0.01, weightDecay: 0.1, beta1: 0.8 }],
    ['AdamW (decoupled decay on the kernel only)', { kind: 'adamw', learningRate: 0.01, weightDecay: 0.5 }],
  ];
  for (const [title, options, l2] of cases) {
    it(title, async () => {
      const graph = compile(text(l2 ? `  regularize l2(${l2}) on dense\n` : ''));
      const initial = initializeWeights(graph, 7);
      const engine = await TfjsEngine.create(graph, initial, { backend: 'wasm' });
      try {
        const history = await trainModel(engine, data, { epochs: 3, batchSize: 4, shuffle: false, loss: 'mse', optimizer: options });
        expect(history.epochs).toHaveLength(3);
        const expected = reference(options, 3, initial, l2 ?? 0);
        const weights = engine.getWeightsSync();
        const W = weights.get('z.dense1.weight')!.data;
        const b = weights.get('z.dense1.bias')!.data;
        expected.W.forEach((w, i) => expect(W[i]).toBeCloseTo(w, 5));
        expected.b.forEach((v, i) => expect(b[i]).toBeCloseTo(v, 5));
      } finally {
        engine.dispose();
      }
    });
  }

  it('clips the global gradient norm', async () => {
    const graph = compile(text(''));
    const initial = initializeWeights(graph, 7);
    const engine = await TfjsEngine.create(graph, initial, { backend: 'wasm' });
    await trainModel(engine, data, { epochs: 1, batchSize: 4, shuffle: false, loss: 'mse', optimizer: { kind: 'sgd', learningRate: 1 }, clipNorm: 1e-3 });
    let squares = 0;
    for (const [name, tensor] of engine.getWeightsSync()) tensor.data.forEach((v, i) => (squares += (v - initial.get(name)!.data[i]!) ** 2));
    expect(Math.sqrt(squares)).toBeCloseTo(1e-3, 6);
    engine.dispose();
  });

  it('keeps each output unit of a max-norm layer within the norm', async () => {
    const graph = compile(text('  regularize max_norm(0.2) on dense\n'));
    const engine = await TfjsEngine.create(graph, initializeWeights(graph, 7), { backend: 'wasm' });
    await trainModel(engine, data, { epochs: 3, batchSize: 2, loss: 'mse', optimizer: { kind: 'sgd', learningRate: 0.5 } });
    const W = engine.getWeightsSync().get('z.dense1.weight')!.data;
    for (let unit = 0; unit < 2; unit++) {
      const norm = Math.hypot(W[unit * 3]!, W[unit * 3 + 1]!, W[unit * 3 + 2]!);
      expect(norm).toBeLessThanOrEqual(0.2 + 1e-6);
      expect(norm).toBeGreaterThan(0.19); // large steps push it to the limit
    }
    engine.dispose();
  });
});

describe('frozen parameters and batch-norm statistics', () => {
  const spec = [
    'model F {',
    '  input x: f32[N, 2, 6, 6]',
    '  stem = x -> conv(4, 3, pad: same) -> bn -> relu',
    '  body = stem -> conv(4, 3, stride: 2, pad: same, bias: false) -> bn(momentum: 0.8) -> relu -> spatial_dropout(0.3)',
    '  logits = body -> globalavgpool -> flatten -> dense(3)',
    '  output logits',
    '  freeze stem',
    '  regularize l2(1e-2) on conv, dense',
    '}',
  ].join('\n');

  for (const optimizer of [{ kind: 'adamw', learningRate: 0.05, weightDecay: 0.5, decayOn: 'all' }, { kind: 'sgd', learningRate: 0.1, momentum: 0.9, weightDecay: 0.1 }] as OptimizerOptions[]) {
    it(`leaves frozen weights and frozen BN statistics bit-identical (${optimizer.kind})`, async () => {
      const graph = compile(spec);
      const engine = await TfjsEngine.create(graph, undefined, { backend: 'wasm', seed: 3 });
      const before = engine.getWeightsSync();
      await trainModel(engine, syntheticDataset(24, [2, 6, 6], 3, 1), { epochs: 2, batchSize: 8, optimizer, seed: 1 });
      const after = engine.getWeightsSync();
      for (const [name, tensor] of before) {
        if (name.startsWith('stem.')) expect(sameBits(after.get(name)!, tensor), `${name} changed`).toBe(true);
        else expect(sameBits(after.get(name)!, tensor), `${name} did not change`).toBe(false);
      }
      expect(engine.trainableParameters().map((p) => p.spec.name).filter((n) => n.startsWith('stem.'))).toEqual([]);
      engine.dispose();
    });
  }

  it('a frozen batch norm normalises with its running statistics in training mode', async () => {
    const graph = compile('model B {\n  input x: f32[N, 3, 4, 4]\n  y = x -> bn\n  output y\n  freeze y\n}');
    const weights = new Map(initializeWeights(graph));
    weights.set('y.bn1.running_mean', { shape: [3], data: new Float32Array([0.5, -1, 2]) });
    weights.set('y.bn1.running_var', { shape: [3], data: new Float32Array([4, 0.25, 1]) });
    const engine = await TfjsEngine.create(graph, weights, { backend: 'wasm' });
    const x = { data: Float32Array.from({ length: 2 * 3 * 16 }, (_, i) => Math.sin(i) * 3), dims: [2, 3, 4, 4] };
    const inference = engine.predictSync({ x })['y']!;
    const training = engine.predictSync({ x }, { training: true })['y']!;
    expect(training.data).toEqual(inference.data);
    engine.dispose();
  });

  it('updates running statistics with momentum (biased batch variance)', async () => {
    const graph = compile('model B {\n  input x: f32[N, 2, 3, 3]\n  y = x -> bn(momentum: 0.8) -> flatten -> dense(2)\n  output y\n}');
    const engine = await TfjsEngine.create(graph, undefined, { backend: 'wasm' });
    const data = syntheticDataset(4, [2, 3, 3], 2, 5);
    await trainModel(engine, data, { epochs: 1, batchSize: 4, shuffle: false, optimizer: { kind: 'sgd', learningRate: 0.1 } });
    const weights = engine.getWeightsSync();
    for (let c = 0; c < 2; c++) {
      const values: number[] = [];
      for (let n = 0; n < 4; n++) for (let i = 0; i < 9; i++) values.push(data.images[(n * 2 + c) * 9 + i]!);
      const mean = values.reduce((a, b) => a + b, 0) / values.length;
      const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length;
      expect(weights.get('y.bn1.running_mean')!.data[c]).toBeCloseTo(0.8 * 0 + 0.2 * mean, 6);
      expect(weights.get('y.bn1.running_var')!.data[c]).toBeCloseTo(0.8 * 1 + 0.2 * variance, 6);
    }
    engine.dispose();
  });
});

describe('losses, metrics and schedules', () => {
  it('cross-entropy with label smoothing, binary cross-entropy and MSE', () => {
    const logits = tf.tensor2d([[2, 0, -1], [0.5, 0.5, 3]]);
    const labels = new Int32Array([0, 2]);
    const value = (kind: 'cross_entropy' | 'binary_cross_entropy' | 'mse', smoothing = 0) =>
      tf.tidy(() => computeLoss(logits, lossTargets(labels, 3, { kind, labelSmoothing: smoothing }), { kind, labelSmoothing: smoothing }).dataSync()[0]!);
    const rows = [[2, 0, -1], [0.5, 0.5, 3]];
    const logSoftmax = rows.map((r) => {
      const m = Math.max(...r);
      const s = Math.log(r.reduce((a, z) => a + Math.exp(z - m), 0)) + m;
      return r.map((z) => z - s);
    });
    const smoothed = (n: number, k: number, e: number) => (1 - e) * (labels[n] === k ? 1 : 0) + e / 3;
    const ce = (e: number) => -rows.reduce((sum, _, n) => sum + [0, 1, 2].reduce((s, k) => s + smoothed(n, k, e) * logSoftmax[n]![k]!, 0), 0) / 2;
    expect(value('cross_entropy')).toBeCloseTo(ce(0), 5);
    expect(value('cross_entropy', 0.1)).toBeCloseTo(ce(0.1), 5);
    const bce = rows.flatMap((r, n) => r.map((z, k) => { const t = labels[n] === k ? 1 : 0; const p = 1 / (1 + Math.exp(-z)); return -(t * Math.log(p) + (1 - t) * Math.log(1 - p)); }));
    expect(value('binary_cross_entropy')).toBeCloseTo(bce.reduce((a, b) => a + b) / 6, 5);
    const mse = rows.flatMap((r, n) => r.map((z, k) => (z - (labels[n] === k ? 1 : 0)) ** 2));
    expect(value('mse')).toBeCloseTo(mse.reduce((a, b) => a + b) / 6, 5);
    logits.dispose();
  });

  it('counts top-1 and top-k hits', () => {
    const logits = new Float32Array([0.1, 0.5, 0.3, 0.2, /**/ 0.9, 0.1, 0.8, 0.7, /**/ 0.2, 0.2, 0.1, 0.0]);
    // sample 3 ties with the arg-max: not top-1 (the first maximum wins) but within the top 2
    expect(countCorrect(logits, new Int32Array([1, 3, 1]), 4, [2, 3])).toEqual({ top1: 1, topK: [2, 3] });
  });

  it('schedules: warm-up, step, exponential, cosine', () => {
    const context = { stepsPerEpoch: 10, totalSteps: 100 };
    expect(learningRateAt(0.1, 0, undefined, { steps: 5 }, context)).toBeCloseTo(0.02);
    expect(learningRateAt(0.1, 4, undefined, { steps: 5 }, context)).toBeCloseTo(0.1);
    expect(learningRateAt(0.1, 29, { kind: 'step', everyEpochs: 2, gamma: 0.5 }, undefined, context)).toBeCloseTo(0.05);
    expect(learningRateAt(0.1, 40, { kind: 'step', everyEpochs: 2, gamma: 0.5 }, undefined, context)).toBeCloseTo(0.025);
    expect(learningRateAt(0.1, 25, { kind: 'exponential', gamma: 0.9 }, undefined, context)).toBeCloseTo(0.1 * 0.81);
    expect(learningRateAt(0.1, 10, { kind: 'cosine', minLearningRate: 0.01 }, { epochs: 1 }, context)).toBeCloseTo(0.1);
    expect(learningRateAt(0.1, 99, { kind: 'cosine', minLearningRate: 0.01 }, { epochs: 1 }, context)).toBeCloseTo(0.01);
    expect(learningRateAt(0.1, 10 + 44.5, { kind: 'cosine' }, { epochs: 1 }, context)).toBeCloseTo(0.05);
  });
});

describe('runs repeat exactly and resume exactly', () => {
  const spec = [
    'model R {',
    '  input image: f32[N, 1, 8, 8]',
    '  f = image -> conv(6, 3, pad: same, bias: false) -> bn -> relu -> maxpool(2) -> dropout(0.3)',
    '  logits = f -> conv(8, 3, stride: 2, pad: same) -> bn -> relu -> globalavgpool -> flatten -> dense(3)',
    '  output logits',
    '  regularize l2(1e-3) on conv',
    '}',
  ].join('\n');
  const train = syntheticDataset(48, [1, 8, 8], 3, 11);
  const validation = syntheticDataset(24, [1, 8, 8], 3, 12);
  const options = {
    epochs: 3,
    batchSize: 16,
    seed: 9,
    optimizer: { kind: 'adamw', learningRate: 0.01, weightDecay: 0.05 } as OptimizerOptions,
    schedule: { kind: 'cosine' as const, minLearningRate: 1e-4 },
    warmup: { steps: 2 },
    clipNorm: 5,
    labelSmoothing: 0.1,
    augmentation: { horizontalFlip: true },
    validation,
    topK: [2],
  };

  it('gives bit-identical weights and history when resumed from the epoch-1 checkpoint', async () => {
    const graph = compile(spec);
    const straight = await TfjsEngine.create(graph, undefined, { backend: 'wasm', seed: 4 });
    const progress: BatchProgress[] = [];
    const full = await trainModel(straight, train, { ...options, checkpoint: { path: join(directory, 'straight.ckpt') } }, { onBatchEnd: (p) => void progress.push(p) });
    expect(full.stopReason).toBe('completed');
    expect(progress).toHaveLength(9);
    expect(progress[8]).toMatchObject({ epoch: 3, epochs: 3, batch: 3, batches: 3, step: 9 });
    expect(progress[0]!.imagesPerSecond).toBeGreaterThan(0);
    expect(full.epochs[2]!.validation!.topK['top2']).toBeGreaterThanOrEqual(full.epochs[2]!.validation!.accuracy);

    // the same run again: identical
    const again = await TfjsEngine.create(graph, undefined, { backend: 'wasm', seed: 4 });
    await trainModel(again, train, options);
    for (const [name, tensor] of straight.getWeightsSync()) expect(sameBits(again.getWeightsSync().get(name)!, tensor), name).toBe(true);
    again.dispose();

    // stop after epoch 1 (abort), then resume on a fresh engine with other initial weights
    const controller = new AbortController();
    const first = await TfjsEngine.create(graph, undefined, { backend: 'wasm', seed: 4 });
    const path = join(directory, 'partial.ckpt');
    const partial = await trainModel(first, train, { ...options, checkpoint: { path }, signal: controller.signal }, { onEpochEnd: () => controller.abort() });
    expect(partial.stopReason).toBe('aborted');
    expect(partial.epochs).toHaveLength(1);
    first.dispose();
    const checkpoint = readCheckpoint(path);
    expect(checkpoint.metadata.epoch).toBe(1);
    expect(checkpoint.metadata.step).toBe(3);
    const resumed = await TfjsEngine.create(graph, undefined, { backend: 'wasm', seed: 99 });
    const rest = await trainModel(resumed, train, { ...options, resume: checkpoint });
    expect(rest.startEpoch).toBe(1);
    expect(rest.epochs.map((e) => [e.loss, e.accuracy, e.validation?.loss])).toEqual(full.epochs.map((e) => [e.loss, e.accuracy, e.validation?.loss]));
    for (const [name, tensor] of straight.getWeightsSync()) expect(sameBits(resumed.getWeightsSync().get(name)!, tensor), name).toBe(true);
    // the straight run's final checkpoint holds the same weights
    const final = readCheckpoint(join(directory, 'straight.ckpt'));
    expect(final.metadata.epoch).toBe(3);
    for (const [name, tensor] of final.weights) expect(sameBits(straight.getWeightsSync().get(name)!, tensor), name).toBe(true);
    resumed.dispose();
    straight.dispose();
  });

  it('refuses a checkpoint of another model or optimizer', async () => {
    const graph = compile(spec);
    const engine = await TfjsEngine.create(graph, undefined, { backend: 'wasm' });
    const checkpoint = readCheckpoint(join(directory, 'straight.ckpt'));
    await expect(trainModel(engine, train, { ...options, epochs: 4, optimizer: { kind: 'sgd', learningRate: 0.1 }, resume: checkpoint })).rejects.toThrow(TrainingError);
    const other = compile(spec.replace('dense(3)', 'dense(3, bias: false)'));
    const otherEngine = await TfjsEngine.create(other, undefined, { backend: 'wasm' });
    await expect(trainModel(otherEngine, train, { ...options, epochs: 4, resume: checkpoint })).rejects.toThrow(/another model/);
    engine.dispose();
    otherEngine.dispose();
  });

  it('stops early and restores the best weights', async () => {
    const graph = compile(spec);
    const stopping = await TfjsEngine.create(graph, undefined, { backend: 'wasm', seed: 4 });
    const base = { epochs: 10, batchSize: 16, seed: 9, optimizer: { kind: 'adam', learningRate: 0.01 } as OptimizerOptions, validation };
    // an improvement must beat the best by 1e9: only the first epoch improves
    const history = await trainModel(stopping, train, { ...base, earlyStopping: { patience: 2, minDelta: 1e9 } });
    expect(history.stopReason).toBe('early-stopping');
    expect(history.epochs).toHaveLength(3);
    expect(history.bestEpoch).toBe(1);
    const oneEpoch = await TfjsEngine.create(graph, undefined, { backend: 'wasm', seed: 4 });
    await trainModel(oneEpoch, train, { ...base, epochs: 1 });
    for (const [name, tensor] of oneEpoch.getWeightsSync()) expect(sameBits(stopping.getWeightsSync().get(name)!, tensor), name).toBe(true);
    stopping.dispose();
    oneEpoch.dispose();
  });

  it('rejects data that does not fit the model', async () => {
    const engine = await TfjsEngine.create(compile(spec), undefined, { backend: 'wasm' });
    await expect(trainModel(engine, syntheticDataset(8, [1, 6, 6], 3, 1), { epochs: 1, batchSize: 4 })).rejects.toThrow(/samples are \[1, 6, 6\]/);
    await expect(trainModel(engine, syntheticDataset(8, [1, 8, 8], 5, 1), { epochs: 1, batchSize: 4 })).rejects.toThrow(/label 4 but output 'logits' has 3 classes/);
    engine.dispose();
  });
});

describe('Fashion-MNIST (embedded subset, wasm)', () => {
  it('one epoch of a small CNN reaches clearly above chance on the test set', async () => {
    const graph = compile(
      [
        'model FashionSmall {',
        '  input image: f32[N, 1, 28, 28]',
        '  f = image -> conv(16, 3, pad: same, bias: false) -> bn -> relu -> maxpool(2)',
        '            -> conv(32, 3, pad: same, bias: false) -> bn -> relu -> maxpool(2) -> dropout(0.25)',
        '  logits = f -> flatten -> dense(10)',
        '  output logits',
        '}',
      ].join('\n'),
    );
    const train = loadFashionMnist('train', { forceSubset: true });
    const test = loadFashionMnist('test', { forceSubset: true });
    expect(train.count).toBe(3000);
    const engine = await TfjsEngine.create(graph, undefined, { backend: 'wasm', seed: 1 });
    expect(engine.backend.name).toBe('wasm');
    const started = performance.now();
    const history = await trainModel(engine, train, { epochs: 1, batchSize: 32, seed: 1, optimizer: { kind: 'adam', learningRate: 2e-3 } });
    const seconds = (performance.now() - started) / 1000;
    const evaluationStart = performance.now();
    const result = await evaluate(engine, test, { topK: [3] });
    const evaluationSeconds = (performance.now() - evaluationStart) / 1000;
    console.log(
      `Fashion-MNIST subset, 1 epoch on wasm: train ${history.epochs[0]!.imagesPerSecond.toFixed(0)} images/s (${seconds.toFixed(1)} s), ` +
        `test accuracy ${(result.accuracy * 100).toFixed(1)}% (top-3 ${(result.topK['top3']! * 100).toFixed(1)}%), loss ${result.loss.toFixed(3)}, ` +
        `inference ${(result.count / evaluationSeconds).toFixed(0)} images/s`,
    );
    expect(result.count).toBe(1000);
    expect(result.accuracy).toBeGreaterThan(0.6);
    engine.dispose();
  });
});

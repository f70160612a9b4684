/**
 * What `freeze`, `unfreeze` schedules and per-group learning rates do in training, on the fine-tuning spec of the
 * acceptance test (a taken, frozen backbone and a new head) with small synthetic data, so each check is quick:
 *   - `freeze` selects layers by take name, by range across taken scopes, by name and by glob;
 *   - a frozen batch norm normalises with its running statistics even in training mode (training-mode and
 *     inference-mode outputs agree), and its statistics never move;
 *   - `train { unfreeze: [[1, "stage2"]] }`: stage2 is bit-identical after epoch 1 and trains from epoch 2, while
 *     its batch norm keeps its running statistics; the rest of the backbone never moves;
 *   - learning-rate scales: with plain SGD, the first update of a group at scale σ is σ times the unscaled update,
 *     from the spec's `unfreeze: [[0, "stage2", σ]]` and from `learningRateScales` (the CLI's `--lr-scale`);
 *   - a resumed run with an unfreeze schedule ends where the uninterrupted one does;
 *   - bad schedules are reported before training; the CLI exits 1 (CNN8007) or 2 (bad --lr-scale).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import type { Graph } from '../../src/ir/graph.js';
import { randomWeights, type WeightTensor } from '../../src/ir/weights.js';
import { readCheckpoint } from '../../src/runtime/checkpoint.js';
import type { Dataset } from '../../src/runtime/data/dataset.js';
import { createEngine, trainModel, TrainingError, type TrainOptions } from '../../src/runtime/tfjs/index.js';
import { selectLayers } from '../../src/runtime/tfjs/layer-groups.js';
import { compileSpec, renderAll } from '../../src/testing.js';

const specs = path.join(path.dirname(fileURLToPath(import.meta.url)), 'specs');

/** A fine-tuning spec next to pretrain.cnn, so its `from "pretrain.cnn"` resolves. */
function fineTuningGraph(freeze: string, train = ''): Graph {
  const text = [
    'model Tune {',
    '  input image: f32[N, 1, 28, 28]',
    '  backbone = from "pretrain.cnn" take stem..stage2 (image)',
    '  head = backbone -> dense(5)',
    '  output head',
    freeze ? `  freeze ${freeze}` : '',
    train ? `  train { ${train} }` : '',
    '}',
  ].join('\n');
  const result = compileSpec(text, { file: path.join(specs, 'tune.cnn') });
  if (!result.ok || !result.graph) throw new Error(renderAll(result));
  return result.graph;
}

function syntheticData(count: number, seed: number): Dataset {
  const images = new Float32Array(count * 28 * 28);
  let state = seed;
  for (let i = 0; i < images.length; i++) {
    state = (state * 1103515245 + 12345) % 2147483648;
    images[i] = state / 2147483648;
  }
  const labels = Int32Array.from({ length: count }, (_, i) => i % 5);
  return { images, labels, shape: [1, 28, 28], count };
}

function sameBits(a: WeightTensor, b: WeightTensor): boolean {
  return Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength).equals(Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength));
}

async function train(graph: Graph, weights: Map<string, WeightTensor>, options: Partial<TrainOptions>, onEpoch?: (weights: Map<string, WeightTensor>) => void) {
  const engine = await createEngine(graph, weights, { seed: 3 });
  try {
    await trainModel(engine, syntheticData(64, 5), { epochs: 2, batchSize: 32, seed: 3, optimizer: { kind: 'adam', learningRate: 1e-2 }, ...options }, { onEpochEnd: async () => onEpoch?.(await engine.getWeights()) });
    return await engine.getWeights();
  } finally {
    engine.dispose();
  }
}

async function cli(...args: string[]): Promise<{ code: number; output: string }> {
  const lines: string[] = [];
  const code = await main(['node', 'convspec', ...args], { out: (t) => lines.push(t), err: (t) => lines.push(t) });
  return { code, output: lines.join('\n') };
}

describe('freeze targets over taken layers', () => {
  const frozenOf = (freeze: string) =>
    fineTuningGraph(freeze)
      .nodes.filter((n) => n.frozen)
      .map((n) => n.name);
  const backbone = fineTuningGraph('').nodes.filter((n) => n.name !== 'head.dense1').map((n) => n.name);

  it('freeze <take name> freezes every layer the take brought in, and nothing else', () => {
    expect(frozenOf('backbone')).toEqual(backbone);
  });
  it('freeze by range across the taken scopes, by scope name and by glob', () => {
    expect(frozenOf('stem..stage1')).toEqual(backbone.filter((n) => n.startsWith('stem.') || n.startsWith('stage1.')));
    expect(frozenOf('stage2')).toEqual(backbone.filter((n) => n.startsWith('stage2.')));
    expect(frozenOf('"stage*.bn*"')).toEqual(['stage1.bn1', 'stage2.bn1']);
  });
  it('the runtime resolves the same targets for unfreeze and learning-rate groups', () => {
    const graph = fineTuningGraph('backbone');
    expect([...selectLayers(graph, 'stem..stage1')]).toEqual(backbone.filter((n) => n.startsWith('stem.') || n.startsWith('stage1.')));
    expect([...selectLayers(graph, 'backbone')]).toEqual([]); // a take name is the spec's; at run time the layers' own names count
    expect([...selectLayers(graph, 'bn')]).toEqual(['stem.bn1', 'stage1.bn1', 'stage2.bn1']);
  });
});

describe('frozen layers in training', () => {
  it('a frozen batch norm uses its running statistics in training mode; an unfrozen one does not', async () => {
    const frozen = fineTuningGraph('backbone');
    const weights = randomWeights(frozen, 4);
    const x = syntheticData(8, 9);
    const feeds = { image: { data: x.images, dims: [8, 1, 28, 28] } };
    for (const [graph, same] of [
      [frozen, true],
      [fineTuningGraph(''), false],
    ] as const) {
      const engine = await createEngine(graph, weights, { backend: 'cpu' });
      const training = (await engine.predict(feeds, { training: true }))['head']!.data;
      const inference = (await engine.predict(feeds, { training: false }))['head']!.data;
      engine.dispose();
      expect(Buffer.from(training.buffer).equals(Buffer.from(inference.buffer))).toBe(same);
    }
  });

  it('unfreeze: [[1, "stage2"]] — stage2 is untouched in epoch 1 and trains from epoch 2; its BN statistics stay', async () => {
    const graph = fineTuningGraph('backbone', 'unfreeze: [[1, "stage2"]]');
    expect(graph.training['unfreeze']).toEqual([[1, 'stage2']]);
    const initial = randomWeights(graph, 4);
    const epochs: Map<string, WeightTensor>[] = [];
    const final = await train(graph, initial, { unfreeze: graph.training['unfreeze'] }, (w) => epochs.push(w));
    expect(epochs).toHaveLength(2);
    const changed = (w: Map<string, WeightTensor>, name: string) => !sameBits(w.get(name)!, initial.get(name)!);
    for (const name of ['stage2.conv1.weight', 'stage2.bn1.weight', 'stage2.bn1.bias']) {
      expect(changed(epochs[0]!, name), `${name} after epoch 1`).toBe(false);
      expect(changed(final, name), `${name} after epoch 2`).toBe(true);
    }
    for (const name of ['stage2.bn1.running_mean', 'stage2.bn1.running_var', 'stem.conv1.weight', 'stem.bn1.running_var', 'stage1.conv1.weight', 'stage1.bn1.weight']) {
      expect(changed(final, name), name).toBe(false);
    }
    expect(changed(epochs[0]!, 'head.dense1.weight')).toBe(true);
  });

  it('learning-rate scales: with SGD the first update of a group at scale 0.5 is half the unscaled one', async () => {
    const base = fineTuningGraph('');
    const initial = randomWeights(base, 4);
    const sgd: Partial<TrainOptions> = { epochs: 1, batchSize: 64, shuffle: false, optimizer: { kind: 'sgd', learningRate: 0.05 } };
    const plain = await train(base, initial, sgd);
    const fromSpec = await train(fineTuningGraph('', 'unfreeze: [[0, "stage2", 0.5]]'), initial, { ...sgd, unfreeze: [[0, 'stage2', 0.5]] });
    const fromOption = await train(base, initial, { ...sgd, learningRateScales: [{ target: 'stage2', scale: 0.5 }] });
    for (const scaled of [fromSpec, fromOption]) {
      for (const name of ['stage2.conv1.weight', 'stage2.bn1.weight']) {
        const w0 = initial.get(name)!.data;
        const full = plain.get(name)!.data;
        const half = scaled.get(name)!.data;
        let largest = 0;
        let worst = 0;
        for (let i = 0; i < w0.length; i++) {
          largest = Math.max(largest, Math.abs(full[i]! - w0[i]!));
          worst = Math.max(worst, Math.abs(half[i]! - w0[i]! - 0.5 * (full[i]! - w0[i]!)));
        }
        expect(largest, name).toBeGreaterThan(1e-4);
        expect(worst / largest, name).toBeLessThan(1e-4);
      }
      // Other groups get exactly the unscaled update.
      for (const name of ['head.dense1.weight', 'stem.conv1.weight']) expect(sameBits(scaled.get(name)!, plain.get(name)!), name).toBe(true);
    }
  });

  describe('resume', () => {
    let dir: string;
    beforeAll(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'convspec-unfreeze-'))));
    afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

    it('a run resumed after epoch 1 of an unfreeze schedule ends with the uninterrupted run’s weights', async () => {
      const graph = fineTuningGraph('backbone', 'unfreeze: [[1, "stage2", 0.1]]');
      const initial = randomWeights(graph, 4);
      const options: Partial<TrainOptions> = { unfreeze: graph.training['unfreeze'], learningRateScales: [{ target: 'head', scale: 2 }] };
      const whole = await train(graph, initial, options);
      const checkpoint = path.join(dir, 'checkpoint.safetensors');
      await train(graph, initial, { ...options, epochs: 1, checkpoint: { path: checkpoint } });
      const saved = readCheckpoint(checkpoint);
      expect([...saved.optimizerState.keys()]).toEqual(expect.arrayContaining(['exp_avg.stage2.conv1.weight', 'exp_avg.head.dense1.weight']));
      const resumed = await train(graph, initial, { ...options, resume: saved });
      for (const [name, tensor] of whole) expect(sameBits(resumed.get(name)!, tensor), name).toBe(true);
    });
  });

  it('reports bad schedules before training', async () => {
    const graph = fineTuningGraph('backbone');
    const weights = randomWeights(graph, 4);
    const attempt = (options: Partial<TrainOptions>) => train(graph, weights, options);
    await expect(attempt({ unfreeze: [[1, 'stage9']] })).rejects.toThrow(/unfreeze: 'stage9' names no layer/);
    await expect(attempt({ unfreeze: [[1, 'head']] })).rejects.toThrow(/'head' are not frozen/);
    await expect(attempt({ unfreeze: 3 })).rejects.toThrow(TrainingError);
    await expect(attempt({ unfreeze: [[-1, 'stage2']] })).rejects.toThrow(/epochs ≥ 0/);
    await expect(attempt({ learningRateScales: [{ target: 'nothing', scale: 0.1 }] })).rejects.toThrow(/'nothing' names no layer/);
  });
});

describe('the CLI', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'convspec-unfreeze-cli-'));
    fs.copyFileSync(path.join(specs, 'pretrain.cnn'), path.join(dir, 'pretrain.cnn'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const spec = (train: string) => {
    const file = path.join(dir, 'tune.cnn');
    fs.writeFileSync(
      file,
      `model Tune {\n  input image: f32[N, 1, 28, 28]\n  backbone = from "pretrain.cnn" take stem..stage2 (image)\n  head = backbone -> dense(5)\n  output head\n  freeze backbone\n  train { classes: [5, 6, 7, 8, 9]\n ${train} }\n}\n`,
    );
    return file;
  };

  it('a bad unfreeze schedule is an input error (exit 1, CNN8007) before any training', async () => {
    const run = await cli('train', spec('unfreeze: [[1, "stage9"]]'), '-o', path.join(dir, 'out1'), '--data', 'fashion-mnist-subset', '--epochs', '1');
    expect(run.code).toBe(1);
    expect(run.output).toMatch(/error CNN8007: unfreeze: 'stage9' names no layer with parameters in Tune/);
  });

  it('--lr-scale takes TARGET=X; anything else is a usage error (exit 2)', async () => {
    const file = spec('unfreeze: [[1, "stage2"]]');
    expect((await cli('train', file, '-o', path.join(dir, 'out2'), '--lr-scale', 'stage2=fast')).code).toBe(2);
    expect((await cli('train', file, '-o', path.join(dir, 'out2'), '--lr-scale', 'stage2')).code).toBe(2);
    const run = await cli('train', file, '-o', path.join(dir, 'out3'), '--data', 'fashion-mnist-subset', '--epochs', '2', '--batch', '256', '--lr-scale', 'stage2=0.1', '--lr-scale', 'head=2');
    expect(run.output).not.toMatch(/error/);
    expect(run.code).toBe(0);
  });
});

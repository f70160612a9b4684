/**
 * Transfer learning end to end on Fashion-MNIST (the embedded subset, so the test runs everywhere in well under a
 * minute on two cores):
 *   1. `convspec train pretrain.cnn`: a small CNN on classes 0–4 (`classes: [0, 1, 2, 3, 4]`, relabelled);
 *   2. finetune.cnn takes its backbone (`from "pretrain.cnn" take stem..stage2`), freezes it (`freeze backbone`)
 *      and adds a new head for classes 5–9; the pretrained weights load by name, partially (the new head keeps its
 *      initial values, the old head's tensors are reported unused);
 *   3. after fine-tuning, every frozen tensor — conv kernels, BN γ/β and running statistics — is bit-identical and
 *      only the head changed; test accuracy on classes 5–9 is well above chance (20 %) and above the same head
 *      trained on a random frozen backbone; and a frozen-backbone epoch is faster than an epoch of full training
 *      (both measured here, one after the other).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkSpec } from '../../src/check.js';
import { main } from '../../src/cli/main.js';
import type { Graph } from '../../src/ir/graph.js';
import { graphParameters } from '../../src/ir/params.js';
import { initializeWeights, type WeightTensor } from '../../src/ir/weights.js';
import { filterClasses, loadFashionMnist, type Dataset } from '../../src/runtime/data/dataset.js';
import { createEngine, evaluate, readTrainingSettings, trainModel } from '../../src/runtime/tfjs/index.js';
import { loadWeightsFile } from '../../src/runtime/weights-file.js';

const specs = path.join(path.dirname(fileURLToPath(import.meta.url)), 'specs');

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(['node', 'convspec', ...args], { out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, stdout: out.join('\n'), stderr: err.join('\n') };
}

function classesOf(graph: Graph): number[] {
  const classes = graph.training['classes'];
  if (!Array.isArray(classes)) throw new Error('the spec has no classes list');
  return classes as number[];
}

function data(graph: Graph, split: 'train' | 'test'): Dataset {
  return filterClasses(loadFashionMnist(split, { forceSubset: true }), classesOf(graph), { relabel: true });
}

function sameBits(a: WeightTensor, b: WeightTensor): boolean {
  return Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength).equals(Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength));
}

/** Trains the fine-tuning graph from `weights`; returns the trained weights, test accuracy and epoch times. */
async function fineTune(graph: Graph, weights: Map<string, WeightTensor>, epochs?: number) {
  const { settings, problems } = readTrainingSettings(graph.training);
  expect(problems).toEqual([]);
  const engine = await createEngine(graph, weights, { seed: settings.seed ?? 0 });
  try {
    const history = await trainModel(engine, data(graph, 'train'), { ...settings, validation: undefined, epochs: epochs ?? settings.epochs ?? 2, batchSize: settings.batchSize ?? 64 });
    const test = await evaluate(engine, data(graph, 'test'));
    return { weights: await engine.getWeights(), accuracy: test.accuracy, seconds: history.epochs.map((e) => e.seconds) };
  } finally {
    engine.dispose();
  }
}

describe('transfer learning on Fashion-MNIST: pretrained frozen backbone, new head', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'convspec-transfer-'));
    for (const file of ['pretrain.cnn', 'finetune.cnn']) fs.copyFileSync(path.join(specs, file), path.join(dir, file));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('pretrains on classes 0–4, fine-tunes a new head on 5–9 over the frozen backbone, and beats a random backbone', async () => {
    // 1. Pretraining through the CLI, classes 0–4 relabelled by the spec's `classes` setting.
    const pretrain = await cli('train', path.join(dir, 'pretrain.cnn'), '-o', path.join(dir, 'pretrain'), '--data', 'fashion-mnist-subset');
    expect(pretrain.stderr).not.toMatch(/error/);
    expect(pretrain.code).toBe(0);
    const pretrained = path.join(dir, 'pretrain', 'Pretrain.safetensors');
    expect(fs.existsSync(pretrained)).toBe(true);
    const pretrainAccuracy = Number(/test accuracy ([\d.]+)%/.exec(pretrain.stdout)![1]) / 100;
    expect(pretrainAccuracy).toBeGreaterThan(0.5);

    // 2. The fine-tuning spec: the taken backbone keeps its names and is frozen; the head is new.
    const checked = checkSpec(path.join(dir, 'finetune.cnn'));
    expect(checked.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    const graph = checked.graph!;
    expect(classesOf(graph)).toEqual([5, 6, 7, 8, 9]);
    const frozen = graph.nodes.filter((n) => n.frozen).map((n) => n.name);
    expect(frozen).toContain('stem.conv1');
    expect(frozen).toContain('stage2.bn1');
    expect(graph.nodes.filter((n) => !n.frozen).map((n) => n.name)).toEqual(['head.dense1']);

    const loaded = loadWeightsFile(pretrained, graph, { partial: true, seed: 2 });
    expect(loaded.weights).toBeDefined();
    const backboneParameters = graphParameters(graph.nodes).filter((p) => p.node !== 'head.dense1').map((p) => p.name);
    expect([...loaded.loaded].sort()).toEqual([...backboneParameters].sort());
    const reported = loaded.diagnostics.map((d) => `${d.severity} ${d.code} ${d.message}`);
    expect(reported).toEqual(
      expect.arrayContaining([
        "note CNN8002 weights lack 'head.dense1.weight' (expected shape [5, 64])",
        "note CNN8002 weights lack 'head.dense1.bias' (expected shape [5])",
        "warning CNN8004 weight 'logits.dense1.weight' [5, 64] matches no parameter",
        "warning CNN8004 weight 'logits.dense1.bias' [5] matches no parameter",
      ]),
    );
    expect(reported).toHaveLength(4);
    const initial = loaded.weights!;

    // 3. Fine-tuning: frozen tensors bit-identical (BN running statistics too), the head changed.
    const tuned = await fineTune(graph, initial);
    for (const name of backboneParameters) expect(sameBits(tuned.weights.get(name)!, initial.get(name)!), name).toBe(true);
    for (const name of ['head.dense1.weight', 'head.dense1.bias']) expect(sameBits(tuned.weights.get(name)!, initial.get(name)!), name).toBe(false);

    // The same head on a random frozen backbone.
    const random = await fineTune(graph, initializeWeights(graph, 2));
    // An epoch of full training (nothing frozen) from the pretrained weights, measured right after.
    const unfrozen: Graph = { ...graph, nodes: graph.nodes.map((n) => ({ ...n, frozen: false })) };
    const full = await fineTune(unfrozen, initial, 1);

    const frozenEpoch = Math.min(...tuned.seconds);
    const fullEpoch = Math.min(...full.seconds);
    console.log(
      `transfer: pretrain accuracy (classes 0–4) ${(pretrainAccuracy * 100).toFixed(1)}%; fine-tuned head on classes 5–9 ${(tuned.accuracy * 100).toFixed(1)}% ` +
        `(random frozen backbone ${(random.accuracy * 100).toFixed(1)}%, chance 20%); epoch ${frozenEpoch.toFixed(2)} s frozen vs ${fullEpoch.toFixed(2)} s full training`,
    );
    expect(tuned.accuracy).toBeGreaterThan(0.5);
    expect(tuned.accuracy).toBeGreaterThan(random.accuracy + 0.1);
    expect(frozenEpoch).toBeLessThan(fullEpoch);
  });

  it('fine-tunes through the CLI: train --weights loads the backbone partially and reports the rest', async () => {
    const pretrained = path.join(dir, 'pretrain', 'Pretrain.safetensors');
    if (!fs.existsSync(pretrained)) expect((await cli('train', path.join(dir, 'pretrain.cnn'), '-o', path.join(dir, 'pretrain'), '--data', 'fashion-mnist-subset', '--epochs', '1')).code).toBe(0);
    const run = await cli('train', path.join(dir, 'finetune.cnn'), '-o', path.join(dir, 'finetune'), '--data', 'fashion-mnist-subset', '--epochs', '1', '--weights', pretrained);
    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(/note CNN8002: weights lack 'head\.dense1\.weight'/);
    expect(run.stderr).toMatch(/warning CNN8004: weight 'logits\.dense1\.weight'/);
    expect(run.stderr).toMatch(/loaded 15 tensors/);
    expect(run.stdout).toMatch(/Finetune: test accuracy/);
  });
});

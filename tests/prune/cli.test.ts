/**
 * `convspec prune` end to end on a tiny spec with one fine-tuning epoch on the embedded Fashion-MNIST subset:
 * structured pruning shrinks the graph (the written spec re-elaborates to it, MACs and the ONNX file drop);
 * unstructured pruning reaches the asked sparsity in every layer after fine-tuning with the schedule.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkSpec } from '../../src/check.js';
import { initializeWeights } from '../../src/ir/weights.js';
import { readSafetensors, writeWeightsFile } from '../../src/runtime/checkpoint.js';
import { runCli, temporaryDirectory, TINY_SPEC } from '../quantize/helpers.js';

const dir = temporaryDirectory('prune-cli');
const spec = path.join(dir, 'tiny.cnn');
const weights = path.join(dir, 'tiny.safetensors');

beforeAll(() => {
  fs.writeFileSync(spec, TINY_SPEC);
  writeWeightsFile(weights, initializeWeights(checkSpec(spec).graph!, 1));
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

interface Figures {
  params: number;
  nonZeroParams: number;
  macs: number;
  nonZeroMacs: number;
  onnxBytes: number;
  accuracy: number;
}

interface Report {
  mode: string;
  before: Figures;
  after: Figures;
  ratios: { macs: number; params: number; onnxBytes: number };
  finetune: { epochs: number; steps: number; schedule?: { finalSparsity: number; endStep: number } };
  specReElaborates: boolean;
  batchNormRecalibration?: { samples: number; layers: number };
  layers: string[];
}

const common = ['--weights', weights, '--data', 'fashion-mnist-subset', '--finetune-epochs', '1', '--eval-samples', '300', '--no-latency', '--backend', 'wasm'];

describe('convspec prune', () => {
  it('structured: half the filters go, the spec re-elaborates, MACs and the ONNX file shrink', async () => {
    const out = path.join(dir, 'structured');
    const run = await runCli(['prune', spec, ...common, '--sparsity', '0.5', '--structured', '-o', out]);
    expect(run.code, run.stderr).toBe(0);
    const report = JSON.parse(fs.readFileSync(path.join(out, 'Tiny.prune.json'), 'utf8')) as Report;
    expect(report.mode).toBe('structured');
    expect(report.specReElaborates).toBe(true);
    expect(report.ratios.macs).toBeLessThan(0.6);
    expect(report.after.params).toBeLessThan(report.before.params);
    expect(report.after.onnxBytes).toBeLessThan(report.before.onnxBytes);
    expect(report.finetune.steps).toBeGreaterThan(0);
    // fine-tuning trained as `convspec train` does on a CPU backend
    expect(run.stderr).toMatch(/^fine-tuning's forward and backward: ONNX Runtime$/m);
    // the batch norms of the pruned network were re-estimated on training data (after fine-tuning, last)
    expect(report.batchNormRecalibration).toEqual({ samples: 2048, layers: 2 });
    // the written spec is a valid spec with the pruned widths, and the weights fit it
    const pruned = checkSpec(path.join(out, 'Tiny.cnn'));
    expect(pruned.ok).toBe(true);
    expect(pruned.graph!.nodes.find((n) => n.name === 'stem.conv1')).toMatchObject({ op: 'conv', filters: 4 });
    const loaded = readSafetensors(path.join(out, 'Tiny.safetensors'));
    expect(loaded.tensors.get('stem.conv1.weight')!.shape).toEqual([4, 1, 3, 3]);
    expect(fs.statSync(path.join(out, 'Tiny.onnx')).size).toBe(report.after.onnxBytes);
    expect(run.stdout).toMatch(/MACs/);
  });

  it('unstructured: every conv and dense layer ends at the asked sparsity after scheduled fine-tuning', async () => {
    const out = path.join(dir, 'unstructured');
    const run = await runCli(['prune', spec, ...common, '--sparsity', '0.8', '-o', out]);
    expect(run.code, run.stderr).toBe(0);
    const report = JSON.parse(fs.readFileSync(path.join(out, 'Tiny.prune.json'), 'utf8')) as Report;
    expect(report.mode).toBe('unstructured');
    expect(report.finetune.schedule).toMatchObject({ finalSparsity: 0.8 });
    // the masks, re-applied to the engine's weights after every step, hold with gradients from ONNX Runtime too
    expect(run.stderr).toMatch(/^fine-tuning's forward and backward: ONNX Runtime$/m);
    expect(report.after.macs).toBe(report.before.macs); // the graph is unchanged
    expect(report.after.nonZeroMacs).toBeLessThan(0.3 * report.before.nonZeroMacs);
    const loaded = readSafetensors(path.join(out, 'Tiny.safetensors'));
    for (const name of ['stem.conv1.weight', 'b.conv1.weight', 'logits.conv1.weight', 'logits.dense1.weight']) {
      const data = loaded.tensors.get(name)!.data;
      const zeros = data.filter((v) => v === 0).length;
      expect(zeros, name).toBe(data.length - Math.round(data.length * 0.2));
    }
    expect(report.specReElaborates).toBe(true);
  });

  it('without fine-tuning, batch-norm statistics are still re-estimated on the training split, and written', async () => {
    const out = path.join(dir, 'one-shot');
    const run = await runCli(['prune', spec, ...common.filter((a, i, all) => a !== '--finetune-epochs' && all[i - 1] !== '--finetune-epochs'), '--sparsity', '0.5', '-o', out]);
    expect(run.code, run.stderr).toBe(0);
    const report = JSON.parse(fs.readFileSync(path.join(out, 'Tiny.prune.json'), 'utf8')) as Report;
    expect(report.finetune.steps).toBe(0);
    expect(report.batchNormRecalibration).toEqual({ samples: 2048, layers: 2 });
    const before = readSafetensors(weights).tensors;
    const after = readSafetensors(path.join(out, 'Tiny.safetensors')).tensors;
    for (const name of ['stem.bn1.running_mean', 'stem.bn1.running_var', 'b.bn1.running_mean']) expect(after.get(name)!.data, name).not.toEqual(before.get(name)!.data);
    expect(after.get('stem.bn1.weight')!.data).toEqual(before.get('stem.bn1.weight')!.data);
  });

  it('a bad sparsity is a usage error', async () => {
    const run = await runCli(['prune', spec, '--weights', weights, '--sparsity', '1.5', '-o', path.join(dir, 'bad')]);
    expect(run.code).toBe(2);
  });
});

/**
 * The QDQ export: it passes the official ONNX checker, ONNX Runtime runs it with its int8 kernels (QLinearConv,
 * QLinearAdd, QGemm… in the optimised graph, no float Conv left), and its outputs agree with the fake-quant tfjs
 * engine — to float rounding when ORT executes the QDQ graph as written, within a few quantization steps when
 * it runs the fused integer kernels. Exclusions keep float weights in the file.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkManyOnnx } from '../../src/codegen/onnx-checker.js';
import { decodeModel } from '../../src/codegen/onnx-model.js';
import { emitOnnx } from '../../src/codegen/onnx.js';
import { emitQdqOnnx } from '../../src/codegen/onnx-qdq.js';
import type { Graph } from '../../src/ir/graph.js';
import { randomWeights, type Weights } from '../../src/ir/weights.js';
import { annotateGraph, planQuantization, quantizationTargets } from '../../src/passes/quantize.js';
import { calibrationRange } from '../../src/passes/quantize-calibration.js';
import { OrtEngine } from '../../src/runtime/ort/engine.js';
import { optimizedOpCounts } from '../../src/runtime/ort/measure.js';
import { createEngine } from '../../src/runtime/tfjs/engine.js';
import { collectActivationStatistics, FakeQuantEngine, layerErrors } from '../../src/runtime/tfjs/fake-quant.js';
import { compile, inferenceGraph, randomDataset, temporaryDirectory } from './helpers.js';

const SPEC = `model Q {
  input x: f32[N, 3, 12, 12]
  a = x -> conv(8, 3, pad: 1, bias: false) -> bn -> relu
  b = a -> conv(8, 3, pad: 1, bias: false) -> bn
  c = relu(a + b)
  d = c -> maxpool(2) -> conv(16, 3, stride: 2, pad: 1) -> relu
  y = d -> globalavgpool -> flatten -> dense(5)
  output y
}`;

const calibration = randomDataset(64, [3, 12, 12], 1);
const test = randomDataset(32, [3, 12, 12], 2);
const mixedInputs = randomDataset(8, [3, 16, 16], 4);
let graph: Graph;
let weights: Weights;
let quantized: Graph;
let fakeQuant: FakeQuantEngine;
let expected: Float32Array;
const dir = temporaryDirectory('qdq');

async function annotate(exclude: readonly string[] = []): Promise<Graph> {
  const engine = await createEngine(graph, weights, { backend: 'cpu' });
  const targets = quantizationTargets(graph, { exclude });
  const { statistics } = await collectActivationStatistics(engine, calibration, targets, { batches: 2, batchSize: 32 });
  engine.dispose();
  const ranges = new Map([...statistics].map(([t, s]) => [t, calibrationRange(s, 'minmax')]));
  const plan = planQuantization(graph, ranges, { exclude });
  if ('problems' in plan) throw new Error(plan.problems.join('; '));
  return annotateGraph(graph, plan.annotations);
}

async function runOrt(bytes: Uint8Array, level: 'disabled' | 'all'): Promise<Float32Array> {
  const engine = await OrtEngine.create(bytes, { graphOptimizationLevel: level, intraOpThreads: 1 });
  const out = await engine.run({ x: { data: test.images, dims: [test.count, 3, 12, 12] } });
  await engine.dispose();
  return out['y']!.data;
}

beforeAll(async () => {
  const compiled = compile(SPEC);
  ({ graph, weights } = inferenceGraph(compiled, randomWeights(compiled, 3)));
  quantized = await annotate();
  fakeQuant = await FakeQuantEngine.create(quantized, weights, { backend: 'cpu' });
  expected = (await fakeQuant.predict({ x: { data: test.images, dims: [test.count, 3, 12, 12] } }))['y']!.data;
});

afterAll(() => {
  fakeQuant?.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Largest |a − b| relative to the largest |a|. */
function relativeError(a: Float32Array, b: Float32Array): number {
  let error = 0;
  let magnitude = 0;
  for (let i = 0; i < a.length; i++) {
    error = Math.max(error, Math.abs(a[i]! - b[i]!));
    magnitude = Math.max(magnitude, Math.abs(a[i]!));
  }
  return error / magnitude;
}

describe('QDQ ONNX export', () => {
  it('passes the official checker (uint8 and int8 activations) and is smaller than the float file', async () => {
    const u8 = emitQdqOnnx(quantized, weights);
    const s8 = emitQdqOnnx(quantized, weights, { activationType: 'int8' });
    const float = emitOnnx(graph, weights);
    expect(u8.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    const files = [path.join(dir, 'u8.onnx'), path.join(dir, 's8.onnx')];
    fs.writeFileSync(files[0]!, u8.bytes);
    fs.writeFileSync(files[1]!, s8.bytes);
    const verdicts = await checkManyOnnx(files);
    for (const v of verdicts) {
      if (v.ok === null) console.warn(`official checker unavailable: ${v.reason}`);
      else expect(v, v.ok ? '' : v.message).toMatchObject({ ok: true });
    }
    expect(u8.bytes.length).toBeLessThan(float.bytes.length);
    expect(u8.summary).toMatchObject({ int8WeightNodes: 4, foldedActivations: 3, clampedBiasValues: 0 });
    // the file names its tensors after the spec and holds int8 weights, not float ones
    const model = decodeModel(u8.bytes);
    const initializers = new Set(model.graph.initializer.map((t) => t.name));
    expect(initializers.has('a.conv1.weight/q')).toBe(true);
    expect(initializers.has('a.conv1.weight')).toBe(false);
    expect(model.graph.node.some((n) => n.opType === 'Relu')).toBe(false);
    expect(Number(model.opsetImport[0]!.version)).toBeGreaterThanOrEqual(13);
  });

  it('is deterministic', () => {
    expect(Buffer.from(emitQdqOnnx(quantized, weights).bytes).equals(Buffer.from(emitQdqOnnx(quantized, weights).bytes))).toBe(true);
  });

  it('ONNX Runtime running the QDQ graph as written equals the fake-quant engine', async () => {
    const actual = await runOrt(emitQdqOnnx(quantized, weights).bytes, 'disabled');
    expect(relativeError(expected, actual)).toBeLessThan(1e-3);
  });

  it('ONNX Runtime fuses it into int8 kernels, within a few quantization steps of the fake-quant engine', async () => {
    const bytes = emitQdqOnnx(quantized, weights).bytes;
    const kernels = await optimizedOpCounts(bytes, 1);
    expect(kernels['com.microsoft.QLinearConv']).toBe(3);
    expect(kernels['com.microsoft.QLinearAdd']).toBe(1);
    expect(kernels['com.microsoft.QGemm']).toBe(1);
    expect(kernels['com.microsoft.QLinearGlobalAveragePool']).toBe(1);
    expect(kernels['Conv'] ?? 0).toBe(0);
    expect(kernels['Gemm'] ?? 0).toBe(0);
    const actual = await runOrt(bytes, 'all');
    // integer kernels requantize with fixed-point multipliers: a code may move by one step now and then
    // (here they agree to float rounding; on trained models a few codes differ)
    expect(relativeError(expected, actual)).toBeLessThan(0.02);
    let close = 0;
    for (let i = 0; i < actual.length; i++) if (Math.abs(actual[i]! - expected[i]!) <= 0.01 * Math.abs(expected[i]!) + 1e-3) close++;
    expect(close / actual.length).toBeGreaterThan(0.95);
  });

  it('excluded layers keep float weights and run as float ops in ONNX Runtime', async () => {
    const partial = await annotate(['d.*']);
    const bytes = emitQdqOnnx(partial, weights).bytes;
    const initializers = new Set(decodeModel(bytes).graph.initializer.map((t) => t.name));
    expect(initializers.has('d.conv1.weight')).toBe(true);
    expect(initializers.has('a.conv1.weight/q')).toBe(true);
    const kernels = await optimizedOpCounts(bytes, 1);
    expect(kernels['com.microsoft.QLinearConv']).toBe(2);
    const floatConvs = Object.entries(kernels).filter(([op]) => /(^|\.)(Fused)?Conv$/.test(op)).reduce((s, [, n]) => s + n, 0);
    expect(floatConvs).toBe(1);
  });

  it('reports a sane per-layer SQNR for 8 bits', async () => {
    const floatEngine = await createEngine(graph, weights, { backend: 'cpu' });
    const names = quantized.nodes.filter((n) => n.quantization).map((n) => n.name);
    const errors = await layerErrors(floatEngine, fakeQuant, test, names, { batches: 1, batchSize: 32 });
    floatEngine.dispose();
    for (const e of errors) {
      expect(e.sqnrDb, e.tensor).toBeGreaterThan(20);
      expect(e.sqnrDb, e.tensor).toBeLessThan(60);
    }
  });
});

describe('QDQ export of the other int8 ops', () => {
  const MIXED = `model M {
  input x: f32[N, 3, 16, 16]
  a = x -> conv(8, 3, stride: 2, pad: 1, bias: false) -> bn -> relu6
  d = a -> conv(8, 3, pad: 1, groups: 8, bias: false) -> bn -> relu
  p = d -> conv(8, 1, bias: false) -> bn
  g = p -> globalavgpool -> conv(4, 1) -> relu -> conv(8, 1) -> sigmoid
  s = p * g
  c = concat(s, a) -> avgpool(2) -> leaky_relu(0.1)
  y = c -> flatten -> dense(5)
  output y
}`;

  it('depthwise conv, ReLU6, squeeze-and-excitation (mul, sigmoid), concat, average pool and leaky ReLU all fuse and agree', async () => {
    const compiled = compile(MIXED);
    const { graph: g, weights: w } = inferenceGraph(compiled, randomWeights(compiled, 3));
    const data = randomDataset(64, [3, 16, 16], 1);
    const engine = await createEngine(g, w, { backend: 'cpu' });
    const { statistics } = await collectActivationStatistics(engine, data, quantizationTargets(g), { batches: 2, batchSize: 32 });
    engine.dispose();
    const plan = planQuantization(g, new Map([...statistics].map(([t, s]) => [t, calibrationRange(s, 'minmax')])));
    if ('problems' in plan) throw new Error(plan.problems.join('; '));
    const q = annotateGraph(g, plan.annotations);
    const engineQ = await FakeQuantEngine.create(q, w, { backend: 'cpu' });
    const input = { x: { data: mixedInputs.images, dims: [8, 3, 16, 16] } };
    const fake = (await engineQ.predict(input))['y']!.data;
    engineQ.dispose();
    const bytes = emitQdqOnnx(q, w).bytes;
    const kernels = await optimizedOpCounts(bytes, 1);
    for (const op of ['QLinearConv', 'QLinearMul', 'QLinearSigmoid', 'QLinearConcat', 'QLinearAveragePool', 'QLinearLeakyRelu', 'QLinearGlobalAveragePool', 'QGemm']) {
      expect(kernels[`com.microsoft.${op}`], op).toBeGreaterThan(0);
    }
    expect(kernels['com.microsoft.QLinearConv']).toBe(5);
    const ort = await OrtEngine.create(bytes, { graphOptimizationLevel: 'all', intraOpThreads: 1 });
    const actual = (await ort.run({ x: { data: input.x.data, dims: input.x.dims } }))['y']!.data;
    await ort.dispose();
    expect(relativeError(fake, actual)).toBeLessThan(0.02);
  });
});

/**
 * Gradients of every op lowering: for a tiny spec per case, the gradient of L = Σ y ⊙ R (R a fixed random
 * tensor over the output) with respect to the input and every trainable parameter
 *   - on the wasm backend equals the cpu backend's (tight tolerance: same lowering, different kernels, so this
 *     checks the wasm gradient kernels the engine relies on), and
 *   - on the cpu backend equals central finite differences of L at a few random coordinates of each tensor
 *     (float32: ε = 1e-3, relative tolerance 2e-2), which checks the lowering and tfjs's gradient rules together.
 * Batch norm runs in training mode (batch statistics), dropout with a fixed mask seed.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { elaborate } from '../../src/elaborate/elaborate.js';
import type { Graph } from '../../src/ir/graph.js';
import { randomWeights, type WeightTensor } from '../../src/ir/weights.js';
import { createMulberry32, normalSample } from '../../src/random.js';
import { fromTfjsLayout, TfjsEngine, toInternal, toLogical } from '../../src/runtime/tfjs/engine.js';

function compile(input: string, chain: string): Graph {
  const text = `model G {\n  input x: f32[${input}]\n  y = x -> ${chain}\n  output y\n}`;
  const { graph, diagnostics } = elaborate('g.cnn', { text });
  const errors = diagnostics.filter((d) => d.severity === 'error');
  if (!graph || errors.length > 0) throw new Error(`spec does not elaborate:\n${text}\n${errors.map((d) => d.message).join('\n')}`);
  return graph;
}

function normals(count: number, seed: number, scale = 1): Float32Array {
  const random = createMulberry32(seed);
  return Float32Array.from({ length: count }, () => normalSample(random) * scale);
}

const FORWARD_SEED = 5;

/** ∂L/∂x (logical layout) and ∂L/∂θ (IR layout) for every trainable parameter θ. */
function analyticGradients(engine: TfjsEngine, x: Float32Array, dims: number[], projection: Float32Array, training: boolean): Map<string, WeightTensor> {
  engine.activate();
  const input = tf.variable(toInternal(tf.tensor(x, dims)), true);
  try {
    const parameters = engine.trainableParameters();
    const { value, grads } = tf.variableGrads(() => {
      const y = toLogical(engine.forward(new Map([['x', input]]), { training, seed: FORWARD_SEED }).get('y')!);
      return tf.sum(tf.mul(y, tf.tensor(projection, y.shape)));
    }, [input, ...parameters.map((p) => p.variable)]);
    const result = new Map<string, WeightTensor>();
    const gx = grads[input.name];
    result.set('x', gx ? { shape: dims, data: Float32Array.from(tf.tidy(() => toLogical(gx)).dataSync()) } : { shape: dims, data: new Float32Array(x.length) });
    for (const p of parameters) {
      const g = grads[p.variable.name];
      result.set(p.spec.name, g ? fromTfjsLayout(g, p.spec.shape) : { shape: p.spec.shape, data: new Float32Array(p.spec.shape.reduce((a, b) => a * b, 1)) });
    }
    tf.dispose([value, ...Object.values(grads)]);
    return result;
  } finally {
    input.dispose();
  }
}

/** L in float64 from a forward pass. */
function objective(engine: TfjsEngine, x: Float32Array, dims: number[], projection: Float32Array, training: boolean): number {
  const y = engine.predictSync({ x: { data: x, dims } }, { training, seed: FORWARD_SEED })['y']!.data;
  let sum = 0;
  for (let i = 0; i < y.length; i++) sum += y[i]! * projection[i]!;
  return sum;
}

function worstRelative(actual: Float32Array, expected: Float32Array): { error: number; index: number } {
  let scale = 1e-6;
  for (const v of expected) scale = Math.max(scale, Math.abs(v));
  let error = 0;
  let index = -1;
  for (let i = 0; i < expected.length; i++) {
    const e = Math.abs(actual[i]! - expected[i]!) / scale;
    if (!(e <= error)) {
      error = e;
      index = i;
    }
  }
  return { error, index };
}

async function checkGradients(input: string, chain: string, training = true): Promise<void> {
  await checkGraphGradients(compile(input, chain), training);
}

async function checkGraphGradients(graph: Graph, training: boolean): Promise<void> {
  const dims = graph.inputs[0]!.shape.map((d) => (typeof d === 'number' ? d : 2));
  const weights = randomWeights(graph, 3);
  const x = normals(dims.reduce((a, b) => a * b, 1), 11);
  const wasm = await TfjsEngine.create(graph, weights, { backend: 'wasm' });
  const cpu = await TfjsEngine.create(graph, weights, { backend: 'cpu' });
  try {
    const outputSize = cpu.predictSync({ x: { data: x, dims } }, { training, seed: FORWARD_SEED })['y']!.data.length;
    const projection = normals(outputSize, 13);
    const onWasm = analyticGradients(wasm, x, dims, projection, training);
    const onCpu = analyticGradients(cpu, x, dims, projection, training);
    for (const [name, expected] of onCpu) {
      const { error, index } = worstRelative(onWasm.get(name)!.data, expected.data);
      expect(error, `${name}[${index}] wasm ${onWasm.get(name)!.data[index]} vs cpu ${expected.data[index]}`).toBeLessThan(1e-4);
    }
    // finite differences on the cpu engine, a few coordinates per tensor
    const random = createMulberry32(17);
    const epsilon = 1e-3;
    for (const [name, gradient] of onCpu) {
      let scale = 0;
      for (const v of gradient.data) scale = Math.max(scale, Math.abs(v));
      const coordinates = new Set<number>();
      for (let k = 0; k < Math.min(5, gradient.data.length); k++) coordinates.add(Math.floor(random() * gradient.data.length));
      for (const i of coordinates) {
        const evaluate = (delta: number): number => {
          if (name === 'x') {
            const shifted = x.slice();
            shifted[i] = shifted[i]! + delta;
            return objective(cpu, shifted, dims, projection, training);
          }
          const original = weights.get(name)!;
          const data = original.data.slice();
          data[i] = data[i]! + delta;
          cpu.setWeights(new Map([[name, { shape: original.shape, data }]]), { partial: true });
          const value = objective(cpu, x, dims, projection, training);
          cpu.setWeights(new Map([[name, original]]), { partial: true });
          return value;
        };
        const numeric = (evaluate(epsilon) - evaluate(-epsilon)) / (2 * epsilon);
        const analytic = gradient.data[i]!;
        const error = Math.abs(numeric - analytic) / Math.max(Math.abs(analytic), 0.05 * scale, 1e-3);
        expect(error, `∂L/∂${name}[${i}]: finite difference ${numeric}, gradient ${analytic}`).toBeLessThan(2e-2);
      }
    }
  } finally {
    wasm.dispose();
    cpu.dispose();
  }
}

const CASES: Array<[title: string, input: string, chain: string, training?: boolean]> = [
  ['conv same stride 2', 'N, 3, 6, 7', 'conv(4, 3, stride: 2, pad: same)'],
  ['conv asymmetric pads', 'N, 3, 6, 5', 'conv(4, [3, 2], stride: [2, 1], pad: [[0, 1], [2, 0]])'],
  ['conv dilation 2 stride 2 (gcd path)', 'N, 2, 9, 8', 'conv(3, 3, stride: 2, dilation: 2, pad: 1)'],
  ['conv dilation 2 stride 3 (coprime path)', 'N, 2, 10, 9', 'conv(3, 3, stride: 3, dilation: 2)'],
  ['conv dilation 3 (space-to-batch)', 'N, 2, 9, 9', 'conv(3, 3, dilation: 3, pad: 3)'],
  ['conv groups 2', 'N, 4, 6, 6', 'conv(6, 3, groups: 2, pad: 1)'],
  ['depthwise stride 2', 'N, 3, 7, 6', 'dwconv(3, stride: 2, pad: same, multiplier: 2)'],
  ['separable, dilated', 'N, 3, 7, 7', 'sepconv(4, 3, dilation: 2, pad: same)'],
  ['conv1d dilation, stride', 'N, 3, 12', 'conv1d(4, 3, stride: 2, dilation: 2, pad: 2)'],
  ['conv3d stride 2', 'N, 2, 5, 5, 4', 'conv(3, 3, stride: 2, pad: 1)'],
  ['conv3d dilation 2', 'N, 2, 6, 5, 5', 'conv(2, 2, dilation: 2, pad: [[1, 0], [0, 1], [1, 1]])'],
  ['depthwise 3D', 'N, 2, 5, 5, 4', 'dwconv(3, stride: [2, 1, 1], pad: 1)'],
  ['deconv stride 2 output padding', 'N, 3, 4, 3', 'deconv(4, 3, stride: 2, pad: 1, output_padding: 1)'],
  ['deconv dilation, asymmetric pads', 'N, 2, 4, 4', 'deconv(3, 3, stride: 2, dilation: 2, pad: [[1, 0], [0, 2]])'],
  ['deconv groups', 'N, 4, 3, 3', 'deconv(4, 3, groups: 2, stride: 2)'],
  ['deconv output padding past the full output', 'N, 2, 3, 3', 'deconv(2, 2, stride: 3, output_padding: 2)'],
  ['deconv 1D', 'N, 3, 5', 'deconv(2, 4, stride: 2, pad: 1)'],
  ['deconv 3D', 'N, 2, 3, 3, 2', 'deconv(2, 3, stride: 2, pad: 1, output_padding: 1)'],
  ['maxpool ceil pad', 'N, 2, 7, 7', 'maxpool(3, stride: 2, pad: 1, ceil: true)'],
  ['maxpool 1D', 'N, 2, 9', 'maxpool(3, stride: 2, ceil: true)'],
  ['maxpool 3D', 'N, 2, 5, 4, 5', 'maxpool(2, stride: 2, pad: 1)'],
  ['avgpool ceil include pad', 'N, 2, 7, 7', 'avgpool(3, stride: 2, pad: 1, ceil: true, count_include_pad: true)'],
  ['avgpool exclude pad asymmetric', 'N, 2, 7, 6', 'avgpool(3, stride: 2, pad: [[1, 0], [0, 2]])'],
  ['avgpool 3D ceil', 'N, 2, 5, 5, 4', 'avgpool(2, stride: 2, ceil: true)'],
  ['global pools', 'N, 3, 4, 5', 'globalmaxpool -> flatten -> dense(3)'],
  ['batch norm training', 'N, 3, 4, 3', 'bn -> globalavgpool', true],
  ['batch norm inference', 'N, 3, 4, 3', 'bn', false],
  ['batch norm 1D training', 'N, 3, 5', 'bn(momentum: 0.5)', true],
  ['elu, gelu, swish', 'N, 2, 3, 4', 'elu(alpha: 0.7) -> gelu -> swish'],
  ['hard swish, hard sigmoid, tanh', 'N, 2, 3, 4', 'hard_swish -> hard_sigmoid(alpha: 0.3, beta: 0.4) -> tanh'],
  ['leaky relu, sigmoid', 'N, 2, 3, 4', 'leaky_relu(alpha: 0.1) -> sigmoid'],
  ['softmax over channels', 'N, 3, 3, 4', 'softmax(axis: 1)'],
  ['softmax over width', 'N, 3, 3, 4', 'softmax'],
  ['dropout and spatial dropout (fixed masks)', 'N, 3, 4, 4', 'dropout(0.3) -> spatial_dropout(0.5)', true],
  ['upsample nearest', 'N, 2, 3, 3', 'upsample([2, 3])'],
  ['upsample linear', 'N, 2, 3, 4', 'upsample([3, 2], mode: linear)'],
  ['upsample linear 3D', 'N, 2, 2, 3, 2', 'upsample(2, mode: linear)'],
  ['pad reflect, edge, constant', 'N, 2, 4, 5', 'pad([[1, 2], [2, 1]], mode: reflect) -> pad([[2, 0], [0, 1]], mode: edge) -> pad(1, value: 0.5)'],
  ['pad 3D reflect and edge (no tile: tfjs has no rank-5 tile gradient)', 'N, 1, 3, 3, 4', 'pad([[1, 1], [0, 2], [2, 0]], mode: reflect) -> pad([[2, 0], [0, 1], [1, 1]], mode: edge)'],
  ['reshape, dense', 'N, 2, 3, 4', 'reshape([4, 6]) -> flatten -> dense(5)'],
];

describe('gradients: wasm = cpu = finite differences', () => {
  beforeAll(async () => {
    // both backends initialised once up front
    for (const backend of ['cpu', 'wasm'] as const) (await TfjsEngine.create(compile('N, 1, 2, 2', 'relu'), undefined, { backend })).dispose();
  });
  for (const [title, input, chain, training] of CASES) {
    it(title, async () => {
      await checkGradients(input, chain, training ?? true);
    });
  }

  it('multi-input ops: broadcast mul (SE gate), add, concat over height', async () => {
    const text = [
      'model M {',
      '  input x: f32[N, 3, 4, 4]',
      '  a = x -> conv(3, 3, pad: same)',
      '  gate = x -> globalavgpool -> conv(3, 1) -> sigmoid',
      '  y = concat(add(mul(a, gate), x), a, axis: 2) -> flatten -> dense(4)',
      '  output y',
      '}',
    ].join('\n');
    const { graph } = elaborate('m.cnn', { text });
    await checkGraphGradients(graph!, true);
  });
});


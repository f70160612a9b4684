/**
 * The tfjs engine's op lowerings against ONNX Runtime: each case is a tiny spec (one op, or a short chain) whose
 * IR runs in the engine (wasm backend) and, written as the plain ONNX op (tests/helpers/single-op-onnx.ts), in
 * ONNX Runtime; outputs must agree to float32 rounding. The cases aim at what tfjs cannot do directly: asymmetric
 * and TF-incompatible pads, stride with dilation, groups, 1D and 3D forms, transposed convs with output padding
 * and dilation, ceil-mode pools and both average-pool divisors, Resize conventions, softmax axes.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { elaborate } from '../../src/elaborate/elaborate.js';
import type { Graph } from '../../src/ir/graph.js';
import { randomWeights } from '../../src/ir/weights.js';
import { createMulberry32, normalSample } from '../../src/random.js';
import { OrtEngine } from '../../src/runtime/ort/engine.js';
import { TfjsEngine } from '../../src/runtime/tfjs/engine.js';
import { referenceOnnx } from '../helpers/single-op-onnx.js';

const BATCH = 2;

function compile(input: string, body: string): Graph {
  const text = `model T {\n  input x: f32[${input}]\n${body}\n}`;
  const { graph, diagnostics } = elaborate('t.cnn', { text });
  const errors = diagnostics.filter((d) => d.severity === 'error');
  if (!graph || errors.length > 0) throw new Error(`spec does not elaborate:\n${text}\n${errors.map((d) => d.message).join('\n')}`);
  return graph;
}

function randomInput(dims: readonly number[], seed: number): Float32Array {
  const random = createMulberry32(seed);
  return Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => normalSample(random));
}

/** Runs the graph in both engines on one random batch and returns the worst difference, scaled. */
async function compareWithOrt(graph: Graph, seed = 1): Promise<void> {
  const dims = graph.inputs[0]!.shape.map((d) => (typeof d === 'number' ? d : BATCH));
  const weights = randomWeights(graph, seed);
  const data = randomInput(dims, seed + 7);
  const engine = await TfjsEngine.create(graph, weights, { backend: 'wasm' });
  let ours: Record<string, { data: Float32Array; dims: number[] }>;
  try {
    ours = await engine.predict({ x: { data, dims } });
  } finally {
    engine.dispose();
  }
  const ort = await OrtEngine.create(referenceOnnx(graph, weights, new Map([['N', BATCH]])), { intraOpThreads: 1, logSeverity: 'error' });
  try {
    const theirs = await ort.run({ x: { data, dims } });
    for (const output of graph.outputs) {
      const a = ours[output.name]!;
      const b = theirs[output.name]!;
      expect(a.dims, `${output.name} dims`).toEqual(b.dims);
      let worst = 0;
      let where = -1;
      for (let i = 0; i < b.data.length; i++) {
        const error = Math.abs(a.data[i]! - b.data[i]!) / (1e-3 + Math.abs(b.data[i]!));
        if (!(error <= worst)) {
          worst = error;
          where = i;
        }
      }
      expect(worst, `${output.name}[${where}]: engine ${a.data[where]} vs ONNX Runtime ${b.data[where]}`).toBeLessThan(2e-3);
    }
  } finally {
    await ort.dispose();
  }
}

beforeAll(async () => {
  await TfjsEngine.create(compile('N, 1, 2, 2', '  y = x -> relu\n  output y'), undefined, { backend: 'wasm' }).then((e) => e.dispose());
});

const CASES: Array<[title: string, input: string, chain: string]> = [
  // 2D convolutions
  ['conv valid', 'N, 3, 8, 7', 'conv(4, 3)'],
  ['conv same, odd sizes', 'N, 3, 7, 9', 'conv(4, 3, pad: same)'],
  ['conv same, stride 2 on even sizes (end-heavy pads)', 'N, 3, 8, 10', 'conv(4, 3, stride: 2, pad: same)'],
  ['conv symmetric pad 1 at stride 2 on even sizes (not TF SAME)', 'N, 3, 8, 8', 'conv(4, 3, stride: 2, pad: 1)'],
  ['conv asymmetric per-axis pads and strides', 'N, 3, 9, 8', 'conv(4, [3, 2], stride: [2, 1], pad: [[0, 1], [2, 0]])'],
  ['conv dilation 2', 'N, 3, 9, 9', 'conv(4, 3, dilation: 2, pad: 2)'],
  ['conv stride 2 with dilation 2', 'N, 3, 11, 10', 'conv(4, 3, stride: 2, dilation: 2, pad: 1)'],
  ['conv stride 3 with dilation 2 (coprime)', 'N, 3, 13, 12', 'conv(4, 3, stride: 3, dilation: 2)'],
  ['conv stride 2 with dilation 4', 'N, 3, 15, 14', 'conv(4, 3, stride: 2, dilation: 4, pad: [[1, 2], [0, 3]])'],
  ['conv mixed stride/dilation per axis', 'N, 3, 12, 11', 'conv(4, [3, 2], stride: [2, 1], dilation: [3, 2], pad: [[1, 2], [0, 1]])'],
  ['conv groups 3', 'N, 6, 7, 8', 'conv(9, 3, groups: 3, pad: same)'],
  ['conv groups 2 with stride and dilation', 'N, 4, 11, 11', 'conv(6, 3, groups: 2, stride: 2, dilation: 2, pad: 1)'],
  ['depthwise multiplier 2', 'N, 3, 8, 7', 'dwconv(3, pad: same, multiplier: 2)'],
  ['depthwise stride 2 dilation 2', 'N, 3, 11, 12', 'dwconv(3, stride: 2, dilation: 2, pad: 2)'],
  ['separable', 'N, 3, 8, 8', 'sepconv(5, 3, dilation: 2, pad: same)'],
  // 1D convolutions
  ['conv1d stride 2 asymmetric pad', 'N, 3, 11', 'conv(4, 3, stride: 2, pad: [[1, 0]])'],
  ['conv1d causal dilation 2', 'N, 3, 10', 'conv1d(4, 3, dilation: 2, pad: causal)'],
  ['conv1d stride 2 dilation 3', 'N, 3, 16', 'conv1d(4, 3, stride: 2, dilation: 3, pad: 1)'],
  ['conv1d groups', 'N, 4, 9', 'conv(6, 3, groups: 2, pad: same)'],
  ['depthwise 1D', 'N, 3, 9', 'dwconv(5, stride: 2, pad: same, multiplier: 2)'],
  // 3D convolutions
  ['conv3d pad 1', 'N, 2, 5, 6, 5', 'conv(3, 3, pad: 1)'],
  ['conv3d stride 2 dilation 2', 'N, 2, 9, 8, 7', 'conv3d(3, 3, stride: 2, dilation: 2, pad: [[1, 0], [0, 1], [1, 1]])'],
  ['conv3d same stride [1, 2, 2]', 'N, 2, 4, 6, 6', 'conv(3, [1, 3, 3], stride: [1, 2, 2], pad: same)'],
  ['depthwise 3D stride', 'N, 3, 6, 7, 6', 'dwconv(3, stride: [2, 1, 2], pad: 1, multiplier: 2)'],
  ['conv3d groups', 'N, 4, 4, 5, 5', 'conv(4, 2, groups: 2)'],
  // transposed convolutions
  ['deconv stride 2', 'N, 3, 4, 5', 'deconv(4, 3, stride: 2)'],
  ['deconv pad 1 output_padding 1', 'N, 3, 4, 5', 'deconv(4, 3, stride: 2, pad: 1, output_padding: 1)'],
  ['deconv same', 'N, 3, 4, 5', 'deconv(4, 4, stride: 2, pad: same)'],
  ['deconv dilation 2 asymmetric pads', 'N, 3, 4, 5', 'deconv(4, 3, stride: 2, dilation: 2, pad: [[1, 0], [0, 2]])'],
  ['deconv groups 3', 'N, 6, 4, 4', 'deconv(6, 3, groups: 3, stride: 2, pad: 1)'],
  ['deconv output padding past the full output', 'N, 3, 3, 3', 'deconv(2, 2, stride: 3, output_padding: 2)'],
  ['deconv 1D', 'N, 3, 6', 'deconv(4, 4, stride: 2, pad: 1)'],
  ['deconv 3D', 'N, 2, 3, 4, 3', 'deconv(3, 3, stride: [1, 2, 2], pad: 1, output_padding: [0, 1, 0])'],
  // pooling
  ['maxpool 2', 'N, 3, 8, 7', 'maxpool(2)'],
  ['maxpool ceil pad 1', 'N, 3, 8, 8', 'maxpool(3, stride: 2, pad: 1, ceil: true)'],
  ['maxpool ceil without pads', 'N, 3, 6, 7', 'maxpool(3, stride: 2, ceil: true)'],
  ['maxpool ceil: last window would start in the end padding', 'N, 3, 5, 5', 'maxpool(2, stride: 2, pad: 1, ceil: true)'],
  ['maxpool same stride 2', 'N, 3, 8, 9', 'maxpool(3, stride: 2, pad: same)'],
  ['avgpool ceil pad, count_include_pad', 'N, 3, 8, 8', 'avgpool(3, stride: 2, pad: 1, ceil: true, count_include_pad: true)'],
  ['avgpool ceil pad, exclude pad', 'N, 3, 8, 8', 'avgpool(3, stride: 2, pad: 1, ceil: true)'],
  ['avgpool asymmetric pads include', 'N, 3, 7, 6', 'avgpool(3, stride: 2, pad: [[1, 0], [0, 2]], count_include_pad: true)'],
  ['avgpool asymmetric pads exclude, ceil', 'N, 3, 7, 6', 'avgpool(3, stride: 2, pad: [[1, 0], [0, 2]], ceil: true)'],
  ['avgpool same stride 2', 'N, 3, 8, 9', 'avgpool(3, stride: 2, pad: same)'],
  ['maxpool 1D ceil', 'N, 3, 10', 'maxpool(3, stride: 2, pad: 1, ceil: true)'],
  ['avgpool 1D ceil include pad', 'N, 3, 10', 'avgpool(3, stride: 2, pad: 1, ceil: true, count_include_pad: true)'],
  ['maxpool 3D ceil', 'N, 2, 5, 6, 5', 'maxpool(2, stride: 2, ceil: true)'],
  ['avgpool 3D pad ceil exclude', 'N, 2, 5, 6, 5', 'avgpool(3, stride: 2, pad: 1, ceil: true)'],
  ['avgpool 3D pad include', 'N, 2, 5, 6, 5', 'avgpool(3, stride: 2, pad: 1, count_include_pad: true)'],
  ['global pools', 'N, 3, 5, 6', 'globalavgpool'],
  ['global max pool 3D', 'N, 3, 3, 4, 5', 'globalmaxpool'],
  // normalisation, activations
  ['batch norm (inference)', 'N, 3, 4, 5', 'bn(eps: 1e-3)'],
  ['batch norm 3D', 'N, 3, 2, 3, 4', 'bn'],
  ['batch norm on features', 'N, 3, 4, 4', 'flatten -> bn'],
  ['relu6', 'N, 3, 4, 5', 'relu6'],
  ['leaky relu', 'N, 3, 4, 5', 'leaky_relu(alpha: 0.2)'],
  ['elu alpha 0.5', 'N, 3, 4, 5', 'elu(alpha: 0.5)'],
  ['elu', 'N, 3, 4, 5', 'elu'],
  ['sigmoid, tanh', 'N, 3, 4, 5', 'sigmoid -> tanh'],
  ['hard sigmoid (ONNX alpha, beta)', 'N, 3, 4, 5', 'hard_sigmoid(alpha: 0.3, beta: 0.4)'],
  ['swish, hard swish', 'N, 3, 4, 5', 'swish -> hard_swish'],
  ['gelu', 'N, 3, 4, 5', 'gelu'],
  ['softmax over channels', 'N, 3, 4, 5', 'softmax(axis: 1)'],
  ['softmax over the last axis', 'N, 3, 4, 5', 'softmax'],
  ['softmax over height', 'N, 3, 4, 5', 'softmax(axis: 2)'],
  ['softmax 1D over channels', 'N, 3, 6', 'softmax(axis: -2)'],
  ['dropout (inference: identity)', 'N, 3, 4, 5', 'dropout(0.5) -> spatial_dropout(0.3)'],
  // resizing, shapes
  ['upsample nearest 2', 'N, 3, 4, 5', 'upsample(2)'],
  ['upsample nearest [2, 3]', 'N, 3, 4, 5', 'upsample([2, 3])'],
  ['upsample linear 2', 'N, 3, 4, 5', 'upsample(2, mode: linear)'],
  ['upsample linear [3, 4]', 'N, 3, 4, 5', 'upsample([3, 4], mode: linear)'],
  ['upsample linear from 1×1', 'N, 3, 1, 1', 'upsample(4, mode: linear)'],
  ['upsample 1D linear', 'N, 3, 5', 'upsample(3, mode: linear)'],
  ['upsample 3D nearest', 'N, 2, 2, 3, 2', 'upsample([1, 2, 3])'],
  ['upsample 3D linear', 'N, 2, 2, 3, 2', 'upsample(2, mode: linear)'],
  ['flatten, dense', 'N, 3, 4, 5', 'flatten -> dense(7)'],
  ['reshape', 'N, 3, 4, 5', 'reshape([6, -1]) -> reshape([5, 4, 3])'],
  ['pad constant', 'N, 3, 4, 5', 'pad([[1, 2], [0, 3]], value: 0.5)'],
  ['pad reflect', 'N, 3, 4, 5', 'pad([[1, 2], [3, 0]], mode: reflect)'],
  ['pad edge', 'N, 3, 4, 5', 'pad([[2, 1], [0, 3]], mode: edge)'],
  ['pad 1D edge, 3D reflect', 'N, 3, 6', 'pad([[2, 1]], mode: edge)'],
  ['pad 3D reflect', 'N, 2, 3, 4, 3', 'pad([[1, 1], [2, 0], [0, 2]], mode: reflect)'],
];

describe('tfjs engine (wasm) agrees with ONNX Runtime', () => {
  for (const [title, input, chain] of CASES) {
    it(title, async () => {
      await compareWithOrt(compile(input, `  y = x -> ${chain}\n  output y`));
    });
  }

  it('multi-input ops: concat over channels and width, broadcasting add and mul (SE gate), sum of three', async () => {
    const graph = compile(
      'N, 4, 5, 6',
      [
        '  a = x -> conv(4, 3, pad: same)',
        '  gate = x -> globalavgpool -> conv(4, 1) -> sigmoid',
        '  se = mul(a, gate)',
        '  s = add(a, se, x)',
        '  c = concat(s, x)',
        '  w = concat(s, a, axis: 3)',
        '  output c',
        '  output w',
      ].join('\n'),
    );
    await compareWithOrt(graph);
  });

  it('a residual network with every common op (the language example)', async () => {
    const graph = compile(
      'N, 3, 32, 32',
      [
        '  block basic(c: int, stride: int = 1) (x) {',
        '    y = x -> conv(c, 3, stride: stride, pad: same, bias: false) -> bn -> relu -> conv(c, 3, pad: same, bias: false) -> bn',
        '    s = x -> conv(c, 1, stride: stride, bias: false) -> bn   when stride != 1 or channels(x) != c',
        '    return relu(y + (s ?? x))',
        '  }',
        '  stem = x -> conv(16, 3, stride: 2, pad: [[0, 1], [1, 2]]) -> maxpool(3, stride: 2, pad: 1, ceil: true)',
        '  b = stem -> basic(32, stride: 2) -> dwconv(3, pad: same, multiplier: 2) -> sepconv(24, 3, dilation: 2, pad: same)',
        '  logits = b -> globalavgpool -> flatten -> dropout(0.5) -> dense(10)',
        '  output logits',
      ].join('\n'),
    );
    await compareWithOrt(graph);
  });

  it('random 2D convolutions, pools and transposed convolutions (fast-check)', async () => {
    const window = fc.record({
      size: fc.tuple(fc.integer({ min: 5, max: 12 }), fc.integer({ min: 5, max: 12 })),
      kernel: fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 })),
      stride: fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 })),
      dilation: fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 })),
      pads: fc.tuple(fc.nat(2), fc.nat(2), fc.nat(2), fc.nat(2)),
      groups: fc.constantFrom(1, 2, 4),
      kind: fc.constantFrom('conv', 'deconv', 'maxpool', 'avgpool', 'avgpool-include'),
      ceil: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(window, async (w) => {
        const [ph0, ph1, pw0, pw1] = w.pads;
        const list = (v: readonly number[]) => `[${v.join(', ')}]`;
        let chain: string;
        if (w.kind === 'conv') {
          chain = `conv(${2 * w.groups}, ${list(w.kernel)}, stride: ${list(w.stride)}, dilation: ${list(w.dilation)}, groups: ${w.groups}, pad: [[${ph0}, ${ph1}], [${pw0}, ${pw1}]])`;
        } else if (w.kind === 'deconv') {
          const outputPadding = w.stride.map((s, i) => Math.min(s, w.dilation[i]!) > 1 ? 1 : 0);
          chain = `deconv(${2 * w.groups}, ${list(w.kernel)}, stride: ${list(w.stride)}, dilation: ${list(w.dilation)}, groups: ${w.groups}, pad: [[${ph0}, ${ph1}], [${pw0}, ${pw1}]], output_padding: ${list(outputPadding)})`;
        } else {
          const k = w.kernel.map((v) => v + 1);
          const pads = [
            [Math.min(ph0, k[0]! - 1), Math.min(ph1, k[0]! - 1)],
            [Math.min(pw0, k[1]! - 1), Math.min(pw1, k[1]! - 1)],
          ];
          const op = w.kind === 'maxpool' ? 'maxpool' : 'avgpool';
          const include = w.kind === 'avgpool-include' ? ', count_include_pad: true' : '';
          chain = `${op}(${list(k)}, stride: ${list(w.stride)}, pad: [[${pads[0]!.join(', ')}], [${pads[1]!.join(', ')}]], ceil: ${w.ceil}${include})`;
        }
        const text = `model T {\n  input x: f32[N, 4, ${w.size[0]}, ${w.size[1]}]\n  y = x -> ${chain}\n  output y\n}`;
        const { graph, diagnostics } = elaborate('t.cnn', { text });
        if (!graph || diagnostics.some((d) => d.severity === 'error')) return; // an empty output, for instance
        await compareWithOrt(graph, w.size[0] * 13 + w.size[1]);
      }),
      { numRuns: 40, seed: 20240611 },
    );
  });
});

afterAll(() => undefined);

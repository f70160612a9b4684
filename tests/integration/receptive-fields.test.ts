/**
 * Acceptance tests of receptive fields (LANGUAGE.md, Araujo, Norris & Sim, Distill 2019):
 *
 * (a) the TF-slim specs reproduce the published size / effective stride / effective padding at their last feature
 *     map (`checkSpec(...).receptiveFields`), and their own asserts pass;
 * (b) property: for random 1D/2D stacks of convolutions and pools (kernel, stride, dilation, padding: valid, SAME,
 *     causal, symmetric and asymmetric explicit pads, ceil mode), the inferred field of the output — its size,
 *     stride, padding and the start −P + u·S of a chosen unit u — equals
 *       - a brute-force reference written here: the index interval of unit u propagated back layer by layer,
 *         with output sizes and SAME pads computed here from the TF / ONNX rules, and
 *       - the field measured by gradients through the tfjs engine: with every weight 1, no bias and no ReLU, and
 *         an all-ones input, nothing cancels, so the input pixels with a non-zero gradient of unit u are exactly
 *         its field (dilated kernels leave holes, so the extent of the non-zero set is compared). Average pools
 *         stand in for max pools there (a max pool passes the gradient to one pixel per window); the max-pool
 *         version of each stack must infer the same field;
 * (c) `assert rf(x) >= 224` on a too-shallow network fails `convspec check` (exit 1) with a diagnostic naming the
 *     actual field.
 *
 * RF_RUNS / RF_SEED change the number of random stacks (200) and the seed; several thousand stacks over a few seeds
 * found no disagreement.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkSpec } from '../../src/check.js';
import type { Graph } from '../../src/ir/graph.js';
import { graphParameters, parameterSize } from '../../src/ir/params.js';
import type { WeightTensor } from '../../src/ir/weights.js';
import type { ReceptiveField } from '../../src/passes/receptive-field.js';
import { createEngine, toInternal, toLogical, type TfjsEngine } from '../../src/runtime/tfjs/index.js';
import { renderAll } from '../../src/testing.js';
import { convspec, SPECS_DIR, temporaryDirectory } from './helpers.js';

// ---------------------------------------------------------------------------------------------------------------
// (a) published values

/** The last node of a top-level value (`features` → `features.pool5`): where its chain ends. */
function lastNodeOf(graph: Graph, value: string): string {
  const nodes = graph.nodes.filter((n) => n.name === value || n.name.startsWith(`${value}.`));
  if (nodes.length === 0) throw new Error(`no nodes under '${value}'`);
  return nodes.at(-1)!.name;
}

describe('TF-slim networks reproduce the published receptive fields (Araujo et al. 2019)', () => {
  const published = [
    { file: 'slim/alexnet_v2.cnn', at: 'features', size: 195, stride: 32, padding: 64 },
    { file: 'slim/vgg_16.cnn', at: 'features', size: 212, stride: 32, padding: 90 },
    { file: 'slim/resnet_v1_50.cnn', at: 'block4', size: 483, stride: 32, padding: 239 },
  ];
  for (const expected of published) {
    it(`${expected.file}: ${expected.size}/${expected.stride}/${expected.padding} at ${expected.at}, and the spec's asserts pass`, () => {
      const checked = checkSpec(path.join(SPECS_DIR, expected.file));
      expect(renderAll(checked)).toBe('');
      expect(checked.ok).toBe(true);
      const field = checked.receptiveFields!.fields.get(lastNodeOf(checked.graph!, expected.at));
      expect(field).toBeDefined();
      expect({ size: field!.size, stride: field!.stride, padding: field!.padding }).toEqual({
        size: [expected.size, expected.size],
        stride: [expected.stride, expected.stride],
        padding: [expected.padding, expected.padding],
      });
      expect(checked.receptiveFields!.input?.name).toBe('images');
    });
  }
});

// ---------------------------------------------------------------------------------------------------------------
// (b) property: inferred = brute force = measured by gradients

type Pad = { kind: 'valid' } | { kind: 'same' } | { kind: 'causal' } | { kind: 'symmetric'; value: number } | { kind: 'pairs'; pairs: Array<[number, number]> };

interface ConvLayer {
  readonly op: 'conv';
  readonly kernel: number[];
  readonly stride: number[];
  readonly dilation: number[];
  readonly pad: Pad;
}

interface PoolLayer {
  readonly op: 'pool';
  readonly kernel: number[];
  readonly stride: number[];
  readonly pad: Pad;
  readonly ceil: boolean;
  readonly countIncludePad: boolean;
}

type Layer = ConvLayer | PoolLayer;

interface Stack {
  readonly rank: 1 | 2;
  readonly sizes: number[];
  readonly layers: Layer[];
  /** Where in the list of candidate units (interior ones if any) the chosen unit sits, in [0, 1). */
  readonly pick: number[];
}

const perAxis = <T,>(rank: number, arbitrary: fc.Arbitrary<T>): fc.Arbitrary<T[]> => fc.array(arbitrary, { minLength: rank, maxLength: rank });

function padArbitrary(rank: number, kernel: number[], forPool: boolean): fc.Arbitrary<Pad> {
  // explicit pool pads must stay below the kernel
  const limit = (i: number) => (forPool ? Math.max(0, kernel[i]! - 1) : 3);
  const pairs = fc.tuple(...kernel.map((_, i) => fc.tuple(fc.integer({ min: 0, max: limit(i) }), fc.integer({ min: 0, max: limit(i) })))).map((p) => ({ kind: 'pairs' as const, pairs: p as Array<[number, number]> }));
  const symmetricLimit = Math.min(...kernel.map((_, i) => limit(i)));
  return fc.oneof(
    fc.constant<Pad>({ kind: 'valid' }),
    fc.constant<Pad>({ kind: 'same' }),
    fc.integer({ min: 0, max: symmetricLimit }).map((value): Pad => ({ kind: 'symmetric', value })),
    pairs,
    ...(rank === 1 && !forPool ? [fc.constant<Pad>({ kind: 'causal' })] : []),
  );
}

function layerArbitrary(rank: number): fc.Arbitrary<Layer> {
  const conv = fc
    .record({ kernel: perAxis(rank, fc.integer({ min: 1, max: 5 })), stride: perAxis(rank, fc.integer({ min: 1, max: 3 })), dilation: perAxis(rank, fc.integer({ min: 1, max: 3 })) })
    .chain((a) => padArbitrary(rank, a.kernel, false).map((pad): Layer => ({ op: 'conv', ...a, pad })));
  const pool = fc
    .record({ kernel: perAxis(rank, fc.integer({ min: 1, max: 4 })), stride: perAxis(rank, fc.integer({ min: 1, max: 3 })), ceil: fc.boolean(), countIncludePad: fc.boolean() })
    .chain((a) => padArbitrary(rank, a.kernel, true).map((pad): Layer => ({ op: 'pool', ...a, pad })));
  return fc.oneof({ arbitrary: conv, weight: 3 }, { arbitrary: pool, weight: 2 });
}

const stackArbitrary: fc.Arbitrary<Stack> = fc.constantFrom<1 | 2>(1, 2).chain((rank) =>
  fc.record({
    rank: fc.constant(rank),
    sizes: perAxis(rank, rank === 1 ? fc.integer({ min: 24, max: 72 }) : fc.integer({ min: 14, max: 36 })),
    layers: fc.array(layerArbitrary(rank), { minLength: 1, maxLength: 4 }),
    pick: perAxis(rank, fc.double({ min: 0, max: 0.999, noNaN: true })),
  }),
);

const list = (values: readonly number[]) => `[${values.join(', ')}]`;

function padText(pad: Pad): string {
  switch (pad.kind) {
    case 'valid':
    case 'same':
    case 'causal':
      return pad.kind;
    case 'symmetric':
      return String(pad.value);
    case 'pairs':
      return `[${pad.pairs.map(([b, e]) => `[${b}, ${e}]`).join(', ')}]`;
  }
}

function specText(stack: Stack, pool: 'avgpool' | 'maxpool'): string {
  const calls = stack.layers.map((layer) =>
    layer.op === 'conv'
      ? `conv(1, ${list(layer.kernel)}, stride: ${list(layer.stride)}, dilation: ${list(layer.dilation)}, pad: ${padText(layer.pad)}, bias: false)`
      : `${pool}(${list(layer.kernel)}, stride: ${list(layer.stride)}, pad: ${padText(layer.pad)}, ceil: ${layer.ceil}${pool === 'avgpool' ? `, count_include_pad: ${layer.countIncludePad}` : ''})`,
  );
  return `model RF {\n  input x: f32[1, 1, ${stack.sizes.join(', ')}]\n  y = x -> ${calls.join('\n    -> ')}\n  output y\n}\n`;
}

/** One layer's geometry on one axis, as the reference computes it. */
interface AxisStep {
  readonly kernel: number;
  readonly dilation: number;
  readonly extent: number; // k' = d(k − 1) + 1
  readonly stride: number;
  readonly begin: number;
  readonly inputSize: number;
  readonly outputSize: number;
}

/**
 * The reference's own forward pass over sizes: pads from the TF SAME rule (out = ⌈n/s⌉, total = max((out − 1)s +
 * k' − n, 0), begin = ⌊total/2⌋), causal begin = k' − 1; output floor((n + b + e − k')/s) + 1, or for ceil-mode
 * pools ⌈…⌉ + 1 minus a last window that would start in the end padding (ONNX / PyTorch). Undefined when an output
 * would be empty.
 */
function referenceSteps(stack: Stack, axis: number): AxisStep[] | undefined {
  let n = stack.sizes[axis]!;
  const steps: AxisStep[] = [];
  for (const layer of stack.layers) {
    const k = layer.kernel[axis]!;
    const s = layer.stride[axis]!;
    const dilation = layer.op === 'conv' ? layer.dilation[axis]! : 1;
    const extent = dilation * (k - 1) + 1;
    let begin: number;
    let end: number;
    switch (layer.pad.kind) {
      case 'valid':
        begin = end = 0;
        break;
      case 'causal':
        begin = extent - 1;
        end = 0;
        break;
      case 'symmetric':
        begin = end = layer.pad.value;
        break;
      case 'pairs':
        [begin, end] = layer.pad.pairs[axis]!;
        break;
      case 'same': {
        const total = Math.max((Math.ceil(n / s) - 1) * s + extent - n, 0);
        begin = Math.floor(total / 2);
        end = total - begin;
        break;
      }
    }
    const span = n + begin + end - extent;
    let out: number;
    if (layer.op === 'pool' && layer.ceil) {
      // a ceil-mode window may run past the end (even when the kernel exceeds the padded input), as in ONNX
      out = Math.ceil(span / s) + 1;
      if ((out - 1) * s >= n + begin) out -= 1;
    } else out = span < 0 ? 0 : Math.floor(span / s) + 1;
    if (out < 1) return undefined;
    steps.push({ kernel: k, dilation, extent, stride: s, begin, inputSize: n, outputSize: out });
    n = out;
  }
  return steps;
}

/** Unit u's input interval on one axis, propagated back layer by layer; `interior` when no layer reads padding. */
function bruteForceInterval(steps: readonly AxisStep[], unit: number): { start: number; end: number; interior: boolean } {
  let lo = unit;
  let hi = unit;
  let interior = true;
  for (let l = steps.length - 1; l >= 0; l--) {
    const step = steps[l]!;
    lo = lo * step.stride - step.begin;
    hi = hi * step.stride - step.begin + step.extent - 1;
    if (lo < 0 || hi > step.inputSize - 1) interior = false;
  }
  return { start: lo, end: hi, interior };
}

/**
 * The input pixels unit u actually depends on along one axis: the taps of every layer, dilation holes and all,
 * minus positions in padding (which hold constants), propagated back from the output.
 */
function reachablePixels(steps: readonly AxisStep[], unit: number): number[] {
  let current = new Set([unit]);
  for (let l = steps.length - 1; l >= 0; l--) {
    const step = steps[l]!;
    const next = new Set<number>();
    for (const o of current) {
      for (let t = 0; t < step.kernel; t++) {
        const i = o * step.stride - step.begin + t * step.dilation;
        if (i >= 0 && i < step.inputSize) next.add(i);
      }
    }
    current = next;
  }
  return [...current].sort((a, b) => a - b);
}

/** The brute-force field: size from one unit's interval, stride from two neighbours, padding from unit 0. */
function bruteForceField(steps: readonly AxisStep[]): { size: number; stride: number; padding: number } {
  const first = bruteForceInterval(steps, 0);
  const second = bruteForceInterval(steps, 1);
  return { size: first.end - first.start + 1, stride: second.start - first.start, padding: 0 - first.start };
}

function onesWeights(graph: Graph): Map<string, WeightTensor> {
  const weights = new Map<string, WeightTensor>();
  for (const param of graphParameters(graph.nodes)) weights.set(param.name, { shape: param.shape, data: new Float32Array(parameterSize(param)).fill(1) });
  return weights;
}

/**
 * Per axis, the indices at which the gradient of output unit `unit` (channel 0) w.r.t. the input is non-zero (the
 * projection of the non-zero set onto that axis).
 */
function measuredPixels(engine: TfjsEngine, stack: Stack, outputDims: readonly number[], unit: readonly number[]): number[][] {
  engine.activate();
  const inputDims = [1, 1, ...stack.sizes];
  const gradient = tf.tidy(() => {
    const x = toInternal(tf.ones(inputDims));
    const selector = tf.buffer(outputDims as number[]);
    selector.set(1, 0, 0, ...unit);
    const weighting = selector.toTensor();
    const grad = tf.grad((input: tf.Tensor) => {
      const y = toLogical(engine.forward(new Map([['x', input]]), { training: false }).get('y')!);
      return tf.sum(tf.mul(y, weighting));
    });
    return toLogical(grad(x));
  });
  const values = gradient.dataSync();
  gradient.dispose();
  const found = stack.sizes.map(() => new Set<number>());
  const strides = stack.sizes.map((_, axis) => stack.sizes.slice(axis + 1).reduce((a, b) => a * b, 1));
  for (let i = 0; i < values.length; i++) {
    if (values[i] === 0) continue;
    expect(values[i], 'gradients are positive with unit weights and ones as input').toBeGreaterThan(0);
    stack.sizes.forEach((size, axis) => found[axis]!.add(Math.floor(i / strides[axis]!) % size));
  }
  return found.map((set) => [...set].sort((a, b) => a - b));
}

describe('property: inferred receptive fields = brute-force intervals = fields measured by gradients', () => {
  beforeAll(async () => {
    const warm = await createEngine(checkSpec('w.cnn', { text: 'model W {\n  input x: f32[1, 1, 4]\n  y = x -> relu\n  output y\n}' }).graph!, undefined, { backend: 'wasm' });
    warm.dispose();
  });

  it('for random 1D and 2D conv/pool stacks (kernel, stride, dilation, SAME, causal, asymmetric pads, ceil mode)', async () => {
    let checked = 0;
    let interiorUnits = 0;
    await fc.assert(
      fc.asyncProperty(stackArbitrary, async (stack) => {
        const allSteps = stack.sizes.map((_, axis) => referenceSteps(stack, axis));
        const text = specText(stack, 'avgpool');
        const result = checkSpec('rf.cnn', { text });
        if (allSteps.some((s) => s === undefined)) {
          // an empty feature map somewhere: the compiler must refuse the spec too
          expect(result.ok, `the reference finds an empty output:\n${text}`).toBe(false);
          return;
        }
        expect(result.ok, `${text}\n${renderAll(result)}`).toBe(true);
        const steps = allSteps as AxisStep[][];
        const graph = result.graph!;
        const outputNode = graph.outputs[0]!.value;
        const outputDims = graph.nodes.find((n) => n.name === outputNode)!.shape as number[];
        expect(outputDims.slice(2), `output sizes of\n${text}`).toEqual(steps.map((s) => s.at(-1)!.outputSize));

        const inferred = result.receptiveFields!.fields.get(outputNode) as ReceptiveField;
        const withMax = checkSpec('rf-max.cnn', { text: specText(stack, 'maxpool') });
        expect(withMax.ok).toBe(true);
        const inferredMax = withMax.receptiveFields!.fields.get(withMax.graph!.outputs[0]!.value)!;
        expect({ size: inferredMax.size, stride: inferredMax.stride, padding: inferredMax.padding }, `max pools give the same field:\n${text}`).toEqual({
          size: inferred.size,
          stride: inferred.stride,
          padding: inferred.padding,
        });

        // brute force: the whole field, then the chosen unit's interval
        const reference = steps.map((s) => bruteForceField(s));
        expect({ size: inferred.size, stride: inferred.stride, padding: inferred.padding }, text).toEqual({
          size: reference.map((r) => r.size),
          stride: reference.map((r) => r.stride),
          padding: reference.map((r) => r.padding),
        });
        const unit = steps.map((s, axis) => {
          const count = s.at(-1)!.outputSize;
          const all = Array.from({ length: count }, (_, u) => u);
          const interior = all.filter((u) => bruteForceInterval(s, u).interior);
          const candidates = interior.length > 0 ? interior : all;
          return candidates[Math.floor(stack.pick[axis]! * candidates.length)]!;
        });
        const intervals = steps.map((s, axis) => bruteForceInterval(s, unit[axis]!));
        intervals.forEach((interval, axis) => {
          const start = -inferred.padding[axis]! + unit[axis]! * inferred.stride[axis]!;
          expect([start, start + inferred.size[axis]! - 1], `unit ${unit[axis]} on axis ${axis}:\n${text}`).toEqual([interval.start, interval.end]);
        });

        // an interior unit's exact pixel set spans the inferred interval (holes only between its ends)
        intervals.forEach((interval, axis) => {
          if (!interval.interior) return;
          const pixels = reachablePixels(steps[axis]!, unit[axis]!);
          const start = -inferred.padding[axis]! + unit[axis]! * inferred.stride[axis]!;
          expect([pixels[0], pixels.at(-1)], `pixels of unit ${unit[axis]} on axis ${axis}:\n${text}`).toEqual([start, start + inferred.size[axis]! - 1]);
        });

        // measured: gradients of the unit through the engine
        const engine = await createEngine(graph, onesWeights(graph), { backend: 'wasm' });
        let measured: number[][];
        try {
          measured = measuredPixels(engine, stack, outputDims, unit);
        } finally {
          engine.dispose();
        }
        // Weights 1 and a ones input: the non-zero gradient is the product over axes of the pixels each axis
        // reaches, so its projection on each axis is exactly that set (all empty when one axis reaches only padding).
        const expected = steps.map((s, axis) => reachablePixels(s, unit[axis]!));
        const empty = expected.some((pixels) => pixels.length === 0);
        expect(measured, `pixels with a non-zero gradient of unit [${unit}]:\n${text}`).toEqual(empty ? expected.map(() => []) : expected);
        intervals.forEach((interval, axis) => {
          const clipped = [Math.max(0, interval.start), Math.min(stack.sizes[axis]! - 1, interval.end)];
          const pixels = measured[axis]!;
          if (empty) return; // another axis reaches only padding: nothing to measure on this one
          if (interval.interior) {
            expect([pixels[0], pixels.at(-1)], `measured extent of unit ${unit[axis]} on axis ${axis}:\n${text}`).toEqual(clipped);
          } else if (pixels.length > 0) {
            // padding clips the field: what is measured lies inside it
            expect(pixels[0]!, `axis ${axis}:\n${text}`).toBeGreaterThanOrEqual(clipped[0]!);
            expect(pixels.at(-1)!, `axis ${axis}:\n${text}`).toBeLessThanOrEqual(clipped[1]!);
          }
        });
        if (intervals.every((i) => i.interior)) interiorUnits++;
        checked++;
      }),
      { numRuns: Number(process.env['RF_RUNS'] ?? 200), seed: Number(process.env['RF_SEED'] ?? 20240611) },
    );
    if (process.env['RF_RUNS']) console.log('RF checked', checked, 'interior', interiorUnits);
    expect(checked).toBeGreaterThan(150);
    expect(interiorUnits).toBeGreaterThan(100);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// (c) a failed rf assert names the actual field

describe('convspec check: a receptive-field assert on a too-shallow network', () => {
  const work = temporaryDirectory('rf-assert');
  afterAll(() => work.remove());

  it('fails with exit 1 and a diagnostic that names the actual field', async () => {
    // conv 3 stride 2 then conv 5 stride 2: r = 3 + (5 − 1)·2 = 11
    const file = path.join(work.dir, 'shallow.cnn');
    fs.writeFileSync(file, 'model Shallow {\n  input image: f32[N, 3, 224, 224]\n  x = image -> conv(8, 3, stride: 2, pad: 1) -> relu -> conv(8, 5, stride: 2, pad: 2)\n  output x\n  assert rf(x) >= 224\n}\n');
    const text = await convspec('check', file);
    expect(text.code).toBe(1);
    expect(text.stderr).toContain('error CNN5001');
    expect(text.stderr).toMatch(/rf\(x\) = \[11, 11\]/);
    expect(text.stderr).toContain('224');
    expect(text.stderr).toContain(`${file}:5:10`);

    const json = await convspec('check', file, '--format', 'json');
    expect(json.code).toBe(1);
    const report = JSON.parse(json.stdout) as { ok: boolean; diagnostics: Array<{ code: string; line: number; message: string }> };
    expect(report.ok).toBe(false);
    expect(report.diagnostics).toHaveLength(1);
    expect(report.diagnostics[0]).toMatchObject({ code: 'CNN5001', line: 5 });
    expect(report.diagnostics[0]!.message).toMatch(/\b11\b/);

    // the same network deep enough passes: five more stride-2 3×3 convs reach 11 + 2·(4 + 8 + 16 + 32 + 64) = 259
    const deep = path.join(work.dir, 'deep.cnn');
    fs.writeFileSync(deep, 'model Deep {\n  input image: f32[N, 3, 224, 224]\n  x = image -> conv(8, 3, stride: 2, pad: 1) -> relu -> conv(8, 5, stride: 2, pad: 2)\n    -> repeat 5 conv(8, 3, stride: 2, pad: 1)\n  output x\n  assert rf(x) >= 224\n}\n');
    const passing = await convspec('check', deep);
    expect(passing.stderr).not.toContain('error');
    expect(passing.code).toBe(0);
  });
});

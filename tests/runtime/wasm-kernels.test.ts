/**
 * The kernels composed for the wasm backend compute what they should.
 *
 * References: the cpu backend where it is right (convolution gradients, activations, 2D max
 * pooling, the forward ops), and exact references where the cpu backend is wrong too: float64
 * loops for the max- and average-pooling gradients, and for the resize gradients the adjoint of
 * the cpu forward resize built column by column from unit images. Tolerance: the largest
 * absolute difference must stay within 1e-4 × max(1, largest reference magnitude). Every
 * comparison also checks that no tensor leaks. Shapes, strides, dilations, paddings and channel
 * multipliers come from fast-check.
 */
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';

import { selectBackend } from '../../src/runtime/tfjs/backend.js';
import { registerMissingWasmKernels, wasmKernelCompositions } from '../../src/runtime/tfjs/wasm-kernels.js';

const relativeTolerance = 1e-4;

type Padding2D = 'same' | 'valid' | number | [[0, 0], [number, number], [number, number], [0, 0]];

beforeAll(async () => {
  await selectBackend('wasm');
});

/** Deterministic values in [-1, 1) from a seed (mulberry32). */
function randomValues(count: number, seed: number): Float32Array {
  let state = seed >>> 0;
  const values = new Float32Array(count);
  for (let index = 0; index < count; index++) {
    state = (state + 0x6d2b79f5) >>> 0;
    let mixed = Math.imul(state ^ (state >>> 15), 1 | state);
    mixed = (mixed + Math.imul(mixed ^ (mixed >>> 7), 61 | mixed)) ^ mixed;
    values[index] = (((mixed ^ (mixed >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  }
  return values;
}

function randomTensor(shape: number[], seed: number): tf.Tensor {
  return tf.tensor(randomValues(shape.reduce((a, b) => a * b, 1), seed), shape);
}

interface Result {
  shapes: number[][];
  values: Float32Array[];
}

/** Runs `compute` on a backend, returning its outputs' values and checking that nothing leaks. */
async function runOn(backend: 'cpu' | 'wasm', compute: () => tf.Tensor | tf.Tensor[]): Promise<Result> {
  await tf.setBackend(backend);
  const before = tf.memory().numTensors;
  const outputs = tf.tidy(() => {
    const result = compute();
    return Array.isArray(result) ? result : [result];
  });
  const result = { shapes: outputs.map((output) => output.shape), values: outputs.map((output) => output.dataSync() as Float32Array) };
  tf.dispose(outputs);
  expect(tf.memory().numTensors, `tensors leaked on ${backend}`).toBe(before);
  return result;
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, label: string): void {
  expect(actual.length, `${label}: length`).toBe(expected.length);
  let largestDifference = 0;
  let largestMagnitude = 0;
  for (let index = 0; index < expected.length; index++) {
    const difference = Math.abs(actual[index]! - expected[index]!);
    largestDifference = Number.isNaN(difference) ? Infinity : Math.max(largestDifference, difference);
    largestMagnitude = Math.max(largestMagnitude, Math.abs(expected[index]!));
  }
  expect(largestDifference, label).toBeLessThanOrEqual(relativeTolerance * Math.max(1, largestMagnitude));
}

/** Runs `compute` on wasm and on cpu and compares every output. */
async function expectWasmMatchesCpu(compute: () => tf.Tensor | tf.Tensor[], label: string): Promise<void> {
  const wasm = await runOn('wasm', compute);
  const cpu = await runOn('cpu', compute);
  expect(wasm.shapes, `${label}: shapes`).toEqual(cpu.shapes);
  cpu.values.forEach((values, index) => expectClose(wasm.values[index]!, values, `${label}: output ${index}`));
  await tf.setBackend('wasm');
}

/** f's output and the gradients of Σ f(inputs) · weights with respect to every input. */
function outputAndGradients(
  f: (...inputs: tf.Tensor[]) => tf.Tensor, inputShapes: number[][], seed: number,
): () => tf.Tensor[] {
  return () => {
    const inputs = inputShapes.map((shape, index) => randomTensor(shape, seed + index));
    const output = f(...inputs);
    const weights = randomTensor(output.shape, seed + 100);
    const gradients = tf.grads((...variables: tf.Tensor[]) => tf.sum(tf.mul(f(...variables), weights)))(inputs);
    return [output, ...gradients];
  };
}

/**
 * float64 reference gradients of max pooling (to the first maximum) and average pooling (each
 * window divided by its count of input elements, as the forward op divides). The window
 * geometry is the forward op's, from tfjs: its 3D 'same' padding, unlike TensorFlow's, goes
 * negative when the filter is smaller than the stride.
 */
function poolingGradientReference(
  kind: 'max' | 'avg', input: Float32Array, inputShape: number[], outputGradient: Float32Array,
  filter: number[], strides: number[], padding: 'same' | 'valid' | number | Padding2D,
): Float64Array {
  const spatial = inputShape.slice(1, -1);
  const channels = inputShape[inputShape.length - 1]!;
  const info = spatial.length === 2
    ? tf.backend_util.computePool2DInfo(
      inputShape as [number, number, number, number], filter as [number, number], strides as [number, number], 1,
      padding as Padding2D)
    : tf.backend_util.computePool3DInfo(
      inputShape as [number, number, number, number, number], filter as [number, number, number],
      strides as [number, number, number], 1, padding as 'same');
  const geometry = spatial.length === 2
    ? [{ out: info.outHeight, before: info.padInfo.top }, { out: info.outWidth, before: info.padInfo.left }]
    : [{ out: (info as tf.backend_util.Conv3DInfo).outDepth, before: (info as tf.backend_util.Conv3DInfo).padInfo.front },
      { out: info.outHeight, before: info.padInfo.top }, { out: info.outWidth, before: info.padInfo.left }];
  const gradient = new Float64Array(input.length);
  const strideOf = (axis: number) => spatial.slice(axis + 1).reduce((a, b) => a * b, 1) * channels;
  const outputCount = geometry.reduce((product, { out }) => product * out, 1);
  let outputIndex = 0;
  for (let batch = 0; batch < inputShape[0]!; batch++) {
    for (let position = 0; position < outputCount; position++) {
      const outputCoordinates: number[] = [];
      let remainder = position;
      for (let axis = spatial.length - 1; axis >= 0; axis--) {
        outputCoordinates[axis] = remainder % geometry[axis]!.out;
        remainder = Math.floor(remainder / geometry[axis]!.out);
      }
      for (let channel = 0; channel < channels; channel++, outputIndex++) {
        const members: number[] = [];
        const tapCount = filter.reduce((a, b) => a * b, 1);
        for (let tap = 0; tap < tapCount; tap++) {
          let tapRemainder = tap;
          let flat = batch * spatial.reduce((a, b) => a * b, 1) * channels + channel;
          let inside = true;
          const offsets: number[] = [];
          for (let axis = spatial.length - 1; axis >= 0; axis--) {
            offsets[axis] = tapRemainder % filter[axis]!;
            tapRemainder = Math.floor(tapRemainder / filter[axis]!);
          }
          for (let axis = 0; axis < spatial.length; axis++) {
            const coordinate = outputCoordinates[axis]! * strides[axis]! + offsets[axis]! - geometry[axis]!.before;
            inside &&= coordinate >= 0 && coordinate < spatial[axis]!;
            flat += coordinate * strideOf(axis);
          }
          if (inside) {
            members.push(flat);
          }
        }
        const dy = outputGradient[outputIndex]!;
        if (kind === 'avg') {
          members.forEach((member) => { gradient[member]! += dy / members.length; });
        } else if (members.length > 0) {
          const winner = members.reduce((best, member) => (input[member]! > input[best]! ? member : best));
          gradient[winner]! += dy;
        }
      }
    }
  }
  return gradient;
}

const paddingArbitrary: fc.Arbitrary<'same' | 'valid' | 'explicit'> = fc.constantFrom('same', 'valid', 'explicit');

/** A 2D convolution or pooling geometry whose 'valid' and explicit forms have at least one output. */
const geometry2D = fc.record({
  batch: fc.integer({ min: 1, max: 2 }),
  height: fc.integer({ min: 1, max: 7 }),
  width: fc.integer({ min: 1, max: 7 }),
  channels: fc.integer({ min: 1, max: 3 }),
  filterHeight: fc.integer({ min: 1, max: 3 }),
  filterWidth: fc.integer({ min: 1, max: 3 }),
  strideHeight: fc.integer({ min: 1, max: 3 }),
  strideWidth: fc.integer({ min: 1, max: 3 }),
  padding: paddingArbitrary,
  explicit: fc.tuple(fc.nat(2), fc.nat(2), fc.nat(2), fc.nat(2)),
  seed: fc.nat(),
}).filter((g) => {
  const [top, bottom, left, right] = g.padding === 'explicit' ? g.explicit : [0, 0, 0, 0];
  return g.padding === 'same' ||
    (g.height + top + bottom >= g.filterHeight && g.width + left + right >= g.filterWidth);
});

function padding2D(g: { padding: 'same' | 'valid' | 'explicit'; explicit: [number, number, number, number] }): Padding2D {
  if (g.padding !== 'explicit') {
    return g.padding;
  }
  const [top, bottom, left, right] = g.explicit;
  return [[0, 0], [top, bottom], [left, right], [0, 0]];
}

/** Pooling windows must each hold an input element: explicit padding smaller than the window. */
const poolingGeometry2D = geometry2D.filter((g) => {
  const [top, bottom, left, right] = g.explicit;
  return g.padding !== 'explicit' ||
    (Math.max(top, bottom) < g.filterHeight && Math.max(left, right) < g.filterWidth);
});

const propertyRuns = { numRuns: 60 };

describe('registerMissingWasmKernels', () => {
  it('registers each composed kernel for wasm and is idempotent', () => {
    expect(registerMissingWasmKernels()).toEqual([]);
    for (const { kernelName } of wasmKernelCompositions) {
      expect(tf.getKernel(kernelName, 'wasm'), kernelName).toBeDefined();
    }
    expect(wasmKernelCompositions.filter(({ reason }) => reason === 'missing').map(({ kernelName }) => kernelName))
      .toEqual(expect.arrayContaining([
        'Conv2DBackpropFilter', 'DepthwiseConv2dNativeBackpropFilter', 'DepthwiseConv2dNativeBackpropInput']));
  });
});

describe('convolution gradients on wasm equal the cpu backend', () => {
  it('conv2d: input and filter gradients (strides, same / valid / explicit padding)', async () => {
    await fc.assert(fc.asyncProperty(geometry2D, fc.integer({ min: 1, max: 3 }), async (g, outChannels) => {
      const compute = outputAndGradients(
        (x, filter) => tf.conv2d(x as tf.Tensor4D, filter as tf.Tensor4D, [g.strideHeight, g.strideWidth], padding2D(g)),
        [[g.batch, g.height, g.width, g.channels], [g.filterHeight, g.filterWidth, g.channels, outChannels]], g.seed);
      await expectWasmMatchesCpu(compute, `conv2d ${JSON.stringify(g)}`);
    }), propertyRuns);
  });

  it('fused conv2d and fused depthwiseConv2d (bias, activation): outputs and gradients', async () => {
    await fc.assert(fc.asyncProperty(
      geometry2D, fc.integer({ min: 1, max: 2 }), fc.constantFrom<'relu' | 'relu6' | 'elu' | 'linear'>('relu', 'relu6', 'elu', 'linear'),
      async (g, outChannels, activation) => {
        const strides: [number, number] = [g.strideHeight, g.strideWidth];
        const inputShape = [g.batch, g.height, g.width, g.channels];
        await expectWasmMatchesCpu(outputAndGradients(
          (x, filter, bias) => tf.fused.conv2d({
            x: x as tf.Tensor4D, filter: filter as tf.Tensor4D, bias, strides, pad: padding2D(g), activation,
          }),
          [inputShape, [g.filterHeight, g.filterWidth, g.channels, outChannels], [outChannels]], g.seed),
        `fused conv2d ${JSON.stringify(g)} ${activation}`);
        await expectWasmMatchesCpu(outputAndGradients(
          (x, filter, bias) => tf.fused.depthwiseConv2d({
            x: x as tf.Tensor4D, filter: filter as tf.Tensor4D, bias, strides, pad: padding2D(g) as 'same', activation,
          }),
          [inputShape, [g.filterHeight, g.filterWidth, g.channels, outChannels], [g.channels * outChannels]], g.seed),
        `fused depthwise ${JSON.stringify(g)} ${activation}`);
      }), propertyRuns);
  });

  it('forward convolution and pooling with a numeric pad and a rounding mode', async () => {
    // Every window keeps at least one input element (a window of padding only averages 0 / 0).
    for (const rounding of ['floor', 'round', 'ceil'] as const) {
      for (const [height, width, filter, stride, pad] of [[6, 5, 3, 2, 1], [7, 7, 3, 2, 0], [9, 6, 3, 2, 1]] as const) {
        await expectWasmMatchesCpu(() => {
          const x = randomTensor([2, height, width, 3], height * 10 + width) as tf.Tensor4D;
          return [
            tf.conv2d(x, randomTensor([filter, filter, 3, 2], 3) as tf.Tensor4D, stride, pad, 'NHWC', 1, rounding),
            tf.depthwiseConv2d(x, randomTensor([filter, filter, 3, 2], 4) as tf.Tensor4D, stride, pad, 'NHWC', 1, rounding),
            tf.maxPool(x, filter, stride, pad, rounding),
            tf.avgPool(x, filter, stride, pad, rounding),
          ];
        }, `${rounding} ${height}×${width} filter ${filter} stride ${stride} pad ${pad}`);
      }
    }
  });

  it('Conv2DBackpropFilter and Conv2DBackpropInput in NCHW layout', async () => {
    await expectWasmMatchesCpu(() => [
      tf.engine().runKernel(tf.Conv2DBackpropFilter, { x: randomTensor([2, 3, 7, 6], 1), dy: randomTensor([2, 4, 4, 3], 2) },
        { strides: [2, 2], pad: 'same', dataFormat: 'NCHW', filterShape: [3, 2, 3, 4] }) as tf.Tensor,
      tf.engine().runKernel(tf.Conv2DBackpropInput, { dy: randomTensor([2, 4, 4, 3], 2), filter: randomTensor([3, 2, 3, 4], 3) },
        { strides: [2, 2], pad: 'same', dataFormat: 'NCHW', inputShape: [2, 3, 7, 6] }) as tf.Tensor,
    ], 'NCHW');
  });

  it('conv1d and conv2dTranspose gradients', async () => {
    await fc.assert(fc.asyncProperty(
      fc.integer({ min: 1, max: 3 }), fc.constantFrom<'same' | 'valid'>('same', 'valid'), fc.integer({ min: 1, max: 3 }),
      fc.nat(), async (stride, pad, filterSize, seed) => {
        await expectWasmMatchesCpu(outputAndGradients(
          (x, filter) => tf.conv1d(x as tf.Tensor3D, filter as tf.Tensor3D, stride, pad),
          [[2, 8, 3], [filterSize, 3, 2]], seed), `conv1d ${stride} ${pad} ${filterSize}`);
        const outputLength = pad === 'same' ? 4 * stride : 3 * stride + filterSize;
        const inputLength = pad === 'same' ? 4 : Math.floor((outputLength - filterSize) / stride) + 1;
        await expectWasmMatchesCpu(outputAndGradients(
          (x, filter) => tf.conv2dTranspose(x as tf.Tensor4D, filter as tf.Tensor4D, [2, outputLength, outputLength, 3], stride, pad),
          [[2, inputLength, inputLength, 4], [filterSize, filterSize, 3, 4]], seed), `conv2dTranspose ${stride} ${pad} ${filterSize}`);
      }), { numRuns: 8 });
  });

  it('depthwiseConv2d: input and filter gradients (strides, channel multipliers, padding)', async () => {
    await fc.assert(fc.asyncProperty(geometry2D, fc.integer({ min: 1, max: 3 }), async (g, multiplier) => {
      const compute = outputAndGradients(
        (x, filter) => tf.depthwiseConv2d(
          x as tf.Tensor4D, filter as tf.Tensor4D, [g.strideHeight, g.strideWidth], padding2D(g) as 'same'),
        [[g.batch, g.height, g.width, g.channels], [g.filterHeight, g.filterWidth, g.channels, multiplier]], g.seed);
      await expectWasmMatchesCpu(compute, `depthwise ${JSON.stringify(g)} × ${multiplier}`);
    }), propertyRuns);
  });

  it('depthwise backprop kernels with dilations equal the cpu kernels on the zero-dilated filter', async () => {
    // cpu's depthwise backprop kernels ignore dilations; a filter dilated by d equals the
    // undilated filter with d - 1 zeros between taps.
    await fc.assert(fc.asyncProperty(
      fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 2, max: 3 }),
      fc.constantFrom<'same' | 'valid'>('same', 'valid'), fc.integer({ min: 1, max: 2 }), fc.nat(),
      async (stride, filterSize, dilation, pad, multiplier, seed) => {
        const [height, width, channels] = [8, 7, 2];
        const effective = (filterSize - 1) * dilation + 1;
        const inputShape: [number, number, number, number] = [2, height, width, channels];
        const out = (length: number) => (pad === 'same' ? Math.ceil(length / stride) : Math.floor((length - effective) / stride) + 1);
        const dyShape = [2, out(height), out(width), channels * multiplier];
        const filterShape: [number, number, number, number] = [filterSize, filterSize, channels, multiplier];
        const effectiveShape: [number, number, number, number] = [effective, effective, channels, multiplier];
        const dilate = (filter: tf.Tensor) => tf.reshape(tf.pad(
          tf.reshape(filter, [filterSize, 1, filterSize, 1, channels * multiplier]),
          [[0, 0], [0, dilation - 1], [0, 0], [0, dilation - 1], [0, 0]]),
        [filterSize * dilation, filterSize * dilation, channels, multiplier]).slice([0, 0, 0, 0], effectiveShape);
        const wasm = await runOn('wasm', () => [
          tf.engine().runKernel(tf.DepthwiseConv2dNativeBackpropInput, { dy: randomTensor(dyShape, seed), filter: randomTensor(filterShape, seed + 1) },
            { strides: stride, dilations: dilation, pad, inputShape }) as tf.Tensor,
          tf.engine().runKernel(tf.DepthwiseConv2dNativeBackpropFilter, { x: randomTensor(inputShape, seed + 2), dy: randomTensor(dyShape, seed) },
            { strides: stride, dilations: dilation, pad, filterShape }) as tf.Tensor,
        ]);
        const cpu = await runOn('cpu', () => [
          tf.engine().runKernel(tf.DepthwiseConv2dNativeBackpropInput, { dy: randomTensor(dyShape, seed), filter: dilate(randomTensor(filterShape, seed + 1)) },
            { strides: stride, dilations: 1, pad, inputShape }) as tf.Tensor,
          tf.stridedSlice(tf.engine().runKernel(tf.DepthwiseConv2dNativeBackpropFilter, { x: randomTensor(inputShape, seed + 2), dy: randomTensor(dyShape, seed) },
            { strides: stride, dilations: 1, pad, filterShape: effectiveShape }) as tf.Tensor, [0, 0, 0, 0], effectiveShape, [dilation, dilation, 1, 1]),
        ]);
        await tf.setBackend('wasm');
        expect(wasm.shapes).toEqual(cpu.shapes);
        expectClose(wasm.values[0]!, cpu.values[0]!, 'dilated backprop input');
        expectClose(wasm.values[1]!, cpu.values[1]!, 'dilated backprop filter');
      }), { numRuns: 10 });
  });

  it('separableConv2d gradients', async () => {
    await expectWasmMatchesCpu(outputAndGradients(
      (x, depthwise, pointwise) => tf.separableConv2d(x as tf.Tensor4D, depthwise as tf.Tensor4D, pointwise as tf.Tensor4D, 2, 'same'),
      [[2, 7, 6, 3], [3, 3, 3, 2], [1, 1, 6, 4]], 5), 'separable');
  });

  it('conv3d: input and filter gradients, and conv3dTranspose', async () => {
    await fc.assert(fc.asyncProperty(
      fc.tuple(fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 2 })),
      fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 3 })),
      fc.constantFrom<'same' | 'valid'>('same', 'valid'), fc.nat(),
      async (strides, filter, pad, seed) => {
        await expectWasmMatchesCpu(outputAndGradients(
          (x, f) => tf.conv3d(x as tf.Tensor5D, f as tf.Tensor5D, strides, pad),
          [[2, 4, 5, 6, 2], [...filter, 2, 3]], seed), `conv3d ${strides} ${filter} ${pad}`);
      }), { numRuns: 10 });
    await expectWasmMatchesCpu(
      () => tf.conv3dTranspose(randomTensor([2, 3, 3, 3, 4], 1) as tf.Tensor5D, randomTensor([3, 2, 3, 3, 4], 2) as tf.Tensor5D,
        [2, 6, 6, 6, 3], 2, 'same'), 'conv3dTranspose');
    for (const pad of ['same', 'valid'] as const) {
      await expectWasmMatchesCpu(
        () => tf.conv3d(randomTensor([1, 7, 6, 7, 2], 3) as tf.Tensor5D, randomTensor([2, 3, 2, 2, 3], 4) as tf.Tensor5D,
          1, pad, 'NDHWC', [2, 1, 3]), `dilated conv3d ${pad}`);
    }
  });
});

describe('pooling on wasm', () => {
  it('maxPool and avgPool gradients equal float64 references (ties included)', async () => {
    await fc.assert(fc.asyncProperty(poolingGeometry2D, fc.boolean(), async (g, rectified) => {
      const pad = padding2D(g);
      const shape = [g.batch, g.height, g.width, g.channels];
      const filter = [g.filterHeight, g.filterWidth];
      const strides = [g.strideHeight, g.strideWidth];
      // Rectified inputs have many equal zeros: the gradient must go to the first maximum only.
      const input = () => (rectified ? tf.relu(randomTensor(shape, g.seed)) : randomTensor(shape, g.seed));
      for (const kind of ['max', 'avg'] as const) {
        const pool = (x: tf.Tensor) => (kind === 'max'
          ? tf.maxPool(x as tf.Tensor4D, filter as [number, number], strides as [number, number], pad)
          : tf.avgPool(x as tf.Tensor4D, filter as [number, number], strides as [number, number], pad));
        const wasm = await runOn('wasm', () => {
          const x = input();
          const dy = randomTensor(pool(x).shape, g.seed + 1);
          return [x, dy, tf.grad((variable: tf.Tensor) => tf.sum(tf.mul(pool(variable), dy)))(x)];
        });
        const [x, dy, gradient] = wasm.values as [Float32Array, Float32Array, Float32Array];
        const reference = poolingGradientReference(kind, x, shape, dy, filter, strides, pad);
        expectClose(gradient, reference, `${kind}Pool ${JSON.stringify(g)}`);
      }
    }), { numRuns: 20 });
    await tf.setBackend('wasm');
  });

  it('maxPool3d and avgPool3d: outputs equal cpu, gradients equal float64 references', async () => {
    await fc.assert(fc.asyncProperty(
      fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 3 })),
      fc.tuple(fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 2 })),
      fc.constantFrom<'same' | 'valid'>('same', 'valid'), fc.boolean(), fc.nat(),
      async (filter, strides, pad, negative, seed) => {
        const shape = [2, 4, 5, 3, 2];
        // All-negative inputs catch padding that is filled with 0 instead of -∞.
        const input = () => (negative ? tf.sub(tf.abs(randomTensor(shape, seed)), 2) : randomTensor(shape, seed));
        for (const kind of ['max', 'avg'] as const) {
          const pool = (x: tf.Tensor) => (kind === 'max'
            ? tf.maxPool3d(x as tf.Tensor5D, filter, strides, pad)
            : tf.avgPool3d(x as tf.Tensor5D, filter, strides, pad));
          await expectWasmMatchesCpu(() => pool(input()), `${kind}Pool3d ${filter} ${strides} ${pad}`);
          const wasm = await runOn('wasm', () => {
            const x = input();
            const dy = randomTensor(pool(x).shape, seed + 1);
            return [x, dy, tf.grad((variable: tf.Tensor) => tf.sum(tf.mul(pool(variable), dy)))(x)];
          });
          const [x, dy, gradient] = wasm.values as [Float32Array, Float32Array, Float32Array];
          expectClose(gradient, poolingGradientReference(kind, x, shape, dy, filter, strides, pad),
            `${kind}Pool3d gradient ${filter} ${strides} ${pad}`);
        }
      }), { numRuns: 10 });
  });
});

describe('resize gradients on wasm are the adjoint of the forward resize', () => {
  it('resizeBilinear and resizeNearestNeighbor (alignCorners, halfPixelCenters, up and down)', async () => {
    await fc.assert(fc.asyncProperty(
      fc.tuple(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 5 })),
      fc.tuple(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 9 })),
      fc.constantFrom<[boolean, boolean]>([false, false], [true, false], [false, true]),
      fc.constantFrom<'bilinear' | 'nearest'>('bilinear', 'nearest'), fc.nat(),
      async ([height, width], size, [alignCorners, halfPixelCenters], kind, seed) => {
        const shape = [2, height, width, 2];
        const resize = (images: tf.Tensor) => (kind === 'bilinear'
          ? tf.image.resizeBilinear(images as tf.Tensor4D, size, alignCorners, halfPixelCenters)
          : tf.image.resizeNearestNeighbor(images as tf.Tensor4D, size, alignCorners, halfPixelCenters));
        const dyShape = [2, ...size, 2];
        const wasm = await runOn('wasm', () => {
          const dy = randomTensor(dyShape, seed + 1);
          return tf.grad((images: tf.Tensor) => tf.sum(tf.mul(resize(images), dy)))(randomTensor(shape, seed));
        });
        // Adjoint on cpu: resize every unit image, then contract with dy.
        const reference = await runOn('cpu', () => {
          const elements = height * width * 2;
          const unitImages = tf.reshape(tf.eye(elements), [elements, height, width, 2]);
          const responses = tf.reshape(resize(unitImages), [elements, -1]); // [elements, OH·OW·2]
          const dy = tf.reshape(randomTensor(dyShape, seed + 1), [2, -1]);
          return tf.reshape(tf.matMul(dy, responses, false, true), shape);
        });
        await tf.setBackend('wasm');
        expectClose(wasm.values[0]!, reference.values[0]!, `${kind} ${shape} → ${size} ${alignCorners} ${halfPixelCenters}`);
      }), { numRuns: 16 });
  });
});

describe('other ops on wasm equal the cpu backend', () => {
  it('activations and their gradients', async () => {
    const activations: Record<string, (x: tf.Tensor, slope: tf.Tensor) => tf.Tensor> = {
      elu: (x) => tf.elu(x),
      leakyRelu: (x) => tf.leakyRelu(x, 0.2),
      prelu: (x, slope) => tf.prelu(x, slope),
      relu6: (x) => tf.relu6(tf.mul(x, 8)),
      selu: (x) => tf.selu(x),
      sigmoid: (x) => tf.sigmoid(x),
      softplus: (x) => tf.softplus(x),
      erf: (x) => tf.erf(x),
    };
    for (const [name, activation] of Object.entries(activations)) {
      const shapes = name === 'prelu' ? [[2, 4, 5, 3], [3]] : [[2, 4, 5, 3]];
      await expectWasmMatchesCpu(outputAndGradients(
        (x, slope) => activation(tf.mul(x, 3), slope ?? tf.scalar(0)), shapes, 11), name);
    }
  });

  it('gather gradient (UnsortedSegmentSum) and float32 oneHot', async () => {
    await expectWasmMatchesCpu(outputAndGradients(
      (x) => tf.gather(x, tf.tensor1d([0, 3, 3, 1, 0], 'int32'), 1), [[2, 4, 3]], 21), 'gather');
    await expectWasmMatchesCpu(() => [
      tf.oneHot(tf.tensor1d([0, 2, -1, 1, 5], 'int32'), 4, 1, 0, 'float32'),
      tf.cast(tf.oneHot(tf.tensor2d([[0, 2], [1, 3]], [2, 2], 'int32'), 3, 5, -2), 'float32'),
    ], 'oneHot');
  });

  it('tf.grad of a small conv net loss (conv2d, depthwise, pooling, batch norm, dense)', async () => {
    const loss = (...[x, conv, depthwise, scale, offset, pointwise, dense]: tf.Tensor[]): tf.Scalar => {
      let hidden: tf.Tensor4D = tf.relu(tf.conv2d(x as tf.Tensor4D, conv as tf.Tensor4D, 1, 'same'));
      hidden = tf.maxPool(hidden, 2, 2, 'same');
      hidden = tf.relu6(tf.depthwiseConv2d(hidden, depthwise as tf.Tensor4D, 2, 'same'));
      const { mean, variance } = tf.moments(hidden, [0, 1, 2]);
      hidden = tf.batchNorm(hidden, mean, variance, offset as tf.Tensor1D, scale as tf.Tensor1D, 1e-3) as tf.Tensor4D;
      hidden = tf.elu(tf.conv2d(hidden, pointwise as tf.Tensor4D, 1, 'valid'));
      hidden = tf.avgPool(hidden, 2, 2, 'valid');
      const logits = tf.matMul(tf.reshape(hidden, [hidden.shape[0], -1]), dense as tf.Tensor2D);
      return tf.losses.softmaxCrossEntropy(tf.oneHot(tf.tensor1d([1, 0, 2], 'int32'), 3), logits) as tf.Scalar;
    };
    const shapes = [[3, 16, 16, 3], [3, 3, 3, 8], [3, 3, 8, 2], [16], [16], [1, 1, 16, 8], [2 * 2 * 8, 3]];
    await expectWasmMatchesCpu(() => {
      const inputs = shapes.map((shape, index) => randomTensor(shape, 31 + index));
      const { value, grads } = tf.valueAndGrads(loss)(inputs);
      return [value, ...grads];
    }, 'conv net loss');
  });
});

/**
 * Lowering of every IR op to TensorFlow.js ops, on channels-last tensors (see ./layout.ts).
 *
 * Every lowering is exact with respect to the IR's semantics (ONNX's), uses only ops whose gradients tfjs
 * defines, and never asks tfjs for a dilation in a convolution (tfjs's conv gradients refuse dilations > 1).
 * Notation per spatial axis: input length L, kernel k, stride s, dilation d, effective kernel k' = d(k − 1) + 1,
 * pads b (begin) and e (end), output O.
 *
 * Padding. The IR's explicit pads are used as they are; 'same-dynamic' is resolved with the TF SAME rule on the
 * actual input size (what the IR shape rule promises). A convolution passes tfjs 'valid' when every pad is 0 and
 * 'same' when the pads are exactly TF SAME's for this input (TF SAME = the IR's SAME rule); any other pads
 * (asymmetric, or symmetric at stride 2 on even sizes, which is not TF SAME) are applied with `tf.pad`, then the
 * op runs VALID.
 *
 * 1D ops run as 2D ops on [N, 1, L, C] (a unit height axis with kernel 1, stride 1, no pads).
 *
 * Dilation (d > 1 on some axis) — space-to-batch, as TensorFlow's atrous convolution does:
 *   xp = pad(x, b, e). Writing g = gcd(s, d), s' = s/g, d' = d/g:
 *   1. out[o] = Σ_f xp[o·s + f·d] reads only multiples of g, so keep xp[g·j] (pad/reshape/slice: tfjs has no
 *      StridedSlice gradient);
 *   2. now out[o] = Σ_f z[o·s' + f·d']. Axes with d' = 1 are ordinary strided axes. On axes with d' > 1,
 *      `spaceToBatchND` with block d' moves the d' phases z[d'·q + r] into the batch, where the conv is undilated
 *      at stride 1: out1[d'·q + r] = Σ_f z[d'(q + f) + r]; `batchToSpaceND` interleaves the phases back.
 *   3. axes where s' > 1 and d' > 1 (coprime) keep every s'-th output of that stride-1 result (costs s' more
 *      work on those axes only; such layers are rare).
 *
 * Groups. g = 1: conv2d / conv3d. g = C (depthwise, any multiplier M): `depthwiseConv2d` with the filter viewed
 * as [K…, C, M]; in 3D, a sum over the kd depth taps of 2D depthwise convs applied to the depth slices
 * x[o·sd + t] folded into the batch (tfjs has no 3D depthwise conv). 1 < g < C: split the channels, convolve
 * each group, concatenate.
 *
 * Transposed convolution (ONNX ConvTranspose): full[j] = Σ_{i·s + f·d = j} x[i]·W[f] over j < (L − 1)s + k',
 * and out[o] = full[o + b] for o < (L − 1)s + k' − b − e + output_padding. A dilated kernel is first written out
 * with zeros between taps (tfjs's transposed convs have no dilation). 1D/2D: conv2dTranspose at VALID padding
 * per group (groups split and concatenated), then crop b at the start and cut or zero-extend the end
 * (output_padding can reach past `full`; those outputs get only the bias). 3D: tfjs has no gradient for
 * conv3dTranspose (Conv3DBackpropInputV2), so the input is spread by the stride (s − 1 zeros between elements),
 * padded by k' − 1 − b and k' − 1 − e + output_padding (negative amounts crop) and correlated at stride 1 with
 * the spatially reversed kernel, channel axes swapped per group — the same sum, written as a convolution.
 *
 * Pooling. O comes from the IR shape rule (floor, or ceil with ONNX Runtime / PyTorch's "the last window must
 * start inside the input or the begin padding"). The input is padded with b before and e + extra after, where
 * extra = max(0, (O − 1)s + k − (L + b + e)) covers the windows that hang past the padded input in ceil mode,
 * then the op runs VALID. Max pools pad with −∞, so padding never wins (every window holds an input element,
 * as pads are smaller than the kernel). Average pools pad with 0, so the VALID average is sum/∏k; each output
 * is rescaled by ∏k / count, where count = Π_axes |[o·s − b, o·s − b + k) ∩ [lo, hi)| with
 * [lo, hi) = [−b, L + e) when count_include_pad (windows clipped to input + explicit pads, not the ceil-mode
 * extension) and [0, L) otherwise — ONNX Runtime's and PyTorch's divisor.
 *
 * Batch norm. Inference (and frozen nodes even in training): y = γ(x − μ_run)/√(σ²_run + ε) + β, as x·a + b.
 * Training: μ_B, σ²_B are the batch's mean and biased variance over every axis but channels; they normalise the
 * batch (with an analytic gradient, see `batchNormTraining`) and are reported to the trainer, which updates
 * running = momentum·running + (1 − momentum)·batch (Keras/ONNX: momentum weighs the old value; the biased batch
 * variance, as ONNX's BatchNormalization training mode uses; PyTorch would use the unbiased one).
 *
 * Pad op: constant via tf.pad; reflect and edge from slices, reverses and concats (tfjs's MirrorPad
 * gradient keeps only the centre slice and drops the reflected contributions).
 *
 * Upsampling by integer scales, matching ONNX Resize as ONNX Runtime runs it:
 *   nearest — coordinate_transformation_mode asymmetric, nearest_mode floor: out[i] = x[⌊i/s⌋], i.e. every
 *             element repeated s times (reshape + tile, per axis);
 *   linear  — half_pixel: x_orig = (i + ½)/s − ½, clamped to [0, L − 1]. For output i = s·j + r the offset
 *             t = (r + ½)/s − ½ ∈ (−½, ½) is the same for every j, so out = (1 − |t|)·x[j] + |t|·x[j ± 1] with
 *             the edge element repeated at the ends (which is the clamping), computed per phase r and interleaved.
 *
 * Dropout (training only): inverted dropout, keep with probability 1 − rate and scale by 1/(1 − rate); the
 * spatial form draws one decision per (sample, channel). Masks come from `tf.randomUniform` with a seed the
 * trainer derives from (seed, epoch, batch, node), so runs repeat exactly.
 *
 * Softmax takes its axis in NCHW terms; on the channels-last tensor it runs on the mapped axis
 * (exp(x − max)/Σ when that axis is not the last one, which tf.softmax requires).
 */
import * as tf from '@tensorflow/tfjs';
import { evaluateDim } from '../../ir/dims.js';
import { effectiveKernel, type Activation, type Node, type NodeCommon, type NodeOf, type Padding, type PoolAttributes } from '../../ir/graph.js';

type PoolNode = NodeCommon & PoolAttributes;
import type { ParamRole } from '../../ir/params.js';
import { averagePoolCounts, inferShape, resolvePadding } from '../../ir/shapes.js';
import { internalAxis, logicalShape, toInternalPermutation, toLogicalPermutation } from './layout.js';

/** What a lowering needs from the engine. */
export interface LoweringContext {
  /** Training-mode behaviour: batch statistics in batch norm (unless frozen), dropout. */
  readonly training: boolean;
  /** Values of the graph's symbolic dimensions (`N`, `L`…) for this run, for reshape targets. */
  readonly bindings: ReadonlyMap<string, number>;
  /** A parameter of a node, in tfjs layout (./layout.ts). */
  param(node: Node, role: ParamRole): tf.Tensor;
  /** The seed of a dropout node's mask for this run. */
  dropoutSeed(node: Node): number;
  /** Receives the batch statistics of a batch-norm node that normalised with them (training, not frozen). */
  batchStatistics?(node: Node, mean: tf.Tensor1D, variance: tf.Tensor1D): void;
}

/** An op the engine cannot run as asked; names the node. */
export class LoweringError extends Error {
  override readonly name = 'LoweringError';
  constructor(
    readonly node: string,
    message: string,
  ) {
    super(`${node}: ${message}`);
  }
}

/** Runs one IR node on channels-last inputs and returns its channels-last output. */
export function lowerNode(node: Node, inputs: readonly tf.Tensor[], context: LoweringContext): tf.Tensor {
  const x = inputs[0]!;
  switch (node.op) {
    case 'conv':
      return convolution(node, x, context.param(node, 'weight'), node.bias ? context.param(node, 'bias') : undefined);
    case 'conv_transpose':
      return transposedConvolution(node, x, context.param(node, 'weight'), node.bias ? context.param(node, 'bias') : undefined);
    case 'maxpool':
    case 'avgpool':
      return pool(node, x);
    case 'global_avgpool':
    case 'global_maxpool': {
      const axes = spatialAxes(x.rank);
      return node.op === 'global_avgpool' ? tf.mean(x, axes, true) : tf.max(x, axes, true);
    }
    case 'batchnorm':
      return batchNorm(node, x, context);
    case 'activation':
      return activation(node.fn, x);
    case 'dropout':
      return dropout(node, x, context);
    case 'add':
    case 'mul':
      return elementwise(node.op, inputs);
    case 'concat':
      return tf.concat([...inputs], internalAxis(node.axis, x.rank));
    case 'upsample':
      return node.mode === 'nearest' ? upsampleNearest(x, node.scale) : upsampleLinear(x, node.scale);
    case 'flatten':
      return flatten(x);
    case 'reshape':
      return reshape(node, x, context.bindings);
    case 'dense': {
      const y = tf.matMul(x as tf.Tensor2D, context.param(node, 'weight') as tf.Tensor2D);
      return node.bias ? tf.add(y, context.param(node, 'bias')) : y;
    }
    case 'pad':
      return padOp(node, x);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Shared helpers

function spatialAxes(rank: number): number[] {
  const axes: number[] = [];
  for (let axis = 1; axis < rank - 1; axis++) axes.push(axis);
  return axes;
}

function spatialSizes(x: tf.Tensor, rank: number): number[] {
  return x.shape.slice(1, 1 + rank);
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/** Explicit pads for this input: the IR's, or TF SAME resolved on the actual sizes for 'same-dynamic'. */
function explicitPads(padding: Padding | 'same-dynamic', spatial: readonly number[], kernel: readonly number[], stride: readonly number[], dilation: readonly number[]): Padding {
  if (padding !== 'same-dynamic') return padding;
  const resolved = resolvePadding('same', undefined, spatial, kernel, stride, dilation);
  if (resolved === 'same-dynamic') throw new Error('internal: SAME did not resolve on known sizes');
  return resolved;
}

/**
 * Pads (positive amounts) or crops (negative amounts) the spatial axes 1…r of a channels-last tensor; `value`
 * fills the padding.
 */
export function padOrCrop(x: tf.Tensor, begin: readonly number[], end: readonly number[], value = 0): tf.Tensor {
  const rank = begin.length;
  if (begin.every((v) => v === 0) && end.every((v) => v === 0)) return x;
  let y = x;
  if (begin.some((v) => v < 0) || end.some((v) => v < 0)) {
    const start = y.shape.map((_, axis) => (axis >= 1 && axis <= rank ? Math.max(0, -begin[axis - 1]!) : 0));
    const size = y.shape.map((length, axis) => (axis >= 1 && axis <= rank ? length - start[axis]! - Math.max(0, -end[axis - 1]!) : length));
    if (size.some((length) => length <= 0)) throw new Error(`internal: cropping [${begin}]/[${end}] empties a tensor of shape [${x.shape}]`);
    y = tf.slice(y, start, size);
  }
  if (begin.some((v) => v > 0) || end.some((v) => v > 0)) {
    const paddings = y.shape.map((_, axis): [number, number] => (axis >= 1 && axis <= rank ? [Math.max(0, begin[axis - 1]!), Math.max(0, end[axis - 1]!)] : [0, 0]));
    y = tf.pad(y, paddings, value);
  }
  return y;
}

/**
 * Keeps elements 0, step, 2·step … ((count − 1)·step) of one axis, by reshaping the axis into [count, step] and
 * taking column 0 (differentiable, unlike tf.stridedSlice).
 */
export function subsampleAxis(x: tf.Tensor, axis: number, step: number, count: number): tf.Tensor {
  if (step === 1 && x.shape[axis] === count) return x;
  const length = x.shape[axis]!;
  const needed = count * step;
  const before = x.shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const after = x.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  let flat = tf.reshape(x, [before, length, after]);
  if (length > needed) flat = tf.slice(flat, [0, 0, 0], [before, needed, after]);
  else if (length < needed) flat = tf.pad(flat, [[0, 0], [0, needed - length], [0, 0]]);
  const picked = tf.slice(tf.reshape(flat, [before, count, step, after]), [0, 0, 0, 0], [before, count, 1, after]);
  const shape = [...x.shape];
  shape[axis] = count;
  return tf.reshape(picked, shape);
}

/** Slices axis `axis` to its first `count` elements. */
function takeFirst(x: tf.Tensor, axis: number, count: number): tf.Tensor {
  if (x.shape[axis] === count) return x;
  const size = [...x.shape];
  size[axis] = count;
  return tf.slice(x, new Array<number>(x.rank).fill(0), size);
}

/** Output sizes of a node on an input of known logical shape, from the IR's own shape rule. */
function expectedSpatial(node: Node, inputLogical: readonly number[], rank: number): number[] {
  const result = inferShape(node, [inputLogical]);
  if (!result.ok) throw new LoweringError(node.name, `input [${inputLogical.join(', ')}] does not fit: ${JSON.stringify(result.problem)}`);
  return result.shape.slice(2, 2 + rank).map((d) => {
    if (typeof d !== 'number') throw new Error('internal: output size is symbolic for a known input');
    return d;
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Convolution

/** tfjs's padding argument when the explicit pads are exactly 'valid' or TF 'same' for these sizes. */
function nativePadding(spatial: readonly number[], kernel: readonly number[], stride: readonly number[], pads: Padding): 'valid' | 'same' | undefined {
  if (pads.begin.every((v) => v === 0) && pads.end.every((v) => v === 0)) return 'valid';
  const same = kernel.every((k, i) => {
    const size = spatial[i]!;
    const total = Math.max((Math.ceil(size / stride[i]!) - 1) * stride[i]! + k - size, 0);
    return pads.begin[i] === Math.floor(total / 2) && pads.end[i] === total - Math.floor(total / 2);
  });
  return same ? 'same' : undefined;
}

function convolution(node: NodeOf<'conv'>, x: tf.Tensor, filter: tf.Tensor, bias: tf.Tensor | undefined): tf.Tensor {
  const rank = node.kernel.length;
  const pads = explicitPads(node.padding, spatialSizes(x, rank), node.kernel, node.stride, node.dilation);
  let y: tf.Tensor;
  if (rank === 1) {
    y = convolutionNd(tf.expandDims(x, 1), tf.expandDims(filter, 0), [1, node.kernel[0]!], [1, node.stride[0]!], [1, node.dilation[0]!], { begin: [0, pads.begin[0]!], end: [0, pads.end[0]!] }, node.groups);
    y = tf.squeeze(y, [1]);
  } else {
    y = convolutionNd(x, filter, node.kernel, node.stride, node.dilation, pads, node.groups);
  }
  return bias ? tf.add(y, bias) : y;
}

/** Whether `fusedConvolution` can run this conv: 2D, undilated, with groups 1 or depthwise. */
export function fusableConvolution(node: NodeOf<'conv'>): boolean {
  return node.kernel.length === 2 && node.dilation.every((d) => d === 1) && (node.groups === 1 || node.groups === node.inChannels);
}

/** The activations `fusedConvolution` applies inside the convolution. */
export type FusedActivation = 'linear' | 'relu' | 'relu6';

/**
 * A conv with its bias and a ReLU/ReLU6 in one op (tf.fused.conv2d / depthwiseConv2d: XNNPACK adds the bias and
 * clamps while it writes the convolution's output), for the engine's inference path, which passes a batch norm
 * that follows the conv already folded into `filter` and `bias`. Padding as `convolution` does it. Under a
 * gradient tape tfjs itself falls back to separate ops for ReLU/ReLU6, so gradients stay defined.
 */
export function fusedConvolution(node: NodeOf<'conv'>, x: tf.Tensor, filter: tf.Tensor, bias: tf.Tensor | undefined, activation: FusedActivation): tf.Tensor {
  const spatial = spatialSizes(x, 2);
  const pads = explicitPads(node.padding, spatial, node.kernel, node.stride, node.dilation);
  let input = x;
  let padding = nativePadding(spatial, node.kernel, node.stride, pads);
  if (padding === undefined) {
    input = padOrCrop(x, pads.begin, pads.end);
    padding = 'valid';
  }
  const strides: [number, number] = [node.stride[0]!, node.stride[1]!];
  const fusedBias = bias as tf.Tensor1D | undefined;
  if (node.groups === 1) return tf.fused.conv2d({ x: input as tf.Tensor4D, filter: filter as tf.Tensor4D, strides, pad: padding, bias: fusedBias, activation });
  const channels = x.shape[3]!;
  const depthwiseFilter = tf.reshape(filter, [node.kernel[0]!, node.kernel[1]!, channels, node.filters / channels]) as tf.Tensor4D;
  return tf.fused.depthwiseConv2d({ x: input as tf.Tensor4D, filter: depthwiseFilter, strides, pad: padding, bias: fusedBias, activation });
}

/** 2D or 3D convolution with any pads, stride, dilation and groups (see the module header). */
function convolutionNd(
  input: tf.Tensor,
  filter: tf.Tensor,
  kernel: readonly number[],
  stride: readonly number[],
  dilation: readonly number[],
  pads: Padding,
  groups: number,
): tf.Tensor {
  const rank = kernel.length;
  const channels = input.shape[rank + 1]!;
  const depthwise3d = rank === 3 && groups > 1 && groups === channels;
  let x = input;
  if (dilation.every((d) => d === 1)) {
    let padding = depthwise3d ? undefined : nativePadding(spatialSizes(x, rank), kernel, stride, pads);
    if (padding === undefined) {
      x = padOrCrop(x, pads.begin, pads.end);
      padding = 'valid';
    }
    return groupedConvolution(x, filter, stride, padding, groups);
  }
  x = padOrCrop(x, pads.begin, pads.end);
  const padded = spatialSizes(x, rank);
  const out = padded.map((length, i) => Math.floor((length - effectiveKernel(kernel[i]!, dilation[i]!)) / stride[i]!) + 1);
  // 1. keep the multiples of g = gcd(s, d)
  const common = stride.map((s, i) => gcd(s, dilation[i]!));
  common.forEach((g, i) => {
    if (g > 1) x = subsampleAxis(x, i + 1, g, Math.ceil(padded[i]! / g));
  });
  const reducedStride = stride.map((s, i) => s / common[i]!);
  const reducedDilation = dilation.map((d, i) => d / common[i]!);
  const block = reducedDilation;
  const convStride = reducedStride.map((s, i) => (reducedDilation[i] === 1 ? s : 1));
  const lengths = spatialSizes(x, rank);
  // output of step 2 per axis: stride-1 dilated output on block axes, the strided output elsewhere
  const stepTwo = lengths.map((length, i) => (block[i]! > 1 ? length - block[i]! * (kernel[i]! - 1) : Math.floor((length - kernel[i]!) / convStride[i]!) + 1));
  let y: tf.Tensor;
  if (block.some((b) => b > 1)) {
    const extra = lengths.map((length, i) => (block[i]! - (length % block[i]!)) % block[i]!);
    const batched = tf.spaceToBatchND(x, [...block], extra.map((e) => [0, e]));
    const convolved = groupedConvolution(batched, filter, convStride, 'valid', groups);
    const crops = spatialSizes(convolved, rank).map((length, i) => length * block[i]! - stepTwo[i]!);
    y = tf.batchToSpaceND(convolved, [...block], crops.map((c) => [0, c]));
  } else {
    y = groupedConvolution(x, filter, convStride, 'valid', groups);
  }
  // 3. every s'-th output on axes with both a reduced stride and a reduced dilation above 1
  for (let i = 0; i < rank; i++) {
    if (block[i]! > 1 && reducedStride[i]! > 1) y = subsampleAxis(y, i + 1, reducedStride[i]!, out[i]!);
    else y = takeFirst(y, i + 1, out[i]!);
  }
  return y;
}

/** Undilated 2D/3D convolution with groups. */
function groupedConvolution(x: tf.Tensor, filter: tf.Tensor, stride: readonly number[], padding: 'valid' | 'same', groups: number): tf.Tensor {
  const rank = stride.length;
  const channels = x.shape[rank + 1]!;
  if (groups === 1) return plainConvolution(x, filter, stride, padding);
  const kernel = filter.shape.slice(0, rank);
  const outChannels = filter.shape[rank + 1]!;
  if (groups === channels) {
    const depthwiseFilter = tf.reshape(filter, [...kernel, channels, outChannels / channels]);
    if (rank === 2) return tf.depthwiseConv2d(x as tf.Tensor4D, depthwiseFilter as tf.Tensor4D, [stride[0]!, stride[1]!], padding);
    if (padding !== 'valid') throw new Error('internal: 3D depthwise convolution runs VALID');
    return depthwiseConvolution3d(x, depthwiseFilter, stride);
  }
  const inPerGroup = channels / groups;
  const outPerGroup = outChannels / groups;
  const parts: tf.Tensor[] = [];
  for (let group = 0; group < groups; group++) {
    const xs = tf.slice(x, [...new Array<number>(rank + 1).fill(0), group * inPerGroup], [...x.shape.slice(0, rank + 1), inPerGroup]);
    const fs = tf.slice(filter, [...new Array<number>(rank + 1).fill(0), group * outPerGroup], [...filter.shape.slice(0, rank + 1), outPerGroup]);
    parts.push(plainConvolution(xs, fs, stride, padding));
  }
  return tf.concat(parts, rank + 1);
}

function plainConvolution(x: tf.Tensor, filter: tf.Tensor, stride: readonly number[], padding: 'valid' | 'same'): tf.Tensor {
  if (stride.length === 2) return tf.conv2d(x as tf.Tensor4D, filter as tf.Tensor4D, [stride[0]!, stride[1]!], padding);
  return tf.conv3d(x as tf.Tensor5D, filter as tf.Tensor5D, [stride[0]!, stride[1]!, stride[2]!], padding);
}

/**
 * VALID 3D depthwise convolution: out[o] = Σ_t dw2d(x[o·sd + t], W[t]); the depth slices for tap t are folded
 * into the batch, so one 2D depthwise conv per tap.
 */
function depthwiseConvolution3d(x: tf.Tensor, filter: tf.Tensor, stride: readonly number[]): tf.Tensor {
  const [batch, depth, height, width, channels] = x.shape as [number, number, number, number, number];
  const [kd, kh, kw, , multiplier] = filter.shape as [number, number, number, number, number];
  const outDepth = Math.floor((depth - kd) / stride[0]!) + 1;
  const taps: tf.Tensor[] = [];
  for (let t = 0; t < kd; t++) {
    const span = (outDepth - 1) * stride[0]! + 1;
    const slab = subsampleAxis(tf.slice(x, [0, t, 0, 0, 0], [batch, span, height, width, channels]), 1, stride[0]!, outDepth);
    const folded = tf.reshape(slab, [batch * outDepth, height, width, channels]) as tf.Tensor4D;
    const tap = tf.reshape(tf.slice(filter, [t, 0, 0, 0, 0], [1, kh, kw, channels, multiplier]), [kh, kw, channels, multiplier]) as tf.Tensor4D;
    taps.push(tf.depthwiseConv2d(folded, tap, [stride[1]!, stride[2]!], 'valid'));
  }
  const sum = taps.length === 1 ? taps[0]! : tf.addN(taps);
  return tf.reshape(sum, [batch, outDepth, sum.shape[1]!, sum.shape[2]!, channels * multiplier]);
}

/** Writes a dilated kernel out explicitly: d − 1 zeros between taps on each kernel axis (axes 0…r−1). */
function dilateFilter(filter: tf.Tensor, dilation: readonly number[]): tf.Tensor {
  let f = filter;
  dilation.forEach((d, axis) => {
    if (d === 1) return;
    const k = f.shape[axis]!;
    const before = f.shape.slice(0, axis).reduce((a, b) => a * b, 1);
    const after = f.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
    const spread = tf.pad(tf.reshape(f, [before, k, 1, after]), [[0, 0], [0, 0], [0, d - 1], [0, 0]]);
    const flat = tf.slice(tf.reshape(spread, [before, k * d, after]), [0, 0, 0], [before, (k - 1) * d + 1, after]);
    const shape = [...f.shape];
    shape[axis] = (k - 1) * d + 1;
    f = tf.reshape(flat, shape);
  });
  return f;
}

function transposedConvolution(node: NodeOf<'conv_transpose'>, x: tf.Tensor, filter: tf.Tensor, bias: tf.Tensor | undefined): tf.Tensor {
  let y: tf.Tensor;
  if (node.kernel.length === 1) {
    y = transposedConvolutionNd(tf.expandDims(x, 1), tf.expandDims(filter, 0), [1, node.stride[0]!], [1, node.dilation[0]!], { begin: [0, node.padding.begin[0]!], end: [0, node.padding.end[0]!] }, [0, node.outputPadding[0]!], node.groups);
    y = tf.squeeze(y, [1]);
  } else {
    y = transposedConvolutionNd(x, filter, node.stride, node.dilation, node.padding, node.outputPadding, node.groups);
  }
  return bias ? tf.add(y, bias) : y;
}

function transposedConvolutionNd(
  x: tf.Tensor,
  weight: tf.Tensor,
  stride: readonly number[],
  dilation: readonly number[],
  pads: Padding,
  outputPadding: readonly number[],
  groups: number,
): tf.Tensor {
  const rank = stride.length;
  const filter = dilation.some((d) => d > 1) ? dilateFilter(weight, dilation) : weight;
  const kernel = filter.shape.slice(0, rank);
  const input = spatialSizes(x, rank);
  const full = input.map((length, i) => (length - 1) * stride[i]! + kernel[i]!);
  const batch = x.shape[0]!;
  const inChannels = x.shape[rank + 1]!;
  const outPerGroup = filter.shape[rank]!;
  const inPerGroup = inChannels / groups;
  const out = full.map((length, i) => length - pads.begin[i]! - pads.end[i]! + outputPadding[i]!);
  if (rank === 3) return transposedConvolution3d(x, filter, stride, pads, out, groups);
  const parts: tf.Tensor[] = [];
  for (let group = 0; group < groups; group++) {
    const xs = groups === 1 ? x : tf.slice(x, [...new Array<number>(rank + 1).fill(0), group * inPerGroup], [...x.shape.slice(0, rank + 1), inPerGroup]);
    const fs = groups === 1 ? filter : tf.slice(filter, [...new Array<number>(rank + 1).fill(0), group * inPerGroup], [...filter.shape.slice(0, rank + 1), inPerGroup]);
    const outputShape = [batch, ...full, outPerGroup];
    parts.push(tf.conv2dTranspose(xs as tf.Tensor4D, fs as tf.Tensor4D, outputShape as [number, number, number, number], [stride[0]!, stride[1]!], 'valid'));
  }
  const y = parts.length === 1 ? parts[0]! : tf.concat(parts, rank + 1);
  // out[o] = full[o + b]: crop b at the start; cut or zero-extend the end to the ONNX output size
  return padOrCrop(y, pads.begin.map((b) => -b), out.map((o, i) => o - (full[i]! - pads.begin[i]!)));
}

/**
 * 3D transposed convolution as a convolution (tfjs has no gradient for Conv3DBackpropInputV2, which
 * conv3dTranspose is): with the input spread by the stride (s − 1 zeros between elements) and padded by
 * k' − 1 − b before and k' − 1 − e + output_padding after (negative amounts crop),
 *   out[o] = Σ_f spread[o + f − (k' − 1 − b)]·W[f] = Σ_f' padded[o + f']·W[k' − 1 − f'],
 * a stride-1 correlation with the spatially reversed kernel whose in/out channel axes are swapped per group.
 * (`filter` is already dilated, so k' is its size.)
 */
function transposedConvolution3d(x: tf.Tensor, filter: tf.Tensor, stride: readonly number[], pads: Padding, out: readonly number[], groups: number): tf.Tensor {
  const rank = 3;
  const kernel = filter.shape.slice(0, rank);
  const inChannels = x.shape[rank + 1]!;
  const inPerGroup = inChannels / groups;
  let spread = x;
  stride.forEach((s, i) => {
    if (s === 1) return;
    const axis = i + 1;
    const length = spread.shape[axis]!;
    const before = spread.shape.slice(0, axis).reduce((a, b) => a * b, 1);
    const after = spread.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
    const spaced = tf.reshape(tf.pad(tf.reshape(spread, [before, length, 1, after]), [[0, 0], [0, 0], [0, s - 1], [0, 0]]), [before, length * s, after]);
    const shape = [...spread.shape];
    shape[axis] = (length - 1) * s + 1;
    spread = tf.reshape(tf.slice(spaced, [0, 0, 0], [before, shape[axis]!, after]), shape);
  });
  // [K…, O/g, I] → per group [K…, I/g, O/g], concatenated over groups along the output axis, kernel reversed
  const perGroup: tf.Tensor[] = [];
  for (let group = 0; group < groups; group++) {
    const slab = groups === 1 ? filter : tf.slice(filter, [0, 0, 0, 0, group * inPerGroup], [...filter.shape.slice(0, rank + 1), inPerGroup]);
    perGroup.push(tf.transpose(slab, [0, 1, 2, 4, 3]));
  }
  const swapped = perGroup.length === 1 ? perGroup[0]! : tf.concat(perGroup, rank + 1);
  const reversed = tf.reverse(swapped, [0, 1, 2]);
  const begin = kernel.map((k, i) => k - 1 - pads.begin[i]!);
  const spreadSizes = spatialSizes(spread, rank);
  const end = kernel.map((k, i) => out[i]! + k - 1 - begin[i]! - spreadSizes[i]!);
  const ones = [1, 1, 1];
  return convolutionNd(spread, reversed, kernel, ones, ones, { begin, end }, groups);
}

// ---------------------------------------------------------------------------------------------------------------
// Pooling

function pool(node: PoolNode, x: tf.Tensor): tf.Tensor {
  const rank = node.kernel.length;
  const spatial = spatialSizes(x, rank);
  const pads = explicitPads(node.padding, spatial, node.kernel, node.stride, node.kernel.map(() => 1));
  const out = expectedSpatial(node, logicalShape(x.shape), rank);
  const extra = out.map((o, i) => Math.max(0, (o - 1) * node.stride[i]! + node.kernel[i]! - (spatial[i]! + pads.begin[i]! + pads.end[i]!)));
  const isMax = node.op === 'maxpool';
  let xp = padOrCrop(x, pads.begin, pads.end.map((e, i) => e + extra[i]!), isMax ? Number.NEGATIVE_INFINITY : 0);
  let kernel = [...node.kernel];
  let stride = [...node.stride];
  if (rank === 1) {
    xp = tf.expandDims(xp, 1);
    kernel = [1, ...kernel];
    stride = [1, ...stride];
  }
  let y: tf.Tensor;
  if (kernel.length === 2) {
    const k: [number, number] = [kernel[0]!, kernel[1]!];
    const s: [number, number] = [stride[0]!, stride[1]!];
    y = isMax ? tf.maxPool(xp as tf.Tensor4D, k, s, 'valid') : tf.avgPool(xp as tf.Tensor4D, k, s, 'valid');
  } else {
    const k: [number, number, number] = [kernel[0]!, kernel[1]!, kernel[2]!];
    const s: [number, number, number] = [stride[0]!, stride[1]!, stride[2]!];
    y = isMax ? tf.maxPool3d(xp as tf.Tensor5D, k, s, 'valid') : tf.avgPool3d(xp as tf.Tensor5D, k, s, 'valid');
  }
  if (rank === 1) y = tf.squeeze(y, [1]);
  for (let i = 0; i < rank; i++) y = takeFirst(y, i + 1, out[i]!);
  if (isMax) return y;
  const factor = averageCorrection(node, spatial, pads, out);
  return factor ? tf.mul(y, factor) : y;
}

/** ∏k / count per output position (see the module header), or undefined when every window counts ∏k. */
function averageCorrection(node: PoolNode, spatial: readonly number[], pads: Padding, out: readonly number[]): tf.Tensor | undefined {
  const counts = averagePoolCounts(node, pads, spatial, out);
  const windowSize = node.kernel.reduce((a, b) => a * b, 1);
  if (counts.every((count) => count === windowSize)) return undefined;
  return tf.tensor(counts.map((count) => windowSize / count), [1, ...out, 1]);
}

// ---------------------------------------------------------------------------------------------------------------
// Normalisation, activations, dropout

function batchNorm(node: NodeOf<'batchnorm'>, x: tf.Tensor, context: LoweringContext): tf.Tensor {
  const channels = x.shape[x.rank - 1]!;
  // Per channel on the last axis, so a [rows, C] view serves every rank.
  const rows = tf.reshape(x, [x.size / channels, channels]) as tf.Tensor2D;
  const gamma = context.param(node, 'weight') as tf.Tensor1D;
  const beta = context.param(node, 'bias') as tf.Tensor1D;
  let y: tf.Tensor;
  if (context.training && !node.frozen) {
    let statistics: { mean: tf.Tensor1D; variance: tf.Tensor1D } | undefined;
    y = batchNormTraining(node.epsilon, (s) => (statistics = s))(rows, gamma, beta) as tf.Tensor;
    if (statistics) {
      if (context.batchStatistics) context.batchStatistics(node, statistics.mean, statistics.variance);
      else tf.dispose([statistics.mean, statistics.variance]);
    }
  } else {
    // y = x·a + b with a = γ/√(σ² + ε), b = β − μ·a: broadcasting ops whose gradients need no tiling
    const scale = tf.mul(gamma, tf.rsqrt(tf.add(context.param(node, 'running_var'), node.epsilon)));
    const shift = tf.sub(beta, tf.mul(context.param(node, 'running_mean'), scale));
    y = tf.add(tf.mul(rows, scale), shift);
  }
  return tf.reshape(y, x.shape);
}

/**
 * Training-mode batch norm on [M, C] with its analytic gradient (tfjs's FusedBatchNorm gradient tiles every
 * per-channel vector to the full input, which dominated a training step):
 *   μ_B = Σ_m x/M;  d = x − μ_B;  σ²_B = Σ_m d²/M;  r = 1/√(σ²_B + ε);  y = d·(γr) + β
 *   ∂β = Σ_m dy;  s = Σ_m dy·d;  ∂γ = s·r;  ∂x = γr·(dy − ∂β/M) − d·(γr³·s/M)
 * (the last is γ·r·(dy − ∂β/M − x̂·∂γ/M) with x̂ = d·r, written on d so that x̂ is never formed).
 * The means over the M rows go through `meanOverRows`. The batch statistics go to `report` (kept tensors
 * the receiver owns).
 */
function batchNormTraining(epsilon: number, report: (statistics: { mean: tf.Tensor1D; variance: tf.Tensor1D }) => void) {
  return tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [x, gamma, beta, save] = args as [tf.Tensor2D, tf.Tensor1D, tf.Tensor1D, tf.GradSaveFunc];
    const mean = meanOverRows(x);
    const centered = tf.sub(x, mean);
    const variance = meanOverRows(tf.square(centered) as tf.Tensor2D);
    const r = tf.rsqrt(tf.add(variance, epsilon));
    save([centered, r, gamma]);
    report({ mean: tf.keep(mean), variance: tf.keep(variance) });
    return {
      value: tf.add(tf.mul(centered, tf.mul(gamma, r)), beta),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const gradient = dy as tf.Tensor2D;
        const [d, inverse, scale] = saved as [tf.Tensor2D, tf.Tensor1D, tf.Tensor1D];
        const rows = gradient.shape[0];
        const dShift = meanOverRows(gradient); // ∂β/M
        const sOverRows = meanOverRows(tf.mul(gradient, d) as tf.Tensor2D); // s/M
        const gammaR = tf.mul(scale, inverse);
        const dCentered = tf.mul(gammaR, tf.mul(tf.square(inverse), sOverRows));
        const dx = tf.sub(tf.mul(tf.sub(gradient, dShift), gammaR), tf.mul(d, dCentered));
        return [dx, tf.mul(tf.mul(sOverRows, inverse), rows), tf.mul(dShift, rows)];
      },
    };
  });
}

/**
 * The mean over the rows of [M, C], per column. On wasm it is an average pooling of [1, M, 1, C] with an
 * [M, 1] window (XNNPACK, channels innermost): tfjs's wasm Mean and Sum over a leading axis transpose the
 * whole input first, which ran about 50 times slower and made batch norm the largest cost of a training
 * step; a [1, M]·[M, C] matMul packs its right operand each call and is 5 times slower than the pooling.
 * Other backends reduce natively.
 */
function meanOverRows(x: tf.Tensor2D): tf.Tensor1D {
  const [rows, channels] = x.shape;
  if (tf.getBackend() !== 'wasm') return tf.mean(x, 0);
  const pooled = tf.avgPool(tf.reshape(x, [1, rows, 1, channels]) as tf.Tensor4D, [rows, 1], 1, 'valid');
  return tf.reshape(pooled, [channels]);
}

/** Applies an activation (softmax's axis is logical, NCHW). */
export function activation(fn: Activation, x: tf.Tensor): tf.Tensor {
  switch (fn.kind) {
    case 'relu':
      return tf.relu(x);
    case 'relu6':
      return tf.relu6(x);
    case 'leaky_relu':
      return tf.leakyRelu(x, fn.alpha);
    case 'elu':
      if (fn.alpha === 1) return tf.elu(x);
      // relu(x) + α(e^min(x, 0) − 1): no comparison op on the tape (tfjs has no gradient for Greater)
      return tf.add(tf.relu(x), tf.mul(tf.sub(tf.exp(tf.minimum(x, 0)), 1), fn.alpha));
    case 'sigmoid':
      return tf.sigmoid(x);
    case 'hard_sigmoid':
      return tf.clipByValue(tf.add(tf.mul(x, fn.alpha), fn.beta), 0, 1);
    case 'tanh':
      return tf.tanh(x);
    case 'swish':
      return tf.mul(x, tf.sigmoid(x));
    case 'hard_swish':
      return tf.mul(x, tf.div(tf.relu6(tf.add(x, 3)), 6));
    case 'gelu':
      return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
    case 'softmax': {
      const axis = internalAxis(fn.axis, x.rank);
      if (axis === x.rank - 1) return tf.softmax(x);
      const shifted = tf.sub(x, tf.max(x, axis, true));
      const e = tf.exp(shifted);
      return tf.div(e, tf.sum(e, axis, true));
    }
  }
}

function dropout(node: NodeOf<'dropout'>, x: tf.Tensor, context: LoweringContext): tf.Tensor {
  if (!context.training || node.rate === 0) return x;
  const shape = node.spatial && x.rank >= 3 ? x.shape.map((d, axis) => (axis === 0 || axis === x.rank - 1 ? d : 1)) : x.shape;
  const keep = tf.cast(tf.greaterEqual(tf.randomUniform(shape, 0, 1, 'float32', context.dropoutSeed(node)), node.rate), 'float32');
  return tf.mul(x, tf.mul(keep, 1 / (1 - node.rate)));
}

// ---------------------------------------------------------------------------------------------------------------
// Element-wise, shape ops

/** A channels-last tensor of rank r as a channels-last tensor of rank `rank` ≥ r, broadcast as in the IR. */
function alignRank(x: tf.Tensor, rank: number): tf.Tensor {
  if (x.rank === rank) return x;
  const logical = x.rank >= 3 ? tf.transpose(x, toLogicalPermutation(x.rank)) : x;
  const expanded = tf.reshape(logical, [...new Array<number>(rank - x.rank).fill(1), ...logical.shape]);
  return rank >= 3 ? tf.transpose(expanded, toInternalPermutation(rank)) : expanded;
}

function elementwise(op: 'add' | 'mul', inputs: readonly tf.Tensor[]): tf.Tensor {
  const rank = Math.max(...inputs.map((t) => t.rank));
  const aligned = inputs.map((t) => alignRank(t, rank));
  if (op === 'add' && aligned.length > 2 && aligned.every((t) => t.shape.every((d, i) => d === aligned[0]!.shape[i]))) return tf.addN(aligned);
  return aligned.slice(1).reduce((acc, t) => (op === 'add' ? tf.add(acc, t) : tf.mul(acc, t)), aligned[0]!);
}

function flatten(x: tf.Tensor): tf.Tensor {
  const batch = x.shape[0]!;
  if (x.rank < 3) return x.rank === 2 ? x : tf.reshape(x, [batch, -1]);
  // NCHW element order: a transpose, unless the spatial axes are all 1 (then both orders agree)
  const spatialOnes = x.shape.slice(1, -1).every((d) => d === 1);
  const logical = spatialOnes ? x : tf.transpose(x, toLogicalPermutation(x.rank));
  return tf.reshape(logical, [batch, x.size / batch]);
}

/**
 * The target is the node's output shape without the batch axis ([N, …target] with a −1 already resolved by the
 * shape rule); symbols the inputs do not bind become tf.reshape's −1.
 */
function reshape(node: NodeOf<'reshape'>, x: tf.Tensor, bindings: ReadonlyMap<string, number>): tf.Tensor {
  const target = node.shape.slice(1).map((d) => {
    const value = evaluateDim(d, bindings);
    return typeof value === 'number' ? value : -1;
  });
  if (target.filter((d) => d === -1).length > 1) throw new LoweringError(node.name, 'the reshape target has more than one dimension whose symbols the inputs do not bind');
  const logical = x.rank >= 3 ? tf.transpose(x, toLogicalPermutation(x.rank)) : x;
  const y = tf.reshape(logical, [x.shape[0]!, ...target]);
  return y.rank >= 3 ? tf.transpose(y, toInternalPermutation(y.rank)) : y;
}

function upsampleNearest(x: tf.Tensor, scale: readonly number[]): tf.Tensor {
  let y = x;
  scale.forEach((s, i) => {
    if (s === 1) return;
    const axis = i + 1;
    const before = y.shape.slice(0, axis + 1).reduce((a, b) => a * b, 1);
    const after = y.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
    const repeated = tf.tile(tf.reshape(y, [before, 1, after]), [1, s, 1]);
    const shape = [...y.shape];
    shape[axis] = shape[axis]! * s;
    y = tf.reshape(repeated, shape);
  });
  return y;
}

function upsampleLinear(x: tf.Tensor, scale: readonly number[]): tf.Tensor {
  let y = x;
  scale.forEach((s, i) => {
    if (s === 1) return;
    const axis = i + 1;
    const length = y.shape[axis]!;
    const before = y.shape.slice(0, axis).reduce((a, b) => a * b, 1);
    const after = y.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
    const flat = tf.reshape(y, [before, length, after]);
    const first = tf.slice(flat, [0, 0, 0], [before, 1, after]);
    const last = tf.slice(flat, [0, length - 1, 0], [before, 1, after]);
    const previous = length === 1 ? flat : tf.concat([first, tf.slice(flat, [0, 0, 0], [before, length - 1, after])], 1);
    const next = length === 1 ? flat : tf.concat([tf.slice(flat, [0, 1, 0], [before, length - 1, after]), last], 1);
    const phases: tf.Tensor[] = [];
    for (let r = 0; r < s; r++) {
      const t = (r + 0.5) / s - 0.5;
      if (t === 0) phases.push(flat);
      else phases.push(tf.add(tf.mul(flat, 1 - Math.abs(t)), tf.mul(t < 0 ? previous : next, Math.abs(t))));
    }
    const interleaved = tf.stack(phases, 2);
    const shape = [...y.shape];
    shape[axis] = length * s;
    y = tf.reshape(interleaved, shape);
  });
  return y;
}

function padOp(node: NodeOf<'pad'>, x: tf.Tensor): tf.Tensor {
  const { begin, end } = node.padding;
  if (node.mode === 'constant') return padOrCrop(x, begin, end, node.value);
  // cropping first (negative pads), then the mode's padding
  let y = padOrCrop(x, begin.map((b) => Math.min(b, 0)), end.map((e) => Math.min(e, 0)));
  // Built from slices, reverses and a concat: tfjs's MirrorPad gradient drops the reflected contributions.
  begin.forEach((b0, i) => {
    const b = Math.max(b0, 0);
    const e = Math.max(end[i]!, 0);
    if (b === 0 && e === 0) return;
    const axis = i + 1;
    const length = y.shape[axis]!;
    const take = (start: number, count: number): tf.Tensor => {
      const from = new Array<number>(y.rank).fill(0);
      from[axis] = start;
      const size = [...y.shape];
      size[axis] = count;
      return tf.slice(y, from, size);
    };
    // copies joined, not tf.tile: tfjs has no tile gradient for rank-5 tensors (3D edge padding)
    const repeat = (slab: tf.Tensor, times: number): tf.Tensor => (times === 1 ? slab : tf.concat(new Array<tf.Tensor>(times).fill(slab), axis));
    const parts: tf.Tensor[] = [];
    if (node.mode === 'reflect') {
      if (b >= length || e >= length) throw new LoweringError(node.name, `reflect padding of ${Math.max(b, e)} needs more than ${length} elements on axis ${axis + 1}`);
      if (b > 0) parts.push(tf.reverse(take(1, b), axis));
      parts.push(y);
      if (e > 0) parts.push(tf.reverse(take(length - 1 - e, e), axis));
    } else {
      if (b > 0) parts.push(repeat(take(0, 1), b));
      parts.push(y);
      if (e > 0) parts.push(repeat(take(length - 1, 1), e));
    }
    y = tf.concat(parts, axis);
  });
  return y;
}

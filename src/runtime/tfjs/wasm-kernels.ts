/**
 * Kernels that the TensorFlow.js wasm backend (4.22) lacks, composed from kernels it has.
 *
 * Why: `tf.grad` and `model.fit` of any convolutional network need the gradient kernels of
 * convolution. A survey of tfjs 4.22 found that, of the kernels a convolutional engine uses
 * (2D/3D convolution and their backprops, depthwise and transposed convolution, 2D/3D pooling
 * and their gradients, resizing and its gradients, batch normalisation, the activations Elu,
 * LeakyRelu, Prelu, Relu6, Selu, Sigmoid, Softplus, Erf, padding, tiling, slicing, reductions),
 * the wasm backend registers everything except:
 *   - `Conv2DBackpropFilter`                 (filter gradient of conv1d/conv2d/separable conv,
 *                                             and the dy gradient of conv2dTranspose)
 *   - `DepthwiseConv2dNativeBackpropFilter`  (filter gradient of depthwise convolution)
 *   - `DepthwiseConv2dNativeBackpropInput`   (input gradient of depthwise convolution)
 *   - `UnsortedSegmentSum`                   (gradient of `tf.gather`)
 * (`Einsum`, the complex-number and FFT kernels and the ragged/string kernels are missing
 * too, but a convolutional engine does not need them.)
 *
 * Each kernel below computes with ordinary tf ops inside `tf.tidy`: while the wasm backend is
 * active those ops dispatch to wasm kernels, the intermediates are freed by the tidy and the
 * one returned tensor becomes the kernel's output. Ops run inside a kernel are not recorded
 * on the gradient tape, so the compositions are invisible to autodiff.
 *
 * Notation: x is the convolution input [N, H, W, C], dy the output gradient [N, OH, OW, K],
 * (FH, FW) the filter size, (sh, sw) the strides, (dh, dw) the dilations, (pt, pl) the top and
 * left padding that `computeConv2DInfo` derives from `pad`, and FHe = (FH - 1)·dh + 1 the
 * dilated ("effective") filter height. Let xp be x placed inside zeros so that
 * xp[n, i, j, c] = x[n, i - pt, j - pl, c].
 *
 * Conv2DBackpropFilter:
 *   dW[fh, fw, c, k] = Σ_{n, oh, ow} xp[n, oh·sh + fh, ow·sw + fw, c] · dy[n, oh, ow, k].
 *   Read with c as the batch, n as the input channel and dy as an (OH × OW) filter, this is a
 *   stride-1 convolution dilated by the strides: conv2d(transpose(xp, [C, Hp, Wp, N]),
 *   transpose(dy, [OH, OW, N, K]), stride 1, dilation (sh, sw)) = [C, FH, FW, K], transposed
 *   back to [FH, FW, C, K]. xp is cut (or zero-extended) to Hp = (OH - 1)·sh + FH rows so that
 *   the output has exactly FH rows (rows the forward convolution never read are dropped).
 *
 * DepthwiseConv2dNativeBackpropFilter (filter [FH, FW, C, M], dy channel c·M + m):
 *   dW[fh, fw, c, m] = Σ_{n, oh, ow} xp[n, oh·sh + fh·dh, ow·sw + fw·dw, c] · dy[n, oh, ow, c·M + m].
 *   Put batch and channel together as N·C channels of one image, and dy as an (OH × OW)
 *   filter with channel multiplier M: depthwiseConv2d(xp as [1, Hp, Wp, N·C], dy as
 *   [OH, OW, N·C, M], stride (dh, dw), dilation (sh, sw)) = [1, FH, FW, N·C·M]; summing over n
 *   gives dW. tfjs refuses strides and dilations both above 1, so when the forward
 *   convolution had both, the correlation is taken for the dilated filter (stride 1,
 *   FHe × FWe taps) and every dh-th, dw-th tap is kept.
 *
 * DepthwiseConv2dNativeBackpropInput:
 *   dx[n, h, w, c] = Σ_{fh, fw, m} dy[n, oh, ow, c·M + m] · W[fh, fw, c, m] where
 *   h = oh·sh + fh·dh - pt. Spread dy by the strides (sh - 1 zeros between rows, likewise
 *   columns), place it with FHe - 1 - pt zeros before (cut if negative) and to H + FHe - 1 rows,
 *   then a stride-1 depthwise correlation dilated by (dh, dw) with the spatially reversed
 *   filter, taken per dy channel (multiplier 1), gives [N, H, W, C·M]; summing the M
 *   channels of each c gives dx.
 *
 * UnsortedSegmentSum:
 *   out[s, ...] = Σ_{i : ids[i] = s} x[i, ...] = oneHot(ids, S)ᵀ · x (ids out of [0, S)
 *   contribute nothing, as in TensorFlow).
 *
 * Only channels-last (NHWC) layouts occur for depthwise convolution; Conv2DBackpropFilter
 * also accepts NCHW by transposing to NHWC first (the wasm forward Conv2D itself is NHWC only).
 */
import * as tf from '@tensorflow/tfjs';

/** The backend these kernels are registered for. */
const wasmBackendName = 'wasm';

type Tensor4D = tf.Tensor4D;
type Conv2DInfo = ReturnType<typeof tf.backend_util.computeConv2DInfo>;

/**
 * A kernel input as a Tensor. Inputs from `tf.engine().runKernel` already are Tensors; a bare
 * TensorInfo (from a backend calling kernels directly) gets a Tensor that shares its data and
 * that the surrounding tidy disposes.
 */
function asTensor<T extends tf.Tensor = tf.Tensor>(info: tf.TensorInfo): T {
  if (info instanceof tf.Tensor) {
    return info as T;
  }
  return tf.engine().makeTensorFromTensorInfo(info) as T;
}

/**
 * Places the spatial axes (1 and 2) of x into a zero tensor of spatial size `size`, so that
 * result[n, i, j, c] = x[n, i - before[0], j - before[1], c] and is 0 where that falls outside
 * x. A negative `before`, or a `size` shorter than x, cuts x.
 */
function placeSpatially(x: Tensor4D, before: [number, number], size: [number, number]): Tensor4D {
  const [batch, , , channels] = x.shape;
  const sliceBegin: [number, number, number, number] = [0, 0, 0, 0];
  const sliceSize: [number, number, number, number] = [batch, x.shape[1], x.shape[2], channels];
  const padding: Array<[number, number]> = [[0, 0], [0, 0], [0, 0], [0, 0]];
  let needsSlice = false;
  let needsPad = false;
  for (const spatialIndex of [0, 1]) {
    const axis = spatialIndex + 1;
    const length = x.shape[axis];
    const offset = before[spatialIndex];
    const total = size[spatialIndex];
    const start = Math.max(0, -offset);
    const end = Math.min(length, total - offset);
    if (end <= start) {
      return tf.zeros([batch, size[0], size[1], channels], x.dtype);
    }
    sliceBegin[axis] = start;
    sliceSize[axis] = end - start;
    const padBefore = Math.max(0, offset);
    padding[axis] = [padBefore, total - padBefore - (end - start)];
    needsSlice ||= start > 0 || end < length;
    needsPad ||= padding[axis][0] > 0 || padding[axis][1] > 0;
  }
  let placed = x;
  if (needsSlice) {
    placed = tf.slice(placed, sliceBegin, sliceSize);
  }
  if (needsPad) {
    placed = tf.pad(placed, padding);
  }
  return placed;
}

/** Rows and columns of the zero-placed input that a convolution described by `info` reads. */
function readExtent(info: Conv2DInfo): [number, number] {
  return [
    (info.outHeight - 1) * info.strideHeight + info.effectiveFilterHeight,
    (info.outWidth - 1) * info.strideWidth + info.effectiveFilterWidth,
  ];
}

/** Filter gradient of conv2d: a stride-1 convolution, dilated by the strides, over transposed tensors. */
function conv2dBackpropFilter(args: {
  inputs: tf.NamedTensorInfoMap;
  attrs?: tf.NamedAttrMap;
}): tf.TensorInfo {
  const attrs = args.attrs as unknown as tf.Conv2DBackpropFilterAttrs;
  return tf.tidy(() => {
    let input = asTensor<Tensor4D>(args.inputs.x!);
    let outputGradient = asTensor<Tensor4D>(args.inputs.dy!);
    if (attrs.dataFormat === 'NCHW') {
      input = tf.transpose(input, [0, 2, 3, 1]);
      outputGradient = tf.transpose(outputGradient, [0, 2, 3, 1]);
    }
    const info = tf.backend_util.computeConv2DInfo(
      input.shape, attrs.filterShape, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode, false,
      'channelsLast');
    const placed = placeSpatially(input, [info.padInfo.top, info.padInfo.left], readExtent(info));
    // [C, Hp, Wp, N]: input channels become the batch, the batch becomes the channels.
    const channelsAsBatch = tf.transpose(placed, [3, 1, 2, 0]);
    // [OH, OW, N, K]: the output gradient becomes an OH × OW filter from N to K channels.
    const gradientAsFilter = tf.transpose(outputGradient, [1, 2, 0, 3]);
    const correlation = tf.conv2d(
      channelsAsBatch, gradientAsFilter, 1, 'valid', 'NHWC', [info.strideHeight, info.strideWidth]);
    return tf.transpose(correlation, [1, 2, 0, 3]);
  });
}

/** Filter gradient of depthwise convolution: a depthwise correlation over batch-and-channel planes. */
function depthwiseConv2dNativeBackpropFilter(args: {
  inputs: tf.NamedTensorInfoMap;
  attrs?: tf.NamedAttrMap;
}): tf.TensorInfo {
  const attrs = args.attrs as unknown as tf.DepthwiseConv2dNativeBackpropFilterAttrs;
  return tf.tidy(() => {
    const input = asTensor<Tensor4D>(args.inputs.x!);
    const outputGradient = asTensor<Tensor4D>(args.inputs.dy!);
    const info = tf.backend_util.computeConv2DInfo(
      input.shape, attrs.filterShape, attrs.strides, attrs.dilations ?? 1, attrs.pad,
      attrs.dimRoundingMode, true);
    const [filterHeight, filterWidth, channels, multiplier] = attrs.filterShape;
    const [batch] = input.shape;
    const { outHeight, outWidth, strideHeight, strideWidth, dilationHeight, dilationWidth } = info;
    const [placedHeight, placedWidth] = readExtent(info);
    const placed = placeSpatially(input, [info.padInfo.top, info.padInfo.left], [placedHeight, placedWidth]);
    // [1, Hp, Wp, N·C]: each (image, channel) plane becomes one channel of a single image.
    const planes = tf.reshape<tf.Rank.R4>(
      tf.transpose(placed, [1, 2, 0, 3]), [1, placedHeight, placedWidth, batch * channels]);
    // [OH, OW, N·C, M]: the output gradient as a depthwise filter with multiplier M.
    const gradientAsFilter = tf.reshape<tf.Rank.R4>(
      tf.transpose(outputGradient, [1, 2, 0, 3]), [outHeight, outWidth, batch * channels, multiplier]);
    const stridesAreOne = strideHeight === 1 && strideWidth === 1;
    const dilationsAreOne = dilationHeight === 1 && dilationWidth === 1;
    let correlation: Tensor4D;
    if (stridesAreOne || dilationsAreOne) {
      correlation = tf.depthwiseConv2d(
        planes, gradientAsFilter, [dilationHeight, dilationWidth], 'valid', 'NHWC',
        [strideHeight, strideWidth]) as Tensor4D;
    } else {
      const everyTap = tf.depthwiseConv2d(
        planes, gradientAsFilter, 1, 'valid', 'NHWC', [strideHeight, strideWidth]);
      correlation = tf.stridedSlice(
        everyTap, [0, 0, 0, 0], everyTap.shape, [1, dilationHeight, dilationWidth, 1]) as Tensor4D;
    }
    return tf.sum(
      tf.reshape(correlation, [filterHeight, filterWidth, batch, channels, multiplier]), 2);
  });
}

/** Input gradient of depthwise convolution: a correlation of the spread gradient with the reversed filter. */
function depthwiseConv2dNativeBackpropInput(args: {
  inputs: tf.NamedTensorInfoMap;
  attrs?: tf.NamedAttrMap;
}): tf.TensorInfo {
  const attrs = args.attrs as unknown as tf.DepthwiseConv2dNativeBackpropInputAttrs;
  return tf.tidy(() => {
    const outputGradient = asTensor<Tensor4D>(args.inputs.dy!);
    const filter = asTensor<Tensor4D>(args.inputs.filter!);
    const info = tf.backend_util.computeConv2DInfo(
      attrs.inputShape, filter.shape, attrs.strides, attrs.dilations ?? 1, attrs.pad,
      attrs.dimRoundingMode, true);
    const [batch, height, width, channels] = attrs.inputShape;
    const [filterHeight, filterWidth, , multiplier] = filter.shape;
    const { outHeight, outWidth, strideHeight, strideWidth } = info;
    const gradientChannels = channels * multiplier;
    let spread: Tensor4D = outputGradient;
    if (strideHeight > 1 || strideWidth > 1) {
      // Insert stride - 1 zeros after every row and column.
      const separated = tf.reshape(outputGradient, [batch, outHeight, 1, outWidth, 1, gradientChannels]);
      const zeroFilled = tf.pad(separated, [[0, 0], [0, 0], [0, strideHeight - 1], [0, 0], [0, strideWidth - 1], [0, 0]]);
      spread = tf.reshape<tf.Rank.R4>(zeroFilled, [batch, outHeight * strideHeight, outWidth * strideWidth, gradientChannels]);
    }
    const placed = placeSpatially(
      spread,
      [info.effectiveFilterHeight - 1 - info.padInfo.top, info.effectiveFilterWidth - 1 - info.padInfo.left],
      [height + info.effectiveFilterHeight - 1, width + info.effectiveFilterWidth - 1]);
    const reversedFilter = tf.reshape<tf.Rank.R4>(
      tf.reverse(filter, [0, 1]), [filterHeight, filterWidth, gradientChannels, 1]);
    const correlation = tf.depthwiseConv2d(
      placed, reversedFilter, 1, 'valid', 'NHWC', [info.dilationHeight, info.dilationWidth]);
    if (multiplier === 1) {
      return correlation;
    }
    return tf.sum(tf.reshape(correlation, [batch, height, width, channels, multiplier]), 4);
  });
}

/** Sums of x's leading slices per segment id: a one-hot matrix product. */
function unsortedSegmentSum(args: {
  inputs: tf.NamedTensorInfoMap;
  attrs?: tf.NamedAttrMap;
}): tf.TensorInfo {
  const attrs = args.attrs as unknown as tf.UnsortedSegmentSumAttrs;
  return tf.tidy(() => {
    const values = asTensor(args.inputs.x!);
    const segmentIds = asTensor(args.inputs.segmentIds!);
    const count = segmentIds.size;
    const trailingShape = values.shape.slice(segmentIds.rank);
    const trailingSize = trailingShape.reduce((product, extent) => product * extent, 1);
    const rows = tf.reshape(tf.cast(values, 'float32'), [count, trailingSize]);
    // membership[i, s] = 1 where ids[i] = s. (Built with `equal`, not `oneHot`: the wasm
    // OneHot kernel writes integer bits into float32 outputs.)
    const membership = tf.cast(
      tf.equal(
        tf.reshape(tf.cast(segmentIds, 'int32'), [count, 1]),
        tf.range(0, attrs.numSegments, 1, 'int32').reshape([1, attrs.numSegments])),
      'float32');
    const sums = tf.matMul(membership, rows, true, false);
    const shaped = tf.reshape(sums, [attrs.numSegments, ...trailingShape]);
    return values.dtype === 'float32' ? shaped : tf.cast(shaped, values.dtype);
  });
}

/** The kernels this module composes for the wasm backend, by kernel name. */
const compositeKernels: ReadonlyArray<{ kernelName: string; kernelFunc: tf.KernelFunc }> = [
  { kernelName: tf.Conv2DBackpropFilter, kernelFunc: conv2dBackpropFilter as tf.KernelFunc },
  {
    kernelName: tf.DepthwiseConv2dNativeBackpropFilter,
    kernelFunc: depthwiseConv2dNativeBackpropFilter as tf.KernelFunc,
  },
  {
    kernelName: tf.DepthwiseConv2dNativeBackpropInput,
    kernelFunc: depthwiseConv2dNativeBackpropInput as tf.KernelFunc,
  },
  { kernelName: tf.UnsortedSegmentSum, kernelFunc: unsortedSegmentSum as tf.KernelFunc },
];

/** Names of the kernels that `registerMissingWasmKernels` supplies when the wasm backend lacks them. */
export const compositeWasmKernelNames: readonly string[] = compositeKernels.map(
  (kernel) => kernel.kernelName);

/**
 * Registers, for the wasm backend, each composed kernel that is not registered yet, and
 * returns the names registered by this call. Idempotent: the kernel registry itself records
 * what is registered, so a second call (or a future wasm backend that ships these kernels)
 * registers nothing. Safe to call before the wasm backend is imported or initialised.
 */
export function registerMissingWasmKernels(): string[] {
  const registered: string[] = [];
  for (const { kernelName, kernelFunc } of compositeKernels) {
    if (tf.getKernel(kernelName, wasmBackendName) !== undefined) {
      continue;
    }
    tf.registerKernel({ kernelName, backendName: wasmBackendName, kernelFunc });
    registered.push(kernelName);
  }
  return registered;
}

/**
 * Kernels for the TensorFlow.js wasm backend (tfjs 4.22) that it lacks, computes wrongly or
 * computes slowly, each composed from wasm kernels that are right and fast (XNNPACK).
 *
 * Why: `tf.grad` and `model.fit` of convolutional networks need the gradient kernels of
 * convolution, pooling and resizing. A survey of every kernel a convolutional engine uses,
 * forward and gradient, against the cpu backend and against exact references (the adjoint of
 * each linear forward op, built from the forward op itself; a float64 max-pool gradient) found:
 *   missing:
 *     Conv2DBackpropFilter, DepthwiseConv2dNativeBackpropFilter,
 *     DepthwiseConv2dNativeBackpropInput, UnsortedSegmentSum (the gradient of `tf.gather`).
 *   wrong:
 *     Conv3DBackpropInputV2 (always), Conv3DBackpropFilterV2 (strides above 1), MaxPoolGrad
 *     (most shapes), MaxPool3DGrad ('same' padding), MaxPool3D (pads with 0 instead of -∞, so
 *     windows of negative values at a padded border give 0), ResizeNearestNeighborGrad and
 *     ResizeBilinearGrad (with halfPixelCenters), AvgPoolGrad and AvgPool3DGrad (with padding
 *     they divide by the whole window, while the forward pooling divides by the number of input
 *     elements in the window; the cpu backend has the same mistake), OneHot (writes integer bits
 *     into float32 outputs); and, for some paddings, Conv2D, FusedConv2D,
 *     DepthwiseConv2dNative, FusedDepthwiseConv2D (with 'same' padding when the last window ends
 *     before the input does, XNNPACK derives TensorFlow SAME padding without clamping it at zero
 *     and returns zeros: length 6, filter 2, stride 3, say) and these with MaxPool and AvgPool
 *     (a numeric pad with dimRoundingMode 'ceil' or 'round': the larger output is filled from a
 *     floor-rounded computation).
 *   slow:
 *     Conv2DBackpropInput and Conv3D are plain loops, 5–30× slower than compositions of the
 *     XNNPACK 2D convolution.
 *   right (agree with cpu to about 1e-7): the other forward kernels above, Conv2D in NHWC (it
 *     refuses NCHW), AvgPool3D, ResizeBilinear, ResizeNearestNeighbor, FusedBatchNorm,
 *     Elu/EluGrad, LeakyRelu, Prelu, Relu, Relu6, Selu, Sigmoid, Softplus, Erf, PadV2,
 *     MirrorPad, Tile, Unpack, Transpose, StridedSlice (slow for large tensors), Concat,
 *     SplitV, Max, Mean, Sum, Step, GreaterEqual, Softmax, LRN.
 * (Einsum and the complex, FFT, ragged and string kernels are missing too; a convolutional
 * engine does not need them. Explicit pooling padding as large as the window, leaving windows
 * without input elements, stays unsupported on wasm; tfjs gradients drop dimRoundingMode on
 * every backend.)
 *
 * Each composed kernel computes with ordinary tf ops inside `tf.tidy`: while the wasm backend
 * is active they dispatch to wasm kernels, the tidy frees the intermediates and the returned
 * tensor becomes the kernel's output. Ops run inside a kernel are not recorded on the gradient
 * tape. Slices of rank 5 go through rank-3 views and transposes through merged axes, because
 * wasm runs rank-5 slices about a hundred times and rank-5 transposes about twenty times slower.
 *
 * Notation: x is a convolution or pooling input [N, spatial..., C], dy the output gradient
 * [N, O..., K], F the filter (window) size, s the strides, d the dilations, p the padding
 * before each spatial axis (as `computeConv2DInfo` and friends derive it from `pad`), and
 * Fe = (F - 1)·d + 1 the dilated filter size. "Place" means putting a tensor into zeros at an
 * offset (cutting where the offset is negative or the target is shorter); xp is x placed at
 * offset p into (O - 1)·s + Fe positions per axis, which is what the forward op reads. "Phase
 * r" of an axis is the elements at positions ≡ r (mod s), taken with a reshape and a slice.
 *
 * Conv2DBackpropFilter, Conv3DBackpropFilterV2:
 *   dW[f, c, k] = Σ_{n, o} xp[n, o·s + f, c] · dy[n, o, k]. With c as the batch, n as the input
 *   channel and dy as an O-sized filter this is a stride-1 convolution dilated by s:
 *   conv(transpose(xp) [C, Xp..., N], transpose(dy) [O..., N, K], dilation s) = [C, F..., K],
 *   transposed back to [F..., C, K].
 * Conv2DBackpropInput, Conv3DBackpropInputV2 (transposed convolution):
 *   dx[n, i, c] = Σ_{f, o : o·s + f - p = i} dy[n, o, k] · W[f, c, k]. The padded position
 *   j = i + p of phase r (j = q·s + r) only receives taps f ≡ r (mod s), so phase r is the
 *   stride-1 correlation of dy (placed at offset ⌈F / s⌉ - 1) with the spatially reversed
 *   sub-filter W[r::s] (channel axes swapped); the phases are interleaved and the padding cut.
 *   No zeros are multiplied, unlike correlating dy spread with s - 1 zeros between elements.
 * Conv3D: out[n, od] = Σ_fd conv2d(xp[n, od·sd + fd·dd], W[fd]): one 2D convolution of all
 *   depth planes per filter depth tap, summed.
 * DepthwiseConv2dNativeBackpropFilter (filter [FH, FW, C, M], dy channel c·M + m):
 *   dW[f, c, m] = Σ_{n, o} xp[n, o·s + f·d, c] · dy[n, o, c·M + m]. With (n, c) as the N·C
 *   channels of one image and dy as an O-sized depthwise filter of multiplier M:
 *   depthwiseConv2d(xp [1, Xp..., N·C], dy [O..., N·C, M], stride d, dilation s) =
 *   [1, FH, FW, N·C·M], summed over n. tfjs refuses strides and dilations both above 1, so then
 *   the correlation is taken at stride 1 (every tap of the dilated filter) and every d-th kept.
 * DepthwiseConv2dNativeBackpropInput:
 *   dx[n, i, c] = Σ_{f, m, o : o·s + f·d - p = i} dy[n, o, c·M + m] · W[f, c, m]. Spread dy
 *   with s - 1 zeros between elements, place it at offset Fe - 1 - p into X + Fe - 1 positions,
 *   correlate each dy channel (stride 1, dilation d) with the spatially reversed filter and sum
 *   the M channels of each c.
 * AvgPoolGrad, AvgPool3DGrad: the forward divides each window sum by its count of input
 *   elements, count(o) = Π_axes |[o·s - p, o·s - p + F) ∩ [0, X)|, so dx is the transposed
 *   convolution (as above, with an all-ones filter) of dy / count.
 * MaxPool3D: max is separable over axes, so the input is placed into -∞ at the padding
 *   offsets, max-pooled over (H, W) for every depth plane with the 2D kernel ('valid'), and
 *   then over depth as a [FD, 1] 2D pooling of [N, D, OH·OW, C].
 * MaxPoolGrad, MaxPool3DGrad: each window's gradient goes to its first maximum in row-major
 *   order, as in TensorFlow. For each filter tap f (in that order) the tap's window values are
 *   xp[o·s + f] (padding filled with -∞); where they equal the pooled output the tap takes what
 *   is left of dy (so only the first maximum gets it). Tap f = q·s + r reads phase r of xp at
 *   offset q, and its share lands in phase r of the gradient at offset q: the input is split
 *   into phases once, each tap works on output-sized tensors, and the gradient's phases are
 *   interleaved once. One pass per tap, so meant for the small windows of convolutional nets.
 * ResizeBilinearGrad, ResizeNearestNeighborGrad: resizing is separable and linear,
 *   y[n, i, j, c] = Σ_{h, w} A[i, h] · B[j, w] · x[n, h, w, c], so dx = Aᵀ-and-Bᵀ applied to dy.
 *   A's columns are the forward resize (same alignCorners and halfPixelCenters) of the unit
 *   images e_h of size [H, 1] to [OH, 1]; likewise B. The gradient is thereby the exact adjoint
 *   of the forward kernel, whatever its coordinate convention.
 * UnsortedSegmentSum: out[t, ...] = Σ_{i : ids[i] = t} x[i, ...] = (ids == t)ᵀ · x; ids outside
 *   [0, T) contribute nothing, as in TensorFlow.
 * OneHot: out[..., j] = (indices == j) ? onValue : offValue, in the requested dtype.
 * Conv2D, FusedConv2D, DepthwiseConv2dNative, FusedDepthwiseConv2D, MaxPool, AvgPool: the
 *   backend's own kernel, called with 'same' padding or a rounding mode turned into the explicit
 *   padding [p, (O - 1)·s + Fe - X - p] (the second clamped at 0) that yields the same output.
 *
 * Depthwise convolution and pooling are channels-last only on wasm (as the forward kernels
 * are); Conv2DBackpropFilter and Conv2DBackpropInput also accept NCHW by transposing.
 * The registered kernel functions carry a mark (a well-known symbol property), so registering
 * again leaves them alone.
 */
import * as tf from '@tensorflow/tfjs';
// Registers the wasm backend and its own kernels first, so that the replacements below stay.
import '@tensorflow/tfjs-backend-wasm';

/** The backend these kernels are registered for. */
const wasmBackendName = 'wasm';

type KernelArguments = { inputs: tf.NamedTensorInfoMap; attrs?: tf.NamedAttrMap; backend?: unknown };

/** What the kernels written directly on the wasm heap use of the wasm backend (`BackendWasm`). */
interface WasmHeapBackend {
  /** Allocates an output on the heap (which may grow the heap, so views are taken afterwards). */
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  /** A typed-array view of a tensor's data on the heap. */
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
}

function heapBackend(args: KernelArguments): WasmHeapBackend {
  const backend = args.backend as Partial<WasmHeapBackend> | undefined;
  if (typeof backend?.makeOutput !== 'function' || typeof backend.typedArrayFromHeap !== 'function') {
    throw new Error('wasm kernel: called without the wasm backend');
  }
  return backend as WasmHeapBackend;
}

/** The named inputs of a kernel call, each required. */
function requireInputs<K extends string>(args: KernelArguments, ...names: K[]): Record<K, tf.TensorInfo> {
  const found = {} as Record<K, tf.TensorInfo>;
  for (const name of names) {
    const info = args.inputs[name];
    if (info === undefined) {
      throw new Error(`wasm kernel: the ${name} input is missing`);
    }
    found[name] = info;
  }
  return found;
}

/** A float32 kernel input (the kernels written on the heap read float32 data only). */
function floatInput(info: tf.TensorInfo): tf.TensorInfo {
  if (info.dtype !== 'float32') {
    throw new Error(`wasm kernel: expected float32 data, got ${info.dtype}`);
  }
  return info;
}
type Conv2DInfo = ReturnType<typeof tf.backend_util.computeConv2DInfo>;

/**
 * A kernel input as a Tensor. Inputs from `tf.engine().runKernel` already are Tensors; a bare
 * TensorInfo (from a backend calling kernels directly) gets a Tensor that shares its data and
 * that the surrounding tidy disposes.
 */
function asTensor<T extends tf.Tensor = tf.Tensor>(info: tf.TensorInfo | undefined): T {
  if (info === undefined) {
    throw new Error('wasm composite kernel: a required input is missing');
  }
  if (info instanceof tf.Tensor) {
    return info as T;
  }
  return tf.engine().makeTensorFromTensorInfo(info) as T;
}

function product(values: readonly number[]): number {
  return values.reduce((accumulated, value) => accumulated * value, 1);
}

/**
 * tf.slice through rank-3 views, one sliced axis at a time: on wasm, slicing a tensor of rank
 * 5 or more takes a generic path about a hundred times slower.
 */
function sliceAxes<T extends tf.Tensor>(x: T, begin: readonly number[], size: readonly number[]): T {
  if (x.rank <= 4) {
    return tf.slice(x, [...begin], [...size]) as T;
  }
  let sliced: tf.Tensor = x;
  begin.forEach((start, axis) => {
    const shape = sliced.shape;
    if (start === 0 && size[axis] === shape[axis]) {
      return;
    }
    const outer = product(shape.slice(0, axis));
    const inner = product(shape.slice(axis + 1));
    const view = tf.slice(tf.reshape(sliced, [outer, shape[axis]!, inner]), [0, start, 0], [outer, size[axis]!, inner]);
    const slicedShape = [...shape];
    slicedShape[axis] = size[axis]!;
    sliced = tf.reshape(view, slicedShape);
  });
  return sliced as T;
}

/**
 * tf.transpose with runs of axes that stay adjacent merged into one, so that the permutation
 * has the fewest axes (transposes of rank 5 are many times slower on wasm than of rank 3 or 4).
 */
function transposeMerged<T extends tf.Tensor>(x: T, permutation: readonly number[]): T {
  const runs: number[][] = [];
  for (const axis of permutation) {
    const run = runs[runs.length - 1];
    if (run !== undefined && run[run.length - 1]! + 1 === axis) {
      run.push(axis);
    } else {
      runs.push([axis]);
    }
  }
  if (runs.length === 1) {
    return x;
  }
  const inputOrder = [...runs].sort((first, second) => first[0]! - second[0]!);
  const mergedShape = inputOrder.map((run) => product(run.map((axis) => x.shape[axis]!)));
  const mergedPermutation = runs.map((run) => inputOrder.indexOf(run));
  const transposed = tf.transpose(tf.reshape(x, mergedShape), mergedPermutation);
  return tf.reshape(transposed, permutation.map((axis) => x.shape[axis]!)) as T;
}

/** Spatial extents of a channels-last tensor: every axis but the first and the last. */
function spatialShape(shape: readonly number[]): number[] {
  return shape.slice(1, shape.length - 1);
}

/**
 * Places the spatial axes of channels-last x into a tensor filled with `fillValue`, so that
 * result[n, i..., c] = x[n, (i - before)..., c] where that index exists. A negative `before`,
 * or a `size` too short for x, cuts x.
 */
function placeSpatially<T extends tf.Tensor>(
  x: T, before: readonly number[], size: readonly number[], fillValue = 0,
): T {
  const rank = x.rank;
  const sliceBegin = new Array<number>(rank).fill(0);
  const sliceSize = [...x.shape];
  const padding: Array<[number, number]> = x.shape.map(() => [0, 0]);
  let needsSlice = false;
  let needsPad = false;
  for (let spatialAxis = 0; spatialAxis < before.length; spatialAxis++) {
    const axis = spatialAxis + 1;
    const length = x.shape[axis]!;
    const offset = before[spatialAxis]!;
    const total = size[spatialAxis]!;
    const start = Math.max(0, -offset);
    const end = Math.min(length, total - offset);
    if (end <= start) {
      const emptyShape = [...x.shape];
      size.forEach((extent, index) => { emptyShape[index + 1] = extent; });
      return tf.fill(emptyShape, fillValue, x.dtype) as T;
    }
    sliceBegin[axis] = start;
    sliceSize[axis] = end - start;
    const padBefore = Math.max(0, offset);
    padding[axis] = [padBefore, total - padBefore - (end - start)];
    needsSlice ||= start > 0 || end < length;
    needsPad ||= padding[axis]![0] > 0 || padding[axis]![1] > 0;
  }
  let placed: tf.Tensor = x;
  if (needsSlice) {
    placed = sliceAxes(placed, sliceBegin, sliceSize);
  }
  if (needsPad) {
    placed = tf.pad(placed, padding, fillValue);
  }
  return placed as T;
}

/** Inserts stride - 1 zeros after every element along each spatial axis of channels-last x. */
function spreadSpatially<T extends tf.Tensor>(x: T, strides: readonly number[]): T {
  let spread: tf.Tensor = x;
  strides.forEach((stride, spatialAxis) => {
    if (stride === 1) {
      return;
    }
    const axis = spatialAxis + 1;
    const shape = spread.shape;
    const outer = product(shape.slice(0, axis + 1));
    const inner = product(shape.slice(axis + 1));
    const separated = tf.reshape(spread, [outer, 1, inner]);
    const zeroFilled = tf.pad(separated, [[0, 0], [0, stride - 1], [0, 0]]);
    const spreadShape = [...shape];
    spreadShape[axis] = shape[axis]! * stride;
    spread = tf.reshape(zeroFilled, spreadShape);
  });
  return spread as T;
}

/**
 * Splits `axis` of x, whose extent is a multiple of `stride`, into its phases: phase r holds
 * x[..., k·stride + r, ...] for every k. (Reshapes and slices: tfjs's strided slice is slow on wasm.)
 */
function phasesAlongAxis(x: tf.Tensor, axis: number, stride: number): tf.Tensor[] {
  if (stride === 1) {
    return [x];
  }
  const shape = x.shape;
  const count = shape[axis]! / stride;
  const outer = product(shape.slice(0, axis));
  const inner = product(shape.slice(axis + 1));
  const grouped = tf.reshape(x, [outer, count, stride, inner]);
  const phaseShape = [...shape];
  phaseShape[axis] = count;
  return Array.from({ length: stride }, (_, phase) =>
    tf.reshape(tf.slice(grouped, [0, 0, phase, 0], [outer, count, 1, inner]), phaseShape));
}

/** The inverse of `phasesAlongAxis`: result[..., k·s + r, ...] = phases[r][..., k, ...]. */
function interleaveAlongAxis(phases: readonly tf.Tensor[], axis: number): tf.Tensor {
  const first = phases[0]!;
  if (phases.length === 1) {
    return first;
  }
  const shape = first.shape;
  const outer = product(shape.slice(0, axis));
  const inner = product(shape.slice(axis + 1));
  const grouped = tf.concat(phases.map((phase) => tf.reshape(phase, [outer, shape[axis]!, 1, inner])), 2);
  const interleavedShape = [...shape];
  interleavedShape[axis] = shape[axis]! * phases.length;
  return tf.reshape(grouped, interleavedShape);
}

/** Every phase of x along consecutive axes from `firstAxis`, keyed by the phase tuple. */
function splitPhases(x: tf.Tensor, strides: readonly number[], firstAxis: number): Map<string, tf.Tensor> {
  let parts: Array<{ phase: number[]; tensor: tf.Tensor }> = [{ phase: [], tensor: x }];
  strides.forEach((stride, index) => {
    parts = parts.flatMap(({ phase, tensor }) => phasesAlongAxis(tensor, firstAxis + index, stride)
      .map((piece, remainder) => ({ phase: [...phase, remainder], tensor: piece })));
  });
  return new Map(parts.map(({ phase, tensor }) => [phase.join(','), tensor]));
}

/** The inverse of `splitPhases`, with `phaseTensor(phase)` giving each phase. */
function joinPhases(
  phaseTensor: (phase: number[]) => tf.Tensor, strides: readonly number[], firstAxis: number,
): tf.Tensor {
  const build = (prefix: number[]): tf.Tensor => {
    const index = prefix.length;
    if (index === strides.length) {
      return phaseTensor(prefix);
    }
    return interleaveAlongAxis(
      Array.from({ length: strides[index]! }, (_, remainder) => build([...prefix, remainder])), firstAxis + index);
  };
  return build([]);
}

/** Every filter tap position of a window of extents `filterSize`, in row-major order. */
function filterTaps(filterSize: readonly number[]): number[][] {
  let taps: number[][] = [[]];
  for (const extent of filterSize) {
    const extended: number[][] = [];
    for (const tap of taps) {
      for (let position = 0; position < extent; position++) {
        extended.push([...tap, position]);
      }
    }
    taps = extended;
  }
  return taps;
}

/** Filter gradient of a 2D or 3D convolution: a convolution, dilated by the strides, over transposed tensors. */
function convolutionFilterGradient(
  input: tf.Tensor, outputGradient: tf.Tensor, filterShape: readonly number[],
  strides: readonly number[], padBefore: readonly number[],
): tf.Tensor {
  const rank = input.rank;
  const spatialRank = rank - 2;
  const outputExtents = spatialShape(outputGradient.shape);
  const readExtents = outputExtents.map((extent, axis) => (extent - 1) * strides[axis]! + filterShape[axis]!);
  const placed = placeSpatially(input, padBefore, readExtents);
  const inChannels = input.shape[rank - 1]!;
  if (spatialRank === 2 && inChannels <= gemmFilterGradientChannels && strides.every((stride) => stride === 1)) {
    return filterGradientByTaps(placed as tf.Tensor4D, outputGradient as tf.Tensor4D, filterShape);
  }
  const spatialAxes = Array.from({ length: spatialRank }, (_, axis) => axis + 1);
  // [C, Xp..., N]: input channels become the batch, the batch becomes the channels.
  const channelsAsBatch = transposeMerged(placed, [rank - 1, ...spatialAxes, 0]);
  // [O..., N, K]: the output gradient becomes an O-sized filter from N to K channels.
  const gradientAsFilter = transposeMerged(outputGradient, [...spatialAxes, 0, rank - 1]);
  const correlation = spatialRank === 2
    ? tf.conv2d(channelsAsBatch as tf.Tensor4D, gradientAsFilter as tf.Tensor4D, 1, 'valid', 'NHWC',
      strides as [number, number])
    : tf.conv3d(channelsAsBatch as tf.Tensor5D, gradientAsFilter as tf.Tensor5D, 1, 'valid', 'NDHWC',
      strides as [number, number, number]);
  // [C, F..., K] to [F..., C, K].
  return transposeMerged(correlation, [...spatialAxes, 0, rank - 1]);
}

/** Up to this many input channels, `filterGradientByTaps` beats the convolution of `convolutionFilterGradient`. */
const gemmFilterGradientChannels = 4;

/**
 * Filter gradient of a stride-1 2D convolution as one matrix product, for inputs with few channels (a
 * network's first layer): with xp the placed input and taps f = (fh, fw),
 *   A[(f, c), (n, o)] = xp[n, o + f, c]  (one slice of the channel-first input per tap),  dW = A · dy[(n, o), k].
 * The convolution form runs a 1-image batch through XNNPACK with the whole output gradient as a filter
 * packed anew each call, about 6 times slower for a single input channel.
 */
function filterGradientByTaps(placed: tf.Tensor4D, outputGradient: tf.Tensor4D, filterShape: readonly number[]): tf.Tensor {
  const [batch, readHeight, readWidth, channels] = placed.shape;
  const [, outHeight, outWidth, outChannels] = outputGradient.shape;
  const [filterHeight, filterWidth] = filterShape as [number, number];
  // [C·N, Hp, Wp]: one plane per (channel, image).
  const planes = tf.reshape(transposeMerged(placed, [3, 0, 1, 2]), [channels * batch, readHeight, readWidth]);
  const rows: tf.Tensor[] = [];
  for (let fh = 0; fh < filterHeight; fh++) {
    for (let fw = 0; fw < filterWidth; fw++) {
      const window = tf.slice(planes, [0, fh, fw], [channels * batch, outHeight, outWidth]);
      rows.push(tf.reshape(window, [channels, batch * outHeight * outWidth]));
    }
  }
  const taps = rows.length === 1 ? rows[0]! : tf.concat(rows, 0);
  const product = tf.matMul(taps as tf.Tensor2D, tf.reshape(outputGradient, [batch * outHeight * outWidth, outChannels]));
  return tf.reshape(product, [filterHeight, filterWidth, channels, outChannels]);
}

/**
 * Input gradient of a 2D or 3D convolution (a transposed convolution), phase by phase. Output
 * positions j = i + p (padded coordinates) with j ≡ r (mod s) receive only filter taps
 * f ≡ r (mod s), so phase r is a stride-1 correlation of dy with the reversed sub-filter
 * W[r::s] (channel axes swapped); the phases are interleaved and the padding is cut away.
 */
function convolutionInputGradient(
  outputGradient: tf.Tensor, filter: tf.Tensor, inputShape: readonly number[],
  strides: readonly number[], padBefore: readonly number[],
): tf.Tensor {
  const spatialRank = strides.length;
  const filterAxes = Array.from({ length: spatialRank }, (_, axis) => axis);
  const filterExtents = filter.shape.slice(0, spatialRank);
  const inputExtents = spatialShape(inputShape);
  const outputExtents = spatialShape(outputGradient.shape);
  if (spatialRank === 2 && strides.every((stride) => stride === 1)) {
    // Stride 1: dx[i] = Σ_f' dy[i + p − (F − 1) + f'] · W[F − 1 − f'], one convolution of dy with the
    // reversed filter (channel axes swapped) over dy padded by F − 1 − p before and X − O + p after.
    const before = filterExtents.map((extent, axis) => extent - 1 - padBefore[axis]!);
    const after = inputExtents.map((extent, axis) => extent - outputExtents[axis]! + padBefore[axis]!);
    if ([...before, ...after].every((amount) => amount >= 0)) {
      const kernel = transposeMerged(tf.reverse(filter, filterAxes), [0, 1, 3, 2]) as tf.Tensor4D;
      const padding: ExplicitPadding = [[0, 0], [before[0]!, after[0]!], [before[1]!, after[1]!], [0, 0]];
      return tf.conv2d(outputGradient as tf.Tensor4D, kernel, 1, padding);
    }
  }
  const [batch] = outputGradient.shape as [number];
  const inChannels = inputShape[inputShape.length - 1]!;
  // Taps per phase, with the filter zero-extended to a whole number of strides.
  const tapsPerPhase = filterExtents.map((extent, axis) => Math.ceil(extent / strides[axis]!));
  const phaseExtents = inputExtents.map((extent, axis) => Math.ceil((extent + padBefore[axis]!) / strides[axis]!));
  const extendedFilter = tf.pad(filter, [
    ...filterExtents.map((extent, axis): [number, number] => [0, tapsPerPhase[axis]! * strides[axis]! - extent]),
    [0, 0], [0, 0]]);
  const subFilters = splitPhases(extendedFilter, strides, 0);
  const placed = placeSpatially(
    outputGradient, tapsPerPhase.map((taps) => taps - 1),
    phaseExtents.map((extent, axis) => extent + tapsPerPhase[axis]! - 1));
  const phaseGradient = (phase: number[]): tf.Tensor => {
    if (phase.some((remainder, axis) => remainder >= filterExtents[axis]!)) {
      return tf.zeros([batch, ...phaseExtents, inChannels]);
    }
    const subFilter = subFilters.get(phase.join(','))!;
    // [M..., K, C]: reversed taps, output channels in, input channels out.
    const kernel = transposeMerged(tf.reverse(subFilter, filterAxes), [...filterAxes, spatialRank + 1, spatialRank]);
    return spatialRank === 2
      ? tf.conv2d(placed as tf.Tensor4D, kernel as tf.Tensor4D, 1, 'valid')
      : tf.conv3d(placed as tf.Tensor5D, kernel as tf.Tensor5D, 1, 'valid');
  };
  const padded = joinPhases(phaseGradient, strides, 1);
  return placeSpatially(padded, padBefore.map((pad) => -pad), inputExtents);
}

/**
 * 3D convolution as a sum over filter depth of 2D convolutions of depth planes (the wasm Conv3D
 * kernel is a plain loop, far slower than its 2D convolution): out[n, od] =
 * Σ_fd conv2d(xp[n, od·sd + fd·dd], W[fd]) with xp the input placed at its padding offsets.
 */
function convolution3d(
  input: tf.Tensor5D, filter: tf.Tensor5D, strides: readonly number[], dilations: readonly number[],
  padBefore: readonly number[], outputExtents: readonly number[],
): tf.Tensor5D {
  const [batch, , , , channels] = input.shape;
  const [filterDepth, filterHeight, filterWidth, , outChannels] = filter.shape;
  const [strideDepth, strideHeight, strideWidth] = strides as [number, number, number];
  const [dilationDepth, dilationHeight, dilationWidth] = dilations as [number, number, number];
  const [outDepth, outHeight, outWidth] = outputExtents as [number, number, number];
  const readHeight = (outHeight - 1) * strideHeight + (filterHeight - 1) * dilationHeight + 1;
  const readWidth = (outWidth - 1) * strideWidth + (filterWidth - 1) * dilationWidth + 1;
  // Depth long enough for every tap's planes fd·dd + od·sd, od < OD, as whole groups of sd.
  const readDepth = (filterDepth - 1) * dilationDepth + outDepth * strideDepth;
  const placed = placeSpatially(input, padBefore, [readDepth, readHeight, readWidth]);
  const planeSize = readHeight * readWidth * channels;
  const outputs: tf.Tensor4D[] = [];
  for (let tap = 0; tap < filterDepth; tap++) {
    const start = tap * dilationDepth;
    const grouped = tf.reshape(
      tf.slice(tf.reshape(placed, [batch, readDepth, planeSize]), [0, start, 0], [batch, outDepth * strideDepth, planeSize]),
      [batch, outDepth, strideDepth, planeSize]);
    const planes = tf.reshape<tf.Rank.R4>(
      tf.slice(grouped, [0, 0, 0, 0], [batch, outDepth, 1, planeSize]),
      [batch * outDepth, readHeight, readWidth, channels]);
    const tapSize = filterHeight * filterWidth * channels * outChannels;
    const tapFilter = tf.reshape<tf.Rank.R4>(
      tf.slice(tf.reshape(filter, [filterDepth, tapSize]), [tap, 0], [1, tapSize]),
      [filterHeight, filterWidth, channels, outChannels]);
    outputs.push(tf.conv2d(
      planes, tapFilter, [strideHeight, strideWidth], 'valid', 'NHWC', [dilationHeight, dilationWidth]));
  }
  const sum = outputs.length === 1 ? outputs[0]! : tf.addN(outputs);
  return tf.reshape(sum, [batch, outDepth, outHeight, outWidth, outChannels]);
}

/** Input gradient of depthwise convolution: per-channel correlation of the spread gradient with the reversed filter. */
function depthwiseInputGradient(
  outputGradient: tf.Tensor4D, filter: tf.Tensor4D, inputShape: readonly number[],
  strides: readonly number[], dilations: readonly number[], padBefore: readonly number[],
): tf.Tensor4D {
  const [batch, height, width, channels] = inputShape as [number, number, number, number];
  const [filterHeight, filterWidth, , multiplier] = filter.shape;
  const effectiveExtents = [(filterHeight - 1) * dilations[0]! + 1, (filterWidth - 1) * dilations[1]! + 1];
  const spread = spreadSpatially(outputGradient, strides);
  const placed = placeSpatially(
    spread,
    effectiveExtents.map((extent, axis) => extent - 1 - padBefore[axis]!),
    [height + effectiveExtents[0]! - 1, width + effectiveExtents[1]! - 1]);
  const reversedFilter = tf.reshape<tf.Rank.R4>(
    tf.reverse(filter, [0, 1]), [filterHeight, filterWidth, channels * multiplier, 1]);
  const correlation = tf.depthwiseConv2d(
    placed, reversedFilter, 1, 'valid', 'NHWC', dilations as [number, number]) as tf.Tensor4D;
  if (multiplier === 1) {
    return correlation;
  }
  return tf.sum(tf.reshape(correlation, [batch, height, width, channels, multiplier]), 4);
}

/** Filter gradient of depthwise convolution: a depthwise correlation over (image, channel) planes. */
function depthwiseFilterGradient(
  input: tf.Tensor4D, outputGradient: tf.Tensor4D, filterShape: readonly number[],
  strides: readonly number[], dilations: readonly number[], padBefore: readonly number[],
): tf.Tensor4D {
  const [filterHeight, filterWidth, channels, multiplier] = filterShape as [number, number, number, number];
  const [batch] = input.shape;
  const [outHeight, outWidth] = spatialShape(outputGradient.shape) as [number, number];
  const effectiveExtents = [(filterHeight - 1) * dilations[0]! + 1, (filterWidth - 1) * dilations[1]! + 1];
  const readExtents = [
    (outHeight - 1) * strides[0]! + effectiveExtents[0]!, (outWidth - 1) * strides[1]! + effectiveExtents[1]!];
  const placed = placeSpatially(input, padBefore, readExtents);
  // [1, Xp..., N·C]: each (image, channel) plane becomes one channel of a single image.
  const planes = tf.reshape<tf.Rank.R4>(
    transposeMerged(placed, [1, 2, 0, 3]), [1, readExtents[0]!, readExtents[1]!, batch * channels]);
  // [O..., N·C, M]: the output gradient as a depthwise filter with multiplier M.
  const gradientAsFilter = tf.reshape<tf.Rank.R4>(
    transposeMerged(outputGradient, [1, 2, 0, 3]), [outHeight, outWidth, batch * channels, multiplier]);
  const stridesAreOne = strides.every((stride) => stride === 1);
  const dilationsAreOne = dilations.every((dilation) => dilation === 1);
  let correlation: tf.Tensor4D;
  if (stridesAreOne || dilationsAreOne) {
    correlation = tf.depthwiseConv2d(
      planes, gradientAsFilter, dilations as [number, number], 'valid', 'NHWC',
      strides as [number, number]) as tf.Tensor4D;
  } else {
    const everyTap = tf.depthwiseConv2d(
      planes, gradientAsFilter, 1, 'valid', 'NHWC', strides as [number, number]) as tf.Tensor4D;
    correlation = tf.stridedSlice(
      everyTap, [0, 0, 0, 0], everyTap.shape, [1, dilations[0]!, dilations[1]!, 1]) as tf.Tensor4D;
  }
  return tf.sum(tf.reshape(correlation, [filterHeight, filterWidth, batch, channels, multiplier]), 2);
}

/** Gradient of average pooling (2D or 3D): the transposed all-ones convolution of dy divided by each window's count. */
function averagePoolGradient(
  outputGradient: tf.Tensor, inputShape: readonly number[], filterSize: readonly number[],
  strides: readonly number[], padBefore: readonly number[],
): tf.Tensor {
  const inputExtents = spatialShape(inputShape);
  const outputExtents = spatialShape(outputGradient.shape);
  const countsPerAxis = outputExtents.map((extent, axis) => Array.from({ length: extent }, (_, position) => {
    const start = position * strides[axis]! - padBefore[axis]!;
    const count = Math.min(start + filterSize[axis]!, inputExtents[axis]!) - Math.max(start, 0);
    return Math.max(count, 1);
  }));
  const counts = new Float32Array(product(outputExtents));
  counts.forEach((_, flatIndex) => {
    let remainder = flatIndex;
    let count = 1;
    for (let axis = outputExtents.length - 1; axis >= 0; axis--) {
      count *= countsPerAxis[axis]![remainder % outputExtents[axis]!]!;
      remainder = Math.floor(remainder / outputExtents[axis]!);
    }
    counts[flatIndex] = count;
  });
  const scaled = tf.div(outputGradient, tf.tensor(counts, [1, ...outputExtents, 1]));
  const channels = inputShape[inputShape.length - 1]!;
  if (filterSize.length === 2) {
    return depthwiseInputGradient(
      scaled as tf.Tensor4D, tf.ones([filterSize[0]!, filterSize[1]!, channels, 1]), inputShape, strides,
      [1, 1], padBefore);
  }
  // 3D: channels join the batch, so one single-channel transposed convolution serves them all.
  const [batch] = inputShape as [number];
  const channelsAsBatch = tf.reshape<tf.Rank>(
    transposeMerged(scaled, [0, 4, 1, 2, 3]), [batch * channels, ...outputExtents, 1]) as tf.Tensor5D;
  const gradient = convolutionInputGradient(
    channelsAsBatch, tf.ones([...filterSize, 1, 1]), [batch * channels, ...inputExtents, 1], strides, padBefore);
  return transposeMerged(tf.reshape(gradient, [batch, channels, ...inputExtents]), [0, 2, 3, 4, 1]);
}

/** 3D max pooling as two exact 2D max poolings over explicitly padded input. */
function maxPool3d(
  input: tf.Tensor5D, filterSize: readonly number[], strides: readonly number[], padBefore: readonly number[],
  outputExtents: readonly number[],
): tf.Tensor5D {
  const [batch, , , , channels] = input.shape;
  const [filterDepth, filterHeight, filterWidth] = filterSize as [number, number, number];
  const [strideDepth, strideHeight, strideWidth] = strides as [number, number, number];
  const [outDepth, outHeight, outWidth] = outputExtents as [number, number, number];
  const readExtents = outputExtents.map((extent, axis) => (extent - 1) * strides[axis]! + filterSize[axis]!);
  const [readDepth, readHeight, readWidth] = readExtents as [number, number, number];
  const placed = placeSpatially(input, padBefore, readExtents, Number.NEGATIVE_INFINITY);
  const planes = tf.reshape<tf.Rank.R4>(placed, [batch * readDepth, readHeight, readWidth, channels]);
  const pooledPlanes = tf.maxPool(planes, [filterHeight, filterWidth], [strideHeight, strideWidth], 'valid');
  const columns = tf.reshape<tf.Rank.R4>(pooledPlanes, [batch, readDepth, outHeight * outWidth, channels]);
  const pooled = tf.maxPool(columns, [filterDepth, 1], [strideDepth, 1], 'valid');
  return tf.reshape(pooled, [batch, outDepth, outHeight, outWidth, channels]);
}

/**
 * Gradient of max pooling (2D or 3D) written as one pass over the windows on the wasm heap: each
 * window's dy goes to its first maximum in row-major order (as in TensorFlow). Compositions of
 * tensor ops (one pass per filter tap, phases split and interleaved with slices and concats) cost
 * 20–40 times more than this loop; max pooling has no arithmetic for XNNPACK to speed up.
 * Channels are the inner loop, so every read is contiguous.
 */
function maxPoolGradient(
  backend: WasmHeapBackend, outputGradient: tf.TensorInfo, input: tf.TensorInfo, filterSize: readonly number[],
  strides: readonly number[], padBefore: readonly number[],
): tf.TensorInfo {
  const output = backend.makeOutput([...input.shape], 'float32');
  // Views are taken after the allocation above, which may have grown (and so moved) the heap.
  const x = backend.typedArrayFromHeap(input) as Float32Array;
  const dy = backend.typedArrayFromHeap(outputGradient) as Float32Array;
  const dx = backend.typedArrayFromHeap(output) as Float32Array;
  dx.fill(0);
  // As 3D pooling: a 2D window is one plane deep.
  const depthwise = input.shape.length === 5;
  const [batch, inDepth, inHeight, inWidth, channels] = depthwise
    ? input.shape as [number, number, number, number, number]
    : [input.shape[0]!, 1, input.shape[1]!, input.shape[2]!, input.shape[3]!];
  const [, outDepth, outHeight, outWidth] = depthwise
    ? outputGradient.shape
    : [outputGradient.shape[0]!, 1, outputGradient.shape[1]!, outputGradient.shape[2]!];
  const [filterDepth, filterHeight, filterWidth] = depthwise ? filterSize : [1, ...filterSize];
  const [strideDepth, strideHeight, strideWidth] = depthwise ? strides : [1, ...strides];
  const [padFront, padTop, padLeft] = depthwise ? padBefore : [0, ...padBefore];
  const best = new Float32Array(channels);
  const bestIndex = new Int32Array(channels);
  let gradientOffset = 0;
  for (let n = 0; n < batch; n++) {
    for (let od = 0; od < outDepth!; od++) {
      for (let oh = 0; oh < outHeight!; oh++) {
        for (let ow = 0; ow < outWidth!; ow++, gradientOffset += channels) {
          let found = false;
          for (let fd = 0; fd < filterDepth!; fd++) {
            const d = od * strideDepth! - padFront! + fd;
            if (d < 0 || d >= inDepth) continue;
            for (let fh = 0; fh < filterHeight!; fh++) {
              const h = oh * strideHeight! - padTop! + fh;
              if (h < 0 || h >= inHeight) continue;
              for (let fw = 0; fw < filterWidth!; fw++) {
                const w = ow * strideWidth! - padLeft! + fw;
                if (w < 0 || w >= inWidth) continue;
                const base = (((n * inDepth + d) * inHeight + h) * inWidth + w) * channels;
                if (!found) {
                  for (let c = 0; c < channels; c++) {
                    best[c] = x[base + c]!;
                    bestIndex[c] = base + c;
                  }
                  found = true;
                } else {
                  for (let c = 0; c < channels; c++) {
                    const value = x[base + c]!;
                    if (value > best[c]!) {
                      best[c] = value;
                      bestIndex[c] = base + c;
                    }
                  }
                }
              }
            }
          }
          if (found) {
            for (let c = 0; c < channels; c++) dx[bestIndex[c]!] += dy[gradientOffset + c]!;
          }
        }
      }
    }
  }
  return output;
}

/** The [inLength, outLength] matrix of a resize along one axis: the forward resize of unit columns. */
function resizeMatrix(
  inLength: number, outLength: number,
  resize: (images: tf.Tensor4D, size: [number, number]) => tf.Tensor4D,
): tf.Tensor2D {
  const unitColumns = tf.reshape<tf.Rank.R4>(tf.eye(inLength), [inLength, inLength, 1, 1]);
  return tf.reshape(resize(unitColumns, [outLength, 1]), [inLength, outLength]);
}

/** Gradient of a separable resize: dy contracted with the width matrix, then with the height matrix. */
function resizeGradient(
  outputGradient: tf.Tensor4D, imagesShape: readonly number[],
  resize: (images: tf.Tensor4D, size: [number, number]) => tf.Tensor4D,
): tf.Tensor4D {
  const [batch, height, width, channels] = imagesShape as [number, number, number, number];
  const [, outHeight, outWidth] = outputGradient.shape;
  const heightMatrix = resizeMatrix(height, outHeight, resize); // [H, OH]
  const widthMatrixTransposed = transposeMerged(resizeMatrix(width, outWidth, resize), [1, 0]); // [OW, W]
  // Σ_ow: [N, OH, C, OW] · [OW, W] = [N, OH, C, W].
  const rows = tf.reshape(transposeMerged(outputGradient, [0, 1, 3, 2]), [batch * outHeight * channels, outWidth]);
  const widthDone = tf.reshape(tf.matMul(rows, widthMatrixTransposed), [batch, outHeight, channels, width]);
  // Σ_oh: [H, OH] · [OH, N·C·W] = [H, N·C·W].
  const columns = tf.reshape(transposeMerged(widthDone, [1, 0, 2, 3]), [outHeight, batch * channels * width]);
  const heightDone = tf.reshape<tf.Rank.R4>(tf.matMul(heightMatrix, columns), [height, batch, channels, width]);
  return transposeMerged(heightDone, [1, 0, 3, 2]);
}

// ---- Kernel functions: attribute decoding around the compositions above. ----

function conv2dBackpropFilterKernel(args: KernelArguments): tf.TensorInfo {
  const attrs = args.attrs as unknown as tf.Conv2DBackpropFilterAttrs;
  return tf.tidy(() => {
    let input = asTensor<tf.Tensor4D>(args.inputs.x);
    let outputGradient = asTensor<tf.Tensor4D>(args.inputs.dy);
    const channelsFirst = attrs.dataFormat === 'NCHW';
    if (channelsFirst) {
      input = transposeMerged(input, [0, 2, 3, 1]);
      outputGradient = transposeMerged(outputGradient, [0, 2, 3, 1]);
    }
    const info = tf.backend_util.computeConv2DInfo(
      input.shape, attrs.filterShape, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode, false, 'channelsLast');
    return convolutionFilterGradient(
      input, outputGradient, attrs.filterShape.slice(0, 2), [info.strideHeight, info.strideWidth],
      [info.padInfo.top, info.padInfo.left]);
  });
}

function conv3dBackpropFilterKernel(args: KernelArguments): tf.TensorInfo {
  const attrs = args.attrs as unknown as tf.Conv3DBackpropFilterV2Attrs;
  return tf.tidy(() => {
    const input = asTensor<tf.Tensor5D>(args.inputs.x);
    const outputGradient = asTensor<tf.Tensor5D>(args.inputs.dy);
    const info = tf.backend_util.computeConv3DInfo(input.shape, attrs.filterShape, attrs.strides, 1, attrs.pad);
    return convolutionFilterGradient(
      input, outputGradient, attrs.filterShape.slice(0, 3),
      [info.strideDepth, info.strideHeight, info.strideWidth],
      [info.padInfo.front, info.padInfo.top, info.padInfo.left]);
  });
}

function conv3dBackpropInputKernel(args: KernelArguments): tf.TensorInfo {
  const attrs = args.attrs as unknown as tf.Conv3DBackpropInputV2Attrs;
  return tf.tidy(() => {
    const outputGradient = asTensor<tf.Tensor5D>(args.inputs.dy);
    const filter = asTensor<tf.Tensor5D>(args.inputs.filter);
    const info = tf.backend_util.computeConv3DInfo(attrs.inputShape, filter.shape, attrs.strides, 1, attrs.pad);
    return convolutionInputGradient(
      outputGradient, filter, attrs.inputShape, [info.strideDepth, info.strideHeight, info.strideWidth],
      [info.padInfo.front, info.padInfo.top, info.padInfo.left]);
  });
}

function conv2dBackpropInputKernel(args: KernelArguments): tf.TensorInfo {
  const attrs = args.attrs as unknown as tf.Conv2DBackpropInputAttrs;
  return tf.tidy(() => {
    let outputGradient = asTensor<tf.Tensor4D>(args.inputs.dy);
    const filter = asTensor<tf.Tensor4D>(args.inputs.filter);
    const channelsFirst = attrs.dataFormat === 'NCHW';
    const [batch, first, second, third] = attrs.inputShape;
    const inputShape: [number, number, number, number] = channelsFirst
      ? [batch, second, third, first] : attrs.inputShape;
    if (channelsFirst) {
      outputGradient = transposeMerged(outputGradient, [0, 2, 3, 1]);
    }
    const info = tf.backend_util.computeConv2DInfo(
      inputShape, filter.shape, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode, false, 'channelsLast');
    const gradient = convolutionInputGradient(
      outputGradient, filter, inputShape, [info.strideHeight, info.strideWidth], [info.padInfo.top, info.padInfo.left]);
    return channelsFirst ? transposeMerged(gradient, [0, 3, 1, 2]) : gradient;
  });
}

function conv3dKernel(args: KernelArguments): tf.TensorInfo {
  const attrs = args.attrs as unknown as tf.Conv3DAttrs;
  return tf.tidy(() => {
    let input = asTensor<tf.Tensor5D>(args.inputs.x);
    const filter = asTensor<tf.Tensor5D>(args.inputs.filter);
    const channelsFirst = attrs.dataFormat === 'NCDHW';
    if (channelsFirst) {
      input = transposeMerged(input, [0, 2, 3, 4, 1]);
    }
    const info = tf.backend_util.computeConv3DInfo(
      input.shape, filter.shape, attrs.strides, attrs.dilations ?? 1, attrs.pad);
    const output = convolution3d(
      input, filter, [info.strideDepth, info.strideHeight, info.strideWidth],
      [info.dilationDepth, info.dilationHeight, info.dilationWidth],
      [info.padInfo.front, info.padInfo.top, info.padInfo.left], [info.outDepth, info.outHeight, info.outWidth]);
    return channelsFirst ? transposeMerged(output, [0, 4, 1, 2, 3]) : output;
  });
}

function depthwiseBackpropFilterKernel(args: KernelArguments): tf.TensorInfo {
  const attrs = args.attrs as unknown as tf.DepthwiseConv2dNativeBackpropFilterAttrs;
  return tf.tidy(() => {
    const input = asTensor<tf.Tensor4D>(args.inputs.x);
    const outputGradient = asTensor<tf.Tensor4D>(args.inputs.dy);
    const info = tf.backend_util.computeConv2DInfo(
      input.shape, attrs.filterShape, attrs.strides, attrs.dilations ?? 1, attrs.pad, attrs.dimRoundingMode, true);
    return depthwiseFilterGradient(
      input, outputGradient, attrs.filterShape, [info.strideHeight, info.strideWidth],
      [info.dilationHeight, info.dilationWidth], [info.padInfo.top, info.padInfo.left]);
  });
}

function depthwiseBackpropInputKernel(args: KernelArguments): tf.TensorInfo {
  const attrs = args.attrs as unknown as tf.DepthwiseConv2dNativeBackpropInputAttrs;
  return tf.tidy(() => {
    const outputGradient = asTensor<tf.Tensor4D>(args.inputs.dy);
    const filter = asTensor<tf.Tensor4D>(args.inputs.filter);
    const info = tf.backend_util.computeConv2DInfo(
      attrs.inputShape, filter.shape, attrs.strides, attrs.dilations ?? 1, attrs.pad, attrs.dimRoundingMode, true);
    return depthwiseInputGradient(
      outputGradient, filter, attrs.inputShape, [info.strideHeight, info.strideWidth],
      [info.dilationHeight, info.dilationWidth], [info.padInfo.top, info.padInfo.left]);
  });
}

function avgPoolGradKernel(args: KernelArguments): tf.TensorInfo {
  const attrs = args.attrs as unknown as tf.AvgPoolGradAttrs;
  return tf.tidy(() => {
    const outputGradient = asTensor<tf.Tensor4D>(args.inputs.dy);
    const input = asTensor<tf.Tensor4D>(args.inputs.input);
    const info = tf.backend_util.computePool2DInfo(input.shape, attrs.filterSize, attrs.strides, 1, attrs.pad);
    return averagePoolGradient(
      outputGradient, input.shape, [info.filterHeight, info.filterWidth], [info.strideHeight, info.strideWidth],
      [info.padInfo.top, info.padInfo.left]);
  });
}

function avgPool3dGradKernel(args: KernelArguments): tf.TensorInfo {
  const attrs = args.attrs as unknown as tf.AvgPool3DGradAttrs;
  return tf.tidy(() => {
    const outputGradient = asTensor<tf.Tensor5D>(args.inputs.dy);
    const input = asTensor<tf.Tensor5D>(args.inputs.input);
    const info = tf.backend_util.computePool3DInfo(
      input.shape, attrs.filterSize, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode);
    return averagePoolGradient(
      outputGradient, input.shape, [info.filterDepth, info.filterHeight, info.filterWidth],
      [info.strideDepth, info.strideHeight, info.strideWidth],
      [info.padInfo.front, info.padInfo.top, info.padInfo.left]);
  });
}

function maxPoolGradKernel(args: KernelArguments): tf.TensorInfo {
  const attrs = args.attrs as unknown as tf.MaxPoolGradAttrs;
  const { dy, input } = requireInputs(args, 'dy', 'input');
  const info = tf.backend_util.computePool2DInfo(
    input.shape as [number, number, number, number], attrs.filterSize, attrs.strides, 1, attrs.pad,
    attrs.dimRoundingMode);
  return maxPoolGradient(
    heapBackend(args), floatInput(dy), floatInput(input), [info.filterHeight, info.filterWidth],
    [info.strideHeight, info.strideWidth], [info.padInfo.top, info.padInfo.left]);
}

function maxPool3dKernel(args: KernelArguments): tf.TensorInfo {
  const attrs = args.attrs as unknown as tf.MaxPool3DAttrs;
  return tf.tidy(() => {
    const input = asTensor<tf.Tensor5D>(args.inputs.x);
    if (attrs.dataFormat === 'NCDHW') {
      throw new Error("wasm backend MaxPool3D supports dataFormat 'NDHWC' only");
    }
    const info = tf.backend_util.computePool3DInfo(
      input.shape, attrs.filterSize, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode);
    return maxPool3d(
      input, [info.filterDepth, info.filterHeight, info.filterWidth],
      [info.strideDepth, info.strideHeight, info.strideWidth],
      [info.padInfo.front, info.padInfo.top, info.padInfo.left], [info.outDepth, info.outHeight, info.outWidth]);
  });
}

function maxPool3dGradKernel(args: KernelArguments): tf.TensorInfo {
  const attrs = args.attrs as unknown as tf.MaxPool3DGradAttrs;
  const { dy, input } = requireInputs(args, 'dy', 'input');
  const info = tf.backend_util.computePool3DInfo(
    input.shape as [number, number, number, number, number], attrs.filterSize, attrs.strides, 1, attrs.pad,
    attrs.dimRoundingMode);
  return maxPoolGradient(
    heapBackend(args), floatInput(dy), floatInput(input), [info.filterDepth, info.filterHeight, info.filterWidth],
    [info.strideDepth, info.strideHeight, info.strideWidth],
    [info.padInfo.front, info.padInfo.top, info.padInfo.left]);
}

function imagesShape(args: KernelArguments): number[] {
  const images = args.inputs.images;
  if (images === undefined) {
    throw new Error('wasm composite kernel: the images input is missing');
  }
  return images.shape;
}

function resizeBilinearGradKernel(args: KernelArguments): tf.TensorInfo {
  const attrs = args.attrs as unknown as tf.ResizeBilinearGradAttrs;
  return tf.tidy(() => resizeGradient(
    asTensor<tf.Tensor4D>(args.inputs.dy), imagesShape(args),
    (images, size) => tf.image.resizeBilinear(images, size, attrs.alignCorners, attrs.halfPixelCenters)));
}

function resizeNearestNeighborGradKernel(args: KernelArguments): tf.TensorInfo {
  const attrs = args.attrs as unknown as tf.ResizeNearestNeighborGradAttrs;
  return tf.tidy(() => resizeGradient(
    asTensor<tf.Tensor4D>(args.inputs.dy), imagesShape(args),
    (images, size) => tf.image.resizeNearestNeighbor(images, size, attrs.alignCorners, attrs.halfPixelCenters)));
}

function unsortedSegmentSumKernel(args: KernelArguments): tf.TensorInfo {
  const attrs = args.attrs as unknown as tf.UnsortedSegmentSumAttrs;
  return tf.tidy(() => {
    const values = asTensor(args.inputs.x);
    const segmentIds = asTensor(args.inputs.segmentIds);
    const count = segmentIds.size;
    const trailingShape = values.shape.slice(segmentIds.rank);
    const rows = tf.reshape(tf.cast(values, 'float32'), [count, product(trailingShape)]);
    const membership = tf.cast(
      tf.equal(
        tf.reshape(tf.cast(segmentIds, 'int32'), [count, 1]),
        tf.reshape(tf.range(0, attrs.numSegments, 1, 'int32'), [1, attrs.numSegments])),
      'float32');
    const sums = tf.matMul(transposeMerged(membership, [1, 0]), rows);
    const shaped = tf.reshape(sums, [attrs.numSegments, ...trailingShape]);
    return values.dtype === 'float32' ? shaped : tf.cast(shaped, values.dtype);
  });
}

function oneHotKernel(args: KernelArguments): tf.TensorInfo {
  const attrs = args.attrs as unknown as tf.OneHotAttrs;
  return tf.tidy(() => {
    const indices = asTensor(args.inputs.indices);
    const matches = tf.equal(
      tf.expandDims(tf.cast(indices, 'int32'), -1), tf.range(0, attrs.depth, 1, 'int32'));
    const shape = [...indices.shape, attrs.depth];
    return tf.where(
      matches, tf.fill(shape, attrs.onValue, attrs.dtype), tf.fill(shape, attrs.offValue, attrs.dtype));
  });
}

// ---- Forward kernels whose 'same' padding or dimRoundingMode goes wrong: explicit padding instead. ----

type ExplicitPadding = [[0, 0], [number, number], [number, number], [0, 0]];

/**
 * The explicit padding that reproduces the output geometry `info` describes: the derived
 * top/left padding, and at the bottom/right whatever the last window reads beyond the input
 * (never negative: unread trailing input is simply not reached).
 */
function explicitPadding(info: Conv2DInfo): ExplicitPadding {
  const bottom = (info.outHeight - 1) * info.strideHeight + info.effectiveFilterHeight - info.inHeight - info.padInfo.top;
  const right = (info.outWidth - 1) * info.strideWidth + info.effectiveFilterWidth - info.inWidth - info.padInfo.left;
  return [[0, 0], [info.padInfo.top, Math.max(0, bottom)], [info.padInfo.left, Math.max(0, right)], [0, 0]];
}

/** How to read a kernel's output geometry from its arguments (undefined: leave the call alone). */
type GeometryOf = (args: KernelArguments) => Conv2DInfo | undefined;

interface PaddingAttributes {
  pad?: unknown;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  dataFormat?: string;
}

/** Calls with 'same' padding, or with a rounding mode, need explicit padding; channels-first calls are left alone. */
function needsExplicitPadding(attrs: PaddingAttributes | undefined): boolean {
  if (attrs === undefined || attrs.dataFormat === 'NCHW') {
    return false;
  }
  return attrs.pad === 'same' || (typeof attrs.pad === 'number' && attrs.dimRoundingMode !== undefined);
}

const convolutionGeometry = (depthwise: boolean): GeometryOf => (args) => {
  const attrs = args.attrs as unknown as tf.Conv2DAttrs;
  const input = args.inputs.x;
  const filter = args.inputs.filter;
  if (input === undefined || filter === undefined) {
    return undefined;
  }
  return tf.backend_util.computeConv2DInfo(
    input.shape as [number, number, number, number], filter.shape as [number, number, number, number],
    attrs.strides, attrs.dilations ?? 1, attrs.pad, attrs.dimRoundingMode, depthwise);
};

const poolGeometry: GeometryOf = (args) => {
  const attrs = args.attrs as unknown as tf.MaxPoolAttrs;
  const input = args.inputs.x;
  if (input === undefined) {
    return undefined;
  }
  return tf.backend_util.computePool2DInfo(
    input.shape as [number, number, number, number], attrs.filterSize, attrs.strides, 1, attrs.pad,
    attrs.dimRoundingMode);
};

/**
 * Wraps a wasm forward kernel so that 'same' padding and rounding modes reach it as explicit
 * padding. XNNPACK derives TensorFlow SAME padding itself without clamping it at zero, so when
 * the last window ends before the input does (stride larger than the filter, for instance:
 * length 6, filter 2, stride 3) it pads negatively and returns zeros; and a rounding mode that
 * adds an output row is not passed to it at all.
 */
function withExplicitPadding(native: tf.KernelFunc, geometryOf: GeometryOf): tf.KernelFunc {
  return (args) => {
    const attrs = args.attrs as PaddingAttributes | undefined;
    const info = needsExplicitPadding(attrs) ? geometryOf(args as KernelArguments) : undefined;
    if (info === undefined) {
      return native(args);
    }
    const explicitAttrs = { ...args.attrs, pad: explicitPadding(info) } as tf.NamedAttrMap;
    delete explicitAttrs.dimRoundingMode;
    return native({ ...args, attrs: explicitAttrs });
  };
}

// ---- Copies that need not copy. ----

/**
 * Identity (which tfjs also runs to save every tensor a gradient needs) and Cast to the same dtype: the
 * output shares the input's data, as the wasm Reshape already does. The wasm kernels copy the data,
 * about 80 full-size copies per training step of a small CNN. Tensors are immutable and the backend
 * counts references per data id, so sharing is safe (the cpu backend's Identity shares too).
 */
function sharedData(args: KernelArguments, x: tf.TensorInfo): tf.TensorInfo {
  (args.backend as { incRef(dataId: tf.DataId): void }).incRef(x.dataId);
  return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
}

function identityKernel(args: KernelArguments): tf.TensorInfo {
  return sharedData(args, requireInputs(args, 'x').x);
}

function castSharingSameType(native: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const x = (args as KernelArguments).inputs.x;
    const attrs = args.attrs as unknown as tf.CastAttrs;
    return x !== undefined && x.dtype === attrs.dtype ? sharedData(args as KernelArguments, x) : native(args);
  };
}

// ---- Registration. ----

/**
 * Why a kernel is supplied here: the wasm backend lacks it, has it but computes it wrongly, or
 * computes it as a plain loop many times slower than a composition of its XNNPACK kernels.
 */
export type CompositionReason = 'missing' | 'incorrect' | 'slow';

type CompositeKernel =
  | { kernelName: string; reason: CompositionReason; kernelFunc: tf.KernelFunc }
  | { kernelName: string; reason: 'incorrect' | 'slow'; wrap: (native: tf.KernelFunc) => tf.KernelFunc };

const compositeKernels: readonly CompositeKernel[] = [
  { kernelName: tf.Conv2DBackpropFilter, reason: 'missing', kernelFunc: conv2dBackpropFilterKernel },
  { kernelName: tf.DepthwiseConv2dNativeBackpropFilter, reason: 'missing', kernelFunc: depthwiseBackpropFilterKernel },
  { kernelName: tf.DepthwiseConv2dNativeBackpropInput, reason: 'missing', kernelFunc: depthwiseBackpropInputKernel },
  { kernelName: tf.UnsortedSegmentSum, reason: 'missing', kernelFunc: unsortedSegmentSumKernel },
  { kernelName: tf.Conv3DBackpropFilterV2, reason: 'incorrect', kernelFunc: conv3dBackpropFilterKernel },
  { kernelName: tf.Conv3DBackpropInputV2, reason: 'incorrect', kernelFunc: conv3dBackpropInputKernel },
  { kernelName: tf.MaxPoolGrad, reason: 'incorrect', kernelFunc: maxPoolGradKernel },
  { kernelName: tf.MaxPool3D, reason: 'incorrect', kernelFunc: maxPool3dKernel },
  { kernelName: tf.MaxPool3DGrad, reason: 'incorrect', kernelFunc: maxPool3dGradKernel },
  { kernelName: tf.AvgPoolGrad, reason: 'incorrect', kernelFunc: avgPoolGradKernel },
  { kernelName: tf.AvgPool3DGrad, reason: 'incorrect', kernelFunc: avgPool3dGradKernel },
  { kernelName: tf.ResizeBilinearGrad, reason: 'incorrect', kernelFunc: resizeBilinearGradKernel },
  { kernelName: tf.ResizeNearestNeighborGrad, reason: 'incorrect', kernelFunc: resizeNearestNeighborGradKernel },
  { kernelName: tf.OneHot, reason: 'incorrect', kernelFunc: oneHotKernel },
  { kernelName: tf.Conv2DBackpropInput, reason: 'slow', kernelFunc: conv2dBackpropInputKernel },
  { kernelName: tf.Conv3D, reason: 'slow', kernelFunc: conv3dKernel },
  { kernelName: tf.Identity, reason: 'slow', kernelFunc: identityKernel },
  { kernelName: tf.Cast, reason: 'slow', wrap: castSharingSameType },
  { kernelName: tf.Conv2D, reason: 'incorrect', wrap: (native) => withExplicitPadding(native, convolutionGeometry(false)) },
  { kernelName: tf.FusedConv2D, reason: 'incorrect', wrap: (native) => withExplicitPadding(native, convolutionGeometry(false)) },
  {
    kernelName: tf.DepthwiseConv2dNative, reason: 'incorrect',
    wrap: (native) => withExplicitPadding(native, convolutionGeometry(true)),
  },
  {
    kernelName: tf.FusedDepthwiseConv2D, reason: 'incorrect',
    wrap: (native) => withExplicitPadding(native, convolutionGeometry(true)),
  },
  { kernelName: tf.MaxPool, reason: 'incorrect', wrap: (native) => withExplicitPadding(native, poolGeometry) },
  { kernelName: tf.AvgPool, reason: 'incorrect', wrap: (native) => withExplicitPadding(native, poolGeometry) },
];

/** The kernels supplied for the wasm backend, and why each is. */
export const wasmKernelCompositions: ReadonlyArray<{ kernelName: string; reason: CompositionReason }> =
  compositeKernels.map(({ kernelName, reason }) => ({ kernelName, reason }));

/** Marks the kernel functions registered here, so that registering again can tell them apart. */
const compositeMarker = Symbol.for('convspec.wasmCompositeKernel');

function isComposite(kernelFunc: tf.KernelFunc): boolean {
  return (kernelFunc as unknown as Record<symbol, unknown>)[compositeMarker] === true;
}

function marked(kernelFunc: tf.KernelFunc): tf.KernelFunc {
  const wrapper: tf.KernelFunc = (args) => kernelFunc(args);
  Object.defineProperty(wrapper, compositeMarker, { value: true });
  return wrapper;
}

/**
 * Registers the kernels of this module for the wasm backend and returns the names registered by
 * this call. A kernel the wasm backend lacks is registered unless something registered it
 * already (a later wasm backend, say); a kernel it computes wrongly replaces the backend's (a
 * wrapped forward kernel keeps the backend's function and set-up inside). Idempotent: the
 * registered functions carry a mark, so a second call registers nothing. Works before or after
 * the wasm backend is initialised.
 */
export function registerMissingWasmKernels(): string[] {
  const registered: string[] = [];
  for (const composite of compositeKernels) {
    const { kernelName, reason } = composite;
    const existing = tf.getKernel(kernelName, wasmBackendName);
    if (existing !== undefined && (isComposite(existing.kernelFunc) || reason === 'missing')) {
      continue;
    }
    let config: tf.KernelConfig;
    if ('wrap' in composite) {
      if (existing === undefined) {
        continue;
      }
      config = { ...existing, kernelFunc: marked(composite.wrap(existing.kernelFunc)) };
    } else {
      config = { kernelName, backendName: wasmBackendName, kernelFunc: marked(composite.kernelFunc) };
    }
    if (existing !== undefined) {
      tf.unregisterKernel(kernelName, wasmBackendName);
    }
    tf.registerKernel(config);
    registered.push(kernelName);
  }
  return registered;
}

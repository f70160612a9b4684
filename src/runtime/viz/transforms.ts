/**
 * Input-space transforms and priors for optimising an input (activation maximisation, feature inversion).
 *
 * Random warps (lucid's `transforms`: jitter, random scale, random rotation) are one resampling per step:
 * output position p reads the input at q = R(−θ)·(p − c)/s + c − t, where c is the centre of the grid, s the scale,
 * θ the rotation (in the H × W plane) and t the jitter. Coordinates outside the grid are reflected back into it,
 * and q is read by linear interpolation (bilinear in the H × W plane; 1D inputs use 2 taps; the depth axis of 3D
 * inputs is only jittered by whole slices). The warp is linear in the input, y = M·x with four non-zero taps per
 * row, so its gradient is Mᵀ·dy: a gather forwards and a scatter-add (tfjs `scatterND`, which sums duplicate
 * indices) backwards. tfjs's own `gather` gradient needs UnsortedSegmentSum, which the wasm backend lacks, hence
 * the custom gradient.
 *
 * Priors, on channels-last x of shape [1, S1 … Sk, C]:
 *   total variation  TV(x) = Σ_axes Σ (x[i+1] − x[i])²   (Mahendran & Vedaldi's TV^β with β = 2)
 *   L2 decay         N(x)  = Σ (x − m)²                   (m the middle of the data range)
 * `mean` forms divide by the element count, so weights do not depend on the input size.
 * The optional Gaussian blur (Yosinski et al. 2015) is applied to the values between steps, not differentiated.
 */
import * as tf from '@tensorflow/tfjs';
import type { RandomSource } from '../../random.js';

export interface WarpParameters {
  /** Shift per spatial axis, in samples (positive moves content towards higher indices). */
  readonly shift: readonly number[];
  readonly scale: number;
  /** Rotation in degrees in the plane of the last two spatial axes (2D and 3D inputs). */
  readonly rotation: number;
}

export interface WarpOptions {
  /** Largest jitter in samples per axis (uniform integer in [−j, j]). */
  readonly jitter: number;
  /** Scales drawn uniformly from [1 − s, 1 + s]. */
  readonly scale: number;
  /** Rotations drawn uniformly from [−r, r] degrees. */
  readonly rotation: number;
}

export function randomWarp(random: RandomSource, spatialRank: number, options: WarpOptions): WarpParameters {
  const shift = Array.from({ length: spatialRank }, () => Math.round((2 * random() - 1) * options.jitter));
  const scale = 1 + (2 * random() - 1) * options.scale;
  const rotation = spatialRank >= 2 ? (2 * random() - 1) * options.rotation : 0;
  return { shift, scale, rotation };
}

/** Reflects a coordinate into [0, n − 1] (mirror without repeating the edge). */
function reflect(q: number, n: number): number {
  if (n === 1) return 0;
  const period = 2 * (n - 1);
  let r = q % period;
  if (r < 0) r += period;
  return r > n - 1 ? period - r : r;
}

/** The sampling table of a warp over a grid: for every output position, `taps` (index, weight) pairs. */
export function warpTable(spatial: readonly number[], warp: WarpParameters): { indices: Int32Array; weights: Float32Array; taps: number } {
  const count = spatial.reduce((a, b) => a * b, 1);
  const rank = spatial.length;
  const taps = rank === 1 ? 2 : 4;
  const indices = new Int32Array(count * taps);
  const weights = new Float32Array(count * taps);
  const theta = (warp.rotation * Math.PI) / 180;
  const cos = Math.cos(theta);
  const sin = Math.sin(theta);
  const strides = spatial.map((_, axis) => spatial.slice(axis + 1).reduce((a, b) => a * b, 1));
  const position = new Array<number>(rank).fill(0);
  for (let p = 0; p < count; p++) {
    let rest = p;
    for (let axis = 0; axis < rank; axis++) {
      position[axis] = Math.floor(rest / strides[axis]!);
      rest %= strides[axis]!;
    }
    if (rank === 1) {
      const n = spatial[0]!;
      const c = (n - 1) / 2;
      const q = reflect((position[0]! - c) / warp.scale + c - warp.shift[0]!, n);
      const i0 = Math.floor(q);
      const i1 = Math.min(n - 1, i0 + 1);
      const f = q - i0;
      indices[2 * p] = i0;
      indices[2 * p + 1] = i1;
      weights[2 * p] = 1 - f;
      weights[2 * p + 1] = f;
      continue;
    }
    // leading axes (depth of 3D): whole-sample jitter; last two axes: rotation, scale and jitter
    let base = 0;
    for (let axis = 0; axis < rank - 2; axis++) base += Math.round(reflect(position[axis]! - warp.shift[axis]!, spatial[axis]!)) * strides[axis]!;
    const h = spatial[rank - 2]!;
    const w = spatial[rank - 1]!;
    const cy = (h - 1) / 2;
    const cx = (w - 1) / 2;
    const dy = (position[rank - 2]! - cy) / warp.scale;
    const dx = (position[rank - 1]! - cx) / warp.scale;
    const qy = reflect(cos * dy + sin * dx + cy - warp.shift[rank - 2]!, h);
    const qx = reflect(-sin * dy + cos * dx + cx - warp.shift[rank - 1]!, w);
    const y0 = Math.floor(qy);
    const x0 = Math.floor(qx);
    const y1 = Math.min(h - 1, y0 + 1);
    const x1 = Math.min(w - 1, x0 + 1);
    const fy = qy - y0;
    const fx = qx - x0;
    const at = 4 * p;
    indices[at] = base + y0 * w + x0;
    indices[at + 1] = base + y0 * w + x1;
    indices[at + 2] = base + y1 * w + x0;
    indices[at + 3] = base + y1 * w + x1;
    weights[at] = (1 - fy) * (1 - fx);
    weights[at + 1] = (1 - fy) * fx;
    weights[at + 2] = fy * (1 - fx);
    weights[at + 3] = fy * fx;
  }
  return { indices, weights, taps };
}

/** Applies a warp to channels-last x [1, S…, C]; differentiable (gather forwards, scatter-add backwards). */
export function applyWarp(x: tf.Tensor, warp: WarpParameters): tf.Tensor {
  const spatial = x.shape.slice(1, -1);
  const channels = x.shape[x.rank - 1]!;
  const count = spatial.reduce((a, b) => a * b, 1);
  const { indices, weights, taps } = warpTable(spatial, warp);
  const warpOp = tf.customGrad((...args: unknown[]) => {
    const input = args[0] as tf.Tensor;
    const save = args[1] as (tensors: tf.Tensor[]) => void;
    const flat = tf.reshape(input, [count, channels]);
    const index = tf.tensor1d(indices, 'int32');
    const weight = tf.tensor(weights, [count, taps, 1]);
    save([index, weight]);
    const gathered = tf.reshape(tf.gather(flat, index), [count, taps, channels]);
    const value = tf.reshape(tf.sum(tf.mul(gathered, weight), 1), input.shape);
    return {
      value,
      gradFunc: (dy, saved) => {
        const [savedIndex, savedWeight] = saved as [tf.Tensor, tf.Tensor];
        const updates = tf.reshape(tf.mul(tf.reshape(dy as tf.Tensor, [count, 1, channels]), savedWeight), [count * taps, channels]);
        const dx = tf.scatterND(tf.reshape(savedIndex, [count * taps, 1]), updates, [count, channels]);
        return tf.reshape(dx, input.shape);
      },
    };
  });
  return warpOp(x) as tf.Tensor;
}

/** Σ over spatial axes of squared differences of neighbours, divided by the element count when `mean`. */
export function totalVariation(x: tf.Tensor, mean = true): tf.Scalar {
  const rank = x.rank;
  let total: tf.Tensor = tf.scalar(0);
  for (let axis = 1; axis < rank - 1; axis++) {
    const n = x.shape[axis]!;
    if (n < 2) continue;
    const begin = new Array<number>(rank).fill(0);
    const size = [...x.shape];
    size[axis] = n - 1;
    const first = tf.slice(x, begin, size);
    begin[axis] = 1;
    const second = tf.slice(x, begin, size);
    total = tf.add(total, tf.sum(tf.square(tf.sub(second, first))));
  }
  return (mean ? tf.div(total, x.size) : total) as tf.Scalar;
}

/** Σ (x − middle)², divided by the element count when `mean`. */
export function l2Decay(x: tf.Tensor, middle: number, mean = true): tf.Scalar {
  const s = tf.sum(tf.square(tf.sub(x, middle)));
  return (mean ? tf.div(s, x.size) : s) as tf.Scalar;
}

/** Gaussian blur of channels-last data [1, S…, C] along every spatial axis (reflected edges), in place. */
export function gaussianBlur(data: Float32Array, shape: readonly number[], sigma: number): void {
  if (!(sigma > 0)) return;
  const radius = Math.max(1, Math.ceil(2 * sigma));
  const kernel = Array.from({ length: 2 * radius + 1 }, (_, i) => Math.exp(-((i - radius) ** 2) / (2 * sigma * sigma)));
  const total = kernel.reduce((a, b) => a + b, 0);
  for (let i = 0; i < kernel.length; i++) kernel[i]! /= total;
  const strides = shape.map((_, axis) => shape.slice(axis + 1).reduce((a, b) => a * b, 1));
  const scratch = new Float32Array(data.length);
  for (let axis = 1; axis < shape.length - 1; axis++) {
    const n = shape[axis]!;
    if (n < 2) continue;
    const stride = strides[axis]!;
    for (let i = 0; i < data.length; i++) {
      const position = Math.floor(i / stride) % n;
      let value = 0;
      for (let k = -radius; k <= radius; k++) {
        const q = Math.round(reflect(position + k, n));
        value += kernel[k + radius]! * data[i + (q - position) * stride]!;
      }
      scratch[i] = value;
    }
    data.set(scratch);
  }
}

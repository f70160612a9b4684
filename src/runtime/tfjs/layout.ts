/**
 * Layouts: how the tfjs engine stores the IR's tensors, and the permutations between the two.
 *
 * The IR is channels-first (ONNX's NCL / NCHW / NCDHW); TensorFlow.js's convolutions and pools are channels-last
 * only on the wasm backend (and fastest channels-last everywhere). So the engine converts once, at the edges:
 *
 * - Activations of rank r ≥ 3 live channels-last inside the engine:
 *     logical [N, C, S1 … Sk]  ⇄  internal [N, S1 … Sk, C]
 *     to internal: perm [0, 2, 3, …, r−1, 1];   to logical: perm [0, r−1, 1, 2, …, r−2].
 *   Graph inputs are permuted to internal on entry and outputs back to logical on exit; nothing in between is
 *   permuted except where an op is defined on the logical element order (flatten and reshape of a feature map).
 *   Tensors of rank ≤ 2 ([N, features]) are the same in both layouts.
 *   A logical axis a of a rank-r tensor (r ≥ 3) is internal axis 0 for a = 0, r − 1 for a = 1, a − 1 otherwise.
 *
 * - Weights are permuted once when the engine loads them and back when it hands them out (`getWeights`):
 *     conv            IR [O, I/g, K1 … Kk]  ⇄  tfjs [K1 … Kk, I/g, O]   (the filter layout of conv2d / conv3d)
 *     transposed conv IR [I, O/g, K1 … Kk]  ⇄  tfjs [K1 … Kk, O/g, I]   (per group the [K…, out, in] filter of
 *                                                                          conv2dTranspose / conv3dTranspose)
 *     dense           IR [O, I]             ⇄  tfjs [I, O]               (the right operand of matMul)
 *   All three are the same permutation, "kernel axes first, then the two leading axes swapped":
 *     to tfjs: perm [2, 3, …, R−1, 1, 0];   to IR: its inverse [R−1, R−2, 0, 1, …, R−3].
 *   Depthwise filters (groups = I) stay in this layout ([K…, 1, C·M]); the depthwise lowering reshapes them to
 *   tfjs's [K…, C, M], which is a view of the same order because output channel o = c·M + m.
 *   Vectors (biases, batch-norm parameters and statistics) are unchanged.
 */
import { permuteTensor } from '../../ir/weights.js';

/** Permutation that takes a logical (channels-first) tensor of rank `rank` to the engine's layout. */
export function toInternalPermutation(rank: number): number[] {
  if (rank < 3) return identity(rank);
  return [0, ...range(2, rank), 1];
}

/** Permutation that takes an internal (channels-last) tensor of rank `rank` back to the logical layout. */
export function toLogicalPermutation(rank: number): number[] {
  if (rank < 3) return identity(rank);
  return [0, rank - 1, ...range(1, rank - 1)];
}

/** The internal axis that holds logical axis `axis` (negative axes count from the end, as in the IR). */
export function internalAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new RangeError(`axis ${axis} is outside a rank-${rank} tensor`);
  if (rank < 3 || a === 0) return a;
  return a === 1 ? rank - 1 : a - 1;
}

/** Logical shape of an internal tensor's shape. */
export function logicalShape(internal: readonly number[]): number[] {
  return toLogicalPermutation(internal.length).map((axis) => internal[axis]!);
}

/** Internal shape of a logical shape. */
export function internalShape(logical: readonly number[]): number[] {
  return toInternalPermutation(logical.length).map((axis) => logical[axis]!);
}

/** IR weight layout → tfjs layout, for weights of rank ≥ 2 (see the module header). */
export function weightToTfjsPermutation(rank: number): number[] {
  if (rank < 2) return identity(rank);
  return [...range(2, rank), 1, 0];
}

/** tfjs weight layout → IR layout: the inverse of `weightToTfjsPermutation`. */
export function weightToIrPermutation(rank: number): number[] {
  return invertPermutation(weightToTfjsPermutation(rank));
}

export function invertPermutation(perm: readonly number[]): number[] {
  const inverse = new Array<number>(perm.length);
  perm.forEach((axis, i) => {
    inverse[axis] = i;
  });
  return inverse;
}

/** Applies a permutation to row-major data: out has shape perm.map(a => shape[a]). */
export function permuteData(data: Float32Array, shape: readonly number[], perm: readonly number[]): { data: Float32Array; shape: number[] } {
  return permuteTensor({ data, shape }, perm);
}

function identity(rank: number): number[] {
  return range(0, rank);
}

function range(start: number, end: number): number[] {
  const values: number[] = [];
  for (let i = start; i < end; i++) values.push(i);
  return values;
}

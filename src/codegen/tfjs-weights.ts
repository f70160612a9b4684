/**
 * Weight transforms for the TensorFlow.js emitter, applied once at export on row-major float32 data in the IR's
 * layouts (conv [O, I/g, k…], transposed conv [I, O/g, k…], dense [O, I]).
 */

import { permuteTensor } from '../ir/weights.js';

/** Axis permutation (`permuteTensor` in ../ir/weights.ts). */
export const permute = permuteTensor;

export interface HostTensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

function strides(shape: readonly number[]): number[] {
  const result = new Array<number>(shape.length);
  let stride = 1;
  for (let axis = shape.length - 1; axis >= 0; axis--) {
    result[axis] = stride;
    stride *= shape[axis]!;
  }
  return result;
}

function size(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}


/** Rows [start, start + count) of axis 0. */
export function sliceAxis0(tensor: HostTensor, start: number, count: number): HostTensor {
  const inner = size(tensor.shape.slice(1));
  return { shape: [count, ...tensor.shape.slice(1)], data: tensor.data.slice(start * inner, (start + count) * inner) };
}

/** Same data, new shape (a view in row-major order). */
export function reshape(tensor: HostTensor, shape: readonly number[]): HostTensor {
  if (size(shape) !== tensor.data.length) throw new Error(`internal: cannot view [${tensor.shape.join(', ')}] as [${shape.join(', ')}]`);
  return { shape: [...shape], data: tensor.data };
}

/**
 * Writes a dilated kernel out with zeros between the taps: spatial axes (2, 3, …) of [A, B, k…] become
 * d(k − 1) + 1 long, tap f at position f·d. A conv with this kernel and dilation 1 equals the dilated conv.
 */
export function dilateKernel(tensor: HostTensor, dilation: readonly number[]): HostTensor {
  if (dilation.every((d) => d === 1)) return tensor;
  const [a, b, ...kernel] = tensor.shape as [number, number, ...number[]];
  const dilated = kernel.map((k, i) => dilation[i]! * (k - 1) + 1);
  const outShape = [a, b, ...dilated];
  const out = new Float32Array(size(outShape));
  const outStrides = strides(outShape);
  const rank = tensor.shape.length;
  const index = new Array<number>(rank).fill(0);
  for (let source = 0; source < tensor.data.length; source++) {
    let target = index[0]! * outStrides[0]! + index[1]! * outStrides[1]!;
    for (let i = 2; i < rank; i++) target += index[i]! * dilation[i - 2]! * outStrides[i]!;
    out[target] = tensor.data[source]!;
    for (let axis = rank - 1; axis >= 0; axis--) {
      index[axis]!++;
      if (index[axis]! < tensor.shape[axis]!) break;
      index[axis] = 0;
    }
  }
  return { shape: outShape, data: out };
}

/** Reverses the spatial axes (2, 3, …) of [A, B, k…]. */
export function flipSpatial(tensor: HostTensor): HostTensor {
  const shape = tensor.shape;
  const rank = shape.length;
  const st = strides(shape);
  const out = new Float32Array(tensor.data.length);
  const index = new Array<number>(rank).fill(0);
  for (let source = 0; source < tensor.data.length; source++) {
    let target = index[0]! * st[0]! + index[1]! * st[1]!;
    for (let i = 2; i < rank; i++) target += (shape[i]! - 1 - index[i]!) * st[i]!;
    out[target] = tensor.data[source]!;
    for (let axis = rank - 1; axis >= 0; axis--) {
      index[axis]!++;
      if (index[axis]! < shape[axis]!) break;
      index[axis] = 0;
    }
  }
  return { shape: [...shape], data: out };
}

/** Kernel axes first, then axis 1, then axis 0: [A, B, k…] → [k…, B, A] (conv HWIO, transposed conv HW·out·in). */
export function kernelAxesFirst(tensor: HostTensor): HostTensor {
  const rank = tensor.shape.length;
  const perm: number[] = [];
  for (let i = 2; i < rank; i++) perm.push(i);
  perm.push(1, 0);
  return permute(tensor, perm);
}

/** Inserts a unit axis at position `axis`. */
export function unitAxis(tensor: HostTensor, axis: number): HostTensor {
  return reshape(tensor, [...tensor.shape.slice(0, axis), 1, ...tensor.shape.slice(axis)]);
}

/** Gathers the columns of a [rows, cols] matrix: out[r, j] = in[r, columns[j]]. */
export function gatherColumns(tensor: HostTensor, columns: readonly number[]): HostTensor {
  const [rows, cols] = tensor.shape as [number, number];
  const out = new Float32Array(rows * columns.length);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < columns.length; j++) out[r * columns.length + j] = tensor.data[r * cols + columns[j]!]!;
  }
  return { shape: [rows, columns.length], data: out };
}

export function gatherVector(data: Float32Array, indices: readonly number[]): Float32Array {
  return Float32Array.from(indices, (i) => data[i]!);
}

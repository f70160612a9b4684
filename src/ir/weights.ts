/**
 * Weights: named float32 tensors in the IR's logical layout, keyed by parameter name (`stem.conv1.weight`).
 *
 * Initialisation: He (Kaiming) uniform for conv and dense weights, U(−b, b) with b = √(6 / fan_in) — the variance
 * 2 / fan_in of He normal, one random number per weight instead of a Box–Muller pair, which matters at 25M
 * weights — where fan_in = (in/groups)·∏k (for transposed convs, the output side's out/groups·∏k); zero biases,
 * BN γ = 1, β = 0, running mean 0 and variance 1 (Keras' he_uniform; PyTorch's default is the same shape with a
 * smaller bound). The He-uniform weights are `DrawnWeight`s: drawn when first read. `randomWeights` instead draws
 * every tensor (BN statistics included) from distributions that make numerical tests meaningful.
 */
import { createMulberry32, deriveSeed, normalSample } from '../random.js';
import type { Graph } from './graph.js';
import { drawHeUniform, heUniformBytes, type HeUniformStream } from './he-uniform.js';
import { graphParameters, parameterSize, type ParamSpec } from './params.js';

export interface WeightTensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

export type Weights = ReadonlyMap<string, WeightTensor>;

/**
 * Transposes row-major data: the result has shape perm.map(a => shape[a]) and out[i…] = in[i permuted back].
 * Walking the output in row-major order, the input offset advances by the stride of the permuted axis, so the
 * loop does one add per element and no index arithmetic. The identity permutation returns a copy.
 */
export function permuteTensor(tensor: WeightTensor, perm: readonly number[]): { shape: number[]; data: Float32Array } {
  const { shape, data } = tensor;
  const rank = shape.length;
  const outShape = perm.map((axis) => shape[axis]!);
  if (perm.every((axis, i) => axis === i)) return { shape: outShape, data: data.slice() };
  const inStrides = new Array<number>(rank);
  let stride = 1;
  for (let axis = rank - 1; axis >= 0; axis--) {
    inStrides[axis] = stride;
    stride *= shape[axis]!;
  }
  const walk = perm.map((axis) => inStrides[axis]!);
  const out = new Float32Array(data.length);
  const index = new Array<number>(rank).fill(0);
  let source = 0;
  for (let target = 0; target < out.length; target++) {
    out[target] = data[source]!;
    for (let axis = rank - 1; axis >= 0; axis--) {
      index[axis]!++;
      source += walk[axis]!;
      if (index[axis]! < outShape[axis]!) break;
      source -= walk[axis]! * outShape[axis]!;
      index[axis] = 0;
    }
  }
  return { shape: outShape, data: out };
}

function fanIn(param: ParamSpec): number {
  return param.shape.slice(1).reduce((a, b) => a * b, 1);
}

function seedFor(seed: number, name: string): number {
  let hash = 0;
  for (let i = 0; i < name.length; i++) hash = (Math.imul(hash, 31) + name.charCodeAt(i)) >>> 0;
  return deriveSeed(seed, hash);
}

/**
 * A He-uniform weight drawn when first read (he-uniform.ts gives the numbers). Reading `data` draws it once and
 * keeps it; from then on the array is the tensor (callers may change it in place, as with any tensor). Until
 * then `bytes()` streams it to a file without holding it, and `withRowScale` gives this weight times a factor
 * per output channel — batch-norm folding into a fresh conv or dense layer — as another unread tensor, with the
 * same values a fold of the drawn array gives. For ResNet-50's 100 MB of fresh weights that is what makes
 * `compile` write the file without drawing, folding and copying it in three passes over memory.
 */
export class DrawnWeight implements WeightTensor {
  #data: Float32Array | undefined;
  /**
   * An own, enumerable property (a getter defined per object, not on the class), so that what works on a plain
   * tensor works here: `{ ...tensor }` and JSON see the values.
   */
  declare readonly data: Float32Array;

  constructor(
    readonly shape: readonly number[],
    readonly stream: HeUniformStream,
  ) {
    Object.defineProperty(this, 'data', { enumerable: true, get: () => this.drawn() });
  }

  private drawn(): Float32Array {
    if (!this.#data) {
      this.#data = new Float32Array(this.length);
      drawHeUniform(this.#data, this.stream);
    }
    return this.#data;
  }

  get length(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** Whether nothing has read `data` yet: only then do `bytes` and `withRowScale` apply. */
  get unread(): boolean {
    return this.#data === undefined;
  }

  /**
   * This weight with row r (output channel r: axis 0 of a conv or dense weight) times scale[r], each element
   * rounded to float32 once more, as `data[i] * scale[r]` stored in a Float32Array is. Undefined when the weight
   * was read or already carries a scale (two roundings cannot be merged into one factor).
   */
  withRowScale(scale: Float64Array): DrawnWeight | undefined {
    if (!this.unread || this.stream.rowScale || scale.length !== this.shape[0]) return undefined;
    return new DrawnWeight(this.shape, { ...this.stream, rowSize: this.length / this.shape[0]!, rowScale: scale });
  }

  /**
   * The float32 bytes (little endian on little-endian hosts) in 1 MiB pieces, each valid while the next is drawn,
   * until a second one is: for writeFileAtomicAsync, which runs such streams one at a time (see heUniformBytes).
   */
  bytes(): Iterable<Uint8Array> {
    if (!this.unread) return [new Uint8Array(this.#data!.buffer, this.#data!.byteOffset, this.#data!.byteLength)];
    return heUniformBytes(this.stream, this.length);
  }

  /**
   * Writes elements [first, first + target.length) into `target`, drawing them alone when unread (nothing else is
   * drawn or kept, and the streaming memory is left alone: safe while a streamed write is in progress).
   */
  read(target: Float32Array, first = 0): void {
    if (this.unread) drawHeUniform(target, this.stream, first);
    else target.set(this.#data!.subarray(first, first + target.length));
  }
}

/** Training initialisation (He uniform weights, zero biases, identity batch norm). */
export function initializeWeights(graph: Graph, seed = 0): Map<string, WeightTensor> {
  const weights = new Map<string, WeightTensor>();
  for (const param of graphParameters(graph.nodes)) {
    if (param.role === 'weight' && param.shape.length >= 2) {
      weights.set(param.name, new DrawnWeight(param.shape, { seed: seedFor(seed, param.name), bound: Math.sqrt(6 / Math.max(1, fanIn(param))) }));
      continue;
    }
    const data = new Float32Array(parameterSize(param));
    if ((param.role === 'weight' && param.shape.length === 1) || param.role === 'running_var') {
      data.fill(1);
    }
    weights.set(param.name, { shape: param.shape, data });
  }
  return weights;
}

/**
 * Random weights for numerical tests: weights scaled to keep activations near unit variance, random biases,
 * BN γ ∈ [0.5, 1.5], β ∈ [−0.5, 0.5], running mean ∈ [−0.5, 0.5], running variance ∈ [0.5, 1.5].
 */
export function randomWeights(graph: Graph, seed = 0): Map<string, WeightTensor> {
  const weights = new Map<string, WeightTensor>();
  for (const param of graphParameters(graph.nodes)) {
    const data = new Float32Array(parameterSize(param));
    const random = createMulberry32(seedFor(seed, param.name));
    const uniform = (low: number, high: number) => low + (high - low) * random();
    if (param.role === 'weight' && param.shape.length >= 2) {
      const std = Math.sqrt(1 / Math.max(1, fanIn(param)));
      for (let i = 0; i < data.length; i++) data[i] = normalSample(random) * std;
    } else {
      const [low, high] = param.role === 'running_var' || param.role === 'weight' ? [0.5, 1.5] : [-0.5, 0.5];
      for (let i = 0; i < data.length; i++) data[i] = uniform(low, high);
    }
    weights.set(param.name, { shape: param.shape, data });
  }
  return weights;
}

export interface WeightProblem {
  readonly kind: 'missing' | 'shape' | 'unused';
  readonly name: string;
  readonly expected?: readonly number[];
  readonly found?: readonly number[];
}

/** Compares weights with what a graph needs: every missing tensor, wrong shape and unused tensor. */
export function checkWeights(graph: Graph, weights: Weights): WeightProblem[] {
  const problems: WeightProblem[] = [];
  const needed = graphParameters(graph.nodes);
  const names = new Set(needed.map((p) => p.name));
  for (const param of needed) {
    const tensor = weights.get(param.name);
    if (!tensor) problems.push({ kind: 'missing', name: param.name, expected: param.shape });
    else if (tensor.shape.length !== param.shape.length || tensor.shape.some((d, i) => d !== param.shape[i]))
      problems.push({ kind: 'shape', name: param.name, expected: param.shape, found: tensor.shape });
  }
  for (const [name, tensor] of weights) if (!names.has(name)) problems.push({ kind: 'unused', name, found: tensor.shape });
  return problems;
}

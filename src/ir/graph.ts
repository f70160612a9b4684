/**
 * The convspec IR: one typed graph that every stage after elaboration reads.
 *
 * - SSA: each node produces exactly one tensor, named by the node's stable user-visible path
 *   (`stage2.basic1.conv2`); inputs refer to graph inputs or earlier nodes by that name. `nodes` is in
 *   topological order.
 * - Logical layout NCHW / NCL / NCDHW (ONNX's). Kernels are [out, in/groups, k…]; dense weights [out, in].
 * - SAME / causal padding is resolved to explicit begin/end pads when sizes are known; only SAME with a stride
 *   above 1 on a symbolic size stays `'same-dynamic'` (SAME_UPPER at run time).
 * - Attributes are typed per op (`OpAttributes` is one discriminated union on `op`).
 * - Training metadata (frozen, regularisers, dropout rates, BN momentum) is part of every node and survives
 *   every export.
 * - Immutable: passes build new graphs and return the same graph object when nothing changed.
 */
import type { Dim } from './dims.js';
import type { Span } from '../source.js';

export type Shape = readonly Dim[];
export type DType = 'f32';

/** Explicit pads per spatial axis: `begin[i]` before and `end[i]` after the data on axis i. */
export interface Padding {
  readonly begin: readonly number[];
  readonly end: readonly number[];
}

/** How padding was written; kept so printers and diagnostics can say what the user asked for. */
export type PadMode = 'explicit' | 'same' | 'valid' | 'causal';

export type Activation =
  | { readonly kind: 'relu' }
  | { readonly kind: 'relu6' }
  | { readonly kind: 'leaky_relu'; readonly alpha: number }
  | { readonly kind: 'elu'; readonly alpha: number }
  | { readonly kind: 'sigmoid' }
  | { readonly kind: 'hard_sigmoid'; readonly alpha: number; readonly beta: number }
  | { readonly kind: 'tanh' }
  | { readonly kind: 'swish' }
  | { readonly kind: 'hard_swish' }
  | { readonly kind: 'gelu' }
  | { readonly kind: 'softmax'; readonly axis: number };

export type ActivationKind = Activation['kind'];

export interface ConvAttributes {
  readonly op: 'conv';
  readonly inChannels: number;
  readonly filters: number;
  readonly kernel: readonly number[];
  readonly stride: readonly number[];
  readonly dilation: readonly number[];
  readonly groups: number;
  readonly padding: Padding | 'same-dynamic';
  readonly padMode: PadMode;
  readonly bias: boolean;
}

export interface ConvTransposeAttributes {
  readonly op: 'conv_transpose';
  readonly inChannels: number;
  readonly filters: number;
  readonly kernel: readonly number[];
  readonly stride: readonly number[];
  readonly dilation: readonly number[];
  readonly groups: number;
  readonly padding: Padding;
  readonly outputPadding: readonly number[];
  readonly padMode: PadMode;
  readonly bias: boolean;
}

export interface PoolAttributes {
  readonly op: 'maxpool' | 'avgpool';
  readonly kernel: readonly number[];
  readonly stride: readonly number[];
  readonly padding: Padding | 'same-dynamic';
  readonly padMode: PadMode;
  readonly ceilMode: boolean;
  /** Average pooling only: divide by the full window (true) or by the valid elements (false). */
  readonly countIncludePad: boolean;
}

export interface GlobalPoolAttributes {
  readonly op: 'global_avgpool' | 'global_maxpool';
}

export interface BatchNormAttributes {
  readonly op: 'batchnorm';
  readonly channels: number;
  readonly epsilon: number;
  readonly momentum: number;
}

export interface ActivationAttributes {
  readonly op: 'activation';
  readonly fn: Activation;
}

export interface DropoutAttributes {
  readonly op: 'dropout';
  readonly rate: number;
  /** Drops whole channels (SpatialDropout) instead of single elements. */
  readonly spatial: boolean;
}

export interface ElementwiseAttributes {
  /** Broadcasting as in ONNX/NumPy (an SE gate [N,C,1,1] multiplies [N,C,H,W]). */
  readonly op: 'add' | 'mul';
}

export interface ConcatAttributes {
  readonly op: 'concat';
  readonly axis: number;
}

export interface UpsampleAttributes {
  readonly op: 'upsample';
  readonly scale: readonly number[];
  readonly mode: 'nearest' | 'linear';
}

export interface FlattenAttributes {
  readonly op: 'flatten';
}

export interface ReshapeAttributes {
  readonly op: 'reshape';
  /** Requested shape without the batch dimension, as written (one entry may be -1); `shape` is the result. */
  readonly target: readonly Dim[];
}

export interface DenseAttributes {
  readonly op: 'dense';
  readonly inFeatures: number;
  readonly units: number;
  readonly bias: boolean;
}

export interface PadAttributes {
  readonly op: 'pad';
  readonly padding: Padding;
  readonly mode: 'constant' | 'reflect' | 'edge';
  readonly value: number;
}

export type OpAttributes =
  | ConvAttributes
  | ConvTransposeAttributes
  | PoolAttributes
  | GlobalPoolAttributes
  | BatchNormAttributes
  | ActivationAttributes
  | DropoutAttributes
  | ElementwiseAttributes
  | ConcatAttributes
  | UpsampleAttributes
  | FlattenAttributes
  | ReshapeAttributes
  | DenseAttributes
  | PadAttributes;

export type OpName = OpAttributes['op'];

export type Regularizer =
  | { readonly kind: 'l1'; readonly factor: number }
  | { readonly kind: 'l2'; readonly factor: number }
  | { readonly kind: 'max_norm'; readonly value: number };

/** One int8 tensor: real = scale · (q − zeroPoint), q ∈ [−128, 127]. */
export interface TensorQuantization {
  readonly scale: number;
  readonly zeroPoint: number;
}

/**
 * What the `quantize` pass decided for a node (src/passes/quantize.ts has the rules): it runs on int8 (`int8`),
 * passes int8 values through unchanged (`pass-through`: max pool, flatten, reshape share their input's
 * parameters), or is a ReLU folded into its producer's output quantization (`folded-activation`). `inputs` holds
 * the per-tensor parameters of each input (null: read as float), `output` those of the node's output when it is
 * quantized. Weights are per-channel symmetric int8 (scales computed from the weights at export), so only the
 * scheme is recorded. Nodes left in float carry no annotation.
 */
export interface QuantizationInfo {
  readonly role: 'int8' | 'pass-through' | 'folded-activation';
  readonly inputs: readonly (TensorQuantization | null)[];
  readonly output?: TensorQuantization;
  readonly weights?: 'per-channel-symmetric';
}

export interface NodeCommon {
  readonly name: string;
  readonly inputs: readonly string[];
  /** Output shape. */
  readonly shape: Shape;
  readonly span: Span;
  readonly frozen: boolean;
  readonly regularizers: readonly Regularizer[];
  readonly quantization?: QuantizationInfo;
}

export type Node = NodeCommon & OpAttributes;
/** The node type of one op (`NodeOf<'avgpool'>`), also for attribute types shared by several ops. */
export type NodeOf<K extends OpName> = NodeCommon & (OpAttributes extends infer T ? (T extends { readonly op: infer O } ? (K extends O ? T & { readonly op: K } : never) : never) : never);

export interface GraphInput {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: Shape;
  readonly span: Span;
}

export interface GraphOutput {
  /** The user's name (`logits`). */
  readonly name: string;
  /** The tensor it refers to (`logits.dense1`). */
  readonly value: string;
  readonly span: Span;
}

/** A training setting as written in the spec's `train { … }` section, already evaluated. */
export type SettingValue = number | string | boolean | readonly SettingValue[] | { readonly call: string; readonly args: Readonly<Record<string, SettingValue>> };

export interface Graph {
  readonly name: string;
  readonly inputs: readonly GraphInput[];
  readonly nodes: readonly Node[];
  readonly outputs: readonly GraphOutput[];
  readonly training: Readonly<Record<string, SettingValue>>;
  /** Spec file the graph came from (for metadata and diagnostics). */
  readonly source: string;
}

export function nodeByName(graph: Graph): Map<string, Node> {
  return new Map(graph.nodes.map((n) => [n.name, n]));
}

/** Shapes of every tensor (graph inputs and node outputs) by name. */
export function tensorShapes(graph: Graph): Map<string, Shape> {
  const shapes = new Map<string, Shape>();
  for (const input of graph.inputs) shapes.set(input.name, input.shape);
  for (const node of graph.nodes) shapes.set(node.name, node.shape);
  return shapes;
}

/** For each tensor, the nodes that read it (graph outputs are not listed). */
export function consumers(graph: Graph): Map<string, Node[]> {
  const map = new Map<string, Node[]>();
  for (const node of graph.nodes) {
    for (const input of node.inputs) {
      const list = map.get(input);
      if (list) list.push(node);
      else map.set(input, [node]);
    }
  }
  return map;
}

/** Number of spatial axes of a conv/pool node (1, 2 or 3). */
export function spatialRank(node: { readonly kernel: readonly number[] }): number {
  return node.kernel.length;
}

/** Kernel extent with dilation: α(k − 1) + 1. */
export function effectiveKernel(kernel: number, dilation: number): number {
  return dilation * (kernel - 1) + 1;
}

export function isWeighted(node: Node): node is NodeOf<'conv'> | NodeOf<'conv_transpose'> | NodeOf<'dense'> {
  return node.op === 'conv' || node.op === 'conv_transpose' || node.op === 'dense';
}

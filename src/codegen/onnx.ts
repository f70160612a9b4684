/**
 * ONNX emitter: an IR graph and its weights → one `model.onnx` that the official checker and ONNX Runtime accept.
 *
 * File: IR version 8, the default domain at `opset` (17 unless asked, 13–21 allowed), layout NCHW / NCL / NCDHW as
 * in the IR (no Transpose is ever needed), weights as float32 initializers named exactly as the IR parameters
 * (`stem.conv1.weight`). Graph input and output dimensions come from the IR: a number stays a `dim_value`, a
 * symbolic dimension becomes a `dim_param` holding its text (`N`, `floor((H - 1)/2) + 1`), so the batch stays
 * dynamic whenever the spec declares it symbolic.
 *
 * Names: every ONNX node is named after the IR node that produced it and writes a tensor of the same name; a
 * tensor that is a graph output carries the user's output name (`logits`) instead, so no Identity is needed. Ops
 * that take several ONNX nodes (swish, erf-form GELU, …) name their inner nodes and tensors `<node>/<step>` and
 * their constants `<node>/<constant>`; `/` never occurs in IR names, so these cannot collide. Identity appears in
 * one case only, where no renaming can work: an output that is a graph input, or a second output name for one
 * tensor. Every node carries its source location (`file:line:col`) as its doc string.
 *
 * Mapping rules, IR op → ONNX (opset where a choice depends on it):
 *   conv            Conv(x, W[, B]): kernel_shape, strides, dilations, group, explicit `pads` [b…, e…]; SAME on a
 *                   symbolic size at stride > 1 (`'same-dynamic'`) is auto_pad=SAME_UPPER, which is TF's SAME
 *                   (with dilation, where ONNX Runtime refuses that, see `convSamePadding`).
 *   conv_transpose  ConvTranspose(x, W[, B]) with W [in, out/groups, k…], explicit pads and output_padding
 *                   (which ONNX Runtime wants below the stride: `convTransposeProblem`).
 *   maxpool/avgpool MaxPool / AveragePool: kernel_shape, strides, explicit pads (or SAME_UPPER as for conv,
 *                   where ONNX Runtime accepts it: `poolSamePadding`), ceil_mode; AveragePool count_include_pad.
 *                   A ceil-mode pool whose last window would start in the end padding gets a trimmed end pad
 *                   (`poolWindows`).
 *   global pools    GlobalAveragePool / GlobalMaxPool.
 *   batchnorm       BatchNormalization(x, γ, β, running mean, running var), inference form, epsilon, momentum.
 *   relu6           Clip(x, 0, 6) with min and max as scalar initializers (inputs, not attributes, since opset 11).
 *   swish           x · Sigmoid(x): Sigmoid then Mul.
 *   hard_swish      HardSwish (opset ≥ 14); below, x · HardSigmoid(x; α = 1/6, β = 1/2), the same function.
 *   gelu            Gelu (opset ≥ 20); below, the exact erf form x · ½ · (1 + erf(x / √2)) as Div, Erf, Add, Mul,
 *                   Mul — the pattern torch.onnx writes and ONNX Runtime fuses back into one Gelu kernel.
 *   other activations  Relu, LeakyRelu(alpha), Elu(alpha), Sigmoid, HardSigmoid(alpha, beta), Tanh, Softmax(axis).
 *   dropout         nothing: inference export; its readers are rewired to its input. Its rate is kept in metadata.
 *   add / mul       Add / Mul with NumPy broadcasting; three or more addends → one Sum; factors → a chain of Mul.
 *   concat          Concat(axis).
 *   upsample        Resize(x, '', scales [1, 1, s…]). nearest: coordinate_transformation_mode=asymmetric,
 *                   nearest_mode=floor, i.e. out[i] = in[⌊i/s⌋] — tfjs resizeNearestNeighbor (align corners and half
 *                   pixel centres off) and Keras UpSampling. linear: coordinate_transformation_mode=half_pixel,
 *                   src = (i + ½)/s − ½ clamped to [0, in − 1] — tfjs resizeBilinear(halfPixelCenters: true),
 *                   tf.image.resize and PyTorch's align_corners=False.
 *   flatten         Flatten(axis 1).
 *   reshape         Reshape(x, shape) with an int64 initializer: 0 (copy) for the batch and for each symbolic
 *                   dimension equal to the input's on the same axis, −1 for at most one other symbolic dimension.
 *   dense           Gemm(x, W[, B]) with transB = 1 (W is [out, in]).
 *   pad             Pad(x, pads [0, 0, b…, 0, 0, e…][, value]) with mode constant / reflect / edge.
 *
 * Shape declarations: graph inputs and outputs carry the IR's (symbolic) shapes; with `valueInfo` every intermediate
 * tensor also gets a value_info. They agree with onnx's shape inference, which the official checker runs strictly,
 * because ceil-mode pools are rewritten where the two rules differ (`poolWindows`).
 *
 * Attributes equal to the operator's default (strides and dilations of 1, group 1, all-zero pads, ceil_mode and
 * count_include_pad 0, output_padding 0) are left out, as the operator definitions allow. auto_pad is only ever
 * SAME_UPPER where stated above, so a node without pads has none.
 *
 * Metadata (`metadata_props`, each value JSON; the producer and its version are the model's producer fields):
 * `convspec.source`, `convspec.spec_hash` (when given), `convspec.frozen` (frozen layers), `convspec.regularizers`
 * (groups of layers with their terms, see `regularizerGroups`), `convspec.dropout` (rate
 * and spatial per dropout layer), `convspec.batchnorm` (momentum and epsilon per layer), `convspec.training`
 * (the spec's train settings, keys sorted) and `convspec.quantization` when a layer has quantization parameters.
 *
 * Diagnostics instead of broken files. CNN7001 for an opset outside 13–21 and for what no opset lets ONNX Runtime
 * run: SAME on a symbolic size with stride and dilation (conv) or with a stride above the kernel (pool); a deconv
 * output_padding not below its stride; a reshape that needs shape arithmetic; a ceil-mode pool whose dropped last
 * window no rewrite can remove with the same windows and divisors (stride above the kernel on that axis, with
 * count_include_pad or a symbolic size on another). CNN8002/CNN8003 for missing or mis-shaped weights, CNN3003 for an output name that another
 * tensor has. With an error the result has empty bytes. (Below the opsets of HardSwish and Gelu, the exact
 * decompositions above are emitted instead of a diagnostic.)
 *
 * Deterministic: the builder sorts attributes and metadata and writes raw little-endian data; nothing depends on
 * time or the host. Same graph, weights and options → byte-identical file.
 */
import path from 'node:path';
import { packageVersion, PRODUCER_NAME } from '../version.js';
import { diagnostic, type Diagnostic } from '../diagnostics.js';
import { dimToString, equalDims, isSymbolic, type Dim } from '../ir/dims.js';
import { effectiveKernel, type ConvAttributes, type Graph, type Node, type NodeOf, type Padding, type SettingValue, type Shape } from '../ir/graph.js';
import { graphParameters } from '../ir/params.js';
import { DrawnWeight, type Weights } from '../ir/weights.js';
import { weightDiagnostics } from './weight-diagnostics.js';
import type { Span } from '../source.js';
import { attr, concatenateSegments, OnnxGraphBuilder, type EncodedModel, type OnnxAttributeValue, type OnnxDim, type OnnxTypedArray } from './onnx-model.js';

export const ONNX_IR_VERSION = 8;
export const DEFAULT_OPSET = 17;
export const MIN_OPSET = 13;
export const MAX_OPSET = 21;

/** First opset of the default domain with each single-op form this emitter uses above the minimum. */
export const OP_SINCE_OPSET = Object.freeze({ HardSwish: 14, Gelu: 20 });

export interface EmitOnnxOptions {
  /** Version of the default ONNX domain; 17 by default, 13–21 allowed. */
  readonly opset?: number;
  /** `producer_version`; defaults to convspec's package version. */
  readonly producerVersion?: string;
  /** Hash of the spec the graph came from, stored as `convspec.spec_hash`. */
  readonly specHash?: string;
  /** The model's doc string; defaults to a line naming the model and its spec file. */
  readonly docString?: string;
  /**
   * Store equal weight tensors once, the twins as outputs of Identity nodes (default true; the
   * int8 rewriter, which reads every weight as an initializer, turns it off).
   */
  readonly shareEqualInitializers?: boolean;
  /**
   * Declare the shape of every intermediate tensor (value_info), as the compiler inferred it. Off by default, as
   * in torch.onnx's files: ONNX Runtime and `onnx.shape_inference` derive them, and they are 6 KB of ResNet-50's
   * file. The tests turn them on, so the official checker's strict shape inference confirms every one.
   */
  readonly valueInfo?: boolean;
}

export interface EmitOnnxResult {
  /** The encoded ModelProto; empty when `diagnostics` has an error. Joined from `encoded` on first access. */
  readonly bytes: Uint8Array;
  /**
   * The same bytes in pieces, the large weights being views of `weights`' arrays (no copy): what a file writer
   * takes. Valid while those arrays are unchanged.
   */
  readonly encoded: EncodedModel;
  readonly diagnostics: Diagnostic[];
}

function emitted(encoded: EncodedModel, diagnostics: Diagnostic[]): EmitOnnxResult {
  let bytes: Uint8Array | undefined;
  return {
    get bytes() {
      return (bytes ??= concatenateSegments(encoded));
    },
    encoded,
    diagnostics,
  };
}

const NOTHING: EncodedModel = { segments: [], byteLength: 0 };



// ---------------------------------------------------------------------------------------------------------------
// Entry point

export function emitOnnx(graph: Graph, weights: Weights, options: EmitOnnxOptions = {}): EmitOnnxResult {
  const diagnostics: Diagnostic[] = [];
  const opset = options.opset ?? DEFAULT_OPSET;
  if (!Number.isInteger(opset) || opset < MIN_OPSET || opset > MAX_OPSET) {
    diagnostics.push(
      diagnostic('notExpressibleInOpset', undefined, [`opset ${opset} is not supported: convspec emits ONNX opsets ${MIN_OPSET} to ${MAX_OPSET}`], `use --opset ${DEFAULT_OPSET}`),
    );
    return emitted(NOTHING, diagnostics);
  }
  diagnostics.push(...weightDiagnostics(graph, weights));
  const naming = planTensorNames(graph, diagnostics);
  diagnostics.push(...expressibilityProblems(graph));
  if (diagnostics.some((d) => d.severity === 'error')) return emitted(NOTHING, diagnostics);

  const emitter = new OnnxEmitter(graph, weights, opset, naming, options.valueInfo === true);
  for (const node of graph.nodes) emitter.emitNode(node);

  const encoded = emitter.finish({
    producerVersion: options.producerVersion ?? packageVersion(),
    docString: options.docString ?? `${graph.name}, compiled by convspec from ${graph.source}`,
    metadata: trainingMetadata(graph, options.specHash),
    shareEqualInitializers: options.shareEqualInitializers ?? true,
  });
  return emitted(encoded, diagnostics);
}


// ---------------------------------------------------------------------------------------------------------------
// Tensor names: dropout rewiring and graph-output renaming

interface TensorNaming {
  /** ONNX tensor name of every IR tensor (graph inputs and non-dropout nodes); dropout nodes map to their source. */
  readonly tensor: ReadonlyMap<string, string>;
  /** Graph outputs that need an Identity (their value is a graph input, or already carries another output's name). */
  readonly identities: ReadonlyArray<{ readonly output: string; readonly from: string; readonly span: Span }>;
  /** The IR tensor behind each graph output (dropouts skipped). */
  readonly outputSource: ReadonlyMap<string, string>;
}

function planTensorNames(graph: Graph, diagnostics: Diagnostic[]): TensorNaming {
  const byName = new Map(graph.nodes.map((n) => [n.name, n]));
  const sourceOf = (name: string): string => {
    let current = name;
    for (let node = byName.get(current); node?.op === 'dropout'; node = byName.get(current)) current = node.inputs[0]!;
    return current;
  };
  const inputNames = new Set(graph.inputs.map((i) => i.name));
  const tensor = new Map<string, string>();
  for (const input of graph.inputs) tensor.set(input.name, input.name);
  for (const node of graph.nodes) if (node.op !== 'dropout') tensor.set(node.name, node.name);

  const identities: Array<{ output: string; from: string; span: Span }> = [];
  const outputSource = new Map<string, string>();
  const renamed = new Set<string>();
  for (const output of graph.outputs) {
    const source = sourceOf(output.value);
    outputSource.set(output.name, source);
    if (inputNames.has(source) && output.name === source) continue; // a graph input listed as an output as it is
    if (!inputNames.has(source) && !renamed.has(source)) {
      renamed.add(source);
      tensor.set(source, output.name);
    } else {
      identities.push({ output: output.name, from: source, span: output.span });
    }
  }
  // After renaming, every tensor name must be unique (an output may take the name a renamed layer gave up).
  const owners = new Map<string, number>();
  for (const name of [...tensor.values(), ...identities.map((i) => i.output)]) owners.set(name, (owners.get(name) ?? 0) + 1);
  const reported = new Set<string>();
  for (const output of graph.outputs) {
    if ((owners.get(output.name) ?? 0) > 1 && !reported.has(output.name)) {
      reported.add(output.name);
      diagnostics.push(diagnostic('duplicateName', output.span, [output.name], 'an ONNX graph output needs a name that no other tensor of the model has'));
    }
  }
  for (const node of graph.nodes) if (node.op === 'dropout') tensor.set(node.name, tensor.get(sourceOf(node.name))!);
  return { tensor, identities, outputSource };
}

// ---------------------------------------------------------------------------------------------------------------
// What has no ONNX form (checked for the whole graph before anything is built, so every problem is reported)

function expressibilityProblems(graph: Graph): Diagnostic[] {
  const shapes = new Map<string, Shape>(graph.inputs.map((i) => [i.name, i.shape]));
  const problems: Diagnostic[] = [];
  const report = (node: Node, problem: { reason: string; hint: string }) =>
    problems.push(diagnostic('notExpressibleInOpset', node.span, [problem.reason], problem.hint));
  for (const node of graph.nodes) {
    const inputShape = shapes.get(node.inputs[0] ?? '') ?? [];
    shapes.set(node.name, node.shape);
    if (node.op === 'conv' && node.padding === 'same-dynamic') {
      const pads = convSamePadding(node, inputShape);
      if (typeof pads === 'object' && 'reason' in pads) report(node, pads);
    } else if (node.op === 'maxpool' || node.op === 'avgpool') {
      const windows = node.padding === 'same-dynamic' ? poolSamePadding(node, inputShape) : poolWindows(node, node.padding, inputShape);
      if ('reason' in windows) report(node, windows);
    } else if (node.op === 'conv_transpose') {
      const problem = convTransposeProblem(node);
      if (problem) report(node, problem);
    } else if (node.op === 'reshape') {
      const target = reshapeTarget(node, inputShape);
      if ('reason' in target) report(node, target);
    }
  }
  return problems;
}

interface Inexpressible {
  readonly reason: string;
  readonly hint: string;
}

/**
 * How a conv with SAME padding on a symbolic size is stated: auto_pad=SAME_UPPER (TF's SAME; ONNX Runtime's Conv
 * clamps a negative pad at 0 as TF does). With dilation ONNX Runtime refuses auto_pad ("Dilation not supported for
 * AutoPadType::SAME_UPPER"), so explicit pads are used where SAME's pads do not depend on the size — known sizes,
 * stride 1, or an extent of 1 or 2 (pads [0, k' − 1]: the extra end zeros add nothing) — and otherwise there is
 * no ONNX form.
 */
function convSamePadding(node: NodeOf<'conv'>, inputShape: Shape): number[] | 'SAME_UPPER' | Inexpressible {
  if (node.dilation.every((d) => d === 1)) return 'SAME_UPPER';
  const begin: number[] = [];
  const end: number[] = [];
  for (let i = 0; i < node.kernel.length; i++) {
    const size = inputShape[2 + i];
    const s = node.stride[i]!;
    const k = effectiveKernel(node.kernel[i]!, node.dilation[i]!);
    let total: number;
    if (typeof size === 'number') total = Math.max((Math.ceil(size / s) - 1) * s + k - size, 0);
    else if (s === 1) total = k - 1;
    else if (k <= 2) {
      begin.push(0);
      end.push(k - 1);
      continue;
    } else {
      return {
        reason:
          'conv with SAME padding, stride > 1 and dilation > 1 on a symbolic size needs auto_pad=SAME_UPPER with dilations, which ONNX Runtime refuses in every opset',
        hint: 'declare the spatial sizes of the input, or use stride 1 or explicit pads',
      };
    }
    begin.push(Math.floor(total / 2));
    end.push(total - Math.floor(total / 2));
  }
  return [...begin, ...end];
}

/**
 * The IR allows output_padding < max(stride, dilation) (PyTorch's rule), but ONNX Runtime's ConvTranspose checks
 * the input size against (out − k')/s + 1 without output_padding, so it refuses output_padding ≥ stride.
 */
function convTransposeProblem(node: NodeOf<'conv_transpose'>): Inexpressible | undefined {
  if (node.outputPadding.every((p, i) => p < node.stride[i]!)) return undefined;
  return {
    reason: `deconv with output_padding ${list(node.outputPadding)} not below its stride ${list(node.stride)} has no ConvTranspose that ONNX Runtime runs (any opset)`,
    hint: 'use an output_padding smaller than the stride, or pad the output with the pad op',
  };
}

/**
 * How a pool with SAME padding on a symbolic size is stated. auto_pad=SAME_UPPER is TF's SAME, but ONNX Runtime's
 * pools compute its pad without clamping at 0 and refuse the negative pad that appears when the stride exceeds the
 * kernel and the size is a multiple of the stride (its Conv clamps). So SAME_UPPER is used where that cannot
 * happen (kernel ≥ stride on every axis that can vary); otherwise explicit pads are used where SAME's pads do not
 * depend on the size — known sizes, stride 1, or a kernel of 1 or 2 (pads [0, k − 1]: the extra end pad only
 * clips windows, which max and a count_include_pad-free average ignore); otherwise it has no ONNX form.
 * Floor mode in both forms: SAME means out = ⌈in/s⌉, which a ceil-mode window count can exceed.
 */
function poolSamePadding(node: NodeOf<'maxpool' | 'avgpool'>, inputShape: Shape): { pads: number[] | 'SAME_UPPER'; ceilMode: false } | Inexpressible {
  const begin: number[] = [];
  const end: number[] = [];
  let autoWorks = true;
  let explicitWorks = true;
  node.kernel.forEach((k, i) => {
    const size = inputShape[2 + i];
    const s = node.stride[i]!;
    if (typeof size === 'number') {
      const needed = (Math.ceil(size / s) - 1) * s + k - size;
      const total = Math.max(needed, 0);
      if (needed < 0) autoWorks = false;
      begin.push(Math.floor(total / 2));
      end.push(total - Math.floor(total / 2));
    } else if (s === 1) {
      begin.push(Math.floor((k - 1) / 2));
      end.push(k - 1 - Math.floor((k - 1) / 2));
    } else {
      if (k < s) autoWorks = false;
      if (k > 2 || (node.op === 'avgpool' && node.countIncludePad)) explicitWorks = false;
      begin.push(0);
      end.push(k - 1);
    }
  });
  if (autoWorks) return { pads: 'SAME_UPPER', ceilMode: false };
  if (explicitWorks) return { pads: [...begin, ...end], ceilMode: false };
  return {
    reason:
      `${node.op} with SAME padding, a stride above the kernel and a symbolic size has no ONNX form that ONNX Runtime runs for every size ` +
      '(any opset): it computes a negative SAME_UPPER pad when the size is a multiple of the stride, and refuses it',
    hint: 'declare the spatial sizes of the input, or use a kernel at least as large as the stride, or explicit pads',
  };
}

/**
 * `pads` and `ceil_mode` for a pool with explicit padding.
 *
 * In ceil mode ONNX Runtime (like PyTorch and the IR) drops a last window that would start in the end padding, but
 * onnx's shape inference (the official checker's, and the one ONNX Runtime itself runs when it loads a model)
 * counts it: written literally, such a pool has one size at load time and another at run time, and a Gemm or Add
 * after it fails to load. Where that window exists, the end pad is trimmed to where the last kept window ends,
 * e' = (out − 1)·s − b + k − in (< e): the same windows with the same divisors, and both rules give `out`. When e'
 * would be negative (stride > kernel), floor mode with e' = max(·, 0) on every axis gives the same windows too,
 * except under count_include_pad on an axis where that grows the end pad (its divisors would change).
 */
function poolWindows(node: NodeOf<'maxpool' | 'avgpool'>, padding: Padding, inputShape: Shape): { pads: number[]; ceilMode: boolean } | Inexpressible {
  const literal = { pads: onnxPads(padding), ceilMode: node.ceilMode };
  if (!node.ceilMode) return literal;
  const rank = node.kernel.length;
  const lastWindowEnd: Array<number | undefined> = [];
  const dropped: boolean[] = [];
  for (let i = 0; i < rank; i++) {
    const size = inputShape[2 + i];
    const out = node.shape[2 + i];
    if (typeof size !== 'number' || typeof out !== 'number') {
      lastWindowEnd.push(undefined);
      dropped.push(false);
      continue;
    }
    const [k, s, b, e] = [node.kernel[i]!, node.stride[i]!, padding.begin[i]!, padding.end[i]!];
    dropped.push(Math.ceil((size + b + e - k) / s) + 1 !== out);
    lastWindowEnd.push((out - 1) * s - b + k - size);
  }
  if (!dropped.some(Boolean)) return literal;
  if (dropped.every((drop, i) => !drop || lastWindowEnd[i]! >= 0)) {
    return { pads: [...padding.begin, ...padding.end.map((e, i) => (dropped[i] ? lastWindowEnd[i]! : e))], ceilMode: true };
  }
  const floorEnds = lastWindowEnd.map((end) => (end === undefined ? undefined : Math.max(end, 0)));
  const divisorsKept = (i: number): boolean => node.op === 'maxpool' || !node.countIncludePad || floorEnds[i]! <= padding.end[i]!;
  if (floorEnds.every((end, i) => end !== undefined && divisorsKept(i))) {
    return { pads: [...padding.begin, ...(floorEnds as number[])], ceilMode: false };
  }
  return {
    reason:
      `${node.op} in ceil mode whose last window starts in the end padding has no ONNX form here that onnx shape inference and ` +
      'ONNX Runtime agree on (any opset): ONNX Runtime drops that window, shape inference counts it',
    hint: 'use floor mode, count_include_pad: false, or a smaller end pad',
  };
}

/**
 * Reshape's shape constant: 0 (copy) for the batch and for a symbolic size equal to the input's on the same axis,
 * the size itself when known, and −1 for at most one other symbolic size.
 */
function reshapeTarget(node: NodeOf<'reshape'>, inputShape: Shape): number[] | Inexpressible {
  const target: number[] = [0];
  const free: string[] = [];
  for (let axis = 1; axis < node.shape.length; axis++) {
    const d: Dim = node.shape[axis]!;
    if (typeof d === 'number') target.push(d);
    else if (axis < inputShape.length && equalDims(d, inputShape[axis]!)) target.push(0);
    else {
      free.push(dimToString(d));
      target.push(-1);
    }
  }
  if (free.length <= 1) return target;
  return {
    reason:
      `reshape to [${node.shape.map(dimToString).join(', ')}] has no ONNX Reshape with a constant shape: ${free.join(' and ')} ` +
      'are known only at run time, and Reshape infers at most one size (-1)',
    hint: 'give the input fixed sizes, or keep the symbolic sizes on their axes',
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The emitter

class OnnxEmitter {
  readonly builder = new OnnxGraphBuilder();
  private readonly shapes = new Map<string, Shape>();
  private readonly graphOutputSources: Set<string>;

  constructor(
    readonly graph: Graph,
    readonly weights: Weights,
    readonly opset: number,
    readonly naming: TensorNaming,
    /** Declare every intermediate tensor's shape (`EmitOnnxOptions.valueInfo`). */
    readonly valueInfo: boolean,
  ) {
    this.graphOutputSources = new Set(naming.outputSource.values());
    for (const input of graph.inputs) {
      this.shapes.set(input.name, input.shape);
      this.builder.addInput(input.name, 'float32', this.onnxDims(input.shape), location(input.span, this.graph.source));
    }
  }

  // -- helpers shared by the op families ------------------------------------------------------------------------

  /** ONNX tensor name of the IR tensor `name`. */
  tensor(name: string): string {
    const mapped = this.naming.tensor.get(name);
    if (mapped === undefined) throw new Error(`internal: tensor '${name}' has no ONNX name`);
    return mapped;
  }

  inputsOf(node: Node): string[] {
    return node.inputs.map((i) => this.tensor(i));
  }

  outputOf(node: Node): string {
    return this.tensor(node.name);
  }

  /** Adds one ONNX node carrying the IR node's location. */
  add(node: Node, opType: string, inputs: readonly string[], output: string, name: string, attributes: Readonly<Record<string, OnnxAttributeValue>> = {}): void {
    this.builder.addNode(opType, inputs, [output], name, attributes, location(node.span, this.graph.source));
  }

  /** The ONNX node that writes the IR node's own tensor. */
  addMain(node: Node, opType: string, inputs: readonly string[], attributes: Readonly<Record<string, OnnxAttributeValue>> = {}): void {
    this.add(node, opType, inputs, this.outputOf(node), node.name, attributes);
  }

  /** Name of an inner step of a multi-node op (`<node>/<step>`), used for its node and its tensor. */
  step(node: Node, step: string): string {
    return `${node.name}/${step}`;
  }

  /** A constant initializer owned by a node (`<node>/<what>`). */
  constant(node: Node, what: string, dims: readonly number[], data: OnnxTypedArray): string {
    const name = `${node.name}/${what}`;
    this.builder.addInitializer(name, dims, data);
    return name;
  }

  scalar(node: Node, what: string, value: number): string {
    return this.constant(node, what, [], new Float32Array([value]));
  }

  /** Adds the initializer of an IR parameter (`<node>.<role>`) and returns its name. */
  parameter(node: Node, role: 'weight' | 'bias' | 'running_mean' | 'running_var'): string {
    const name = `${node.name}.${role}`;
    const tensor = this.weights.get(name);
    if (!tensor) throw new Error(`internal: weight '${name}' vanished after checking`);
    // A fresh weight nobody has read is drawn as the file is written, not now.
    this.builder.addInitializer(name, tensor.shape, tensor instanceof DrawnWeight && tensor.unread ? tensor : tensor.data);
    return name;
  }

  onnxDims(shape: Shape): OnnxDim[] {
    return shape.map((d) => (isSymbolic(d) ? dimToString(d) : d));
  }

  // -- dispatch -------------------------------------------------------------------------------------------------

  emitNode(node: Node): void {
    this.shapes.set(node.name, node.shape);
    switch (node.op) {
      case 'conv':
        emitConv(this, node);
        break;
      case 'conv_transpose':
        emitConvTranspose(this, node);
        break;
      case 'maxpool':
      case 'avgpool':
        emitPool(this, node);
        break;
      case 'global_avgpool':
      case 'global_maxpool':
        emitGlobalPool(this, node);
        break;
      case 'batchnorm':
        emitBatchNorm(this, node);
        break;
      case 'activation':
        emitActivation(this, node);
        break;
      case 'dropout':
        return; // identity at inference: readers were rewired to its input, nothing is declared
      case 'add':
      case 'mul':
        emitElementwise(this, node);
        break;
      case 'concat':
        emitConcat(this, node);
        break;
      case 'upsample':
        emitUpsample(this, node);
        break;
      case 'flatten':
        emitFlatten(this, node);
        break;
      case 'reshape':
        emitReshape(this, node);
        break;
      case 'dense':
        emitDense(this, node);
        break;
      case 'pad':
        emitPad(this, node);
        break;
    }
    if (this.valueInfo && !this.graphOutputSources.has(node.name)) this.builder.addValueInfo(node.name, 'float32', this.onnxDims(node.shape));
  }

  shapeOf(name: string): Shape {
    const shape = this.shapes.get(name);
    if (!shape) throw new Error(`internal: no shape for '${name}'`);
    return shape;
  }

  finish(model: { producerVersion: string; docString: string; metadata: Record<string, string>; shareEqualInitializers: boolean }): EncodedModel {
    for (const identity of this.naming.identities) {
      this.builder.addNode('Identity', [this.tensor(identity.from)], [identity.output], `${identity.output}/identity`, {}, location(identity.span, this.graph.source));
    }
    for (const output of this.graph.outputs) {
      const source = this.naming.outputSource.get(output.name)!;
      this.builder.addOutput(output.name, 'float32', this.onnxDims(this.shapeOf(source)), location(output.span, this.graph.source));
    }
    return this.builder.buildSegments({
      irVersion: ONNX_IR_VERSION,
      opset: this.opset,
      producerName: PRODUCER_NAME,
      producerVersion: model.producerVersion,
      docString: model.docString,
      metadataProps: model.metadata,
      graphName: this.graph.name,
      graphDocString: `from ${this.graph.source}`,
      shareEqualInitializers: model.shareEqualInitializers,
    });
  }
}

/**
 * `file:line:column`, the file relative to the folder of the graph's spec (`resnet50.cnn:18:3`,
 * `lib/blocks.cnn:31:12`): the same spec gives the same doc strings from whichever folder it is compiled.
 */
function location(span: Span, source: string): string {
  const file = (span.file && path.relative(path.dirname(source), span.file)) || span.file;
  return `${file.split(path.sep).join('/')}:${span.line}:${span.column}`;
}

function list(values: readonly number[]): string {
  return `[${values.join(', ')}]`;
}

/** ONNX `pads`: all begins, then all ends. */
function onnxPads(padding: Padding): number[] {
  return [...padding.begin, ...padding.end];
}

// ---------------------------------------------------------------------------------------------------------------
// Op families

function emitConv(e: OnnxEmitter, node: NodeOf<'conv'>): void {
  const inputs = [...e.inputsOf(node), e.parameter(node, 'weight')];
  if (node.bias) inputs.push(e.parameter(node, 'bias'));
  const attributes = convAttributes(node);
  const pads = node.padding === 'same-dynamic' ? convSamePadding(node, e.shapeOf(node.inputs[0]!)) : onnxPads(node.padding);
  if (pads === 'SAME_UPPER') attributes['auto_pad'] = attr.string('SAME_UPPER');
  else if (Array.isArray(pads)) setInts(attributes, 'pads', pads, 0);
  else throw new Error(`internal: conv '${node.name}' passed the expressibility check`);
  e.addMain(node, 'Conv', inputs, attributes);
}

function emitConvTranspose(e: OnnxEmitter, node: NodeOf<'conv_transpose'>): void {
  const inputs = [...e.inputsOf(node), e.parameter(node, 'weight')];
  if (node.bias) inputs.push(e.parameter(node, 'bias'));
  const attributes = convAttributes(node);
  setInts(attributes, 'pads', onnxPads(node.padding), 0);
  setInts(attributes, 'output_padding', node.outputPadding, 0);
  e.addMain(node, 'ConvTranspose', inputs, attributes);
}

/**
 * Sets an ints attribute unless every value is the operator's default for it (pads: all-zero pads are the default
 * since auto_pad is never set alongside them).
 */
export function setInts(attributes: Record<string, OnnxAttributeValue>, name: string, values: readonly number[], fallback: number): void {
  if (values.some((v) => v !== fallback)) attributes[name] = attr.ints(values);
}

/**
 * Conv / ConvTranspose attributes other than padding, those equal to the default left out (also the training step
 * graph's, ../runtime/ort/training-graph.ts).
 */
export function convAttributes(node: Pick<ConvAttributes, 'kernel' | 'stride' | 'dilation' | 'groups'>): Record<string, OnnxAttributeValue> {
  const attributes: Record<string, OnnxAttributeValue> = { kernel_shape: attr.ints(node.kernel) };
  setInts(attributes, 'strides', node.stride, 1);
  setInts(attributes, 'dilations', node.dilation, 1);
  if (node.groups !== 1) attributes['group'] = attr.int(node.groups);
  return attributes;
}

function emitPool(e: OnnxEmitter, node: NodeOf<'maxpool' | 'avgpool'>): void {
  const attributes: Record<string, OnnxAttributeValue> = { kernel_shape: attr.ints(node.kernel) };
  setInts(attributes, 'strides', node.stride, 1);
  const inputShape = e.shapeOf(node.inputs[0]!);
  const windows = node.padding === 'same-dynamic' ? poolSamePadding(node, inputShape) : poolWindows(node, node.padding, inputShape);
  if ('reason' in windows) throw new Error(`internal: pool '${node.name}' passed the expressibility check`);
  if (windows.pads === 'SAME_UPPER') attributes['auto_pad'] = attr.string('SAME_UPPER');
  else setInts(attributes, 'pads', windows.pads, 0);
  if (windows.ceilMode) attributes['ceil_mode'] = attr.int(1);
  if (node.op === 'avgpool' && node.countIncludePad) attributes['count_include_pad'] = attr.int(1);
  e.addMain(node, node.op === 'maxpool' ? 'MaxPool' : 'AveragePool', e.inputsOf(node), attributes);
}

function emitGlobalPool(e: OnnxEmitter, node: NodeOf<'global_avgpool' | 'global_maxpool'>): void {
  e.addMain(node, node.op === 'global_avgpool' ? 'GlobalAveragePool' : 'GlobalMaxPool', e.inputsOf(node));
}

function emitBatchNorm(e: OnnxEmitter, node: NodeOf<'batchnorm'>): void {
  const inputs = [...e.inputsOf(node), e.parameter(node, 'weight'), e.parameter(node, 'bias'), e.parameter(node, 'running_mean'), e.parameter(node, 'running_var')];
  e.addMain(node, 'BatchNormalization', inputs, { epsilon: attr.float(node.epsilon), momentum: attr.float(node.momentum) });
}

function emitActivation(e: OnnxEmitter, node: NodeOf<'activation'>): void {
  const [x] = e.inputsOf(node) as [string];
  const fn = node.fn;
  switch (fn.kind) {
    case 'relu':
      e.addMain(node, 'Relu', [x]);
      return;
    case 'relu6':
      e.addMain(node, 'Clip', [x, e.scalar(node, 'min', 0), e.scalar(node, 'max', 6)]);
      return;
    case 'leaky_relu':
      e.addMain(node, 'LeakyRelu', [x], { alpha: attr.float(fn.alpha) });
      return;
    case 'elu':
      e.addMain(node, 'Elu', [x], { alpha: attr.float(fn.alpha) });
      return;
    case 'sigmoid':
      e.addMain(node, 'Sigmoid', [x]);
      return;
    case 'hard_sigmoid':
      e.addMain(node, 'HardSigmoid', [x], { alpha: attr.float(fn.alpha), beta: attr.float(fn.beta) });
      return;
    case 'tanh':
      e.addMain(node, 'Tanh', [x]);
      return;
    case 'softmax':
      e.addMain(node, 'Softmax', [x], { axis: attr.int(fn.axis) });
      return;
    case 'swish': {
      // x · σ(x)
      const sigmoid = e.step(node, 'sigmoid');
      e.add(node, 'Sigmoid', [x], sigmoid, sigmoid);
      e.addMain(node, 'Mul', [x, sigmoid]);
      return;
    }
    case 'hard_swish': {
      if (e.opset >= OP_SINCE_OPSET.HardSwish) {
        e.addMain(node, 'HardSwish', [x]);
        return;
      }
      // x · max(0, min(1, x/6 + 1/2)): the definition of HardSwish-14
      const gate = e.step(node, 'hard_sigmoid');
      e.add(node, 'HardSigmoid', [x], gate, gate, { alpha: attr.float(1 / 6), beta: attr.float(0.5) });
      e.addMain(node, 'Mul', [x, gate]);
      return;
    }
    case 'gelu': {
      if (e.opset >= OP_SINCE_OPSET.Gelu) {
        e.addMain(node, 'Gelu', [x]);
        return;
      }
      // x · ½ · (1 + erf(x / √2)), exact (not the tanh approximation)
      const scaled = e.step(node, 'div');
      const erf = e.step(node, 'erf');
      const shifted = e.step(node, 'add');
      const product = e.step(node, 'mul');
      e.add(node, 'Div', [x, e.scalar(node, 'sqrt2', Math.SQRT2)], scaled, scaled);
      e.add(node, 'Erf', [scaled], erf, erf);
      e.add(node, 'Add', [erf, e.scalar(node, 'one', 1)], shifted, shifted);
      e.add(node, 'Mul', [x, shifted], product, product);
      e.addMain(node, 'Mul', [product, e.scalar(node, 'half', 0.5)]);
      return;
    }
  }
}

function emitElementwise(e: OnnxEmitter, node: NodeOf<'add' | 'mul'>): void {
  const inputs = e.inputsOf(node);
  const opType = node.op === 'add' ? 'Add' : 'Mul';
  if (inputs.length <= 2) {
    e.addMain(node, opType, inputs);
  } else if (node.op === 'add') {
    e.addMain(node, 'Sum', inputs); // one n-ary node, broadcasting like Add
  } else {
    // ONNX has no n-ary product: ((a·b)·c)·…
    let partial = inputs[0]!;
    for (let i = 1; i < inputs.length - 1; i++) {
      const name = e.step(node, `mul${i}`);
      e.add(node, 'Mul', [partial, inputs[i]!], name, name);
      partial = name;
    }
    e.addMain(node, 'Mul', [partial, inputs[inputs.length - 1]!]);
  }
}

function emitConcat(e: OnnxEmitter, node: NodeOf<'concat'>): void {
  e.addMain(node, 'Concat', e.inputsOf(node), { axis: attr.int(node.axis) });
}

function emitUpsample(e: OnnxEmitter, node: NodeOf<'upsample'>): void {
  const scales = e.constant(node, 'scales', [node.scale.length + 2], new Float32Array([1, 1, ...node.scale]));
  const attributes: Record<string, OnnxAttributeValue> =
    node.mode === 'nearest'
      ? { mode: attr.string('nearest'), coordinate_transformation_mode: attr.string('asymmetric'), nearest_mode: attr.string('floor') }
      : { mode: attr.string('linear'), coordinate_transformation_mode: attr.string('half_pixel') };
  e.addMain(node, 'Resize', [...e.inputsOf(node), '', scales], attributes);
}

function emitFlatten(e: OnnxEmitter, node: NodeOf<'flatten'>): void {
  e.addMain(node, 'Flatten', e.inputsOf(node), { axis: attr.int(1) });
}

function emitReshape(e: OnnxEmitter, node: NodeOf<'reshape'>): void {
  const target = reshapeTarget(node, e.shapeOf(node.inputs[0]!));
  if ('reason' in target) throw new Error(`internal: reshape '${node.name}' passed the expressibility check`);
  const shape = e.constant(node, 'shape', [target.length], BigInt64Array.from(target, (v) => BigInt(v)));
  e.addMain(node, 'Reshape', [...e.inputsOf(node), shape]);
}

function emitDense(e: OnnxEmitter, node: NodeOf<'dense'>): void {
  const inputs = [...e.inputsOf(node), e.parameter(node, 'weight')];
  if (node.bias) inputs.push(e.parameter(node, 'bias'));
  e.addMain(node, 'Gemm', inputs, { transB: attr.int(1) });
}

function emitPad(e: OnnxEmitter, node: NodeOf<'pad'>): void {
  const rank = node.padding.begin.length;
  const pads = [0, 0, ...node.padding.begin, 0, 0, ...node.padding.end];
  if (pads.length !== 2 * (rank + 2)) throw new Error('internal: pad rank');
  const inputs = [...e.inputsOf(node), e.constant(node, 'pads', [pads.length], BigInt64Array.from(pads.map((v) => BigInt(v))))];
  if (node.mode === 'constant' && node.value !== 0) inputs.push(e.scalar(node, 'value', node.value));
  e.addMain(node, 'Pad', inputs, { mode: attr.string(node.mode) });
}

// ---------------------------------------------------------------------------------------------------------------
// Metadata

/** JSON with object keys sorted, so the text depends only on the values. */
function canonicalJson(value: SettingValue | Record<string, unknown> | unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    return `{${Object.keys(record)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonicalJson(record[key])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** Per-layer objects keep node order (the graph's topological order), which is deterministic. */
function perLayer<T>(graph: Graph, pick: (node: Node) => T | undefined): string {
  const parts: string[] = [];
  for (const node of graph.nodes) {
    const value = pick(node);
    if (value !== undefined) parts.push(`${JSON.stringify(node.name)}:${canonicalJson(value)}`);
  }
  return `{${parts.join(',')}}`;
}

/**
 * `[{"layers": [names], "terms": [...]}, ...]`: one entry per distinct list of regularisation terms, in the order of
 * its first layer; `"ops": [ops]` instead of `"layers"` when the group is every layer of those ops. What a
 * `regularize l2(1e-4) on conv, dense` statement gives is then one short entry (ResNet-50: 70 bytes instead of
 * 3.1 KB of per-layer lists).
 */
function regularizerGroups(graph: Graph): string {
  const groups = new Map<string, Node[]>();
  for (const node of graph.nodes) {
    if (node.regularizers.length === 0) continue;
    const terms = canonicalJson(node.regularizers);
    groups.set(terms, [...(groups.get(terms) ?? []), node]);
  }
  const entries = [...groups].map(([terms, nodes]) => {
    // Every layer of these ops, and only those: `"ops"` says so in place of the list of names.
    const ops = [...new Set(nodes.map((n) => n.op))].sort();
    const everyLayerOf = graph.nodes.filter((n) => ops.includes(n.op)).length === nodes.length;
    const layers = everyLayerOf ? `"ops":${JSON.stringify(ops)}` : `"layers":${JSON.stringify(nodes.map((n) => n.name))}`;
    return `{${layers},"terms":${terms}}`;
  });
  return `[${entries.join(',')}]`;
}

function trainingMetadata(graph: Graph, specHash: string | undefined): Record<string, string> {
  const metadata: Record<string, string> = {
    'convspec.source': JSON.stringify(graph.source),
    'convspec.frozen': JSON.stringify(graph.nodes.filter((n) => n.frozen).map((n) => n.name)),
    'convspec.regularizers': regularizerGroups(graph),
    'convspec.dropout': perLayer(graph, (n) => (n.op === 'dropout' ? { rate: n.rate, spatial: n.spatial } : undefined)),
    'convspec.batchnorm': perLayer(graph, (n) => (n.op === 'batchnorm' ? { momentum: n.momentum, epsilon: n.epsilon } : undefined)),
    'convspec.training': canonicalJson(graph.training),
  };
  if (specHash !== undefined) metadata['convspec.spec_hash'] = JSON.stringify(specHash);
  if (graph.nodes.some((n) => n.quantization !== undefined)) metadata['convspec.quantization'] = perLayer(graph, (n) => n.quantization);
  return metadata;
}

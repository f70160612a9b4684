/**
 * The training step of a classifier as one ONNX graph: forward pass in training mode, the loss, and the backward
 * pass written out op by op, so that ONNX Runtime's native CPU kernels (MLAS: AVX2/AVX-512
 * with FMA) compute the gradients that the tfjs engine would compute on its tape.
 *
 * Why: on a CPU without the native TensorFlow backend (which downloads libtensorflow at install time), tfjs trains
 * on its wasm backend, whose SIMD128 convolutions run at a third of PyTorch's rate. ONNX Runtime ships its CPU
 * kernels in the npm package, and the gradient of every op a CNN classifier uses is itself a handful of ONNX ops.
 * The optimizer, schedules, clipping, regularisers and checkpoints stay in the trainer (../tfjs/train.ts); only
 * "loss, logits, gradients and batch statistics of this batch" moves here.
 *
 * The step graph, for a graph with image input `x` and logits z = [N, K]:
 *   inputs   x [N, …]; `targets` [N, K] (one-hot or label-smoothed); `inverse_batch` [] = 1/N; every parameter
 *            (IR layout, `<node>.<role>`); one `dropout_mask/<node>` per dropout node (keep/(1 − rate), drawn by
 *            the caller, so masks follow the trainer's seeds);
 *   outputs  `loss` [] (cross-entropy −Σ targets·log_softmax(z) / N, binary cross-entropy or MSE); `logits`;
 *            `grad/<parameter>` for each trained parameter; `batch_mean/<node>` and `batch_var/<node>` (biased)
 *            for each batch norm that normalises with batch statistics (not frozen, as in the tfjs engine).
 *
 * Gradients, per op (dY: gradient of the op's output):
 *   conv         dX: with unit strides, a conv of dY with the kernel flipped and its channel axes swapped; else
 *                ConvTranspose(dY, W) with the conv's attributes and the output padding that restores X's size;
 *                dW: per kernel offset, a GEMM of dY with a strided slice of the padded input (or, with several
 *                threads, the input unfolded by a one-hot grouped conv and one batched MatMul); dB = Σ dY;
 *   transposed   the adjoint of the conv it inverts: dX = Conv(dY, W), dW = that conv's weight gradient;
 *   conv
 *   dense        dX = dY·W, dW = dYᵀ·X, dB = Σ_n dY;
 *   batch norm   training mode: dX = γr·(dY − mean dY) − d·(γr³·mean(dY·d)) with d = X − μ, r = 1/√(σ² + ε)
 *                (see batchNormBackward); dγ = r·Σ dY·d, dβ = Σ dY; frozen (running statistics): dX = dY·γ/√(σ²_run + ε);
 *   max pool     the forward's argmax indices: MaxUnpool for disjoint windows, else a scatter-add into zeros;
 *   avg pool     ConvTranspose of dY/count with a ones kernel per channel (count: elements each window averages,
 *                as the tfjs engine counts them; in ceil mode the forward too is written with those counts);
 *   activations  from the output (ReLU, ReLU6, sigmoid, tanh, ELU, softmax) or the input (leaky ReLU, swish,
 *                hard sigmoid, hard swish, GELU);
 *   global max   dY to every element equal to its channel's maximum (tfjs's rule, ties included);
 *   pad          dY without the padded border, plus for edge padding each border summed onto its edge element
 *                and for reflect padding each border flipped onto the elements it mirrors;
 *   upsample     nearest by whole factors: each block of copies summed (an average pool times the block size);
 *                linear: the transposed interpolation matrix of each axis applied to dY (MatMul);
 *   dropout      dX = dY·mask;  add/mul/concat/flatten/reshape/global average pool: their adjoints.
 * Gradient contributions to one tensor (a residual's fork) are summed. Backward ops are emitted only for tensors
 * that lie between a trained parameter and the loss.
 *
 * The loss is cross-entropy, binary cross-entropy or MSE, as ../tfjs/losses.ts computes them. Symbolic sample sizes
 * of the input (`f32[N, 1, H, W]`) take the data's sizes (`sampleDims`). A graph outside this (an output other than
 * class scores [N, K], ranks an element-wise op would broadcast across) raises `TrainingGraphError`: the trainer
 * then says to use the tfjs engine.
 */
import { convAttributes as exportedConvAttributes, setInts } from '../../codegen/onnx.js';
import { attr, OnnxGraphBuilder, type OnnxAttributeValue, type OnnxTypedArray } from '../../codegen/onnx-model.js';
import { dimToString, evaluateDim, isSymbolic, type Dim } from '../../ir/dims.js';
import type { Graph, Node, NodeOf, Padding, Shape } from '../../ir/graph.js';
import { averagePoolCounts } from '../../ir/shapes.js';
import { graphParameters, type ParamSpec } from '../../ir/params.js';

/** A graph the step builder cannot express: the op (or loss) and where it is. */
export class TrainingGraphError extends Error {
  override readonly name = 'TrainingGraphError';
}

export interface TrainingGraphOptions {
  /** The graph input fed with the images. */
  readonly input: string;
  /** The graph output trained as logits [N, K]. */
  readonly output: string;
  /** IR names of the parameters to differentiate (`<node>.<role>`). */
  readonly trained: ReadonlySet<string>;
  /** ONNX Runtime's intra-op threads: which of two equivalent forms of the conv weight gradient is faster. */
  readonly threads?: number;
  /** The loss, as `computeLoss` of ../tfjs/losses.ts defines it; default cross-entropy. */
  readonly loss?: StepLoss;
  /**
   * The input's sample dims (without the batch axis) when the spec leaves some symbolic (`f32[N, 1, H, W]`): the
   * symbols are bound to these sizes and every shape evaluated with them.
   */
  readonly sampleDims?: readonly number[];
}

/** Losses of the step graph: the mean over the batch (cross-entropy) or over every element (the other two). */
export type StepLoss = 'cross_entropy' | 'binary_cross_entropy' | 'mse';

export interface DropoutMaskInput {
  readonly node: string;
  /** The step graph's input name. */
  readonly input: string;
  /** The mask's shape without the batch axis (1 on spatial axes for spatial dropout). */
  readonly sampleShape: readonly number[];
  readonly rate: number;
}

export interface TrainingGraph {
  readonly model: Uint8Array;
  /** Names of the graph inputs that take parameters, IR names (and layout). */
  readonly parameters: readonly string[];
  /** Trained parameter → its gradient output. */
  readonly gradients: ReadonlyMap<string, string>;
  /** Batch norms normalising with batch statistics: node → mean and variance outputs. */
  readonly batchStatistics: ReadonlyMap<string, { readonly mean: string; readonly variance: string }>;
  readonly dropoutMasks: readonly DropoutMaskInput[];
}

export const STEP_INPUT = Object.freeze({ targets: 'targets', inverseBatch: 'inverse_batch' });
export const STEP_OUTPUT = Object.freeze({ loss: 'loss', logits: 'logits' });

/** ONNX opset of the step graph: ScatterElements' `reduction` needs 16; ReduceMean still takes `axes` as an attribute. */
const STEP_OPSET = 17;

/** Builds the training step graph of `graph` (see the module header). */
export function buildTrainingGraph(graph: Graph, options: TrainingGraphOptions): TrainingGraph {
  return new StepBuilder(graph, options).build();
}

function where(node: Node): string {
  return `${node.span.file}:${node.span.line}:${node.span.column}`;
}

/** Static sample sizes of a shape whose axis 0 is the batch, symbols bound by `bindings`; `what` names it in errors. */
function sampleShape(shape: Shape, bindings: ReadonlyMap<string, number>, what: string): number[] {
  return shape.slice(1).map((d: Dim) => {
    const value = evaluateDim(d, bindings);
    if (isSymbolic(value) || typeof value !== 'number') {
      throw new TrainingGraphError(`${what}: size ${dimToString(d)} on a non-batch axis; training on ONNX Runtime needs sample sizes the data fixes`);
    }
    return value;
  });
}

const product = (values: readonly number[]): number => values.reduce((a, b) => a * b, 1);

class StepBuilder {
  private readonly b = new OnnxGraphBuilder();
  private readonly nodes: Map<string, Node>;
  /** Sample shapes (no batch axis) of every tensor. */
  private readonly shapes = new Map<string, number[]>();
  /** Forward values saved for the backward pass, by IR node (`indices`, `centered`, `r`…). */
  private readonly saved = new Map<string, Record<string, string>>();
  /** Gradient contributions per IR tensor. */
  private readonly contributions = new Map<string, string[]>();
  private readonly needsGradient = new Set<string>();
  private readonly gradientOutputs = new Map<string, string>();
  private readonly statistics = new Map<string, { mean: string; variance: string }>();
  private readonly masks: DropoutMaskInput[] = [];
  /** The graph's parameters by name, in graph order: the step graph's parameter inputs. */
  private readonly parameters: ReadonlyMap<string, ParamSpec>;
  private readonly constants = new Map<string, string>();
  /** Values of the input's symbolic sample sizes (`H` → 28), from `options.sampleDims`. */
  private readonly bindings = new Map<string, number>();
  private counter = 0;

  constructor(
    private readonly graph: Graph,
    private readonly options: TrainingGraphOptions,
  ) {
    this.nodes = new Map(graph.nodes.map((n) => [n.name, n]));
    this.parameters = new Map(graphParameters(graph.nodes).map((spec) => [spec.name, spec]));
  }

  build(): TrainingGraph {
    const { graph, options } = this;
    const input = graph.inputs.find((i) => i.name === options.input);
    if (!input) throw new TrainingGraphError(`${graph.name} has no input '${options.input}'`);
    if (graph.inputs.length !== 1) throw new TrainingGraphError(`${graph.name} has ${graph.inputs.length} inputs; training on ONNX Runtime takes one image input`);
    const output = graph.outputs.find((o) => o.name === options.output);
    if (!output) throw new TrainingGraphError(`${graph.name} has no output '${options.output}'`);
    if (options.sampleDims) {
      const declared = input.shape.slice(1);
      if (declared.length !== options.sampleDims.length) throw new TrainingGraphError(`input '${input.name}' has ${declared.length} sample axes, the data ${options.sampleDims.length}`);
      declared.forEach((d, axis) => {
        const size = options.sampleDims![axis]!;
        if (typeof d === 'number') {
          if (d !== size) throw new TrainingGraphError(`input '${input.name}' has size ${d} on axis ${axis + 1}, the data ${size}`);
        } else if (d.terms.length === 1 && d.terms[0]!.coefficient === 1 && d.terms[0]!.atoms.length === 1 && d.terms[0]!.atoms[0]!.kind === 'symbol') {
          this.bindings.set(d.terms[0]!.atoms[0]!.name, size);
        } else throw new TrainingGraphError(`input '${input.name}' has size ${dimToString(d)} on axis ${axis + 1}; only a plain symbol takes the data's size`);
      });
    }
    const inputSample = sampleShape(input.shape, this.bindings, `input '${input.name}'`);
    this.shapes.set(input.name, inputSample);
    this.b.addInput(input.name, 'float32', ['N', ...inputSample]);
    for (const spec of this.parameters.values()) this.b.addInput(spec.name, 'float32', spec.shape);
    this.b.addInput(STEP_INPUT.inverseBatch, 'float32', []);
    this.markGradientPaths();
    for (const node of graph.nodes) this.forward(node);

    const logitsShape = this.shapes.get(output.value)!;
    if (logitsShape.length < 1 || logitsShape.slice(1).some((d) => d !== 1)) {
      const producer = graph.nodes.find((n) => n.name === output.value);
      throw new TrainingGraphError(`output '${output.name}'${producer ? ` (${where(producer)})` : ''} must be class scores [N, K], not [N, ${logitsShape.join(', ')}]`);
    }
    const classes = logitsShape[0]!;
    this.b.addInput(STEP_INPUT.targets, 'float32', ['N', classes]);
    const logits = logitsShape.length === 1 ? output.value : this.op('Reshape', [output.value, this.int64s([0, classes])]);
    this.b.addNode('Identity', [logits], [STEP_OUTPUT.logits], 'logits');
    this.loss(logits, output.value, logitsShape);
    for (let i = graph.nodes.length - 1; i >= 0; i--) this.backward(graph.nodes[i]!);

    this.b.addOutput(STEP_OUTPUT.loss, 'float32', []);
    this.b.addOutput(STEP_OUTPUT.logits, 'float32', ['N', classes]);
    for (const [parameter, name] of this.gradientOutputs) this.b.addOutput(name, 'float32', this.parameterShape(parameter));
    for (const [node, { mean, variance }] of this.statistics) {
      const channels = (this.nodes.get(node) as NodeOf<'batchnorm'>).channels;
      this.b.addOutput(mean, 'float32', [channels]);
      this.b.addOutput(variance, 'float32', [channels]);
    }
    const model = this.b.build({ opset: STEP_OPSET, producerName: 'convspec', producerVersion: 'training-step', graphName: `${graph.name}_training_step` });
    return { model, parameters: [...this.parameters.keys()], gradients: this.gradientOutputs, batchStatistics: this.statistics, dropoutMasks: this.masks };
  }

  // -- which tensors need gradients ------------------------------------------------------------------------------

  private trained(node: Node): boolean {
    return graphParameters([node]).some((p) => this.options.trained.has(p.name));
  }

  private markGradientPaths(): void {
    for (const name of this.options.trained) if (!this.parameters.has(name)) throw new TrainingGraphError(`${this.graph.name} has no parameter '${name}'`);
    for (const node of this.graph.nodes) {
      if (this.trained(node) || node.inputs.some((i) => this.needsGradient.has(i))) this.needsGradient.add(node.name);
    }
  }

  // -- small helpers ----------------------------------------------------------------------------------------------

  private fresh(hint: string): string {
    return `${hint}#${++this.counter}`;
  }

  /** One ONNX node with one output; returns the output's name. */
  private op(opType: string, inputs: readonly string[], attributes: Readonly<Record<string, OnnxAttributeValue>> = {}, hint = opType): string {
    const out = this.fresh(hint);
    this.b.addNode(opType, inputs, [out], out, attributes);
    return out;
  }

  private constant(key: string, dims: readonly number[], data: OnnxTypedArray): string {
    const existing = this.constants.get(key);
    if (existing) return existing;
    const name = `const/${key}`;
    this.b.addInitializer(name, dims, data);
    this.constants.set(key, name);
    return name;
  }

  private int64s(values: readonly number[]): string {
    return this.constant(`i64[${values.join(',')}]`, [values.length], BigInt64Array.from(values, (v) => BigInt(v)));
  }

  private scalar(value: number): string {
    return this.constant(`f32(${value})`, [], new Float32Array([value]));
  }

  private parameterShape(name: string): number[] {
    return [...this.parameters.get(name)!.shape];
  }

  private save(node: Node, values: Record<string, string>): void {
    this.saved.set(node.name, { ...this.saved.get(node.name), ...values });
  }

  private unsupported(node: Node, what: string): never {
    throw new TrainingGraphError(`${node.name} (${where(node)}): ${what} cannot be trained on ONNX Runtime yet; train with the tfjs engine`);
  }

  /**
   * The node's pads. SAME padding left to run time (`'same-dynamic'`, a stride above 1 on a symbolic size) is
   * resolved with the sizes the data fixed, as ONNX's SAME_UPPER does: total = max((⌈in/s⌉ − 1)·s + (k − 1)·d + 1 − in, 0),
   * the odd pixel at the end.
   */
  private explicitPadding(node: NodeOf<'conv' | 'maxpool' | 'avgpool'>): Padding {
    if (node.padding !== 'same-dynamic') return node.padding;
    const input = this.shapes.get(node.inputs[0]!)!.slice(1);
    const dilation = node.op === 'conv' ? node.dilation : node.kernel.map(() => 1);
    const totals = input.map((size, axis) => {
      const stride = node.stride[axis]!;
      return Math.max((Math.ceil(size / stride) - 1) * stride + (node.kernel[axis]! - 1) * dilation[axis]! + 1 - size, 0);
    });
    return { begin: totals.map((t) => Math.floor(t / 2)), end: totals.map((t) => t - Math.floor(t / 2)) };
  }

  /** Element-wise ops broadcast within one rank only (an SE gate [N, C, 1, 1] times [N, C, H, W]). */
  private sameRank(node: Node, rank: number): void {
    if (node.inputs.some((input) => this.shapes.get(input)!.length + 1 !== rank)) this.unsupported(node, `${node.op} of tensors of different ranks`);
  }

  /** 1/M for means over every axis but the channels' of a [N, C, S…] tensor: M = N·ΠS. */
  private inverseCount(sample: readonly number[]): string {
    return this.op('Mul', [STEP_INPUT.inverseBatch, this.scalar(1 / product(sample.slice(1)))]);
  }

  /** Reshapes a per-channel vector [C] to broadcast over [N, C, S…]. */
  private perChannel(vector: string, rank: number, channels: number): string {
    return this.op('Reshape', [vector, this.int64s([1, channels, ...new Array<number>(rank - 2).fill(1)])]);
  }

  // -- forward ---------------------------------------------------------------------------------------------------

  private forward(node: Node): void {
    const inputs = node.inputs;
    const inputShape = this.shapes.get(inputs[0]!)!;
    const outputShape = sampleShape(node.shape, this.bindings, `${node.name} (${where(node)})`);
    this.shapes.set(node.name, outputShape);
    const rank = outputShape.length + 1;
    const emit = (opType: string, ins: readonly string[], attributes: Readonly<Record<string, OnnxAttributeValue>> = {}, outputs: readonly string[] = [node.name]) =>
      this.b.addNode(opType, ins, outputs, node.name, attributes);
    switch (node.op) {
      case 'conv': {
        const ins = [inputs[0]!, `${node.name}.weight`];
        if (node.bias) ins.push(`${node.name}.bias`);
        emit('Conv', ins, convAttributes(node, this.explicitPadding(node)));
        return;
      }
      case 'conv_transpose': {
        const ins = [inputs[0]!, `${node.name}.weight`];
        if (node.bias) ins.push(`${node.name}.bias`);
        emit('ConvTranspose', ins, convAttributes(node, node.padding, node.outputPadding));
        return;
      }
      case 'dense':
        if (inputShape.length !== 1) this.unsupported(node, 'a dense layer on a rank-3+ tensor');
        emit('Gemm', node.bias ? [inputs[0]!, `${node.name}.weight`, `${node.name}.bias`] : [inputs[0]!, `${node.name}.weight`], { transB: attr.int(1) });
        return;
      case 'batchnorm':
        this.batchNormForward(node, rank);
        return;
      case 'activation':
        this.activationForward(node, emit);
        return;
      case 'maxpool': {
        const attributes = this.poolAttributes(node);
        const indices = `${node.name}/indices`;
        emit('MaxPool', [inputs[0]!], attributes, [node.name, indices]);
        this.save(node, { indices });
        return;
      }
      case 'avgpool': {
        if (node.ceilMode) {
          // the windows' sums over the input padded with zeros past the last window, times ∏k / count per window:
          // the tfjs engine's formulation (ops.ts), whose divisors ONNX's AveragePool in ceil mode need not share
          const { padding, counts } = this.averageWindows(node, inputShape.slice(1), outputShape.slice(1));
          const padded = this.op('Pad', [inputs[0]!, this.int64s([0, 0, ...padding.begin, 0, 0, ...padding.end])]);
          const sums = this.op('AveragePool', [padded], { kernel_shape: attr.ints(node.kernel), strides: attr.ints(node.stride) });
          const factors = counts.map((count) => product(node.kernel) / count);
          emit('Mul', [sums, this.constant(`avgpool_factors/${node.name}`, [1, 1, ...outputShape.slice(1)], factors)]);
          return;
        }
        const attributes = this.poolAttributes(node);
        if (node.countIncludePad) attributes['count_include_pad'] = attr.int(1);
        emit('AveragePool', [inputs[0]!], attributes);
        return;
      }
      case 'global_avgpool':
        emit('GlobalAveragePool', [inputs[0]!]);
        return;
      case 'global_maxpool':
        emit('GlobalMaxPool', [inputs[0]!]);
        return;
      case 'pad': {
        const pads = this.int64s([0, 0, ...node.padding.begin, 0, 0, ...node.padding.end]);
        emit('Pad', node.mode === 'constant' && node.value !== 0 ? [inputs[0]!, pads, this.scalar(node.value)] : [inputs[0]!, pads], { mode: attr.string(node.mode) });
        return;
      }
      case 'dropout': {
        if (node.rate === 0) {
          emit('Identity', [inputs[0]!]);
          return;
        }
        const mask = `dropout_mask/${node.name}`;
        const maskShape = node.spatial && rank >= 3 ? [inputShape[0]!, ...new Array<number>(rank - 2).fill(1)] : inputShape;
        this.b.addInput(mask, 'float32', ['N', ...maskShape]);
        this.masks.push({ node: node.name, input: mask, sampleShape: maskShape, rate: node.rate });
        emit('Mul', [inputs[0]!, mask]);
        return;
      }
      case 'add':
        this.sameRank(node, rank);
        if (inputs.length === 2) emit('Add', inputs);
        else emit('Sum', inputs);
        return;
      case 'mul':
        if (inputs.length !== 2) this.unsupported(node, 'a product of more than two tensors');
        this.sameRank(node, rank);
        emit('Mul', inputs);
        return;
      case 'concat':
        emit('Concat', inputs, { axis: attr.int(node.axis < 0 ? node.axis + rank : node.axis) });
        return;
      case 'upsample': {
        const scales = this.constant(`scales[${node.scale.join(',')}]`, [rank], new Float32Array([1, 1, ...node.scale]));
        const attributes: Record<string, OnnxAttributeValue> =
          node.mode === 'nearest'
            ? { mode: attr.string('nearest'), coordinate_transformation_mode: attr.string('asymmetric'), nearest_mode: attr.string('floor') }
            : { mode: attr.string('linear'), coordinate_transformation_mode: attr.string('half_pixel') };
        emit('Resize', [inputs[0]!, '', scales], attributes);
        return;
      }
      case 'flatten':
        emit('Flatten', [inputs[0]!], { axis: attr.int(1) });
        return;
      case 'reshape':
        emit('Reshape', [inputs[0]!, this.int64s([0, ...outputShape])]);
        return;
      default:
        // every op of the IR has a case: an op added to the language lands here until it has one
        this.unsupported(node as Node, `op '${(node as Node).op}'`);
    }
  }

  /** Pool attributes (max pooling's gradient follows the argmax indices whatever the windows). */
  private poolAttributes(node: NodeOf<'maxpool' | 'avgpool'>): Record<string, OnnxAttributeValue> {
    const padding = this.explicitPadding(node);
    const attributes: Record<string, OnnxAttributeValue> = { kernel_shape: attr.ints(node.kernel), strides: attr.ints(node.stride), pads: attr.ints([...padding.begin, ...padding.end]) };
    if (node.ceilMode) attributes['ceil_mode'] = attr.int(1);
    return attributes;
  }

  private batchNormForward(node: NodeOf<'batchnorm'>, rank: number): void {
    const x = node.inputs[0]!;
    const gamma = this.perChannel(`${node.name}.weight`, rank, node.channels);
    const axes = attr.ints([0, ...range(2, rank)]);
    if (node.frozen) {
      // inference mode, as the tfjs engine runs a frozen batch norm in training too
      const r = this.op('Reciprocal', [this.op('Sqrt', [this.op('Add', [this.perChannel(`${node.name}.running_var`, rank, node.channels), this.scalar(node.epsilon)])])]);
      const parameters = ['weight', 'bias', 'running_mean', 'running_var'].map((role) => `${node.name}.${role}`);
      this.b.addNode('BatchNormalization', [x, ...parameters], [node.name], node.name, { epsilon: attr.float(node.epsilon) });
      this.save(node, { r, gammaR: this.op('Mul', [gamma, r]) });
      return;
    }
    // batch statistics from the centred values (as the tape computes them); the normalisation itself is one
    // BatchNormalization node fed with them (one pass over the tensor instead of a Mul and an Add)
    const mean = this.op('ReduceMean', [x], { axes, keepdims: attr.int(1) });
    const centered = this.op('Sub', [x, mean]);
    const variance = this.op('Mul', [this.op('ReduceSumSquare', [centered], { axes, keepdims: attr.int(1) }), this.inverseCount(this.shapes.get(x)!)]);
    const r = this.op('Reciprocal', [this.op('Sqrt', [this.op('Add', [variance, this.scalar(node.epsilon)])])]);
    const gammaR = this.op('Mul', [gamma, r]);
    const statistics = { mean: `batch_mean/${node.name}`, variance: `batch_var/${node.name}` };
    this.b.addNode('Reshape', [mean, this.int64s([-1])], [statistics.mean], this.fresh('mean'));
    this.b.addNode('Reshape', [variance, this.int64s([-1])], [statistics.variance], this.fresh('variance'));
    this.b.addNode('BatchNormalization', [x, `${node.name}.weight`, `${node.name}.bias`, statistics.mean, statistics.variance], [node.name], node.name, { epsilon: attr.float(node.epsilon) });
    this.save(node, { centered, r, gammaR });
    this.statistics.set(node.name, statistics);
  }

  private activationForward(node: NodeOf<'activation'>, emit: (opType: string, ins: readonly string[], attributes?: Readonly<Record<string, OnnxAttributeValue>>) => void): void {
    const x = node.inputs[0]!;
    const fn = node.fn;
    switch (fn.kind) {
      case 'relu':
        return emit('Relu', [x]);
      case 'relu6':
        return emit('Clip', [x, this.scalar(0), this.scalar(6)]);
      case 'leaky_relu':
        return emit('LeakyRelu', [x], { alpha: attr.float(fn.alpha) });
      case 'sigmoid':
        return emit('Sigmoid', [x]);
      case 'tanh':
        return emit('Tanh', [x]);
      case 'swish': {
        const s = this.op('Sigmoid', [x]);
        this.save(node, { sigmoid: s });
        return emit('Mul', [x, s]);
      }
      case 'elu':
        return emit('Elu', [x], { alpha: attr.float(fn.alpha) });
      case 'hard_sigmoid':
        return emit('HardSigmoid', [x], { alpha: attr.float(fn.alpha), beta: attr.float(fn.beta) });
      case 'hard_swish':
        // x·relu6(x + 3)/6, as the tfjs engine computes it
        return emit('Mul', [x, this.op('Mul', [this.op('Clip', [this.op('Add', [x, this.scalar(3)]), this.scalar(0), this.scalar(6)]), this.scalar(1 / 6)])]);
      case 'gelu':
        // x·(1 + erf(x/√2))/2
        return emit('Mul', [this.op('Mul', [x, this.scalar(0.5)]), this.op('Add', [this.op('Erf', [this.op('Mul', [x, this.scalar(Math.SQRT1_2)])]), this.scalar(1)])]);
      case 'softmax': {
        const rank = this.shapes.get(x)!.length + 1;
        return emit('Softmax', [x], { axis: attr.int(fn.axis < 0 ? fn.axis + rank : fn.axis) });
      }
    }
  }

  // -- loss ------------------------------------------------------------------------------------------------------

  /**
   * The loss of `computeLoss` (../tfjs/losses.ts) and its gradient with respect to the logits z [N, K]:
   *   cross-entropy  −Σ t·log_softmax(z) / N                      ∂ = (softmax(z) − t)/N
   *   binary CE      mean of relu(z) − z·t + log(1 + e^−|z|)      ∂ = (σ(z) − t)/(N·K)
   *   MSE            mean of (z − t)²                              ∂ = 2(z − t)/(N·K)
   */
  private loss(logits: string, outputTensor: string, logitsShape: readonly number[]): void {
    const t = STEP_INPUT.targets;
    const perElement = () => this.op('Mul', [STEP_INPUT.inverseBatch, this.scalar(1 / logitsShape[0]!)]);
    let dz: string;
    switch (this.options.loss ?? 'cross_entropy') {
      case 'cross_entropy': {
        const logSoftmax = this.op('LogSoftmax', [logits], { axis: attr.int(1) });
        const total = this.op('ReduceSum', [this.op('Mul', [t, logSoftmax])], { keepdims: attr.int(0) });
        this.b.addNode('Mul', [this.op('Neg', [total]), STEP_INPUT.inverseBatch], [STEP_OUTPUT.loss], 'loss');
        dz = this.op('Mul', [this.op('Sub', [this.op('Exp', [logSoftmax]), t]), STEP_INPUT.inverseBatch]);
        break;
      }
      case 'binary_cross_entropy': {
        const terms = this.op('Add', [this.op('Sub', [this.op('Relu', [logits]), this.op('Mul', [logits, t])]), this.op('Softplus', [this.op('Neg', [this.op('Abs', [logits])])])]);
        this.b.addNode('ReduceMean', [terms], [STEP_OUTPUT.loss], 'loss', { keepdims: attr.int(0) });
        dz = this.op('Mul', [this.op('Sub', [this.op('Sigmoid', [logits]), t]), perElement()]);
        break;
      }
      case 'mse': {
        const difference = this.op('Sub', [logits, t]);
        this.b.addNode('ReduceMean', [this.op('Mul', [difference, difference])], [STEP_OUTPUT.loss], 'loss', { keepdims: attr.int(0) });
        dz = this.op('Mul', [difference, this.op('Mul', [perElement(), this.scalar(2)])]);
        break;
      }
    }
    if (!this.needsGradient.has(outputTensor)) return;
    this.contribute(outputTensor, logitsShape.length === 1 ? dz : this.op('Reshape', [dz, this.int64s([0, ...logitsShape])]));
  }

  // -- backward --------------------------------------------------------------------------------------------------

  private contribute(tensor: string, gradient: string): void {
    if (!this.needsGradient.has(tensor)) return;
    this.contributions.set(tensor, [...(this.contributions.get(tensor) ?? []), gradient]);
  }

  private gradientOf(tensor: string): string | undefined {
    const parts = this.contributions.get(tensor);
    if (!parts || parts.length === 0) return undefined;
    return parts.length === 1 ? parts[0]! : this.op('Sum', parts, {}, 'grad_sum');
  }

  private parameterGradient(node: Node, role: string, value: string): void {
    const parameter = `${node.name}.${role}`;
    if (!this.options.trained.has(parameter)) return;
    const name = `grad/${parameter}`;
    this.b.addNode('Identity', [value], [name], this.fresh(`grad_${role}`));
    this.gradientOutputs.set(parameter, name);
  }

  private trains(node: Node, role: string): boolean {
    return this.options.trained.has(`${node.name}.${role}`);
  }

  /** Sums a gradient over the broadcast axes of an input of sample shape `inputShape` (same rank). */
  private unbroadcast(gradient: string, inputShape: readonly number[], outputShape: readonly number[]): string {
    const axes = inputShape.flatMap((d, i) => (d === 1 && outputShape[i] !== 1 ? [i + 1] : []));
    return axes.length === 0 ? gradient : this.op('ReduceSum', [gradient, this.int64s(axes)], { keepdims: attr.int(1) });
  }

  private backward(node: Node): void {
    const dy = this.gradientOf(node.name);
    if (!dy) return;
    const x = node.inputs[0]!;
    const inputShape = this.shapes.get(x)!;
    const outputShape = this.shapes.get(node.name)!;
    const rank = outputShape.length + 1;
    const wantsInput = (i = 0) => this.needsGradient.has(node.inputs[i]!);
    switch (node.op) {
      case 'conv':
        this.convBackward(node, dy, inputShape, outputShape);
        return;
      case 'conv_transpose': {
        // the adjoint of the conv whose input gradient this op computes: dX = conv(dY, W) with the same attributes,
        // dW = that conv's weight gradient with dY as its input and X as its output gradient
        const attributes = convAttributes(node, node.padding);
        if (node.bias && this.trains(node, 'bias')) this.parameterGradient(node, 'bias', this.op('ReduceSum', [dy, this.int64s([0, ...range(2, rank)])], { keepdims: attr.int(0) }));
        if (this.trains(node, 'weight')) {
          const inverted = { inChannels: node.filters, filters: node.inChannels, kernel: node.kernel, stride: node.stride, dilation: node.dilation, groups: node.groups };
          this.parameterGradient(node, 'weight', this.convWeightGradient(inverted, node.padding, dy, outputShape, x, inputShape));
        }
        if (wantsInput()) this.contribute(x, this.op('Conv', [dy, `${node.name}.weight`], attributes));
        return;
      }
      case 'dense':
        if (node.bias) this.parameterGradient(node, 'bias', this.op('ReduceSum', [dy, this.int64s([0])], { keepdims: attr.int(0) }));
        if (this.trains(node, 'weight')) this.parameterGradient(node, 'weight', this.op('Gemm', [dy, x], { transA: attr.int(1) }));
        if (wantsInput()) this.contribute(x, this.op('MatMul', [dy, `${node.name}.weight`]));
        return;
      case 'batchnorm':
        this.batchNormBackward(node, dy, rank, inputShape);
        return;
      case 'activation':
        if (wantsInput()) this.contribute(x, this.activationBackward(node, dy));
        return;
      case 'maxpool': {
        if (!wantsInput()) return;
        const { indices } = this.saved.get(node.name)!;
        if (node.kernel.every((k, axis) => node.stride[axis]! >= k)) {
          // disjoint windows: each input element receives at most one gradient, which MaxUnpool puts in place
          // MaxUnpool checks that the output holds every window: its end pads are what the windows reach past X
          // (ceil mode), never negative (floor mode may leave trailing rows out, which a larger output allows)
          const padding = this.explicitPadding(node);
          const ends = node.kernel.map((k, axis) => Math.max(0, (outputShape[axis + 1]! - 1) * node.stride[axis]! + k - padding.begin[axis]! - inputShape[axis + 1]!));
          const attributes = { kernel_shape: attr.ints(node.kernel), strides: attr.ints(node.stride), pads: attr.ints([...padding.begin, ...ends]) };
          this.contribute(x, this.op('MaxUnpool', [dy, indices!, this.op('Shape', [x])], attributes));
          return;
        }
        const zeros = this.op('ConstantOfShape', [this.op('Reshape', [this.op('Size', [x]), this.int64s([1])])], { value: { dims: [1], data: new Float32Array([0]) } });
        const flat = (t: string) => this.op('Reshape', [t, this.int64s([-1])]);
        const scattered = this.op('ScatterElements', [zeros, flat(indices!), flat(dy)], { axis: attr.int(0), reduction: attr.string('add') });
        this.contribute(x, this.op('Reshape', [scattered, this.op('Shape', [x])]));
        return;
      }
      case 'avgpool':
        if (wantsInput()) this.contribute(x, this.avgPoolBackward(node, dy, inputShape, outputShape));
        return;
      case 'global_maxpool':
        // every element equal to its channel's maximum receives the gradient (tfjs's rule for max, ties included)
        if (wantsInput()) this.contribute(x, this.op('Mul', [dy, this.op('Cast', [this.op('Equal', [x, node.name])], { to: attr.int(1) })]));
        return;
      case 'pad':
        if (wantsInput()) this.contribute(x, this.padBackward(node, dy, inputShape));
        return;
      case 'upsample':
        if (!wantsInput()) return;
        if (node.mode === 'nearest') {
          // each input element was copied into a block of Πscale outputs: sum the block (an average pool times its size)
          const pooled = this.op('AveragePool', [dy], { kernel_shape: attr.ints(node.scale), strides: attr.ints(node.scale) });
          this.contribute(x, this.op('Mul', [pooled, this.scalar(product(node.scale))]));
        } else {
          this.contribute(x, this.linearUpsampleBackward(node, dy, inputShape, outputShape));
        }
        return;
      case 'global_avgpool':
        if (wantsInput()) this.contribute(x, this.op('Expand', [this.op('Mul', [dy, this.scalar(1 / product(inputShape.slice(1)))]), this.op('Shape', [x])]));
        return;
      case 'dropout':
        if (wantsInput()) this.contribute(x, node.rate === 0 ? dy : this.op('Mul', [dy, `dropout_mask/${node.name}`]));
        return;
      case 'add':
        node.inputs.forEach((input, i) => {
          if (wantsInput(i)) this.contribute(input, this.unbroadcast(dy, this.shapes.get(input)!, outputShape));
        });
        return;
      case 'mul': {
        const [a, b] = node.inputs as [string, string];
        if (wantsInput(0)) this.contribute(a, this.unbroadcast(this.op('Mul', [dy, b]), this.shapes.get(a)!, outputShape));
        if (wantsInput(1)) this.contribute(b, this.unbroadcast(this.op('Mul', [dy, a]), this.shapes.get(b)!, outputShape));
        return;
      }
      case 'concat': {
        const axis = node.axis < 0 ? node.axis + rank : node.axis;
        const sizes = node.inputs.map((input) => this.shapes.get(input)![axis - 1]!);
        const parts = node.inputs.map((input) => this.fresh(`split_${input}`));
        this.b.addNode('Split', [dy, this.int64s(sizes)], parts, this.fresh('split'), { axis: attr.int(axis) });
        node.inputs.forEach((input, i) => wantsInput(i) && this.contribute(input, parts[i]!));
        return;
      }
      case 'flatten':
      case 'reshape':
        if (wantsInput()) this.contribute(x, this.op('Reshape', [dy, this.op('Shape', [x])]));
        return;
      default:
        // every op of the IR has a case: an op added to the language lands here until it has one
        this.unsupported(node as Node, `op '${(node as Node).op}'`);
    }
  }

  private convBackward(node: NodeOf<'conv'>, dy: string, inputShape: readonly number[], outputShape: readonly number[]): void {
    const x = node.inputs[0]!;
    const weight = `${node.name}.weight`;
    const padding = this.explicitPadding(node);
    const spatial = node.kernel.length;
    if (node.bias && this.trains(node, 'bias')) this.parameterGradient(node, 'bias', this.op('ReduceSum', [dy, this.int64s([0, ...range(2, spatial + 2)])], { keepdims: attr.int(0) }));
    if (this.trains(node, 'weight')) this.parameterGradient(node, 'weight', this.convWeightGradient(node, padding, x, inputShape, dy, outputShape));
    if (this.needsGradient.has(x)) this.contribute(x, this.convInputGradient(node, padding, dy, inputShape, outputShape));
  }

  /**
   * ∂L/∂X of a conv. With unit strides and pads no wider than the dilated kernel, a conv of dY with the kernel
   * flipped and its channel axes swapped (pads d·(k − 1) − p): ONNX Runtime runs Conv on its blocked, multi-threaded
   * kernels, where ConvTranspose (GEMM then col2im) barely gains from a second thread. Otherwise ConvTranspose with
   * the conv's attributes and the output padding that restores X's size (a strided conv may skip trailing rows).
   */
  private convInputGradient(node: NodeOf<'conv'>, padding: Padding, dy: string, inputShape: readonly number[], outputShape: readonly number[]): string {
    const weight = `${node.name}.weight`;
    const reach = node.kernel.map((k, axis) => node.dilation[axis]! * (k - 1));
    const rank = node.kernel.length;
    if (node.stride.every((s) => s === 1) && reach.every((r, axis) => padding.begin[axis]! <= r && padding.end[axis]! <= r)) {
      const groups = node.groups;
      const cin = node.inChannels;
      const cout = node.filters;
      // [Cout, Cin/G, K…] → [G, Cout/G, Cin/G, K…] → [G, Cin/G, Cout/G, K…] → [Cin, Cout/G, K…], then flipped
      const swapped =
        groups === 1
          ? this.op('Transpose', [weight], { perm: attr.ints([1, 0, ...range(2, rank + 2)]) })
          : this.op('Reshape', [this.op('Transpose', [this.op('Reshape', [weight, this.int64s([groups, cout / groups, cin / groups, ...node.kernel])])], { perm: attr.ints([0, 2, 1, ...range(3, rank + 3)]) }), this.int64s([cin, cout / groups, ...node.kernel])]);
      const flipped = this.op('Slice', [swapped, this.int64s(new Array<number>(rank).fill(-1)), this.int64s(new Array<number>(rank).fill(-(2 ** 53 - 1))), this.int64s(range(2, rank + 2)), this.int64s(new Array<number>(rank).fill(-1))]);
      const pads = { begin: reach.map((r, axis) => r - padding.begin[axis]!), end: reach.map((r, axis) => r - padding.end[axis]!) };
      return this.op('Conv', [dy, flipped], convAttributes(node, pads), 'conv_input_grad');
    }
    const outputPadding = node.kernel.map((kernel, i) => {
      const covered = (outputShape[i + 1]! - 1) * node.stride[i]! + node.dilation[i]! * (kernel - 1) + 1;
      return inputShape[i + 1]! + padding.begin[i]! + padding.end[i]! - covered;
    });
    return this.op('ConvTranspose', [dy, weight], convAttributes(node, padding, outputPadding));
  }

  /**
   * ∂L/∂W of a conv, dW[o, c, j] = Σ over samples and output positions of dY[o]·X[c at offset j], two ways:
   * - slices (one thread): for each kernel offset j the values it reads are a strided slice of the padded input
   *   laid out [Cin, N, S…]; with dY as [Cout, N·P], one GEMM per offset contracts over the whole batch at once;
   * - unfolding (several threads): im2col as a grouped conv with one-hot kernels, col [N, Cin·K, P], then one
   *   batched MatMul dY·colᵀ summed over the samples.
   * Measured on the Fashion-MNIST CNN's layers: with one thread the slices take half the unfolding's time (the
   * unfolded input is K times the input); with two, ONNX Runtime spreads the unfolding conv over its threads but
   * copies slices on one, and the unfolding is 15–40 % faster.
   */
  private convWeightGradient(node: ConvGeometry, padding: Padding, x: string, inputShape: readonly number[], dy: string, outputShape: readonly number[]): string {
    const groups = node.groups;
    const cin = node.inChannels;
    const cout = node.filters;
    const rank = node.kernel.length;
    const spatial = outputShape.slice(1);
    const positions = product(spatial);
    const spatialAxes = range(2, rank + 2);
    const shape = this.int64s([cout, cin / groups, ...node.kernel]);
    const offsets = product(node.kernel);
    if ((this.options.threads ?? 1) > 1 && offsets > 1) {
      const k = offsets;
      const eye = new Float32Array(cin * k * k);
      for (let c = 0; c < cin; c++) for (let j = 0; j < k; j++) eye[(c * k + j) * k + j] = 1;
      const unfold = this.constant(`unfold[${cin},${node.kernel.join('x')}]`, [cin * k, 1, ...node.kernel], eye);
      // col channel c·K + j holds input channel c at kernel offset j
      const col = this.op('Conv', [x, unfold], { ...convAttributes(node, padding), group: attr.int(cin) }, 'im2col');
      const colRows = this.op('Transpose', [this.op('Reshape', [col, this.int64s([0, groups, (cin / groups) * k, positions])])], { perm: attr.ints([0, 1, 3, 2]) });
      // [N, G, Cout/G, P]·[N, G, P, Cin/G·K] summed over N = [G, Cout/G, Cin/G·K]: the weight's order
      const perSample = this.op('MatMul', [this.op('Reshape', [dy, this.int64s([0, groups, cout / groups, positions])]), colRows]);
      return this.op('Reshape', [this.op('ReduceSum', [perSample, this.int64s([0])], { keepdims: attr.int(0) }), shape]);
    }
    // X → [Cin, N, S…], padded
    let columns = this.op('Transpose', [x], { perm: attr.ints([1, 0, ...spatialAxes]) });
    if ([...padding.begin, ...padding.end].some((p) => p !== 0)) columns = this.op('Pad', [columns, this.int64s([0, 0, ...padding.begin, 0, 0, ...padding.end])]);
    const inputSpatial = inputShape.slice(1);
    const slices: string[] = [];
    for (let j = 0; j < offsets; j++) {
      const starts = unravel(j, node.kernel).map((k, axis) => k * node.dilation[axis]!);
      const ends = starts.map((start, axis) => start + (spatial[axis]! - 1) * node.stride[axis]! + 1);
      const whole = starts.every((v) => v === 0) && node.stride.every((v) => v === 1) && ends.every((e, axis) => e === inputSpatial[axis]! + padding.begin[axis]! + padding.end[axis]!);
      slices.push(whole ? columns : this.op('Slice', [columns, this.int64s(starts), this.int64s(ends), this.int64s(spatialAxes), this.int64s(node.stride)]));
    }
    if (groups === 1) {
      // dY as [Cout, N·P] (moving whole rows of P values: a cheap transpose); per offset Gemm(dY, sliceᵀ) = [Cout, Cin]
      const dyRows = this.op('Reshape', [this.op('Transpose', [this.op('Reshape', [dy, this.int64s([0, cout, positions])])], { perm: attr.ints([1, 0, 2]) }), this.int64s([cout, -1])]);
      const parts = slices.map((slice) => this.op('Gemm', [dyRows, this.op('Reshape', [slice, this.int64s([cin, -1])])], { transB: attr.int(1) }));
      if (offsets === 1) return this.op('Reshape', [parts[0]!, shape]);
      // [Cout, Cin, 1] per offset → [Cout, Cin, K] = the weight's order
      return this.op('Reshape', [this.op('Concat', parts.map((part) => this.op('Unsqueeze', [part, this.int64s([2])])), { axis: attr.int(2) }), shape]);
    }
    // grouped: dY → [G, N·P, Cout/G]; per offset [G, Cin/G, N·P]·[G, N·P, Cout/G] = [G, Cin/G, Cout/G]
    const dyColumns = this.op('Reshape', [this.op('Transpose', [this.op('Reshape', [dy, this.int64s([0, groups, cout / groups, positions])])], { perm: attr.ints([1, 0, 3, 2]) }), this.int64s([groups, -1, cout / groups])]);
    const parts = slices.map((slice) => this.op('Unsqueeze', [this.op('MatMul', [this.op('Reshape', [slice, this.int64s([groups, cin / groups, -1])]), dyColumns]), this.int64s([3])]));
    const stacked = parts.length === 1 ? parts[0]! : this.op('Concat', parts, { axis: attr.int(3) });
    // [G, Cin/G, Cout/G, K] → [G, Cout/G, Cin/G, K] = the weight's [Cout, Cin/G, K…] order
    return this.op('Reshape', [this.op('Transpose', [stacked], { perm: attr.ints([0, 2, 1, 3]) }), shape]);
  }

  /**
   * Batch-norm gradients. Training mode: with a = γr, b = −γr³·mean(dY·d), c = −γr·mean(dY) per channel,
   * dX = a·dY + b·d + c; a·dY + c is a BatchNormalization node (zero mean, unit variance, ε = 0), so dX costs three
   * passes over the tensor (that node, b·d, the sum) instead of four. Frozen (running statistics): dX = dY·γr.
   */
  private batchNormBackward(node: NodeOf<'batchnorm'>, dy: string, rank: number, inputShape: readonly number[]): void {
    const { centered: saved, r, gammaR } = this.saved.get(node.name)! as { centered?: string; r: string; gammaR: string };
    const x = node.inputs[0]!;
    const axes = this.int64s([0, ...range(2, rank)]);
    const sum = (t: string) => this.op('ReduceSum', [t, axes], { keepdims: attr.int(1) });
    const vector = (t: string) => this.op('Reshape', [t, this.int64s([-1])]);
    // x − μ: saved by a training-mode forward; with running statistics only a trained γ needs it
    const centered = saved ?? (this.trains(node, 'weight') ? this.op('Sub', [x, this.perChannel(`${node.name}.running_mean`, rank, node.channels)]) : '');
    const sumDy = this.trains(node, 'bias') || !node.frozen ? sum(dy) : '';
    const sumDyD = this.trains(node, 'weight') || !node.frozen ? sum(this.op('Mul', [dy, centered])) : '';
    if (this.trains(node, 'bias')) this.parameterGradient(node, 'bias', vector(sumDy));
    if (this.trains(node, 'weight')) this.parameterGradient(node, 'weight', vector(this.op('Mul', [sumDyD, r])));
    if (!this.needsGradient.has(x)) return;
    if (node.frozen) {
      this.contribute(x, this.op('Mul', [dy, gammaR]));
      return;
    }
    // means over the M = N·S values of each channel: sums times (1/N)·(1/S)
    const inverseCount = this.inverseCount(inputShape);
    const a = vector(gammaR);
    const b = this.op('Neg', [this.op('Mul', [this.op('Mul', [gammaR, this.op('Mul', [r, r])]), this.op('Mul', [sumDyD, inverseCount])])]);
    const c = vector(this.op('Neg', [this.op('Mul', [gammaR, this.op('Mul', [sumDy, inverseCount])])]));
    const zeros = this.constant(`zeros[${node.channels}]`, [node.channels], new Float32Array(node.channels));
    const ones = this.constant(`ones[${node.channels}]`, [node.channels], new Float32Array(node.channels).fill(1));
    const affine = this.op('BatchNormalization', [dy, a, c, zeros, ones], { epsilon: attr.float(0) }, 'bn_grad');
    this.contribute(x, this.op('Add', [affine, this.op('Mul', [centered, b])]));
  }

  private activationBackward(node: NodeOf<'activation'>, dy: string): string {
    const x = node.inputs[0]!;
    const y = node.name;
    const zero = () => this.scalar(0);
    const fn = node.fn;
    switch (fn.kind) {
      case 'relu':
        // dY·(y > 0) with the mask cast to float: measured faster than Where or Sign in ONNX Runtime
        return this.op('Mul', [dy, this.op('Cast', [this.op('Greater', [y, zero()])], { to: attr.int(1) })]);
      case 'relu6':
        return this.op('Where', [this.op('And', [this.op('Greater', [x, zero()]), this.op('Less', [x, this.scalar(6)])]), dy, zero()]);
      case 'leaky_relu':
        return this.op('Where', [this.op('Greater', [x, zero()]), dy, this.op('Mul', [dy, this.scalar(fn.alpha)])]);
      case 'sigmoid':
        return this.op('Mul', [dy, this.op('Mul', [y, this.op('Sub', [this.scalar(1), y])])]);
      case 'tanh':
        return this.op('Mul', [dy, this.op('Sub', [this.scalar(1), this.op('Mul', [y, y])])]);
      case 'swish': {
        // d(x·s)/dx = s + x·s·(1 − s) = s·(1 + x·(1 − s))
        const s = this.saved.get(node.name)!['sigmoid']!;
        return this.op('Mul', [dy, this.op('Mul', [s, this.op('Add', [this.scalar(1), this.op('Mul', [x, this.op('Sub', [this.scalar(1), s])])])])]);
      }
      case 'elu':
        // x > 0: 1; else α·eˣ = y + α
        return this.op('Where', [this.op('Greater', [x, zero()]), dy, this.op('Mul', [dy, this.op('Add', [y, this.scalar(fn.alpha)])])]);
      case 'hard_sigmoid': {
        // α inside the linear part (0 < αx + β < 1), 0 where clipped
        const linear = this.op('Add', [this.op('Mul', [x, this.scalar(fn.alpha)]), this.scalar(fn.beta)]);
        const inside = this.op('And', [this.op('Greater', [linear, zero()]), this.op('Less', [linear, this.scalar(1)])]);
        return this.op('Mul', [dy, this.op('Mul', [this.op('Cast', [inside], { to: attr.int(1) }), this.scalar(fn.alpha)])]);
      }
      case 'hard_swish': {
        // d/dx x·relu6(x + 3)/6 = relu6(x + 3)/6 + x/6 inside −3 < x < 3, and relu6(x + 3)/6 elsewhere
        const shifted = this.op('Add', [x, this.scalar(3)]);
        const inside = this.op('Cast', [this.op('And', [this.op('Greater', [shifted, zero()]), this.op('Less', [shifted, this.scalar(6)])])], { to: attr.int(1) });
        const slope = this.op('Add', [this.op('Mul', [this.op('Clip', [shifted, this.scalar(0), this.scalar(6)]), this.scalar(1 / 6)]), this.op('Mul', [this.op('Mul', [x, this.scalar(1 / 6)]), inside])]);
        return this.op('Mul', [dy, slope]);
      }
      case 'gelu': {
        // Φ(x) + x·φ(x): (1 + erf(x/√2))/2 + x·e^(−x²/2)/√(2π)
        const cdf = this.op('Mul', [this.op('Add', [this.op('Erf', [this.op('Mul', [x, this.scalar(Math.SQRT1_2)])]), this.scalar(1)]), this.scalar(0.5)]);
        const pdf = this.op('Mul', [this.op('Exp', [this.op('Mul', [this.op('Mul', [x, x]), this.scalar(-0.5)])]), this.scalar(1 / Math.sqrt(2 * Math.PI))]);
        return this.op('Mul', [dy, this.op('Add', [cdf, this.op('Mul', [x, pdf])])]);
      }
      case 'softmax': {
        // y·(dY − Σ_axis dY·y)
        const rank = this.shapes.get(x)!.length + 1;
        const axis = this.int64s([fn.axis < 0 ? fn.axis + rank : fn.axis]);
        const inner = this.op('ReduceSum', [this.op('Mul', [dy, y]), axis], { keepdims: attr.int(1) });
        return this.op('Mul', [y, this.op('Sub', [dy, inner])]);
      }
    }
  }

  /**
   * ∂L/∂X of a pad, one spatial axis at a time (the padding of each axis is a separate linear map): the original
   * elements' own gradient, plus, for edge padding, the sum of each border's gradient on the edge element, and for
   * reflect padding each border's gradient flipped onto the elements it mirrors (x[1…p] and x[n−1−p…n−2]).
   */
  private padBackward(node: NodeOf<'pad'>, dy: string, inputShape: readonly number[]): string {
    let gradient = dy;
    node.padding.begin.forEach((before, i) => {
      const after = node.padding.end[i]!;
      const axis = i + 2;
      const size = inputShape[i + 1]!;
      const slice = (start: number, end: number, step = 1) => this.op('Slice', [gradient, this.int64s([start]), this.int64s([end]), this.int64s([axis]), this.int64s([step])]);
      // a border of `width` elements along the axis, zero-padded to the axis' size with `offset` zeros before it
      const placed = (border: string, offset: number, width: number) => {
        const pads = new Array<number>(2 * (inputShape.length + 1)).fill(0);
        pads[axis] = offset;
        pads[inputShape.length + 1 + axis] = size - offset - width;
        return this.op('Pad', [border, this.int64s(pads)]);
      };
      let result = slice(before, before + size);
      if (node.mode === 'edge') {
        const sum = (start: number, end: number) => this.op('ReduceSum', [slice(start, end), this.int64s([axis])], { keepdims: attr.int(1) });
        if (before > 0) result = this.op('Add', [result, placed(sum(0, before), 0, 1)]);
        if (after > 0) result = this.op('Add', [result, placed(sum(before + size, before + size + after), size - 1, 1)]);
      } else if (node.mode === 'reflect') {
        // reversed slices (step −1): dY[before − 1 … 0] lands on x[1 … before], dY[end − 1 … before + size] on x[size − 1 − after … size − 2]
        if (before > 0) result = this.op('Add', [result, placed(slice(before - 1, -(before + size + after) - 1, -1), 1, before)]);
        if (after > 0) result = this.op('Add', [result, placed(slice(before + size + after - 1, before + size - 1, -1), size - 1 - after, after)]);
      }
      gradient = result;
    });
    return gradient;
  }

  /**
   * ∂L/∂X of a linear upsampling. The forward is separable: along each spatial axis, out = A·in with A the
   * interpolation matrix of ONNX's half-pixel rule (src = (i + ½)/s − ½, clamped to [0, n − 1], two neighbours
   * weighted by distance) — the Resize node above and tfjs's resizeBilinear(halfPixelCenters). The gradient applies
   * Aᵀ along each axis: the tensor viewed as [−1, out, rest], multiplied by Aᵀ (MatMul broadcasts it).
   */
  private linearUpsampleBackward(node: NodeOf<'upsample'>, dy: string, inputShape: readonly number[], outputShape: readonly number[]): string {
    let gradient = dy;
    const sizes = outputShape.slice(1);
    node.scale.forEach((scale, i) => {
      const inSize = inputShape[i + 1]!;
      const outSize = outputShape[i + 1]!;
      const transposed = new Float32Array(inSize * outSize); // Aᵀ: [in, out]
      for (let o = 0; o < outSize; o++) {
        const source = Math.min(Math.max((o + 0.5) / scale - 0.5, 0), inSize - 1);
        const low = Math.floor(source);
        const high = Math.min(low + 1, inSize - 1);
        transposed[low * outSize + o] += 1 - (source - low);
        transposed[high * outSize + o] += source - low;
      }
      const matrix = this.constant(`upsample_linear/${node.name}/${i}`, [inSize, outSize], transposed);
      const rest = product(sizes.slice(i + 1));
      gradient = this.op('MatMul', [matrix, this.op('Reshape', [gradient, this.int64s([-1, outSize, rest])])]);
      sizes[i] = inSize;
    });
    return this.op('Reshape', [gradient, this.op('Shape', [node.inputs[0]!])]);
  }

  /**
   * An average pool's windows: the padding, its end grown to hold the last window of ceil mode, and per output
   * position the number of elements averaged, counted as the tfjs engine counts them (averagePoolCounts).
   */
  private averageWindows(node: NodeOf<'maxpool' | 'avgpool'>, spatialIn: readonly number[], spatialOut: readonly number[]): { padding: Padding; counts: Float32Array } {
    const declared = this.explicitPadding(node);
    const end = declared.end.map((e, i) => Math.max(e, (spatialOut[i]! - 1) * node.stride[i]! + node.kernel[i]! - spatialIn[i]! - declared.begin[i]!));
    return { padding: { begin: declared.begin, end }, counts: averagePoolCounts(node, declared, spatialIn, spatialOut) };
  }

  /** ∂L/∂X of an average pool: dY / count spread over each window (a transposed conv with a kernel of ones). */
  private avgPoolBackward(node: NodeOf<'maxpool' | 'avgpool'>, dy: string, inputShape: readonly number[], outputShape: readonly number[]): string {
    const channels = inputShape[0]!;
    const spatialIn = inputShape.slice(1);
    const spatialOut = outputShape.slice(1);
    const { padding, counts } = this.averageWindows(node, spatialIn, spatialOut);
    const inverseCounts = this.constant(`avgpool_counts/${node.name}`, [1, 1, ...spatialOut], counts.map((count) => 1 / count));
    const ones = this.constant(`ones[${channels},${node.kernel.join('x')}]`, [channels, 1, ...node.kernel], new Float32Array(channels * product(node.kernel)).fill(1));
    const outputPadding = node.kernel.map((kernel, i) => spatialIn[i]! + padding.begin[i]! + padding.end[i]! - ((spatialOut[i]! - 1) * node.stride[i]! + kernel));
    const window = { kernel: node.kernel, stride: node.stride, dilation: node.kernel.map(() => 1), groups: channels };
    return this.op('ConvTranspose', [this.op('Mul', [dy, inverseCounts]), ones], convAttributes(window, padding, outputPadding));
  }
}

/** What the conv gradients need of a conv (a transposed conv's weight gradient is that of the conv it inverts). */
type ConvGeometry = Pick<NodeOf<'conv'>, 'inChannels' | 'filters' | 'kernel' | 'stride' | 'dilation' | 'groups'>;

/** The exporter's conv attributes (defaults left out) with explicit pads, and a transposed conv's output padding. */
function convAttributes(node: Pick<ConvGeometry, 'kernel' | 'stride' | 'dilation' | 'groups'>, padding: Padding, outputPadding: readonly number[] = []): Record<string, OnnxAttributeValue> {
  const attributes = exportedConvAttributes(node);
  setInts(attributes, 'pads', [...padding.begin, ...padding.end], 0);
  setInts(attributes, 'output_padding', outputPadding, 0);
  return attributes;
}

/** The multi-index of flat index `flat` in a row-major array of shape `shape`. */
function unravel(flat: number, shape: readonly number[]): number[] {
  const index = new Array<number>(shape.length);
  let rest = flat;
  for (let axis = shape.length - 1; axis >= 0; axis--) {
    index[axis] = rest % shape[axis]!;
    rest = Math.floor(rest / shape[axis]!);
  }
  return index;
}

function range(start: number, end: number): number[] {
  const values: number[] = [];
  for (let i = start; i < end; i++) values.push(i);
  return values;
}

/**
 * The TensorFlow.js engine: runs and trains an IR graph directly, on the best available tfjs backend.
 *
 * - `TfjsEngine.create(graph, weights?, { backend, seed })` selects the backend (./backend.ts), then turns every
 *   IR parameter into a `tf.Variable` in tfjs layout (./layout.ts documents each permutation). That conversion
 *   happens once; `getWeights` converts back to the IR layout.
 * - Activations are channels-last inside the engine. `predict` takes and returns tensors in the IR's logical
 *   layout (NCHW / NCL / NCDHW), so callers never see the internal layout.
 * - Reads are asynchronous (`predict`, `getWeights`): tfjs's webgpu backend reads synchronously only through an
 *   OffscreenCanvas, which Node lacks. `predictSync` / `getWeightsSync` serve cpu, wasm and tensorflow.
 * - WebGPU runs tensors of rank ≤ 4 only (on an H100 with Dawn, tfjs 4.22's WGSL for rank-5 tensors indexes a
 *   nonexistent `vec5` and fails to compile), so a graph with 3D feature maps moves from webgpu to wasm under
 *   'auto', with that reason, and is refused when webgpu was asked for by name.
 * - Every node's output shape is checked against the IR's inferred shape as it is produced: a lowering that
 *   disagreed with the shape rules fails loudly at that node. (Dimensions the IR states as numbers; symbolic ones
 *   are not checked, since the IR's symbolic ceil-mode pooling formula omits the concrete rule's correction.)
 * - Parameters of frozen nodes and BN running statistics are non-trainable variables; the trainer
 *   (./train.ts) differentiates only the trainable ones.
 * - Inference (training false, no gradient tape) runs each chain conv [→ batch norm] [→ ReLU/ReLU6] whose links
 *   nothing else reads as one fused convolution (`fusedConvolution` in ./ops.ts), with the batch norm folded
 *   into the conv: W' = W·s, b' = b·s + t, s = γ/√(σ² + ε), t = β − μ·s. The folded filter and bias are kept
 *   per conv and made again when any of the six variables they come from has been assigned since (a variable's
 *   data id changes on every assignment), so they cost one pass over the weights after each change and a
 *   second copy of those weights in memory. A fused chain is checked against the IR shape of its last node.
 *   Training and gradient tapes fuse only frozen chains (frozen conv, frozen or no batch norm): their weights are
 *   constants and a frozen batch norm normalises with its running statistics in training too, so the fold is
 *   exact there and a frozen backbone trains at inference speed.
 *
 * TensorFlow.js has one active backend per process. An engine remembers its backend and switches back to it
 * before it runs (a synchronous switch once the backend is initialised), so engines on different backends can
 * coexist, as the tests comparing wasm with cpu do.
 */
import * as tf from '@tensorflow/tfjs';
import { dimToString, evaluateDim, isSymbolic, type Dim } from '../../ir/dims.js';
import { tensorShapes, type Graph, type Node, type NodeOf } from '../../ir/graph.js';
import { graphParameters, type ParamRole, type ParamSpec } from '../../ir/params.js';
import { checkWeights, initializeWeights, type WeightTensor, type Weights } from '../../ir/weights.js';
import { deriveSeed } from '../../random.js';
import { selectBackend, wasmThreads, type BackendPreference, type BackendSelection } from './backend.js';
import { logicalShape, permuteData, toInternalPermutation, toLogicalPermutation, weightToIrPermutation, weightToTfjsPermutation } from './layout.js';
import { fusableConvolution, fusedConvolution, lowerNode, LoweringError, type FusedActivation, type LoweringContext } from './ops.js';

export { LoweringError } from './ops.js';

/** A float32 tensor as plain data: row-major values and dims. */
export interface TensorData {
  readonly data: Float32Array;
  readonly dims: readonly number[];
}

/** Wrong inputs, weights or options given to the engine (a user error, not a bug). */
export class EngineError extends Error {
  override readonly name = 'EngineError';
}

export interface TfjsEngineOptions {
  /** Backend preference; default 'auto' (tensorflow, webgpu, wasm, cpu: the first that works). */
  readonly backend?: BackendPreference;
  /** Seed for weight initialisation (when no weights are given) and for dropout masks in `predict`. */
  readonly seed?: number;
  /**
   * Threads of the wasm backend (default the CONVSPEC_WASM_THREADS environment variable, else 1); fixed for the
   * process when the wasm backend first initialises (./backend.ts).
   */
  readonly threads?: number;
}

export interface PredictOptions {
  /** Training-mode behaviour (batch statistics, dropout). Running statistics are not updated. Default false. */
  readonly training?: boolean;
  /** Seed of the dropout masks in training mode; default: a new one per call, derived from the engine seed. */
  readonly seed?: number;
}

/** One IR parameter held by the engine. */
export interface EngineParameter {
  readonly spec: ParamSpec;
  readonly node: Node;
  /** The value in tfjs layout. */
  readonly variable: tf.Variable;
  /** Learnable and not frozen: the trainer updates it. */
  readonly trainable: boolean;
}

/** Batch mean and biased variance of one batch-norm node, from a training-mode forward pass. */
export interface BatchStatistics {
  readonly node: Node;
  readonly mean: tf.Tensor1D;
  readonly variance: tf.Tensor1D;
}

export interface ForwardOptions {
  readonly training: boolean;
  /** Seed from which every dropout node's mask seed is derived. */
  readonly seed?: number;
  /** Receives the batch statistics of batch-norm nodes that used them (training mode, not frozen). */
  readonly onBatchStatistics?: (statistics: BatchStatistics) => void;
  /** Dispose intermediate tensors once their last reader ran (never under a gradient tape). */
  readonly releaseIntermediates?: boolean;
}

let engineCount = 0;

/** An inference chain conv [→ batch norm] [→ ReLU/ReLU6] computed as one fused convolution. */
interface FusedChain {
  readonly conv: NodeOf<'conv'>;
  readonly batchNorm?: NodeOf<'batchnorm'>;
  readonly activation: FusedActivation;
  /** The node whose output the fused convolution produces (the last of the chain). */
  readonly last: Node;
}

/** A folded filter and bias, and the data ids of the variables they were made from. */
interface FoldedConvolution {
  readonly sources: readonly tf.DataId[];
  readonly filter: tf.Tensor;
  readonly bias: tf.Tensor;
}

/** Whether a gradient tape is recording (the folded weights would hide the variables from it). */
function gradientTapeActive(): boolean {
  return (tf.engine() as unknown as { state: { gradientDepth: number } }).state.gradientDepth > 0;
}

export class TfjsEngine {
  /** Parameters by IR name (`stem.conv1.weight`), in graph order. */
  readonly parameters: ReadonlyMap<string, EngineParameter>;
  private readonly paramsByNode = new Map<string, Map<ParamRole, EngineParameter>>();
  private readonly lastUse: Map<string, number>;
  private readonly outputValues: Set<string>;
  /** Inference chains by their conv's name, and the names of the nodes they absorb. */
  private readonly fusedChains = new Map<string, FusedChain>();
  /** The chain that computes each absorbed node (the chain's batch norm or activation). */
  private readonly absorbedByChain = new Map<string, FusedChain>();
  private readonly foldedConvolutions = new Map<string, FoldedConvolution>();
  private predictCalls = 0;
  private disposed = false;
  /** Distinguishes engines in error messages and variable names. */
  readonly id = ++engineCount;

  private constructor(
    readonly graph: Graph,
    readonly backend: BackendSelection,
    readonly seed: number,
    weights: Weights,
  ) {
    const parameters = new Map<string, EngineParameter>();
    const nodes = new Map(graph.nodes.map((n) => [n.name, n]));
    for (const spec of graphParameters(graph.nodes)) {
      const node = nodes.get(spec.node)!;
      const tensor = weights.get(spec.name)!;
      const trainable = spec.learnable && !node.frozen;
      const converted = permuteData(tensor.data, spec.shape, weightToTfjsPermutation(spec.shape.length));
      // tf.variable shares the initial tensor's data and takes its own reference: the initial tensor must be
      // disposed, or every engine would keep its weights alive after `dispose`.
      const initial = tf.tensor(converted.data, converted.shape, 'float32');
      const variable = tf.variable(initial, trainable, `engine${this.id}/${spec.name}`);
      initial.dispose();
      const parameter: EngineParameter = { spec, node, variable, trainable };
      parameters.set(spec.name, parameter);
      let roles = this.paramsByNode.get(node.name);
      if (!roles) this.paramsByNode.set(node.name, (roles = new Map()));
      roles.set(spec.role, parameter);
    }
    this.parameters = parameters;
    this.outputValues = new Set(graph.outputs.map((o) => o.value));
    this.lastUse = new Map();
    graph.nodes.forEach((node, index) => node.inputs.forEach((input) => this.lastUse.set(input, index)));
    this.planFusedChains();
  }

  /** Finds the inference chains conv [→ batch norm] [→ ReLU/ReLU6] whose intermediate tensors only the chain reads. */
  private planFusedChains(): void {
    const readers = new Map<string, Node[]>();
    for (const node of this.graph.nodes) for (const input of new Set(node.inputs)) readers.set(input, [...(readers.get(input) ?? []), node]);
    const soleReader = (tensor: string): Node | undefined => {
      const list = readers.get(tensor) ?? [];
      return list.length === 1 && list[0]!.inputs.length === 1 && !this.outputValues.has(tensor) ? list[0] : undefined;
    };
    for (const node of this.graph.nodes) {
      if (node.op !== 'conv' || !fusableConvolution(node)) continue;
      let last: Node = node;
      let batchNorm: NodeOf<'batchnorm'> | undefined;
      const next = soleReader(node.name);
      if (next?.op === 'batchnorm') {
        batchNorm = next;
        last = next;
      }
      let activation: FusedActivation = 'linear';
      const after = soleReader(last.name);
      if (after?.op === 'activation' && (after.fn.kind === 'relu' || after.fn.kind === 'relu6')) {
        activation = after.fn.kind;
        last = after;
      }
      if (last === node) continue;
      const chain: FusedChain = { conv: node, ...(batchNorm ? { batchNorm } : {}), activation, last };
      this.fusedChains.set(node.name, chain);
      if (batchNorm) this.absorbedByChain.set(batchNorm.name, chain);
      if (last !== batchNorm && last !== node) this.absorbedByChain.set(last.name, chain);
    }
  }

  /**
   * Whether nothing in the chain trains now: its conv and batch norm are frozen in the graph, and no unfreeze
   * step has made their variables trainable (a thawed batch norm keeps its running statistics, but its γ and β
   * then train, and the fold would hide them from the gradient tape).
   */
  private constantChain(chain: FusedChain): boolean {
    if (!chain.conv.frozen || (chain.batchNorm && !chain.batchNorm.frozen)) return false;
    const members = chain.batchNorm ? [chain.conv, chain.batchNorm] : [chain.conv];
    return members.every((node) => [...this.paramsByNode.get(node.name)!.values()].every((p) => !p.variable.trainable));
  }

  /** The chain's conv filter and bias with its batch norm folded in (kept until a source variable changes). */
  private foldedConvolution(chain: FusedChain): { filter: tf.Tensor; bias: tf.Tensor | undefined } {
    const variable = (node: Node, role: ParamRole) => this.paramsByNode.get(node.name)!.get(role)!.variable;
    const filter = variable(chain.conv, 'weight');
    const bias = chain.conv.bias ? variable(chain.conv, 'bias') : undefined;
    const bn = chain.batchNorm;
    if (!bn) return { filter, bias };
    const statistics = (['weight', 'bias', 'running_mean', 'running_var'] as const).map((role) => variable(bn, role));
    const sources = [filter, ...(bias ? [bias] : []), ...statistics].map((v) => v.dataId);
    const cached = this.foldedConvolutions.get(chain.conv.name);
    if (cached && cached.sources.length === sources.length && cached.sources.every((id, i) => id === sources[i])) return cached;
    if (cached) tf.dispose([cached.filter, cached.bias]);
    const [gamma, beta, mean, variance] = statistics as [tf.Variable, tf.Variable, tf.Variable, tf.Variable];
    const folded = tf.tidy(() => {
      const scale = tf.mul(gamma, tf.rsqrt(tf.add(variance, bn.epsilon)));
      const shift = tf.sub(beta, tf.mul(mean, scale));
      // the output channel is the filter's last axis ([K…, I/g, O] in tfjs layout, every group count)
      return { filter: tf.keep(tf.mul(filter, scale)), bias: tf.keep(bias ? tf.add(tf.mul(bias, scale), shift) : shift) };
    });
    this.foldedConvolutions.set(chain.conv.name, { sources, ...folded });
    return folded;
  }

  /**
   * Selects the backend and loads the weights (IR layout; default: `initializeWeights(graph, seed)`). Missing,
   * misshapen or unknown weights are an `EngineError` listing every problem.
   */
  static async create(graph: Graph, weights?: Weights, options: TfjsEngineOptions = {}): Promise<TfjsEngine> {
    const seed = options.seed ?? 0;
    const given = weights ?? initializeWeights(graph, seed);
    const problems = checkWeights(graph, given);
    if (problems.length > 0) throw new EngineError(`weights do not fit ${graph.name}: ${problems.map(describeWeightProblem).join('; ')}`);
    const preference = options.backend ?? 'auto';
    const backendOptions = options.threads === undefined ? {} : { threads: options.threads };
    let backend = await selectBackend(preference, backendOptions);
    const rank = Math.max(...graph.inputs.map((i) => i.shape.length), ...graph.nodes.map((n) => n.shape.length));
    if (backend.name === 'webgpu' && rank > 4) {
      // Seen on an H100 with Dawn: the WGSL that tfjs 4.22 generates for rank-5 tensors indexes a 'vec5', which
      // does not exist, so its element-wise and pad programs fail to compile.
      const reason = `webgpu: tfjs's WebGPU kernels handle tensors of rank 4 at most and ${graph.name} has rank-${rank} tensors (3D feature maps)`;
      if (preference === 'webgpu') throw new EngineError(reason);
      const fallback = await selectBackend('wasm', backendOptions);
      backend = { name: fallback.name, reasons: [...backend.reasons, reason, ...fallback.reasons] };
    }
    return new TfjsEngine(graph, backend, seed, given);
  }

  /** Threads the backend computes with: the wasm backend's XNNPACK threads; undefined on other backends. */
  get threads(): number | undefined {
    return this.backend.name === 'wasm' ? wasmThreads() : undefined;
  }

  /** Parameters the trainer updates (learnable, not frozen), in graph order. */
  trainableParameters(): EngineParameter[] {
    return [...this.parameters.values()].filter((p) => p.trainable);
  }

  /** A node's parameter. */
  parameter(node: string, role: ParamRole): EngineParameter | undefined {
    return this.paramsByNode.get(node)?.get(role);
  }

  /**
   * What `lowerNode` needs to lower this engine's nodes one by one (training-mode behaviour and batch
   * statistics as `options` say; inference and no dropout by default): for callers that walk the graph
   * themselves, such as fake quantisation and the visualisations' partial runs.
   */
  loweringContext(bindings: ReadonlyMap<string, number>, options: Pick<LoweringContext, 'training' | 'dropoutSeed' | 'batchStatistics'> = { training: false, dropoutSeed: () => 0 }): LoweringContext {
    return {
      ...options,
      bindings,
      param: (node, role) => {
        const parameter = this.paramsByNode.get(node.name)?.get(role);
        if (!parameter) throw new Error(`internal: ${node.name} has no ${role}`);
        return parameter.variable;
      },
    };
  }

  /** Makes this engine's backend the active one (synchronous once the backend is initialised). */
  activate(): void {
    if (this.disposed) throw new EngineError(`the engine for ${this.graph.name} has been disposed`);
    if (tf.getBackend() !== this.backend.name) {
      void tf.setBackend(this.backend.name);
      if (tf.getBackend() !== this.backend.name) throw new Error(`internal: could not switch back to the ${this.backend.name} backend`);
    }
  }

  /**
   * Runs the graph on logical-layout inputs (one entry per graph input, by name) and returns every graph output
   * by its name, in logical layout. Asynchronous because some backends (webgpu in Node) can only read results
   * back asynchronously; `predictSync` serves the others.
   */
  async predict(inputs: Readonly<Record<string, TensorData>>, options: PredictOptions = {}): Promise<Record<string, TensorData & { dims: number[] }>> {
    const { names, tensors } = this.runToLogical(inputs, options);
    const result: Record<string, TensorData & { dims: number[] }> = {};
    try {
      for (let i = 0; i < names.length; i++) {
        const data = (await tensors[i]!.data()) as Float32Array;
        result[names[i]!] = { data: Float32Array.from(data), dims: [...tensors[i]!.shape] };
      }
    } finally {
      tf.dispose(tensors);
    }
    return result;
  }

  /** `predict` for backends that read synchronously (cpu, wasm, tensorflow); throws on webgpu. */
  predictSync(inputs: Readonly<Record<string, TensorData>>, options: PredictOptions = {}): Record<string, TensorData & { dims: number[] }> {
    this.requireSynchronousReads('predictSync');
    const { names, tensors } = this.runToLogical(inputs, options);
    const result: Record<string, TensorData & { dims: number[] }> = {};
    tensors.forEach((tensor, i) => {
      result[names[i]!] = { data: Float32Array.from(tensor.dataSync() as Float32Array), dims: [...tensor.shape] };
    });
    tf.dispose(tensors);
    return result;
  }

  /** Whether results can be read synchronously on this engine's backend (not on webgpu in Node). */
  get readsSynchronously(): boolean {
    return this.backend.name !== 'webgpu';
  }

  private requireSynchronousReads(what: string): void {
    if (!this.readsSynchronously) throw new EngineError(`${what} cannot read results synchronously on the ${this.backend.name} backend; use the asynchronous form`);
  }

  private runToLogical(inputs: Readonly<Record<string, TensorData>>, options: PredictOptions): { names: string[]; tensors: tf.Tensor[] } {
    this.activate();
    const training = options.training ?? false;
    const seed = options.seed ?? deriveSeed(this.seed, 0x7072, this.predictCalls++);
    const names = this.graph.outputs.map((o) => o.name);
    const tensors = tf.tidy(() => {
      const feeds = this.feedsFromData(inputs);
      const outputs = this.forward(feeds, { training, seed, releaseIntermediates: true });
      // a copy per output, so that two outputs of one tensor are two tensors to dispose
      return names.map((name) => tf.clone(toLogical(outputs.get(name)!)));
    });
    return { names, tensors };
  }

  /** Converts logical-layout input data to channels-last tensors, checking names and shapes. */
  feedsFromData(inputs: Readonly<Record<string, TensorData>>): Map<string, tf.Tensor> {
    const feeds = new Map<string, tf.Tensor>();
    for (const name of Object.keys(inputs)) {
      if (!this.graph.inputs.some((i) => i.name === name)) throw new EngineError(`${this.graph.name} has no input '${name}' (inputs: ${this.graph.inputs.map((i) => i.name).join(', ')})`);
    }
    for (const input of this.graph.inputs) {
      const value = inputs[input.name];
      if (!value) throw new EngineError(`input '${input.name}' is missing`);
      const size = value.dims.reduce((a, b) => a * b, 1);
      if (size !== value.data.length) throw new EngineError(`input '${input.name}': dims [${value.dims.join(', ')}] hold ${size} values but the data has ${value.data.length}`);
      feeds.set(input.name, toInternal(tf.tensor(value.data, [...value.dims], 'float32')));
    }
    return feeds;
  }

  /**
   * Binds the graph's dimension symbols from the feeds' shapes and checks every fixed or derived dimension.
   * Feeds are channels-last tensors.
   */
  bindSymbols(feeds: ReadonlyMap<string, tf.Tensor>): Map<string, number> {
    const bindings = new Map<string, number>();
    const checks: Array<{ input: string; axis: number; dim: Dim; actual: number }> = [];
    for (const input of this.graph.inputs) {
      const tensor = feeds.get(input.name);
      if (!tensor) throw new EngineError(`input '${input.name}' is missing`);
      const actual = logicalShape(tensor.shape);
      if (actual.length !== input.shape.length) throw new EngineError(`input '${input.name}' must have rank ${input.shape.length}, found [${actual.join(', ')}]`);
      input.shape.forEach((dim, axis) => {
        const symbolName = plainSymbol(dim);
        if (symbolName !== undefined && !bindings.has(symbolName)) bindings.set(symbolName, actual[axis]!);
        else checks.push({ input: input.name, axis, dim, actual: actual[axis]! });
      });
    }
    for (const check of checks) {
      const expected = evaluateDim(check.dim, bindings);
      if (typeof expected === 'number' && expected !== check.actual) {
        const declared = this.graph.inputs.find((i) => i.name === check.input)!;
        throw new EngineError(`input '${check.input}' axis ${check.axis} must be ${expected} (declared [${declared.shape.map(String).join(', ')}]), found ${check.actual}`);
      }
    }
    return bindings;
  }

  /**
   * Runs the graph on channels-last feeds; returns each graph output (by output name) channels-last. Tensors
   * are the caller's to dispose (run it inside `tf.tidy`).
   */
  forward(feeds: ReadonlyMap<string, tf.Tensor>, options: ForwardOptions): Map<string, tf.Tensor> {
    this.activate();
    const bindings = this.bindSymbols(feeds);
    const values = new Map<string, tf.Tensor>(feeds);
    const seed = options.seed ?? this.seed;
    const context = this.loweringContext(bindings, {
      training: options.training,
      dropoutSeed: (node) => deriveSeed(seed, this.graph.nodes.indexOf(node)),
      batchStatistics: options.onBatchStatistics ? (node, mean, variance) => options.onBatchStatistics!({ node, mean, variance }) : undefined,
    });
    const expectedShapes = tensorShapes(this.graph);
    const references = new Map<tf.Tensor, number>();
    for (const tensor of feeds.values()) references.set(tensor, (references.get(tensor) ?? 0) + 1);
    const fuseAll = !options.training && !gradientTapeActive();
    const fused = (chain: FusedChain | undefined): chain is FusedChain => chain !== undefined && (fuseAll || this.constantChain(chain));
    this.graph.nodes.forEach((node, index) => {
      // computed by the fused convolution of its chain
      if (fused(this.absorbedByChain.get(node.name))) return;
      const candidate = this.fusedChains.get(node.name);
      const chain = fused(candidate) ? candidate : undefined;
      const produced = chain ? chain.last : node;
      const inputs = node.inputs.map((name) => {
        const value = values.get(name);
        if (!value) throw new Error(`internal: ${node.name} reads ${name} before it exists`);
        return value;
      });
      let output: tf.Tensor;
      try {
        if (chain) {
          const { filter, bias } = this.foldedConvolution(chain);
          output = fusedConvolution(chain.conv, inputs[0]!, filter, bias, chain.activation);
        } else {
          output = lowerNode(node, inputs, context);
        }
      } catch (error) {
        if (error instanceof LoweringError || error instanceof EngineError) throw error;
        throw new LoweringError(node.name, `${node.op} failed on inputs ${inputs.map((t) => `[${logicalShape(t.shape).join(', ')}]`).join(', ')}: ${error instanceof Error ? error.message : String(error)}`);
      }
      checkShape(produced, output, expectedShapes.get(produced.name)!, bindings);
      values.set(produced.name, output);
      if (options.releaseIntermediates) {
        // An op may return one of its inputs (dropout in inference, zero padding…): count the names per tensor.
        references.set(output, (references.get(output) ?? 0) + 1);
        for (const name of new Set(node.inputs)) {
          if (this.lastUse.get(name) !== index || this.outputValues.has(name) || feeds.has(name)) continue;
          const tensor = values.get(name)!;
          const left = references.get(tensor)! - 1;
          references.set(tensor, left);
          if (left === 0) tensor.dispose();
        }
      }
    });
    const outputs = new Map<string, tf.Tensor>();
    for (const output of this.graph.outputs) outputs.set(output.name, values.get(output.value)!);
    return outputs;
  }

  /**
   * running ← momentum·running + (1 − momentum)·batch for each batch-norm node's statistics (see ./ops.ts).
   * Frozen nodes never report statistics, so their running values stay as they are.
   */
  updateRunningStatistics(statistics: readonly BatchStatistics[]): void {
    tf.tidy(() => {
      for (const { node, mean, variance } of statistics) {
        if (node.op !== 'batchnorm' || node.frozen) continue;
        const m = node.momentum;
        const runningMean = this.parameter(node.name, 'running_mean')!.variable;
        const runningVar = this.parameter(node.name, 'running_var')!.variable;
        runningMean.assign(tf.add(tf.mul(runningMean, m), tf.mul(mean, 1 - m)));
        runningVar.assign(tf.add(tf.mul(runningVar, m), tf.mul(variance, 1 - m)));
      }
    });
  }

  /** Every parameter in the IR layout, by name (BN running statistics included). */
  async getWeights(): Promise<Map<string, WeightTensor>> {
    this.activate();
    const weights = new Map<string, WeightTensor>();
    for (const [name, parameter] of this.parameters) weights.set(name, await readFromTfjsLayout(parameter.variable, parameter.spec.shape));
    return weights;
  }

  /** `getWeights` for backends that read synchronously; throws on webgpu. */
  getWeightsSync(): Map<string, WeightTensor> {
    this.requireSynchronousReads('getWeightsSync');
    this.activate();
    const weights = new Map<string, WeightTensor>();
    for (const [name, parameter] of this.parameters) weights.set(name, fromTfjsLayout(parameter.variable, parameter.spec.shape));
    return weights;
  }

  /** Replaces parameters (IR layout). Every given tensor must be a parameter of the graph with its shape. */
  setWeights(weights: Weights, options: { partial?: boolean } = {}): void {
    this.activate();
    const problems = checkWeights(this.graph, weights).filter((p) => !(options.partial && p.kind === 'missing'));
    if (problems.length > 0) throw new EngineError(`weights do not fit ${this.graph.name}: ${problems.map(describeWeightProblem).join('; ')}`);
    tf.tidy(() => {
      for (const [name, tensor] of weights) {
        const parameter = this.parameters.get(name)!;
        parameter.variable.assign(toTfjsLayout(tensor, parameter.spec.shape));
      }
    });
  }

  /** Frees the variables. The engine cannot run afterwards. */
  dispose(): void {
    if (this.disposed) return;
    for (const parameter of this.parameters.values()) parameter.variable.dispose();
    for (const folded of this.foldedConvolutions.values()) tf.dispose([folded.filter, folded.bias]);
    this.foldedConvolutions.clear();
    this.disposed = true;
  }
}

/** IR-layout data → a tfjs-layout tensor. */
export function toTfjsLayout(tensor: WeightTensor, shape: readonly number[]): tf.Tensor {
  const converted = permuteData(tensor.data, shape, weightToTfjsPermutation(shape.length));
  return tf.tensor(converted.data, converted.shape, 'float32');
}

/** A tfjs-layout tensor → IR-layout data of shape `shape` (synchronous read: not on webgpu). */
export function fromTfjsLayout(tensor: tf.Tensor, shape: readonly number[]): WeightTensor {
  const data = tensor.dataSync() as Float32Array;
  const converted = permuteData(data, tensor.shape, weightToIrPermutation(shape.length));
  return { shape: [...shape], data: converted.data };
}

/** `fromTfjsLayout` with an asynchronous read (every backend). */
export async function readFromTfjsLayout(tensor: tf.Tensor, shape: readonly number[]): Promise<WeightTensor> {
  const data = (await tensor.data()) as Float32Array;
  const converted = permuteData(data, tensor.shape, weightToIrPermutation(shape.length));
  return { shape: [...shape], data: converted.data };
}

/** A logical (channels-first) tensor in the engine's channels-last layout. */
export function toInternal(tensor: tf.Tensor): tf.Tensor {
  return tensor.rank >= 3 ? tf.transpose(tensor, toInternalPermutation(tensor.rank)) : tensor;
}

/** An engine (channels-last) tensor in the logical layout. */
export function toLogical(tensor: tf.Tensor): tf.Tensor {
  return tensor.rank >= 3 ? tf.transpose(tensor, toLogicalPermutation(tensor.rank)) : tensor;
}

function plainSymbol(dim: Dim): string | undefined {
  if (!isSymbolic(dim) || dim.terms.length !== 1) return undefined;
  const term = dim.terms[0]!;
  if (term.coefficient !== 1 || term.atoms.length !== 1) return undefined;
  const atom = term.atoms[0]!;
  return atom.kind === 'symbol' ? atom.name : undefined;
}

function checkShape(node: Node, output: tf.Tensor, expected: readonly Dim[], bindings: ReadonlyMap<string, number>): void {
  const actual = logicalShape(output.shape);
  // Only dimensions the IR states as numbers are checked: a symbolic formula can be coarser than the concrete
  // rule (ceil-mode pooling drops a last window that would start in the end padding only for known sizes).
  const mismatch = actual.length !== expected.length || expected.some((dim, axis) => typeof dim === 'number' && dim !== actual[axis]);
  if (mismatch) {
    const wanted = expected.map((d) => dimToString(evaluateDim(d, bindings))).join(', ');
    throw new LoweringError(node.name, `internal: produced [${actual.join(', ')}] where the IR infers [${wanted}]`);
  }
}

function describeWeightProblem(problem: { kind: string; name: string; expected?: readonly number[]; found?: readonly number[] }): string {
  switch (problem.kind) {
    case 'missing':
      return `${problem.name} is missing (expected [${problem.expected?.join(', ')}])`;
    case 'shape':
      return `${problem.name} has shape [${problem.found?.join(', ')}], expected [${problem.expected?.join(', ')}]`;
    default:
      return `${problem.name} is not a parameter of the graph`;
  }
}

/** `TfjsEngine.create` under the library's verb (`createEngine`, as the ARCHITECTURE's API list names it). */
export function createEngine(graph: Graph, weights?: Weights, options: TfjsEngineOptions = {}): Promise<TfjsEngine> {
  return TfjsEngine.create(graph, weights, options);
}

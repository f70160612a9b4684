/**
 * Forward and backward passes of a `TfjsEngine`'s graph on ONNX Runtime: what the trainer's gradient tape computes,
 * computed by the step graph of ./training-graph.ts with ONNX Runtime's native CPU kernels.
 *
 * The tfjs engine keeps owning the weights, the optimizer state and the batch-norm running statistics; each step
 * reads the parameters (tfjs layout → IR layout), runs the step graph, and hands back gradients in tfjs layout
 * keyed by variable name, exactly as `tf.variableGrads` would, plus the loss, the logits and the batch statistics.
 * One ONNX Runtime session per set of trained parameters (unfreezing a layer group changes the set).
 *
 * Dropout masks are drawn here from the step's dropout seed (`fillDropoutMask`, one stream per dropout node), keep
 * with probability 1 − rate and scale by 1/(1 − rate) as the tfjs engine does; the masks differ from tfjs's own
 * random stream, so a run on ONNX Runtime is reproducible with itself, not bit-identical with a tape run.
 */
import * as tf from '@tensorflow/tfjs';
import { deriveSeed } from '../../random.js';
import type { Node } from '../../ir/graph.js';
import type { BatchStatistics, EngineParameter, TfjsEngine } from '../tfjs/engine.js';
import { weightToIrPermutation, weightToTfjsPermutation, permuteData } from '../tfjs/layout.js';
import { OrtEngine, type OrtFloatTensor } from './engine.js';
import { buildTrainingGraph, STEP_INPUT, STEP_OUTPUT, type StepLoss, type TrainingGraph } from './training-graph.js';

export interface OrtStepWiring {
  /** The graph input fed with the images and the output trained as logits. */
  readonly input: string;
  readonly output: string;
  /** Sample dims without the batch axis, logical layout (NCHW). */
  readonly sampleDims: readonly number[];
  readonly classes: number;
}

export interface OrtStepBatch {
  /** Images, logical layout, `size` samples. */
  readonly x: Float32Array;
  readonly size: number;
  /** Loss targets [size, classes] (one-hot or smoothed). */
  readonly targets: Float32Array;
  readonly dropoutSeed: number;
}

export interface OrtStepResult {
  readonly lossValue: number;
  readonly logits: Float32Array;
  /** Gradients in tfjs layout by variable name (the caller disposes them). */
  readonly gradients: Map<string, tf.Tensor>;
  /** Batch mean and biased variance of the batch norms in training mode (the caller disposes them). */
  readonly statistics: BatchStatistics[];
}

export class OrtTrainingStep {
  private readonly sessions = new Map<string, Promise<{ session: OrtEngine; plan: TrainingGraph }>>();
  /** The graph's nodes by name, for the batch statistics each step reports. */
  private readonly nodes: ReadonlyMap<string, Node>;

  constructor(
    private readonly engine: TfjsEngine,
    private readonly wiring: OrtStepWiring,
    /** ONNX Runtime's intra-op threads. */
    private readonly threads: number,
    private readonly loss: StepLoss = 'cross_entropy',
  ) {
    this.nodes = new Map(engine.graph.nodes.map((n) => [n.name, n]));
  }

  /**
   * Builds (or reuses) the step graph for these trained parameters; throws `TrainingGraphError` for a graph it
   * cannot express, so a trainer can refuse before the first batch.
   */
  prepare(trained: readonly EngineParameter[]): Promise<{ session: OrtEngine; plan: TrainingGraph }> {
    const names = trained.map((p) => p.spec.name);
    const key = names.join('\n');
    let entry = this.sessions.get(key);
    if (!entry) {
      const plan = buildTrainingGraph(this.engine.graph, { input: this.wiring.input, output: this.wiring.output, trained: new Set(names), threads: this.threads, loss: this.loss, sampleDims: this.wiring.sampleDims });
      entry = OrtEngine.create(plan.model, { intraOpThreads: this.threads, interOpThreads: 1, logSeverity: 'error', label: `${this.engine.graph.name} training step` }).then((session) => ({ session, plan }));
      this.sessions.set(key, entry);
    }
    return entry;
  }

  async run(batch: OrtStepBatch, trained: readonly EngineParameter[]): Promise<OrtStepResult> {
    const { session, plan } = await this.prepare(trained);
    const feeds: Record<string, OrtFloatTensor> = {
      [this.wiring.input]: { data: batch.x, dims: [batch.size, ...this.wiring.sampleDims] },
      [STEP_INPUT.targets]: { data: batch.targets, dims: [batch.size, this.wiring.classes] },
      [STEP_INPUT.inverseBatch]: { data: new Float32Array([1 / batch.size]), dims: [] },
    };
    for (const name of plan.parameters) {
      const parameter = this.engine.parameters.get(name)!;
      const shape = parameter.variable.shape;
      const value = parameter.variable.dataSync() as Float32Array;
      const ir = shape.length >= 2 ? permuteData(value, shape, weightToIrPermutation(shape.length)).data : value;
      feeds[name] = { data: ir, dims: parameter.spec.shape };
    }
    plan.dropoutMasks.forEach((mask, index) => {
      const data = new Float32Array(batch.size * mask.sampleShape.reduce((a, b) => a * b, 1));
      fillDropoutMask(data, mask.rate, deriveSeed(batch.dropoutSeed, index));
      feeds[mask.input] = { data, dims: [batch.size, ...mask.sampleShape] };
    });
    const outputs = await session.run(feeds);
    const gradients = new Map<string, tf.Tensor>();
    for (const [name, output] of plan.gradients) {
      const parameter = this.engine.parameters.get(name)!;
      const ir = outputs[output]!;
      const rank = parameter.spec.shape.length;
      const data = rank >= 2 ? permuteData(ir.data, parameter.spec.shape, weightToTfjsPermutation(rank)).data : ir.data;
      gradients.set(parameter.variable.name, tf.tensor(data, parameter.variable.shape, 'float32'));
    }
    const statistics: BatchStatistics[] = [...plan.batchStatistics].map(([node, names]) => ({
      node: this.nodes.get(node)!,
      mean: tf.tensor1d(outputs[names.mean]!.data, 'float32'),
      variance: tf.tensor1d(outputs[names.variance]!.data, 'float32'),
    }));
    return { lossValue: outputs[STEP_OUTPUT.loss]!.data[0]!, logits: outputs[STEP_OUTPUT.logits]!.data, gradients, statistics };
  }

  async dispose(): Promise<void> {
    const entries = [...this.sessions.values()];
    this.sessions.clear();
    for (const entry of entries) await (await entry).session.dispose();
  }
}

/**
 * Inverted-dropout keep mask: 1/(1 − rate) with probability 1 − rate, else 0. Mulberry32 (the generator of
 * ../../random.ts) written inline, each 32-bit draw deciding two elements by its 16-bit halves: the masks of a
 * Fashion-MNIST CNN step are 600,000 draws, 8 ms of a 150 ms step with one draw per element through a closure.
 * The drop probability is `rate` rounded to a multiple of 2⁻¹⁶ (exact for 0.25 or 0.5; 0.1 becomes 0.100006).
 */
export function fillDropoutMask(data: Float32Array, rate: number, seed: number): void {
  const threshold = Math.round(rate * 65536);
  const keep = 1 / (1 - rate);
  let state = seed >>> 0;
  for (let i = 0; i < data.length; i += 2) {
    state = (state + 0x6d2b79f5) >>> 0;
    let mixed = state;
    mixed = Math.imul(mixed ^ (mixed >>> 15), mixed | 1);
    mixed ^= mixed + Math.imul(mixed ^ (mixed >>> 7), mixed | 61);
    mixed = (mixed ^ (mixed >>> 14)) >>> 0;
    data[i] = (mixed & 0xffff) >= threshold ? keep : 0;
    if (i + 1 < data.length) data[i + 1] = mixed >>> 16 >= threshold ? keep : 0;
  }
}

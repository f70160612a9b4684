/**
 * Training and evaluation of a `TfjsEngine` on an image-classification `Dataset`.
 *
 * One optimizer step on a batch (x, y):
 *   1. forward in training mode (batch statistics in non-frozen batch norms, dropout masks seeded by
 *      deriveSeed(seed, epoch, 3, batch)), logits z = the chosen output as [N, K];
 *   2. L = loss(z, y) + Σ_nodes l1·Σ|w| + l2·Σw² over the `weight` of every non-frozen node with an l1/l2
 *      regulariser (Keras's convention: l2(λ) adds λ·Σw², whose gradient is 2λw);
 *   3. gradients of L with respect to the trainable parameters only (frozen nodes' parameters and BN running
 *      statistics are not variables of the tape, so they stay bit-identical);
 *   4. clipping by global norm c: every gradient is scaled by min(1, c/‖g‖₂) with ‖g‖₂ over all of them;
 *   5. the optimizer update (./optimizers.ts) at the learning rate of this step (./schedules.ts);
 *   6. max-norm constraints: each output unit's incoming weights w_u ← w_u·min(1, c/‖w_u‖₂) (Keras MaxNorm);
 *   7. running statistics of the non-frozen batch norms: running ← m·running + (1 − m)·batch.
 * The reported training loss is the data loss (no regulariser), comparable with the validation loss.
 *
 * Steps 1–3 run on the engine's gradient tape, or with `gradients: 'ort'` on ONNX Runtime: the step graph of
 * ../ort/training-graph.ts computes the data loss and its gradients and the batch statistics with native CPU kernels
 * (dropout masks from the same per-batch seed), and the regularisers' gradients are added here; steps 4–7 are the
 * same either way.
 *
 * Reproducibility: batches come from `iterateBatches` with (seed, epoch), dropout masks from (seed, epoch,
 * batch), learning rates from the step number; a checkpoint written at the end of an epoch holds weights,
 * optimizer state, step and history, so a resumed run produces the same weights as an uninterrupted one.
 *
 * Fine-tuning (./layer-groups.ts): `unfreeze` steps let frozen layers join training after some epochs, and
 * learning-rate scales give layer groups their own rate: the parameters of a group with scale σ are updated at
 * σ·η (one optimizer per distinct scale, so Adam's moments and SGD's momentum stay per parameter as before, and
 * AdamW's decoupled decay scales with the group's rate, as in PyTorch's parameter groups). Frozen parameters that
 * have not started training are not variables of the tape and stay bit-identical.
 *
 * Early stopping watches the validation loss (the training loss without validation data): an epoch improves
 * when its loss is below the best by more than `minDelta`; after `patience` epochs without improvement training
 * stops, and with `restoreBest` the best weights are put back.
 */
import { availableParallelism } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import type { Node } from '../../ir/graph.js';
import type { WeightTensor } from '../../ir/weights.js';
import { deriveSeed } from '../../random.js';
import { graphFingerprint, writeCheckpoint, type JsonValue, type TrainingCheckpoint } from '../checkpoint.js';
import { countBatches, firstSamples, iterateBatches, sampleSize, type AugmentationOptions, type Dataset } from '../data/dataset.js';
import { EngineError, toInternal, type BatchStatistics, type EngineParameter, type TfjsEngine } from './engine.js';
import { computeLoss, countCorrect, lossTargets, type LossKind, type LossOptions } from './losses.js';
import { Optimizer, type OptimizerOptions } from './optimizers.js';
import { learningRateAt, type ScheduleOptions, type WarmupOptions } from './schedules.js';
import { planLayerGroups, readUnfreezeSetting, type LearningRateScale, type UnfreezeStep } from './layer-groups.js';
import type { SettingValue } from '../../ir/graph.js';
import type { Dim } from '../../ir/dims.js';
import type { OrtTrainingStep } from '../ort/training-step.js';
import { buildTrainingGraph, TrainingGraphError } from '../ort/training-graph.js';

/** Training that cannot start or go on as asked (bad options, a checkpoint of another model…). */
export class TrainingError extends Error {
  override readonly name = 'TrainingError';
}

export interface EarlyStoppingOptions {
  /** Epochs without improvement before stopping. */
  readonly patience: number;
  /** Smallest decrease of the monitored loss that counts as an improvement; default 0. */
  readonly minDelta?: number;
  /** Put back the best weights when training ends (stopped or not); default true. */
  readonly restoreBest?: boolean;
}

export interface CheckpointOptions {
  readonly path: string;
  /** Write every this many epochs (and after the last one); default 1. */
  readonly everyEpochs?: number;
}

export interface TrainOptions {
  /** Total epochs (a resumed run continues up to this number). */
  readonly epochs: number;
  readonly batchSize: number;
  /** Default cross-entropy. */
  readonly loss?: LossKind | LossOptions;
  /** Label smoothing ε (overrides the one in `loss`). */
  readonly labelSmoothing?: number;
  /** Default Adam with learning rate 1e-3. */
  readonly optimizer?: OptimizerOptions;
  readonly schedule?: ScheduleOptions;
  readonly warmup?: WarmupOptions;
  /** Clip gradients to this global L2 norm. */
  readonly clipNorm?: number;
  /** Seed of data order, augmentation and dropout; default the engine's seed (or the resumed checkpoint's). */
  readonly seed?: number;
  /** Shuffle every epoch; default true. */
  readonly shuffle?: boolean;
  readonly augmentation?: AugmentationOptions;
  /** Validation data, evaluated after every epoch. */
  readonly validation?: Dataset;
  readonly earlyStopping?: EarlyStoppingOptions;
  /** Extra top-k accuracies to report (e.g. [5]). */
  readonly topK?: readonly number[];
  readonly checkpoint?: CheckpointOptions;
  /** Continue from this checkpoint (see `readCheckpoint`). */
  readonly resume?: TrainingCheckpoint;
  /** Resume even when the checkpoint's spec hash differs from this graph's. */
  readonly allowSpecMismatch?: boolean;
  /** Graph input fed with the images; default the only one. */
  readonly input?: string;
  /** Graph output trained as logits [N, K]; default the first. */
  readonly output?: string;
  /** Stops after the current batch when aborted. */
  readonly signal?: AbortSignal;
  /**
   * Frozen layers that start training after some epochs: steps, or the spec's `unfreeze` setting as written
   * (`[[3, "stage4"], [5, "stage3", 0.1]]`, see ./layer-groups.ts).
   */
  readonly unfreeze?: readonly UnfreezeStep[] | SettingValue;
  /** Learning-rate multipliers of layer groups (discriminative learning rates); later entries win. */
  readonly learningRateScales?: readonly LearningRateScale[];
  /**
   * Where forward and backward passes run: `tfjs`, the engine's gradient tape (default), or `ort`, the step graph
   * on ONNX Runtime's native CPU kernels (../ort/training-step.ts; cross-entropy classifiers of the ops it
   * lists). The optimizer, weights and statistics stay in the engine either way.
   */
  readonly gradients?: GradientEngine;
  /** ONNX Runtime's intra-op threads with `gradients: 'ort'`; default 1. */
  readonly ortThreads?: number;
}

export type GradientEngine = 'tfjs' | 'ort';

export interface BatchProgress {
  /** 1-based epoch and batch numbers. */
  readonly epoch: number;
  readonly epochs: number;
  readonly batch: number;
  readonly batches: number;
  /** Optimizer steps taken so far, this one included. */
  readonly step: number;
  /** This batch's data loss and accuracy. */
  readonly loss: number;
  readonly accuracy: number;
  /** Means over the epoch so far. */
  readonly epochLoss: number;
  readonly epochAccuracy: number;
  readonly learningRate: number;
  /** This batch's throughput, forward + backward + update. */
  readonly imagesPerSecond: number;
}

export interface EvaluationResult {
  readonly loss: number;
  readonly accuracy: number;
  /** `top5` → accuracy, for each requested k. */
  readonly topK: Readonly<Record<string, number>>;
  readonly count: number;
}

export interface EpochSummary {
  /** 1-based. */
  readonly epoch: number;
  readonly loss: number;
  readonly accuracy: number;
  readonly topK: Readonly<Record<string, number>>;
  readonly validation?: EvaluationResult;
  /** Learning rate of the epoch's last step. */
  readonly learningRate: number;
  readonly seconds: number;
  readonly imagesPerSecond: number;
}

export type StopReason = 'completed' | 'early-stopping' | 'aborted' | 'non-finite-loss';

export interface TrainingHistory {
  readonly epochs: EpochSummary[];
  readonly stopReason: StopReason;
  /** Epochs already done when this run started (from a resumed checkpoint). */
  readonly startEpoch: number;
  readonly bestEpoch?: number;
  readonly bestLoss?: number;
}

export interface TrainCallbacks {
  onBatchEnd?(progress: BatchProgress): void | Promise<void>;
  onEpochEnd?(summary: EpochSummary): void | Promise<void>;
  onCheckpoint?(path: string, epoch: number): void | Promise<void>;
}

export interface EvaluateOptions {
  readonly batchSize?: number;
  /** Where the forward passes run: the engine (default) or ONNX Runtime on the model exported with the engine's weights. */
  readonly runtime?: 'tfjs' | 'ort';
  /** ONNX Runtime's intra-op threads with `runtime: 'ort'`; default 1. */
  readonly ortThreads?: number;
  readonly loss?: LossKind | LossOptions;
  readonly topK?: readonly number[];
  readonly input?: string;
  readonly output?: string;
}

// ---------------------------------------------------------------------------------------------------------------

function lossOptionsOf(loss: LossKind | LossOptions | undefined, labelSmoothing: number | undefined): LossOptions {
  const base: LossOptions = typeof loss === 'string' ? { kind: loss } : (loss ?? { kind: 'cross_entropy' });
  const smoothing = labelSmoothing ?? base.labelSmoothing ?? 0;
  if (!(smoothing >= 0 && smoothing < 1)) throw new TrainingError(`label smoothing must be in [0, 1), got ${smoothing}`);
  return { kind: base.kind, labelSmoothing: smoothing };
}

interface Wiring {
  readonly input: string;
  readonly output: string;
  /** Sample dims without the batch axis, logical layout. */
  readonly sampleDims: number[];
  readonly classes: number;
}

/**
 * The sizes of one sample of `input` (no batch axis, logical layout): the declared ones, and for an image batch
 * [N, C, H, W] with symbolic sizes the data's.
 */
export function sampleDimsOf(input: { readonly name: string; readonly shape: readonly Dim[] }, dataset: Pick<Dataset, 'shape'>): number[] {
  const declared = input.shape.slice(1);
  const [channels, height, width] = dataset.shape;
  return declared.map((d, axis) => {
    if (typeof d === 'number') return d;
    // a symbolic size takes the dataset's when the input is an image batch [N, C, H, W]
    if (declared.length === 3) return [channels, height, width][axis]!;
    throw new TrainingError(`input '${input.name}' has a symbolic size on axis ${axis + 1}; only [N, C, H, W] inputs take their sizes from the data`);
  });
}

/** Which input and output to use, the shape of one sample and the number of classes. */
function wire(engine: TfjsEngine, dataset: Dataset, input: string | undefined, output: string | undefined): Wiring {
  const graph = engine.graph;
  const inputDecl = input ? graph.inputs.find((i) => i.name === input) : graph.inputs.length === 1 ? graph.inputs[0] : undefined;
  if (!inputDecl) throw new TrainingError(input ? `${graph.name} has no input '${input}'` : `${graph.name} has ${graph.inputs.length} inputs; say which one the images feed`);
  const outputDecl = output ? graph.outputs.find((o) => o.name === output) : graph.outputs[0];
  if (!outputDecl) throw new TrainingError(output ? `${graph.name} has no output '${output}'` : `${graph.name} has no outputs`);
  const sampleDims = sampleDimsOf(inputDecl, dataset);
  const count = sampleDims.reduce((a, b) => a * b, 1);
  if (count !== sampleSize(dataset)) {
    throw new TrainingError(`input '${inputDecl.name}' takes samples of [${sampleDims.join(', ')}] (${count} values) but the data's samples are [${dataset.shape.join(', ')}] (${sampleSize(dataset)} values)`);
  }
  const outputNode = graph.nodes.find((n) => n.name === outputDecl.value);
  const outShape = outputNode?.shape ?? [];
  const classes = outShape[1];
  if (outShape.length < 2 || typeof classes !== 'number' || outShape.slice(2).some((d) => d !== 1)) {
    throw new TrainingError(`output '${outputDecl.name}' must be class scores [N, K] to train a classifier`);
  }
  let maxLabel = -1;
  for (const label of dataset.labels) if (label > maxLabel) maxLabel = label;
  if (classes > 1 && maxLabel >= classes) throw new TrainingError(`the data has label ${maxLabel} but output '${outputDecl.name}' has ${classes} classes`);
  if (classes === 1 && maxLabel > 1) throw new TrainingError(`output '${outputDecl.name}' has one unit (binary) but the data has label ${maxLabel}`);
  return { input: inputDecl.name, output: outputDecl.name, sampleDims, classes };
}

/** The engine output as [N, K] logits. */
function asLogits(output: tf.Tensor): tf.Tensor2D {
  if (output.rank === 2) return output as tf.Tensor2D;
  return tf.reshape(output, [output.shape[0]!, output.shape[output.rank - 1]!]);
}

/** Regularisers of the layers being trained (`training`: their names). */
function regularizationLoss(engine: TfjsEngine, training: ReadonlySet<string>): tf.Scalar | undefined {
  const terms: tf.Tensor[] = [];
  for (const node of engine.graph.nodes) {
    if (!training.has(node.name) || node.regularizers.length === 0) continue;
    const weight = engine.parameter(node.name, 'weight');
    if (!weight) continue;
    for (const regularizer of node.regularizers) {
      if (regularizer.kind === 'l1' && regularizer.factor > 0) terms.push(tf.mul(tf.sum(tf.abs(weight.variable)), regularizer.factor));
      if (regularizer.kind === 'l2' && regularizer.factor > 0) terms.push(tf.mul(tf.sum(tf.square(weight.variable)), regularizer.factor));
    }
  }
  if (terms.length === 0) return undefined;
  return (terms.length === 1 ? terms[0]! : tf.addN(terms)) as tf.Scalar;
}

/** What one forward and backward pass yields. */
interface StepOutcome {
  readonly lossValue: number;
  readonly logits: Float32Array;
  /** By variable name, tfjs layout; the caller disposes them. */
  readonly gradients: Map<string, tf.Tensor>;
  /** Batch statistics of the batch norms in training mode; the caller disposes them. */
  readonly statistics: BatchStatistics[];
}

/**
 * Adds the gradients of the l1/l2 regularisers (λ·sign(w), 2λ·w) of the trained weights to data-loss gradients:
 * what the tape gets from `regularizationLoss` when the data loss is differentiated elsewhere.
 */
function addRegularizationGradients(trained: readonly EngineParameter[], gradients: Map<string, tf.Tensor>): Map<string, tf.Tensor> {
  const result = new Map(gradients);
  for (const p of trained) {
    if (p.spec.role !== 'weight') continue;
    const gradient = gradients.get(p.variable.name);
    if (!gradient) continue;
    const terms = p.node.regularizers.flatMap((r) => {
      if (r.kind === 'l1' && r.factor > 0) return [tf.mul(tf.sign(p.variable), r.factor)];
      if (r.kind === 'l2' && r.factor > 0) return [tf.mul(p.variable, 2 * r.factor)];
      return [];
    });
    if (terms.length > 0) {
      result.set(p.variable.name, tf.addN([gradient, ...terms]));
      tf.dispose(terms);
    }
  }
  return result;
}

/** Max-norm constraints, per output unit: every axis but the output-channel axis of the tfjs layout. */
function applyMaxNorm(engine: TfjsEngine, training: ReadonlySet<string>): void {
  tf.tidy(() => {
    for (const node of engine.graph.nodes) {
      if (!training.has(node.name)) continue;
      const limit = node.regularizers.find((r) => r.kind === 'max_norm');
      if (!limit || limit.kind !== 'max_norm') continue;
      const weight = engine.parameter(node.name, 'weight');
      if (!weight) continue;
      const w = weight.variable;
      // conv [K…, I/g, O] and dense [I, O]: the output unit is the last axis; transposed conv [K…, O/g, I]: axis −2
      const unitAxis = node.op === 'conv_transpose' ? w.rank - 2 : w.rank - 1;
      const axes = w.shape.map((_, axis) => axis).filter((axis) => axis !== unitAxis);
      const norms = tf.sqrt(tf.sum(tf.square(w), axes, true));
      w.assign(tf.mul(w, tf.div(tf.clipByValue(norms, 0, limit.value), tf.add(norms, 1e-7))));
    }
  });
}

function clipByGlobalNorm(gradients: Map<string, tf.Tensor>, clipNorm: number): Map<string, tf.Tensor> {
  const list = [...gradients.values()];
  if (list.length === 0) return gradients;
  const squares = list.map((g) => tf.sum(tf.square(g)));
  const norm = tf.sqrt(squares.length === 1 ? squares[0]! : tf.addN(squares));
  const scale = tf.minimum(1, tf.div(clipNorm, tf.maximum(norm, 1e-12)));
  return new Map([...gradients].map(([name, g]) => [name, tf.mul(g, scale)]));
}

function batchTensor(x: Float32Array, size: number, sampleDims: readonly number[]): tf.Tensor {
  return toInternal(tf.tensor(x, [size, ...sampleDims], 'float32'));
}

// ---------------------------------------------------------------------------------------------------------------

/** Loss, accuracy and top-k accuracies on a dataset, in inference mode. */
export async function evaluate(engine: TfjsEngine, dataset: Dataset, options: EvaluateOptions = {}): Promise<EvaluationResult> {
  const wiring = wire(engine, dataset, options.input, options.output);
  const loss = lossOptionsOf(options.loss, undefined);
  const topK = [...(options.topK ?? [])];
  let lossSum = 0;
  let correct = 0;
  const hits = topK.map(() => 0);
  // loaded on demand, as for training: the native module only when asked for
  const ort = options.runtime === 'ort' ? await (await import('../ort/forward.js')).createOrtForward(engine, wiring, options.ortThreads ?? 1) : undefined;
  try {
    for (const batch of iterateBatches(dataset, { batchSize: options.batchSize ?? 256 })) {
      const targets = () => lossTargets(batch.y, wiring.classes, loss);
      let lossValue: number;
      let logits: Float32Array;
      if (ort) {
        logits = await ort.run(batch.x, batch.size);
        lossValue = tf.tidy(() => computeLoss(tf.tensor2d(logits, [batch.size, wiring.classes]), targets(), loss).dataSync()[0]!);
      } else {
        const [value, z] = tf.tidy(() => {
          const feeds = new Map([[wiring.input, batchTensor(batch.x, batch.size, wiring.sampleDims)]]);
          const outputs = engine.forward(feeds, { training: false, releaseIntermediates: true });
          const zs = asLogits(outputs.get(wiring.output)!);
          return [computeLoss(zs, targets(), loss), tf.clone(zs)];
        });
        const [lossData, logitData] = await readAndDispose(value, z);
        lossValue = lossData![0]!;
        logits = logitData!;
      }
      lossSum += lossValue * batch.size;
      const counted = countCorrect(logits, batch.y, wiring.classes, topK);
      correct += counted.top1;
      counted.topK.forEach((h, i) => (hits[i]! += h));
    }
  } finally {
    await ort?.dispose();
  }
  const count = dataset.count;
  return {
    loss: count > 0 ? lossSum / count : Number.NaN,
    accuracy: count > 0 ? correct / count : Number.NaN,
    topK: Object.fromEntries(topK.map((k, i) => [`top${k}`, count > 0 ? hits[i]! / count : Number.NaN])),
    count,
  };
}

export interface RecalibrationOptions {
  /** Training samples to estimate the statistics on (default 2,048; the data set when it has fewer). */
  readonly samples?: number;
  readonly batchSize?: number;
  readonly input?: string;
  readonly output?: string;
}

/**
 * Re-estimates the running mean and variance of every trainable batch norm from `samples` training images, in
 * training mode and without touching any weight: the mean of the batch means, and the pooled variance
 * (mean of batch variance + batch mean², minus the mean²). Returns the batch norms it re-estimated.
 *
 * After pruning, the running statistics describe a network that no longer exists: channels were removed or
 * weights zeroed upstream, so every following batch norm shifts and scales with stale numbers and a pruned
 * model often predicts one class (10 % on Fashion-MNIST) until it is fine-tuned. Re-estimating them is the
 * "adaptive batch norm" of EagleEye (Li et al. 2020) and what Torch-Pruning's and NNI's examples do before
 * judging a pruned model; it costs forward passes only.
 */
export async function recalibrateBatchNorm(engine: TfjsEngine, dataset: Dataset, options: RecalibrationOptions = {}): Promise<string[]> {
  const wiring = wire(engine, dataset, options.input, options.output);
  const subset = firstSamples(dataset, options.samples ?? 2048);
  const sums = new Map<string, { node: Node; weight: number; mean: tf.Tensor; square: tf.Tensor }>();
  for (const batch of iterateBatches(subset, { batchSize: options.batchSize ?? 128 })) {
    tf.tidy(() => {
      const feeds = new Map([[wiring.input, batchTensor(batch.x, batch.size, wiring.sampleDims)]]);
      engine.forward(feeds, {
        training: true,
        seed: 0,
        onBatchStatistics: ({ node, mean, variance }) => {
          const square = tf.add(variance, tf.square(mean));
          const previous = sums.get(node.name);
          const weighted = (t: tf.Tensor) => tf.mul(t, batch.size);
          const next = previous
            ? { node, weight: previous.weight + batch.size, mean: tf.keep(tf.add(previous.mean, weighted(mean))), square: tf.keep(tf.add(previous.square, weighted(square))) }
            : { node, weight: batch.size, mean: tf.keep(weighted(mean)), square: tf.keep(weighted(square)) };
          if (previous) tf.dispose([previous.mean, previous.square]);
          sums.set(node.name, next);
        },
      });
    });
  }
  tf.tidy(() => {
    for (const { node, weight, mean, square } of sums.values()) {
      const m = tf.div(mean, weight);
      engine.parameter(node.name, 'running_mean')!.variable.assign(m);
      engine.parameter(node.name, 'running_var')!.variable.assign(tf.relu(tf.sub(tf.div(square, weight), tf.square(m))));
    }
  });
  for (const { mean, square } of sums.values()) tf.dispose([mean, square]);
  return [...sums.keys()];
}

/** Reads tensors asynchronously (every backend can), then disposes them. */
async function readAndDispose(...tensors: tf.Tensor[]): Promise<Float32Array[]> {
  try {
    return await Promise.all(tensors.map(async (t) => Float32Array.from((await t.data()) as Float32Array)));
  } finally {
    tf.dispose(tensors);
  }
}

interface TrainerState {
  bestLoss: number;
  bestEpoch: number;
  wait: number;
}

/**
 * Trains `engine` on `dataset` (see the module header). Returns the history; the engine holds the trained
 * weights (the best ones when early stopping restores them).
 */
export async function trainModel(engine: TfjsEngine, dataset: Dataset, options: TrainOptions, callbacks: TrainCallbacks = {}): Promise<TrainingHistory> {
  if (!Number.isInteger(options.epochs) || options.epochs < 0) throw new TrainingError(`epochs must be a non-negative integer, got ${options.epochs}`);
  if (!Number.isInteger(options.batchSize) || options.batchSize <= 0) throw new TrainingError(`the batch size must be a positive integer, got ${options.batchSize}`);
  if (options.clipNorm !== undefined && !(options.clipNorm > 0)) throw new TrainingError(`clipNorm must be positive, got ${options.clipNorm}`);
  if (dataset.count === 0) throw new TrainingError('the training data is empty');
  const wiring = wire(engine, dataset, options.input, options.output);
  if (options.validation) wire(engine, options.validation, options.input, options.output);
  const loss = lossOptionsOf(options.loss, options.labelSmoothing);
  const topK = [...(options.topK ?? [])];
  const specHash = graphFingerprint(engine.graph);
  const resume = options.resume;
  if (resume && options.seed !== undefined && options.seed !== resume.metadata.seed) {
    throw new TrainingError(`the checkpoint was trained with seed ${resume.metadata.seed}; resuming with seed ${options.seed} would not continue the same run`);
  }
  const seed = options.seed ?? resume?.metadata.seed ?? engine.seed;
  const optimizerOptions: OptimizerOptions = options.optimizer ?? { kind: 'adam', learningRate: 1e-3 };
  // Layer groups: frozen parameters scheduled to start training, and learning-rate scales.
  const unfreeze = readUnfreezeSetting(options.unfreeze);
  const { plan, problems } = planLayerGroups(engine.graph, unfreeze.steps, options.learningRateScales ?? []);
  if (unfreeze.problems.length + problems.length > 0) throw new TrainingError([...unfreeze.problems, ...problems].join('; '));
  const startEpochOf = (p: EngineParameter) => (p.trainable ? 0 : (plan.startEpoch.get(p.node.name) ?? Number.POSITIVE_INFINITY));
  const optimized = [...engine.parameters.values()].filter((p) => p.spec.learnable && Number.isFinite(startEpochOf(p)));
  // One optimizer per learning-rate scale; the first (scale 1 when any parameter has it) reports the step.
  const byScale = new Map<number, EngineParameter[]>([[1, []]]);
  for (const p of optimized) {
    const scale = plan.scale.get(p.node.name) ?? 1;
    byScale.set(scale, [...(byScale.get(scale) ?? []), p]);
  }
  if (byScale.get(1)!.length === 0 && byScale.size > 1) byScale.delete(1);
  const optimizers = [...byScale].map(([scale, parameters]) => ({ scale, optimizer: new Optimizer(optimizerOptions, parameters) }));
  const optimizer = optimizers[0]!.optimizer;
  // loaded on demand: ONNX Runtime's native module is not needed by a run on the tape
  const ortStep: OrtTrainingStep | undefined = options.gradients === 'ort' ? new (await import('../ort/training-step.js')).OrtTrainingStep(engine, wiring, options.ortThreads ?? 1, loss.kind) : undefined;
  /** Parameters whose tfjs variable this run made trainable (frozen ones that started training): reset at the end. */
  const thawed: EngineParameter[] = [];
  const history: EpochSummary[] = [];
  const state: TrainerState = { bestLoss: Number.POSITIVE_INFINITY, bestEpoch: 0, wait: 0 };
  let bestWeights: Map<string, WeightTensor> | undefined;
  let startEpoch = 0;

  try {
    if (resume) {
      if (resume.metadata.specHash !== specHash && !options.allowSpecMismatch) {
        throw new TrainingError(`the checkpoint belongs to another model (spec hash ${resume.metadata.specHash.slice(0, 12)}…, this graph ${specHash.slice(0, 12)}…)`);
      }
      if (resume.metadata.optimizer['kind'] !== optimizer.kind) {
        throw new TrainingError(`the checkpoint holds ${String(resume.metadata.optimizer['kind'])} state; this run uses ${optimizer.kind}`);
      }
      try {
        engine.setWeights(resume.weights);
      } catch (error) {
        if (error instanceof EngineError) throw new TrainingError(`the checkpoint's weights do not fit: ${error.message}`);
        throw error;
      }
      for (const { optimizer: each } of optimizers) each.setState(resume.optimizerState, resume.metadata.step);
      history.push(...(resume.metadata.history as unknown as EpochSummary[]));
      startEpoch = resume.metadata.epoch;
      const trainer = resume.metadata.trainer;
      if (typeof trainer['bestLoss'] === 'number') state.bestLoss = trainer['bestLoss'];
      if (typeof trainer['bestEpoch'] === 'number') state.bestEpoch = trainer['bestEpoch'];
      if (typeof trainer['wait'] === 'number') state.wait = trainer['wait'];
      bestWeights = resume.bestWeights;
    }

    const batches = countBatches(dataset, { batchSize: options.batchSize });
    const scheduleContext = { stepsPerEpoch: batches, totalSteps: batches * options.epochs };
    const restoreBest = options.earlyStopping ? (options.earlyStopping.restoreBest ?? true) : false;
    let stopReason: StopReason = 'completed';

    for (let epochIndex = startEpoch; epochIndex < options.epochs && stopReason === 'completed'; epochIndex++) {
      const epochStart = performance.now();
      // The parameters trained this epoch: the trainable ones, and frozen ones whose unfreeze epoch has come.
      const active = optimized.filter((p) => startEpochOf(p) <= epochIndex);
      for (const p of active) {
        if (!p.variable.trainable) {
          p.variable.trainable = true;
          thawed.push(p);
        }
      }
      const variables = active.map((p) => p.variable);
      const training = new Set(active.map((p) => p.node.name));
      if (ortStep) {
        try {
          await ortStep.prepare(active);
        } catch (error) {
          if (error instanceof Error && error.name === 'TrainingGraphError') throw new TrainingError(error.message);
          // a step graph ONNX Runtime refuses to load: the tape can still train the model
          if (error instanceof Error && error.name === 'OrtEngineError') throw new TrainingError(`${error.message}; train with the tfjs engine (--engine tfjs)`);
          throw error;
        }
      }
      let lossSum = 0;
      let correct = 0;
      let seen = 0;
      const hits = topK.map(() => 0);
      let learningRate = optimizerOptions.learningRate;
      let batchIndex = 0;
      let lastTime = performance.now();
      for (const batch of iterateBatches(dataset, { batchSize: options.batchSize, shuffle: options.shuffle ?? true, seed, epoch: epochIndex, augmentation: options.augmentation })) {
        if (options.signal?.aborted) {
          stopReason = 'aborted';
          break;
        }
        learningRate = learningRateAt(optimizerOptions.learningRate, optimizer.step, options.schedule, options.warmup, scheduleContext);
        const dropoutSeed = deriveSeed(seed, epochIndex, 3, batchIndex);
        const { lossValue, logits, gradients, statistics } = ortStep
          ? await ortGradientStep(ortStep, batch.x, batch.size, batch.y, dropoutSeed, active)
          : await tapeStep(batch.x, batch.size, lossTargets(batch.y, wiring.classes, loss), dropoutSeed, variables, training);
        // a non-finite loss stops training before its gradients touch the weights
        if (Number.isFinite(lossValue) && gradients.size > 0) {
          for (const { scale, optimizer: each } of optimizers) each.apply(gradients, learningRate * scale);
        }
        tf.dispose([...gradients.values()]);
        if (!Number.isFinite(lossValue)) {
          for (const s of statistics) tf.dispose([s.mean, s.variance]);
          stopReason = 'non-finite-loss';
          break;
        }
        applyMaxNorm(engine, training);
        engine.updateRunningStatistics(statistics);
        for (const s of statistics) tf.dispose([s.mean, s.variance]);
        const counted = countCorrect(logits, batch.y, wiring.classes, topK);
        lossSum += lossValue * batch.size;
        correct += counted.top1;
        counted.topK.forEach((h, i) => (hits[i]! += h));
        seen += batch.size;
        batchIndex++;
        const now = performance.now();
        const progress: BatchProgress = {
          epoch: epochIndex + 1,
          epochs: options.epochs,
          batch: batchIndex,
          batches,
          step: optimizer.step,
          loss: lossValue,
          accuracy: counted.top1 / batch.size,
          epochLoss: lossSum / seen,
          epochAccuracy: correct / seen,
          learningRate,
          imagesPerSecond: (batch.size * 1000) / Math.max(now - lastTime, 1e-3),
        };
        lastTime = now;
        await callbacks.onBatchEnd?.(progress);
      }
      if (stopReason !== 'completed' || seen === 0) break;
      const seconds = (performance.now() - epochStart) / 1000;
      const validation = options.validation
        ? await evaluate(engine, options.validation, { batchSize: Math.max(options.batchSize, 256), loss, topK, input: wiring.input, output: wiring.output, ...(ortStep ? { runtime: 'ort' as const, ortThreads: options.ortThreads ?? 1 } : {}) })
        : undefined;
      const summary: EpochSummary = {
        epoch: epochIndex + 1,
        loss: lossSum / seen,
        accuracy: correct / seen,
        topK: Object.fromEntries(topK.map((k, i) => [`top${k}`, hits[i]! / seen])),
        ...(validation ? { validation } : {}),
        learningRate,
        seconds,
        imagesPerSecond: seen / Math.max(seconds, 1e-6),
      };
      history.push(summary);
      if (options.earlyStopping) {
        const monitored = validation ? validation.loss : summary.loss;
        if (monitored < state.bestLoss - (options.earlyStopping.minDelta ?? 0)) {
          state.bestLoss = monitored;
          state.bestEpoch = summary.epoch;
          state.wait = 0;
          if (restoreBest) bestWeights = await engine.getWeights();
        } else {
          state.wait++;
          if (state.wait >= options.earlyStopping.patience) stopReason = 'early-stopping';
        }
      }
      await callbacks.onEpochEnd?.(summary);
      const every = options.checkpoint?.everyEpochs ?? 1;
      const last = summary.epoch === options.epochs || stopReason !== 'completed';
      if (options.checkpoint && (summary.epoch % every === 0 || last)) {
        writeCheckpoint(options.checkpoint.path, {
          weights: await engine.getWeights(),
          optimizerState: await optimizerState(),
          ...(bestWeights ? { bestWeights } : {}),
          metadata: {
            epoch: summary.epoch,
            step: optimizer.step,
            seed,
            specHash,
            optimizer: optimizer.describe(),
            history: history as unknown as JsonValue[],
            trainer: {
              bestLoss: Number.isFinite(state.bestLoss) ? state.bestLoss : null,
              bestEpoch: state.bestEpoch,
              wait: state.wait,
            },
          },
        });
        await callbacks.onCheckpoint?.(options.checkpoint.path, summary.epoch);
      }
    }
    if (restoreBest && bestWeights) engine.setWeights(bestWeights);
    return {
      epochs: history,
      stopReason,
      startEpoch,
      ...(options.earlyStopping && Number.isFinite(state.bestLoss) ? { bestEpoch: state.bestEpoch, bestLoss: state.bestLoss } : {}),
    };
  } finally {
    await ortStep?.dispose();
    for (const { optimizer: each } of optimizers) each.dispose();
    for (const p of thawed) p.variable.trainable = false;
  }

  /**
   * Forward and backward on ONNX Runtime (the data loss's gradients), then the regularisers' gradients added and
   * the sum clipped when asked: what the tape step returns.
   */
  async function ortGradientStep(step: OrtTrainingStep, x: Float32Array, size: number, labels: Int32Array, dropoutSeed: number, trained: readonly EngineParameter[]): Promise<StepOutcome> {
    const targets = lossTargets(labels, wiring.classes, loss);
    const targetData = targets.dataSync() as Float32Array;
    targets.dispose();
    const result = await step.run({ x, size, targets: targetData, dropoutSeed }, trained);
    const regularized = addRegularizationGradients(trained, result.gradients);
    const clipped = options.clipNorm !== undefined ? clipByGlobalNorm(regularized, options.clipNorm) : regularized;
    const kept = new Set(clipped.values());
    tf.dispose([...new Set([...result.gradients.values(), ...regularized.values()])].filter((t) => !kept.has(t)));
    return { ...result, gradients: clipped };
  }

  /** Forward and backward on the engine's gradient tape; the gradients clipped when asked. */
  async function tapeStep(x: Float32Array, size: number, targets: tf.Tensor2D, dropoutSeed: number, variables: tf.Variable[], training: ReadonlySet<string>): Promise<StepOutcome> {
    const statistics: BatchStatistics[] = [];
    let gradientNames: string[] = [];
    const step = tf.tidy(() => {
      const feeds = new Map([[wiring.input, batchTensor(x, size, wiring.sampleDims)]]);
      let keptLogits: tf.Tensor | undefined;
      let keptLoss: tf.Tensor | undefined;
      const objective = (): tf.Scalar => {
        const outputs = engine.forward(feeds, {
          training: true,
          seed: dropoutSeed,
          onBatchStatistics: (s) => statistics.push({ node: s.node, mean: tf.keep(s.mean), variance: tf.keep(s.variance) }),
        });
        const z = asLogits(outputs.get(wiring.output)!);
        const dataLoss = computeLoss(z, targets, loss);
        keptLogits = tf.keep(tf.clone(z));
        keptLoss = tf.keep(tf.clone(dataLoss));
        const regularization = regularizationLoss(engine, training);
        return regularization ? tf.add(dataLoss, regularization) : dataLoss;
      };
      let gradients = new Map<string, tf.Tensor>();
      if (variables.length > 0) {
        gradients = new Map(Object.entries(tf.variableGrads(objective, variables).grads));
        if (options.clipNorm !== undefined) gradients = clipByGlobalNorm(gradients, options.clipNorm);
      } else {
        objective();
      }
      gradientNames = [...gradients.keys()];
      return { loss: keptLoss!, logits: keptLogits!, gradients: [...gradients.values()] };
    });
    targets.dispose();
    const [lossData, logits] = await readAndDispose(step.loss, step.logits);
    return { lossValue: lossData[0]!, logits: logits!, gradients: new Map(gradientNames.map((name, i) => [name, step.gradients[i]!])), statistics };
  }

  /** The state of every optimizer, in one map (their parameters are disjoint). */
  async function optimizerState(): Promise<Map<string, WeightTensor>> {
    const state = new Map<string, WeightTensor>();
    for (const { optimizer: each } of optimizers) for (const [name, tensor] of await each.getState()) state.set(name, tensor);
    return state;
  }
}

/**
 * Where forward and backward passes run, for a user's `--engine`. `auto` takes ONNX Runtime on the CPU backends
 * (wasm, cpu), where its native kernels beat the tape, when the step graph expresses the model and loss (with the
 * trainable parameters of now; unfreeze steps keep the same ops), and the tape on GPU backends, with the reason.
 * `ort` asked for explicitly and impossible is an error.
 */
export function chooseGradientEngine(asked: 'auto' | 'tfjs' | 'ort', engine: TfjsEngine, loss: LossKind | LossOptions | undefined, data: Dataset): { engine: GradientEngine; reason?: string } | { error: string } {
  if (asked === 'tfjs') return { engine: 'tfjs' };
  let problem: string | undefined;
  const input = engine.graph.inputs[0];
  const output = engine.graph.outputs[0];
  if (!input || !output) problem = `${engine.graph.name} needs an input and an output`;
  else {
    try {
      buildTrainingGraph(engine.graph, {
        input: input.name,
        output: output.name,
        trained: new Set(engine.trainableParameters().map((p) => p.spec.name)),
        loss: typeof loss === 'string' ? loss : (loss?.kind ?? 'cross_entropy'),
        sampleDims: sampleDimsOf(input, data),
      });
    } catch (error) {
      if (!(error instanceof TrainingGraphError) && !(error instanceof TrainingError)) throw error;
      problem = error.message;
    }
  }
  if (asked === 'ort') return problem ? { error: problem } : { engine: 'ort' };
  if (problem) return { engine: 'tfjs', reason: `ONNX Runtime skipped: ${problem}` };
  if (engine.backend.name !== 'wasm' && engine.backend.name !== 'cpu') return { engine: 'tfjs', reason: `the ${engine.backend.name} backend runs the tape on its own device` };
  return { engine: 'ort' };
}

/**
 * ONNX Runtime's threads when the user named none: CONVSPEC_WASM_THREADS when set (the wasm backend's count, so one
 * setting governs both), else every CPU Node reports, as PyTorch and TensorFlow use all cores by default. Runs
 * with the same count are bit-identical (the resume test relies on it); another count changes the rounding.
 */
export function defaultOrtThreads(): number {
  const fromEnvironment = Number(process.env['CONVSPEC_WASM_THREADS']);
  return Number.isInteger(fromEnvironment) && fromEnvironment > 0 ? fromEnvironment : Math.max(1, availableParallelism());
}

/** Parameters a training run updates, for summaries (frozen and BN running statistics excluded). */
export function trainableParameterCount(engine: TfjsEngine): number {
  return engine.trainableParameters().reduce((sum, p) => sum + p.spec.shape.reduce((a, b) => a * b, 1), 0);
}

/** Nodes whose parameters a training run leaves alone. */
export function frozenNodes(engine: TfjsEngine): Node[] {
  return engine.graph.nodes.filter((n) => n.frozen);
}

/**
 * Pruning with fine-tuning, as `convspec prune` runs it (the CLI parses, writes and prints):
 *
 * Structured (`prune-filters`): whole filters with the smallest L1 norms go, with everything that depends on them
 * (dependency groups through residual adds, concat, depthwise convs and batch norm); the graph itself shrinks, so
 * MACs, parameters, the exported file and run time all drop. The smaller graph is then fine-tuned as it is.
 *
 * Unstructured (`prune-magnitude`): the smallest-|w| weights of every conv and dense layer become zero, per layer.
 * With fine-tuning the sparsity follows TF-MOT's polynomial-decay schedule (PolynomialDecay, power 3):
 *     s_t = s_f + (s_i − s_f)·(1 − (t − t₀)/(t₁ − t₀))³   for t₀ ≤ t ≤ t₁, s_f after t₁
 * with s_i = 0 at t₀ = 0 (the first optimizer step) and s_f reached at t₁ = ⌈0.7·T⌉ of the T fine-tuning steps,
 * so the last 30 % of the steps recover at the final sparsity. Every `frequency` steps (⌈t₁/20⌉, at least 1; and at
 * t₁) the masks are recomputed from the current weights at s_t; after every optimizer step the masks are applied
 * again (pruned weights set back to 0), as TF-MOT's UpdatePruningStep does, so a pruned weight that the update
 * moved never survives into the next forward pass. Without fine-tuning the final sparsity is applied at once.
 * The graph is unchanged (the zeros are in the weights), so MACs as runtimes execute them stay; the report gives
 * the MACs over non-zero weights too, and the gzip size of the ONNX file, which the zeros do shrink.
 *
 * Batch norm: with training data, the running statistics are re-estimated right after pruning and again after
 * fine-tuning (`recalibrateBatchNorm`, EagleEye's adaptive batch norm): pruning leaves them describing the unpruned
 * network, which alone can drop a pruned model to chance accuracy.
 *
 * The report: parameters (and non-zero ones), MACs, ONNX size (and gzipped), accuracy on the test split (tfjs
 * engine; before pruning, right after it, after fine-tuning) and ONNX Runtime latency at batch 8 with 2 threads
 * of the inference exports before and after (alternating runs).
 */
import { gzipSync } from 'node:zlib';
import * as tf from '@tensorflow/tfjs';
import { emitOnnx } from '../codegen/onnx.js';
import type { Diagnostic } from '../diagnostics.js';
import { isWeighted, type Graph } from '../ir/graph.js';
import type { Weights } from '../ir/weights.js';
import { computeCost } from '../passes/cost.js';
import { excludedBy } from '../passes/graph-editor.js';
import '../passes/index.js';
import { resolvePassList, runPasses } from '../passes/manager.js';
import { pruneFiltersPass } from '../passes/prune-filters.js';
import { pruneMagnitudePass } from '../passes/prune-magnitude.js';
import { firstSamples, type Dataset } from './data/dataset.js';
import { compareLatency, type OrtLatency } from './ort/measure.js';
import type { BackendPreference } from './tfjs/backend.js';
import { createEngine, type TfjsEngine } from './tfjs/engine.js';
import type { OptimizerOptions } from './tfjs/optimizers.js';
import { chooseGradientEngine, defaultOrtThreads, evaluate, recalibrateBatchNorm, trainModel, type TrainOptions } from './tfjs/train.js';

/** Passes the ONNX export of a pruned model runs (compile's defaults). */
const INFERENCE_PASSES = 'eliminate-dropout,eliminate-dead,fold-pad,fold-bn';

export interface SparsitySchedule {
  readonly initialSparsity: number;
  readonly finalSparsity: number;
  readonly beginStep: number;
  readonly endStep: number;
  readonly frequency: number;
}

/** s_t of TF-MOT's polynomial decay (power 3); s_i before t₀, s_f from t₁ on. */
export function polynomialSparsity(schedule: SparsitySchedule, step: number): number {
  const { initialSparsity: si, finalSparsity: sf, beginStep: t0, endStep: t1 } = schedule;
  if (step <= t0) return si;
  if (step >= t1) return sf;
  const progress = (step - t0) / (t1 - t0);
  return sf + (si - sf) * (1 - progress) ** 3;
}

/** Whether the masks are recomputed after optimizer step `step` (1-based). */
export function isPruningStep(schedule: SparsitySchedule, step: number): boolean {
  if (step < schedule.beginStep || step > schedule.endStep) return false;
  return (step - schedule.beginStep) % schedule.frequency === 0 || step === schedule.endStep;
}

/** The schedule for T fine-tuning steps (module header). */
export function defaultSchedule(finalSparsity: number, totalSteps: number): SparsitySchedule {
  const endStep = Math.max(1, Math.ceil(0.7 * totalSteps));
  return { initialSparsity: 0, finalSparsity, beginStep: 0, endStep, frequency: Math.max(1, Math.ceil(endStep / 20)) };
}

export interface PruneModelOptions {
  readonly sparsity: number;
  readonly structured: boolean;
  readonly finetuneEpochs: number;
  readonly train?: Dataset;
  readonly test?: Dataset;
  readonly batchSize?: number;
  readonly optimizer?: OptimizerOptions;
  /** Other training settings of the spec (loss, label smoothing, augmentation…). */
  readonly training?: Partial<TrainOptions>;
  /** Where fine-tuning's forward and backward passes run (`convspec train --engine`); default `auto`. */
  readonly gradients?: 'auto' | 'tfjs' | 'ort';
  readonly exclude?: readonly string[];
  readonly backend?: BackendPreference;
  readonly seed?: number;
  /** Test samples to evaluate (default all). */
  readonly evaluationLimit?: number;
  readonly latency?: false | { readonly batch?: number; readonly threads?: number; readonly runs?: number };
  readonly log?: (line: string) => void;
  /** Receives each fine-tuning batch (progress bars). */
  readonly onBatch?: (step: number, totalSteps: number, loss: number, sparsity: number) => void;
}

export interface ModelFigures {
  readonly params: number;
  readonly nonZeroParams: number;
  readonly macs: number;
  /** MACs counting only non-zero conv/dense weights. */
  readonly nonZeroMacs: number;
  readonly onnxBytes: number;
  readonly onnxGzipBytes: number;
  readonly accuracy?: number;
  readonly latency?: OrtLatency;
}

export interface PruneReport {
  readonly model: string;
  readonly mode: 'structured' | 'unstructured';
  readonly sparsity: number;
  readonly finetune: { readonly epochs: number; readonly steps: number; readonly schedule?: SparsitySchedule };
  readonly before: ModelFigures;
  /** Accuracy right after pruning (batch norm re-estimated when training data is given), before fine-tuning. */
  readonly prunedAccuracy?: number;
  /** The last re-estimation of the batch-norm running statistics (`recalibrateBatchNorm`). */
  readonly batchNormRecalibration?: BatchNormRecalibration;
  readonly after: ModelFigures;
  /** after / before. */
  readonly ratios: { readonly params: number; readonly nonZeroParams: number; readonly macs: number; readonly onnxBytes: number; readonly latency?: number };
  readonly accuracyDeltaPoints?: number;
  /** Per layer: achieved sparsity (unstructured) or channels kept (structured). */
  readonly layers: readonly string[];
  readonly evaluatedOn?: { readonly source: string; readonly samples: number };
}

export interface PruneModelResult {
  readonly graph: Graph;
  readonly weights: Weights;
  /** The inference export of the pruned model. */
  readonly onnx: Uint8Array;
  readonly report: PruneReport;
  readonly diagnostics: Diagnostic[];
}

function inferenceOnnx(graph: Graph, weights: Weights): { bytes: Uint8Array; diagnostics: Diagnostic[] } {
  const prepared = runPasses(graph, weights, resolvePassList(INFERENCE_PASSES).passes);
  const emitted = emitOnnx(prepared.graph, prepared.weights ?? weights);
  return { bytes: emitted.bytes, diagnostics: emitted.diagnostics };
}

function figures(graph: Graph, weights: Weights, onnx: Uint8Array): Omit<ModelFigures, 'accuracy' | 'latency'> {
  const cost = computeCost(graph);
  let nonZeroParams = 0;
  let nonZeroMacs = 0;
  for (const node of graph.nodes) {
    const layer = cost.layers.get(node.name)!;
    // learnable tensors are `weight` and `bias` (BN γ and β included; running statistics are not parameters)
    let zeros = 0;
    for (const role of ['weight', 'bias']) {
      const tensor = weights.get(`${node.name}.${role}`);
      if (tensor) for (const v of tensor.data) if (v === 0) zeros++;
    }
    nonZeroParams += layer.params - zeros;
    const macs = typeof layer.macs === 'number' ? layer.macs : 0;
    if (isWeighted(node)) {
      const w = weights.get(`${node.name}.weight`)!;
      let nz = 0;
      for (const v of w.data) if (v !== 0) nz++;
      nonZeroMacs += macs * (nz / w.data.length);
    } else nonZeroMacs += macs;
  }
  const macs = typeof cost.totals.macs === 'number' ? cost.totals.macs : Number.NaN;
  return { params: cost.totals.params, nonZeroParams, macs, nonZeroMacs: Math.round(nonZeroMacs), onnxBytes: onnx.length, onnxGzipBytes: gzipSync(onnx, { level: 9 }).length };
}

/** Per-layer masks (1 keeps) of the weights of the prunable nodes, in tfjs layout, at sparsity s. */
async function magnitudeMasks(engine: TfjsEngine, targets: readonly string[], sparsity: number): Promise<Map<string, tf.Tensor>> {
  const masks = new Map<string, tf.Tensor>();
  for (const node of targets) {
    const variable = engine.parameter(node, 'weight')!.variable;
    const values = (await variable.data()) as Float32Array;
    const n = values.length;
    const count = n - Math.round(n * (1 - sparsity)); // TF-MOT keeps round(n·(1 − s))
    const mask = new Float32Array(n).fill(1);
    if (count > 0) {
      const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => Math.abs(values[a]!) - Math.abs(values[b]!) || a - b);
      for (let k = 0; k < count; k++) mask[order[k]!] = 0;
    }
    masks.set(node, tf.tensor(mask, variable.shape, 'float32'));
  }
  return masks;
}

function applyMasks(engine: TfjsEngine, masks: ReadonlyMap<string, tf.Tensor>): void {
  tf.tidy(() => {
    for (const [node, mask] of masks) {
      const variable = engine.parameter(node, 'weight')!.variable;
      variable.assign(tf.mul(variable, mask));
    }
  });
}

export interface BatchNormRecalibration {
  readonly samples: number;
  readonly layers: number;
}

/** Batch-norm statistics of the pruned network (`recalibrateBatchNorm`: stale after pruning or fine-tuning). */
async function recalibrate(engine: TfjsEngine, train: Dataset, log: (line: string) => void): Promise<BatchNormRecalibration> {
  const samples = Math.min(train.count, RECALIBRATION_SAMPLES);
  const layers = await recalibrateBatchNorm(engine, train, { samples });
  if (layers.length > 0) log(`batch-norm statistics of ${layers.length} layers re-estimated on ${samples} training samples`);
  return { samples, layers: layers.length };
}

/** Training samples the batch-norm statistics are re-estimated on. */
const RECALIBRATION_SAMPLES = 2048;

async function accuracyOf(engine: TfjsEngine, test: Dataset | undefined, limit: number | undefined): Promise<number | undefined> {
  if (!test) return undefined;
  return (await evaluate(engine, limit ? firstSamples(test, limit) : test, { batchSize: 256 })).accuracy;
}

export async function pruneModel(graph: Graph, weights: Weights, options: PruneModelOptions): Promise<PruneModelResult> {
  const log = options.log ?? (() => undefined);
  const diagnostics: Diagnostic[] = [];
  const engineOptions = { ...(options.backend ? { backend: options.backend } : {}), seed: options.seed ?? 0 };
  const beforeOnnx = inferenceOnnx(graph, weights);
  diagnostics.push(...beforeOnnx.diagnostics);
  const before = figures(graph, weights, beforeOnnx.bytes);
  let beforeAccuracy: number | undefined;
  if (options.test) {
    log(`accuracy before pruning on ${options.evaluationLimit ?? options.test.count} test samples`);
    const engine = await createEngine(graph, weights, engineOptions);
    beforeAccuracy = await accuracyOf(engine, options.test, options.evaluationLimit);
    engine.dispose();
  }

  // prune
  const exclude = [...(options.exclude ?? [])];
  const pass = options.structured ? pruneFiltersPass : pruneMagnitudePass;
  const oneShot = runPasses(graph, weights, [pass], { verify: true, options: { sparsity: options.sparsity, exclude } });
  diagnostics.push(...oneShot.diagnostics);
  const prunedGraph = oneShot.graph;
  let prunedWeights: Weights = oneShot.weights ?? weights;
  const layers = oneShot.diagnostics.filter((d) => d.code === 'CNN7004').map((d) => d.message.replace(/^prune-(filters|magnitude): /, ''));

  const engine = await createEngine(prunedGraph, prunedWeights, engineOptions);
  let prunedAccuracy: number | undefined;
  let recalibration: BatchNormRecalibration | undefined;
  let steps = 0;
  let schedule: SparsitySchedule | undefined;
  try {
    if (options.train) {
      recalibration = await recalibrate(engine, options.train, log);
      prunedWeights = await engine.getWeights();
    }
    if (options.test) {
      prunedAccuracy = await accuracyOf(engine, options.test, options.evaluationLimit);
      log(`accuracy right after pruning: ${prunedAccuracy === undefined ? '-' : (100 * prunedAccuracy).toFixed(2)}%`);
    }
    if (options.finetuneEpochs > 0) {
      if (!options.train) throw new Error('fine-tuning needs training data');
      const choice = chooseGradientEngine(options.gradients ?? 'auto', engine, options.training?.loss, options.train);
      if ('error' in choice) throw new Error(`fine-tuning on ONNX Runtime: ${choice.error}`);
      log(`fine-tuning's forward and backward: ${choice.engine === 'ort' ? 'ONNX Runtime' : 'tfjs gradient tape'}${choice.reason ? ` (${choice.reason})` : ''}`);
      const onEngine = { gradients: choice.engine, ortThreads: defaultOrtThreads() };
      const batchSize = options.batchSize ?? 64;
      const totalSteps = options.finetuneEpochs * Math.ceil(options.train.count / batchSize);
      let masks: Map<string, tf.Tensor> | undefined;
      let sparsityNow = options.structured ? 0 : options.sparsity;
      if (!options.structured) {
        // Fine-tuning starts from the dense weights and follows the schedule (module header).
        engine.setWeights(weights);
        const excluded = excludedBy({ exclude });
        const targets = prunedGraph.nodes.filter((n) => isWeighted(n) && !excluded(n.name)).map((n) => n.name);
        schedule = defaultSchedule(options.sparsity, totalSteps);
        const active = schedule;
        sparsityNow = 0;
        const onStep = async (step: number) => {
          if (isPruningStep(active, step)) {
            sparsityNow = polynomialSparsity(active, step);
            if (masks) for (const m of masks.values()) m.dispose();
            masks = await magnitudeMasks(engine, targets, sparsityNow);
          }
          if (masks) applyMasks(engine, masks);
        };
        log(`fine-tuning ${options.finetuneEpochs} epoch(s), ${totalSteps} steps; sparsity 0 → ${options.sparsity} by step ${schedule.endStep} (polynomial, power 3), masks every ${schedule.frequency} steps`);
        await trainModel(
          engine,
          options.train,
          { ...(options.training ?? {}), ...onEngine, epochs: options.finetuneEpochs, batchSize, ...(options.optimizer ? { optimizer: options.optimizer } : {}), seed: options.seed ?? 0 },
          {
            onBatchEnd: async (progress) => {
              await onStep(progress.step);
              options.onBatch?.(progress.step, totalSteps, progress.loss, sparsityNow);
            },
          },
        );
      } else {
        log(`fine-tuning ${options.finetuneEpochs} epoch(s), ${totalSteps} steps`);
        await trainModel(
          engine,
          options.train,
          { ...(options.training ?? {}), ...onEngine, epochs: options.finetuneEpochs, batchSize, ...(options.optimizer ? { optimizer: options.optimizer } : {}), seed: options.seed ?? 0 },
          { onBatchEnd: (progress) => options.onBatch?.(progress.step, totalSteps, progress.loss, 0) },
        );
      }
      steps = totalSteps;
      if (masks) for (const m of (masks as Map<string, tf.Tensor>).values()) m.dispose();
      prunedWeights = await engine.getWeights();
      if (!options.structured) {
        // The final masks hold s_f exactly; running the pass once more makes that a checked fact.
        const final = runPasses(prunedGraph, prunedWeights, [pruneMagnitudePass], { options: { sparsity: options.sparsity, exclude } });
        prunedWeights = final.weights ?? prunedWeights;
        layers.splice(0, layers.length, ...final.diagnostics.filter((d) => d.code === 'CNN7004').map((d) => d.message.replace(/^prune-magnitude: /, '')));
        engine.setWeights(prunedWeights);
      }
      // the running statistics are moving averages over weights that kept changing: estimate them once more
      recalibration = await recalibrate(engine, options.train, log);
      prunedWeights = await engine.getWeights();
    }
    const afterAccuracy = options.finetuneEpochs > 0 ? await accuracyOf(engine, options.test, options.evaluationLimit) : prunedAccuracy;
    const afterOnnx = inferenceOnnx(prunedGraph, prunedWeights);
    diagnostics.push(...afterOnnx.diagnostics);
    const after = figures(prunedGraph, prunedWeights, afterOnnx.bytes);

    let beforeLatency: OrtLatency | undefined;
    let afterLatency: OrtLatency | undefined;
    if (options.latency !== false && beforeOnnx.bytes.length > 0 && afterOnnx.bytes.length > 0) {
      const batch = options.latency?.batch ?? 8;
      const source = options.test ?? options.train;
      const shape = graph.inputs[0]!.shape.slice(1).map((d) => (typeof d === 'number' ? d : 1));
      const sample = shape.reduce((a, b) => a * b, 1);
      const data = new Float32Array(batch * sample);
      for (let i = 0; i < data.length; i++) data[i] = source ? source.images[i % source.images.length]! : Math.sin(i);
      log(`latency in ONNX Runtime, batch ${batch}, ${options.latency?.threads ?? 2} threads`);
      [beforeLatency, afterLatency] = await compareLatency([beforeOnnx.bytes, afterOnnx.bytes], data, [batch, ...shape], { threads: options.latency?.threads ?? 2, runs: options.latency?.runs ?? 100 });
    }
    const round = (v: number, d = 4) => Math.round(v * 10 ** d) / 10 ** d;
    const report: PruneReport = {
      model: graph.name,
      mode: options.structured ? 'structured' : 'unstructured',
      sparsity: options.sparsity,
      finetune: { epochs: options.finetuneEpochs, steps, ...(schedule ? { schedule } : {}) },
      before: { ...before, ...(beforeAccuracy !== undefined ? { accuracy: beforeAccuracy } : {}), ...(beforeLatency ? { latency: beforeLatency } : {}) },
      ...(prunedAccuracy !== undefined ? { prunedAccuracy } : {}),
      ...(recalibration ? { batchNormRecalibration: recalibration } : {}),
      after: { ...after, ...(afterAccuracy !== undefined ? { accuracy: afterAccuracy } : {}), ...(afterLatency ? { latency: afterLatency } : {}) },
      ratios: {
        params: round(after.params / before.params),
        nonZeroParams: round(after.nonZeroParams / before.nonZeroParams),
        macs: round(after.macs / before.macs),
        onnxBytes: round(after.onnxBytes / before.onnxBytes),
        ...(beforeLatency && afterLatency ? { latency: round(afterLatency.medianMs / beforeLatency.medianMs) } : {}),
      },
      ...(beforeAccuracy !== undefined && afterAccuracy !== undefined ? { accuracyDeltaPoints: round(100 * (afterAccuracy - beforeAccuracy), 3) } : {}),
      layers,
      ...(options.test ? { evaluatedOn: { source: options.test.source ?? 'test data', samples: Math.min(options.evaluationLimit ?? options.test.count, options.test.count) } } : {}),
    };
    return { graph: prunedGraph, weights: prunedWeights, onnx: afterOnnx.bytes, report, diagnostics };
  } finally {
    engine.dispose();
  }
}


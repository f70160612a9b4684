/**
 * Post-training int8 quantization of a model, end to end, as `convspec quantize` runs it (the CLI only parses
 * arguments, writes files and prints):
 *
 *   1. calibration: N batches of real data through the float graph on the tfjs engine; statistics of every tensor
 *      the plan quantizes (../passes/quantize-calibration.ts), turned into ranges by the chosen method;
 *   2. the `quantize` pass annotates the graph (which nodes run on int8, every tensor's scale and zero point);
 *   3. `emitQdqOnnx` writes the QDQ model, `emitOnnx` the float one for comparison;
 *   4. the report: per layer, the SQNR of its weights (per-channel int8 vs float) and of its output (fake-quant
 *      tfjs vs float tfjs on held-out batches, errors accumulated through the network, as ORT's qdq_loss_debug
 *      compares); accuracy of both files in ONNX Runtime on the test split (and of the fake-quant engine, which
 *      should agree); the sizes; latency of both in ONNX Runtime (alternating runs, graph optimisation 'all');
 *      and the kernels ORT actually runs for the int8 file (QLinearConv, QGemm…) with every float Conv/Gemm/Add
 *      that was left unfused named.
 *
 * The graph must be an inference graph (run eliminate-dropout, fold-bn… first, as `prepareGraph` does).
 */
import type { Diagnostic } from '../diagnostics.js';
import { diagnostic } from '../diagnostics.js';
import type { Graph, TensorQuantization } from '../ir/graph.js';
import type { Weights } from '../ir/weights.js';
import { emitOnnx } from '../codegen/onnx.js';
import { emitQdqOnnx, type QdqSummary } from '../codegen/onnx-qdq.js';
import { runPasses } from '../passes/manager.js';
import { dequantizeWeight, quantizationTargets, quantizePass, quantizeWeightPerChannel, sqnrDb } from '../passes/quantize.js';
import { calibrationRange, DEFAULT_PERCENTILE, type CalibrationMethod, type CalibrationRange } from '../passes/quantize-calibration.js';
import type { Dataset } from './data/dataset.js';
import { compareLatency, optimizedOpCounts, ortAccuracy, type OrtLatency } from './ort/measure.js';
import type { BackendPreference } from './tfjs/backend.js';
import { createEngine } from './tfjs/engine.js';
import { collectActivationStatistics, FakeQuantEngine, fakeQuantAccuracy, layerErrors } from './tfjs/fake-quant.js';

export interface QuantizeModelOptions {
  readonly method?: CalibrationMethod;
  /** Percentile for 'percentile'; default 99.999. */
  readonly percentile?: number;
  /** Calibration batches and their size; default 10 × 32. */
  readonly batches?: number;
  readonly batchSize?: number;
  readonly seed?: number;
  /** Node names or globs that stay float. */
  readonly exclude?: readonly string[];
  readonly opset?: number;
  readonly activationType?: 'uint8' | 'int8';
  readonly backend?: BackendPreference;
  readonly specHash?: string;
  /** Test data for accuracy (float and int8 in ORT, fake-quant in tfjs). */
  readonly test?: Dataset;
  /** Test samples to evaluate in ORT (default all) and with the fake-quant engine (default 2000: it is slower). */
  readonly evaluationLimit?: number;
  readonly fakeQuantLimit?: number;
  /** Latency in ORT; false to skip. Default batch 8, 2 threads, 100 runs. */
  readonly latency?: false | { readonly batch?: number; readonly threads?: number; readonly runs?: number };
  /** Progress lines. */
  readonly log?: (line: string) => void;
}

export interface LayerReport {
  readonly name: string;
  readonly op: string;
  readonly role: 'int8' | 'pass-through' | 'folded-activation';
  readonly inputs: readonly (TensorQuantization | null)[];
  readonly output?: TensorQuantization;
  /** Per-channel int8 weights vs float, dB. */
  readonly weightSqnrDb?: number;
  /** The layer's output (after a folded ReLU) in fake-quant vs float, dB; accumulated error. */
  readonly outputSqnrDb?: number;
}

export interface QuantizationReport {
  readonly model: string;
  readonly format: string;
  readonly method: CalibrationMethod;
  readonly percentile?: number;
  readonly calibration: { readonly source: string; readonly batches: number; readonly samples: number };
  readonly exclude: readonly string[];
  readonly layers: readonly LayerReport[];
  /** Nodes left in float, with the reason. */
  readonly float: readonly string[];
  readonly qdq: QdqSummary;
  readonly size: { readonly floatBytes: number; readonly int8Bytes: number; readonly ratio: number };
  readonly accuracy?: {
    readonly source: string;
    readonly samples: number;
    readonly floatOrt: number;
    readonly int8Ort: number;
    /** int8 − float, percentage points. */
    readonly deltaPoints: number;
    /** The fake-quant tfjs engine on the first `samples` test samples, and ORT's int8 file on the same ones. */
    readonly int8FakeQuant?: { readonly accuracy: number; readonly samples: number; readonly int8OrtSameSamples: number };
  };
  readonly latency?: { readonly batch: number; readonly threads: number; readonly float: OrtLatency; readonly int8: OrtLatency; readonly speedup: number };
  /** Op types ONNX Runtime runs for the int8 file after its optimisations, and float compute ops left in it. */
  readonly ortKernels?: { readonly int8: Readonly<Record<string, number>>; readonly unfusedFloatOps: number };
  readonly notes: readonly string[];
}

export interface QuantizeModelResult {
  readonly graph: Graph;
  readonly floatBytes: Uint8Array;
  readonly int8Bytes: Uint8Array;
  readonly ranges: ReadonlyMap<string, CalibrationRange>;
  readonly diagnostics: Diagnostic[];
  /** Absent when quantization could not be done (see diagnostics). */
  readonly report?: QuantizationReport;
}

const TFJS_NOTE =
  'the tfjs target gets no int8 arithmetic: TensorFlow.js has no int8 kernels and its converter only compresses stored weights (tfjs#6551); the fake-quant engine simulates the int8 model for evaluation only';

export async function quantizeModel(graph: Graph, weights: Weights, calibration: Dataset, options: QuantizeModelOptions = {}): Promise<QuantizeModelResult> {
  const log = options.log ?? (() => undefined);
  const method = options.method ?? 'minmax';
  const exclude = [...(options.exclude ?? [])];
  const batches = options.batches ?? 10;
  const batchSize = options.batchSize ?? 32;
  const diagnostics: Diagnostic[] = [];
  const empty = new Uint8Array(0);

  // 1. calibration
  const targets = quantizationTargets(graph, { exclude });
  const floatEngine = await createEngine(graph, weights, options.backend ? { backend: options.backend } : {});
  try {
    log(`calibrating ${targets.length} tensors on ${batches} batches of ${batchSize} (${calibration.source ?? 'data'}, ${method}) on tfjs/${floatEngine.backend.name}`);
    const { statistics, samples } = await collectActivationStatistics(floatEngine, calibration, targets, { batches, batchSize, seed: options.seed ?? 0 });
    const ranges = new Map<string, CalibrationRange>();
    for (const [tensor, stats] of statistics) ranges.set(tensor, calibrationRange(stats, method, { percentile: options.percentile ?? DEFAULT_PERCENTILE }));

    // 2. the pass
    const passRun = runPasses(graph, weights, [quantizePass], { options: { ranges, exclude }, verify: true });
    diagnostics.push(...passRun.diagnostics);
    const quantized = passRun.graph;
    if (quantized === graph) {
      diagnostics.push(diagnostic('passRefused', undefined, ['quantize', 'nothing was quantized']));
      return { graph, floatBytes: empty, int8Bytes: empty, ranges, diagnostics };
    }

    // 3. files
    const emitOptions = { ...(options.opset !== undefined ? { opset: options.opset } : {}), ...(options.specHash ? { specHash: options.specHash } : {}) };
    const float = emitOnnx(graph, weights, emitOptions);
    const int8 = emitQdqOnnx(quantized, weights, { ...emitOptions, activationType: options.activationType ?? 'uint8' });
    diagnostics.push(...int8.diagnostics);
    if (int8.bytes.length === 0 || float.bytes.length === 0) return { graph: quantized, floatBytes: float.bytes, int8Bytes: int8.bytes, ranges, diagnostics };

    // 4. report: per-layer error
    const fakeQuant = await FakeQuantEngine.create(quantized, weights, options.backend ? { backend: options.backend } : {});
    try {
      const annotated = quantized.nodes.filter((n) => n.quantization !== undefined);
      const errorData = options.test ?? calibration;
      log(`measuring per-layer SQNR on ${errorData.source ?? 'data'}`);
      const errors = await layerErrors(floatEngine, fakeQuant, errorData, annotated.map((n) => n.name), { batches: 4, batchSize: 32, seed: 1 });
      const sqnr = new Map(errors.map((e) => [e.tensor, e.sqnrDb]));
      const layers: LayerReport[] = annotated.map((node) => {
        const info = node.quantization!;
        let weightSqnr: number | undefined;
        if (info.weights && (node.op === 'conv' || node.op === 'dense')) {
          const w = weights.get(`${node.name}.weight`)!;
          weightSqnr = sqnrDb(w.data, dequantizeWeight(quantizeWeightPerChannel(w)).data);
        }
        // a conv whose ReLU was folded: its output error is measured after the ReLU
        const folded = quantized.nodes.find((n) => n.quantization?.role === 'folded-activation' && n.inputs[0] === node.name);
        const outputSqnr = sqnr.get(folded ? folded.name : node.name);
        return {
          name: node.name,
          op: node.op === 'activation' ? node.fn.kind : node.op,
          role: info.role,
          inputs: info.inputs,
          ...(info.output ? { output: info.output } : {}),
          ...(weightSqnr !== undefined ? { weightSqnrDb: round(weightSqnr, 2) } : {}),
          ...(outputSqnr !== undefined ? { outputSqnrDb: round(outputSqnr, 2) } : {}),
        };
      });
      const floatNodes = passRun.diagnostics.filter((d) => d.code === 'CNN7003').map((d) => d.message.replace(/^quantize: /, ''));

      // accuracy
      let accuracy: QuantizationReport['accuracy'];
      if (options.test) {
        const limit = options.evaluationLimit;
        log(`accuracy in ONNX Runtime on ${limit ?? options.test.count} test samples`);
        const floatAccuracy = await ortAccuracy(float.bytes, options.test, { batchSize: 100, threads: 2, ...(limit ? { limit } : {}) });
        const int8Accuracy = await ortAccuracy(int8.bytes, options.test, { batchSize: 100, threads: 2, ...(limit ? { limit } : {}) });
        const fakeLimit = Math.min(options.fakeQuantLimit ?? 2000, limit ?? options.test.count);
        const fake = fakeLimit > 0 ? await fakeQuantAccuracy(fakeQuant, options.test, { limit: fakeLimit }) : undefined;
        // ORT's int8 accuracy on the same samples, so the two int8 figures can be compared directly
        const sameSamples = fake ? (fake.count === int8Accuracy.count ? int8Accuracy : await ortAccuracy(int8.bytes, options.test, { batchSize: 100, threads: 2, limit: fake.count })) : undefined;
        accuracy = {
          source: options.test.source ?? 'test data',
          samples: floatAccuracy.count,
          floatOrt: round(floatAccuracy.accuracy, 6),
          int8Ort: round(int8Accuracy.accuracy, 6),
          deltaPoints: round(100 * (int8Accuracy.accuracy - floatAccuracy.accuracy), 3),
          ...(fake && sameSamples ? { int8FakeQuant: { accuracy: round(fake.accuracy, 6), samples: fake.count, int8OrtSameSamples: round(sameSamples.accuracy, 6) } } : {}),
        };
      }

      // kernels and latency
      const kernels = await optimizedOpCounts(int8.bytes);
      const unfused = ['Conv', 'Gemm', 'MatMul', 'Add', 'Mul', 'Concat', 'AveragePool', 'GlobalAveragePool'].reduce((sum, op) => sum + (kernels[op] ?? 0), 0);
      let latency: QuantizationReport['latency'];
      if (options.latency !== false) {
        const batch = options.latency?.batch ?? 8;
        const threads = options.latency?.threads ?? 2;
        const source = options.test ?? calibration;
        const sample = source.images.length / source.count;
        const data = new Float32Array(batch * sample);
        for (let i = 0; i < data.length; i++) data[i] = source.images[i % source.images.length]!;
        log(`latency in ONNX Runtime, batch ${batch}, ${threads} threads`);
        const [floatLatency, int8Latency] = await compareLatency([float.bytes, int8.bytes], data, [batch, ...source.shape], { threads, runs: options.latency?.runs ?? 100 });
        latency = { batch, threads, float: floatLatency!, int8: int8Latency!, speedup: round(floatLatency!.medianMs / int8Latency!.medianMs, 3) };
      }

      const report: QuantizationReport = {
        model: graph.name,
        format: (options.activationType ?? 'uint8') === 'uint8' ? 'QDQ U8S8 (uint8 activations per tensor, int8 weights per channel, int32 biases)' : 'QDQ S8S8 (int8 activations per tensor, int8 weights per channel, int32 biases)',
        method,
        ...(method === 'percentile' ? { percentile: options.percentile ?? DEFAULT_PERCENTILE } : {}),
        calibration: { source: calibration.source ?? 'data', batches: Math.ceil(samples / batchSize), samples },
        exclude,
        layers,
        float: floatNodes,
        qdq: int8.summary,
        size: { floatBytes: float.bytes.length, int8Bytes: int8.bytes.length, ratio: round(float.bytes.length / int8.bytes.length, 3) },
        ...(accuracy ? { accuracy } : {}),
        ...(latency ? { latency } : {}),
        ortKernels: { int8: kernels, unfusedFloatOps: unfused },
        notes: [TFJS_NOTE],
      };
      return { graph: quantized, floatBytes: float.bytes, int8Bytes: int8.bytes, ranges, diagnostics, report };
    } finally {
      fakeQuant.dispose();
    }
  } finally {
    floatEngine.dispose();
  }
}

function round(value: number, digits: number): number {
  if (!Number.isFinite(value)) return value;
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

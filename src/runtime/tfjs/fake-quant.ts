/**
 * Int8 arithmetic simulated on the tfjs engine ("fake quantization"), and what quantization needs from real
 * data: activation statistics for calibration and per-layer error against the float model.
 *
 * TensorFlow.js has no int8 kernels, so the tfjs target never runs int8 (its converter's "quantization" only
 * compresses stored weights, tfjs#6551). This module evaluates what the QDQ ONNX model computes without ONNX
 * Runtime, with the parameters the `quantize` pass recorded (../../passes/quantize.ts):
 *   - weights: W ← DQ(Q(W)) per output channel, bias ← DQ(Q_int32(b)) with scale s_x·s_c — loaded once;
 *   - activations: every quantized tensor x is replaced, as soon as it is produced (or fed, for a graph input), by
 *         x̂ = (clamp(round(x/s) + z, −128, 127) − z)·s     (round half to even, like QuantizeLinear),
 *     which is what every reader sees after the DequantizeLinear in the QDQ file. A folded ReLU runs as a ReLU and
 *     then quantizes — the same values as the file's Q with zero point −128 reading the conv output.
 * ONNX Runtime's fused kernels requantize from int32 accumulators with a fixed-point multiplier, so their codes
 * can differ from this by one step now and then; that is the expected agreement.
 *
 * The forward loop is the engine's (same lowering, ./ops.ts), in inference mode, with a tap: it returns any
 * intermediate tensor asked for. `collectActivationStatistics` feeds N batches of real data through the float
 * graph and accumulates `ActivationStatistics` per tensor (calibration); `layerErrors` runs the same batches
 * through a float and a fake-quant engine and reports each layer's SQNR.
 */
import * as tf from '@tensorflow/tfjs';
import type { Graph, TensorQuantization } from '../../ir/graph.js';
import type { Weights } from '../../ir/weights.js';
import { fakeQuantizedWeights, quantizedTensors } from '../../passes/quantize.js';
import { ActivationStatistics } from '../../passes/quantize-calibration.js';
import { iterateBatches, type Dataset } from '../data/dataset.js';
import { createEngine, EngineError, toInternal, toLogical, type TensorData, type TfjsEngine, type TfjsEngineOptions } from './engine.js';
import { lowerNode } from './ops.js';

/** x̂ = (clamp(round(x/s) + z, −128, 127) − z)·s. */
export function fakeQuantize(x: tf.Tensor, p: TensorQuantization): tf.Tensor {
  return tf.tidy(() => {
    const codes = tf.clipByValue(tf.add(tf.round(tf.div(x, p.scale)), p.zeroPoint), -128, 127);
    return tf.mul(tf.sub(codes, p.zeroPoint), p.scale);
  });
}

export interface InferenceForwardOptions {
  /** Tensors to fake-quantize as they are produced (graph inputs and node outputs by name). */
  readonly quantization?: ReadonlyMap<string, TensorQuantization>;
  /** Intermediate tensors to return besides the graph outputs (channels-last, as the engine holds them). */
  readonly keep?: ReadonlySet<string>;
}

/**
 * Runs an engine's graph in inference mode on channels-last feeds. Returns the graph outputs (by output name) and
 * every tensor named in `keep` (by tensor name), channels-last. Call it inside `tf.tidy`.
 */
export function forwardInference(engine: TfjsEngine, feeds: ReadonlyMap<string, tf.Tensor>, options: InferenceForwardOptions = {}): Map<string, tf.Tensor> {
  engine.activate();
  const quantization = options.quantization;
  const bindings = engine.bindSymbols(feeds);
  const values = new Map<string, tf.Tensor>();
  for (const [name, tensor] of feeds) {
    const p = quantization?.get(name);
    values.set(name, p ? fakeQuantize(tensor, p) : tensor);
  }
  const context = engine.loweringContext(bindings);
  for (const node of engine.graph.nodes) {
    const inputs = node.inputs.map((name) => {
      const value = values.get(name);
      if (!value) throw new Error(`internal: ${node.name} reads ${name} before it exists`);
      return value;
    });
    const output = lowerNode(node, inputs, context);
    const p = quantization?.get(node.name);
    values.set(node.name, p ? fakeQuantize(output, p) : output);
  }
  const result = new Map<string, tf.Tensor>();
  for (const output of engine.graph.outputs) result.set(output.name, values.get(output.value)!);
  for (const name of options.keep ?? []) {
    const value = values.get(name);
    if (!value) throw new Error(`no tensor '${name}' in ${engine.graph.name}`);
    result.set(name, value);
  }
  return result;
}

/** A tfjs engine that computes what the QDQ model computes (see the module header). */
export class FakeQuantEngine {
  private constructor(
    readonly engine: TfjsEngine,
    readonly quantization: ReadonlyMap<string, TensorQuantization>,
  ) {}

  /** `graph` carries the `quantize` pass's annotations; `weights` are the float weights. */
  static async create(graph: Graph, weights: Weights, options: TfjsEngineOptions = {}): Promise<FakeQuantEngine> {
    const quantization = quantizedTensors(graph);
    const engine = await createEngine(graph, fakeQuantizedWeights(graph, weights), options);
    return new FakeQuantEngine(engine, quantization);
  }

  get graph(): Graph {
    return this.engine.graph;
  }

  /** Graph outputs for logical-layout inputs, in logical layout. */
  async predict(inputs: Readonly<Record<string, TensorData>>): Promise<Record<string, TensorData & { dims: number[] }>> {
    const names = this.graph.outputs.map((o) => o.name);
    const tensors = tf.tidy(() => {
      const outputs = forwardInference(this.engine, this.engine.feedsFromData(inputs), { quantization: this.quantization });
      return names.map((name) => tf.clone(toLogical(outputs.get(name)!)));
    });
    try {
      const result: Record<string, TensorData & { dims: number[] }> = {};
      for (let i = 0; i < names.length; i++) result[names[i]!] = { data: Float32Array.from((await tensors[i]!.data()) as Float32Array), dims: [...tensors[i]!.shape] };
      return result;
    } finally {
      tf.dispose(tensors);
    }
  }

  dispose(): void {
    this.engine.dispose();
  }
}

export interface BatchSelection {
  /** Batches to use; default 10. */
  readonly batches?: number;
  /** Samples per batch; default 32. */
  readonly batchSize?: number;
  /** Seed of the shuffle that picks the samples; default 0. */
  readonly seed?: number;
}

function* selectedBatches(dataset: Dataset, selection: BatchSelection): Generator<{ x: Float32Array; size: number }> {
  const limit = selection.batches ?? 10;
  let count = 0;
  for (const batch of iterateBatches(dataset, { batchSize: selection.batchSize ?? 32, shuffle: true, seed: selection.seed ?? 0, epoch: 0 })) {
    if (count++ >= limit) return;
    yield batch;
  }
}

function feedFor(engine: TfjsEngine, x: Float32Array, size: number): Map<string, tf.Tensor> {
  const input = engine.graph.inputs[0]!;
  const dims = [size, ...input.shape.slice(1).map((d) => (typeof d === 'number' ? d : Number.NaN))];
  if (dims.some((d) => Number.isNaN(d))) throw new EngineError(`input '${input.name}' has symbolic sizes besides the batch; calibration and evaluation need fixed sizes (--input-shape)`);
  return new Map([[input.name, toInternal(tf.tensor(x, dims, 'float32'))]]);
}

/** Runs batches through `engine` and reads the named tensors of each (channels-last data). */
async function forEachBatch(
  engine: TfjsEngine,
  dataset: Dataset,
  selection: BatchSelection,
  tensors: readonly string[],
  quantization: ReadonlyMap<string, TensorQuantization> | undefined,
  visit: (values: Map<string, Float32Array>) => void,
): Promise<number> {
  if (engine.graph.inputs.length !== 1) throw new Error(`${engine.graph.name} has ${engine.graph.inputs.length} inputs; calibration feeds one`);
  const keep = new Set(tensors);
  let samples = 0;
  for (const batch of selectedBatches(dataset, selection)) {
    const kept = tf.tidy(() => {
      const outputs = forwardInference(engine, feedFor(engine, batch.x, batch.size), { quantization, keep });
      return tensors.map((name) => tf.clone(outputs.get(name)!));
    });
    try {
      const values = new Map<string, Float32Array>();
      for (let i = 0; i < tensors.length; i++) values.set(tensors[i]!, (await kept[i]!.data()) as Float32Array);
      visit(values);
    } finally {
      tf.dispose(kept);
    }
    samples += batch.size;
  }
  return samples;
}

/** Calibration statistics of `tensors` (graph inputs or node outputs) over batches of `dataset`, float graph. */
export async function collectActivationStatistics(
  engine: TfjsEngine,
  dataset: Dataset,
  tensors: readonly string[],
  selection: BatchSelection = {},
): Promise<{ statistics: Map<string, ActivationStatistics>; samples: number }> {
  const statistics = new Map(tensors.map((t) => [t, new ActivationStatistics()]));
  const samples = await forEachBatch(engine, dataset, selection, tensors, undefined, (values) => {
    for (const [name, data] of values) statistics.get(name)!.observe(data);
  });
  return { statistics, samples };
}

export interface LayerError {
  readonly tensor: string;
  /** 10·log10(Σ x² / Σ (x − x̂)²) of the float value x and the fake-quant value x̂ (accumulated error), dB. */
  readonly sqnrDb: number;
}

/**
 * SQNR of each named tensor between the float graph and the fake-quant one, on the same batches (errors
 * accumulate through the network, as ONNX Runtime's qdq_loss_debug compares them).
 */
export async function layerErrors(floatEngine: TfjsEngine, quantized: FakeQuantEngine, dataset: Dataset, tensors: readonly string[], selection: BatchSelection = {}): Promise<LayerError[]> {
  const signal = new Map(tensors.map((t) => [t, 0]));
  const noise = new Map(tensors.map((t) => [t, 0]));
  const reference: Array<Map<string, Float32Array>> = [];
  await forEachBatch(floatEngine, dataset, selection, tensors, undefined, (values) => reference.push(values));
  let index = 0;
  await forEachBatch(quantized.engine, dataset, selection, tensors, quantized.quantization, (values) => {
    const expected = reference[index++]!;
    for (const [name, approximation] of values) {
      const x = expected.get(name)!;
      let s = 0;
      let n = 0;
      for (let i = 0; i < x.length; i++) {
        s += x[i]! * x[i]!;
        const e = x[i]! - approximation[i]!;
        n += e * e;
      }
      signal.set(name, signal.get(name)! + s);
      noise.set(name, noise.get(name)! + n);
    }
  });
  return tensors.map((tensor) => {
    const n = noise.get(tensor)!;
    return { tensor, sqnrDb: n === 0 ? Number.POSITIVE_INFINITY : 10 * Math.log10(signal.get(tensor)! / n) };
  });
}

/** Top-1 accuracy of the fake-quant engine on (a prefix of) a dataset. */
export async function fakeQuantAccuracy(engine: FakeQuantEngine, dataset: Dataset, options: { batchSize?: number; limit?: number } = {}): Promise<{ accuracy: number; count: number }> {
  const limit = Math.min(options.limit ?? dataset.count, dataset.count);
  let correct = 0;
  let seen = 0;
  for (const batch of iterateBatches(dataset, { batchSize: options.batchSize ?? 256 })) {
    if (seen >= limit) break;
    const logits = tf.tidy(() => {
      const out = forwardInference(engine.engine, feedFor(engine.engine, batch.x, batch.size), { quantization: engine.quantization });
      const z = out.get(engine.graph.outputs[0]!.name)!;
      return tf.argMax(tf.reshape(z, [batch.size, -1]), 1);
    });
    const predicted = (await logits.data()) as Int32Array;
    logits.dispose();
    const take = Math.min(batch.size, limit - seen);
    for (let i = 0; i < take; i++) if (predicted[i] === batch.y[i]) correct++;
    seen += take;
  }
  return { accuracy: seen > 0 ? correct / seen : Number.NaN, count: seen };
}

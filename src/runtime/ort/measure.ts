/**
 * Measurements of ONNX models in ONNX Runtime, as the quantize and prune reports state them: top-1 accuracy on a
 * dataset, latency at a batch size and thread count, and which ops the session actually runs after ORT's graph
 * optimisations (so an int8 claim can be checked: QLinearConv / QGemm present, no float Conv left).
 *
 * Latency: one session per model (graph optimisation 'all', `threads` intra-op threads, one inter-op thread),
 * `warmup` runs first, then `runs` timed runs of the same batch; the median is the figure to compare (the mean
 * and the fastest run are given too). Models compared against each other should be timed in the same process,
 * one after the other, as the reports do.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { InferenceSession } from 'onnxruntime-node';
import { decodeModel } from '../../codegen/onnx-model.js';
import { iterateBatches, type Dataset } from '../data/dataset.js';
import { OrtEngine } from './engine.js';

export interface OrtAccuracy {
  readonly accuracy: number;
  readonly count: number;
}

/** Top-1 accuracy of a classifier (first input fed with the images, first output the scores). */
export async function ortAccuracy(model: Uint8Array | string, dataset: Dataset, options: { batchSize?: number; threads?: number; limit?: number } = {}): Promise<OrtAccuracy> {
  const engine = await OrtEngine.create(model, { graphOptimizationLevel: 'all', intraOpThreads: options.threads ?? 2, interOpThreads: 1, label: typeof model === 'string' ? model : 'model' });
  try {
    const input = engine.inputNames[0]!;
    const output = engine.outputNames[0]!;
    const limit = Math.min(options.limit ?? dataset.count, dataset.count);
    let correct = 0;
    let seen = 0;
    for (const batch of iterateBatches(dataset, { batchSize: options.batchSize ?? 64 })) {
      if (seen >= limit) break;
      const result = await engine.run({ [input]: { data: batch.x, dims: [batch.size, ...dataset.shape] } });
      const scores = result[output]!.data;
      const classes = scores.length / batch.size;
      const take = Math.min(batch.size, limit - seen);
      for (let i = 0; i < take; i++) {
        let best = 0;
        for (let k = 1; k < classes; k++) if (scores[i * classes + k]! > scores[i * classes + best]!) best = k;
        if (best === batch.y[i]) correct++;
      }
      seen += take;
    }
    return { accuracy: seen > 0 ? correct / seen : Number.NaN, count: seen };
  } finally {
    await engine.dispose();
  }
}

export interface OrtLatency {
  readonly batch: number;
  readonly threads: number;
  readonly runs: number;
  readonly medianMs: number;
  readonly meanMs: number;
  readonly minMs: number;
}

export interface LatencyOptions {
  readonly threads?: number;
  readonly warmup?: number;
  readonly runs?: number;
}

/** Latency of one batch (`data`, dims `dims`) on the first input (see the module header). */
export async function ortLatency(model: Uint8Array | string, data: Float32Array, dims: readonly number[], options: LatencyOptions = {}): Promise<OrtLatency> {
  const threads = options.threads ?? 2;
  const engine = await OrtEngine.create(model, { graphOptimizationLevel: 'all', intraOpThreads: threads, interOpThreads: 1 });
  try {
    const feeds = { [engine.inputNames[0]!]: { data, dims } };
    for (let i = 0; i < (options.warmup ?? 10); i++) await engine.run(feeds);
    const times: number[] = [];
    for (let i = 0; i < (options.runs ?? 100); i++) {
      const start = performance.now();
      await engine.run(feeds);
      times.push(performance.now() - start);
    }
    const sorted = [...times].sort((a, b) => a - b);
    return {
      batch: dims[0]!,
      threads,
      runs: times.length,
      medianMs: sorted[Math.floor(sorted.length / 2)]!,
      meanMs: times.reduce((a, b) => a + b, 0) / times.length,
      minMs: sorted[0]!,
    };
  } finally {
    await engine.dispose();
  }
}

/** Alternating latency of several models (A B A B …), so that load on the machine affects each alike. */
export async function compareLatency(models: readonly (Uint8Array | string)[], data: Float32Array, dims: readonly number[], options: LatencyOptions & { rounds?: number } = {}): Promise<OrtLatency[]> {
  const rounds = options.rounds ?? 3;
  const perRound = Math.max(1, Math.round((options.runs ?? 100) / rounds));
  const samples: OrtLatency[][] = models.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (let m = 0; m < models.length; m++) samples[m]!.push(await ortLatency(models[m]!, data, dims, { ...options, runs: perRound, warmup: options.warmup ?? 10 }));
  }
  return samples.map((list) => {
    const medians = list.map((l) => l.medianMs).sort((a, b) => a - b);
    return {
      batch: dims[0]!,
      threads: options.threads ?? 2,
      runs: list.reduce((s, l) => s + l.runs, 0),
      medianMs: medians[Math.floor(medians.length / 2)]!,
      meanMs: list.reduce((s, l) => s + l.meanMs, 0) / list.length,
      minMs: Math.min(...list.map((l) => l.minMs)),
    };
  });
}

/**
 * The op types (with domain, `com.microsoft.QLinearAdd`) of the graph ONNX Runtime runs after its optimisations
 * at level 'all', counted. ORT writes the optimised model to a temporary file, which is read back and removed.
 */
export async function optimizedOpCounts(model: Uint8Array | string, threads = 2): Promise<Record<string, number>> {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'convspec-ort-'));
  const file = path.join(directory, 'optimized.onnx');
  // errors only: ORT warns that a model optimised at level 'all' may be specific to this machine, which is the point
  const options: InferenceSession.SessionOptions = { executionProviders: ['cpu'], graphOptimizationLevel: 'all', intraOpNumThreads: threads, logSeverityLevel: 3 };
  try {
    const session =
      typeof model === 'string'
        ? await InferenceSession.create(model, { ...options, optimizedModelFilePath: file })
        : await InferenceSession.create(model, { ...options, optimizedModelFilePath: file });
    await session.release();
    const optimized = decodeModel(fs.readFileSync(file), file);
    const counts: Record<string, number> = {};
    for (const node of optimized.graph.node ?? []) {
      const key = node.domain ? `${node.domain}.${node.opType ?? ''}` : (node.opType ?? '');
      counts[key] = (counts[key] ?? 0) + 1;
    }
    return Object.fromEntries(Object.entries(counts).sort(([a], [b]) => (a < b ? -1 : 1)));
  } finally {
    fs.rmSync(directory, { recursive: true, force: true });
  }
}

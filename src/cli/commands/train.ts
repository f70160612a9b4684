/**
 * `convspec train SPEC [--data PATH] [--epochs N] [--batch N] [--lr X] [--backend …] [--engine auto|tfjs|ort] [--threads N] [--weights FILE] [--resume] -o DIR`
 *
 * Trains with the spec's `train { … }` settings (flags override them). The tfjs engine holds the weights and the
 * optimizer; forward and backward passes run on ONNX Runtime's native CPU kernels (`--engine ort`, what `auto`
 * picks on the wasm and cpu backends when the step graph can express the model and loss: 1.7–2.7× the wasm
 * tape's speed) or on the tfjs gradient tape (`--engine tfjs`, and `auto` on GPU backends). Shows a progress bar
 * (epoch, batch, loss, accuracy, images/s, ETA) that becomes plain lines when stdout is not a terminal. After every
 * epoch `DIR/checkpoint.safetensors` is written atomically (weights, optimizer state, history), so a killed run
 * loses at most the epoch in progress and `--resume` continues from the last complete one. At the end it writes
 * `DIR/<Model>.safetensors` (weights only), `DIR/history.json`, and prints the test accuracy.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import cliProgress from 'cli-progress';
import type { ElaborateOptions } from '../../elaborate/elaborate.js';
import { writeFileAtomic } from '../../runtime/data/atomic-write.js';
import { readCheckpoint, writeWeightsFile, CheckpointError, type TrainingCheckpoint } from '../../runtime/checkpoint.js';
import type { WeightNameMapping } from '../../runtime/weights-file.js';
import { chooseGradientEngine, defaultOrtThreads } from '../../runtime/tfjs/train.js';
import { EXIT, UsageError, type Output } from '../output.js';
import { CommandFailure, loadDataFor, loadGraph, loadWeightsFor } from '../session.js';

export interface TrainCommandOptions {
  readonly out: string;
  readonly data?: string;
  readonly epochs?: number;
  readonly batch?: number;
  readonly lr?: number;
  readonly seed?: number;
  readonly backend: 'auto' | 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';
  /** Where forward and backward passes run; default `auto`. */
  readonly engine?: 'auto' | 'tfjs' | 'ort';
  /** Threads of the wasm backend and of ONNX Runtime. */
  readonly threads?: number;
  readonly weights?: string;
  /** `--map` / `--map-file`: how the weights file names our parameters. */
  readonly weightNames?: WeightNameMapping;
  readonly resume: boolean;
  /** `--lr-scale TARGET=X`: learning-rate multipliers of layer groups (after the spec's `unfreeze` steps). */
  readonly learningRateScales?: readonly { readonly target: string; readonly scale: number }[];
  readonly elaborate: ElaborateOptions;
}

export const CHECKPOINT_FILE = 'checkpoint.safetensors';

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  return s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m` : s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

export async function runTrain(file: string, options: TrainCommandOptions, output: Output, isTty = Boolean(process.stderr.isTTY)): Promise<number> {
  try {
    const graph = loadGraph(file, options.elaborate, output);
    const { readTrainingSettings, createEngine, trainModel, evaluate } = await import('../../runtime/tfjs/index.js');
    const { settings, problems } = readTrainingSettings(graph.training);
    for (const problem of problems) output.err(`error: train setting ${problem}`);
    if (problems.length > 0) return EXIT.inputErrors;

    fs.mkdirSync(options.out, { recursive: true });
    const checkpointPath = path.join(options.out, CHECKPOINT_FILE);
    let resume: TrainingCheckpoint | undefined;
    if (options.resume) {
      if (fs.existsSync(checkpointPath)) {
        try {
          resume = readCheckpoint(checkpointPath);
        } catch (error) {
          output.err(`error CNN8001: cannot resume: ${error instanceof CheckpointError ? error.message : String(error)}`);
          return EXIT.inputErrors;
        }
        output.err(`resuming from ${checkpointPath} after epoch ${resume.metadata.epoch}`);
      } else output.err(`note: no ${checkpointPath} yet; starting from the beginning`);
    }

    const train = loadDataFor(graph, options.data, 'train', output);
    const test = loadDataFor(graph, options.data, 'test', output);
    const weights = loadWeightsFor(graph, options.weights, output, { partial: true, seed: options.seed ?? settings.seed ?? 0, ...options.weightNames });
    const engine = await createEngine(graph, weights, { backend: options.backend, seed: options.seed ?? settings.seed ?? 0, ...(options.threads ? { threads: options.threads } : {}) });
    output.err(`backend: ${engine.backend.name}${engine.backend.reasons.length ? ` (${engine.backend.reasons.join('; ')})` : ''}`);
    const threads = options.threads ?? defaultOrtThreads();
    const gradients = chooseGradientEngine(options.engine ?? 'auto', engine, settings.loss, train);
    if ('error' in gradients) {
      output.err(`error CNN8002: --engine ort: ${gradients.error}`);
      engine.dispose();
      return EXIT.inputErrors;
    }
    output.err(`forward and backward: ${gradients.engine === 'ort' ? `ONNX Runtime, ${threads} thread${threads === 1 ? '' : 's'}` : 'tfjs gradient tape'}${gradients.reason ? ` (${gradients.reason})` : ''}`);

    const epochs = options.epochs ?? settings.epochs ?? 5;
    const batchSize = options.batch ?? settings.batchSize ?? 64;
    const optimizer = options.lr !== undefined ? { ...(settings.optimizer ?? { kind: 'adam' as const }), learningRate: options.lr } : settings.optimizer;
    const batches = Math.ceil(train.count / batchSize);
    output.err(`training ${graph.name} on ${train.count} samples (${train.source ?? 'data'}) for ${epochs} epochs, batch ${batchSize}`);

    const bar = isTty
      ? new cliProgress.SingleBar(
          { format: 'epoch {epoch}/{epochs} |{bar}| {value}/{total} loss {loss} acc {acc} {rate} img/s eta {eta_formatted}', hideCursor: true, clearOnComplete: true, stream: process.stderr },
          cliProgress.Presets.shades_classic,
        )
      : undefined;
    const abort = new AbortController();
    const onSignal = () => abort.abort();
    process.once('SIGINT', onSignal);
    let lastLine = 0;
    const started = Date.now();
    let history;
    try {
      history = await trainModel(
        engine,
        train,
        {
          ...settings,
          epochs,
          batchSize,
          ...(optimizer ? { optimizer } : {}),
          ...(options.seed !== undefined ? { seed: options.seed } : {}),
          ...(options.learningRateScales ? { learningRateScales: options.learningRateScales } : {}),
          validation: test,
          checkpoint: { path: checkpointPath },
          ...(resume ? { resume } : {}),
          gradients: gradients.engine,
          ortThreads: threads,
          signal: abort.signal,
        },
        {
          onBatchEnd(progress) {
            const fields = { epoch: progress.epoch, epochs: progress.epochs, loss: progress.epochLoss.toFixed(4), acc: progress.epochAccuracy.toFixed(3), rate: Math.round(progress.imagesPerSecond) };
            if (bar) {
              if (progress.batch === 1) bar.start(progress.batches, 0, fields);
              bar.update(progress.batch, fields);
              if (progress.batch === progress.batches) bar.stop();
            } else if (Date.now() - lastLine > 5000 || progress.batch === progress.batches) {
              lastLine = Date.now();
              const elapsed = (Date.now() - started) / 1000;
              const done = (progress.epoch - 1 - (resume?.metadata.epoch ?? 0)) * progress.batches + progress.batch;
              const total = (progress.epochs - (resume?.metadata.epoch ?? 0)) * progress.batches;
              output.err(`epoch ${progress.epoch}/${progress.epochs} batch ${progress.batch}/${progress.batches} loss ${fields.loss} acc ${fields.acc} ${fields.rate} img/s eta ${formatDuration((elapsed / done) * (total - done))}`);
            }
          },
          onEpochEnd(summary) {
            const validation = summary.validation ? ` — test loss ${summary.validation.loss.toFixed(4)} acc ${summary.validation.accuracy.toFixed(4)}` : '';
            output.err(`epoch ${summary.epoch}: loss ${summary.loss.toFixed(4)} acc ${summary.accuracy.toFixed(4)}${validation} (${summary.seconds.toFixed(1)} s, ${Math.round(summary.imagesPerSecond)} img/s)`);
          },
        },
      );
    } finally {
      process.off('SIGINT', onSignal);
      bar?.stop();
    }
    void batches;

    const finalWeights = await engine.getWeights();
    const weightsPath = path.join(options.out, `${graph.name}.safetensors`);
    writeWeightsFile(weightsPath, finalWeights, { format: 'convspec-weights', model: graph.name, spec: path.basename(file) });
    writeFileAtomic(path.join(options.out, 'history.json'), Buffer.from(`${JSON.stringify({ model: graph.name, backend: engine.backend.name, gradients: gradients.engine, ...history }, null, 2)}\n`));
    const result = await evaluate(engine, test, { batchSize: Math.max(batchSize, 256), ...(gradients.engine === 'ort' ? { runtime: 'ort' as const, ortThreads: threads } : {}) });
    engine.dispose();
    output.out(`${graph.name}: test accuracy ${(result.accuracy * 100).toFixed(2)}%, loss ${result.loss.toFixed(4)} on ${result.count} samples (${history.stopReason})`);
    output.out(`wrote ${weightsPath}, ${checkpointPath} and ${path.join(options.out, 'history.json')}`);
    return history.stopReason === 'non-finite-loss' ? EXIT.inputErrors : EXIT.ok;
  } catch (error) {
    if (error instanceof CommandFailure) return error.code;
    if (error instanceof UsageError) throw error;
    const name = (error as Error).name;
    if (name === 'TrainingError' || name === 'EngineError' || name === 'LoweringError' || name === 'OptimizerError' || name === 'CheckpointError') {
      output.err(`error CNN8007: ${(error as Error).message}`);
      return EXIT.inputErrors;
    }
    throw error;
  }
}

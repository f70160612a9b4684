/**
 * `convspec prune SPEC --weights FILE --sparsity X [--structured] [--finetune-epochs N] [--data PATH] [--batch N]
 *  [--lr X] [--exclude NAME|GLOB]… [--eval-samples N] [--engine auto|tfjs|ort] [--no-latency] [--json] -o DIR`
 *
 * Prunes (../../runtime/prune.ts does the work): `--structured` removes the fraction X of the filters of every
 * dependency group (`prune-filters`: the graph shrinks); otherwise the fraction X of every conv/dense weight
 * tensor becomes zero (`prune-magnitude`), following TF-MOT's polynomial schedule during fine-tuning with the
 * masks re-applied after every optimizer step. Fine-tuning trains as `convspec train` does (weights in the tfjs
 * engine, forward and backward passes on ONNX Runtime on a CPU unless `--engine tfjs`) with the spec's `train`
 * settings (`--batch`, `--lr` override them) on the training split of `--data` (default the spec's data).
 * Writes
 *   DIR/<Model>.cnn            the pruned spec (printGraph; it elaborates back to the same graph, checked here)
 *   DIR/<Model>.safetensors    its weights
 *   DIR/<Model>.onnx           its inference export (BN folded)
 *   DIR/<Model>.prune.json     params, MACs, size, accuracy and ONNX Runtime latency before and after
 * and prints the comparison.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Option, type Command } from 'commander';
import type { ElaborateOptions } from '../../elaborate/elaborate.js';
import { EXIT, groupDigits, renderTable, UsageError, type Output } from '../output.js';
import { positiveInteger, type BackendFlag, type OptimizeCommandContext } from './quantize.js';

export interface PruneCommandOptions {
  readonly weights: string;
  readonly sparsity: number;
  readonly structured: boolean;
  readonly finetuneEpochs: number;
  readonly data?: string;
  readonly batch?: number;
  readonly lr?: number;
  readonly exclude: readonly string[];
  readonly evalSamples?: number;
  readonly latency: boolean;
  readonly json: boolean;
  readonly out: string;
  readonly seed?: number;
  readonly backend: BackendFlag;
  /** Where fine-tuning's forward and backward passes run (as `convspec train --engine`); default `auto`. */
  readonly engine?: 'auto' | 'tfjs' | 'ort';
  readonly elaborate: ElaborateOptions;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, ...value.split(',').map((v) => v.trim()).filter((v) => v.length > 0)];
}

export function registerPruneCommand(program: Command, context: OptimizeCommandContext): void {
  context
    .specOptions(
      program
        .command('prune')
        .description('structured or unstructured pruning with fine-tuning; pruned spec, weights, ONNX and a report')
        .argument('<spec>', 'spec file')
        .requiredOption('--weights <file>', 'weights (checkpoint, safetensors or ONNX)')
        .requiredOption('--sparsity <x>', 'fraction to prune, in [0, 1)', (v) => {
          const x = Number(v);
          if (!(x >= 0 && x < 1)) throw new UsageError(`--sparsity expects a number in [0, 1), found '${v}'`);
          return x;
        })
        .requiredOption('-o, --out <dir>', 'output directory')
        .option('--structured', 'remove whole filters (the model shrinks) instead of zeroing single weights')
        .option('--finetune-epochs <n>', 'fine-tuning epochs after (or, unstructured, while) pruning', (v) => {
          if (!/^\d+$/.test(v)) throw new UsageError(`--finetune-epochs expects a non-negative integer, found '${v}'`);
          return Number(v);
        }, 0)
        .option('--data <path>', "data: a folder of IDX files, 'fashion-mnist', 'fashion-mnist-subset'… (default: the spec's)")
        .option('--batch <n>', 'fine-tuning batch size (default: the spec’s)', positiveInteger('--batch'))
        .option('--lr <x>', 'fine-tuning learning rate (default: the spec’s)', (v) => {
          const x = Number(v);
          if (!(x > 0)) throw new UsageError(`--lr expects a positive number, found '${v}'`);
          return x;
        })
        .option('--exclude <name|glob>', 'layers to leave alone (repeatable, or comma-separated)', collect, [])
        .option('--eval-samples <n>', 'test samples for accuracy (default: all)', positiveInteger('--eval-samples'))
        .option('--seed <n>', 'random seed', (v) => Number(v))
        .option('--no-latency', 'skip the ONNX Runtime latency measurement')
        .option('--json', 'print the JSON report')
        .addOption(context.backendOption())
        .addOption(new Option('--engine <engine>', "fine-tuning's forward and backward passes: ONNX Runtime (ort), the tfjs tape, or auto (ort on a CPU backend when it can express the model)").choices(['auto', 'tfjs', 'ort']).default('auto')),
    )
    .action(async (file: string, flags: Omit<PruneCommandOptions, 'elaborate' | 'structured'> & { structured?: boolean }) => {
      context.setStatus(await runPrune(file, { ...flags, structured: Boolean(flags.structured), elaborate: context.elaborateOptions(flags as never) }, context.output));
    });
}

function percent(value: number | undefined): string {
  return value === undefined ? '-' : `${(100 * value).toFixed(2)}%`;
}

export async function runPrune(file: string, options: PruneCommandOptions, output: Output): Promise<number> {
  // Loaded here, not at the top: registering the command must not slow down `convspec check`.
  const { CommandFailure, loadDataFor, loadGraph, loadWeightsFor } = await import('../session.js');
  try {
    const graph = loadGraph(file, options.elaborate, output);
    const weights = loadWeightsFor(graph, options.weights, output, { required: true });
    const { readTrainingSettings } = await import('../../runtime/tfjs/index.js');
    const { settings, problems } = readTrainingSettings(graph.training);
    for (const problem of problems) output.err(`error: train setting ${problem}`);
    if (problems.length > 0) return EXIT.inputErrors;
    // Without fine-tuning the training split only re-estimates batch-norm statistics: optional then.
    const optionalTrainingSplit = () => {
      try {
        return loadDataFor(graph, options.data, 'train', { out: () => undefined, err: () => undefined });
      } catch (error) {
        if (!(error instanceof CommandFailure)) throw error;
        output.err('note: no training split to re-estimate batch-norm statistics on after pruning');
        return undefined;
      }
    };
    const train = options.finetuneEpochs > 0 ? loadDataFor(graph, options.data, 'train', output) : optionalTrainingSplit();
    const test = loadDataFor(graph, options.data, 'test', output);
    const optimizer = options.lr !== undefined ? { ...(settings.optimizer ?? { kind: 'adam' as const }), learningRate: options.lr } : settings.optimizer;

    const { pruneModel } = await import('../../runtime/prune.js');
    let lastLine = 0;
    const result = await pruneModel(graph, weights, {
      sparsity: options.sparsity,
      structured: options.structured,
      finetuneEpochs: options.finetuneEpochs,
      ...(train ? { train } : {}),
      test,
      batchSize: options.batch ?? settings.batchSize ?? 64,
      ...(optimizer ? { optimizer } : {}),
      training: {
        ...(settings.loss ? { loss: settings.loss } : {}),
        ...(settings.labelSmoothing !== undefined ? { labelSmoothing: settings.labelSmoothing } : {}),
        ...(settings.augmentation ? { augmentation: settings.augmentation } : {}),
        ...(settings.clipNorm !== undefined ? { clipNorm: settings.clipNorm } : {}),
        ...(settings.schedule ? { schedule: settings.schedule } : {}),
        ...(settings.warmup ? { warmup: settings.warmup } : {}),
      },
      exclude: options.exclude,
      backend: options.backend,
      gradients: options.engine ?? 'auto',
      seed: options.seed ?? settings.seed ?? 0,
      ...(options.evalSamples ? { evaluationLimit: options.evalSamples } : {}),
      latency: options.latency ? {} : false,
      log: (line) => output.err(line),
      onBatch: (step, total, loss, sparsity) => {
        if (Date.now() - lastLine > 10_000 || step === total) {
          lastLine = Date.now();
          output.err(`step ${step}/${total} loss ${loss.toFixed(4)}${options.structured ? '' : ` sparsity ${sparsity.toFixed(3)}`}`);
        }
      },
    });
    for (const d of result.diagnostics.filter((d) => d.severity === 'error')) output.err(`${d.severity} ${d.code}: ${d.message}`);
    const refusals = result.diagnostics.filter((d) => d.code === 'CNN7003');
    for (const d of refusals) output.err(`note ${d.code}: ${d.message}`);
    if (result.onnx.length === 0) {
      output.err(`✗ ${file}: the pruned model has no ONNX export`);
      return EXIT.inputErrors;
    }

    fs.mkdirSync(options.out, { recursive: true });
    const { printGraph } = await import('../../ir/print.js');
    const { writeFileAtomic } = await import('../../runtime/data/atomic-write.js');
    const { writeWeightsFile } = await import('../../runtime/checkpoint.js');
    const report = result.report;
    const specPath = path.join(options.out, `${graph.name}.cnn`);
    const weightsPath = path.join(options.out, `${graph.name}.safetensors`);
    const onnxPath = path.join(options.out, `${graph.name}.onnx`);
    const reportPath = path.join(options.out, `${graph.name}.prune.json`);
    const header = `${graph.name} pruned by convspec (${report.mode}, sparsity ${options.sparsity}, ${options.finetuneEpochs} fine-tuning epochs) from ${path.basename(file)}`;
    writeFileAtomic(specPath, Buffer.from(printGraph(result.graph, header)));
    writeWeightsFile(weightsPath, result.weights, { format: 'convspec-weights', model: graph.name, spec: path.basename(specPath) });
    writeFileAtomic(onnxPath, result.onnx);

    // The written spec must elaborate back to the pruned graph (same names and shapes).
    const { checkSpec } = await import('../../check.js');
    const reread = checkSpec(specPath);
    const { shapeToString } = await import('../../ir/dims.js');
    const same =
      reread.ok &&
      reread.graph !== undefined &&
      reread.graph.nodes.length === result.graph.nodes.length &&
      reread.graph.nodes.every((n, i) => n.name === result.graph.nodes[i]!.name && shapeToString(n.shape) === shapeToString(result.graph.nodes[i]!.shape));
    if (!same) output.err(`warning: ${specPath} does not elaborate back to the pruned graph (a bug: please report it)`);
    const full = { ...report, specReElaborates: same, files: { spec: specPath, weights: weightsPath, onnx: onnxPath } };
    writeFileAtomic(reportPath, Buffer.from(`${JSON.stringify(full, null, 2)}\n`));

    if (options.json) output.out(JSON.stringify(full, null, 2));
    else {
      const b = report.before;
      const a = report.after;
      const ratio = (x: number, y: number) => (y > 0 ? `${((100 * (x - y)) / y).toFixed(1)}%` : '-');
      const rows = [
        ['params', groupDigits(b.params), groupDigits(a.params), ratio(a.params, b.params)],
        ['non-zero params', groupDigits(b.nonZeroParams), groupDigits(a.nonZeroParams), ratio(a.nonZeroParams, b.nonZeroParams)],
        ['MACs', groupDigits(b.macs), groupDigits(a.macs), ratio(a.macs, b.macs)],
        ['MACs (non-zero weights)', groupDigits(b.nonZeroMacs), groupDigits(a.nonZeroMacs), ratio(a.nonZeroMacs, b.nonZeroMacs)],
        ['ONNX bytes', groupDigits(b.onnxBytes), groupDigits(a.onnxBytes), ratio(a.onnxBytes, b.onnxBytes)],
        ['ONNX bytes gzipped', groupDigits(b.onnxGzipBytes), groupDigits(a.onnxGzipBytes), ratio(a.onnxGzipBytes, b.onnxGzipBytes)],
        ['accuracy', percent(b.accuracy), percent(a.accuracy), report.accuracyDeltaPoints !== undefined ? `${report.accuracyDeltaPoints >= 0 ? '+' : ''}${report.accuracyDeltaPoints.toFixed(2)} points` : '-'],
      ];
      if (b.latency && a.latency) rows.push([`ORT latency, batch ${b.latency.batch}, ${b.latency.threads} threads (median ms)`, b.latency.medianMs.toFixed(3), a.latency.medianMs.toFixed(3), ratio(a.latency.medianMs, b.latency.medianMs)]);
      output.out(renderTable(['', 'before', 'after', 'change'], rows, new Set([1, 2, 3])));
      if (report.prunedAccuracy !== undefined && options.finetuneEpochs > 0) output.out(`accuracy right after pruning, before fine-tuning: ${percent(report.prunedAccuracy)}`);
      output.out(`wrote ${specPath}, ${weightsPath}, ${onnxPath} and ${reportPath}`);
    }
    return same ? EXIT.ok : EXIT.internal;
  } catch (error) {
    if (error instanceof CommandFailure) return error.code;
    const name = (error as Error).name;
    if (name === 'TrainingError' || name === 'EngineError' || name === 'LoweringError' || name === 'OptimizerError' || name === 'DataError') {
      output.err(`error CNN8007: ${(error as Error).message}`);
      return EXIT.inputErrors;
    }
    throw error;
  }
}

/**
 * `convspec quantize SPEC --weights FILE --calib PATH -o DIR [--method minmax|percentile|entropy] [--percentile P]
 *  [--batches N] [--batch-size N] [--exclude NAME|GLOB]… [--data PATH] [--eval-samples N] [--activation-type
 *  uint8|int8] [--opset N] [--threads N] [--latency-batch N] [--no-latency] [--json]`
 *
 * Post-training int8 quantization (../../runtime/quantize.ts does the work): the inference passes (dropout
 * removal, clean-ups, BN folding), calibration on N batches of the `--calib` data's training split, the
 * `quantize` pass, then
 *   DIR/<Model>.int8.onnx       the QDQ model (checked with the official ONNX checker when python3-onnx exists)
 *   DIR/<Model>.onnx            the float model it is compared with
 *   DIR/<Model>.quantize.json   the report: per-layer parameters and SQNR, accuracy float vs int8 in ONNX Runtime
 *                               (test split of `--data`, default the calibration source), size and latency ratios
 *                               (ORT, batch 8, 2 threads), the kernels ORT runs.
 * A table goes to stdout (the JSON with `--json`). Exclusions come from `--exclude` and from `// quantize: exclude …`
 * comment lines in the spec (see `specQuantizeExclusions`). The tfjs target has no int8 arithmetic; the report
 * says so.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Option, type Command } from 'commander';
import type { ElaborateOptions } from '../../elaborate/elaborate.js';
import { EXIT, renderTable, UsageError, type Output } from '../output.js';

export type BackendFlag = 'auto' | 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';

/** What main.ts lends the commands registered from their own modules. */
export interface OptimizeCommandContext {
  readonly output: Output;
  readonly setStatus: (code: number) => void;
  readonly specOptions: (command: Command) => Command;
  readonly elaborateOptions: (flags: never) => ElaborateOptions;
  readonly backendOption: () => Option;
}

export interface QuantizeCommandOptions {
  readonly weights: string;
  readonly calib: string;
  readonly out: string;
  readonly method: 'minmax' | 'percentile' | 'entropy';
  readonly percentile?: number;
  readonly batches: number;
  readonly batchSize: number;
  readonly exclude: readonly string[];
  readonly data?: string;
  readonly evalSamples?: number;
  readonly activationType: 'uint8' | 'int8';
  readonly opset?: number;
  readonly threads: number;
  readonly latencyBatch: number;
  readonly latency: boolean;
  readonly json: boolean;
  readonly backend: BackendFlag;
  readonly elaborate: ElaborateOptions;
}

export const positiveInteger = (flag: string) => (v: string) => {
  if (!/^\d+$/.test(v) || Number(v) < 1) throw new UsageError(`${flag} expects a positive integer, found '${v}'`);
  return Number(v);
};

function collect(value: string, previous: string[]): string[] {
  return [...previous, ...value.split(',').map((v) => v.trim()).filter((v) => v.length > 0)];
}

export function registerQuantizeCommand(program: Command, context: OptimizeCommandContext): void {
  context
    .specOptions(
      program
        .command('quantize')
        .description('int8 ONNX (QDQ) with calibration, per-layer error and accuracy/size/latency report')
        .argument('<spec>', 'spec file')
        .requiredOption('--weights <file>', 'float weights (checkpoint, safetensors or ONNX)')
        .requiredOption('--calib <path>', "calibration data (training split): a folder, 'fashion-mnist', 'fashion-mnist-subset'…")
        .requiredOption('-o, --out <dir>', 'output directory')
        .addOption(new Option('--method <method>', 'calibration method').choices(['minmax', 'percentile', 'entropy']).default('minmax'))
        .option('--percentile <p>', 'percentile for --method percentile (default 99.999)', (v) => {
          const p = Number(v);
          if (!(p > 0 && p <= 100)) throw new UsageError(`--percentile expects a number in (0, 100], found '${v}'`);
          return p;
        })
        .option('--batches <n>', 'calibration batches', positiveInteger('--batches'), 10)
        .option('--batch-size <n>', 'calibration batch size', positiveInteger('--batch-size'), 32)
        .option('--exclude <name|glob>', 'layers to keep in float (repeatable, or comma-separated; a spec may also list them in `// quantize: exclude …` comment lines)', collect, [])
        .option('--data <path>', 'test data for accuracy (default: the calibration source)')
        .option('--eval-samples <n>', 'test samples for accuracy (default: all)', positiveInteger('--eval-samples'))
        .addOption(new Option('--activation-type <type>', 'activation element type in the file (uint8 is what ONNX Runtime fuses on x86-64)').choices(['uint8', 'int8']).default('uint8'))
        .option('--opset <n>', 'ONNX opset (13–21)', positiveInteger('--opset'))
        .option('--threads <n>', 'ONNX Runtime threads for latency', positiveInteger('--threads'), 2)
        .option('--latency-batch <n>', 'batch size for latency', positiveInteger('--latency-batch'), 8)
        .option('--no-latency', 'skip the latency measurement')
        .option('--json', 'print the JSON report instead of the table')
        .addOption(context.backendOption()),
    )
    .action(async (file: string, flags: Omit<QuantizeCommandOptions, 'elaborate'> & { param: string[]; inputShape: string[] }) => {
      context.setStatus(await runQuantize(file, { ...flags, elaborate: context.elaborateOptions(flags as never) }, context.output));
    });
}

function fixed(value: number | undefined, digits: number): string {
  if (value === undefined) return '';
  if (value === Number.POSITIVE_INFINITY) return '∞';
  return value.toFixed(digits);
}

export async function runQuantize(file: string, options: QuantizeCommandOptions, output: Output): Promise<number> {
  // Loaded here, not at the top: registering the command must not slow down `convspec check`.
  const { CommandFailure, loadDataFor, loadGraph, loadWeightsFor } = await import('../session.js');
  try {
    const graph = loadGraph(file, options.elaborate, output);
    const weights = loadWeightsFor(graph, options.weights, output, { required: true });
    const { resolvePassList, runPasses } = await import('../../passes/manager.js');
    await import('../../passes/index.js');
    const { DEFAULT_INFERENCE_PASSES, printPassNotes, specHash } = await import('./compile.js');
    const { specQuantizeExclusions } = await import('../../passes/quantize.js');
    const prepared = runPasses(graph, weights, resolvePassList(DEFAULT_INFERENCE_PASSES).passes);
    printPassNotes(prepared.diagnostics, false, output);
    const fromSpec = specQuantizeExclusions(fs.readFileSync(file, 'utf8'));
    if (fromSpec.length > 0) output.err(`note: the spec excludes ${fromSpec.join(', ')} from quantization`);
    const exclude = [...options.exclude, ...fromSpec];
    const unknown = exclude.filter((pattern) => !/[*?]/.test(pattern) && !prepared.graph.nodes.some((n) => n.name === pattern));
    if (unknown.length > 0) output.err(`warning: --exclude ${unknown.join(', ')} matches no layer of ${graph.name}`);

    const calibration = loadDataFor(graph, options.calib, 'train', output);
    const test = loadDataFor(graph, options.data ?? options.calib, 'test', output);
    const { quantizeModel } = await import('../../runtime/quantize.js');
    const result = await quantizeModel(prepared.graph, prepared.weights ?? weights, calibration, {
      method: options.method,
      ...(options.percentile !== undefined ? { percentile: options.percentile } : {}),
      batches: options.batches,
      batchSize: options.batchSize,
      exclude,
      ...(options.opset !== undefined ? { opset: options.opset } : {}),
      activationType: options.activationType,
      backend: options.backend,
      ...(specHash(file) ? { specHash: specHash(file)! } : {}),
      test,
      ...(options.evalSamples ? { evaluationLimit: options.evalSamples } : {}),
      latency: options.latency ? { batch: options.latencyBatch, threads: options.threads } : false,
      log: (line) => output.err(line),
    });
    const errors = result.diagnostics.filter((d) => d.severity === 'error');
    for (const error of errors) output.err(`${error.severity} ${error.code}: ${error.message}`);
    if (!result.report || errors.length > 0) {
      output.err(`✗ ${file}: nothing written`);
      return EXIT.inputErrors;
    }
    const report = result.report;

    fs.mkdirSync(options.out, { recursive: true });
    const { writeFileAtomic } = await import('../../runtime/data/atomic-write.js');
    const floatPath = path.join(options.out, `${graph.name}.onnx`);
    const int8Path = path.join(options.out, `${graph.name}.int8.onnx`);
    const reportPath = path.join(options.out, `${graph.name}.quantize.json`);
    writeFileAtomic(floatPath, result.floatBytes);
    writeFileAtomic(int8Path, result.int8Bytes);
    const { checkManyOnnx } = await import('../../codegen/onnx-checker.js');
    const verdicts = await checkManyOnnx([floatPath, int8Path]);
    const checker = Object.fromEntries(verdicts.map((v) => [path.basename(v.path), v.ok === null ? `not checked (${v.reason})` : v.ok ? 'valid' : `INVALID: ${v.message}`]));
    const full = { ...report, files: { float: floatPath, int8: int8Path }, checker };
    writeFileAtomic(reportPath, Buffer.from(`${JSON.stringify(full, null, 2)}\n`));

    if (options.json) output.out(JSON.stringify(full, null, 2));
    else {
      const rows = report.layers.map((l) => [
        l.name,
        l.role === 'int8' ? l.op : l.role === 'pass-through' ? `${l.op} (pass-through)` : `${l.op} (folded)`,
        l.inputs[0] ? `${l.inputs[0].scale.toPrecision(3)}/${l.inputs[0].zeroPoint}` : '',
        l.output ? `${l.output.scale.toPrecision(3)}/${l.output.zeroPoint}` : '',
        fixed(l.weightSqnrDb, 1),
        fixed(l.outputSqnrDb, 1),
      ]);
      output.out(renderTable(['layer', 'int8 as', 'in scale/zp', 'out scale/zp', 'W SQNR dB', 'out SQNR dB'], rows, new Set([4, 5])));
      for (const line of report.float) output.out(`float: ${line}`);
      if (report.accuracy) {
        const a = report.accuracy;
        const fake = a.int8FakeQuant
          ? `; on the first ${a.int8FakeQuant.samples}: int8 fake-quant tfjs ${(100 * a.int8FakeQuant.accuracy).toFixed(2)}%, int8 ORT ${(100 * a.int8FakeQuant.int8OrtSameSamples).toFixed(2)}%`
          : '';
        output.out(`accuracy (ONNX Runtime, ${a.samples} test samples): float ${(100 * a.floatOrt).toFixed(2)}%, int8 ${(100 * a.int8Ort).toFixed(2)}% (${a.deltaPoints >= 0 ? '+' : ''}${a.deltaPoints.toFixed(2)} points)${fake}`);
      }
      output.out(`size: float ${report.size.floatBytes} B, int8 ${report.size.int8Bytes} B (${report.size.ratio.toFixed(2)}× smaller)`);
      if (report.latency) {
        const l = report.latency;
        output.out(`latency (ONNX Runtime, batch ${l.batch}, ${l.threads} threads, median): float ${l.float.medianMs.toFixed(3)} ms, int8 ${l.int8.medianMs.toFixed(3)} ms (${l.speedup.toFixed(2)}× faster)`);
      }
      if (report.ortKernels) {
        const kernels = Object.entries(report.ortKernels.int8).map(([op, n]) => `${op.replace(/^com\.microsoft\./, '')}×${n}`).join(', ');
        output.out(`ONNX Runtime runs: ${kernels}${report.ortKernels.unfusedFloatOps > 0 ? ` (${report.ortKernels.unfusedFloatOps} float compute ops left)` : ''}`);
      }
      output.out(`checker: ${Object.entries(checker).map(([f, v]) => `${f} ${v}`).join('; ')}`);
      for (const note of report.notes) output.out(`note: ${note}`);
      output.out(`wrote ${int8Path}, ${floatPath} and ${reportPath}`);
    }
    return verdicts.some((v) => v.ok === false) ? EXIT.internal : EXIT.ok;
  } catch (error) {
    if (error instanceof CommandFailure) return error.code;
    const name = (error as Error).name;
    if (name === 'EngineError' || name === 'LoweringError' || name === 'DataError' || name === 'OrtEngineError') {
      output.err(`error CNN8007: ${(error as Error).message}`);
      return EXIT.inputErrors;
    }
    throw error;
  }
}

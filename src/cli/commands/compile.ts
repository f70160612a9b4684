/**
 * `convspec compile SPEC --target onnx|tfjs -o DIR [--passes LIST] [--disable-pass X] [--weights FILE] [--opset N]`
 *
 * Checks the spec, loads weights (or initialises them: He-normal, seed 0, with a note), runs the passes —
 * by default the inference clean-ups and batch-norm folding — and writes `DIR/<Model>.onnx` or
 * `DIR/<Model>/model.json` + shards, atomically. Every pass reports what it applied and what it refused.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkSpec } from '../../check.js';
import { diagnostic, type Diagnostic } from '../../diagnostics.js';
import type { ElaborateOptions } from '../../elaborate/elaborate.js';
import type { Graph } from '../../ir/graph.js';
import { initializeWeights, type Weights } from '../../ir/weights.js';
import { resolvePassList, runPasses } from '../../passes/manager.js';
import '../../passes/index.js';
import { writeFileAtomicAsync } from '../../runtime/data/atomic-write.js';
import { loadWeightsFile, type WeightNameMapping } from '../../runtime/weights-file.js';
import { countSummary, EXIT, printDiagnostics, type Output } from '../output.js';

/** Passes an inference export runs unless `--passes` says otherwise. */
export const DEFAULT_INFERENCE_PASSES = 'eliminate-dropout,eliminate-dead,fold-pad,fold-bn';

export interface CompileOptions {
  readonly target: 'onnx' | 'tfjs';
  readonly out: string;
  readonly passes: string;
  readonly disablePass: readonly string[];
  readonly printAfter: readonly string[];
  readonly timePasses: boolean;
  readonly weights?: string;
  /** `--map` / `--map-file`: how the weights file names our parameters. */
  readonly weightNames?: WeightNameMapping;
  readonly opset?: number;
  readonly quantizeBytes?: 1 | 2;
  readonly verbose?: boolean;
  /** ONNX: declare every intermediate tensor's shape. */
  readonly valueInfo?: boolean;
  readonly elaborate: ElaborateOptions;
}

/**
 * Pass notes: every refusal in full (a skipped rewrite is never silent); applied rewrites counted per pass, or
 * listed one by one with `verbose`.
 */
export function printPassNotes(notes: readonly Diagnostic[], verbose: boolean | undefined, output: Output): void {
  const appliedByPass = new Map<string, string[]>();
  for (const note of notes) {
    if (note.code === 'CNN7004' && !verbose) {
      const [pass, ...rest] = note.message.split(': ');
      appliedByPass.set(pass!, [...(appliedByPass.get(pass!) ?? []), rest.join(': ')]);
    } else output.err(`${note.severity} ${note.code}: ${note.message}`);
  }
  for (const [pass, lines] of appliedByPass) {
    output.err(lines.length === 1 ? `note CNN7004: ${pass}: ${lines[0]}` : `note CNN7004: ${pass}: ${lines.length} rewrites (e.g. ${lines[0]}); --verbose lists them`);
  }
}

/** sha256 of the spec's text, recorded in exported metadata. */
export function specHash(file: string): string | undefined {
  try {
    return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  } catch {
    return undefined;
  }
}

/** Check + weights + passes: the prepared graph every exporter starts from. */
export function prepareGraph(
  file: string,
  options: Pick<CompileOptions, 'passes' | 'disablePass' | 'printAfter' | 'timePasses' | 'weights' | 'weightNames' | 'elaborate'>,
  output: Output,
): { graph: Graph; weights: Weights; diagnostics: Diagnostic[] } | undefined {
  const checked = checkSpec(file, options.elaborate);
  const notes: Diagnostic[] = [];
  if (!checked.ok || !checked.graph) {
    printDiagnostics(output, checked.diagnostics, checked.sources, 'text');
    output.err(`✗ ${file}: ${countSummary(checked.diagnostics)}`);
    return undefined;
  }
  printDiagnostics(output, checked.diagnostics, checked.sources, 'text');
  let weights: Weights;
  if (options.weights) {
    const loaded = loadWeightsFile(options.weights, checked.graph, options.weightNames);
    printDiagnostics(output, loaded.diagnostics, checked.sources, 'text');
    if (!loaded.weights) {
      output.err(`✗ ${options.weights}: ${countSummary(loaded.diagnostics)}`);
      return undefined;
    }
    weights = loaded.weights;
  } else {
    weights = initializeWeights(checked.graph, 0);
    notes.push(diagnostic('passApplied', undefined, ['weights', 'no --weights given: initialised (He uniform, seed 0)']));
  }
  const { passes, diagnostics } = resolvePassList(options.passes, options.disablePass);
  if (diagnostics.length > 0) {
    printDiagnostics(output, diagnostics, checked.sources, 'text');
    return undefined;
  }
  const result = runPasses(checked.graph, weights, passes, {
    overwriteWeights: true,
    printAfter: options.printAfter,
    timePasses: options.timePasses,
    log: (text) => output.err(text),
  });
  return { graph: result.graph, weights: result.weights ?? weights, diagnostics: [...notes, ...result.diagnostics] };
}

function describeBytes(bytes: number): string {
  return bytes >= 2 ** 20 ? `${(bytes / 2 ** 20).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;
}

export async function runCompile(file: string, options: CompileOptions, output: Output): Promise<number> {
  const prepared = prepareGraph(file, options, output);
  if (!prepared) return EXIT.inputErrors;
  printPassNotes(prepared.diagnostics, options.verbose, output);
  fs.mkdirSync(options.out, { recursive: true });
  if (options.target === 'onnx') {
    const { emitOnnx } = await import('../../codegen/onnx.js');
    const emitted = emitOnnx(prepared.graph, prepared.weights, { opset: options.opset, specHash: specHash(file), valueInfo: options.valueInfo === true });
    const errors = emitted.diagnostics.filter((d) => d.severity === 'error');
    printDiagnostics(output, emitted.diagnostics, new Map(), 'text');
    if (errors.length > 0 || emitted.encoded.byteLength === 0) {
      output.err(`✗ ${file}: nothing written (${countSummary(emitted.diagnostics)})`);
      return EXIT.inputErrors;
    }
    const target = path.join(options.out, `${prepared.graph.name}.onnx`);
    await writeFileAtomicAsync(target, emitted.encoded.segments);
    output.out(`wrote ${target} (${describeBytes(emitted.encoded.byteLength)}, opset ${options.opset ?? 17}, ${prepared.graph.nodes.length} layers)`);
    return EXIT.ok;
  }
  const { emitTfjs, writeTfjsModel } = await import('../../codegen/tfjs.js');
  const emitted = emitTfjs(prepared.graph, prepared.weights, options.quantizeBytes ? { quantizeBytes: options.quantizeBytes } : {});
  printDiagnostics(output, emitted.diagnostics, new Map(), 'text');
  if (emitted.diagnostics.some((d) => d.severity === 'error')) {
    output.err(`✗ ${file}: nothing written (${countSummary(emitted.diagnostics)})`);
    return EXIT.inputErrors;
  }
  const directory = writeTfjsModel(options.out, prepared.graph.name, emitted);
  const total = [...emitted.files.values()].reduce((sum, bytes) => sum + bytes.length, 0);
  output.out(`wrote ${directory}/model.json and ${emitted.files.size - 1} weight shard(s) (${describeBytes(total)})`);
  return EXIT.ok;
}

/**
 * `convspec import MODEL.onnx -o DIR [--name Model] [--flat]`
 *
 * ONNX graph → `DIR/<Model>.cnn` (readable: repeated structure folded into blocks where that reproduces the graph,
 * see src/import/print-blocks.ts) + `DIR/<Model>.safetensors` holding every parameter under its layer's name, the
 * file `--weights` takes. Before anything is written the spec is elaborated again and compared with the imported
 * graph layer by layer, and the weights are checked against its parameters; an ONNX file with ops the language
 * cannot express gives one CNN8006 per op type (all of them in one run), exit 1, and no files.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { diagnostic, type Diagnostic } from '../../diagnostics.js';
import { differenceFromGraph, printImportedSpec } from '../../import/print-blocks.js';
import { importOnnx, sanitizeIdentifier } from '../../import/onnx-import.js';
import { graphParameters, parameterSize } from '../../ir/params.js';
import { checkWeights } from '../../ir/weights.js';
import { writeWeightsFile } from '../../runtime/checkpoint.js';
import { writeFileAtomic } from '../../runtime/data/atomic-write.js';
import { countSummary, EXIT, groupDigits, printDiagnostics, UsageError, type Output } from '../output.js';

export interface ImportCommandOptions {
  readonly out: string;
  /** The model name (an identifier); default the ONNX graph's name, else the file name. */
  readonly name?: string;
  /** Print one statement per layer, without recognising blocks. */
  readonly flat?: boolean;
}

/** Imports `file`; resolves to the exit code. */
export async function runImport(file: string, options: ImportCommandOptions, output: Output): Promise<number> {
  if (options.name !== undefined && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(options.name)) throw new UsageError(`--name expects an identifier, found '${options.name}'`);
  const fail = (diagnostics: readonly Diagnostic[]): number => {
    printDiagnostics(output, diagnostics, new Map(), 'text');
    output.err(`✗ ${file}: ${countSummary(diagnostics)}; nothing written`);
    return EXIT.inputErrors;
  };
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return fail([diagnostic('cannotReadFile', undefined, [file, code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'a directory, not an ONNX file' : (error as Error).message])]);
  }
  if (bytes.length === 0) return fail([diagnostic('cannotReadFile', undefined, [file, 'the file is empty'])]);
  const stem = sanitizeIdentifier(path.basename(file).replace(/\.onnx$/i, ''));
  const imported = importOnnx(bytes, { path: file, ...(options.name ? { modelName: options.name } : {}), defaultName: stem.charAt(0).toUpperCase() + stem.slice(1) });
  const graph = imported.graph;
  if (!graph || imported.diagnostics.some((d) => d.severity === 'error')) return fail(imported.diagnostics);
  const problems = checkWeights(graph, imported.weights);
  if (problems.length > 0) {
    return fail([...imported.diagnostics, diagnostic('runtimeFailure', undefined, [`the imported weights do not fit the imported graph (${problems.length} problems, e.g. ${JSON.stringify(problems[0])})`])]);
  }

  const specFile = `${graph.name}.cnn`;
  const weightsFile = `${graph.name}.safetensors`;
  const header = [
    `${graph.name}, imported by 'convspec import' from ${path.basename(file)}${imported.producer ? ` (written by ${imported.producer}${imported.opset ? `, opset ${imported.opset}` : ''})` : ''}.`,
    `Weights: ${weightsFile} (pass it with --weights). Layer names are the weights' names.`,
  ].join('\n');
  const printed = printImportedSpec(graph, { header, blocks: !options.flat });
  if (printed.blocks.length === 0) {
    // The flat form must read back too: check it before writing anything.
    const difference = differenceFromGraph(printed.text, graph, specFile);
    if (difference !== undefined) return fail([...imported.diagnostics, diagnostic('runtimeFailure', undefined, [`the imported graph cannot be written as a spec: ${difference}`])]);
  }

  fs.mkdirSync(options.out, { recursive: true });
  const weightsPath = path.join(options.out, weightsFile);
  const specPath = path.join(options.out, specFile);
  const ordered = new Map(graphParameters(graph.nodes).map((p) => [p.name, imported.weights.get(p.name)!]));
  writeWeightsFile(weightsPath, ordered, { model: graph.name, source: path.basename(file) });
  writeFileAtomic(specPath, Buffer.from(printed.text, 'utf8'));

  printDiagnostics(output, imported.diagnostics, new Map(), 'text');
  const parameters = graphParameters(graph.nodes).filter((p) => p.learnable).reduce((sum, p) => sum + parameterSize(p), 0);
  output.out(`imported ${graph.name} from ${file}: ${graph.nodes.length} layers, ${groupDigits(parameters)} parameters`);
  for (const block of printed.blocks) {
    const shown = block.instances.slice(0, 4).join(', ') + (block.instances.length > 4 ? ', …' : '');
    output.out(`  block ${block.name}(${block.parameters.join(', ')}): ${block.instances.length} instances (${shown})`);
  }
  if (printed.fallback) output.err(`note: repeated structure was found but folding it into blocks changed the graph (${printed.fallback}); the spec is flat`);
  else if (printed.blocks.length === 0 && !options.flat) output.out('  no repeated structure to fold into blocks: the spec is flat');
  output.out(`wrote ${specPath} and ${weightsPath}`);
  return EXIT.ok;
}

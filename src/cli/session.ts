/**
 * What the runtime commands (train, eval, run, quantize, prune, viz) share: a checked spec, its weights, its data
 * and an engine, each failure turned into printed diagnostics and an exit code rather than an exception.
 */
import { checkSpec } from '../check.js';
import { diagnostic } from '../diagnostics.js';
import type { ElaborateOptions } from '../elaborate/elaborate.js';
import { dimToString } from '../ir/dims.js';
import type { Graph, SettingValue } from '../ir/graph.js';
import { initializeWeights, type Weights } from '../ir/weights.js';
import { DataError } from '../runtime/data/data-error.js';
import { filterClasses, loadDataset, type Dataset } from '../runtime/data/dataset.js';
import { loadWeightsFile, type LoadWeightsOptions } from '../runtime/weights-file.js';
import { countSummary, EXIT, printDiagnostics, type Output } from './output.js';

/** Thrown by the helpers below after they printed why; the command exits with `code`. */
export class CommandFailure extends Error {
  constructor(
    readonly code: number,
    message = 'command failed',
  ) {
    super(message);
  }
}

export function loadGraph(file: string, options: ElaborateOptions, output: Output): Graph {
  const checked = checkSpec(file, options);
  printDiagnostics(output, checked.diagnostics, checked.sources, 'text');
  if (!checked.ok || !checked.graph) {
    output.err(`✗ ${file}: ${countSummary(checked.diagnostics)}`);
    throw new CommandFailure(EXIT.inputErrors);
  }
  return checked.graph;
}

export function loadWeightsFor(graph: Graph, file: string | undefined, output: Output, options: LoadWeightsOptions & { required?: boolean } = {}): Weights {
  if (!file) {
    if (options.required) {
      output.err('error: --weights FILE is required');
      throw new CommandFailure(EXIT.usage);
    }
    return initializeWeights(graph, options.seed ?? 0);
  }
  const loaded = loadWeightsFile(file, graph, options);
  printDiagnostics(output, loaded.diagnostics, new Map(), 'text');
  if (!loaded.weights) {
    output.err(`✗ ${file}: ${countSummary(loaded.diagnostics)}`);
    throw new CommandFailure(EXIT.inputErrors);
  }
  if (options.partial) output.err(`loaded ${loaded.loaded.length} tensors from ${file}; the others keep their initial values`);
  return loaded.weights;
}

function settingToPath(value: SettingValue | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** Class list from a `classes: [0, 1, 2]` setting. */
function settingToClasses(value: SettingValue | undefined): number[] | undefined {
  if (Array.isArray(value) && value.every((v) => typeof v === 'number')) return value as number[];
  return undefined;
}

/**
 * Loads a split of the data a graph trains on: `--data`, else the spec's `data` setting, else the embedded
 * Fashion-MNIST subset; filtered to the spec's `classes` (relabelled 0..k−1) and checked against the input shape.
 */
export function loadDataFor(graph: Graph, dataFlag: string | undefined, split: 'train' | 'test', output: Output, options: { classes?: readonly number[] } = {}): Dataset {
  const source = dataFlag ?? settingToPath(graph.training['data']) ?? 'fashion-mnist-subset';
  const input = graph.inputs[0]!;
  const spatial = input.shape.slice(1).map((d) => (typeof d === 'number' ? d : undefined));
  let dataset: Dataset;
  try {
    dataset = loadDataset(source, {
      split,
      ...(spatial[0] === 1 || spatial[0] === 3 ? { channels: spatial[0] } : {}),
      ...(spatial[1] ? { height: spatial[1] } : {}),
      ...(spatial[2] ? { width: spatial[2] } : {}),
    });
  } catch (error) {
    const reason = error instanceof DataError ? error.message : String(error);
    printDiagnostics(output, [diagnostic('dataUnreadable', undefined, [source, reason])], new Map(), 'text');
    throw new CommandFailure(EXIT.inputErrors);
  }
  for (const note of dataset.notes ?? []) output.err(`note: ${note}`);
  const classes = options.classes ?? settingToClasses(graph.training['classes']);
  if (classes) dataset = filterClasses(dataset, classes, { relabel: true });
  const expected = input.shape.slice(1);
  const matches = dataset.shape.length === expected.length && dataset.shape.every((d, i) => typeof expected[i] !== 'number' || expected[i] === d);
  if (!matches) {
    const reason = `samples are [${dataset.shape.join(', ')}] but input '${input.name}' takes [${expected.map(dimToString).join(', ')}] per sample`;
    printDiagnostics(output, [diagnostic('dataUnreadable', undefined, [source, reason])], new Map(), 'text');
    throw new CommandFailure(EXIT.inputErrors);
  }
  return dataset;
}

/**
 * `--weights FILE`: weights for a graph from a convspec checkpoint, a plain safetensors file, or an ONNX file's
 * initializers. The format is recognised by content, not by extension.
 *
 * Tensors are matched to the graph's parameters by name and shape, through an optional explicit name mapping,
 * ours → theirs (`--map ours=theirs`, `--map-file FILE.json`):
 *   - `"backbone.conv1.weight": "conv1.weight"`  one tensor;
 *   - `"backbone.": "features."`  a prefix (keys ending in '.'; the longest matching prefix wins); the value may be
 *     empty (`"backbone.": ""` strips the prefix) and the key may be empty (`"": "model."` prepends to every name).
 * Exact entries win over prefixes; a `--map` entry over the same key of the file.
 *
 * Every unmatched or mismatched tensor is a diagnostic naming it, with the expected and the found shape:
 *   - a parameter the file lacks: CNN8002, an error, or with `partial` a note (it keeps its initial value: transfer
 *     learning loads a backbone and trains a new head);
 *   - a tensor whose shape differs: CNN8003, an error also with `partial` (a same-named layer of another size is
 *     most likely a mistake; rename the layer or map the name away);
 *   - a tensor no parameter asks for: CNN8004, a warning;
 *   - with `partial`, a file none of whose tensors fits: CNN8001 (almost surely the wrong file or a missing map).
 * A file that cannot be read (missing, empty, truncated, not safetensors/ONNX, a dtype other than float32, random
 * bytes) is CNN8001 with the reason; nothing here throws on bad input.
 */
import * as fs from 'node:fs';
import { diagnostic, DiagnosticBag, type Diagnostic } from '../diagnostics.js';
import type { Graph } from '../ir/graph.js';
import { graphParameters } from '../ir/params.js';
import { initializeWeights, type WeightTensor } from '../ir/weights.js';
import { decodeModel, tensorProtoToArray } from '../codegen/onnx-model.js';
import { CheckpointError, decodeCheckpoint, decodeSafetensors } from './checkpoint.js';

export interface LoadWeightsOptions {
  /** Keep initial values for parameters the file lacks. */
  readonly partial?: boolean;
  /** Our parameter name → the file's tensor name (or a prefix mapping `ours.` → `theirs.`). */
  readonly mapping?: Readonly<Record<string, string>>;
  /** A JSON file holding more of the mapping (`mapping` wins on the same key). */
  readonly mappingFile?: string;
  readonly seed?: number;
}

/** The name-mapping part of the options, as the CLI's `--map` and `--map-file` give it. */
export type WeightNameMapping = Pick<LoadWeightsOptions, 'mapping' | 'mappingFile'>;

export interface LoadedWeights {
  readonly weights: Map<string, WeightTensor> | undefined;
  readonly diagnostics: Diagnostic[];
  /** Parameters that came from the file. */
  readonly loaded: readonly string[];
  readonly format: 'checkpoint' | 'safetensors' | 'onnx' | undefined;
}

function shapeText(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** Reads every float tensor a file holds, by name. Throws `Error` with a readable message on bad files. */
export function readTensorFile(path: string): { tensors: Map<string, WeightTensor>; format: 'checkpoint' | 'safetensors' | 'onnx' } {
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(path);
  } catch (error) {
    throw new Error((error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message);
  }
  if (bytes.length === 0) throw new Error('the file is empty');
  // safetensors: an 8-byte little-endian header length, then a JSON object.
  const looksLikeSafetensors = bytes.length >= 9 && bytes[8] === 0x7b;
  if (looksLikeSafetensors) {
    try {
      const contents = decodeSafetensors(bytes, path);
      if (contents.metadata['format'] === 'convspec-checkpoint') return { tensors: decodeCheckpoint(bytes, path).weights, format: 'checkpoint' };
      return { tensors: contents.tensors, format: 'safetensors' };
    } catch (error) {
      if (error instanceof CheckpointError) throw new Error(error.message.replace(`${path}: `, ''));
      throw error;
    }
  }
  let model;
  try {
    model = decodeModel(bytes, path);
  } catch {
    throw new Error('neither a safetensors/convspec checkpoint nor an ONNX model');
  }
  const tensors = new Map<string, WeightTensor>();
  const otherTypes = new Set<string>();
  for (const initializer of model.graph.initializer ?? []) {
    let array;
    try {
      array = tensorProtoToArray(initializer, path);
    } catch (error) {
      throw new Error(`initializer '${initializer.name ?? ''}': ${(error as Error).message.replace(`${path}: `, '')}`);
    }
    if (array.dataType !== 'float32' && array.dataType !== 'float64') {
      otherTypes.add(array.dataType);
      continue;
    }
    tensors.set(array.name, { shape: array.dims.map(Number), data: Float32Array.from(array.data as ArrayLike<number>) });
  }
  // An Identity of an initializer names the same tensor (equal initializers stored once, by convspec or torch.onnx).
  for (const node of model.graph.node ?? []) {
    const source = tensors.get(node.input?.[0] ?? '');
    const output = node.output?.[0];
    if (node.opType === 'Identity' && source && output && !tensors.has(output)) tensors.set(output, source);
  }
  if (tensors.size === 0) {
    const unsupported = (model.graph.initializer ?? []).length > 0 && otherTypes.size === 0 ? ' (their element types are not ones convspec reads)' : '';
    throw new Error(`the ONNX model has no float32 initializers${otherTypes.size > 0 ? ` (only ${[...otherTypes].join(', ')})` : unsupported}`);
  }
  return { tensors, format: 'onnx' };
}

/** The file's name for our parameter `ours` (see the module header for the mapping's forms). */
export function mapName(ours: string, mapping: Readonly<Record<string, string>> | undefined): string {
  if (!mapping) return ours;
  if (Object.prototype.hasOwnProperty.call(mapping, ours)) return mapping[ours]!;
  let best: string | undefined;
  for (const from of Object.keys(mapping)) {
    if ((from === '' || from.endsWith('.')) && ours.startsWith(from) && (best === undefined || from.length > best.length)) best = from;
  }
  return best === undefined ? ours : mapping[best]! + ours.slice(best.length);
}

/** Reads a name mapping from a JSON file: one object of strings, ours → theirs. Throws `Error` with the reason. */
export function readMappingFile(path: string): Record<string, string> {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (error) {
    throw new Error((error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new Error(`not JSON (${(error as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('expected a JSON object { "our name": "their name", … }');
  for (const [key, name] of Object.entries(value)) if (typeof name !== 'string') throw new Error(`the value of '${key}' is not a string`);
  return value as Record<string, string>;
}

export function loadWeightsFile(path: string, graph: Graph, options: LoadWeightsOptions = {}): LoadedWeights {
  const bag = new DiagnosticBag();
  let mapping = options.mapping;
  if (options.mappingFile !== undefined) {
    try {
      mapping = { ...readMappingFile(options.mappingFile), ...(options.mapping ?? {}) };
    } catch (error) {
      bag.add('cannotReadFile', undefined, [options.mappingFile, `the weights name mapping: ${(error as Error).message}`]);
      return { weights: undefined, diagnostics: bag.items, loaded: [], format: undefined };
    }
  }
  let file: ReturnType<typeof readTensorFile>;
  try {
    file = readTensorFile(path);
  } catch (error) {
    bag.add('weightsUnreadable', undefined, [path, (error as Error).message]);
    return { weights: undefined, diagnostics: bag.items, loaded: [], format: undefined };
  }
  const weights = initializeWeights(graph, options.seed ?? 0);
  const loaded: string[] = [];
  const used = new Set<string>();
  const parameters = graphParameters(graph.nodes);
  const missing: Diagnostic[] = [];
  for (const param of parameters) {
    const theirs = mapName(param.name, mapping);
    const tensor = file.tensors.get(theirs);
    if (!tensor) {
      const looked = theirs !== param.name ? `looked for '${theirs}'` : undefined;
      const item = diagnostic('weightMissing', undefined, [param.name, shapeText(param.shape)], options.partial ? [looked, 'it keeps its initial value'].filter((t) => t).join('; ') : looked);
      missing.push(options.partial ? { ...item, severity: 'note' } : item);
      continue;
    }
    used.add(theirs);
    const sameShape = tensor.shape.length === param.shape.length && tensor.shape.every((d, i) => d === param.shape[i]);
    if (!sameShape) {
      const hint = theirs !== param.name ? `read from '${theirs}'` : options.partial ? 'a layer of another size needs another name (or --map it to another tensor)' : undefined;
      bag.add('weightShape', undefined, [param.name, shapeText(param.shape), shapeText(tensor.shape)], hint);
      continue;
    }
    weights.set(param.name, { shape: param.shape, data: Float32Array.from(tensor.data) });
    loaded.push(param.name);
  }
  bag.push(...missing);
  for (const [name, tensor] of file.tensors) if (!used.has(name)) bag.add('weightUnused', undefined, [name, shapeText(tensor.shape)]);
  if (options.partial && loaded.length === 0 && parameters.length > 0 && !bag.hasErrors) {
    const theirs = [...file.tensors.keys()].slice(0, 3).map((n) => `'${n}'`).join(', ');
    const ours = parameters.slice(0, 3).map((p) => `'${mapName(p.name, mapping)}'`).join(', ');
    bag.add('weightsUnreadable', undefined, [path, `none of its ${file.tensors.size} tensors fits a parameter of ${graph.name} (it holds ${theirs}…; ${graph.name} looks for ${ours}…)`], 'map the names with --map ours.=theirs. or --map-file FILE.json');
  }
  return { weights: bag.hasErrors ? undefined : weights, diagnostics: bag.items, loaded, format: file.format };
}

/**
 * `--weights FILE`: weights for a graph from a convspec checkpoint, a plain safetensors file, or an ONNX file's
 * initializers. The format is recognised by content, not by extension.
 *
 * Tensors are matched to the graph's parameters by name and shape, then through an optional explicit name
 * mapping (`{ "backbone.conv1.weight": "conv1.weight" }`, ours → theirs). Every unmatched or mismatched tensor is
 * a diagnostic naming it, the expected shape and the found shape. With `partial`, parameters the file lacks keep
 * their initial values (transfer learning loads a backbone only) and are reported as notes instead of errors.
 */
import * as fs from 'node:fs';
import { DiagnosticBag, type Diagnostic } from '../diagnostics.js';
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
  readonly seed?: number;
}

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
  for (const initializer of model.graph.initializer ?? []) {
    const array = tensorProtoToArray(initializer, path);
    if (array.dataType !== 'float32' && array.dataType !== 'float64') continue;
    tensors.set(array.name, { shape: array.dims.map(Number), data: Float32Array.from(array.data as ArrayLike<number>) });
  }
  if (tensors.size === 0) throw new Error('the ONNX model has no float initializers');
  return { tensors, format: 'onnx' };
}

function mapName(ours: string, mapping: Readonly<Record<string, string>> | undefined): string {
  if (!mapping) return ours;
  if (mapping[ours]) return mapping[ours]!;
  for (const [from, to] of Object.entries(mapping)) {
    if (from.endsWith('.') && ours.startsWith(from)) return to + ours.slice(from.length);
  }
  return ours;
}

export function loadWeightsFile(path: string, graph: Graph, options: LoadWeightsOptions = {}): LoadedWeights {
  const bag = new DiagnosticBag();
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
  for (const param of graphParameters(graph.nodes)) {
    const theirs = mapName(param.name, options.mapping);
    const tensor = file.tensors.get(theirs);
    if (!tensor) {
      if (options.partial) continue;
      bag.add('weightMissing', undefined, [param.name, shapeText(param.shape)], theirs !== param.name ? `looked for '${theirs}'` : undefined);
      continue;
    }
    used.add(theirs);
    const sameShape = tensor.shape.length === param.shape.length && tensor.shape.every((d, i) => d === param.shape[i]);
    if (!sameShape) {
      bag.add('weightShape', undefined, [param.name, shapeText(param.shape), shapeText(tensor.shape)]);
      continue;
    }
    weights.set(param.name, { shape: param.shape, data: Float32Array.from(tensor.data) });
    loaded.push(param.name);
  }
  if (!options.partial) {
    for (const [name, tensor] of file.tensors) if (!used.has(name)) bag.add('weightUnused', undefined, [name, shapeText(tensor.shape)]);
  }
  return { weights: bag.hasErrors ? undefined : weights, diagnostics: bag.items, loaded, format: file.format };
}

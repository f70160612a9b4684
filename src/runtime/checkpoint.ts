/**
 * Weights files and training checkpoints in the safetensors format, which PyTorch, Hugging Face tools and the
 * `safetensors` readers of other languages load directly.
 *
 * Layout of a safetensors file (https://github.com/huggingface/safetensors):
 *   bytes 0…7       n, the header length, unsigned 64-bit little-endian
 *   bytes 8…8+n     a UTF-8 JSON object: { "<tensor name>": { "dtype": "F32", "shape": [..],
 *                   "data_offsets": [begin, end] }, …, "__metadata__": { "<key>": "<string>" } }
 *                   (we pad it with spaces so the data starts 8-byte aligned, as the reference writer does)
 *   bytes 8+n…      the data buffer; a tensor's bytes are [begin, end) relative to its start, row-major,
 *                   little-endian; tensors are contiguous, in header order, with no gaps.
 *
 * A convspec checkpoint is such a file holding
 *   - the model's parameters under their IR names and layout (`stem.conv1.weight` [O, I/g, k…]), BN running
 *     statistics included, so the file doubles as a weights file for any safetensors reader;
 *   - the optimizer's state as `optimizer.<slot>.<parameter>` (slots as PyTorch names them: `momentum_buffer`,
 *     `exp_avg`, `exp_avg_sq`), in the parameter's IR layout;
 *   - optionally the best weights seen so far (early stopping with restore) as `best.<parameter>`;
 *   - `__metadata__` (values are strings, as the format requires; structured ones are JSON): format, format
 *     version, epoch (epochs completed), step (optimizer steps taken), seed, spec hash, optimizer (kind and
 *     settings), optimizer_state (the slot tensor names), history (per-epoch metrics) and trainer (early
 *     stopping state). With it, `--resume` continues exactly where the run stopped.
 *
 * Writing is atomic (`writeFileAtomic`: temporary file in the same folder, fsync, rename), so a crash leaves the
 * previous checkpoint or the new one, never half a file. Reading validates everything and raises a
 * `CheckpointError` whose `kind` says what is wrong — not-found, unreadable, not-safetensors, truncated,
 * bad-header, dtype, metadata — with a message naming the file; it never crashes on malformed bytes.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dimToString, type Poly } from '../ir/dims.js';
import type { Graph } from '../ir/graph.js';
import type { WeightTensor } from '../ir/weights.js';
import { writeFileAtomic } from './data/atomic-write.js';

export type CheckpointErrorKind = 'not-found' | 'unreadable' | 'not-safetensors' | 'truncated' | 'bad-header' | 'dtype' | 'metadata';

export class CheckpointError extends Error {
  override readonly name = 'CheckpointError';
  constructor(
    readonly kind: CheckpointErrorKind,
    message: string,
    /** The file, or a label for bytes decoded in memory. */
    readonly filePath: string,
    options?: { cause?: unknown },
  ) {
    super(`${filePath}: ${message}`, options);
  }
}

/** The header limit of the reference implementation: larger headers are refused as not safetensors. */
const MAX_HEADER_BYTES = 100_000_000;

export interface SafetensorsContents {
  readonly tensors: Map<string, WeightTensor>;
  readonly metadata: Record<string, string>;
}

// ---------------------------------------------------------------------------------------------------------------
// The format

/** Encodes float32 tensors (in map order) and string metadata as safetensors bytes. */
export function encodeSafetensors(tensors: ReadonlyMap<string, WeightTensor>, metadata: Readonly<Record<string, string>> = {}): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header['__metadata__'] = { ...metadata };
  let offset = 0;
  for (const [name, tensor] of tensors) {
    if (name === '__metadata__') throw new Error('a tensor cannot be named __metadata__');
    const count = tensor.shape.reduce((a, b) => a * b, 1);
    if (count !== tensor.data.length) throw new Error(`tensor ${name}: shape [${tensor.shape.join(', ')}] holds ${count} values but the data has ${tensor.data.length}`);
    header[name] = { dtype: 'F32', shape: [...tensor.shape], data_offsets: [offset, offset + 4 * count] };
    offset += 4 * count;
  }
  let json = JSON.stringify(header);
  const encoder = new TextEncoder();
  let headerBytes = encoder.encode(json);
  const padding = (8 - (headerBytes.length % 8)) % 8;
  if (padding > 0) {
    json += ' '.repeat(padding);
    headerBytes = encoder.encode(json);
  }
  const bytes = new Uint8Array(8 + headerBytes.length + offset);
  const view = new DataView(bytes.buffer);
  view.setBigUint64(0, BigInt(headerBytes.length), true);
  bytes.set(headerBytes, 8);
  let position = 8 + headerBytes.length;
  for (const tensor of tensors.values()) {
    for (let i = 0; i < tensor.data.length; i++, position += 4) view.setFloat32(position, tensor.data[i]!, true);
  }
  return bytes;
}

/** Decodes safetensors bytes holding F32 tensors; `label` names the source in errors. */
export function decodeSafetensors(bytes: Uint8Array, label = '<in-memory safetensors>'): SafetensorsContents {
  const fail = (kind: CheckpointErrorKind, message: string): never => {
    throw new CheckpointError(kind, message, label);
  };
  if (bytes.length < 8) fail(bytes.length === 0 ? 'not-safetensors' : 'truncated', `the file is ${bytes.length} bytes long; a safetensors file starts with an 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const declared = view.getBigUint64(0, true);
  const looksLikeJson = bytes.length > 8 && bytes[8] === 0x7b; // '{'
  if (declared > BigInt(MAX_HEADER_BYTES) || declared < 2n) {
    fail('not-safetensors', `not a safetensors file: the first 8 bytes give a header length of ${declared} bytes`);
  }
  const headerLength = Number(declared);
  if (!looksLikeJson) fail('not-safetensors', 'not a safetensors file: no JSON header after the 8-byte length');
  if (8 + headerLength > bytes.length) fail('truncated', `truncated: the header needs ${headerLength} bytes but only ${bytes.length - 8} follow the length`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLength)));
  } catch (error) {
    fail('bad-header', `the JSON header cannot be read: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail('bad-header', 'the header is not a JSON object');
  const entries = header as Record<string, unknown>;
  const metadata: Record<string, string> = {};
  const rawMetadata = entries['__metadata__'];
  if (rawMetadata !== undefined) {
    if (typeof rawMetadata !== 'object' || rawMetadata === null || Array.isArray(rawMetadata)) fail('bad-header', '__metadata__ is not an object of strings');
    for (const [key, value] of Object.entries(rawMetadata as Record<string, unknown>)) {
      if (typeof value !== 'string') fail('bad-header', `__metadata__.${key} is not a string`);
      metadata[key] = value as string;
    }
  }
  const dataStart = 8 + headerLength;
  const dataLength = bytes.length - dataStart;
  const described: Array<{ name: string; shape: number[]; begin: number; end: number }> = [];
  for (const [name, raw] of Object.entries(entries)) {
    if (name === '__metadata__') continue;
    if (typeof raw !== 'object' || raw === null) fail('bad-header', `tensor ${name}: the entry is not an object`);
    const entry = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof entry.dtype !== 'string') fail('bad-header', `tensor ${name}: dtype is missing`);
    if (entry.dtype !== 'F32') fail('dtype', `tensor ${name} is ${String(entry.dtype)}; convspec reads F32 tensors only`);
    const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
    if (!Array.isArray(entry.shape) || !entry.shape.every(isCount)) fail('bad-header', `tensor ${name}: shape is not a list of non-negative integers`);
    const offsets = entry.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount) || offsets[0] > offsets[1]) fail('bad-header', `tensor ${name}: data_offsets is not [begin, end] with begin ≤ end`);
    const shape = entry.shape as number[];
    const [begin, end] = offsets as [number, number];
    const count = shape.reduce((a, b) => a * b, 1);
    if (end - begin !== 4 * count) fail('bad-header', `tensor ${name}: shape [${shape.join(', ')}] needs ${4 * count} bytes but data_offsets span ${end - begin}`);
    if (end > dataLength) fail('truncated', `truncated: tensor ${name} ends at byte ${end} of the data, which has ${dataLength} bytes`);
    described.push({ name, shape, begin, end });
  }
  const ordered = [...described].sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < ordered.length; i++) {
    if (ordered[i]!.begin < ordered[i - 1]!.end) fail('bad-header', `tensors ${ordered[i - 1]!.name} and ${ordered[i]!.name} overlap`);
  }
  const tensors = new Map<string, WeightTensor>();
  for (const { name, shape, begin, end } of described) {
    const data = new Float32Array((end - begin) / 4);
    for (let i = 0; i < data.length; i++) data[i] = view.getFloat32(dataStart + begin + 4 * i, true);
    tensors.set(name, { shape, data });
  }
  return { tensors, metadata };
}

function readBytes(filePath: string): Uint8Array {
  try {
    return readFileSync(filePath);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason = error instanceof Error ? error.message : String(error);
    throw new CheckpointError(code === 'ENOENT' ? 'not-found' : 'unreadable', code === 'ENOENT' ? 'no such file' : `cannot read the file: ${reason}`, filePath, { cause: error });
  }
}

/** Reads a safetensors file of F32 tensors (any producer). */
export function readSafetensors(filePath: string): SafetensorsContents {
  return decodeSafetensors(readBytes(filePath), filePath);
}

/** Writes weights (IR names and layout) as a plain safetensors file, atomically. */
export function writeWeightsFile(filePath: string, weights: ReadonlyMap<string, WeightTensor>, metadata: Readonly<Record<string, string>> = {}): void {
  writeFileAtomic(filePath, encodeSafetensors(weights, { format: 'pt', ...metadata }));
}

// ---------------------------------------------------------------------------------------------------------------
// Training checkpoints

export const CHECKPOINT_FORMAT = 'convspec-checkpoint';
export const CHECKPOINT_FORMAT_VERSION = 1;

/** JSON values kept in the metadata. */
export type JsonValue = number | string | boolean | null | readonly JsonValue[] | { readonly [key: string]: JsonValue };

export interface CheckpointMetadata {
  /** Epochs completed. */
  readonly epoch: number;
  /** Optimizer steps taken. */
  readonly step: number;
  readonly seed: number;
  /** `graphFingerprint` of the model the checkpoint belongs to. */
  readonly specHash: string;
  /** The optimizer's kind and settings (`{ kind: 'adam', lr: 0.001, … }`). */
  readonly optimizer: { readonly [key: string]: JsonValue };
  /** Per-epoch metrics so far. */
  readonly history: readonly JsonValue[];
  /** Trainer state beyond the tensors (early stopping counters…). */
  readonly trainer: { readonly [key: string]: JsonValue };
}

export interface TrainingCheckpoint {
  /** Model parameters, IR names and layout. */
  readonly weights: Map<string, WeightTensor>;
  /** Optimizer slots by `<slot>.<parameter>` (without the `optimizer.` prefix), IR layout. */
  readonly optimizerState: Map<string, WeightTensor>;
  /** Best weights so far, when early stopping restores them. */
  readonly bestWeights?: Map<string, WeightTensor>;
  readonly metadata: CheckpointMetadata;
}

const OPTIMIZER_PREFIX = 'optimizer.';
const BEST_PREFIX = 'best.';

/** Encodes a checkpoint (see the module header for the layout). */
export function encodeCheckpoint(checkpoint: TrainingCheckpoint): Uint8Array {
  const tensors = new Map<string, WeightTensor>();
  for (const [name, tensor] of checkpoint.weights) {
    if (name.startsWith(OPTIMIZER_PREFIX) || name.startsWith(BEST_PREFIX)) throw new Error(`parameter name ${name} clashes with the checkpoint's prefixes`);
    tensors.set(name, tensor);
  }
  const stateNames: string[] = [];
  for (const [name, tensor] of checkpoint.optimizerState) {
    tensors.set(OPTIMIZER_PREFIX + name, tensor);
    stateNames.push(OPTIMIZER_PREFIX + name);
  }
  for (const [name, tensor] of checkpoint.bestWeights ?? []) tensors.set(BEST_PREFIX + name, tensor);
  const m = checkpoint.metadata;
  return encodeSafetensors(tensors, {
    format: CHECKPOINT_FORMAT,
    format_version: String(CHECKPOINT_FORMAT_VERSION),
    epoch: String(m.epoch),
    step: String(m.step),
    seed: String(m.seed),
    spec_hash: m.specHash,
    optimizer: JSON.stringify(m.optimizer),
    optimizer_state: JSON.stringify(stateNames),
    history: JSON.stringify(m.history),
    trainer: JSON.stringify(m.trainer),
  });
}

/** Decodes and validates a checkpoint; `label` names the source in errors. */
export function decodeCheckpoint(bytes: Uint8Array, label = '<in-memory checkpoint>'): TrainingCheckpoint {
  const { tensors, metadata } = decodeSafetensors(bytes, label);
  const fail = (message: string): never => {
    throw new CheckpointError('metadata', message, label);
  };
  if (metadata['format'] !== CHECKPOINT_FORMAT) {
    fail(`not a convspec checkpoint (metadata format is ${metadata['format'] === undefined ? 'missing' : JSON.stringify(metadata['format'])}); a plain weights file loads with readSafetensors`);
  }
  const version = Number(metadata['format_version']);
  if (version !== CHECKPOINT_FORMAT_VERSION) fail(`checkpoint format version ${metadata['format_version']} is not supported (this convspec reads version ${CHECKPOINT_FORMAT_VERSION})`);
  const integer = (key: string): number => {
    const value = Number(metadata[key]);
    if (metadata[key] === undefined || !Number.isSafeInteger(value) || value < 0) fail(`metadata ${key} is ${metadata[key] === undefined ? 'missing' : JSON.stringify(metadata[key])}, not a non-negative integer`);
    return value;
  };
  const json = (key: string): unknown => {
    const text = metadata[key];
    if (text === undefined) fail(`metadata ${key} is missing`);
    try {
      return JSON.parse(text!);
    } catch {
      return fail(`metadata ${key} is not valid JSON`);
    }
  };
  const object = (key: string): { [key: string]: JsonValue } => {
    const value = json(key);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(`metadata ${key} is not a JSON object`);
    return value as { [key: string]: JsonValue };
  };
  const epoch = integer('epoch');
  const step = integer('step');
  const seed = integer('seed');
  const specHash = metadata['spec_hash'];
  if (specHash === undefined) fail('metadata spec_hash is missing');
  const optimizer = object('optimizer');
  const history = json('history');
  if (!Array.isArray(history)) fail('metadata history is not a JSON list');
  const trainer = object('trainer');
  const stateNames = json('optimizer_state');
  if (!Array.isArray(stateNames) || !stateNames.every((n) => typeof n === 'string')) fail('metadata optimizer_state is not a list of tensor names');
  for (const name of stateNames as string[]) {
    if (!tensors.has(name)) fail(`optimizer state tensor ${name} is listed in the metadata but missing from the file`);
  }
  const weights = new Map<string, WeightTensor>();
  const optimizerState = new Map<string, WeightTensor>();
  const bestWeights = new Map<string, WeightTensor>();
  for (const [name, tensor] of tensors) {
    if (name.startsWith(OPTIMIZER_PREFIX)) optimizerState.set(name.slice(OPTIMIZER_PREFIX.length), tensor);
    else if (name.startsWith(BEST_PREFIX)) bestWeights.set(name.slice(BEST_PREFIX.length), tensor);
    else weights.set(name, tensor);
  }
  const checkpoint: TrainingCheckpoint = {
    weights,
    optimizerState,
    metadata: { epoch, step, seed, specHash: specHash!, optimizer, history: history as JsonValue[], trainer },
  };
  return bestWeights.size > 0 ? { ...checkpoint, bestWeights } : checkpoint;
}

/** Writes a checkpoint atomically (temporary file + fsync + rename). */
export function writeCheckpoint(filePath: string, checkpoint: TrainingCheckpoint): void {
  writeFileAtomic(filePath, encodeCheckpoint(checkpoint));
}

/** Reads and validates a checkpoint; every problem is a `CheckpointError`. */
export function readCheckpoint(filePath: string): TrainingCheckpoint {
  return decodeCheckpoint(readBytes(filePath), filePath);
}

/**
 * A hash of what determines the parameters' meaning: node names, ops, attributes, inputs and shapes, and the
 * graph's inputs and outputs — not source spans, file names, frozen flags, regularisers or the `train` section,
 * so reformatting a spec, unfreezing layers for fine-tuning or changing training settings keeps checkpoints
 * valid. SHA-256, hex.
 */
export function graphFingerprint(graph: Graph): string {
  const canonical = JSON.stringify(
    {
      inputs: graph.inputs.map((i) => ({ name: i.name, shape: i.shape })),
      nodes: graph.nodes.map(({ span: _span, quantization: _quantization, frozen: _frozen, regularizers: _regularizers, ...rest }) => rest),
      outputs: graph.outputs.map((o) => ({ name: o.name, value: o.value })),
    },
    (_key, value: unknown) => {
      if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
        if ((value as { kind?: unknown }).kind === 'poly') return dimToString(value as Poly);
        // sorted keys: the same graph gives the same text whatever the construction order
        return Object.fromEntries(Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
      }
      return value;
    },
  );
  return createHash('sha256').update(canonical).digest('hex');
}

/**
 * A small typed layer over `onnx-proto` for writing and reading ONNX models.
 *
 * Why: the ONNX emitter (IR → model.onnx) must produce byte-identical files for the same input, with names,
 * shapes and attribute types checked before anything is written, and the importer and the conformance tests
 * must read tensors stored in every layout ONNX allows (raw_data or the typed repeated fields). The generated
 * protobufjs classes accept almost anything (int64 fields typed `number | Long`, attributes untyped), so this
 * module is the one place that knows the encoding rules:
 *
 * - `OnnxGraphBuilder` collects inputs, outputs, initializers (raw_data, little endian) and nodes, checks SSA
 *   form (each value defined once, before use) and encodes a `ModelProto`. Attributes are sorted by name and
 *   metadata by key, nothing depends on time or on the host's byte order: same calls → same bytes.
 * - `decodeModel` / `decodeTensorProto` decode bytes and raise `OnnxFormatError` (with the file path when known)
 *   instead of protobufjs's bare `RangeError`s.
 * - `tensorProtoToArray` turns a `TensorProto` into a typed array of the matching element type.
 */
import { createRequire } from 'node:module';
import type { onnx as OnnxTypes } from 'onnx-proto';
import type { StreamedBytes } from '../runtime/data/atomic-write.js';

/**
 * onnx-proto's message classes, loaded with `require`: an ESM import of this CommonJS module first scans its
 * 330 KB for named exports, which made loading it take 45 ms instead of 15 at every `compile`.
 */
export const { onnx } = createRequire(import.meta.url)('onnx-proto') as typeof import('onnx-proto');

/** The decoded message types, re-exported so callers need not import `onnx-proto` themselves. */
export type ModelProto = OnnxTypes.ModelProto;
export type GraphProto = OnnxTypes.GraphProto;
export type NodeProto = OnnxTypes.NodeProto;
export type TensorProto = OnnxTypes.TensorProto;
export type ValueInfoProto = OnnxTypes.ValueInfoProto;
export type AttributeProto = OnnxTypes.AttributeProto;
/** A decoded model: `decodeModel` guarantees the graph is present (messages nested deeper keep optional fields). */
export type DecodedModelProto = ModelProto & { readonly graph: GraphProto };

// ---------------------------------------------------------------------------------------------------------
// Errors

/** Bytes that are not a valid ONNX message, or a tensor this module cannot read. */
export class OnnxFormatError extends Error {
  override readonly name = 'OnnxFormatError';
  constructor(
    message: string,
    /** The file the bytes came from, when known. */
    readonly path?: string,
  ) {
    super(path === undefined ? message : `${path}: ${message}`);
  }
}

/** A builder call that would produce an invalid graph (duplicate value, undefined input, bad attribute…). */
export class OnnxBuildError extends Error {
  override readonly name = 'OnnxBuildError';
}

// ---------------------------------------------------------------------------------------------------------
// Element types

/** Element types by the names ONNX Runtime uses (`Tensor.type`). */
export type OnnxElemType =
  | 'float32'
  | 'uint8'
  | 'int8'
  | 'uint16'
  | 'int16'
  | 'int32'
  | 'int64'
  | 'string'
  | 'bool'
  | 'float16'
  | 'float64'
  | 'uint32'
  | 'uint64'
  | 'bfloat16';

/** `TensorProto.DataType` codes of each element type. */
export const ONNX_DATA_TYPE: Readonly<Record<OnnxElemType, number>> = Object.freeze({
  float32: 1,
  uint8: 2,
  int8: 3,
  uint16: 4,
  int16: 5,
  int32: 6,
  int64: 7,
  string: 8,
  bool: 9,
  float16: 10,
  float64: 11,
  uint32: 12,
  uint64: 13,
  bfloat16: 16,
});

const ELEM_TYPE_BY_CODE: ReadonlyMap<number, OnnxElemType> = new Map(
  (Object.entries(ONNX_DATA_TYPE) as [OnnxElemType, number][]).map(([name, code]) => [code, name]),
);

/** The element type named by a `TensorProto.DataType` code, or `undefined` for codes this module does not know. */
export function elemTypeFromCode(code: number): OnnxElemType | undefined {
  return ELEM_TYPE_BY_CODE.get(code);
}

/** Typed arrays the builder can store as initializers and `tensorProtoToArray` returns. */
export type OnnxTypedArray = Float32Array | Float64Array | Int8Array | Uint8Array | Int32Array | BigInt64Array;

/** Which element types each typed array may carry (bool is stored one byte per element, 0 or 1). */
function elemTypesOf(data: OnnxTypedArray): readonly OnnxElemType[] {
  if (data instanceof Float32Array) return ['float32'];
  if (data instanceof Float64Array) return ['float64'];
  if (data instanceof Int8Array) return ['int8'];
  if (data instanceof Uint8Array) return ['uint8', 'bool'];
  if (data instanceof Int32Array) return ['int32'];
  return ['int64'];
}

// ---------------------------------------------------------------------------------------------------------
// Tensors

/** A dense tensor given to the builder: initializers and TENSOR attributes. */
export interface OnnxTensorInit {
  readonly dims: readonly number[];
  readonly data: OnnxTypedArray;
  /** Defaults to the element type of `data` (`uint8` for a `Uint8Array`; pass `bool` explicitly). */
  readonly dataType?: OnnxElemType;
}

/**
 * Float32 initializer data computed as it is written (a fresh `DrawnWeight`): the builder streams its bytes into
 * the file instead of holding them, and reads `data` only where it needs the values.
 */
export interface StreamedFloat32 {
  readonly length: number;
  /** All the values (computing and keeping them). */
  readonly data: Float32Array;
  /** The bytes, little endian, in pieces as StreamedBytes gives them: for writeFileAtomicAsync only. */
  bytes(): Iterable<Uint8Array>;
  /** Writes elements [first, first + target.length) into `target`, without the streaming memory. */
  read(target: Float32Array, first?: number): void;
}

function isStreamed(data: OnnxTypedArray | StreamedFloat32): data is StreamedFloat32 {
  return !ArrayBuffer.isView(data);
}

/** The initializers whose raw_data is left out of the message and streamed when the model is written. */
const streamedRawData = new WeakMap<OnnxTypes.ITensorProto, StreamedFloat32>();

/** A tensor read back from a `TensorProto`. */
export interface OnnxTensorData {
  readonly name: string;
  readonly dataType: OnnxElemType;
  readonly dims: number[];
  readonly data: OnnxTypedArray;
}

function product(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

function checkDims(dims: readonly number[], what: string): void {
  for (const d of dims) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new OnnxBuildError(`${what}: dimension ${String(d)} is not a non-negative integer (dims [${dims.join(', ')}])`);
    }
  }
}

/** Whether this host stores numbers little endian (as ONNX's raw_data does): then bytes are copied as they are. */
const hostIsLittleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Little-endian bytes of a typed array, independent of the host's byte order. Bytes and, on a little-endian host
 * (every platform Node runs on in practice), every array are returned as a view of the array's own memory:
 * encoding copies them into the model once, and a copy here (or a per-element DataView loop, which took 0.7 s
 * for ResNet-50's 25M weights) would only add time and memory. Big-endian hosts get a byte-swapped copy.
 */
function toLittleEndianBytes(data: OnnxTypedArray): Uint8Array {
  if (data instanceof Uint8Array || data instanceof Int8Array || hostIsLittleEndian) {
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }
  const out = new Uint8Array(data.byteLength);
  const view = new DataView(out.buffer);
  if (data instanceof Float32Array) data.forEach((v, i) => view.setFloat32(i * 4, v, true));
  else if (data instanceof Float64Array) data.forEach((v, i) => view.setFloat64(i * 8, v, true));
  else if (data instanceof Int32Array) data.forEach((v, i) => view.setInt32(i * 4, v, true));
  else data.forEach((v, i) => view.setBigInt64(i * 8, v, true));
  return out;
}

/** `count` overrides the element count of `data`, for streamed data given as an empty array. */
function makeTensorProto(name: string, tensor: OnnxTensorInit, what: string, count = tensor.data.length): OnnxTypes.ITensorProto {
  const allowed = elemTypesOf(tensor.data);
  const dataType = tensor.dataType ?? allowed[0]!;
  if (!allowed.includes(dataType)) {
    throw new OnnxBuildError(
      `${what}: a ${tensor.data.constructor.name} cannot hold ${dataType} data (allowed: ${allowed.join(', ')})`,
    );
  }
  checkDims(tensor.dims, what);
  const expected = product(tensor.dims);
  if (expected !== count) {
    throw new OnnxBuildError(`${what}: dims [${tensor.dims.join(', ')}] hold ${expected} elements but the data has ${count}`);
  }
  if (dataType === 'bool') {
    const bad = (tensor.data as Uint8Array).findIndex((v) => v > 1);
    if (bad >= 0) throw new OnnxBuildError(`${what}: bool element ${bad} is ${tensor.data[bad]}, not 0 or 1`);
  }
  const proto: OnnxTypes.ITensorProto = {
    dims: [...tensor.dims],
    dataType: ONNX_DATA_TYPE[dataType],
    rawData: toLittleEndianBytes(tensor.data),
  };
  if (name !== '') proto.name = name;
  return proto;
}

// ---------------------------------------------------------------------------------------------------------
// Attributes

/** An attribute with its ONNX type stated; use it where inference would guess wrong (`epsilon: 1`). */
export type OnnxTypedAttribute =
  | { readonly type: 'INT'; readonly value: number }
  | { readonly type: 'INTS'; readonly value: readonly number[] }
  | { readonly type: 'FLOAT'; readonly value: number }
  | { readonly type: 'FLOATS'; readonly value: readonly number[] }
  | { readonly type: 'STRING'; readonly value: string }
  | { readonly type: 'STRINGS'; readonly value: readonly string[] }
  | { readonly type: 'TENSOR'; readonly value: OnnxTensorInit };

/**
 * An attribute value. Untyped values are inferred: an integer → INT, another number → FLOAT, an array of
 * integers (or an empty array) → INTS, an array with a non-integer → FLOATS, a string → STRING, an array of
 * strings → STRINGS, a tensor → TENSOR. A float attribute whose value happens to be whole must be typed
 * explicitly (`attr.float(1)`).
 */
export type OnnxAttributeValue = number | readonly number[] | string | readonly string[] | OnnxTensorInit | OnnxTypedAttribute;

/** Constructors of explicitly typed attributes. */
export const attr = Object.freeze({
  int: (value: number): OnnxTypedAttribute => ({ type: 'INT', value }),
  ints: (value: readonly number[]): OnnxTypedAttribute => ({ type: 'INTS', value }),
  float: (value: number): OnnxTypedAttribute => ({ type: 'FLOAT', value }),
  floats: (value: readonly number[]): OnnxTypedAttribute => ({ type: 'FLOATS', value }),
  string: (value: string): OnnxTypedAttribute => ({ type: 'STRING', value }),
  strings: (value: readonly string[]): OnnxTypedAttribute => ({ type: 'STRINGS', value }),
  tensor: (value: OnnxTensorInit): OnnxTypedAttribute => ({ type: 'TENSOR', value }),
});

const AttributeType = onnx.AttributeProto.AttributeType;

function isTypedAttribute(value: OnnxAttributeValue): value is OnnxTypedAttribute {
  return typeof value === 'object' && !Array.isArray(value) && 'type' in value && 'value' in value;
}

function isTensorInit(value: OnnxAttributeValue): value is OnnxTensorInit {
  return typeof value === 'object' && !Array.isArray(value) && 'data' in value && 'dims' in value;
}

function inferAttribute(value: OnnxAttributeValue, what: string): OnnxTypedAttribute {
  if (isTypedAttribute(value)) return value;
  if (isTensorInit(value)) return { type: 'TENSOR', value };
  if (typeof value === 'number') return Number.isInteger(value) ? { type: 'INT', value } : { type: 'FLOAT', value };
  if (typeof value === 'string') return { type: 'STRING', value };
  if (Array.isArray(value)) {
    const items = value as readonly unknown[];
    if (items.every((v): v is string => typeof v === 'string') && items.length > 0) {
      return { type: 'STRINGS', value: items };
    }
    if (items.every((v): v is number => typeof v === 'number')) {
      return items.every((v) => Number.isInteger(v)) ? { type: 'INTS', value: items } : { type: 'FLOATS', value: items };
    }
  }
  throw new OnnxBuildError(`${what}: cannot infer an ONNX attribute type for ${JSON.stringify(value)}`);
}

function checkInt(v: number, what: string): number {
  if (!Number.isSafeInteger(v)) throw new OnnxBuildError(`${what}: ${v} is not an integer`);
  return v;
}

function checkFloat(v: number, what: string): number {
  if (typeof v !== 'number') throw new OnnxBuildError(`${what}: ${String(v)} is not a number`);
  return v;
}

const utf8 = new TextEncoder();

function makeAttribute(name: string, raw: OnnxAttributeValue, what: string): OnnxTypes.IAttributeProto {
  const a = inferAttribute(raw, what);
  switch (a.type) {
    case 'INT':
      return { name, type: AttributeType.INT, i: checkInt(a.value, what) };
    case 'INTS':
      return { name, type: AttributeType.INTS, ints: a.value.map((v) => checkInt(v, what)) };
    case 'FLOAT':
      return { name, type: AttributeType.FLOAT, f: checkFloat(a.value, what) };
    case 'FLOATS':
      return { name, type: AttributeType.FLOATS, floats: a.value.map((v) => checkFloat(v, what)) };
    case 'STRING':
      return { name, type: AttributeType.STRING, s: utf8.encode(a.value) };
    case 'STRINGS':
      return { name, type: AttributeType.STRINGS, strings: a.value.map((v) => utf8.encode(v)) };
    case 'TENSOR':
      return { name, type: AttributeType.TENSOR, t: makeTensorProto('', a.value, what) };
  }
}

// ---------------------------------------------------------------------------------------------------------
// The builder

/** A dimension: a fixed size or a symbol (`'N'`) that ONNX stores as `dim_param`. */
export type OnnxDim = number | string;

export interface OnnxOpsetImport {
  readonly domain: string;
  readonly version: number;
}

export interface OnnxBuildOptions {
  /** ONNX IR version; 8 by default (what the official checker from onnx 1.12 accepts). */
  readonly irVersion?: number;
  /** Version of the default domain (`ai.onnx`), or every imported opset. */
  readonly opset: number | readonly OnnxOpsetImport[];
  readonly producerName: string;
  readonly producerVersion: string;
  readonly docString?: string;
  /** Written sorted by key. */
  readonly metadataProps?: Readonly<Record<string, string>>;
  readonly graphName: string;
  readonly graphDocString?: string;
  readonly domain?: string;
  readonly modelVersion?: number;
  /**
   * Store equal initializers (same element type, dims and bytes) once: each later twin becomes the output of an
   * (unnamed) Identity node of the first, so every name still reads its value, as torch.onnx's deduplication does.
   */
  readonly shareEqualInitializers?: boolean;
}

/**
 * Splits initializers into the ones to store and Identity nodes for their equal twins. Candidates share element
 * type and dims and hold at least MIN_SHARED_BYTES; their raw bytes are compared in full (random weights differ in
 * the first bytes, so this costs next to nothing; equal tensors are typically the zero biases of an untrained model).
 * A streamed tensor's first bytes are drawn to compare; all of it only when those are equal too.
 */
/** Initializers smaller than this are stored even when equal to another: sharing them would cost bytes. */
const MIN_SHARED_BYTES = 256;

/** Bytes drawn from a streamed tensor to tell it from another before drawing it whole. */
const STREAMED_HEAD_BYTES = 64;

function rawBytes(tensor: OnnxTypes.ITensorProto, limit = Number.POSITIVE_INFINITY): Buffer {
  const streamed = streamedRawData.get(tensor);
  if (!streamed) return Buffer.from(tensor.rawData!.buffer, tensor.rawData!.byteOffset, Math.min(limit, tensor.rawData!.byteLength));
  if (limit >= streamed.length * 4) return Buffer.from(streamed.data.buffer, streamed.data.byteOffset, streamed.data.byteLength);
  const head = new Float32Array(Math.ceil(limit / 4));
  streamed.read(head);
  return Buffer.from(head.buffer, head.byteOffset, head.byteLength);
}

function equalRawData(a: OnnxTypes.ITensorProto, b: OnnxTypes.ITensorProto): boolean {
  if (streamedRawData.has(a) || streamedRawData.has(b)) {
    if (!rawBytes(a, STREAMED_HEAD_BYTES).equals(rawBytes(b, STREAMED_HEAD_BYTES))) return false;
  }
  return rawBytes(a).equals(rawBytes(b));
}

function shareEqualInitializers(initializers: readonly OnnxTypes.ITensorProto[]): { stored: OnnxTypes.ITensorProto[]; aliases: OnnxTypes.INodeProto[] } {
  const stored: OnnxTypes.ITensorProto[] = [];
  const aliases: OnnxTypes.INodeProto[] = [];
  const byType = new Map<string, OnnxTypes.ITensorProto[]>();
  for (const tensor of initializers) {
    // an Identity node costs about a hundred bytes: smaller twins (shapes, pads, scales) stay duplicated
    if (!streamedRawData.has(tensor) && (!tensor.rawData || tensor.rawData.byteLength < MIN_SHARED_BYTES)) {
      stored.push(tensor);
      continue;
    }
    const key = `${tensor.dataType}:${(tensor.dims ?? []).join(',')}`;
    const candidates = byType.get(key) ?? [];
    const twin = candidates.find((c) => equalRawData(c, tensor));
    if (twin) {
      // Unnamed (ONNX node names are optional): the output carries the tensor's name, and a node name as long would
      // add a third of the bytes the sharing saves on a bias.
      aliases.push({ input: [twin.name!], output: [tensor.name!], opType: 'Identity' });
      continue;
    }
    stored.push(tensor);
    candidates.push(tensor);
    byType.set(key, candidates);
  }
  return { stored, aliases };
}

function makeValueInfo(name: string, elemType: OnnxElemType, dims: readonly OnnxDim[], docString?: string): OnnxTypes.IValueInfoProto {
  const dim = dims.map((d): OnnxTypes.TensorShapeProto.IDimension => {
    if (typeof d === 'string') {
      if (d === '') throw new OnnxBuildError(`value '${name}': a symbolic dimension needs a name`);
      return { dimParam: d };
    }
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new OnnxBuildError(`value '${name}': dimension ${d} is neither a non-negative integer nor a symbol`);
    }
    return { dimValue: d };
  });
  const info: OnnxTypes.IValueInfoProto = {
    name,
    type: { tensorType: { elemType: ONNX_DATA_TYPE[elemType], shape: { dim } } },
  };
  if (docString !== undefined && docString !== '') info.docString = docString;
  return info;
}

/**
 * Collects one graph and encodes it as a `ModelProto`. Values are in SSA form: every name is defined once (graph
 * input, initializer or node output) before a node reads it. An empty input name marks an omitted optional input.
 */
export class OnnxGraphBuilder {
  private readonly inputs: OnnxTypes.IValueInfoProto[] = [];
  private readonly outputs: OnnxTypes.IValueInfoProto[] = [];
  private readonly valueInfos: OnnxTypes.IValueInfoProto[] = [];
  private readonly initializers: OnnxTypes.ITensorProto[] = [];
  private readonly nodes: OnnxTypes.INodeProto[] = [];
  /** Every defined value and what defined it (for error messages). */
  private readonly defined = new Map<string, string>();
  private readonly nodeNames = new Set<string>();
  private readonly outputNames = new Set<string>();
  private readonly domains = new Set<string>();

  /** True when `name` is already a graph input, initializer or node output. */
  has(name: string): boolean {
    return this.defined.has(name);
  }

  private define(name: string, by: string): void {
    if (name === '') throw new OnnxBuildError(`${by}: value names must not be empty`);
    const previous = this.defined.get(name);
    if (previous !== undefined) throw new OnnxBuildError(`${by}: value '${name}' is already defined by ${previous}`);
    this.defined.set(name, by);
  }

  addInput(name: string, elemType: OnnxElemType, dims: readonly OnnxDim[], docString?: string): this {
    const info = makeValueInfo(name, elemType, dims, docString);
    this.define(name, `graph input '${name}'`);
    this.inputs.push(info);
    return this;
  }

  /** Declares a graph output; the value must be defined by the time `build` runs. */
  addOutput(name: string, elemType: OnnxElemType, dims: readonly OnnxDim[], docString?: string): this {
    if (this.outputNames.has(name)) throw new OnnxBuildError(`graph output '${name}' is declared twice`);
    this.outputs.push(makeValueInfo(name, elemType, dims, docString));
    this.outputNames.add(name);
    return this;
  }

  /** Records the type and shape of an intermediate value (`graph.value_info`). */
  addValueInfo(name: string, elemType: OnnxElemType, dims: readonly OnnxDim[]): this {
    this.valueInfos.push(makeValueInfo(name, elemType, dims));
    return this;
  }

  /**
   * Adds a constant tensor stored as little-endian `raw_data`. The builder keeps a view of `data` (no copy) until
   * `build` encodes it: the array must not change before then.
   */
  addInitializer(name: string, dims: readonly number[], data: OnnxTypedArray | StreamedFloat32, dataType?: OnnxElemType): this {
    const what = `initializer '${name}'`;
    // Streamed data large enough to be referenced (see tensorSegments) stays unread until the model is written;
    // smaller pieces, and every tensor on a big-endian host, are drawn now and encoded like any array.
    const streamed = isStreamed(data) && hostIsLittleEndian && data.length * 4 >= REFERENCED_RAW_DATA_BYTES && (dataType ?? 'float32') === 'float32' ? data : undefined;
    const values = isStreamed(data) ? (streamed ? new Float32Array(0) : data.data) : data;
    const tensor = makeTensorProto(name, dataType === undefined ? { dims, data: values } : { dims, data: values, dataType }, what, streamed?.length);
    if (streamed) {
      delete tensor.rawData;
      streamedRawData.set(tensor, streamed);
    }
    this.define(name, what);
    this.initializers.push(tensor);
    return this;
  }

  /**
   * Adds a node. `name` should be unique (non-empty names are checked); attributes are written sorted by name,
   * as `onnx.helper.make_node` does. `domain` defaults to the default ONNX domain.
   */
  addNode(
    opType: string,
    inputs: readonly string[],
    outputs: readonly string[],
    name: string,
    attributes: Readonly<Record<string, OnnxAttributeValue>> = {},
    docString?: string,
    domain?: string,
  ): this {
    const what = `node '${name}' (${opType})`;
    if (opType === '') throw new OnnxBuildError(`${what}: op type must not be empty`);
    if (name !== '' && this.nodeNames.has(name)) throw new OnnxBuildError(`${what}: node name '${name}' is used twice`);
    for (const input of inputs) {
      if (input !== '' && !this.defined.has(input)) {
        throw new OnnxBuildError(`${what}: input '${input}' is not defined (graph input, initializer or earlier node output)`);
      }
    }
    const attribute = Object.keys(attributes)
      .sort()
      .map((key) => makeAttribute(key, attributes[key]!, `${what} attribute '${key}'`));
    for (const output of outputs) if (output !== '') this.define(output, what);
    if (name !== '') this.nodeNames.add(name);
    const node: OnnxTypes.INodeProto = { input: [...inputs], output: [...outputs], opType };
    if (name !== '') node.name = name;
    if (attribute.length > 0) node.attribute = attribute;
    if (docString !== undefined && docString !== '') node.docString = docString;
    if (domain !== undefined && domain !== '' && domain !== 'ai.onnx') {
      node.domain = domain;
      this.domains.add(domain);
    }
    this.nodes.push(node);
    return this;
  }

  /** Encodes the model. Building twice from the same calls gives identical bytes. */
  build(options: OnnxBuildOptions): Uint8Array {
    return concatenateSegments(this.buildSegments(options));
  }

  /**
   * `build`'s bytes as consecutive pieces, large initializers' raw data being views of the tensors given to
   * `addInitializer` (see `encodeModelSegments`): what a file writer takes without a copy of the weights.
   */
  buildSegments(options: OnnxBuildOptions): EncodedModel {
    const irVersion = options.irVersion ?? 8;
    if (!Number.isSafeInteger(irVersion) || irVersion < 1) throw new OnnxBuildError(`IR version ${irVersion} is invalid`);
    const opsets: OnnxOpsetImport[] =
      typeof options.opset === 'number' ? [{ domain: '', version: options.opset }] : [...options.opset];
    const seen = new Set<string>();
    for (const o of opsets) {
      const d = o.domain === 'ai.onnx' ? '' : o.domain;
      if (seen.has(d)) throw new OnnxBuildError(`opset domain '${o.domain}' is imported twice`);
      if (!Number.isSafeInteger(o.version) || o.version < 1) {
        throw new OnnxBuildError(`opset ${o.version} of domain '${o.domain}' is invalid`);
      }
      seen.add(d);
    }
    if (this.nodes.length > 0 && !seen.has('')) throw new OnnxBuildError('no opset imported for the default ONNX domain');
    for (const d of [...this.domains].sort()) {
      if (!seen.has(d)) throw new OnnxBuildError(`nodes use domain '${d}' but no opset of it is imported`);
    }
    if (this.outputs.length === 0) throw new OnnxBuildError(`graph '${options.graphName}' has no outputs`);
    for (const o of this.outputs) {
      if (!this.defined.has(o.name!)) throw new OnnxBuildError(`graph output '${o.name!}' is not defined by any input, initializer or node`);
    }

    // Identity nodes of shared initializers come first: they read only initializers, and every node after them
    // may read their outputs.
    const { stored, aliases } = options.shareEqualInitializers ? shareEqualInitializers(this.initializers) : { stored: this.initializers, aliases: [] };
    const graph: OnnxTypes.IGraphProto = {
      node: [...aliases, ...this.nodes],
      name: options.graphName,
      initializer: stored,
      input: this.inputs,
      output: this.outputs,
    };
    if (this.valueInfos.length > 0) graph.valueInfo = this.valueInfos;
    if (options.graphDocString !== undefined && options.graphDocString !== '') graph.docString = options.graphDocString;

    const metadata = options.metadataProps ?? {};
    const model: OnnxTypes.IModelProto = {
      irVersion,
      opsetImport: opsets.map((o) => ({ domain: o.domain === 'ai.onnx' ? '' : o.domain, version: o.version })),
      producerName: options.producerName,
      producerVersion: options.producerVersion,
      graph,
    };
    if (options.domain !== undefined && options.domain !== '') model.domain = options.domain;
    if (options.modelVersion !== undefined) model.modelVersion = checkInt(options.modelVersion, 'model version');
    if (options.docString !== undefined && options.docString !== '') model.docString = options.docString;
    const keys = Object.keys(metadata).sort();
    if (keys.length > 0) model.metadataProps = keys.map((key) => ({ key, value: metadata[key]! }));
    return encodeModelSegments(model);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Encoding in pieces

/**
 * A streamed range of an encoded model (the raw data of an unread weight): written piece by piece by
 * writeFileAtomicAsync, or copied whole into a buffer by `copyTo`, which leaves the streaming memory alone.
 */
export interface StreamedSegment extends StreamedBytes {
  copyTo(target: Uint8Array): void;
}

/** An encoded model as consecutive byte ranges: the file is their concatenation. */
export interface EncodedModel {
  readonly segments: readonly (Uint8Array | StreamedSegment)[];
  readonly byteLength: number;
}

/** Elements copied at a time into a misaligned target (a float32 view needs a 4-byte-aligned offset). */
const COPY_CHUNK_ELEMENTS = 1 << 18;

function streamedSegment(streamed: StreamedFloat32): StreamedSegment {
  return {
    byteLength: streamed.length * 4,
    pieces: () => streamed.bytes(),
    copyTo(target) {
      if (target.byteOffset % 4 === 0) {
        streamed.read(new Float32Array(target.buffer, target.byteOffset, streamed.length));
        return;
      }
      const chunk = new Float32Array(Math.min(COPY_CHUNK_ELEMENTS, streamed.length));
      for (let first = 0; first < streamed.length; first += chunk.length) {
        const part = chunk.subarray(0, Math.min(chunk.length, streamed.length - first));
        streamed.read(part, first);
        target.set(new Uint8Array(part.buffer, 0, part.byteLength), first * 4);
      }
    },
  };
}

/** raw_data from this size up is referenced, not copied; smaller tensors are encoded with their message. */
const REFERENCED_RAW_DATA_BYTES = 1 << 16;

/** Field tags (field number << 3 | wire type 2, length-delimited) of the fields that are split out. */
const TAG_MODEL_GRAPH = (7 << 3) | 2;
const TAG_GRAPH_INITIALIZER = (5 << 3) | 2;
const TAG_TENSOR_RAW_DATA = (9 << 3) | 2;

function varint(value: number): number[] {
  const bytes: number[] = [];
  let rest = value;
  while (rest >= 0x80) {
    bytes.push((rest % 0x80) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  bytes.push(rest);
  return bytes;
}

function byteLength(parts: readonly (Uint8Array | StreamedSegment)[]): number {
  return parts.reduce((sum, part) => sum + part.byteLength, 0);
}

/** A length-delimited field: tag, length, then the parts. */
function delimited(tag: number, parts: readonly (Uint8Array | StreamedSegment)[]): (Uint8Array | StreamedSegment)[] {
  return [Uint8Array.from([tag, ...varint(byteLength(parts))]), ...parts];
}

function tensorSegments(tensor: OnnxTypes.ITensorProto): (Uint8Array | StreamedSegment)[] {
  const streamed = streamedRawData.get(tensor);
  const raw: Uint8Array | StreamedSegment | undefined = streamed ? streamedSegment(streamed) : (tensor.rawData ?? undefined);
  if (!raw || raw.byteLength < REFERENCED_RAW_DATA_BYTES) return [onnx.TensorProto.encode(tensor).finish()];
  // Fields are encoded in field-number order: those below raw_data (9), raw_data, those above it.
  const { rawData: _raw, doubleData, uint64Data, docString, externalData, dataLocation, ...below } = tensor;
  const above = onnx.TensorProto.encode({ doubleData, uint64Data, docString, externalData, dataLocation }).finish();
  const pieces = [onnx.TensorProto.encode(below).finish(), Uint8Array.from([TAG_TENSOR_RAW_DATA, ...varint(raw.byteLength)]), raw];
  return above.byteLength > 0 ? [...pieces, above] : pieces;
}

/**
 * Encodes a model as `onnx.ModelProto.encode(model).finish()` does, byte for byte, but as pieces: the raw data of
 * every initializer from 64 KiB up is a view of the tensor's own memory, not a copy. protobufjs writes fields in
 * field-number order and a message's fields may be encoded one group at a time, so the model is split around its
 * graph (field 7) and the graph around its initializers (field 5). For ResNet-50 this saves copying 100 MB into a
 * fresh buffer (about 0.1 s with the page faults) before the file is written.
 */
export function encodeModelSegments(model: OnnxTypes.IModelProto): EncodedModel {
  const { graph, opsetImport, metadataProps, trainingInfo, functions, ...belowGraph } = model;
  if (!graph) {
    const bytes = onnx.ModelProto.encode(model).finish();
    return { segments: [bytes], byteLength: bytes.byteLength };
  }
  const { node, name, initializer, ...aboveInitializers } = graph;
  const graphParts: (Uint8Array | StreamedSegment)[] = [onnx.GraphProto.encode({ node, name }).finish()];
  for (const tensor of initializer ?? []) graphParts.push(...delimited(TAG_GRAPH_INITIALIZER, tensorSegments(tensor)));
  graphParts.push(onnx.GraphProto.encode(aboveInitializers).finish());
  const segments = [
    onnx.ModelProto.encode(belowGraph).finish(),
    ...delimited(TAG_MODEL_GRAPH, graphParts),
    onnx.ModelProto.encode({ opsetImport, metadataProps, trainingInfo, functions }).finish(),
  ].filter((segment) => segment.byteLength > 0);
  return { segments, byteLength: byteLength(segments) };
}

/** The pieces of an encoded model as one array (streamed ranges drawn into it). */
export function concatenateSegments(encoded: EncodedModel): Uint8Array {
  const only = encoded.segments.length === 1 ? encoded.segments[0]! : undefined;
  if (only instanceof Uint8Array) return only;
  const bytes = new Uint8Array(encoded.byteLength);
  let offset = 0;
  for (const segment of encoded.segments) {
    if (segment instanceof Uint8Array) bytes.set(segment, offset);
    else segment.copyTo(bytes.subarray(offset, offset + segment.byteLength));
    offset += segment.byteLength;
  }
  return bytes;
}

// ---------------------------------------------------------------------------------------------------------
// Decoding

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Decodes a `ModelProto`. Raises `OnnxFormatError` when the bytes are truncated, not protobuf, or decode to
 * something that is not a model (no IR version or no graph; protobuf skips unknown fields, so garbage can
 * "decode").
 */
export function decodeModel(bytes: Uint8Array, path?: string): DecodedModelProto {
  let model: ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (error) {
    throw new OnnxFormatError(`not an ONNX model (${describe(error)})`, path);
  }
  const irVersion = int64ToNumber(model.irVersion, 'ir_version', path);
  if (irVersion < 1) throw new OnnxFormatError('not an ONNX model (no IR version)', path);
  if (!(model.graph instanceof onnx.GraphProto)) throw new OnnxFormatError('not an ONNX model (no graph)', path);
  return model as DecodedModelProto;
}

/** Encodes a model (decoded or built by hand) back to bytes; a decoded model re-encodes to the bytes it came from. */
export function encodeModel(model: OnnxTypes.IModelProto): Uint8Array {
  return onnx.ModelProto.encode(model).finish();
}

/** Encodes a `TensorProto` (e.g. a `.pb` file of test data in ONNX's layout). */
export function encodeTensorProto(tensor: OnnxTypes.ITensorProto): Uint8Array {
  return onnx.TensorProto.encode(tensor).finish();
}

/** Decodes a `TensorProto` (the `.pb` files of ONNX's test data), raising `OnnxFormatError` on bad bytes. */
export function decodeTensorProto(bytes: Uint8Array, path?: string): TensorProto {
  try {
    return onnx.TensorProto.decode(bytes);
  } catch (error) {
    throw new OnnxFormatError(`not an ONNX tensor (${describe(error)})`, path);
  }
}

/** The element type and shape a `ValueInfoProto` declares; a dimension is a size, a symbol, or `null` (unknown). */
export interface OnnxValueShape {
  readonly name: string;
  /** `undefined` when the value is not a tensor or its element type is unknown to this module. */
  readonly elemType: OnnxElemType | undefined;
  /** `undefined` when the rank is unknown (no shape). */
  readonly dims: (number | string | null)[] | undefined;
}

/**
 * Reads a value's declared type and shape. (Decoded `Dimension`s hold `dim_value`/`dim_param` as a oneof: the
 * field that is not set reads `null`, not 0 or "".)
 */
export function valueInfoShape(info: OnnxTypes.IValueInfoProto, path?: string): OnnxValueShape {
  const name = info.name ?? '';
  const tensorType = info.type?.tensorType;
  const elemType = tensorType?.elemType != null ? elemTypeFromCode(tensorType.elemType) : undefined;
  const shape = tensorType?.shape;
  const dims =
    shape === null || shape === undefined
      ? undefined
      : (shape.dim ?? []).map((d): number | string | null => {
          if (d.dimParam !== null && d.dimParam !== undefined && d.dimParam !== '') return d.dimParam;
          if (d.dimValue !== null && d.dimValue !== undefined) return int64ToNumber(d.dimValue, `dimension of '${name}'`, path);
          return null;
        });
  return { name, elemType, dims };
}

/** protobufjs returns int64 fields as `number` or, with the `long` package present, as a Long object. */
interface LongLike {
  readonly low: number;
  readonly high: number;
  readonly unsigned?: boolean;
}

function isLongLike(v: unknown): v is LongLike {
  return typeof v === 'object' && v !== null && typeof (v as LongLike).low === 'number' && typeof (v as LongLike).high === 'number';
}

/** An int64 field as a bigint. */
export function int64ToBigInt(value: unknown): bigint {
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number') return BigInt(value);
  if (isLongLike(value)) {
    const bits = (BigInt(value.high >>> 0) << 32n) | BigInt(value.low >>> 0);
    return value.unsigned === true ? BigInt.asUintN(64, bits) : BigInt.asIntN(64, bits);
  }
  if (value === null || value === undefined) return 0n;
  throw new TypeError(`not an int64 value: ${String(value)}`);
}

/** An int64 field as a number; raises `OnnxFormatError` when it does not fit in a double exactly. */
export function int64ToNumber(value: unknown, what = 'int64 field', path?: string): number {
  const big = int64ToBigInt(value);
  const n = Number(big);
  if (!Number.isSafeInteger(n)) throw new OnnxFormatError(`${what} ${big} does not fit in a safe integer`, path);
  return n;
}

/**
 * The elements of a tensor as a typed array of its element type: `raw_data` (little endian) when present,
 * otherwise the typed field ONNX prescribes (float_data, double_data, int32_data for int8/uint8/int32/bool,
 * int64_data). Supports float32, float64, int8, uint8, int32, int64 and bool (as 0/1 bytes).
 */
export function tensorProtoToArray(tensor: OnnxTypes.ITensorProto, path?: string): OnnxTensorData {
  const name = tensor.name ?? '';
  const where = name === '' ? 'tensor' : `tensor '${name}'`;
  const code = tensor.dataType ?? 0;
  const dataType = elemTypeFromCode(code);
  if (tensor.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL || (tensor.externalData?.length ?? 0) > 0) {
    throw new OnnxFormatError(`${where}: external data is not supported`, path);
  }
  const dims = (tensor.dims ?? []).map((d) => int64ToNumber(d, `${where} dimension`, path));
  if (dims.some((d) => d < 0)) throw new OnnxFormatError(`${where}: negative dimension in [${dims.join(', ')}]`, path);
  const count = product(dims);
  const raw = tensor.rawData;
  const fail = (message: string): never => {
    throw new OnnxFormatError(`${where}: ${message}`, path);
  };

  let data: OnnxTypedArray;
  if (raw !== null && raw !== undefined && raw.length > 0) {
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const expectBytes = (size: number): void => {
      if (raw.byteLength !== count * size) {
        fail(`raw_data has ${raw.byteLength} bytes, dims [${dims.join(', ')}] of ${dataType ?? code} need ${count * size}`);
      }
    };
    switch (dataType) {
      case 'float32': {
        expectBytes(4);
        const out = new Float32Array(count);
        for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
        data = out;
        break;
      }
      case 'float64': {
        expectBytes(8);
        const out = new Float64Array(count);
        for (let i = 0; i < count; i++) out[i] = view.getFloat64(i * 8, true);
        data = out;
        break;
      }
      case 'int32': {
        expectBytes(4);
        const out = new Int32Array(count);
        for (let i = 0; i < count; i++) out[i] = view.getInt32(i * 4, true);
        data = out;
        break;
      }
      case 'int64': {
        expectBytes(8);
        const out = new BigInt64Array(count);
        for (let i = 0; i < count; i++) out[i] = view.getBigInt64(i * 8, true);
        data = out;
        break;
      }
      case 'int8': {
        // Under Node, protobufjs decodes bytes as a Buffer whose slice() is a view of a shared pool: copy.
        expectBytes(1);
        const out = new Int8Array(count);
        out.set(new Int8Array(raw.buffer, raw.byteOffset, raw.byteLength));
        data = out;
        break;
      }
      case 'uint8':
      case 'bool': {
        expectBytes(1);
        const out = new Uint8Array(count);
        out.set(raw);
        data = out;
        break;
      }
      default:
        return fail(`element type ${dataType ?? code} is not supported`);
    }
  } else {
    const typed = <T>(field: readonly T[] | null | undefined, fieldName: string): readonly T[] => {
      const values = field ?? [];
      if (values.length !== count) {
        fail(`${fieldName} has ${values.length} elements, dims [${dims.join(', ')}] need ${count}`);
      }
      return values;
    };
    switch (dataType) {
      case 'float32':
        data = Float32Array.from(typed(tensor.floatData, 'float_data'));
        break;
      case 'float64':
        data = Float64Array.from(typed(tensor.doubleData, 'double_data'));
        break;
      case 'int32':
        data = Int32Array.from(typed(tensor.int32Data, 'int32_data'));
        break;
      case 'int8':
        data = Int8Array.from(typed(tensor.int32Data, 'int32_data'));
        break;
      case 'uint8':
        data = Uint8Array.from(typed(tensor.int32Data, 'int32_data'));
        break;
      case 'bool':
        data = Uint8Array.from(typed(tensor.int32Data, 'int32_data'), (v) => (v !== 0 ? 1 : 0));
        break;
      case 'int64':
        data = BigInt64Array.from(typed(tensor.int64Data as readonly unknown[], 'int64_data'), (v) => int64ToBigInt(v));
        break;
      default:
        return fail(`element type ${dataType ?? code} is not supported`);
    }
  }
  return { name, dataType, dims, data };
}

/**
 * The pieces of a TensorFlow.js graph model that do not depend on the IR: a GraphDef builder in TF's JSON
 * encoding, attribute encoders, and the packing of constants into a weights manifest and binary shards (with
 * optional uint8 / uint16 affine weight compression).
 *
 * JSON encoding of a GraphDef as `tf.loadGraphModel` reads it (tfjs-converter's operation mapper):
 *   node      { name, op, input: ['producer', 'producer:1', …], attr: { key: AttrValue } }
 *   AttrValue { s: base64 } (strings; the mapper lower-cases them), { i: '3' } (int64 as a decimal string, as TF's
 *             JSON form writes it), { f: 0.5 }, { b: true }, { type: 'DT_FLOAT' }, { shape: { dim: [{ size: '-1' }] } },
 *             { list: { i: [...] } | { s: [...] } }, and for Const nodes { tensor: { dtype, tensorShape } } (the
 *             values live in the weights manifest under the Const node's name).
 *
 * Weights: one group, every constant in creation order, little-endian float32 / int32, cut into shards of at most
 * 4 MiB (`group1-shard1of3.bin` …; a tensor may span two shards, tfjs concatenates a group before slicing it).
 * Quantization (`quantizeBytes` 1 or 2) stores the tensors marked quantizable as uint8 / uint16 with a per-tensor
 * affine map value = q·scale + min, nudged so that 0 is exactly representable (zero taps of dilated kernels stay
 * exactly zero), error at most scale/2 per value. tfjs dequantizes to float32 when it loads the model: it makes the
 * files smaller, not inference faster.
 */

export type TfDType = 'DT_FLOAT' | 'DT_INT32';

export interface TfTensorShape {
  readonly dim?: ReadonlyArray<{ readonly size: string }>;
}

export type TfAttrValue =
  | { readonly s: string }
  | { readonly i: string }
  | { readonly f: number }
  | { readonly b: boolean }
  | { readonly type: TfDType }
  | { readonly shape: TfTensorShape }
  | { readonly list: { readonly i?: readonly string[]; readonly s?: readonly string[] } }
  | { readonly tensor: { readonly dtype: TfDType; readonly tensorShape: TfTensorShape } };

export interface TfNodeDef {
  readonly name: string;
  readonly op: string;
  readonly input?: readonly string[];
  readonly attr?: Readonly<Record<string, TfAttrValue>>;
}

function base64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
}

function int64(value: number): string {
  if (!Number.isInteger(value)) throw new Error(`internal: ${value} is not an integer attribute`);
  return String(value);
}

/** Encoders for attribute values. */
export const tfAttr = {
  string: (value: string): TfAttrValue => ({ s: base64(value) }),
  int: (value: number): TfAttrValue => ({ i: int64(value) }),
  float: (value: number): TfAttrValue => ({ f: value }),
  bool: (value: boolean): TfAttrValue => ({ b: value }),
  ints: (values: readonly number[]): TfAttrValue => ({ list: { i: values.map(int64) } }),
  strings: (values: readonly string[]): TfAttrValue => ({ list: { s: values.map(base64) } }),
  dtype: (dtype: TfDType): TfAttrValue => ({ type: dtype }),
  /** A shape; −1 marks an unknown size. */
  shape: (dims: readonly number[]): TfAttrValue => ({ shape: tensorShape(dims) }),
};

export function tensorShape(dims: readonly number[]): TfTensorShape {
  return dims.length === 0 ? {} : { dim: dims.map((d) => ({ size: int64(d) })) };
}

export type ConstData = Float32Array | Int32Array;

export interface ConstTensor {
  readonly name: string;
  readonly dtype: 'float32' | 'int32';
  readonly shape: readonly number[];
  readonly data: ConstData;
  /** Weight compression may store it as uint8/uint16 (IR parameters and tensors derived from them). */
  readonly quantizable: boolean;
}

/** Builds the node list of a GraphDef; every node and constant name is unique. */
export class GraphDefBuilder {
  readonly nodes: TfNodeDef[] = [];
  readonly constants: ConstTensor[] = [];
  private readonly names = new Set<string>();

  /** Adds a node and returns its name (which is also its first output's tensor name). */
  add(name: string, op: string, inputs: readonly string[], attributes: Readonly<Record<string, TfAttrValue>> = {}): string {
    this.claim(name);
    const keys = Object.keys(attributes).sort();
    const attr: Record<string, TfAttrValue> = {};
    for (const key of keys) attr[key] = attributes[key]!;
    const node: TfNodeDef = { name, op, ...(inputs.length > 0 ? { input: [...inputs] } : {}), ...(keys.length > 0 ? { attr } : {}) };
    this.nodes.push(node);
    return name;
  }

  /** A Const node whose value is stored in the weights manifest under the same name. */
  constant(name: string, dtype: 'float32' | 'int32', shape: readonly number[], data: ConstData, quantizable = false): string {
    const size = shape.reduce((a, b) => a * b, 1);
    if (data.length !== size) throw new Error(`internal: constant '${name}' has ${data.length} values for shape [${shape.join(', ')}]`);
    const tfType: TfDType = dtype === 'float32' ? 'DT_FLOAT' : 'DT_INT32';
    this.add(name, 'Const', [], { dtype: tfAttr.dtype(tfType), value: { tensor: { dtype: tfType, tensorShape: tensorShape(shape) } } });
    this.constants.push({ name, dtype, shape: [...shape], data, quantizable });
    return name;
  }

  has(name: string): boolean {
    return this.names.has(name);
  }

  private claim(name: string): void {
    if (name.length === 0 || name.includes(':')) throw new Error(`internal: invalid TF node name '${name}'`);
    if (this.names.has(name)) throw new Error(`internal: TF node name '${name}' is used twice`);
    this.names.add(name);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Weights manifest and shards

export const SHARD_BYTES = 4 * 1024 * 1024;

export interface WeightQuantization {
  readonly dtype: 'uint8' | 'uint16';
  readonly min: number;
  readonly scale: number;
  readonly original_dtype: 'float32';
}

export interface WeightSpec {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: 'float32' | 'int32';
  readonly quantization?: WeightQuantization;
}

export interface WeightsManifestGroup {
  readonly paths: readonly string[];
  readonly weights: readonly WeightSpec[];
}

export interface PackedWeights {
  readonly manifest: WeightsManifestGroup[];
  readonly shards: ReadonlyArray<{ readonly path: string; readonly bytes: Uint8Array }>;
  /** Bytes of all shards together. */
  readonly totalBytes: number;
  /** Bytes the same weights take as float32 / int32. */
  readonly unquantizedBytes: number;
  readonly quantizedTensors: number;
}

/**
 * Affine quantization of one tensor as tensorflowjs_converter's `--quantize_uint8/uint16` does: range widened to
 * contain 0, zero point nudged to an integer so 0 maps exactly, q = clamp(round(v/scale) + zp, 0, qmax).
 */
export function quantizeAffine(data: Float32Array, bytes: 1 | 2): { values: Uint8Array | Uint16Array; min: number; scale: number } {
  const qmax = bytes === 1 ? 255 : 65535;
  let lo = 0;
  let hi = 0;
  for (const v of data) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const scale = hi > lo ? (hi - lo) / qmax : 1;
  const zeroPoint = Math.round(-lo / scale);
  const min = -zeroPoint * scale;
  const values = bytes === 1 ? new Uint8Array(data.length) : new Uint16Array(data.length);
  for (let i = 0; i < data.length; i++) {
    values[i] = Math.min(qmax, Math.max(0, Math.round(data[i]! / scale) + zeroPoint));
  }
  return { values, min, scale };
}

function isFiniteArray(data: Float32Array): boolean {
  for (const v of data) if (!Number.isFinite(v)) return false;
  return true;
}

function littleEndianBytes(data: ConstData | Uint8Array | Uint16Array): Uint8Array {
  // Typed arrays use the platform's byte order; every platform Node runs on is little-endian, as the format wants.
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

export function packWeights(constants: readonly ConstTensor[], quantizeBytes: 1 | 2 | undefined, shardBytes = SHARD_BYTES): PackedWeights {
  const specs: WeightSpec[] = [];
  const chunks: Uint8Array[] = [];
  let unquantizedBytes = 0;
  let quantizedTensors = 0;
  for (const constant of constants) {
    unquantizedBytes += constant.data.byteLength;
    if (quantizeBytes !== undefined && constant.quantizable && constant.dtype === 'float32' && constant.data.length > 0 && isFiniteArray(constant.data as Float32Array)) {
      const q = quantizeAffine(constant.data as Float32Array, quantizeBytes);
      specs.push({
        name: constant.name,
        shape: constant.shape,
        dtype: 'float32',
        quantization: { dtype: quantizeBytes === 1 ? 'uint8' : 'uint16', min: q.min, scale: q.scale, original_dtype: 'float32' },
      });
      chunks.push(littleEndianBytes(q.values));
      quantizedTensors++;
    } else {
      specs.push({ name: constant.name, shape: constant.shape, dtype: constant.dtype });
      chunks.push(littleEndianBytes(constant.data));
    }
  }
  const totalBytes = chunks.reduce((n, c) => n + c.length, 0);
  const all = new Uint8Array(totalBytes);
  let offset = 0;
  for (const chunk of chunks) {
    all.set(chunk, offset);
    offset += chunk.length;
  }
  const count = Math.ceil(totalBytes / shardBytes);
  const shards: Array<{ path: string; bytes: Uint8Array }> = [];
  for (let i = 0; i < count; i++) {
    shards.push({ path: `group1-shard${i + 1}of${count}.bin`, bytes: all.slice(i * shardBytes, Math.min(totalBytes, (i + 1) * shardBytes)) });
  }
  return { manifest: [{ paths: shards.map((s) => s.path), weights: specs }], shards, totalBytes, unquantizedBytes, quantizedTensors };
}

/**
 * Reading and writing IDX files, the format of MNIST and Fashion-MNIST.
 *
 * Layout (all integers big-endian), from Yann LeCun's MNIST page:
 *
 *   bytes 0–1   zero
 *   byte  2     element type: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
 *   byte  3     number of dimensions, d
 *   then        d uint32 sizes, then the elements in row-major (C) order
 *
 * so a file holds exactly 4 + 4·d + (product of sizes)·(element size) bytes. The files are usually distributed
 * gzip-compressed (`*.gz`); we recognise gzip by its magic bytes 0x1F 0x8B rather than by the file name, so a
 * renamed file still loads. Every inconsistency (bad magic, unknown type, truncated or oversized data, corrupt gzip)
 * is a `DataError` naming the file; garbage input never crashes the loader.
 */

import { readFileSync } from 'node:fs';
import { gunzipSync, gzipSync } from 'node:zlib';
import { writeFileAtomic } from './atomic-write.js';
import { DataError, describeCause } from './data-error.js';

export type IdxDataType = 'uint8' | 'int8' | 'int16' | 'int32' | 'float32' | 'float64';

export type IdxTypedArray = Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;

/** An n-dimensional array read from or written to an IDX file. `data` is row-major and owns its buffer. */
export interface IdxArray {
  dtype: IdxDataType;
  shape: number[];
  data: IdxTypedArray;
}

interface IdxTypeInfo {
  code: number;
  bytesPerElement: number;
}

const idxTypes: Record<IdxDataType, IdxTypeInfo> = {
  uint8: { code: 0x08, bytesPerElement: 1 },
  int8: { code: 0x09, bytesPerElement: 1 },
  int16: { code: 0x0b, bytesPerElement: 2 },
  int32: { code: 0x0c, bytesPerElement: 4 },
  float32: { code: 0x0d, bytesPerElement: 4 },
  float64: { code: 0x0e, bytesPerElement: 8 },
};

const idxTypeByCode = new Map<number, IdxDataType>(
  (Object.entries(idxTypes) as [IdxDataType, IdxTypeInfo][]).map(([name, info]) => [info.code, name]),
);

/** True when `bytes` starts with the gzip magic number (RFC 1952: 0x1F 0x8B). */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** Decompresses `bytes` when they are gzip, reporting a corrupt or truncated stream as a `DataError`. */
export function gunzipIfCompressed(bytes: Uint8Array, sourceName: string): Uint8Array {
  if (!isGzip(bytes)) return bytes;
  try {
    return gunzipSync(bytes);
  } catch (error) {
    throw new DataError(
      `the file starts like gzip but cannot be decompressed (truncated or corrupt): ${describeCause(error)}`,
      sourceName,
      { cause: error },
    );
  }
}

/** Element count of `shape`, or a `DataError` when it exceeds what an array can hold. */
function countElements(shape: readonly number[], sourceName: string): number {
  let count = 1;
  for (const size of shape) {
    count *= size;
    if (!Number.isSafeInteger(count)) {
      throw new DataError(`dimensions [${shape.join(', ')}] describe more elements than can be loaded`, sourceName);
    }
  }
  return count;
}

/**
 * Parses IDX bytes (plain or gzip). `sourceName` (usually the file path) only labels errors.
 */
export function parseIdx(fileBytes: Uint8Array, sourceName = '<idx bytes>'): IdxArray {
  const bytes = gunzipIfCompressed(fileBytes, sourceName);
  if (bytes.length < 4) {
    throw new DataError(`not an IDX file: ${bytes.length} bytes is shorter than the 4-byte header`, sourceName);
  }
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    const magic = Array.from(bytes.subarray(0, 4), (byte) => byte.toString(16).padStart(2, '0')).join(' ');
    throw new DataError(`not an IDX file: bad magic number ${magic} (expected 00 00 <type> <dimensions>)`, sourceName);
  }
  const dtype = idxTypeByCode.get(bytes[2]!);
  if (dtype === undefined) {
    throw new DataError(
      `unknown IDX element type code 0x${bytes[2]!.toString(16).padStart(2, '0')} ` +
        '(expected 08 uint8, 09 int8, 0B int16, 0C int32, 0D float32 or 0E float64)',
      sourceName,
    );
  }
  const dimensionCount = bytes[3]!;
  if (dimensionCount === 0) {
    throw new DataError('IDX header declares 0 dimensions', sourceName);
  }
  const headerLength = 4 + 4 * dimensionCount;
  if (bytes.length < headerLength) {
    throw new DataError(
      `truncated IDX header: ${dimensionCount} dimensions need ${headerLength} header bytes, the file has ${bytes.length}`,
      sourceName,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const shape: number[] = [];
  for (let dimension = 0; dimension < dimensionCount; dimension++) {
    shape.push(view.getUint32(4 + 4 * dimension, false));
  }
  const { bytesPerElement } = idxTypes[dtype];
  const elementCount = countElements(shape, sourceName);
  const expectedDataLength = elementCount * bytesPerElement;
  const actualDataLength = bytes.length - headerLength;
  if (actualDataLength !== expectedDataLength) {
    const problem = actualDataLength < expectedDataLength ? 'truncated' : 'has trailing bytes';
    throw new DataError(
      `IDX data ${problem}: a ${dtype} array of shape [${shape.join(', ')}] needs ${expectedDataLength} bytes ` +
        `after the ${headerLength}-byte header, the file has ${actualDataLength}`,
      sourceName,
    );
  }
  return { dtype, shape, data: decodeBigEndian(view, headerLength, elementCount, dtype) };
}

function decodeBigEndian(view: DataView, offset: number, count: number, dtype: IdxDataType): IdxTypedArray {
  switch (dtype) {
    case 'uint8':
      return new Uint8Array(view.buffer.slice(view.byteOffset + offset, view.byteOffset + offset + count));
    case 'int8':
      return new Int8Array(view.buffer.slice(view.byteOffset + offset, view.byteOffset + offset + count));
    case 'int16': {
      const data = new Int16Array(count);
      for (let index = 0; index < count; index++) data[index] = view.getInt16(offset + 2 * index, false);
      return data;
    }
    case 'int32': {
      const data = new Int32Array(count);
      for (let index = 0; index < count; index++) data[index] = view.getInt32(offset + 4 * index, false);
      return data;
    }
    case 'float32': {
      const data = new Float32Array(count);
      for (let index = 0; index < count; index++) data[index] = view.getFloat32(offset + 4 * index, false);
      return data;
    }
    case 'float64': {
      const data = new Float64Array(count);
      for (let index = 0; index < count; index++) data[index] = view.getFloat64(offset + 8 * index, false);
      return data;
    }
  }
}

/** Reads an IDX file (plain or gzip-compressed, detected from its first bytes). Synchronous. */
export function readIdxFile(filePath: string): IdxArray {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(filePath);
  } catch (error) {
    throw new DataError(`cannot read IDX file: ${describeCause(error)}`, filePath, { cause: error });
  }
  return parseIdx(bytes, filePath);
}

function typedArrayMatches(dtype: IdxDataType, data: IdxTypedArray): boolean {
  switch (dtype) {
    case 'uint8':
      return data instanceof Uint8Array;
    case 'int8':
      return data instanceof Int8Array;
    case 'int16':
      return data instanceof Int16Array;
    case 'int32':
      return data instanceof Int32Array;
    case 'float32':
      return data instanceof Float32Array;
    case 'float64':
      return data instanceof Float64Array;
  }
}

/** Encodes an array as IDX bytes, gzip-compressed when `gzip` is true (level 9, reproducible bytes). */
export function encodeIdx(array: IdxArray, options: { gzip?: boolean } = {}): Uint8Array {
  const { dtype, shape, data } = array;
  const info = idxTypes[dtype];
  if (info === undefined) throw new DataError(`cannot write IDX: unsupported element type ${String(dtype)}`);
  if (!typedArrayMatches(dtype, data)) {
    throw new DataError(`cannot write IDX: dtype ${dtype} does not match the data's ${data.constructor.name}`);
  }
  if (shape.length === 0 || shape.length > 255) {
    throw new DataError(`cannot write IDX: ${shape.length} dimensions (IDX holds 1 to 255)`);
  }
  for (const size of shape) {
    if (!Number.isInteger(size) || size < 0 || size > 0xffffffff) {
      throw new DataError(`cannot write IDX: dimension size ${size} is not a 32-bit unsigned integer`);
    }
  }
  const elementCount = countElements(shape, '<idx encoder>');
  if (elementCount !== data.length) {
    throw new DataError(`cannot write IDX: shape [${shape.join(', ')}] holds ${elementCount} elements, data has ${data.length}`);
  }
  const headerLength = 4 + 4 * shape.length;
  const bytes = new Uint8Array(headerLength + elementCount * info.bytesPerElement);
  const view = new DataView(bytes.buffer);
  bytes[2] = info.code;
  bytes[3] = shape.length;
  shape.forEach((size, dimension) => view.setUint32(4 + 4 * dimension, size, false));
  if (info.bytesPerElement === 1) {
    bytes.set(new Uint8Array(data.buffer, data.byteOffset, data.length), headerLength);
  } else {
    for (let index = 0; index < elementCount; index++) {
      const offset = headerLength + index * info.bytesPerElement;
      const value = data[index]!;
      if (dtype === 'int16') view.setInt16(offset, value, false);
      else if (dtype === 'int32') view.setInt32(offset, value, false);
      else if (dtype === 'float32') view.setFloat32(offset, value, false);
      else view.setFloat64(offset, value, false);
    }
  }
  return options.gzip ? gzipSync(bytes, { level: 9 }) : bytes;
}

/** Writes an IDX file atomically (temporary file + rename), gzip-compressed when `gzip` is true. */
export function writeIdxFile(filePath: string, array: IdxArray, options: { gzip?: boolean } = {}): void {
  let bytes: Uint8Array;
  try {
    bytes = encodeIdx(array, options);
  } catch (error) {
    if (error instanceof DataError) throw new DataError(error.message, filePath, { cause: error });
    throw error;
  }
  writeFileAtomic(filePath, bytes);
}

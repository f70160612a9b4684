/**
 * Reading and writing NumPy `.npy` files.
 *
 * Format (NumPy Enhancement Proposal 1, "A Simple File Format for NumPy Arrays"):
 *
 *   bytes 0–5   magic "\x93NUMPY"
 *   bytes 6–7   format version, major then minor: 1.0, 2.0 or 3.0
 *   then        header length, little-endian: uint16 in 1.0, uint32 in 2.0 and 3.0
 *   then        the header: a Python dict literal, ASCII (1.0, 2.0) or UTF-8 (3.0), padded with spaces and a final
 *               newline so that the data starts at a multiple of 64 bytes, e.g.
 *               {'descr': '<f4', 'fortran_order': False, 'shape': (60000, 28, 28), }
 *   then        the elements, in C (row-major) order unless fortran_order is True
 *
 * `descr` is a byte order (`<` little, `>` big, `|` not applicable, `=` native) followed by a type code and an
 * element size. We read float32 (f4), float64 (f8), int32 (i4), int64 (i8), uint8 (u1), int8 (i1) and bool (b1),
 * in either byte order, and refuse Fortran-ordered arrays and structured dtypes with an error that says how to
 * re-save the file. int64 data is returned as a `BigInt64Array` (exact); `dataset.ts` narrows labels to int32.
 *
 * The writer emits version 1.0 (2.0 when the header outgrows 65535 bytes), little-endian by default, and writes
 * files atomically (temporary file + rename).
 */

import { readFileSync } from 'node:fs';
import { endianness } from 'node:os';
import { writeFileAtomic } from './atomic-write.js';
import { DataError, describeCause } from './data-error.js';

export type NpyDataType = 'float32' | 'float64' | 'int32' | 'int64' | 'uint8' | 'int8' | 'bool';

/** The typed array for each dtype. `bool` elements are bytes holding 0 or 1. */
export interface NpyTypedArrayByDataType {
  float32: Float32Array;
  float64: Float64Array;
  int32: Int32Array;
  int64: BigInt64Array;
  uint8: Uint8Array;
  int8: Int8Array;
  bool: Uint8Array;
}

export type NpyTypedArray = NpyTypedArrayByDataType[NpyDataType];

/** An n-dimensional array of one dtype in C order. A scalar has shape `[]` and one element. */
export interface NpyArrayOf<T extends NpyDataType> {
  dtype: T;
  shape: number[];
  data: NpyTypedArrayByDataType[T];
}

/** An array of any supported dtype; `switch (array.dtype)` narrows `data`. */
export type NpyArray = { [T in NpyDataType]: NpyArrayOf<T> }[NpyDataType];

export type NpyByteOrder = 'little' | 'big';

interface NpyTypeInfo {
  kind: string;
  bytesPerElement: number;
}

const npyTypes: Record<NpyDataType, NpyTypeInfo> = {
  float32: { kind: 'f', bytesPerElement: 4 },
  float64: { kind: 'f', bytesPerElement: 8 },
  int32: { kind: 'i', bytesPerElement: 4 },
  int64: { kind: 'i', bytesPerElement: 8 },
  uint8: { kind: 'u', bytesPerElement: 1 },
  int8: { kind: 'i', bytesPerElement: 1 },
  bool: { kind: 'b', bytesPerElement: 1 },
};

const npyTypeByCode = new Map<string, NpyDataType>(
  (Object.entries(npyTypes) as [NpyDataType, NpyTypeInfo][]).map(([name, info]) => [
    `${info.kind}${info.bytesPerElement}`,
    name,
  ]),
);

const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"

// ---------------------------------------------------------------------------------------------------------------
// The header: a small parser for the Python literals NumPy writes (dict, tuple, list, str, int, True/False/None).
// ---------------------------------------------------------------------------------------------------------------

type PythonLiteral = string | number | boolean | null | PythonLiteral[] | { tuple: PythonLiteral[] } | Map<string, PythonLiteral>;

class PythonLiteralParser {
  private position = 0;

  constructor(
    private readonly text: string,
    private readonly sourceName: string,
  ) {}

  parseWhole(): PythonLiteral {
    const value = this.parseValue();
    this.skipWhitespace();
    if (this.position !== this.text.length) this.fail(`unexpected text after the header dict`);
    return value;
  }

  private fail(problem: string): never {
    throw new DataError(`cannot parse .npy header ${JSON.stringify(this.text.trim())}: ${problem}`, this.sourceName);
  }

  private skipWhitespace(): void {
    while (this.position < this.text.length && /\s/.test(this.text[this.position]!)) this.position++;
  }

  private peek(): string | undefined {
    this.skipWhitespace();
    return this.text[this.position];
  }

  private expect(character: string): void {
    if (this.peek() !== character) this.fail(`expected '${character}' at offset ${this.position}`);
    this.position++;
  }

  /** Parses items up to `closing`, allowing a trailing comma as Python does. */
  private parseSequence<T>(closing: string, parseItem: () => T): T[] {
    const items: T[] = [];
    for (;;) {
      if (this.peek() === closing) break;
      items.push(parseItem());
      if (this.peek() === ',') {
        this.position++;
        continue;
      }
      if (this.peek() !== closing) this.fail(`expected ',' or '${closing}' at offset ${this.position}`);
    }
    this.position++;
    return items;
  }

  private parseValue(): PythonLiteral {
    const next = this.peek();
    if (next === undefined) this.fail('unexpected end of header');
    if (next === '{') {
      this.position++;
      const entries = this.parseSequence('}', () => {
        const key = this.parseValue();
        if (typeof key !== 'string') this.fail('dict keys must be strings');
        this.expect(':');
        return [key, this.parseValue()] as const;
      });
      return new Map(entries);
    }
    if (next === '(') {
      this.position++;
      return { tuple: this.parseSequence(')', () => this.parseValue()) };
    }
    if (next === '[') {
      this.position++;
      return this.parseSequence(']', () => this.parseValue());
    }
    if (next === "'" || next === '"') return this.parseString(next);
    const word = /^(?:True|False|None|-?\d+L?)/.exec(this.text.slice(this.position));
    if (word === null) this.fail(`unexpected character '${next}' at offset ${this.position}`);
    this.position += word[0].length;
    if (word[0] === 'True') return true;
    if (word[0] === 'False') return false;
    if (word[0] === 'None') return null;
    const integer = Number(word[0].replace(/L$/, '')); // Python 2 wrote long integers as "3L"
    if (!Number.isSafeInteger(integer)) this.fail(`integer ${word[0]} is too large`);
    return integer;
  }

  private parseString(quote: string): string {
    this.position++;
    let value = '';
    while (this.position < this.text.length) {
      const character = this.text[this.position++]!;
      if (character === quote) return value;
      if (character === '\\') {
        const escaped = this.text[this.position++];
        if (escaped === undefined) break;
        value += escaped === 'n' ? '\n' : escaped === 't' ? '\t' : escaped;
      } else {
        value += character;
      }
    }
    this.fail('unterminated string');
  }
}

interface NpyHeader {
  dtype: NpyDataType;
  byteOrder: NpyByteOrder;
  shape: number[];
}

function parseDescriptor(descriptor: PythonLiteral, sourceName: string): { dtype: NpyDataType; byteOrder: NpyByteOrder } {
  if (typeof descriptor !== 'string') {
    throw new DataError(
      'structured (record) dtypes are not supported; save a plain numeric array (one array per field)',
      sourceName,
    );
  }
  const match = /^([<>|=]?)([a-z?])(\d+)$/i.exec(descriptor);
  const dtype = match === null ? undefined : npyTypeByCode.get(`${match[2]}${match[3]}`);
  if (match === null || dtype === undefined) {
    throw new DataError(
      `unsupported dtype '${descriptor}'; supported: float32, float64, int32, int64, uint8, int8, bool ` +
        `(convert with x.astype(np.float32) or similar)`,
      sourceName,
    );
  }
  const orderMark = match[1];
  const byteOrder: NpyByteOrder =
    orderMark === '>' ? 'big' : orderMark === '<' ? 'little' : endianness() === 'BE' ? 'big' : 'little';
  return { dtype, byteOrder };
}

function interpretHeader(header: PythonLiteral, sourceName: string): NpyHeader {
  if (!(header instanceof Map)) throw new DataError('.npy header is not a dict', sourceName);
  for (const key of ['descr', 'fortran_order', 'shape']) {
    if (!header.has(key)) throw new DataError(`.npy header lacks the key '${key}'`, sourceName);
  }
  const fortranOrder = header.get('fortran_order');
  if (typeof fortranOrder !== 'boolean') throw new DataError(`.npy header: 'fortran_order' is not True or False`, sourceName);
  if (fortranOrder) {
    throw new DataError(
      'the array is stored in Fortran (column-major) order, which is not supported; ' +
        're-save it in C order: np.save(path, np.ascontiguousarray(x))',
      sourceName,
    );
  }
  const shapeLiteral = header.get('shape');
  if (shapeLiteral === null || typeof shapeLiteral !== 'object' || !('tuple' in shapeLiteral)) {
    throw new DataError(`.npy header: 'shape' is not a tuple`, sourceName);
  }
  const shape = shapeLiteral.tuple.map((size) => {
    if (typeof size !== 'number' || !Number.isInteger(size) || size < 0) {
      throw new DataError(`.npy header: shape entry ${JSON.stringify(size)} is not a non-negative integer`, sourceName);
    }
    return size;
  });
  return { ...parseDescriptor(header.get('descr')!, sourceName), shape };
}

// ---------------------------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------------------------

function countElements(shape: readonly number[], sourceName: string): number {
  let count = 1;
  for (const size of shape) {
    count *= size;
    if (!Number.isSafeInteger(count)) {
      throw new DataError(`shape (${shape.join(', ')}) describes more elements than can be loaded`, sourceName);
    }
  }
  return count;
}

function decodeElements(
  view: DataView,
  offset: number,
  count: number,
  dtype: NpyDataType,
  byteOrder: NpyByteOrder,
): NpyTypedArray {
  const littleEndian = byteOrder === 'little';
  const slice = () => view.buffer.slice(view.byteOffset + offset, view.byteOffset + offset + count);
  switch (dtype) {
    case 'uint8':
    case 'bool':
      return new Uint8Array(slice());
    case 'int8':
      return new Int8Array(slice());
    case 'int32': {
      const data = new Int32Array(count);
      for (let index = 0; index < count; index++) data[index] = view.getInt32(offset + 4 * index, littleEndian);
      return data;
    }
    case 'int64': {
      const data = new BigInt64Array(count);
      for (let index = 0; index < count; index++) data[index] = view.getBigInt64(offset + 8 * index, littleEndian);
      return data;
    }
    case 'float32': {
      const data = new Float32Array(count);
      for (let index = 0; index < count; index++) data[index] = view.getFloat32(offset + 4 * index, littleEndian);
      return data;
    }
    case 'float64': {
      const data = new Float64Array(count);
      for (let index = 0; index < count; index++) data[index] = view.getFloat64(offset + 8 * index, littleEndian);
      return data;
    }
  }
}

/** Parses the bytes of a `.npy` file. `sourceName` (usually the file path) only labels errors. */
export function parseNpy(bytes: Uint8Array, sourceName = '<npy bytes>'): NpyArray {
  if (bytes.length < 10 || magic.some((byte, index) => bytes[index] !== byte)) {
    throw new DataError('not a .npy file: missing the magic string "\\x93NUMPY"', sourceName);
  }
  const majorVersion = bytes[6]!;
  const minorVersion = bytes[7]!;
  if (![1, 2, 3].includes(majorVersion) || minorVersion !== 0) {
    throw new DataError(`unsupported .npy format version ${majorVersion}.${minorVersion} (supported: 1.0, 2.0, 3.0)`, sourceName);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lengthFieldSize = majorVersion === 1 ? 2 : 4;
  if (bytes.length < 8 + lengthFieldSize) throw new DataError('truncated .npy header', sourceName);
  const headerLength = majorVersion === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const headerStart = 8 + lengthFieldSize;
  const dataStart = headerStart + headerLength;
  if (dataStart > bytes.length) {
    throw new DataError(
      `truncated .npy header: it declares ${headerLength} bytes, the file has ${bytes.length - headerStart} after the length field`,
      sourceName,
    );
  }
  const headerText = new TextDecoder(majorVersion === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(headerStart, dataStart));
  const { dtype, byteOrder, shape } = interpretHeader(new PythonLiteralParser(headerText, sourceName).parseWhole(), sourceName);
  const count = countElements(shape, sourceName);
  const expectedDataLength = count * npyTypes[dtype].bytesPerElement;
  const actualDataLength = bytes.length - dataStart;
  if (actualDataLength !== expectedDataLength) {
    const problem = actualDataLength < expectedDataLength ? 'truncated' : 'has trailing bytes';
    throw new DataError(
      `.npy data ${problem}: a ${dtype} array of shape (${shape.join(', ')}) needs ${expectedDataLength} bytes, ` +
        `the file has ${actualDataLength}`,
      sourceName,
    );
  }
  return { dtype, shape, data: decodeElements(view, dataStart, count, dtype, byteOrder) } as NpyArray;
}

/** Reads a `.npy` file. Synchronous. */
export function readNpyFile(filePath: string): NpyArray {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(filePath);
  } catch (error) {
    throw new DataError(`cannot read .npy file: ${describeCause(error)}`, filePath, { cause: error });
  }
  return parseNpy(bytes, filePath);
}

// ---------------------------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------------------------

function typedArrayMatches(dtype: NpyDataType, data: NpyTypedArray): boolean {
  switch (dtype) {
    case 'float32':
      return data instanceof Float32Array;
    case 'float64':
      return data instanceof Float64Array;
    case 'int32':
      return data instanceof Int32Array;
    case 'int64':
      return data instanceof BigInt64Array;
    case 'uint8':
    case 'bool':
      return data instanceof Uint8Array;
    case 'int8':
      return data instanceof Int8Array;
  }
}

function formatHeader(dtype: NpyDataType, shape: readonly number[], byteOrder: NpyByteOrder): string {
  const info = npyTypes[dtype];
  const orderMark = info.bytesPerElement === 1 ? '|' : byteOrder === 'little' ? '<' : '>';
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  return `{'descr': '${orderMark}${info.kind}${info.bytesPerElement}', 'fortran_order': False, 'shape': ${shapeText}, }`;
}

/** Encodes an array as `.npy` bytes (version 1.0, or 2.0 for very long headers), little-endian unless asked. */
export function encodeNpy(array: NpyArray, options: { byteOrder?: NpyByteOrder } = {}): Uint8Array {
  const { dtype, shape, data } = array;
  const byteOrder = options.byteOrder ?? 'little';
  const info = npyTypes[dtype];
  if (info === undefined) throw new DataError(`cannot write .npy: unsupported dtype ${String(dtype)}`);
  if (!typedArrayMatches(dtype, data)) {
    throw new DataError(`cannot write .npy: dtype ${dtype} does not match the data's ${data.constructor.name}`);
  }
  for (const size of shape) {
    if (!Number.isInteger(size) || size < 0) throw new DataError(`cannot write .npy: bad dimension size ${size}`);
  }
  const count = countElements(shape, '<npy encoder>');
  if (count !== data.length) {
    throw new DataError(`cannot write .npy: shape (${shape.join(', ')}) holds ${count} elements, data has ${data.length}`);
  }
  const headerText = formatHeader(dtype, shape, byteOrder);
  // Pad with spaces so that magic + version + length field + header + "\n" is a multiple of 64 bytes.
  const paddedLength = (prefixLength: number) => Math.ceil((prefixLength + headerText.length + 1) / 64) * 64 - prefixLength;
  let majorVersion = 1;
  let headerLength = paddedLength(10);
  if (headerLength > 0xffff) {
    majorVersion = 2;
    headerLength = paddedLength(12);
  }
  const prefixLength = majorVersion === 1 ? 10 : 12;
  const dataStart = prefixLength + headerLength;
  const bytes = new Uint8Array(dataStart + count * info.bytesPerElement);
  const view = new DataView(bytes.buffer);
  bytes.set(magic, 0);
  bytes[6] = majorVersion;
  bytes[7] = 0;
  if (majorVersion === 1) view.setUint16(8, headerLength, true);
  else view.setUint32(8, headerLength, true);
  const paddedHeader = headerText.padEnd(headerLength - 1, ' ') + '\n';
  for (let index = 0; index < paddedHeader.length; index++) bytes[prefixLength + index] = paddedHeader.charCodeAt(index);

  const littleEndian = byteOrder === 'little';
  switch (dtype) {
    case 'uint8':
    case 'bool':
    case 'int8':
      bytes.set(new Uint8Array(data.buffer as ArrayBuffer, data.byteOffset, data.length), dataStart);
      break;
    case 'int32':
      (data as Int32Array).forEach((value, index) => view.setInt32(dataStart + 4 * index, value, littleEndian));
      break;
    case 'int64':
      (data as BigInt64Array).forEach((value, index) => view.setBigInt64(dataStart + 8 * index, value, littleEndian));
      break;
    case 'float32':
      (data as Float32Array).forEach((value, index) => view.setFloat32(dataStart + 4 * index, value, littleEndian));
      break;
    case 'float64':
      (data as Float64Array).forEach((value, index) => view.setFloat64(dataStart + 8 * index, value, littleEndian));
      break;
  }
  return bytes;
}

/** Writes a `.npy` file atomically (temporary file in the same folder, then rename). */
export function writeNpyFile(filePath: string, array: NpyArray, options: { byteOrder?: NpyByteOrder } = {}): void {
  let bytes: Uint8Array;
  try {
    bytes = encodeNpy(array, options);
  } catch (error) {
    if (error instanceof DataError) throw new DataError(error.message, filePath, { cause: error });
    throw error;
  }
  writeFileAtomic(filePath, bytes);
}

/** Writes float32 data (images, features, weights) of the given shape as a `.npy` file, atomically. */
export function writeFloat32Npy(filePath: string, shape: number[], data: Float32Array): void {
  writeNpyFile(filePath, { dtype: 'float32', shape, data });
}

/** Writes class labels as a 1-D int64 `.npy` file (NumPy's default integer type for labels), atomically. */
export function writeInt64LabelsNpy(filePath: string, labels: ArrayLike<number>): void {
  const data = new BigInt64Array(labels.length);
  for (let index = 0; index < labels.length; index++) {
    const label = labels[index]!;
    if (!Number.isSafeInteger(label)) throw new DataError(`label ${label} at index ${index} is not an integer`, filePath);
    data[index] = BigInt(label);
  }
  writeNpyFile(filePath, { dtype: 'int64', shape: [labels.length], data });
}

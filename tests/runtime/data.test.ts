/**
 * Tests of the data loaders (src/runtime/data): IDX and .npy round trips and error reports, files written by real
 * NumPy, PNG class folders, and the reproducibility guarantees training relies on (seeded shuffling, batches that
 * cover every sample once, seeded augmentation), plus Fashion-MNIST and its embedded subset.
 */

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DataError,
  augmentBatch,
  computeChannelStatistics,
  countBatches,
  createMulberry32,
  debianFashionMnistDirectory,
  embeddedFashionMnistSubsetDirectory,
  encodeIdx,
  encodeNpy,
  filterClasses,
  iterateBatches,
  loadDataset,
  loadFashionMnist,
  loadPngFolder,
  normalizeDataset,
  parseIdx,
  parseNpy,
  readIdxFile,
  readNpyFile,
  resizePlanar,
  shuffleDataset,
  shuffledIndices,
  splitTrainValidation,
  writeFloat32Npy,
  writeIdxFile,
  writeInt64LabelsNpy,
  writeNpyFile,
  type Dataset,
  type IdxArray,
  type IdxDataType,
  type NpyArray,
  type NpyDataType,
} from '../../src/runtime/data/index.js';

let temporaryRoot: string;
beforeAll(() => {
  temporaryRoot = mkdtempSync(join(tmpdir(), 'convspec-data-'));
});
afterAll(() => {
  rmSync(temporaryRoot, { recursive: true, force: true });
});

let folderCounter = 0;
function freshFolder(): string {
  const folder = join(temporaryRoot, `case-${folderCounter++}`);
  mkdirSync(folder, { recursive: true });
  return folder;
}

/** Expects `action` to throw a DataError whose message contains every fragment. */
function expectDataError(action: () => unknown, ...fragments: string[]): DataError {
  let caught: unknown;
  try {
    action();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(DataError);
  for (const fragment of fragments) expect((caught as DataError).message).toContain(fragment);
  return caught as DataError;
}

/** Element-wise equality that treats NaN as equal to NaN and tells 0 from −0 (bit-exact for our purposes). */
function sameElements(left: ArrayLike<number | bigint>, right: ArrayLike<number | bigint>): boolean {
  if (left.length !== right.length) return false;
  for (let index = 0; index < left.length; index++) if (!Object.is(left[index], right[index])) return false;
  return true;
}

const shapeArbitrary = (minimumDimensions: number) =>
  fc.array(fc.integer({ min: 0, max: 5 }), { minLength: minimumDimensions, maxLength: 4 });

const elementCount = (shape: number[]) => shape.reduce((product, size) => product * size, 1);

// ---------------------------------------------------------------------------------------------------------------
// IDX
// ---------------------------------------------------------------------------------------------------------------

function idxDataArbitrary(dtype: IdxDataType, count: number): fc.Arbitrary<IdxArray['data']> {
  const length = { minLength: count, maxLength: count };
  switch (dtype) {
    case 'uint8':
      return fc.uint8Array(length);
    case 'int8':
      return fc.int8Array(length);
    case 'int16':
      return fc.int16Array(length);
    case 'int32':
      return fc.int32Array(length);
    case 'float32':
      return fc.float32Array(length);
    case 'float64':
      return fc.float64Array(length);
  }
}

const idxArrayArbitrary: fc.Arbitrary<IdxArray> = fc
  .tuple(fc.constantFrom<IdxDataType>('uint8', 'int8', 'int16', 'int32', 'float32', 'float64'), shapeArbitrary(1))
  .chain(([dtype, shape]) =>
    idxDataArbitrary(dtype, elementCount(shape)).map((data) => ({ dtype, shape, data }) as IdxArray),
  );

describe('IDX files', () => {
  it('round-trips every element type and shape, plain and gzip', () => {
    fc.assert(
      fc.property(idxArrayArbitrary, fc.boolean(), (array, gzip) => {
        const parsed = parseIdx(encodeIdx(array, { gzip }), 'memory');
        expect(parsed.dtype).toBe(array.dtype);
        expect(parsed.shape).toEqual(array.shape);
        expect(parsed.data.constructor).toBe(array.data.constructor);
        expect(sameElements(parsed.data, array.data)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('writes the big-endian header of the MNIST format', () => {
    const bytes = encodeIdx({ dtype: 'int32', shape: [2, 1], data: Int32Array.of(1, -2) });
    expect([...bytes]).toEqual([0, 0, 0x0c, 2, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xfe]);
  });

  it('reads and writes files, detecting gzip by its magic bytes rather than the name', () => {
    const folder = freshFolder();
    const array: IdxArray = { dtype: 'uint8', shape: [2, 2, 3], data: Uint8Array.from({ length: 12 }, (_, i) => i * 20) };
    writeIdxFile(join(folder, 'compressed-but-no-extension'), array, { gzip: true });
    writeIdxFile(join(folder, 'plain.gz'), array, { gzip: false });
    for (const name of ['compressed-but-no-extension', 'plain.gz']) {
      expect(readIdxFile(join(folder, name))).toEqual(array);
    }
    expect(readdirSync(folder).sort()).toEqual(['compressed-but-no-extension', 'plain.gz']); // no temp files left
  });

  describe('reports damaged files as DataError naming the file', () => {
    const good = encodeIdx({ dtype: 'uint8', shape: [3, 4, 4], data: new Uint8Array(48) });

    it.each([
      ['an empty file', new Uint8Array(0), ['shorter than the 4-byte header']],
      ['bad magic', Uint8Array.of(0x50, 0x4b, 3, 4, 0, 0, 0, 0), ['bad magic number 50 4b 03 04']],
      ['an unknown type code', Uint8Array.of(0, 0, 0x07, 1, 0, 0, 0, 0), ['unknown IDX element type code 0x07']],
      ['zero dimensions', Uint8Array.of(0, 0, 0x08, 0), ['0 dimensions']],
      ['a truncated header', good.subarray(0, 10), ['truncated IDX header', '3 dimensions need 16 header bytes']],
      ['truncated data', good.subarray(0, good.length - 5), ['truncated', 'needs 48 bytes', 'has 43']],
      ['trailing bytes', Uint8Array.from([...good, 1, 2]), ['trailing bytes']],
      ['a truncated gzip stream', gzipSync(good).subarray(0, 20), ['cannot be decompressed']],
      ['absurd dimensions', Uint8Array.of(0, 0, 0x08, 3, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255), ['more elements than can be loaded']],
    ])('%s', (_description, bytes, fragments) => {
      const path = join(freshFolder(), 'broken-idx3-ubyte');
      writeFileSync(path, bytes);
      const error = expectDataError(() => readIdxFile(path), path, ...(fragments as string[]));
      expect(error.filePath).toBe(path);
    });

    it('a missing file', () => {
      expectDataError(() => readIdxFile('/nonexistent/train-images-idx3-ubyte.gz'), '/nonexistent/train-images', 'cannot read');
    });
  });

  it('never throws anything but DataError on garbage, gzip-wrapped or not', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.boolean(), fc.boolean(), (bytes, zeroMagic, gzip) => {
        const candidate = zeroMagic && bytes.length >= 2 ? Uint8Array.from([0, 0, ...bytes.subarray(2)]) : bytes;
        try {
          parseIdx(gzip ? gzipSync(candidate) : candidate, 'fuzz');
        } catch (error) {
          expect(error).toBeInstanceOf(DataError);
        }
      }),
      { numRuns: 500 },
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------
// .npy
// ---------------------------------------------------------------------------------------------------------------

function npyDataArbitrary(dtype: NpyDataType, count: number): fc.Arbitrary<NpyArray['data']> {
  const length = { minLength: count, maxLength: count };
  switch (dtype) {
    case 'float32':
      return fc.float32Array(length);
    case 'float64':
      return fc.float64Array(length);
    case 'int32':
      return fc.int32Array(length);
    case 'int64':
      return fc.bigInt64Array(length);
    case 'uint8':
      return fc.uint8Array(length);
    case 'int8':
      return fc.int8Array(length);
    case 'bool':
      return fc.array(fc.boolean(), length).map((values) => Uint8Array.from(values, Number));
  }
}

const npyDataTypes: NpyDataType[] = ['float32', 'float64', 'int32', 'int64', 'uint8', 'int8', 'bool'];

const npyArrayArbitrary: fc.Arbitrary<NpyArray> = fc
  .tuple(fc.constantFrom(...npyDataTypes), shapeArbitrary(0))
  .chain(([dtype, shape]) =>
    npyDataArbitrary(dtype, elementCount(shape)).map((data) => ({ dtype, shape, data }) as NpyArray),
  );

const python = '/usr/bin/python3';
const numpyAvailable = existsSync(python) && spawnSync(python, ['-c', 'import numpy'], { stdio: 'ignore' }).status === 0;

function runPython(code: string): string {
  const result = spawnSync(python, ['-c', code], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`python failed: ${result.stderr}`);
  return result.stdout;
}

describe('.npy files', () => {
  it('round-trips random shapes and dtypes in both byte orders, with 64-byte aligned data', () => {
    fc.assert(
      fc.property(npyArrayArbitrary, fc.constantFrom<'little' | 'big'>('little', 'big'), (array, byteOrder) => {
        const bytes = encodeNpy(array, { byteOrder });
        const headerLength = bytes[8]! | (bytes[9]! << 8);
        expect((10 + headerLength) % 64).toBe(0);
        const parsed = parseNpy(bytes, 'memory');
        expect(parsed.dtype).toBe(array.dtype);
        expect(parsed.shape).toEqual(array.shape);
        expect(sameElements(parsed.data, array.data)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('writes files atomically with the helpers for float32 data and int64 labels', () => {
    const folder = freshFolder();
    writeFloat32Npy(join(folder, 'x.npy'), [2, 3], Float32Array.of(0, 0.5, 1, -1, 2, 3.25));
    writeInt64LabelsNpy(join(folder, 'y.npy'), [3, 1]);
    writeInt64LabelsNpy(join(folder, 'y.npy'), [4, 2]); // overwrite
    expect(readdirSync(folder).sort()).toEqual(['x.npy', 'y.npy']);
    expect(readNpyFile(join(folder, 'x.npy'))).toEqual({ dtype: 'float32', shape: [2, 3], data: Float32Array.of(0, 0.5, 1, -1, 2, 3.25) });
    expect(readNpyFile(join(folder, 'y.npy'))).toEqual({ dtype: 'int64', shape: [2], data: BigInt64Array.of(4n, 2n) });
  });

  describe.skipIf(!numpyAvailable)('interoperates with NumPy (/usr/bin/python3)', () => {
    it('reads files that numpy.save wrote: every dtype, both byte orders, versions 1.0 and 2.0', () => {
      const folder = freshFolder();
      runPython(`
import numpy as np
base = np.arange(24).reshape(2, 3, 4)
for name, descr in [('float32', 'f4'), ('float64', 'f8'), ('int32', 'i4'), ('int64', 'i8')]:
    for mark, order in [('<', 'little'), ('>', 'big')]:
        values = ((base - 7) / (2 if name.startswith('float') else 1)).astype(mark + descr)
        assert values.dtype.str == mark + descr
        np.save('${folder}/%s-%s.npy' % (name, order), values)
np.save('${folder}/uint8-little.npy', base.astype(np.uint8) * 10)
np.save('${folder}/int8-little.npy', (base - 12).astype(np.int8))
np.save('${folder}/bool-little.npy', base % 3 == 0)
np.save('${folder}/scalar.npy', np.float32(2.5))
with open('${folder}/version2.npy', 'wb') as f:
    np.lib.format.write_array(f, np.arange(5, dtype=np.float32), version=(2, 0))
np.save('${folder}/fortran.npy', np.asfortranarray(base.astype(np.float32)))
np.save('${folder}/structured.npy', np.zeros(2, dtype=[('a', '<f4'), ('b', '<i4')]))
np.save('${folder}/complex.npy', np.zeros(2, dtype=np.complex64))
`);
      const expected = Array.from({ length: 24 }, (_, index) => index);
      for (const dtype of ['float32', 'float64', 'int32', 'int64'] as const) {
        for (const order of ['little', 'big']) {
          const array = readNpyFile(join(folder, `${dtype}-${order}.npy`));
          expect(array.dtype).toBe(dtype);
          expect(array.shape).toEqual([2, 3, 4]);
          const divisor = dtype.startsWith('float') ? 2 : 1;
          expect(Array.from(array.data as ArrayLike<number | bigint>, Number)).toEqual(
            expected.map((value) => (value - 7) / divisor),
          );
        }
      }
      expect(Array.from(readNpyFile(join(folder, 'uint8-little.npy')).data as Uint8Array)).toEqual(expected.map((v) => v * 10));
      expect(Array.from(readNpyFile(join(folder, 'int8-little.npy')).data as Int8Array)).toEqual(expected.map((v) => v - 12));
      const booleans = readNpyFile(join(folder, 'bool-little.npy'));
      expect(booleans.dtype).toBe('bool');
      expect(Array.from(booleans.data as Uint8Array)).toEqual(expected.map((v) => (v % 3 === 0 ? 1 : 0)));
      expect(readNpyFile(join(folder, 'scalar.npy'))).toEqual({ dtype: 'float32', shape: [], data: Float32Array.of(2.5) });
      expect(readNpyFile(join(folder, 'version2.npy'))).toEqual({ dtype: 'float32', shape: [5], data: Float32Array.of(0, 1, 2, 3, 4) });
      expectDataError(() => readNpyFile(join(folder, 'fortran.npy')), 'fortran.npy', 'Fortran', 'np.ascontiguousarray');
      expectDataError(() => readNpyFile(join(folder, 'structured.npy')), 'structured.npy', 'structured');
      expectDataError(() => readNpyFile(join(folder, 'complex.npy')), 'complex.npy', "unsupported dtype '<c8'");
    });

    it('writes files that numpy.load reads back identically', () => {
      const folder = freshFolder();
      const arrays: Record<string, NpyArray> = {
        float32: { dtype: 'float32', shape: [2, 3], data: Float32Array.of(0.1, -2, 3.5, 1e-30, 65504, -0) },
        float64: { dtype: 'float64', shape: [3], data: Float64Array.of(Math.PI, -1e300, 0.5) },
        int32: { dtype: 'int32', shape: [1, 2, 1], data: Int32Array.of(-2147483648, 2147483647) },
        int64: { dtype: 'int64', shape: [2], data: BigInt64Array.of(-(2n ** 63n), 2n ** 62n + 1n) },
        uint8: { dtype: 'uint8', shape: [4], data: Uint8Array.of(0, 1, 128, 255) },
        int8: { dtype: 'int8', shape: [2], data: Int8Array.of(-128, 127) },
        bool: { dtype: 'bool', shape: [3], data: Uint8Array.of(1, 0, 1) },
        scalar: { dtype: 'float64', shape: [], data: Float64Array.of(7) },
      };
      for (const [name, array] of Object.entries(arrays)) {
        writeNpyFile(join(folder, `${name}-little.npy`), array);
        writeNpyFile(join(folder, `${name}-big.npy`), array, { byteOrder: 'big' });
      }
      const report = runPython(`
import numpy as np, json, glob, os
result = {}
for path in sorted(glob.glob('${folder}/*.npy')):
    a = np.load(path)
    result[os.path.basename(path)] = [str(a.dtype.newbyteorder('=')), list(a.shape), [repr(v) for v in a.ravel().tolist()]]
print(json.dumps(result))
`);
      const loaded = JSON.parse(report) as Record<string, [string, number[], string[]]>;
      const numpyNames: Record<NpyDataType, string> = {
        float32: 'float32', float64: 'float64', int32: 'int32', int64: 'int64', uint8: 'uint8', int8: 'int8', bool: 'bool',
      };
      for (const [name, array] of Object.entries(arrays)) {
        for (const order of ['little', 'big']) {
          const [dtype, shape, values] = loaded[`${name}-${order}.npy`]!;
          expect(dtype).toBe(numpyNames[array.dtype]);
          expect(shape).toEqual(array.shape);
          const ours = Array.from(array.data as ArrayLike<number | bigint>, (value) =>
            array.dtype === 'bool' ? (value ? 'True' : 'False') : String(value),
          );
          const theirs = values.map((value) => (value === '-0.0' ? '0' : value.replace(/\.0$/, '')));
          if (array.dtype === 'float32') {
            expect(theirs.map(Number)).toEqual(Array.from(array.data as Float32Array, (v) => Object.is(v, -0) ? 0 : v));
          } else {
            expect(theirs).toEqual(ours.map((value) => (value === '-0' ? '0' : value)));
          }
        }
      }
    });
  });

  describe('reports damaged files as DataError naming the file', () => {
    const good = encodeNpy({ dtype: 'float32', shape: [2, 2], data: new Float32Array(4) });
    const withHeader = (header: string) => {
      const padded = header.padEnd(117, ' ') + '\n';
      const bytes = new Uint8Array(128);
      bytes.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, padded.length, 0]);
      for (let index = 0; index < padded.length; index++) bytes[10 + index] = padded.charCodeAt(index);
      return bytes;
    };
    it.each([
      ['bad magic', Uint8Array.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x58, ...good.subarray(6)]), ['missing the magic string']],
      ['an unknown version', Uint8Array.from([...good.subarray(0, 6), 9, 0, ...good.subarray(8)]), ['version 9.0']],
      ['a truncated header', good.subarray(0, 40), ['truncated .npy header']],
      ['truncated data', good.subarray(0, good.length - 1), ['truncated', 'needs 16 bytes', 'has 15']],
      ['trailing bytes', Uint8Array.from([...good, 0]), ['trailing bytes']],
      ['a Fortran-order array', withHeader("{'descr': '<f4', 'fortran_order': True, 'shape': (0,), }"), ['Fortran']],
      ['a header that is not a dict', withHeader('[1, 2]'), ['not a dict']],
      ['a header without shape', withHeader("{'descr': '<f4', 'fortran_order': False}"), ["lacks the key 'shape'"]],
      ['a garbled header', withHeader("{'descr': '<f4', 'fortran_order': Fals"), ['cannot parse .npy header']],
      ['a negative dimension', withHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}"), ['not a non-negative integer']],
    ])('%s', (_description, bytes, fragments) => {
      const path = join(freshFolder(), 'broken.npy');
      writeFileSync(path, bytes);
      expectDataError(() => readNpyFile(path), path, ...(fragments as string[]));
    });
  });

  it('never throws anything but DataError on garbage after a valid magic string', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.string({ maxLength: 80 }), (tail, header) => {
        const headerBytes = Buffer.from(header, 'latin1');
        const bytes = Uint8Array.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, headerBytes.length & 0xff, 0, ...headerBytes, ...tail]);
        try {
          parseNpy(bytes, 'fuzz');
        } catch (error) {
          expect(error).toBeInstanceOf(DataError);
        }
      }),
      { numRuns: 500 },
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------
// PNG folders
// ---------------------------------------------------------------------------------------------------------------

/** Writes a PNG from RGBA bytes; `colorType` 0 stores grey, 2 RGB. */
function writePng(path: string, width: number, height: number, rgba: number[], colorType: 0 | 2 = 2): void {
  const png = new PNG({ width, height });
  png.data = Buffer.from(rgba);
  writeFileSync(path, PNG.sync.write(png, { colorType, inputColorType: 6, inputHasAlpha: true }));
}

function greyPixels(values: number[]): number[] {
  return values.flatMap((value) => [value, value, value, 255]);
}

describe('PNG class folders', () => {
  function makeFolder(): string {
    const root = freshFolder();
    // Created out of order: labels must follow sorted names, not creation order.
    for (const name of ['zebra', 'ant']) mkdirSync(join(root, name));
    writePng(join(root, 'zebra', 'b.png'), 2, 2, greyPixels([0, 51, 102, 255]), 0);
    writePng(join(root, 'zebra', 'a.png'), 2, 2, greyPixels([255, 255, 0, 0]), 0);
    writePng(join(root, 'ant', 'only.PNG'), 2, 2, greyPixels([10, 20, 30, 40]), 0);
    writeFileSync(join(root, 'ant', 'notes.txt'), 'not an image');
    writeFileSync(join(root, '.hidden'), '');
    return root;
  }

  it('labels classes by sorted folder name and reads grey images as one channel in [0, 1]', () => {
    const dataset = loadPngFolder(makeFolder());
    expect(dataset.classNames).toEqual(['ant', 'zebra']);
    expect(dataset.shape).toEqual([1, 2, 2]);
    expect(dataset.count).toBe(3);
    expect(Array.from(dataset.labels)).toEqual([0, 1, 1]);
    expect(Array.from(dataset.images.subarray(4, 12))).toEqual(
      [255, 255, 0, 0, 0, 51, 102, 255].map((value) => Math.fround(value / 255)),
    );
  });

  it('reads RGB images as three NCHW planes, or as BT.601 luma when one channel is requested', () => {
    const root = freshFolder();
    mkdirSync(join(root, 'colour'));
    // RGBA with a half-transparent pixel: alpha is ignored, as PIL's convert('RGB') does.
    const png = new PNG({ width: 2, height: 1 });
    png.data = Buffer.from([255, 0, 0, 255, 0, 0, 255, 128]);
    writeFileSync(join(root, 'colour', 'x.png'), PNG.sync.write(png));
    const rgb = loadPngFolder(root);
    expect(rgb.shape).toEqual([3, 1, 2]);
    expect(Array.from(rgb.images)).toEqual([1, 0, 0, 0, 0, 1]);
    const grey = loadPngFolder(root, { channels: 1 });
    expect(grey.images[0]).toBeCloseTo(0.299, 6);
    expect(grey.images[1]).toBeCloseTo(0.114, 6);
    const greyAsRgb = loadPngFolder(makeFolder(), { channels: 3 });
    expect(greyAsRgb.shape).toEqual([3, 2, 2]);
    expect(Array.from(greyAsRgb.images.subarray(0, 12))).toEqual(
      [10, 20, 30, 40, 10, 20, 30, 40, 10, 20, 30, 40].map((value) => Math.fround(value / 255)),
    );
  });

  it('resizes with nearest-neighbour or bilinear interpolation', () => {
    const root = makeFolder();
    const nearest = loadPngFolder(root, { height: 4, width: 4, resize: 'nearest' });
    expect(nearest.shape).toEqual([1, 4, 4]);
    const scale = (values: number[]) => values.map((value) => Math.fround(value / 255));
    expect(Array.from(nearest.images.subarray(0, 16))).toEqual(
      scale([10, 10, 20, 20, 10, 10, 20, 20, 30, 30, 40, 40, 30, 30, 40, 40]),
    );
    const bilinear = loadPngFolder(root, { height: 1, width: 1, resize: 'bilinear' });
    expect(bilinear.images[0]).toBeCloseTo(25 / 255, 6); // the centre of a 2×2 image: the mean of its pixels
    // Same size: both methods are the identity.
    const source = Float32Array.from({ length: 12 }, (_, index) => index);
    expect(resizePlanar(source, 1, 3, 4, 3, 4, 'bilinear')).toEqual(source);
    expect(resizePlanar(source, 1, 3, 4, 3, 4, 'nearest')).toEqual(source);
    // Bilinear upsampling of a ramp stays within the ramp and is monotone.
    const ramp = resizePlanar(Float32Array.of(0, 1), 1, 1, 2, 1, 4, 'bilinear');
    expect(Array.from(ramp)).toEqual([0, 0.25, 0.75, 1]);
  });

  it('is what loadDataset returns for such a folder', () => {
    const root = makeFolder();
    expect(loadDataset(root)).toEqual(loadPngFolder(root));
  });

  it('reports corrupt images, empty classes and missing class folders as DataError', () => {
    const root = makeFolder();
    writeFileSync(join(root, 'ant', 'broken.png'), Buffer.from([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]));
    expectDataError(() => loadPngFolder(root), join(root, 'ant', 'broken.png'), 'cannot decode PNG');
    const empty = freshFolder();
    mkdirSync(join(empty, 'cats'));
    expectDataError(() => loadPngFolder(empty), join(empty, 'cats'), 'holds no .png files');
    expectDataError(() => loadPngFolder(freshFolder()), 'no class folders');
    expectDataError(() => loadPngFolder(makeFolder(), { height: 0 }), 'requested height 0');
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Dataset operations
// ---------------------------------------------------------------------------------------------------------------

/** A dataset whose sample i has all values equal to i, and label i mod classes. */
function syntheticDataset(count: number, shape: [number, number, number] = [1, 2, 3], classes = 4): Dataset {
  const size = shape[0] * shape[1] * shape[2];
  const images = new Float32Array(count * size);
  for (let index = 0; index < count; index++) images.fill(index, index * size, (index + 1) * size);
  return { images, labels: Int32Array.from({ length: count }, (_, index) => index % classes), shape, count };
}

describe('seeded shuffling', () => {
  it('gives the same permutation for the same seed and another for another seed', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 300 }), fc.integer(), (count, seed) => {
        const first = shuffledIndices(count, seed);
        expect(shuffledIndices(count, seed)).toEqual(first);
        expect(Array.from(first).sort((a, b) => a - b)).toEqual(Array.from({ length: count }, (_, index) => index));
      }),
    );
    expect(shuffledIndices(100, 1)).not.toEqual(shuffledIndices(100, 2));
  });

  it('produces a known sequence (guards against accidental changes to the generator)', () => {
    const random = createMulberry32(42);
    const first = [random(), random(), random()];
    expect(first.every((value) => value >= 0 && value < 1)).toBe(true);
    // Reference values of mulberry32 for seed 42.
    expect(first.map((value) => Math.round(value * 4294967296))).toEqual([2581720956, 1925393290, 3661312704]);
  });

  it('keeps images and labels together', () => {
    const shuffled = shuffleDataset(syntheticDataset(50), 7);
    for (let index = 0; index < 50; index++) expect(shuffled.labels[index]).toBe(shuffled.images[index * 6]! % 4);
  });
});

describe('batching', () => {
  it('visits every sample exactly once per epoch, in batches of the requested size', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 120 }),
        fc.integer({ min: 1, max: 40 }),
        fc.boolean(),
        fc.integer(),
        fc.nat(5),
        (count, batchSize, shuffle, seed, epoch) => {
          const dataset = syntheticDataset(count);
          const seen: number[] = [];
          const batches = [...iterateBatches(dataset, { batchSize, shuffle, seed, epoch })];
          expect(batches.length).toBe(countBatches(dataset, { batchSize }));
          batches.forEach((batch, batchIndex) => {
            expect(batch.size).toBe(batchIndex < batches.length - 1 ? batchSize : count - batchSize * (batches.length - 1));
            expect(batch.x.length).toBe(batch.size * 6);
            for (let position = 0; position < batch.size; position++) {
              const sample = batch.x[position * 6]!;
              expect(batch.indices[position]).toBe(sample);
              expect(batch.y[position]).toBe(sample % 4);
              seen.push(sample);
            }
          });
          expect(seen.sort((a, b) => a - b)).toEqual(Array.from({ length: count }, (_, index) => index));
        },
      ),
    );
  });

  it('drops a short last batch when asked', () => {
    const sizes = [...iterateBatches(syntheticDataset(10), { batchSize: 4, dropLast: true })].map((batch) => batch.size);
    expect(sizes).toEqual([4, 4]);
  });

  it('repeats an epoch exactly and orders another epoch differently', () => {
    const dataset = syntheticDataset(64);
    const order = (epoch: number) =>
      [...iterateBatches(dataset, { batchSize: 16, shuffle: true, seed: 3, epoch })].flatMap((batch) => [...batch.indices]);
    expect(order(0)).toEqual(order(0));
    expect(order(1)).not.toEqual(order(0));
  });

  it('rejects a batch size that is not a positive integer', () => {
    expectDataError(() => [...iterateBatches(syntheticDataset(3), { batchSize: 0 })], 'batch size 0');
  });
});

describe('augmentation', () => {
  /** Sample values encode their position: value = 100·sample + 10·row + column (plus 1000 for channel 1). */
  function positionalDataset(count: number): Dataset {
    const shape: [number, number, number] = [2, 3, 4];
    const images = new Float32Array(count * 24);
    for (let sample = 0; sample < count; sample++)
      for (let channel = 0; channel < 2; channel++)
        for (let row = 0; row < 3; row++)
          for (let column = 0; column < 4; column++)
            images[sample * 24 + channel * 12 + row * 4 + column] = 1000 * channel + 100 * sample + 10 * row + column;
    return { images, labels: new Int32Array(count), shape, count };
  }

  it('is deterministic under a seed and differs between seeds', () => {
    const dataset = positionalDataset(32);
    const run = (seed: number) =>
      [...iterateBatches(dataset, { batchSize: 8, shuffle: true, seed, augmentation: { horizontalFlip: true, randomCrop: { padding: 1 } } })].map(
        (batch) => Array.from(batch.x),
      );
    expect(run(5)).toEqual(run(5));
    expect(run(5)).not.toEqual(run(6));
  });

  it('mirrors columns when flipping with probability 1', () => {
    const dataset = positionalDataset(2);
    const x = augmentBatch(dataset.images.slice(), 2, dataset.shape, { horizontalFlip: 1 }, createMulberry32(0));
    for (let sample = 0; sample < 2; sample++)
      for (let channel = 0; channel < 2; channel++)
        for (let row = 0; row < 3; row++)
          for (let column = 0; column < 4; column++)
            expect(x[sample * 24 + channel * 12 + row * 4 + column]).toBe(1000 * channel + 100 * sample + 10 * row + (3 - column));
  });

  it('crops with padding: a shifted copy of the image, filled outside, same shift in every channel', () => {
    const dataset = positionalDataset(20);
    const x = augmentBatch(dataset.images.slice(), 20, dataset.shape, { randomCrop: { padding: 2, fillValue: -1 } }, createMulberry32(9));
    const shifts = new Set<string>();
    for (let sample = 0; sample < 20; sample++) {
      // Find the shift from any pixel that is inside, then check every pixel of both channels against it.
      let shift: [number, number] | undefined;
      for (let index = 0; index < 12 && !shift; index++) {
        const value = x[sample * 24 + index]!;
        if (value >= 0) {
          const local = value - 100 * sample;
          shift = [Math.floor(local / 10) - Math.floor(index / 4), (local % 10) - (index % 4)];
        }
      }
      if (!shift) shift = [99, 99]; // shifted entirely outside: every value is the fill value
      shifts.add(shift.join(','));
      for (let channel = 0; channel < 2; channel++)
        for (let row = 0; row < 3; row++)
          for (let column = 0; column < 4; column++) {
            const sourceRow = row + shift[0];
            const sourceColumn = column + shift[1];
            const inside = sourceRow >= 0 && sourceRow < 3 && sourceColumn >= 0 && sourceColumn < 4;
            expect(x[sample * 24 + channel * 12 + row * 4 + column]).toBe(
              inside ? 1000 * channel + 100 * sample + 10 * sourceRow + sourceColumn : -1,
            );
          }
    }
    expect(shifts.size).toBeGreaterThan(3);
    for (const shift of shifts) if (shift !== '99,99') for (const part of shift.split(',')) expect(Math.abs(Number(part))).toBeLessThanOrEqual(2);
  });

  it('leaves the dataset itself untouched', () => {
    const dataset = positionalDataset(4);
    const before = dataset.images.slice();
    [...iterateBatches(dataset, { batchSize: 4, augmentation: { horizontalFlip: 1 } })];
    expect(dataset.images).toEqual(before);
  });
});

describe('class filtering, splitting and normalisation', () => {
  it('keeps chosen classes and optionally renumbers them 0..k−1', () => {
    const dataset = { ...syntheticDataset(20, [1, 1, 1], 10), classNames: 'abcdefghij'.split('') };
    const kept = filterClasses(dataset, [7, 2]);
    expect(Array.from(kept.labels)).toEqual([2, 7, 2, 7]);
    expect(kept.classNames).toEqual(dataset.classNames);
    const relabelled = filterClasses(dataset, [7, 2], { relabel: true });
    expect(Array.from(relabelled.labels)).toEqual([1, 0, 1, 0]);
    expect(Array.from(relabelled.images)).toEqual([2, 7, 12, 17]);
    expect(relabelled.classNames).toEqual(['h', 'c']);
    expectDataError(() => filterClasses(dataset, [1, 1]), 'repeats a class');
  });

  it('splits reproducibly into disjoint stratified parts', () => {
    const dataset = syntheticDataset(200, [1, 1, 1], 4);
    const { train, validation } = splitTrainValidation(dataset, { validationFraction: 0.2, seed: 11 });
    expect(train.count + validation.count).toBe(200);
    const all = [...train.images, ...validation.images].sort((a, b) => a - b);
    expect(all).toEqual(Array.from({ length: 200 }, (_, index) => index));
    for (let label = 0; label < 4; label++) expect(validation.labels.filter((value) => value === label).length).toBe(10);
    expect(splitTrainValidation(dataset, { validationFraction: 0.2, seed: 11 }).validation.images).toEqual(validation.images);
    expect(splitTrainValidation(dataset, { validationFraction: 0.2, seed: 12 }).validation.images).not.toEqual(validation.images);
    expectDataError(() => splitTrainValidation(dataset, { validationFraction: 1.5, seed: 0 }), 'not in [0, 1]');
  });

  it('normalises each channel to zero mean and unit deviation with its own statistics', () => {
    const dataset = syntheticDataset(10, [2, 2, 2]);
    dataset.images.forEach((value, index) => (dataset.images[index] = Math.floor(index / 4) % 2 === 0 ? value : 3 * value + 1));
    const statistics = computeChannelStatistics(dataset);
    expect(statistics.mean[0]).toBeCloseTo(4.5, 5);
    expect(statistics.mean[1]).toBeCloseTo(14.5, 5);
    const after = computeChannelStatistics(normalizeDataset(dataset, statistics));
    for (const mean of after.mean) expect(mean).toBeCloseTo(0, 5);
    for (const std of after.std) expect(std).toBeCloseTo(1, 5);
    expectDataError(() => normalizeDataset(dataset, { mean: [0], std: 1 }), 'mean has 1 values for 2 channels');
    expectDataError(() => normalizeDataset(dataset, { mean: 0, std: 0 }), 'must all be positive');
  });
});

describe('loadDataset', () => {
  it('reads an x.npy + y.npy folder, uint8 NHWC images scaled to [0, 1] and reordered to NCHW', () => {
    const folder = freshFolder();
    // 2 samples of 1×2 pixels × 3 channels, NHWC: value = 10·sample + 3·pixel + channel.
    const values = Uint8Array.from({ length: 12 }, (_, index) => 10 * Math.floor(index / 6) + (index % 6));
    writeNpyFile(join(folder, 'x.npy'), { dtype: 'uint8', shape: [2, 1, 2, 3], data: values });
    writeNpyFile(join(folder, 'y.npy'), { dtype: 'int64', shape: [2, 1], data: BigInt64Array.of(1n, 0n) });
    writeFileSync(join(folder, 'classes.txt'), 'cat\ndog\n');
    const dataset = loadDataset(folder, { layout: 'NHWC' });
    expect(dataset.shape).toEqual([3, 1, 2]);
    expect(dataset.classNames).toEqual(['cat', 'dog']);
    expect(Array.from(dataset.labels)).toEqual([1, 0]);
    expect(Array.from(dataset.images, (value) => Math.round(value * 255))).toEqual([0, 3, 1, 4, 2, 5, 10, 13, 11, 14, 12, 15]);
  });

  it('prefers x_<split>.npy pairs and reads float32 images as they are', () => {
    const folder = freshFolder();
    writeFloat32Npy(join(folder, 'x_test.npy'), [1, 2, 2], Float32Array.of(-1, 0, 0.5, 2));
    writeInt64LabelsNpy(join(folder, 'y_test.npy'), [3]);
    writeFloat32Npy(join(folder, 'x_train.npy'), [1, 2, 2], new Float32Array(4));
    writeInt64LabelsNpy(join(folder, 'y_train.npy'), [0]);
    const test = loadDataset(folder, { split: 'test' });
    expect(test.shape).toEqual([1, 2, 2]);
    expect(Array.from(test.images)).toEqual([-1, 0, 0.5, 2]);
    expect(Array.from(test.labels)).toEqual([3]);
  });

  it('reads a folder of IDX files by split', () => {
    const folder = freshFolder();
    writeIdxFile(join(folder, 't10k-images-idx3-ubyte.gz'), { dtype: 'uint8', shape: [2, 1, 1], data: Uint8Array.of(0, 255) }, { gzip: true });
    writeIdxFile(join(folder, 't10k-labels-idx1-ubyte'), { dtype: 'uint8', shape: [2], data: Uint8Array.of(4, 2) });
    const dataset = loadDataset(folder, { split: 'test' });
    expect(Array.from(dataset.images)).toEqual([0, 1]);
    expect(Array.from(dataset.labels)).toEqual([4, 2]);
    expectDataError(() => loadDataset(folder, { split: 'train' }), "'train' split");
  });

  it('explains what it could not load', () => {
    const folder = freshFolder();
    writeIdxFile(join(folder, 'train-images-idx3-ubyte'), { dtype: 'uint8', shape: [2, 1, 1], data: Uint8Array.of(0, 255) });
    writeIdxFile(join(folder, 'train-labels-idx1-ubyte'), { dtype: 'uint8', shape: [3], data: Uint8Array.of(4, 2, 1) });
    expectDataError(() => loadDataset(folder), '3 labels for the 2 images');
    expectDataError(() => loadDataset('/no/such/folder'), '/no/such/folder', 'no such file or folder');
    const npz = join(freshFolder(), 'data.npz');
    writeFileSync(npz, '');
    expectDataError(() => loadDataset(npz), '.npz archives are not supported');
    const lonelyNpy = freshFolder();
    writeFloat32Npy(join(lonelyNpy, 'x.npy'), [1, 1, 1], new Float32Array(1));
    expectDataError(() => loadDataset(lonelyNpy), 'not a pair x.npy + y.npy');
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Fashion-MNIST
// ---------------------------------------------------------------------------------------------------------------

function classCounts(dataset: Dataset): number[] {
  const counts = new Array<number>(10).fill(0);
  for (const label of dataset.labels) counts[label]!++;
  return counts;
}

describe('Fashion-MNIST', () => {
  const debianFilesPresent = existsSync(join(debianFashionMnistDirectory, 'train-images-idx3-ubyte.gz'));

  it.skipIf(!debianFilesPresent)('loads the full Debian copy: 60,000 / 10,000 balanced images in [0, 1]', () => {
    for (const [split, count] of [
      ['train', 60000],
      ['test', 10000],
    ] as const) {
      const dataset = loadFashionMnist(split);
      expect(dataset.count).toBe(count);
      expect(dataset.shape).toEqual([1, 28, 28]);
      expect(dataset.images.length).toBe(count * 784);
      expect(dataset.notes).toBeUndefined();
      expect(dataset.classNames).toHaveLength(10);
      expect(classCounts(dataset)).toEqual(new Array(10).fill(count / 10));
      let minimum = Infinity;
      let maximum = -Infinity;
      for (const value of dataset.images) {
        if (value < minimum) minimum = value;
        if (value > maximum) maximum = value;
      }
      expect([minimum, maximum]).toEqual([0, 1]);
    }
  });

  it('loads the embedded subset when forced: 300 / 100 images per class', () => {
    const train = loadFashionMnist('train', { forceSubset: true });
    const test = loadFashionMnist('test', { forceSubset: true });
    expect([train.count, test.count]).toEqual([3000, 1000]);
    expect(classCounts(train)).toEqual(new Array(10).fill(300));
    expect(classCounts(test)).toEqual(new Array(10).fill(100));
    expect(train.shape).toEqual([1, 28, 28]);
    expect(train.classNames?.[9]).toBe('Ankle boot');
    expect(loadDataset('fashion-mnist-subset', { split: 'test' }).labels).toEqual(test.labels);
    const asFolder = loadDataset(embeddedFashionMnistSubsetDirectory());
    // Byte comparison: a deep equality of 2.4 million floats is needlessly slow.
    expect(Buffer.from(asFolder.images.buffer).equals(Buffer.from(train.images.buffer))).toBe(true);
    expect(asFolder.classNames).toEqual(train.classNames);
  });

  it('falls back to the subset, with a note, when the full data set is missing', () => {
    const dataset = loadFashionMnist('test', { directory: '/nonexistent/fashion-mnist' });
    expect(dataset.count).toBe(1000);
    expect(dataset.notes?.[0]).toContain('/nonexistent/fashion-mnist');
    expect(dataset.notes?.[0]).toContain('embedded subset');
  });

  it('refuses damaged full files instead of silently falling back', () => {
    const folder = freshFolder();
    writeFileSync(join(folder, 'train-images-idx3-ubyte.gz'), readFileSync(join(embeddedFashionMnistSubsetDirectory(), 'train-images-idx3-ubyte.gz')).subarray(0, 1000));
    writeFileSync(join(folder, 'train-labels-idx1-ubyte.gz'), readFileSync(join(embeddedFashionMnistSubsetDirectory(), 'train-labels-idx1-ubyte.gz')));
    expectDataError(() => loadFashionMnist('train', { directory: folder }), 'train-images-idx3-ubyte.gz', 'cannot be decompressed');
  });

  it.skipIf(!debianFilesPresent)('subset images are the first 300 of each class of the full training set', () => {
    const full = loadFashionMnist('train');
    const subset = loadFashionMnist('train', { forceSubset: true });
    const taken = new Array<number>(10).fill(0);
    const expectedIndices: number[] = [];
    full.labels.forEach((label, index) => {
      if (taken[label]! < 300) {
        taken[label]!++;
        expectedIndices.push(index);
      }
    });
    const position = 1234;
    const index = expectedIndices[position]!;
    expect(subset.labels[position]).toBe(full.labels[index]);
    expect(subset.images.subarray(position * 784, (position + 1) * 784)).toEqual(full.images.subarray(index * 784, (index + 1) * 784));
  });
});

/**
 * Tests of the ONNX model builder and reader (`src/codegen/onnx-model.ts`), checked three ways: the official
 * checker (Python onnx, full_check) accepts what the builder writes, ONNX Runtime runs it and agrees with
 * references computed here by plain loops, and the bytes are deterministic and decode back to what was built.
 *
 * The checker needs an interpreter with the `onnx` package (Debian: python3-onnx). Without one, the checker
 * tests are skipped with a message saying so, except under CI (`$CI` set), where its absence fails the suite.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { checkManyOnnx, checkOnnxWithOfficialChecker, findPythonWithOnnx } from '../../src/codegen/onnx-checker.js';
import {
  attr,
  concatenateSegments,
  decodeModel,
  decodeTensorProto,
  encodeModel,
  encodeModelSegments,
  encodeTensorProto,
  int64ToNumber,
  ONNX_DATA_TYPE,
  OnnxBuildError,
  OnnxFormatError,
  OnnxGraphBuilder,
  tensorProtoToArray,
  type GraphProto,
  type OnnxBuildOptions,
  valueInfoShape,
} from '../../src/codegen/onnx-model.js';
import type { onnx as OnnxTypes } from 'onnx-proto';
import { createMulberry32 } from '../../src/random.js';
import { OrtEngine } from '../../src/runtime/ort/engine.js';

const python = await findPythonWithOnnx();
const NO_CHECKER = 'skipped: no Python interpreter with the onnx package (install python3-onnx)';
const checkerTitle = (title: string): string => (python === null ? `${title} (${NO_CHECKER})` : title);

const workDir = mkdtempSync(join(tmpdir(), 'convspec-onnx-model-'));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

function writeModel(file: string, bytes: Uint8Array): string {
  const path = join(workDir, file);
  writeFileSync(path, bytes);
  return path;
}

const BUILD: OnnxBuildOptions = {
  irVersion: 8,
  opset: 17,
  producerName: 'convspec-tests',
  producerVersion: '0.0.0',
  docString: 'a test model',
  metadataProps: { source: 'tests/codegen/onnx-model.test.ts', kind: 'test' },
  graphName: 'tiny',
};

/** Deterministic pseudo-random numbers in [-1, 1) (mulberry32). */
function randomFloats(count: number, seed: number): Float32Array {
  let state = seed >>> 0;
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  }
  return out;
}

// ------------------------------------------------------------------------------------------------------
// Reference convolution by direct loops (any spatial rank, groups, dilations, asymmetric pads)

interface ConvParams {
  readonly strides: readonly number[];
  readonly dilations: readonly number[];
  /** Begin pads of every spatial axis, then end pads (ONNX order). */
  readonly pads: readonly number[];
  readonly group: number;
}

function rowMajorStrides(dims: readonly number[]): number[] {
  const strides = new Array<number>(dims.length).fill(1);
  for (let i = dims.length - 2; i >= 0; i--) strides[i] = strides[i + 1]! * dims[i + 1]!;
  return strides;
}

/** Calls `visit` with every multi-index of `dims` in row-major order. */
function forEachIndex(dims: readonly number[], visit: (index: readonly number[]) => void): void {
  if (dims.some((d) => d === 0)) return;
  const index = new Array<number>(dims.length).fill(0);
  for (;;) {
    visit(index);
    let axis = dims.length - 1;
    while (axis >= 0 && ++index[axis]! === dims[axis]) index[axis--] = 0;
    if (axis < 0) return;
  }
}

function convOutputSize(size: number, kernel: number, stride: number, dilation: number, padBegin: number, padEnd: number): number {
  return Math.floor((size + padBegin + padEnd - ((kernel - 1) * dilation + 1)) / stride) + 1;
}

function referenceConv(
  x: Float32Array,
  xDims: readonly number[],
  w: Float32Array,
  wDims: readonly number[],
  bias: Float32Array | null,
  p: ConvParams,
): { data: Float64Array; dims: number[] } {
  const [batch, channels, ...spatial] = xDims as [number, number, ...number[]];
  const [filters, channelsPerGroup, ...kernel] = wDims as [number, number, ...number[]];
  const rank = spatial.length;
  const filtersPerGroup = filters / p.group;
  expect(channelsPerGroup * p.group).toBe(channels);
  const outSpatial = spatial.map((s, i) =>
    convOutputSize(s, kernel[i]!, p.strides[i]!, p.dilations[i]!, p.pads[i]!, p.pads[i + rank]!),
  );
  const outDims = [batch, filters, ...outSpatial];
  const out = new Float64Array(outDims.reduce((a, b) => a * b, 1));
  const xStrides = rowMajorStrides(xDims);
  const wStrides = rowMajorStrides(wDims);
  let o = 0;
  for (let n = 0; n < batch; n++) {
    for (let m = 0; m < filters; m++) {
      const g = Math.floor(m / filtersPerGroup);
      forEachIndex(outSpatial, (outIndex) => {
        let sum = bias === null ? 0 : bias[m]!;
        for (let c = 0; c < channelsPerGroup; c++) {
          const inChannel = g * channelsPerGroup + c;
          forEachIndex(kernel, (k) => {
            let xOffset = n * xStrides[0]! + inChannel * xStrides[1]!;
            for (let i = 0; i < rank; i++) {
              const pos = outIndex[i]! * p.strides[i]! - p.pads[i]! + k[i]! * p.dilations[i]!;
              if (pos < 0 || pos >= spatial[i]!) return;
              xOffset += pos * xStrides[i + 2]!;
            }
            let wOffset = m * wStrides[0]! + c * wStrides[1]!;
            for (let i = 0; i < rank; i++) wOffset += k[i]! * wStrides[i + 2]!;
            sum += x[xOffset]! * w[wOffset]!;
          });
        }
        out[o++] = sum;
      });
    }
  }
  return { data: out, dims: outDims };
}

function expectClose(actual: Float32Array, expected: Float64Array, tolerance = 1e-4): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const diff = Math.abs(actual[i]! - expected[i]!);
    if (diff > tolerance * (1 + Math.abs(expected[i]!))) {
      throw new Error(`element ${i}: got ${actual[i]}, expected ${expected[i]} (difference ${diff})`);
    }
  }
}

// ------------------------------------------------------------------------------------------------------
// The tiny Conv + Relu + GlobalAveragePool model

const TINY = {
  channels: 2,
  size: 6,
  filters: 4,
  kernel: 3,
  conv: { strides: [2, 2], dilations: [1, 1], pads: [1, 1, 1, 1], group: 1 } satisfies ConvParams,
  w: randomFloats(4 * 2 * 3 * 3, 1),
  b: randomFloats(4, 2),
};

function buildTiny(options: OnnxBuildOptions = BUILD): Uint8Array {
  const { channels, size, filters, kernel, conv } = TINY;
  const out = convOutputSize(size, kernel, 2, 1, 1, 1);
  return new OnnxGraphBuilder()
    .addInput('image', 'float32', ['N', channels, size, size], 'input images, NCHW')
    .addInitializer('conv1.weight', [filters, channels, kernel, kernel], TINY.w)
    .addInitializer('conv1.bias', [filters], TINY.b)
    .addNode(
      'Conv',
      ['image', 'conv1.weight', 'conv1.bias'],
      ['conv1'],
      'conv1',
      { strides: conv.strides, pads: conv.pads, kernel_shape: [kernel, kernel], dilations: conv.dilations, group: 1 },
      'spec line 3',
    )
    .addValueInfo('conv1', 'float32', ['N', filters, out, out])
    .addNode('Relu', ['conv1'], ['relu1'], 'relu1')
    .addNode('GlobalAveragePool', ['relu1'], ['pooled'], 'pool')
    .addOutput('pooled', 'float32', ['N', filters, 1, 1])
    .build(options);
}

/** Conv → ReLU → mean over space, by loops. */
function referenceTiny(x: Float32Array, batch: number): Float64Array {
  const { channels, size, filters, kernel, conv } = TINY;
  const y = referenceConv(x, [batch, channels, size, size], TINY.w, [filters, channels, kernel, kernel], TINY.b, conv);
  const [, , oh, ow] = y.dims as [number, number, number, number];
  const pooled = new Float64Array(batch * filters);
  for (let n = 0; n < batch; n++) {
    for (let m = 0; m < filters; m++) {
      let sum = 0;
      for (let i = 0; i < oh * ow; i++) sum += Math.max(0, y.data[(n * filters + m) * oh * ow + i]!);
      pooled[n * filters + m] = sum / (oh * ow);
    }
  }
  return pooled;
}

describe('OnnxGraphBuilder: a Conv + Relu + GlobalAveragePool model', () => {
  const bytes = buildTiny();
  const path = writeModel('tiny.onnx', bytes);

  it.skipIf(python === null && process.env['CI'] === undefined)('finds a Python with onnx (required under CI)', () => {
    expect(python, 'CI must install python3-onnx: the checker tests would otherwise be skipped').not.toBeNull();
  });

  it.skipIf(python === null)(checkerTitle('passes the official checker (full_check)'), async () => {
    const verdict = await checkOnnxWithOfficialChecker(path);
    expect(verdict).toEqual({ ok: true, message: expect.stringContaining('valid') });
    expect(readFileSync(path).equals(Buffer.from(bytes)), 'the checker must not rewrite the file').toBe(true);
  });

  it('runs in ONNX Runtime, with a dynamic batch, equal to the loop reference', async () => {
    const engine = await OrtEngine.create(path, { intraOpThreads: 1, logSeverity: 'error' });
    try {
      expect(engine.inputNames).toEqual(['image']);
      expect(engine.outputNames).toEqual(['pooled']);
      for (const batch of [1, 3]) {
        const x = randomFloats(batch * TINY.channels * TINY.size * TINY.size, 10 + batch);
        const { pooled } = await engine.run({ image: { data: x, dims: [batch, TINY.channels, TINY.size, TINY.size] } });
        expect(pooled!.dims).toEqual([batch, TINY.filters, 1, 1]);
        expectClose(pooled!.data, referenceTiny(x, batch));
      }
    } finally {
      await engine.dispose();
    }
  });

  it('is deterministic: same calls give the same bytes, whatever the metadata key order', () => {
    expect(Buffer.from(buildTiny()).equals(Buffer.from(bytes))).toBe(true);
    const reordered = buildTiny({ ...BUILD, metadataProps: { kind: 'test', source: 'tests/codegen/onnx-model.test.ts' } });
    expect(Buffer.from(reordered).equals(Buffer.from(bytes))).toBe(true);
    const changed = buildTiny({ ...BUILD, metadataProps: { kind: 'other', source: 'x' } });
    expect(Buffer.from(changed).equals(Buffer.from(bytes))).toBe(false);
  });

  it('decodes back to what was built, and re-encodes to the same bytes', () => {
    const model = decodeModel(bytes, path);
    expect(int64ToNumber(model.irVersion)).toBe(8);
    expect(model.opsetImport.map((o) => [o.domain, int64ToNumber(o.version)])).toEqual([['', 17]]);
    expect(model.producerName).toBe('convspec-tests');
    expect(model.docString).toBe('a test model');
    expect(model.metadataProps.map((p) => [p.key, p.value])).toEqual([
      ['kind', 'test'],
      ['source', 'tests/codegen/onnx-model.test.ts'],
    ]);
    const graph = model.graph;
    expect(graph.name).toBe('tiny');
    expect(graph.input.map((v) => v.name)).toEqual(['image']);
    expect(valueInfoShape(graph.input[0]!)).toEqual({ name: 'image', elemType: 'float32', dims: ['N', 2, 6, 6] });
    expect(graph.input[0]!.type!.tensorType!.elemType).toBe(ONNX_DATA_TYPE.float32);
    expect(graph.valueInfo.map((v) => valueInfoShape(v))).toEqual([{ name: 'conv1', elemType: 'float32', dims: ['N', 4, 3, 3] }]);
    expect(graph.output.map((v) => valueInfoShape(v))).toEqual([{ name: 'pooled', elemType: 'float32', dims: ['N', 4, 1, 1] }]);
    expect(graph.node.map((n) => [n.name, n.opType, n.input, n.output])).toEqual([
      ['conv1', 'Conv', ['image', 'conv1.weight', 'conv1.bias'], ['conv1']],
      ['relu1', 'Relu', ['conv1'], ['relu1']],
      ['pool', 'GlobalAveragePool', ['relu1'], ['pooled']],
    ]);
    const conv = graph.node[0]!;
    const convAttributes = conv.attribute!;
    expect(conv.docString).toBe('spec line 3');
    expect(convAttributes.map((a) => a.name)).toEqual(['dilations', 'group', 'kernel_shape', 'pads', 'strides']);
    expect(convAttributes.find((a) => a.name === 'pads')!.ints!.map((v) => int64ToNumber(v))).toEqual([1, 1, 1, 1]);
    expect(int64ToNumber(convAttributes.find((a) => a.name === 'group')!.i)).toBe(1);
    const weight = tensorProtoToArray(graph.initializer[0]!);
    expect(weight.name).toBe('conv1.weight');
    expect(weight.dims).toEqual([4, 2, 3, 3]);
    expect(weight.data).toEqual(TINY.w);
    // raw_data is little endian regardless of the host
    const raw = graph.initializer[1]!.rawData!;
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    expect(view.getFloat32(4, true)).toBe(TINY.b[1]);
    expect(Buffer.from(encodeModel(model)).equals(Buffer.from(bytes))).toBe(true);
  });
});

describe('OnnxGraphBuilder: attributes and tensors', () => {
  it('infers attribute types, takes explicit ones, and writes TENSOR attributes', async () => {
    const constant = new Float32Array([1, -2, 3]);
    const bytes = new OnnxGraphBuilder()
      .addInput('x', 'float32', [1, 3])
      .addNode('Constant', [], ['c'], 'const', { value: { dims: [1, 3], data: constant } })
      .addNode('Add', ['x', 'c'], ['s'], 'add')
      .addNode('LeakyRelu', ['s'], ['y'], 'leaky', { alpha: attr.float(2) })
      .addOutput('y', 'float32', [1, 3])
      .build(BUILD);
    const model = decodeModel(bytes);
    const [constNode, , leaky] = model.graph.node;
    expect(tensorProtoToArray(constNode!.attribute![0]!.t!).data).toEqual(constant);
    expect(leaky!.attribute![0]!.type).toBe(1); // FLOAT
    const engine = await OrtEngine.create(bytes, { logSeverity: 'error' });
    const { y } = await engine.run({ x: { data: new Float32Array([0, 1, -5]), dims: [1, 3] } });
    expect(Array.from(y!.data)).toEqual([1, -2, -4]); // [1, -1, -2] → leaky relu with alpha 2
    await engine.dispose();

    const kinds = decodeModel(
      new OnnxGraphBuilder()
        .addInput('x', 'float32', [1])
        .addNode('Custom', ['x'], ['y'], 'n', { i: 3, f: 0.5, is: [1, -2], fs: [0.5, 1], s: 'text', ss: ['a', 'b'], empty: [] }, undefined, 'test.domain')
        .addOutput('y', 'float32', [1])
        .build({ ...BUILD, opset: [{ domain: '', version: 17 }, { domain: 'test.domain', version: 1 }] }),
    ).graph.node[0]!.attribute!;
    const T = { FLOAT: 1, INT: 2, STRING: 3, FLOATS: 6, INTS: 7, STRINGS: 8 };
    expect(kinds.map((a) => [a.name, a.type])).toEqual([
      ['empty', T.INTS],
      ['f', T.FLOAT],
      ['fs', T.FLOATS],
      ['i', T.INT],
      ['is', T.INTS],
      ['s', T.STRING],
      ['ss', T.STRINGS],
    ]);
    expect(new TextDecoder().decode(kinds[5]!.s!)).toBe('text');
  });

  it('stores every supported initializer type and reads it back', () => {
    const cases = [
      { type: 'float32', data: new Float32Array([1.5, -2.25, 3e-8]) },
      { type: 'float64', data: new Float64Array([1.5, -2.25, 1e-300]) },
      { type: 'int8', data: new Int8Array([-128, 0, 127]) },
      { type: 'uint8', data: new Uint8Array([0, 128, 255]) },
      { type: 'bool', data: new Uint8Array([1, 0, 1]) },
      { type: 'int32', data: new Int32Array([-(2 ** 31), 0, 2 ** 31 - 1]) },
      { type: 'int64', data: new BigInt64Array([-(2n ** 63n), 0n, 2n ** 63n - 1n]) },
    ] as const;
    const builder = new OnnxGraphBuilder().addInput('x', 'float32', [1]);
    for (const c of cases) builder.addInitializer(`t_${c.type}`, [3], c.data, c.type);
    const bytes = builder.addNode('Identity', ['x'], ['y'], 'id').addOutput('y', 'float32', [1]).build(BUILD);
    const initializers = decodeModel(bytes).graph.initializer;
    cases.forEach((c, i) => {
      const back = tensorProtoToArray(initializers[i]!);
      expect(back.dataType).toBe(c.type);
      expect(back.data).toEqual(c.data);
    });
  });

  it('reads the typed repeated fields as well as raw_data', () => {
    expect(tensorProtoToArray({ dims: [2], dataType: 1, floatData: [1.5, -1] }).data).toEqual(new Float32Array([1.5, -1]));
    expect(tensorProtoToArray({ dims: [2], dataType: 11, doubleData: [1e-300, 2] }).data).toEqual(new Float64Array([1e-300, 2]));
    expect(tensorProtoToArray({ dims: [2], dataType: 3, int32Data: [-5, 7] }).data).toEqual(new Int8Array([-5, 7]));
    expect(tensorProtoToArray({ dims: [2], dataType: 2, int32Data: [200, 7] }).data).toEqual(new Uint8Array([200, 7]));
    expect(tensorProtoToArray({ dims: [3], dataType: 9, int32Data: [1, 0, 1] }).data).toEqual(new Uint8Array([1, 0, 1]));
    expect(tensorProtoToArray({ dims: [2], dataType: 6, int32Data: [-1, 2 ** 30] }).data).toEqual(new Int32Array([-1, 2 ** 30]));
    const viaProto = decodeTensorProto(
      encodeTensorProto({ dims: [2, 1], dataType: 7, int64Data: [-3, 2 ** 40], name: 'idx' }),
    );
    const back = tensorProtoToArray(viaProto);
    expect(back).toMatchObject({ name: 'idx', dataType: 'int64', dims: [2, 1] });
    expect(back.data).toEqual(new BigInt64Array([-3n, 2n ** 40n]));
    expect(tensorProtoToArray({ dims: [], dataType: 1, floatData: [4] })).toMatchObject({ dims: [], data: new Float32Array([4]) });
  });

  it('rejects tensors it cannot read with OnnxFormatError', () => {
    expect(() => tensorProtoToArray({ dims: [3], dataType: 1, rawData: new Uint8Array(8) }, 'a.pb')).toThrow(
      /a\.pb: tensor: raw_data has 8 bytes, dims \[3\] of float32 need 12/,
    );
    expect(() => tensorProtoToArray({ dims: [2], dataType: 1, floatData: [1] })).toThrow(OnnxFormatError);
    expect(() => tensorProtoToArray({ dims: [1], dataType: 10, rawData: new Uint8Array(2) })).toThrow(/float16 is not supported/);
    expect(() => tensorProtoToArray({ dims: [1], dataType: 1, dataLocation: 1 })).toThrow(/external data/);
  });

  it('rejects invalid graphs with OnnxBuildError naming the culprit', () => {
    const fresh = (): OnnxGraphBuilder => new OnnxGraphBuilder().addInput('x', 'float32', ['N', 3]);
    expect(() => fresh().addInput('x', 'float32', [1])).toThrow(/value 'x' is already defined by graph input 'x'/);
    expect(() => fresh().addNode('Relu', ['nope'], ['y'], 'r')).toThrow(/node 'r' \(Relu\): input 'nope' is not defined/);
    expect(() => fresh().addNode('Relu', ['x'], ['x'], 'r')).toThrow(/already defined/);
    expect(() => fresh().addNode('Relu', ['x'], ['a'], 'r').addNode('Relu', ['a'], ['b'], 'r')).toThrow(/node name 'r' is used twice/);
    expect(() => fresh().addInitializer('w', [2, 2], new Float32Array(3))).toThrow(/initializer 'w': dims \[2, 2\] hold 4 elements but the data has 3/);
    expect(() => fresh().addInitializer('w', [1], new Float32Array(1), 'int32')).toThrow(/Float32Array cannot hold int32/);
    expect(() => fresh().addInitializer('w', [1], new Uint8Array([2]), 'bool')).toThrow(/not 0 or 1/);
    expect(() => fresh().addInput('z', 'float32', [-1])).toThrow(OnnxBuildError);
    expect(() => fresh().addNode('Relu', ['x'], ['y'], 'r', { alpha: { nonsense: true } as never })).toThrow(/cannot infer/);
    expect(() => fresh().addNode('Cast', ['x'], ['y'], 'r', { to: attr.int(1.5) })).toThrow(/1.5 is not an integer/);
    expect(() => fresh().addOutput('y', 'float32', [1]).build(BUILD)).toThrow(/graph output 'y' is not defined/);
    expect(() => fresh().build(BUILD)).toThrow(/has no outputs/);
    expect(() =>
      fresh().addNode('Foo', ['x'], ['y'], 'f', {}, undefined, 'my.domain').addOutput('y', 'float32', [1]).build(BUILD),
    ).toThrow(/domain 'my.domain' but no opset of it is imported/);
  });
});

describe('decodeModel', () => {
  const bytes = buildTiny();
  it('raises OnnxFormatError with the path on garbage, truncated and empty input', () => {
    expect(() => decodeModel(new TextEncoder().encode('this is not an ONNX file at all'), 'junk.onnx')).toThrow(OnnxFormatError);
    expect(() => decodeModel(new TextEncoder().encode('this is not an ONNX file at all'), 'junk.onnx')).toThrow(/^junk\.onnx: not an ONNX model/);
    expect(() => decodeModel(bytes.subarray(0, bytes.length - 7), 'cut.onnx')).toThrow(/cut\.onnx: not an ONNX model/);
    expect(() => decodeModel(new Uint8Array(0))).toThrow(/no IR version/);
    expect(() => decodeTensorProto(new Uint8Array([0x0a, 0x05, 1]), 'x.pb')).toThrow(/x\.pb: not an ONNX tensor/);
  });
});

describe('the official checker', () => {
  it.skipIf(python === null)(checkerTitle('rejects what the standard rejects, in one batch'), async () => {
    const good = writeModel('checker-good.onnx', buildTiny());
    const intAlpha = writeModel(
      'checker-int-alpha.onnx',
      new OnnxGraphBuilder()
        .addInput('x', 'float32', [1])
        .addNode('LeakyRelu', ['x'], ['y'], 'leaky', { alpha: 2 }) // inferred INT: the schema wants FLOAT
        .addOutput('y', 'float32', [1])
        .build(BUILD),
    );
    const shapeMismatch = writeModel(
      'checker-shape.onnx',
      new OnnxGraphBuilder()
        .addInput('x', 'float32', [1, 3])
        .addNode('Relu', ['x'], ['y'], 'relu')
        .addOutput('y', 'float32', [1, 4]) // full_check's strict shape inference infers [1, 3]
        .build(BUILD),
    );
    const newerIr = writeModel(
      'checker-ir9.onnx',
      new OnnxGraphBuilder().addInput('x', 'float32', [1]).addNode('Relu', ['x'], ['y'], 'r').addOutput('y', 'float32', [1]).build({ ...BUILD, irVersion: 9 }),
    );
    const missing = join(workDir, 'does-not-exist.onnx');
    const verdicts = await checkManyOnnx([good, intAlpha, shapeMismatch, newerIr, missing]);
    expect(verdicts.map((v) => [v.path, v.ok])).toEqual([
      [good, true],
      [intAlpha, false],
      [shapeMismatch, false],
      [newerIr, false],
      [missing, false],
    ]);
    const message = (i: number): string => {
      const v = verdicts[i]!;
      return 'message' in v ? v.message : v.reason;
    };
    expect(message(1)).toMatch(/Mismatched attribute type in 'leaky : alpha'/);
    expect(message(2)).toMatch(/Inferred shape and existing shape differ/);
    expect(message(3)).toMatch(/ir_version is higher than the checker's/);
  });
});

// ------------------------------------------------------------------------------------------------------
// Property: random small convolutions build, pass the checker, and agree with the loop reference in ORT

interface AxisCase {
  readonly kernel: number;
  readonly stride: number;
  readonly dilation: number;
  readonly padBegin: number;
  readonly padEnd: number;
  readonly extra: number;
}

const axisArbitrary = (maxExtra: number): fc.Arbitrary<AxisCase> =>
  fc.record({
    kernel: fc.integer({ min: 1, max: 3 }),
    stride: fc.integer({ min: 1, max: 3 }),
    dilation: fc.integer({ min: 1, max: 2 }),
    padBegin: fc.integer({ min: 0, max: 2 }),
    padEnd: fc.integer({ min: 0, max: 2 }),
    extra: fc.integer({ min: 0, max: maxExtra }),
  });

const convCaseArbitrary = fc.integer({ min: 1, max: 3 }).chain((rank) =>
  fc.record({
    axes: fc.array(axisArbitrary(rank === 3 ? 2 : 4), { minLength: rank, maxLength: rank }),
    group: fc.integer({ min: 1, max: 3 }),
    channelsPerGroup: fc.integer({ min: 1, max: 2 }),
    filtersPerGroup: fc.integer({ min: 1, max: 2 }),
    batch: fc.integer({ min: 1, max: 2 }),
    symbolicBatch: fc.boolean(),
    bias: fc.boolean(),
    /** Write strides/dilations/pads/kernel_shape even where they equal the defaults. */
    explicitDefaults: fc.boolean(),
    seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  }),
);

type ConvCase = typeof convCaseArbitrary extends fc.Arbitrary<infer T> ? T : never;

describe('property: random Conv attributes', () => {
  const built: { path: string; description: string }[] = [];

  it('ONNX Runtime agrees with the loop reference, and the bytes are deterministic', async () => {
    let counter = 0;
    await fc.assert(
      fc.asyncProperty(convCaseArbitrary, async (c: ConvCase) => {
        const rank = c.axes.length;
        const spatial = c.axes.map((a) => Math.max(1, (a.kernel - 1) * a.dilation + 1 - a.padBegin - a.padEnd) + a.extra);
        const channels = c.group * c.channelsPerGroup;
        const filters = c.group * c.filtersPerGroup;
        const kernel = c.axes.map((a) => a.kernel);
        const params: ConvParams = {
          strides: c.axes.map((a) => a.stride),
          dilations: c.axes.map((a) => a.dilation),
          pads: [...c.axes.map((a) => a.padBegin), ...c.axes.map((a) => a.padEnd)],
          group: c.group,
        };
        const outSpatial = c.axes.map((a, i) => convOutputSize(spatial[i]!, a.kernel, a.stride, a.dilation, a.padBegin, a.padEnd));
        const wDims = [filters, c.channelsPerGroup, ...kernel];
        const w = randomFloats(wDims.reduce((x, y) => x * y, 1), c.seed);
        const b = c.bias ? randomFloats(filters, c.seed + 1) : null;
        const attributes: Record<string, number[] | number> = {};
        const allDefault = (values: readonly number[], fallback: number): boolean => values.every((v) => v === fallback);
        if (c.explicitDefaults || !allDefault(params.strides, 1)) attributes['strides'] = [...params.strides];
        if (c.explicitDefaults || !allDefault(params.dilations, 1)) attributes['dilations'] = [...params.dilations];
        if (c.explicitDefaults || !allDefault(params.pads, 0)) attributes['pads'] = [...params.pads];
        if (c.explicitDefaults) attributes['kernel_shape'] = kernel;
        if (c.explicitDefaults || c.group !== 1) attributes['group'] = c.group;

        const build = (): Uint8Array => {
          const builder = new OnnxGraphBuilder()
            .addInput('x', 'float32', [c.symbolicBatch ? 'N' : c.batch, channels, ...spatial])
            .addInitializer('w', wDims, w);
          if (b !== null) builder.addInitializer('b', [filters], b);
          return builder
            .addNode('Conv', b === null ? ['x', 'w'] : ['x', 'w', 'b'], ['y'], 'conv', attributes)
            .addOutput('y', 'float32', [c.symbolicBatch ? 'N' : c.batch, filters, ...outSpatial])
            .build({ ...BUILD, graphName: 'conv_property' });
        };
        const bytes = build();
        expect(Buffer.from(build()).equals(Buffer.from(bytes))).toBe(true);
        const path = writeModel(`conv-${counter++}.onnx`, bytes);
        const description = `rank ${rank}, input [${c.batch}, ${channels}, ${spatial.join(', ')}], ${JSON.stringify(attributes)}, kernel [${kernel.join(', ')}]`;
        built.push({ path, description });

        const xDims = [c.batch, channels, ...spatial];
        const x = randomFloats(xDims.reduce((p, q) => p * q, 1), c.seed + 2);
        const expected = referenceConv(x, xDims, w, wDims, b, params);
        const engine = await OrtEngine.create(path, { intraOpThreads: 1, logSeverity: 'error' });
        try {
          const { y } = await engine.run({ x: { data: x, dims: xDims } });
          expect(y!.dims, description).toEqual(expected.dims);
          expectClose(y!.data, expected.data);
        } finally {
          await engine.dispose();
        }
      }),
      { numRuns: 150, seed: 20240611 },
    );
  });

  it.skipIf(python === null)(checkerTitle('every model the property built passes the official checker'), async () => {
    expect(built.length).toBeGreaterThan(0);
    const verdicts = await checkManyOnnx(built.map((m) => m.path));
    const rejected = verdicts
      .map((v, i) => ({ v, description: built[i]!.description }))
      .filter(({ v }) => v.ok !== true)
      .map(({ v, description }) => `${description}: ${'message' in v ? v.message : v.reason}`);
    expect(rejected).toEqual([]);
  });
});

describe('encodeModelSegments', () => {
  it('property: the pieces join to exactly what protobufjs encodes, large raw data being views, not copies', () => {
    const tensor = fc.record({
      elements: fc.oneof(fc.integer({ min: 0, max: 64 }), fc.integer({ min: 16_000, max: 20_000 })),
      docString: fc.option(fc.string({ maxLength: 20 }), { nil: undefined }),
      asFloatData: fc.boolean(),
    });
    fc.assert(
      fc.property(
        fc.array(tensor, { maxLength: 5 }),
        fc.option(fc.string({ maxLength: 30 }), { nil: undefined }),
        fc.dictionary(fc.string({ minLength: 1, maxLength: 5 }), fc.string({ maxLength: 10 }), { maxKeys: 3 }),
        fc.boolean(),
        fc.integer({ min: 0, max: 1000 }),
        (tensors, docString, metadata, withGraph, seed) => {
          const random = createMulberry32(seed);
          const initializer = tensors.map((t, i): OnnxTypes.ITensorProto => {
            const data = Float32Array.from({ length: t.elements }, () => random());
            const raw = new Uint8Array(data.buffer);
            return {
              name: `w${i}`,
              dims: [t.elements],
              dataType: ONNX_DATA_TYPE.float32,
              ...(t.asFloatData ? { floatData: [...data] } : { rawData: raw }),
              ...(t.docString === undefined ? {} : { docString: t.docString }),
            };
          });
          const model = {
            irVersion: 8,
            producerName: 'test',
            ...(docString === undefined ? {} : { docString }),
            ...(withGraph
              ? {
                  graph: {
                    node: [{ opType: 'Identity', input: ['x'], output: ['y'], name: 'n' }],
                    name: 'g',
                    initializer,
                    docString: docString ?? '',
                    input: [{ name: 'x' }],
                    output: [{ name: 'y' }],
                  },
                }
              : {}),
            opsetImport: [{ domain: '', version: 17 }],
            metadataProps: Object.entries(metadata).map(([key, value]) => ({ key, value })),
          };
          const encoded = encodeModelSegments(model);
          const joined = concatenateSegments(encoded);
          expect(joined.byteLength).toBe(encoded.byteLength);
          expect(Buffer.from(joined).equals(Buffer.from(encodeModel(model)))).toBe(true);
          const views = withGraph ? initializer.filter((t) => t.rawData && t.rawData.byteLength >= 65_536) : [];
          for (const t of views) expect(encoded.segments).toContain(t.rawData);
        },
      ),
      { numRuns: 150, seed: 7 },
    );
  });
});

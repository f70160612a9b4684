/**
 * Tests of the ONNX Runtime engine (`src/runtime/ort/engine.ts`) against ONNX's own conformance data
 * (Debian's libonnx-testdata): every Conv, MaxPool, AveragePool, BatchNormalization and GlobalAveragePool case
 * runs through `OrtEngine` and must reproduce the published outputs. This validates the engine and the test-data
 * loader; convspec's own builds of the same ops are compared against the same data elsewhere.
 *
 * Also pinned here: how ONNX Runtime treats ceil-mode pooling windows that start in the end padding, where it
 * and the official checker's shape inference (onnx 1.12) disagree, a fact the ONNX emitter must respect.
 *
 * Without the test data the conformance cases are skipped with a message, except under CI (`$CI` set).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkManyOnnx, findPythonWithOnnx } from '../../src/codegen/onnx-checker.js';
import { OnnxGraphBuilder, type OnnxBuildOptions } from '../../src/codegen/onnx-model.js';
import { OrtEngine, OrtEngineError, type OrtTypedTensor } from '../../src/runtime/ort/engine.js';
import { listCases, loadCase, ONNX_TESTDATA_NODE_DIR, testdataAvailable, type CaseTensor } from '../helpers/onnx-testdata.js';

const PREFIXES = ['test_conv_', 'test_maxpool_', 'test_averagepool_', 'test_batchnorm_', 'test_globalaveragepool'];
const cases = listCases(PREFIXES);
const NO_DATA = `skipped: ONNX test data not found under ${ONNX_TESTDATA_NODE_DIR} (install libonnx-testdata)`;
const python = await findPythonWithOnnx();

const workDir = mkdtempSync(join(tmpdir(), 'convspec-ort-engine-'));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

/** ONNX's backend tests compare with rtol 1e-3, atol 1e-7; float32 sums here need a slightly larger atol. */
function expectMatches(caseName: string, actual: { type: string; data: ArrayLike<number | bigint>; dims: number[] }, expected: CaseTensor): void {
  const where = `${caseName} output '${expected.name}'`;
  expect(actual.dims, `${where} dims`).toEqual(expected.dims);
  expect(actual.type, `${where} element type`).toBe(expected.dataType);
  expect(actual.data.length, `${where} size`).toBe(expected.data.length);
  for (let i = 0; i < expected.data.length; i++) {
    const got = actual.data[i]!;
    const want = expected.data[i]!;
    if (typeof want === 'bigint' || typeof got === 'bigint') {
      if (got !== want) throw new Error(`${where}[${i}]: got ${got}, expected ${want}`);
      continue;
    }
    if (Math.abs(got - want) > 1e-6 + 1e-3 * Math.abs(want)) throw new Error(`${where}[${i}]: got ${got}, expected ${want}`);
  }
}

describe('ONNX conformance cases through OrtEngine', () => {
  it.skipIf(testdataAvailable() || process.env['CI'] === undefined)('finds the test data (required under CI)', () => {
    expect.fail(`CI must install libonnx-testdata: ${NO_DATA}`);
  });

  it.skipIf(!testdataAvailable())(testdataAvailable() ? 'lists the expected cases' : `lists the expected cases (${NO_DATA})`, () => {
    for (const prefix of PREFIXES) expect(cases.some((name) => name.startsWith(prefix)), prefix).toBe(true);
    expect(cases).toContain('test_maxpool_2d_ceil');
    expect(cases).toContain('test_batchnorm_example_training_mode');
    expect(cases).not.toContain('test_convtranspose'); // `test_conv_` does not match ConvTranspose or ConvInteger
  });

  const checkerTitle = 'every selected model passes the official checker (one Python process)';
  it.skipIf(!testdataAvailable() || python === null)(python === null ? `${checkerTitle} (skipped: no Python with onnx)` : checkerTitle, async () => {
    const verdicts = await checkManyOnnx(cases.map((name) => loadCase(name).modelPath));
    expect(verdicts.filter((v) => v.ok !== true)).toEqual([]);
  });

  for (const name of cases.length > 0 ? cases : []) {
    it(name, async () => {
      const testCase = loadCase(name);
      const engine = await OrtEngine.create(testCase.modelPath, { intraOpThreads: 1, logSeverity: 'error' });
      try {
        expect([...engine.inputNames].sort()).toEqual(testCase.inputs.map((t) => t.name).sort());
        expect(engine.outputNames).toEqual(testCase.outputs.map((t) => t.name));
        const allFloat = [...testCase.inputs, ...testCase.outputs].every((t) => t.dataType === 'float32');
        if (allFloat) {
          // the float32 path most callers use
          const feeds = Object.fromEntries(testCase.inputs.map((t) => [t.name, { data: t.data as Float32Array, dims: t.dims }]));
          const results = await engine.run(feeds);
          for (const expected of testCase.outputs) {
            expectMatches(name, { type: 'float32', ...results[expected.name]! }, expected);
          }
        } else {
          const feeds = Object.fromEntries(
            testCase.inputs.map((t): [string, OrtTypedTensor] => [t.name, { type: t.dataType as OrtTypedTensor['type'], data: t.data, dims: t.dims }]),
          );
          const results = await engine.runTensors(feeds);
          for (const expected of testCase.outputs) expectMatches(name, results[expected.name]!, expected);
        }
      } finally {
        await engine.dispose();
      }
    });
  }
});

const BUILD: OnnxBuildOptions = { opset: 17, producerName: 'convspec-tests', producerVersion: '0.0.0', graphName: 'g' };

function poolModel(file: string, op: string, attributes: Record<string, number[] | number>, inDims: number[], outDims: number[]): string {
  const path = join(workDir, file);
  writeFileSync(
    path,
    new OnnxGraphBuilder().addInput('x', 'float32', inDims).addNode(op, ['x'], ['y'], 'pool', attributes).addOutput('y', 'float32', outDims).build(BUILD),
  );
  return path;
}

describe('ONNX Runtime pooling behaviour the emitter relies on', () => {
  const ramp = (n: number): Float32Array => Float32Array.from({ length: n }, (_, i) => i + 1);

  it('ceil mode: a window that would start in the end padding is dropped (PyTorch rule), unlike onnx 1.12 shape inference', async () => {
    // length 5, kernel 2, stride 2, pads 1/1, ceil: ceil((5 + 2 - 2) / 2) + 1 = 4 windows by the formula, but the
    // 4th would start at 3 * 2 - 1 = 5, past the input: ONNX Runtime (like PyTorch) produces 3.
    const declared4 = poolModel('ceil-4.onnx', 'MaxPool', { kernel_shape: [2], strides: [2], pads: [1, 1], ceil_mode: 1 }, [1, 1, 5], [1, 1, 4]);
    const engine = await OrtEngine.create(declared4, { logSeverity: 'fatal' });
    const { y } = await engine.run({ x: { data: ramp(5), dims: [1, 1, 5] } });
    expect(y!.dims).toEqual([1, 1, 3]);
    expect(Array.from(y!.data)).toEqual([1, 3, 5]);
    await engine.dispose();
    if (python !== null) {
      const declared3 = poolModel('ceil-3.onnx', 'MaxPool', { kernel_shape: [2], strides: [2], pads: [1, 1], ceil_mode: 1 }, [1, 1, 5], [1, 1, 3]);
      const [v4, v3] = await checkManyOnnx([declared4, declared3]);
      // The checker wants the 4 the plain formula gives and rejects what ONNX Runtime actually returns.
      expect(v4!.ok).toBe(true);
      expect(v3!.ok).toBe(false);
    }
  });

  it('ceil mode with count_include_pad: the overhang past the pads is not counted in the average', async () => {
    // length 4, kernel 3, stride 2, no pads, ceil: 2 windows; the second covers [2, 3] and one position past the end
    const path = poolModel('ceil-avg.onnx', 'AveragePool', { kernel_shape: [3], strides: [2], ceil_mode: 1, count_include_pad: 1 }, [1, 1, 4], [1, 1, 2]);
    const engine = await OrtEngine.create(path, { logSeverity: 'error' });
    const { y } = await engine.run({ x: { data: ramp(4), dims: [1, 1, 4] } });
    expect(Array.from(y!.data)).toEqual([2, 3.5]); // (1+2+3)/3, (3+4)/2 rather than (3+4+0)/3
    await engine.dispose();
  });

  it('pooling pads must be smaller than the kernel (ONNX Runtime refuses the model; the checker accepts it)', async () => {
    const path = poolModel('pad-ge-kernel.onnx', 'MaxPool', { kernel_shape: [2], pads: [2, 2] }, [1, 1, 5], [1, 1, 8]);
    await expect(OrtEngine.create(path, { logSeverity: 'fatal' })).rejects.toThrow(/Pad should be smaller than kernel/);
    if (python !== null) expect((await checkManyOnnx([path]))[0]!.ok).toBe(true);
  });
});

describe('OrtEngine errors and options', () => {
  const bytes = new OnnxGraphBuilder()
    .addInput('x', 'float32', ['N', 2])
    .addNode('ArgMax', ['x'], ['i'], 'argmax', { axis: 1, keepdims: 0 })
    .addNode('Relu', ['x'], ['r'], 'relu')
    .addOutput('r', 'float32', ['N', 2])
    .addOutput('i', 'int64', ['N'])
    .build(BUILD);

  it('runs typed tensors, honours options, and refuses float-only run() on int64 outputs', async () => {
    for (const graphOptimizationLevel of ['disabled', 'basic', 'extended', 'all'] as const) {
      const engine = await OrtEngine.create(bytes, { intraOpThreads: 1, interOpThreads: 1, graphOptimizationLevel, label: 'argmax.onnx' });
      expect(engine.inputNames).toEqual(['x']);
      expect(engine.outputNames).toEqual(['r', 'i']);
      const out = await engine.runTensors({ x: { type: 'float32', data: new Float32Array([1, -2, -3, 4]), dims: [2, 2] } });
      expect(out['i']).toEqual({ type: 'int64', data: new BigInt64Array([0n, 1n]), dims: [2] });
      expect(Array.from(out['r']!.data as Float32Array)).toEqual([1, 0, 0, 4]);
      await expect(engine.run({ x: { data: new Float32Array(2), dims: [1, 2] } })).rejects.toThrow(
        /^argmax\.onnx: output 'i' is int64, not float32; use runTensors$/,
      );
      await engine.dispose();
    }
  });

  it('runs with its threads spinning or not (the same outputs)', async () => {
    for (const spinning of [true, false]) {
      const engine = await OrtEngine.create(bytes, { intraOpThreads: 2, spinning, label: 'argmax.onnx' });
      const out = await engine.runTensors({ x: { type: 'float32', data: new Float32Array([1, -2, -3, 4]), dims: [2, 2] } });
      expect(Array.from(out['r']!.data as Float32Array)).toEqual([1, 0, 0, 4]);
      await engine.dispose();
    }
  });

  it('reports feed mistakes, load failures and use after dispose as OrtEngineError with the model path', async () => {
    const engine = await OrtEngine.create(bytes, { label: 'argmax.onnx' });
    const error = await engine.run({}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OrtEngineError);
    expect((error as OrtEngineError).modelPath).toBe('argmax.onnx');
    expect((error as Error).message).toBe("argmax.onnx: missing input(s) 'x'");
    await expect(engine.run({ x: { data: new Float32Array(2), dims: [1, 2] }, y: { data: new Float32Array(1), dims: [1] } })).rejects.toThrow(
      /unknown input 'y'/,
    );
    await expect(engine.run({ x: { data: new Float32Array(3), dims: [1, 2] } })).rejects.toThrow(/dims \[1, 2\] hold 2 elements but the data has 3/);
    await expect(engine.run({ x: { data: new Float32Array(6), dims: [2, 3] } })).rejects.toThrow(/argmax\.onnx: ONNX Runtime failed to run the model/);
    await expect(engine.runTensors({ x: { type: 'int32', data: new Float32Array(2), dims: [1, 2] } })).rejects.toThrow(/Float32Array cannot carry int32/);
    await engine.dispose();
    await engine.dispose();
    await expect(engine.run({ x: { data: new Float32Array(2), dims: [1, 2] } })).rejects.toThrow(/argmax\.onnx: the engine has been disposed/);

    const missing = join(workDir, 'no-such-model.onnx');
    const loadError = await OrtEngine.create(missing).catch((e: unknown) => e);
    expect(loadError).toBeInstanceOf(OrtEngineError);
    expect((loadError as OrtEngineError).modelPath).toBe(missing);
    expect((loadError as Error).message.startsWith(`${missing}: ONNX Runtime cannot load the model`)).toBe(true);
    await expect(OrtEngine.create(new TextEncoder().encode('garbage'))).rejects.toThrow(/^<in-memory model>: ONNX Runtime cannot load/);
    await expect(OrtEngine.create(bytes, { intraOpThreads: -1 })).rejects.toThrow(/intraOpThreads must be a non-negative integer/);
  });
});

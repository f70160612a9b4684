/**
 * ONNX's own conformance cases for convolution, pooling and batch normalization (Debian's libonnx-testdata),
 * imported and run in the tfjs engine: every case the language can express must reproduce the expected outputs,
 * and every other case must be refused with a CNN8006 diagnostic naming what is missing — never a crash.
 *
 * The cases feed their weights as graph inputs (`W`, `B`, the BN statistics); the test binds every input but
 * the first to its test tensor as an initializer, which is how an exported model holds them.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decodeTensorProto, encodeModel } from '../../src/codegen/onnx-model.js';
import { importOnnx } from '../../src/import/onnx-import.js';
import { createEngine } from '../../src/runtime/tfjs/index.js';
import { listCases, loadCase, testdataAvailable } from '../helpers/onnx-testdata.js';

const PREFIXES = ['test_conv_', 'test_basic_conv_', 'test_convtranspose', 'test_maxpool_', 'test_averagepool_', 'test_globalaveragepool', 'test_globalmaxpool', 'test_batchnorm_'];

/** Cases outside the language, with the reason the import gives. */
const REFUSED: Readonly<Record<string, RegExp>> = {
  test_batchnorm_epsilon_training_mode: /training mode/,
  test_batchnorm_example_training_mode: /training mode/,
  test_maxpool_2d_dilations: /dilations/,
  test_maxpool_2d_uint8: /input of type uint8/,
  test_maxpool_with_argmax_2d_precomputed_pads: /Indices/,
  test_maxpool_with_argmax_2d_precomputed_strides: /Indices/,
};

function bindWeightInputs(name: string): Uint8Array {
  const testCase = loadCase(name);
  const model = testCase.model;
  for (const input of testCase.inputs.slice(1)) {
    const tensor = decodeTensorProto(readFileSync(input.path), input.path);
    tensor.name = input.name;
    model.graph.initializer.push(tensor);
  }
  return encodeModel(model);
}

describe.skipIf(!testdataAvailable())('libonnx-testdata: conv, pooling and batch norm cases through import and the tfjs engine', () => {
  const cases = listCases(PREFIXES);
  it('finds the cases', () => expect(cases.length).toBeGreaterThan(40));
  for (const name of cases) {
    it(name, async () => {
      const testCase = loadCase(name);
      const imported = importOnnx(bindWeightInputs(name), { path: name });
      const refusal = REFUSED[name];
      if (refusal) {
        expect(imported.graph).toBeUndefined();
        expect(imported.diagnostics.map((d) => `${d.code} ${d.message}`).join('\n')).toMatch(/CNN8006/);
        expect(imported.diagnostics.map((d) => d.message).join('\n')).toMatch(refusal);
        return;
      }
      expect(imported.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
      const graph = imported.graph!;
      const engine = await createEngine(graph, imported.weights, { backend: 'cpu' });
      try {
        const x = testCase.inputs[0]!;
        const outputs = await engine.predict({ [graph.inputs[0]!.name]: { data: Float32Array.from(x.data as Float32Array), dims: x.dims } });
        const expected = testCase.outputs[0]!;
        const found = outputs[graph.outputs[0]!.name]!;
        expect(found.dims).toEqual(expected.dims);
        const want = expected.data as Float32Array;
        let scale = 0;
        for (const v of want) scale = Math.max(scale, Math.abs(v));
        for (let i = 0; i < want.length; i++) expect(Math.abs(found.data[i]! - want[i]!)).toBeLessThanOrEqual(1e-4 * Math.max(1, scale));
      } finally {
        engine.dispose();
      }
    });
  }
});

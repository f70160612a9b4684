/**
 * Import round trip over every spec in specs/: spec → ONNX (convspec's emitter) → `importOnnx` → ONNX again. Both
 * files run in ONNX Runtime on the same random input with the same random weights (BN statistics included), and
 * the outputs must agree to 1e-4 of their largest magnitude. Along the way:
 *   - every weighted layer keeps its name, so every weight comes back under its original name (dropout layers,
 *     which an inference export leaves out, are the only layers that go);
 *   - the spec `convspec import` would write elaborates back to exactly the imported graph, and folds repeated
 *     structure into blocks where the spec had them (ResNet's `basic`, MobileNet's `dw_sep`…).
 * The large image models run at reduced input sizes (what `--input-shape` does), which keeps every layer and
 * shortens the run: the round trip concerns the graph, not the resolution (the two TF-slim models whose fc6 fixes
 * the input size get narrower fc layers instead).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { emitOnnx } from '../../src/codegen/onnx.js';
import { elaborate } from '../../src/elaborate/elaborate.js';
import { printImportedSpec, differenceFromGraph } from '../../src/import/print-blocks.js';
import { importOnnx } from '../../src/import/onnx-import.js';
import type { Graph } from '../../src/ir/graph.js';
import { graphParameters, parameterSize } from '../../src/ir/params.js';
import type { WeightTensor } from '../../src/ir/weights.js';
import { OrtEngine } from '../../src/runtime/ort/engine.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const specsDir = path.join(root, 'specs');

/** Input sizes for the large models (the first input); other specs run as written. */
const REDUCED: Readonly<Record<string, readonly number[]>> = {
  'alexnet.cnn': [1, 3, 67, 67],
  'c3d.cnn': [1, 3, 16, 32, 32],
  'deeplab_aspp.cnn': [1, 3, 64, 64],
  'mobilenet_v1.cnn': [1, 3, 64, 64],
  'mobilenet_v2.cnn': [1, 3, 64, 64],
  'resnet18.cnn': [1, 3, 64, 64],
  'resnet50.cnn': [1, 3, 64, 64],
  'resnext_stage.cnn': [1, 3, 64, 64],
  'vgg16.cnn': [1, 3, 32, 32],
  'xception_entry.cnn': [1, 3, 71, 71],
  'slim/resnet_v1_50.cnn': [1, 3, 64, 64],
};

/**
 * TF-slim's fc6 is a VALID conv as large as pool5, so these run at 224×224 only; fc6 and fc7 are narrowed from
 * 4096 to 256 filters instead (every layer, kernel and padding stays).
 */
const NARROWED = new Set(['slim/alexnet_v2.cnn', 'slim/vgg_16.cnn']);

/** Blocks the printed import must find (by name) where the spec repeats a block. */
const EXPECTED_BLOCKS: Readonly<Record<string, readonly string[]>> = {
  'resnet18.cnn': ['basic'],
  'fashion.cnn': ['conv_bn_relu'],
  'mobilenet_v1.cnn': ['dw_sep'],
  'vgg16.cnn': ['conv_relu'],
};

function specFiles(): string[] {
  const files: string[] = [];
  for (const entry of fs.readdirSync(specsDir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.cnn')) continue;
    const relative = path.relative(specsDir, path.join(entry.parentPath, entry.name)).split(path.sep).join('/');
    if (!relative.startsWith('lib/')) files.push(relative);
  }
  return files.sort();
}

/** Fast deterministic weights: kernels scaled by fan-in, BN γ ∈ [0.5, 1.5], β and μ ∈ [−0.5, 0.5], σ² ∈ [0.5, 1.5]. */
function quickWeights(graph: Graph, seed: number): Map<string, WeightTensor> {
  const weights = new Map<string, WeightTensor>();
  let state = seed >>> 0;
  const next = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 4294967296;
  };
  for (const param of graphParameters(graph.nodes)) {
    const data = new Float32Array(parameterSize(param));
    const kernel = param.role === 'weight' && param.shape.length >= 2;
    const fanIn = kernel ? param.shape.slice(1).reduce((a, b) => a * b, 1) : 1;
    const [low, high] = kernel ? [-Math.sqrt(3 / fanIn), Math.sqrt(3 / fanIn)] : param.role === 'running_var' || param.role === 'weight' ? [0.5, 1.5] : [-0.5, 0.5];
    for (let i = 0; i < data.length; i++) data[i] = low + (high - low) * next();
    weights.set(param.name, { shape: param.shape, data });
  }
  return weights;
}

function inputFor(shape: readonly (number | string)[], seed: number): { data: Float32Array; dims: number[] } {
  const dims = shape.map((d, axis) => (typeof d === 'number' ? d : axis === 0 ? 2 : 24));
  const data = new Float32Array(dims.reduce((a, b) => a * b, 1));
  let state = seed;
  for (let i = 0; i < data.length; i++) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    data[i] = state / 4294967296 - 0.5;
  }
  return { data, dims };
}

const prepared = specFiles().map((spec) => {
  const file = path.join(specsDir, spec);
  const text = NARROWED.has(spec) ? fs.readFileSync(file, 'utf8').replaceAll('conv(4096,', 'conv(256,') : undefined;
  const plain = elaborate(file, text === undefined ? {} : { text });
  const inputName = plain.graph?.inputs[0]?.name;
  const reduced = REDUCED[spec];
  const result = reduced && inputName ? elaborate(file, { inputShapes: { [inputName]: reduced } }) : plain;
  const errors = result.diagnostics.filter((d) => d.severity === 'error');
  return { spec, graph: errors.length === 0 ? result.graph : undefined, problem: errors[0] ? `the spec does not elaborate here: ${errors[0].code} ${errors[0].message}` : undefined };
});

describe('spec → ONNX → import → ONNX gives the same outputs in ONNX Runtime', () => {
  it('covers every spec in specs/', () => expect(prepared.length).toBeGreaterThanOrEqual(15));

  for (const { spec, graph, problem } of prepared) {
    it.skipIf(!graph)(`${spec}${problem ? ` (skipped: ${problem})` : ''}`, async () => {
      const original = graph!;
      const weights = quickWeights(original, spec.length);
      const first = emitOnnx(original, weights);
      expect(first.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);

      const imported = importOnnx(first.bytes, { path: `${spec}.onnx` });
      expect(imported.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
      const graphBack = imported.graph!;
      expect(graphBack.nodes.map((n) => n.name)).toEqual(original.nodes.filter((n) => n.op !== 'dropout').map((n) => n.name));
      expect([...imported.weights.keys()].sort()).toEqual([...weights.keys()].sort());

      const printed = printImportedSpec(graphBack);
      expect(printed.fallback).toBeUndefined();
      expect(differenceFromGraph(printed.text, graphBack)).toBeUndefined();
      for (const block of EXPECTED_BLOCKS[spec] ?? []) expect(printed.blocks.map((b) => b.name)).toContain(block);

      const second = emitOnnx(graphBack, imported.weights);
      expect(second.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
      const [a, b] = await Promise.all([OrtEngine.create(first.bytes), OrtEngine.create(second.bytes)]);
      try {
        const feeds = Object.fromEntries(original.inputs.map((input, i) => [input.name, inputFor(input.shape.map((d) => (typeof d === 'number' ? d : 'N')), 11 + i)]));
        const [outA, outB] = [await a.run(feeds), await b.run(feeds)];
        expect(Object.keys(outB)).toEqual(Object.keys(outA));
        for (const name of Object.keys(outA)) {
          const x = outA[name]!.data;
          const y = outB[name]!.data;
          expect(outB[name]!.dims).toEqual(outA[name]!.dims);
          let scale = 0;
          let difference = 0;
          for (let i = 0; i < x.length; i++) {
            scale = Math.max(scale, Math.abs(x[i]!));
            difference = Math.max(difference, Math.abs(x[i]! - y[i]!));
          }
          expect(difference, `${spec} output ${name}`).toBeLessThanOrEqual(1e-4 * scale);
        }
      } finally {
        await Promise.all([a.dispose(), b.dispose()]);
      }
    });
  }
});

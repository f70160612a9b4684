/**
 * Acceptance: every example spec in specs/ and specs/slim/, with random weights (`randomWeights`) and random
 * normal inputs,
 *   - runs a forward pass in the tfjs engine (wasm backend), whose output shapes equal the IR's inferred shapes
 *     (the engine also checks every intermediate node's shape against the IR as it runs);
 *   - compiles to ONNX as `convspec compile --target onnx` does (the default inference passes, then `emitOnnx`);
 *     the official checker accepts every file (one batched Python call, the last test of the ONNX group), and
 *     ONNX Runtime loads and runs it with outputs equal to the tfjs engine's within 1e-4 of max |output|;
 *   - compiles to a TF.js graph model (`--target tfjs`: the same passes, then `emitTfjs`), which
 *     `tf.loadGraphModel` loads (via `tfjsModelArtifacts`) and runs — inputs and outputs channels-last as the
 *     export's layout metadata states — with outputs equal to the engine's within 1e-4 of max |output|.
 * The engine runs the spec's own IR (dropout, batch norm unfolded), so the comparison also covers the passes.
 *
 * Sizes: specs that would take many seconds at full size on the 2-core test machine (single-threaded wasm,
 * tens of millions of weights) run at the reduced input sizes listed in ./helpers.ts (SPEC_CASES, `note`), the
 * library form of `--input-shape`. The TF-slim alexnet_v2 and vgg_16 cannot shrink (their fc6 is a VALID conv
 * as large as pool5 at 224×224), so they run at 224×224 with fc6/fc7 narrowed from 4096 to 256 filters.
 * CONVSPEC_FULL_SPECS=1 runs every spec unmodified at its declared size instead (several minutes).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkManyOnnx, findPythonWithOnnx } from '../../src/codegen/onnx-checker.js';
import { emitOnnx } from '../../src/codegen/onnx.js';
import { emitTfjs } from '../../src/codegen/tfjs.js';
import { randomWeights } from '../../src/ir/weights.js';
import { OrtEngine } from '../../src/runtime/ort/engine.js';
import { createEngine } from '../../src/runtime/tfjs/index.js';
import { checkCase, compilePasses, concreteShape, describeMismatch, FULL_SPECS, listSpecFiles, outputShape, randomInputs, relativeError, runTfjsExport, specCases, temporaryDirectory } from './helpers.js';

const SPEC_CASES = specCases();

const TOLERANCE = 1e-4;
const python = await findPythonWithOnnx();
const work = temporaryDirectory('specs-export');
afterAll(() => work.remove());

/** ONNX files written by the spec tests, for the batched checker call. */
const written: Array<{ spec: string; path: string }> = [];
let tensorsAtStart = 0;

beforeAll(async () => {
  // Selects and initialises the wasm backend once, so the leak check below starts from a settled count.
  const warm = await createEngine(checkCase(SPEC_CASES[0]!).graph, undefined, { backend: 'wasm' });
  warm.dispose();
  tensorsAtStart = tf.memory().numTensors;
});

describe('example specs: tfjs engine, ONNX (checker + ONNX Runtime) and TF.js graph model agree', () => {
  it('covers every spec in specs/ and specs/slim/', () => {
    expect(SPEC_CASES.map((s) => s.file).sort()).toEqual(listSpecFiles());
  });

  for (const spec of SPEC_CASES) {
    const title = spec.note ? `${spec.file} (${spec.note})` : spec.file;
    it(title, { timeout: FULL_SPECS ? 900_000 : 120_000 }, async () => {
      const { graph } = checkCase(spec);
      const weights = randomWeights(graph, 11);
      const feeds = randomInputs(graph, spec.sizes, 101);

      // 1. tfjs engine (wasm): the reference outputs, with the IR's shapes
      const engine = await createEngine(graph, weights, { backend: 'wasm' });
      expect(engine.backend.name).toBe('wasm');
      let reference: Record<string, { data: Float32Array; dims: number[] }>;
      try {
        reference = await engine.predict(feeds);
      } finally {
        engine.dispose();
      }
      for (const output of graph.outputs) {
        expect(reference[output.name]!.dims, `${spec.file}: engine shape of ${output.name}`).toEqual(concreteShape(outputShape(graph, output.name), spec.sizes));
        expect(reference[output.name]!.data.every(Number.isFinite), `${spec.file}: finite ${output.name}`).toBe(true);
      }

      const compiled = compilePasses(graph, weights);

      // 2. ONNX → ONNX Runtime
      const onnx = emitOnnx(compiled.graph, compiled.weights, { valueInfo: true });
      expect(onnx.diagnostics.filter((d) => d.severity === 'error').map((d) => `${d.code} ${d.message}`)).toEqual([]);
      const onnxPath = path.join(work.dir, `${spec.file.replace(/[/.]/g, '_')}.onnx`);
      fs.writeFileSync(onnxPath, onnx.bytes);
      written.push({ spec: spec.file, path: onnxPath });
      const ort = await OrtEngine.create(onnxPath, { intraOpThreads: 1, logSeverity: 'error' });
      try {
        expect([...ort.inputNames].sort()).toEqual(graph.inputs.map((i) => i.name).sort());
        const results = await ort.run(feeds);
        for (const output of graph.outputs) {
          const got = results[output.name];
          expect(got, `${spec.file}: ONNX Runtime output ${output.name}`).toBeDefined();
          expect(got!.dims, `${spec.file}: ONNX Runtime shape of ${output.name}`).toEqual(reference[output.name]!.dims);
          const { error } = relativeError(got!.data, reference[output.name]!.data);
          expect(error, describeMismatch(`${spec.file} ${output.name}: ONNX Runtime vs tfjs engine`, got!.data, reference[output.name]!.data)).toBeLessThan(TOLERANCE);
        }
      } finally {
        await ort.dispose();
      }

      // 3. TF.js graph model → tf.loadGraphModel
      const tfjs = emitTfjs(compiled.graph, compiled.weights);
      expect(tfjs.diagnostics.filter((d) => d.severity === 'error').map((d) => `${d.code} ${d.message}`)).toEqual([]);
      const loaded = await runTfjsExport(tfjs.files, compiled.graph, feeds);
      for (const output of graph.outputs) {
        const got = loaded[output.name]!;
        expect(got.dims, `${spec.file}: graph model shape of ${output.name}`).toEqual(reference[output.name]!.dims);
        const { error } = relativeError(got.data, reference[output.name]!.data);
        expect(error, describeMismatch(`${spec.file} ${output.name}: tf.loadGraphModel vs tfjs engine`, got.data, reference[output.name]!.data)).toBeLessThan(TOLERANCE);
      }
    });
  }

  const checkerTitle = 'the official checker accepts every emitted ONNX file (one batched call)';
  it.skipIf(python === null && process.env['CI'] === undefined)(python === null ? `${checkerTitle} (skipped: no Python with onnx)` : checkerTitle, { timeout: FULL_SPECS ? 900_000 : 120_000 }, async () => {
    expect(python, 'CI must provide python3-onnx').not.toBeNull();
    expect(written.length, 'no spec got as far as its ONNX file').toBeGreaterThan(0);
    const verdicts = await checkManyOnnx(written.map((w) => w.path), { timeoutMs: 300_000 });
    const rejected = verdicts.map((v, i) => ({ spec: written[i]!.spec, ...v })).filter((v) => v.ok !== true);
    expect(rejected).toEqual([]);
    // every spec's file was checked (a spec missing here failed before its export, above)
    expect(written.map((w) => w.spec).sort()).toEqual(SPEC_CASES.map((s) => s.file).sort());
  });

  it('engines and loaded graph models release every tensor they made', () => {
    expect(tf.memory().numTensors).toBe(tensorsAtStart);
  });
});

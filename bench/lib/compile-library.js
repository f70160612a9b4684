#!/usr/bin/env node
/**
 * What `convspec compile SPEC --target onnx -o DIR` does, through the library, as one process:
 * elaborate the spec, initialise the weights (He uniform, as a fresh compile without --weights: drawn as the file
 * is written), emit ONNX (opset 17) and write `DIR/<Model>.onnx`. The benchmark times this whole process next to PyTorch's build +
 * export while the CLI command is not there, and as a second figure once it is.
 *
 *   node bench/lib/compile-library.js SPEC DIR [--random]
 * Prints one JSON line: model, bytes, and the seconds of each phase. Exit 3 when the library lacks a piece
 * (message on stderr), 1 when the spec has errors.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const [spec, outDir] = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const random = process.argv.includes('--random');
if (!spec || !outDir) {
  console.error('usage: compile-library.js SPEC DIR [--random]');
  process.exit(2);
}

async function load(relative, name) {
  try {
    const module = await import(pathToFileURL(path.join(root, 'dist', relative)).href);
    if (typeof module[name] !== 'function') throw new Error(`no export ${name}`);
    return module[name];
  } catch (error) {
    console.error(`dist/${relative}: ${error.message.split('\n')[0]}`);
    process.exit(3);
  }
}

const t0 = performance.now();
const elaborate = await load('elaborate/elaborate.js', 'elaborate');
const makeWeights = await load('ir/weights.js', random ? 'randomWeights' : 'initializeWeights');
const emitOnnx = await load('codegen/onnx.js', 'emitOnnx');
const writeFileAtomicAsync = await load('runtime/data/atomic-write.js', 'writeFileAtomicAsync');
const t1 = performance.now();
const elaborated = elaborate(spec);
const errors = elaborated.diagnostics.filter((d) => d.severity === 'error');
if (!elaborated.graph || errors.length) {
  console.error(`${spec}: ${errors.map((d) => `${d.code} ${d.message}`).join('; ') || 'no graph'}`);
  process.exit(1);
}
const t2 = performance.now();
const weights = makeWeights(elaborated.graph, 0);
const t3 = performance.now();
const emitted = emitOnnx(elaborated.graph, weights, { opset: 17 });
const emitErrors = emitted.diagnostics.filter((d) => d.severity === 'error');
if (emitErrors.length) {
  console.error(`${spec}: ${emitErrors.map((d) => `${d.code} ${d.message}`).join('; ')}`);
  process.exit(1);
}
const t4 = performance.now();
mkdirSync(outDir, { recursive: true });
const file = path.join(outDir, `${elaborated.graph.name}.onnx`);
await writeFileAtomicAsync(file, emitted.encoded.segments);
const t5 = performance.now();
const s = (a, b) => Math.round(b - a) / 1000;
console.log(JSON.stringify({ model: elaborated.graph.name, file, bytes: emitted.encoded.byteLength, load_s: s(t0, t1), elaborate_s: s(t1, t2), weights_s: s(t2, t3), emit_s: s(t3, t4), write_s: s(t4, t5) }));

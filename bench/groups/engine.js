/**
 * The tfjs engine's own overhead: ResNet-18 (224×224, batch 1 and 8) run by `TfjsEngine.predictSync` on the wasm
 * backend, next to the same network written directly in TensorFlow.js ops (bench/lib/resnet18-tfjs.js: tf.conv2d,
 * tf.batchNorm, tf.relu, tf.add, tf.maxPool, tf.mean, tf.matMul, NHWC) with the same weights, in the same process,
 * alternating. What the engine adds — walking the IR, layout conversion of the input and output, shape checks,
 * its lowering of each op — is the difference. Both sides take a Float32Array and return one (the engine in the
 * IR's NCHW layout, the hand-written forward in NHWC) and read the logits back.
 *
 * A second comparison runs the ONNX Runtime engine (`OrtEngine`, 1 intra-op thread, default graph optimisations)
 * on the ONNX file `emitOnnx` writes for the same graph and weights, next to the tfjs engine: how far the
 * training-capable engine is from the inference runtime on the same CPU.
 *
 * Target: engine ÷ hand-written ≤ 1.10 (overhead under 10 %).
 */
import path from 'node:path';
import { pseudoRandomInput } from '../lib/inputs.js';

export const name = 'engine';
export const title = 'tfjs engine overhead';
export const order = 25;
export const peer = 'hand-written tfjs';
export const description =
  'ResNet-18 at 224×224 on the tfjs wasm backend (1 thread): `TfjsEngine.predictSync` next to the same network written directly ' +
  'in TensorFlow.js ops with the same weights (bench/lib/resnet18-tfjs.js), alternating in one process, median milliseconds per ' +
  'forward pass including reading the logits back; and the ONNX Runtime engine (1 intra-op thread) on the ONNX file of the same ' +
  'graph and weights, next to the tfjs engine.';

/** NCHW data → NHWC data. */
function toChannelsLast(data, [n, c, h, w]) {
  const out = new Float32Array(data.length);
  for (let b = 0; b < n; b++) {
    for (let ch = 0; ch < c; ch++) {
      for (let p = 0; p < h * w; p++) out[(b * h * w + p) * c + ch] = data[(b * c + ch) * h * w + p];
    }
  }
  return out;
}

function maxDifference(a, b) {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(a[i]));
  }
  return { diff, scale };
}

export async function run(ctx) {
  const { elaborate } = await ctx.importDist('elaborate/elaborate.js', ['elaborate']);
  const { TfjsEngine } = await ctx.importDist('runtime/tfjs/engine.js', ['TfjsEngine']);
  const { OrtEngine } = await ctx.importDist('runtime/ort/engine.js', ['OrtEngine']);
  const { emitOnnx } = await ctx.importDist('codegen/onnx.js', ['emitOnnx']);
  const tf = await import('@tensorflow/tfjs');
  const { handWrittenResnet18 } = await import('../lib/resnet18-tfjs.js');

  const elaborated = elaborate(path.join(ctx.root, 'specs/resnet18.cnn'));
  if (!elaborated.graph) ctx.unavailable(`specs/resnet18.cnn does not elaborate: ${elaborated.diagnostics.map((d) => d.message).join('; ')}`);
  const graph = elaborated.graph;
  const engine = await TfjsEngine.create(graph, undefined, { backend: 'wasm', seed: 1, threads: 1 });
  if (engine.backend.name !== 'wasm') ctx.unavailable(`the engine runs on ${engine.backend.name}, not wasm`);
  const weights = engine.getWeightsSync();
  const handWritten = handWrittenResnet18(weights);
  const emitted = emitOnnx(graph, weights, { opset: 17 });
  const onnxErrors = emitted.diagnostics.filter((d) => d.severity === 'error');
  const ort = onnxErrors.length ? undefined : await OrtEngine.create(emitted.bytes, { intraOpThreads: 1, interOpThreads: 1, logSeverity: 'error' });

  const rows = [];
  const notes = [];
  for (const batch of [1, 8]) {
    const dims = [batch, 3, 224, 224];
    const nchw = pseudoRandomInput(batch * 3 * 224 * 224, 7);
    const nhwc = toChannelsLast(nchw, dims);
    const runEngine = () => engine.predictSync({ image: { data: nchw, dims } }).logits.data;
    const runHandWritten = () => {
      const x = tf.tensor(nhwc, [batch, 224, 224, 3]);
      const y = handWritten.forward(x);
      const logits = Float32Array.from(y.dataSync());
      tf.dispose([x, y]);
      return logits;
    };
    const runOrt = async () => {
      if (!ort) ctx.unavailable(`emitOnnx: ${onnxErrors.map((d) => d.message).join('; ')}`);
      const outputs = await ort.run({ [ort.inputNames[0]]: { data: nchw, dims } });
      return Object.values(outputs)[0].data;
    };
    const { diff, scale } = maxDifference(runEngine(), runHandWritten());
    notes.push(`batch ${batch}: the engine's logits and the hand-written forward's differ by at most ${diff.toExponential(1)} (largest logit ${scale.toFixed(1)}).`);
    if (!(diff <= 1e-3 * Math.max(1, scale))) ctx.unavailable(`the hand-written forward does not compute the engine's function (max difference ${diff})`);
    const timed = (fn) => async () => {
      const started = performance.now();
      await fn();
      return performance.now() - started;
    };
    ctx.log(`engine: ResNet-18, batch ${batch}`);
    const reps = ctx.reps(batch === 1 ? 15 : 7);
    const measured = await ctx.sideBySide(
      { engine: timed(runEngine), handWritten: timed(runHandWritten), ort: timed(runOrt) },
      { reps, warmup: 2 },
    );
    rows.push(ctx.row(`ResNet-18, batch ${batch}, wasm`, 'ms', { convspec: measured.engine, peer: measured.handWritten }, {
      target: { on: 'ratio', op: '<=', value: 1.1, text: 'overhead under 10 % (ratio ≤ 1.10)' },
    }));
    rows.push(ctx.row(`ResNet-18, batch ${batch}, tfjs engine (wasm)`, 'ms', { convspec: measured.engine, peer: measured.ort }, {
      peerLabel: 'convspec ONNX in ONNX Runtime, 1 thread',
    }));
  }
  handWritten.dispose();
  engine.dispose();
  if (ort) await ort.dispose();
  notes.push('ms: milliseconds per forward pass (median), input given as a Float32Array and logits read back; a ratio above 1 means the tfjs engine is slower.');
  return { rows, notes };
}

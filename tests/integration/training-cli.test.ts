/**
 * Acceptance: the training command survives a crash, and what it trained runs the same everywhere.
 *
 * 1. `convspec train SPEC --data fashion-mnist-subset` runs as a real process (bin/convspec.js, i.e. dist/, which
 *    `npm test` builds first); once epoch 1's checkpoint exists and epoch 2 has started it is killed with SIGKILL.
 *    Every file left in the output folder reads back (no half-written checkpoint, no stray temporary file), and
 *    the checkpoint holds epoch 1.
 * 2. `--resume` continues after epoch 1 (the log says so) and finishes epochs 2 and 3; the history has epochs
 *    1, 2, 3 with epoch 1 taken from the checkpoint; the final weights equal those of an uninterrupted run with the
 *    same seed (run alongside), as the trainer promises.
 * 3. `eval` on the trained weights; `run` on a .npy and on a PNG input gives the same top class and outputs within
 *    1e-4 with `--engine tfjs` and `--engine ort`.
 * 4. `compile --weights checkpoint.safetensors` to ONNX: ONNX Runtime equals the tfjs engine on test images; the
 *    same for `--target tfjs` loaded with `tf.loadGraphModel`.
 * 5. Training in-process (the library under the command) leaves no tensor behind once the engine is disposed:
 *    weights and optimizer state are freed (they once leaked, and a long session ran the wasm heap out of memory).
 *
 * The spec is a small Fashion-MNIST CNN written here (conv–BN–ReLU–pool, conv–ReLU–pool, dropout, dense), about
 * 1,000 images/s on one wasm thread, so that three epochs over the 3,000-image subset take seconds;
 * specs/fashion.cnn trains at ~80 images/s on the 2-core test machine (40 s per epoch).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkSpec } from '../../src/check.js';
import { decodeModel } from '../../src/codegen/onnx-model.js';
import type { Graph } from '../../src/ir/graph.js';
import { readCheckpoint, readSafetensors, type TrainingCheckpoint } from '../../src/runtime/checkpoint.js';
import { loadFashionMnist } from '../../src/runtime/data/dataset.js';
import { readNpyFile, writeFloat32Npy } from '../../src/runtime/data/npy.js';
import { OrtEngine } from '../../src/runtime/ort/engine.js';
import { createEngine, trainModel } from '../../src/runtime/tfjs/index.js';
import { loadWeightsFile } from '../../src/runtime/weights-file.js';
import { convspec, describeMismatch, PROJECT_ROOT, relativeError, runTfjsExport, temporaryDirectory, type Tensor } from './helpers.js';

const SPEC = `// a small Fashion-MNIST CNN for the training acceptance test
model TinyFashion {
  input image: f32[N, 1, 28, 28]
  features = image -> conv(8, 3, pad: 1, bias: false) -> bn -> relu -> maxpool(2)
    -> conv(16, 3, pad: 1) -> relu -> maxpool(2) -> dropout(0.25)
  logits = features -> flatten -> dense(10)
  output logits
  train {
    loss: cross_entropy
    optimizer: adam(lr: 2e-3)
    epochs: 3
    batch: 32
    seed: 7
  }
}
`;

const BIN = path.join(PROJECT_ROOT, 'bin', 'convspec.js');
const DIST_MAIN = path.join(PROJECT_ROOT, 'dist', 'cli', 'main.js');
const TOLERANCE = 1e-4;

const work = temporaryDirectory('training');
afterAll(() => work.remove());
const specPath = path.join(work.dir, 'tiny_fashion.cnn');
const killedDir = path.join(work.dir, 'killed');
const straightDir = path.join(work.dir, 'straight');
let graph: Graph;

interface Process {
  readonly child: ChildProcess;
  stdout: string;
  stderr: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function startCli(args: readonly string[]): Process {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FORCE_COLOR: '0' } });
  const run: Process = {
    child,
    stdout: '',
    stderr: '',
    exited: new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal }))),
  };
  child.stdout!.setEncoding('utf8').on('data', (text: string) => (run.stdout += text));
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (run.stderr += text));
  return run;
}

async function until(condition: () => boolean, what: string, timeoutMs: number, alive?: Process): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (alive && alive.child.exitCode !== null) throw new Error(`the process exited before ${what}:\n${alive.stderr}`);
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Reads back every file in an output folder the way convspec would; returns what each held. */
function readBackAll(dir: string): Map<string, 'checkpoint' | 'safetensors' | 'json'> {
  const kinds = new Map<string, 'checkpoint' | 'safetensors' | 'json'>();
  for (const name of fs.readdirSync(dir)) {
    const file = path.join(dir, name);
    if (name === 'checkpoint.safetensors') {
      readCheckpoint(file);
      kinds.set(name, 'checkpoint');
    } else if (name.endsWith('.safetensors')) {
      readSafetensors(file);
      kinds.set(name, 'safetensors');
    } else if (name.endsWith('.json')) {
      JSON.parse(fs.readFileSync(file, 'utf8'));
      kinds.set(name, 'json');
    } else throw new Error(`unexpected file in ${dir}: ${name} (${fs.statSync(file).size} bytes)`);
  }
  return kinds;
}

interface History {
  model: string;
  epochs: Array<{ epoch: number; loss: number; accuracy: number }>;
  stopReason: string;
  startEpoch: number;
  gradients: 'ort' | 'tfjs';
}

beforeAll(() => {
  if (!fs.existsSync(DIST_MAIN)) throw new Error(`${DIST_MAIN} is missing: run 'npm run build' first (npm test does)`);
  fs.writeFileSync(specPath, SPEC);
  const checked = checkSpec(specPath);
  expect(checked.ok).toBe(true);
  graph = checked.graph!;
});

describe('convspec train: SIGKILL mid-epoch, then --resume', () => {
  let killedCheckpoint: TrainingCheckpoint;
  const trainArgs = (out: string) => ['train', specPath, '--data', 'fashion-mnist-subset', '--backend', 'wasm', '-o', out];

  it('a run killed with SIGKILL in epoch 2 leaves a readable epoch-1 checkpoint and nothing half-written', async () => {
    // the uninterrupted run with the same seed, for the comparison after resuming
    const straight = startCli(trainArgs(straightDir));
    const killed = startCli(trainArgs(killedDir));
    try {
      const checkpointPath = path.join(killedDir, 'checkpoint.safetensors');
      await until(() => fs.existsSync(checkpointPath), 'the first checkpoint', 150_000, killed);
      // the checkpoint is written after epoch 1's summary line and right before epoch 2's first batch; wait a
      // quarter of epoch 1's duration (at least 0.3 s) so that epoch 2 is well under way
      const seconds = Number(/epoch 1: .*\((\d+(?:\.\d+)?) s,/.exec(killed.stderr)?.[1] ?? '1');
      await new Promise((resolve) => setTimeout(resolve, Math.max(300, Math.min(seconds * 250, 1500))));
      expect(killed.child.exitCode, 'still training').toBeNull();
      killed.child.kill('SIGKILL');
      const exit = await killed.exited;
      expect(exit.signal).toBe('SIGKILL');
    } finally {
      if (killed.child.exitCode === null) killed.child.kill('SIGKILL');
    }
    expect(killed.stderr).toMatch(/^epoch 1: loss /m);
    // on a CPU backend `--engine auto` runs forward and backward passes on ONNX Runtime
    expect(killed.stderr).toMatch(/^forward and backward: ONNX Runtime, \d+ threads?$/m);
    expect(killed.stderr, 'killed before epoch 2 ended').not.toMatch(/^epoch 2: loss /m);
    expect(killed.stderr).not.toMatch(/\n\s+at .+:\d+:\d+/);

    const files = readBackAll(killedDir);
    expect([...files]).toEqual([['checkpoint.safetensors', 'checkpoint']]);
    killedCheckpoint = readCheckpoint(path.join(killedDir, 'checkpoint.safetensors'));
    expect(killedCheckpoint.metadata.epoch).toBe(1);
    expect((killedCheckpoint.metadata.history as unknown as History['epochs']).map((e) => e.epoch)).toEqual([1]);

    const done = await straight.exited;
    expect(done.code, straight.stderr).toBe(0);
  });

  it('--resume continues after epoch 1 and ends where an uninterrupted run ends', async () => {
    expect(killedCheckpoint, 'needs the killed run').toBeDefined();
    const resumed = startCli([...trainArgs(killedDir), '--resume']);
    const exit = await resumed.exited;
    expect(exit.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(/resuming from .*checkpoint\.safetensors after epoch 1\b/);
    expect(resumed.stderr).not.toMatch(/^epoch 1: /m);
    expect(resumed.stderr).toMatch(/^epoch 2: loss /m);
    expect(resumed.stderr).toMatch(/^epoch 3: loss /m);
    expect(resumed.stdout).toMatch(/TinyFashion: test accuracy \d+\.\d\d%/);

    const files = readBackAll(killedDir);
    expect(Object.fromEntries(files)).toEqual({ 'checkpoint.safetensors': 'checkpoint', 'TinyFashion.safetensors': 'safetensors', 'history.json': 'json' });
    const history = JSON.parse(fs.readFileSync(path.join(killedDir, 'history.json'), 'utf8')) as History;
    expect(history.epochs.map((e) => e.epoch)).toEqual([1, 2, 3]);
    expect(history.startEpoch).toBe(1);
    expect(history.stopReason).toBe('completed');
    expect(history.gradients).toBe('ort');
    expect(history.epochs[0]).toEqual((killedCheckpoint.metadata.history as unknown as History['epochs'])[0]);
    expect(readCheckpoint(path.join(killedDir, 'checkpoint.safetensors')).metadata.epoch).toBe(3);

    // an interrupted and resumed run is the uninterrupted run
    const straight = JSON.parse(fs.readFileSync(path.join(straightDir, 'history.json'), 'utf8')) as History;
    expect(history.epochs.map((e) => [e.loss, e.accuracy])).toEqual(straight.epochs.map((e) => [e.loss, e.accuracy]));
    const a = readSafetensors(path.join(killedDir, 'TinyFashion.safetensors')).tensors;
    const b = readSafetensors(path.join(straightDir, 'TinyFashion.safetensors')).tensors;
    expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
    for (const [name, tensor] of a) expect(relativeError(tensor.data, b.get(name)!.data).error, name).toBe(0);
  });
});

describe('convspec train --engine', () => {
  // every op has a gradient in the ONNX Runtime step graph; a per-pixel output is what it cannot train as a classifier
  const perPixel = `model Seg {\n  input image: f32[N, 1, 28, 28]\n  logits = image -> conv(2, 3, pad: 1) -> maxpool(14) -> conv(10, 1)\n  output logits\n}\n`;

  it('ort refuses a model it cannot train, naming the output, its location and its shape, and writes nothing', async () => {
    const spec = path.join(work.dir, 'seg.cnn');
    fs.writeFileSync(spec, perPixel);
    const refused = startCli(['train', spec, '--data', 'fashion-mnist-subset', '--engine', 'ort', '--epochs', '1', '-o', path.join(work.dir, 'seg-ort')]);
    const exit = await refused.exited;
    expect(exit.code).toBe(1);
    expect(refused.stderr).toMatch(/error CNN8002: --engine ort: output 'logits' \(.*seg\.cnn:3:\d+\) must be class scores \[N, K\], not \[N, 10, 2, 2\]/);
    expect(fs.existsSync(path.join(work.dir, 'seg-ort', 'checkpoint.safetensors'))).toBe(false);
  }, 120_000);
});

describe('training in-process', () => {
  it('frees every tensor: engine weights and optimizer state (Adam moments) once disposed', async () => {
    const train = loadFashionMnist('train', { forceSubset: true });
    const small = { ...train, images: train.images.slice(0, 64 * 784), labels: train.labels.slice(0, 64), count: 64 };
    const warm = await createEngine(graph, undefined, { backend: 'wasm' });
    warm.dispose();
    const before = tf.memory().numTensors;
    const engine = await createEngine(graph, undefined, { backend: 'wasm', seed: 3 });
    const history = await trainModel(engine, small, { epochs: 1, batchSize: 32, optimizer: { kind: 'adam', learningRate: 1e-3 }, seed: 3 });
    expect(history.epochs).toHaveLength(1);
    engine.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('the trained weights: eval, run (tfjs and ORT engines), compile', () => {
  const weightsPath = () => path.join(killedDir, 'TinyFashion.safetensors');
  const checkpointPath = () => path.join(killedDir, 'checkpoint.safetensors');
  const test = loadFashionMnist('test', { forceSubset: true });
  const sample = (index: number): Float32Array => test.images.subarray(index * 784, (index + 1) * 784);

  it('eval reports accuracy on the test split', async () => {
    const run = await convspec('eval', specPath, '--weights', weightsPath(), '--data', 'fashion-mnist-subset', '--backend', 'wasm', '--json');
    expect(run.code, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout) as { model: string; samples: number; loss: number; accuracy: number };
    expect(result).toMatchObject({ model: 'TinyFashion', samples: 1000 });
    expect(result.accuracy).toBeGreaterThan(0.6); // ten classes: chance is 0.1
    expect(Number.isFinite(result.loss)).toBe(true);
    // the same on ONNX Runtime, the model exported with these weights
    const onOrt = await convspec('eval', specPath, '--weights', weightsPath(), '--data', 'fashion-mnist-subset', '--engine', 'ort', '--json');
    expect(onOrt.code, onOrt.stderr).toBe(0);
    const ort = JSON.parse(onOrt.stdout) as typeof result & { engine: string };
    expect(ort).toMatchObject({ model: 'TinyFashion', samples: 1000, engine: 'ort' });
    expect(Math.abs(ort.loss - result.loss)).toBeLessThan(1e-4);
    expect(Math.abs(ort.accuracy - result.accuracy)).toBeLessThanOrEqual(0.001);
  });

  /** `run` with both engines on one input; returns the two output arrays. */
  async function runBoth(input: string): Promise<{ tfjs: Tensor; ort: Tensor; tfjsTop: string; ortTop: string }> {
    const outputs: Record<string, Tensor> = {};
    const tops: Record<string, string> = {};
    for (const engine of ['tfjs', 'ort'] as const) {
      const out = path.join(work.dir, `${path.basename(input)}.${engine}.npy`);
      const run = await convspec('run', specPath, '--weights', weightsPath(), '--input', input, '--engine', engine, '--backend', 'wasm', '--output', out, '--top', '3');
      expect(run.code, run.stderr).toBe(0);
      const top = /^logits\[0\]: (\S+) /m.exec(run.stdout);
      expect(top, run.stdout).not.toBeNull();
      tops[engine] = top![1]!;
      const array = readNpyFile(out);
      expect(array.dtype).toBe('float32');
      outputs[engine] = { data: array.data as Float32Array, dims: array.shape };
    }
    return { tfjs: outputs['tfjs']!, ort: outputs['ort']!, tfjsTop: tops['tfjs']!, ortTop: tops['ort']! };
  }

  it('run: a .npy input gives the same top class and outputs with --engine tfjs and --engine ort', async () => {
    const input = path.join(work.dir, 'sample.npy');
    writeFloat32Npy(input, [1, 28, 28], sample(0)); // one image without the batch axis
    const { tfjs, ort, tfjsTop, ortTop } = await runBoth(input);
    expect(tfjs.dims).toEqual([1, 10]);
    expect(ort.dims).toEqual([1, 10]);
    expect(ortTop).toBe(tfjsTop);
    expect(relativeError(ort.data, tfjs.data).error, describeMismatch('run .npy: ort vs tfjs', ort.data, tfjs.data)).toBeLessThan(TOLERANCE);
    // the top class is the arg max of the written output
    expect(String(tfjs.data.indexOf(Math.max(...tfjs.data)))).toBe(tfjsTop);
  });

  it('run: a PNG input gives the same top class and outputs with --engine tfjs and --engine ort', async () => {
    const png = new PNG({ width: 28, height: 28, colorType: 0, inputColorType: 0, bitDepth: 8, inputHasAlpha: false });
    const pixels = sample(1);
    for (let i = 0; i < 784; i++) {
      const v = Math.round(pixels[i]! * 255);
      png.data[i * 4] = png.data[i * 4 + 1] = png.data[i * 4 + 2] = v;
      png.data[i * 4 + 3] = 255;
    }
    const input = path.join(work.dir, 'sample.png');
    fs.writeFileSync(input, PNG.sync.write(png, { colorType: 0 }));
    const { tfjs, ort, tfjsTop, ortTop } = await runBoth(input);
    expect(ortTop).toBe(tfjsTop);
    expect(relativeError(ort.data, tfjs.data).error, describeMismatch('run .png: ort vs tfjs', ort.data, tfjs.data)).toBeLessThan(TOLERANCE);
    // the PNG holds the same image as the data set (bytes / 255), so the .npy route agrees with it
    const npy = path.join(work.dir, 'sample1.npy');
    writeFloat32Npy(npy, [1, 1, 28, 28], pixels);
    const viaNpy = await runBoth(npy);
    expect(relativeError(viaNpy.tfjs.data, tfjs.data).error).toBeLessThan(1e-5);
  });

  it('compile --weights of the checkpoint: ONNX Runtime and tf.loadGraphModel equal the tfjs engine', async () => {
    const onnxDir = path.join(work.dir, 'onnx');
    const compiled = await convspec('compile', specPath, '--target', 'onnx', '-o', onnxDir, '--weights', checkpointPath());
    expect(compiled.code, compiled.stderr).toBe(0);
    const tfjsDir = path.join(work.dir, 'tfjs');
    const compiledTfjs = await convspec('compile', specPath, '--target', 'tfjs', '-o', tfjsDir, '--weights', checkpointPath());
    expect(compiledTfjs.code, compiledTfjs.stderr).toBe(0);

    const loaded = loadWeightsFile(checkpointPath(), graph);
    expect(loaded.weights, loaded.diagnostics.map((d) => d.message).join('\n')).toBeDefined();
    const batch = 16;
    const images = { data: test.images.slice(0, batch * 784), dims: [batch, 1, 28, 28] };
    const engine = await createEngine(graph, loaded.weights!, { backend: 'wasm' });
    let reference: Tensor;
    try {
      reference = (await engine.predict({ image: images }))['logits']!;
    } finally {
      engine.dispose();
    }

    const ort = await OrtEngine.create(path.join(onnxDir, 'TinyFashion.onnx'), { intraOpThreads: 1, logSeverity: 'error' });
    let fromOnnx: Tensor;
    try {
      fromOnnx = (await ort.run({ image: images }))['logits']!;
    } finally {
      await ort.dispose();
    }
    expect(fromOnnx.dims).toEqual([batch, 10]);
    expect(relativeError(fromOnnx.data, reference.data).error, describeMismatch('compiled ONNX vs tfjs engine', fromOnnx.data, reference.data)).toBeLessThan(TOLERANCE);
    // Intermediate shapes only on request (--value-info); the weights are the same either way.
    const shapesDir = path.join(work.dir, 'onnx-shapes');
    const declared = await convspec('compile', specPath, '--target', 'onnx', '-o', shapesDir, '--weights', checkpointPath(), '--value-info');
    expect(declared.code, declared.stderr).toBe(0);
    const plainModel = decodeModel(fs.readFileSync(path.join(onnxDir, 'TinyFashion.onnx')));
    const declaredModel = decodeModel(fs.readFileSync(path.join(shapesDir, 'TinyFashion.onnx')));
    expect(plainModel.graph.valueInfo).toEqual([]);
    expect(declaredModel.graph.valueInfo.map((v) => v.name)).toContain(graph.nodes[0]!.name);
    expect(declaredModel.graph.initializer).toEqual(plainModel.graph.initializer);

    const folder = path.join(tfjsDir, 'TinyFashion');
    const files = new Map(fs.readdirSync(folder).map((name) => [name, new Uint8Array(fs.readFileSync(path.join(folder, name)))] as const));
    const fromTfjs = (await runTfjsExport(files, graph, { image: images }))['logits']!;
    expect(fromTfjs.dims).toEqual([batch, 10]);
    expect(relativeError(fromTfjs.data, reference.data).error, describeMismatch('compiled TF.js graph model vs tfjs engine', fromTfjs.data, reference.data)).toBeLessThan(TOLERANCE);

    // the trained model classifies: most of these test images right
    const labels = test.labels.subarray(0, batch);
    let right = 0;
    for (let i = 0; i < batch; i++) {
      const row = Array.from(reference.data.subarray(i * 10, (i + 1) * 10));
      if (row.indexOf(Math.max(...row)) === labels[i]) right++;
    }
    expect(right).toBeGreaterThan(batch / 2);
  });
});

/**
 * Shared pieces of the visualisation tests: compiling specs from text, tiny synthetic tasks whose answer is known
 * (a bump at a known place in a 1D signal, a blob in a 3D volume), quick training, and running the CLI in-process.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'vitest';
import { main } from '../../src/cli/main.js';
import { specGraph } from '../../src/testing.js';
import type { Graph } from '../../src/ir/graph.js';
import type { WeightTensor } from '../../src/ir/weights.js';
import { createMulberry32, normalSample } from '../../src/random.js';
import type { Dataset } from '../../src/runtime/data/dataset.js';
import { TfjsEngine } from '../../src/runtime/tfjs/engine.js';
import { trainModel } from '../../src/runtime/tfjs/train.js';
import type { Sample } from '../../src/runtime/viz/render.js';

export function compile(text: string, file = 't.cnn'): Graph {
  return specGraph(text, { file });
}

export function temporaryDirectory(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export async function runCli(...args: string[]): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  const line = (text: string) => (text.endsWith('\n') ? text : `${text}\n`);
  const code = await main(['node', 'convspec', ...args], { out: (text) => out.push(line(text)), err: (text) => err.push(line(text)) });
  return { code, stdout: out.join(''), stderr: err.join('') };
}

/** A user error: exit 1, a coded diagnostic, no stack trace, no "internal error". */
export function expectCleanFailure(result: Run, pattern: RegExp): void {
  const all = `${result.stdout}\n${result.stderr}`;
  expect(result.code, all).toBe(1);
  expect(result.stderr).toMatch(/error CNN\d{4}: /);
  expect(result.stderr).toMatch(pattern);
  expect(all).not.toMatch(/internal error/);
  expect(all).not.toMatch(/\n\s+at .+:\d+:\d+/);
}

/**
 * Class 1: a positive Gaussian bump (σ = 1.5 samples) at a random place in [margin, n − margin) of every spatial
 * axis, on noise; class 0: noise only. The bump centres are the ground truth of where the evidence is.
 */
export function bumpTask(spatial: readonly number[], count: number, seed: number): { dataset: Dataset; samples: Sample[]; centres: (number[] | undefined)[] } {
  const random = createMulberry32(seed);
  const size = spatial.reduce((a, b) => a * b, 1);
  const images = new Float32Array(count * size);
  const labels = new Int32Array(count);
  const samples: Sample[] = [];
  const centres: (number[] | undefined)[] = [];
  const margin = 3;
  for (let n = 0; n < count; n++) {
    const label = n % 2;
    labels[n] = label;
    const centre = label === 1 ? spatial.map((s) => margin + Math.floor(random() * (s - 2 * margin))) : undefined;
    centres.push(centre);
    const data = new Float32Array(size);
    for (let p = 0; p < size; p++) {
      let rest = p;
      let distance2 = 0;
      for (let axis = spatial.length - 1; axis >= 0; axis--) {
        const position = rest % spatial[axis]!;
        rest = Math.floor(rest / spatial[axis]!);
        if (centre) distance2 += (position - centre[axis]!) ** 2;
      }
      data[p] = 0.3 + 0.08 * normalSample(random) + (centre ? 0.6 * Math.exp(-distance2 / (2 * 1.5 * 1.5)) : 0);
    }
    images.set(data, n * size);
    samples.push({ data, dims: [1, ...spatial] });
  }
  // Datasets are [C, H, W]; training only needs the value count per sample to match the input.
  const shape: [number, number, number] = [1, spatial.length === 3 ? spatial[0]! : 1, spatial.slice(spatial.length === 3 ? 1 : 0).reduce((a, b) => a * b, 1)];
  return { dataset: { images, labels, shape, count }, samples, centres };
}

export async function trainEngine(graph: Graph, dataset: Dataset, options: { epochs: number; batchSize?: number; learningRate?: number; seed?: number }): Promise<{ engine: TfjsEngine; weights: Map<string, WeightTensor> }> {
  const engine = await TfjsEngine.create(graph, undefined, { backend: 'wasm', seed: options.seed ?? 1 });
  await trainModel(engine, dataset, { epochs: options.epochs, batchSize: options.batchSize ?? 32, optimizer: { kind: 'adam', learningRate: options.learningRate ?? 3e-3 }, seed: options.seed ?? 1 });
  return { engine, weights: engine.getWeightsSync() };
}

/** Index of the largest value. */
export function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

/** Position per axis of flat index p over `spatial`. */
export function unravel(p: number, spatial: readonly number[]): number[] {
  const position: number[] = new Array(spatial.length).fill(0);
  let rest = p;
  for (let axis = spatial.length - 1; axis >= 0; axis--) {
    position[axis] = rest % spatial[axis]!;
    rest = Math.floor(rest / spatial[axis]!);
  }
  return position;
}

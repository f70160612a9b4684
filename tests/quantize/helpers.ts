/**
 * Shared pieces of the quantization and pruning tests: compiling a spec from text, synthetic data sets, and the
 * `convspec` command run in-process with its output captured.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { main } from '../../src/cli/main.js';
import type { Output } from '../../src/cli/output.js';
import { specGraph } from '../../src/testing.js';
import type { Graph } from '../../src/ir/graph.js';
import type { Weights } from '../../src/ir/weights.js';
import '../../src/passes/index.js';
import { resolvePassList, runPasses } from '../../src/passes/manager.js';
import { createMulberry32, normalSample } from '../../src/random.js';
import type { Dataset } from '../../src/runtime/data/dataset.js';

export function compile(text: string, file = 'spec.cnn'): Graph {
  return specGraph(text, { file });
}

/** The inference passes `convspec compile` and `convspec quantize` run. */
export function inferenceGraph(graph: Graph, weights: Weights): { graph: Graph; weights: Weights } {
  const run = runPasses(graph, weights, resolvePassList('eliminate-dropout,eliminate-dead,fold-pad,fold-bn').passes, { verify: true });
  return { graph: run.graph, weights: run.weights ?? weights };
}

/** Normal random images of a shape, labels 0..classes−1. */
export function randomDataset(count: number, shape: [number, number, number], seed: number, classes = 3): Dataset {
  const random = createMulberry32(seed);
  const size = shape[0] * shape[1] * shape[2];
  return {
    images: Float32Array.from({ length: count * size }, () => normalSample(random)),
    labels: Int32Array.from({ length: count }, (_, i) => i % classes),
    shape,
    count,
    source: 'random',
  };
}

export function temporaryDirectory(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `convspec-${prefix}-`));
}

/** Runs `convspec …args` in-process; returns the exit code and what it printed. */
export async function runCli(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const output: Output = { out: (t) => (stdout += t.endsWith('\n') ? t : `${t}\n`), err: (t) => (stderr += t.endsWith('\n') ? t : `${t}\n`) };
  const code = await main(['node', 'convspec', ...args], output);
  return { code, stdout, stderr };
}

/** A small Fashion-MNIST model with a residual add, pooling and a dense head (CLI tests). */
export const TINY_SPEC = `model Tiny {
  input image: f32[N, 1, 28, 28]
  stem = image -> conv(8, 3, stride: 2, pad: 1, bias: false) -> bn -> relu
  b = stem -> conv(8, 3, pad: 1, bias: false) -> bn
  s = relu(b + stem)
  logits = s -> maxpool(2) -> conv(16, 3, pad: 1) -> relu -> globalavgpool -> flatten -> dense(10)
  output logits
  train {
    data: "fashion-mnist-subset"
    loss: cross_entropy
    optimizer: adam(lr: 3e-3)
    epochs: 1
    batch: 32
    seed: 1
  }
}
`;

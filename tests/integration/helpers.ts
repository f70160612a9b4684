/**
 * Shared pieces of the integration (acceptance) tests: the example specs with the sizes they run at, the
 * compile pipeline as `convspec compile` runs it, comparison of outputs, and the command run in-process.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { checkSpec, type CheckResult } from '../../src/check.js';
import { main } from '../../src/cli/main.js';
import { DEFAULT_INFERENCE_PASSES } from '../../src/cli/commands/compile.js';
import { tfjsModelArtifacts } from '../../src/codegen/tfjs.js';
import type { ElaborateOptions } from '../../src/elaborate/elaborate.js';
import { evaluateDim } from '../../src/ir/dims.js';
import type { Graph, Shape } from '../../src/ir/graph.js';
import type { Weights } from '../../src/ir/weights.js';
import { resolvePassList, runPasses } from '../../src/passes/manager.js';
import '../../src/passes/index.js';
import { createMulberry32, normalSample } from '../../src/random.js';
import { renderAll } from '../../src/testing.js';

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const SPECS_DIR = path.join(PROJECT_ROOT, 'specs');

export interface SpecCase {
  /** Path relative to specs/. */
  readonly file: string;
  /** `--input-shape` overrides; empty when the spec runs at its declared size. */
  readonly inputShapes: Readonly<Record<string, ReadonlyArray<number | string>>>;
  /** Values of the symbolic dimensions when running (N, and L for the text CNN). */
  readonly sizes: Readonly<Record<string, number>>;
  /** Why the size was changed, when it was. */
  readonly note?: string;
  /**
   * A textual change of the spec for the default run (the unmodified spec runs when CONVSPEC_FULL_SPECS=1):
   * every occurrence of `from` becomes `to`.
   */
  readonly narrow?: { readonly from: string; readonly to: string };
}

/** Run the unmodified specs at full size (slow: minutes on a 2-core machine). */
export const FULL_SPECS = process.env['CONVSPEC_FULL_SPECS'] === '1';

/**
 * Every example spec. Specs whose full size would take many seconds per engine on the 2-core machine (single-
 * threaded wasm, tens of millions of weights drawn one by one) run at a reduced spatial size via `inputShapes`,
 * the library form of `--input-shape`; their shape/params asserts then fail by design, and only CNN5001
 * (assertion failed) is tolerated for them. Everything else runs at the size the spec declares.
 */
export const SPEC_CASES: readonly SpecCase[] = [
  { file: 'fashion.cnn', inputShapes: {}, sizes: { N: 2 } },
  { file: 'fashion_resnet.cnn', inputShapes: {}, sizes: { N: 2 } },
  { file: 'textcnn.cnn', inputShapes: {}, sizes: { N: 2, L: 23 } },
  { file: 'mobilenet_v1.cnn', inputShapes: {}, sizes: { N: 1 } },
  { file: 'mobilenet_v2.cnn', inputShapes: {}, sizes: { N: 1 } },
  { file: 'resnet18.cnn', inputShapes: {}, sizes: { N: 1 } },
  { file: 'xception_entry.cnn', inputShapes: { image: ['N', 3, 75, 75] }, sizes: { N: 1 }, note: '75×75 instead of 299×299' },
  { file: 'alexnet.cnn', inputShapes: { image: ['N', 3, 67, 67] }, sizes: { N: 1 }, note: '67×67 instead of 227×227 (1×1 features: a 256→4096 first dense layer instead of 9216→4096)' },
  { file: 'vgg16.cnn', inputShapes: { image: ['N', 3, 32, 32] }, sizes: { N: 1 }, note: '32×32 instead of 224×224 (1×1 features)' },
  { file: 'resnet50.cnn', inputShapes: { image: ['N', 3, 64, 64] }, sizes: { N: 1 }, note: '64×64 instead of 224×224' },
  { file: 'resnext_stage.cnn', inputShapes: { image: ['N', 3, 64, 64] }, sizes: { N: 1 }, note: '64×64 instead of 224×224' },
  { file: 'c3d.cnn', inputShapes: { clip: ['N', 3, 8, 32, 32] }, sizes: { N: 1 }, note: '8 frames of 32×32 instead of 16 of 112×112' },
  { file: 'deeplab_aspp.cnn', inputShapes: { image: ['N', 3, 64, 64] }, sizes: { N: 1 }, note: '64×64 instead of 512×512' },
  { file: 'slim/resnet_v1_50.cnn', inputShapes: { images: ['N', 3, 64, 64] }, sizes: { N: 1 }, note: '64×64 instead of 224×224' },
  // fc6 is a VALID conv as large as pool5, so these two cannot shrink below 224×224; instead fc6 and fc7 are
  // narrowed from 4096 to 256 filters (all of the layers, kernels, paddings and sizes stay): at full width their
  // 46M / 120M weights dominate every step (drawing, permuting, a 553 MB ONNX file for the checker).
  { file: 'slim/alexnet_v2.cnn', inputShapes: {}, sizes: { N: 1 }, narrow: { from: 'conv(4096,', to: 'conv(256,' }, note: 'fc6/fc7 with 256 instead of 4096 filters' },
  { file: 'slim/vgg_16.cnn', inputShapes: {}, sizes: { N: 1 }, narrow: { from: 'conv(4096,', to: 'conv(256,' }, note: 'fc6/fc7 with 256 instead of 4096 filters' },
];

/** The cases as this run uses them: unmodified at the declared size when CONVSPEC_FULL_SPECS=1. */
export function specCases(): SpecCase[] {
  return SPEC_CASES.map((spec) => (FULL_SPECS ? { file: spec.file, inputShapes: {}, sizes: { ...spec.sizes, N: 1 } } : spec));
}

/** Every `.cnn` file under specs/ and specs/slim/ (not the block library), relative to specs/. */
export function listSpecFiles(): string[] {
  const top = fs.readdirSync(SPECS_DIR).filter((f) => f.endsWith('.cnn'));
  const slim = fs.readdirSync(path.join(SPECS_DIR, 'slim')).filter((f) => f.endsWith('.cnn')).map((f) => `slim/${f}`);
  return [...top, ...slim].sort();
}

/** checkSpec with the case's sizes; fails on any error except failed asserts of a resized spec. */
export function checkCase(spec: SpecCase, extra: ElaborateOptions = {}): CheckResult & { graph: Graph } {
  const file = path.join(SPECS_DIR, spec.file);
  let text: string | undefined;
  if (spec.narrow) {
    const original = fs.readFileSync(file, 'utf8');
    text = original.split(spec.narrow.from).join(spec.narrow.to);
    if (text === original) throw new Error(`${spec.file}: '${spec.narrow.from}' does not occur`);
  }
  const checked = checkSpec(file, { ...extra, ...(text !== undefined ? { text } : {}), inputShapes: { ...spec.inputShapes, ...extra.inputShapes } });
  const resized = Object.keys(spec.inputShapes).length > 0;
  const errors = checked.diagnostics.filter((d) => d.severity === 'error' && !(resized && d.code === 'CNN5001'));
  if (!checked.graph || errors.length > 0) throw new Error(`${spec.file} does not check:\n${renderAll(checked)}`);
  return checked as CheckResult & { graph: Graph };
}

/** What `convspec compile` runs before emitting: the default inference passes (dropout, dead code, pads, BN). */
export function compilePasses(graph: Graph, weights: Weights): { graph: Graph; weights: Weights } {
  const { passes, diagnostics } = resolvePassList(DEFAULT_INFERENCE_PASSES);
  if (diagnostics.length > 0) throw new Error(diagnostics.map((d) => d.message).join('\n'));
  const result = runPasses(graph, weights, passes, { verify: true });
  const errors = result.diagnostics.filter((d) => d.severity === 'error');
  if (errors.length > 0) throw new Error(errors.map((d) => d.message).join('\n'));
  return { graph: result.graph, weights: result.weights ?? weights };
}

/** A concrete shape: symbols bound from `sizes`. */
export function concreteShape(shape: Shape, sizes: Readonly<Record<string, number>>): number[] {
  const bindings = new Map(Object.entries(sizes));
  return shape.map((d) => {
    const value = evaluateDim(d, bindings);
    if (typeof value !== 'number') throw new Error(`no size for dimension ${JSON.stringify(d)}`);
    return value;
  });
}

/** The IR shape of a graph output. */
export function outputShape(graph: Graph, outputName: string): Shape {
  const output = graph.outputs.find((o) => o.name === outputName)!;
  const input = graph.inputs.find((i) => i.name === output.value);
  if (input) return input.shape;
  return graph.nodes.find((n) => n.name === output.value)!.shape;
}

export interface Tensor {
  readonly data: Float32Array;
  readonly dims: readonly number[];
}

/** Standard normal values, seeded. */
export function normalTensor(dims: readonly number[], seed: number): Tensor {
  const random = createMulberry32(seed);
  const size = dims.reduce((a, b) => a * b, 1);
  return { data: Float32Array.from({ length: size }, () => normalSample(random)), dims };
}

/** Random inputs for every graph input (normal, seeded), with symbols bound from `sizes`. */
export function randomInputs(graph: Graph, sizes: Readonly<Record<string, number>>, seed: number): Record<string, Tensor> {
  const feeds: Record<string, Tensor> = {};
  graph.inputs.forEach((input, i) => (feeds[input.name] = normalTensor(concreteShape(input.shape, sizes), seed + i)));
  return feeds;
}

/** max |a − b| / max |b|: the error relative to the reference's largest magnitude. */
export function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): { error: number; scale: number; worstIndex: number } {
  if (actual.length !== expected.length) throw new Error(`lengths differ: ${actual.length} vs ${expected.length}`);
  let scale = 0;
  let worst = 0;
  let worstIndex = -1;
  for (let i = 0; i < expected.length; i++) {
    scale = Math.max(scale, Math.abs(expected[i]!));
    const difference = Math.abs(actual[i]! - expected[i]!);
    if (!(difference <= worst)) {
      worst = difference;
      worstIndex = i;
    }
  }
  return { error: worst / Math.max(scale, 1e-12), scale, worstIndex };
}

/** Describes a mismatch with the numbers a report needs. */
export function describeMismatch(label: string, actual: ArrayLike<number>, expected: ArrayLike<number>): string {
  const { error, scale, worstIndex } = relativeError(actual, expected);
  return `${label}: relative error ${error.toExponential(3)} (max |ref| ${scale.toPrecision(4)}; at index ${worstIndex}: ${actual[worstIndex]} vs ${expected[worstIndex]})`;
}

/**
 * Runs a TF.js graph-model export (files from `emitTfjs`) through `tf.loadGraphModel` on logical (NCHW) inputs,
 * converting with the layout the export states (inputs/outputs of rank ≥ 3 are channels-last by default).
 */
export async function runTfjsExport(files: ReadonlyMap<string, Uint8Array>, graph: Graph, feeds: Readonly<Record<string, Tensor>>): Promise<Record<string, Tensor>> {
  const model = await tf.loadGraphModel(tf.io.fromMemory(tfjsModelArtifacts(files) as unknown as tf.io.ModelArtifacts));
  const json = JSON.parse(new TextDecoder().decode(files.get('model.json')!)) as {
    userDefinedMetadata: { convspec: { layout: { inputs: Record<string, { perm?: number[] }>; outputs: Record<string, { perm?: number[] }> } } };
  };
  const layout = json.userDefinedMetadata.convspec.layout;
  const tensors: tf.Tensor[] = [];
  try {
    const inputs: Record<string, tf.Tensor> = {};
    for (const input of graph.inputs) {
      const value = feeds[input.name]!;
      const logical = tf.tensor(value.data, [...value.dims]);
      tensors.push(logical);
      const perm = layout.inputs[input.name]?.perm;
      inputs[input.name] = perm ? tf.transpose(logical, perm) : logical;
      tensors.push(inputs[input.name]!);
    }
    const names = graph.outputs.map((o) => o.name);
    const executed = model.execute(inputs, names);
    const list = Array.isArray(executed) ? executed : [executed];
    tensors.push(...list);
    const result: Record<string, Tensor> = {};
    names.forEach((name, i) => {
      const perm = layout.outputs[name]?.perm;
      const inverse = perm ? perm.map((_, axis) => perm.indexOf(axis)) : undefined;
      const logical = inverse ? tf.transpose(list[i]!, inverse) : list[i]!;
      if (logical !== list[i]) tensors.push(logical);
      result[name] = { data: Float32Array.from(logical.dataSync() as Float32Array), dims: [...logical.shape] };
    });
    return result;
  } finally {
    tf.dispose(tensors);
    model.dispose();
  }
}

export interface CommandRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `convspec ARGS…` in this process (the same `main` bin/convspec.js calls), capturing its output. */
export async function convspec(...args: string[]): Promise<CommandRun> {
  const out: string[] = [];
  const err: string[] = [];
  const line = (text: string) => (text.endsWith('\n') ? text : `${text}\n`);
  const code = await main(['node', 'convspec', ...args], { out: (text) => out.push(line(text)), err: (text) => err.push(line(text)) });
  return { code, stdout: out.join(''), stderr: err.join('') };
}

/** A fresh temporary folder, removed by the returned function. */
export function temporaryDirectory(prefix: string): { dir: string; remove: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `convspec-${prefix}-`));
  return { dir, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/**
 * What every visualisation needs from a network: any layer's output for an input, the class scores, and
 * differentiable functions between them.
 *
 * `runGraph` runs the tfjs engine's op lowerings (../tfjs/ops.ts) on the engine's own variables, in inference
 * mode, computing only the ancestors of the requested tensors. Two hooks make gradients with respect to
 * intermediate tensors possible without a second model:
 *   - `targets`: tensors to return (any node or graph input, channels-last as inside the engine);
 *   - `replace`: tensors to use instead of computing a node. Grad-CAM differentiates the class score with respect
 *     to a feature map A by calling f(A) = runGraph(x, { replace: { layer: A } }) under `tf.grads`: everything
 *     upstream of the layer is a constant of f, and every other path (a residual branch that skips the layer) is
 *     computed from x as usual, so ∂score/∂A is exact in graphs with branches.
 *
 * Layer names (`--layer`) resolve as: a node's full name (`stage2.conv_bn_relu2.relu1`); a graph output's name
 * (`logits`); a named value or block scope (`stage1` → the last node whose name starts with `stage1.`, which is
 * the value the spec bound to that name).
 */
import * as tf from '@tensorflow/tfjs';
import { didYouMean } from '../../diagnostics.js';
import { dimToString } from '../../ir/dims.js';
import { consumers, type Graph, type GraphInput, type Node } from '../../ir/graph.js';
import { toInternal, toLogical, type TfjsEngine } from '../tfjs/engine.js';
import { lowerNode } from '../tfjs/ops.js';
import type { Sample } from './render.js';

/** A visualisation that cannot run as asked (wrong layer, a technique that does not apply to this model…). */
export class VizError extends Error {
  override readonly name = 'VizError';
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

/** The model's single input (visualisations explain one input). */
export function modelInput(graph: Graph): GraphInput {
  if (graph.inputs.length !== 1) throw new VizError(`${graph.name} has ${graph.inputs.length} inputs; visualisations work on models with one input`);
  const input = graph.inputs[0]!;
  if (input.shape.length < 3 || input.shape.length > 5) throw new VizError(`input '${input.name}' has rank ${input.shape.length}; visualisations need [N, C, L], [N, C, H, W] or [N, C, D, H, W]`);
  return input;
}

/** 1, 2 or 3. */
export function spatialRankOf(graph: Graph): number {
  return modelInput(graph).shape.length - 2;
}

export function resolveLayer(graph: Graph, name: string): Node {
  const exact = graph.nodes.find((n) => n.name === name);
  if (exact) return exact;
  const output = graph.outputs.find((o) => o.name === name);
  if (output) {
    const node = graph.nodes.find((n) => n.name === output.value);
    if (node) return node;
  }
  const scoped = graph.nodes.filter((n) => n.name.startsWith(`${name}.`));
  if (scoped.length > 0) return scoped[scoped.length - 1]!;
  const candidates = [...graph.nodes.map((n) => n.name), ...graph.outputs.map((o) => o.name), ...new Set(graph.nodes.map((n) => n.name.split('.')[0]!))];
  throw new VizError(`${graph.name} has no layer '${name}'`, didYouMean(name, candidates) ?? `layers: ${graph.nodes.map((n) => n.name).slice(0, 12).join(', ')}${graph.nodes.length > 12 ? ', …' : ''}`);
}

function spatialSize(shape: readonly unknown[]): number | undefined {
  if (shape.length < 3) return 1;
  let size = 1;
  for (const d of shape.slice(2)) {
    if (typeof d !== 'number') return undefined;
    size *= d;
  }
  return size;
}

const PASS_THROUGH = new Set(['dropout', 'maxpool', 'avgpool', 'pad']);

/**
 * The feature maps that feed the classifier: for every node that collapses space (global pooling, flatten,
 * dense or reshape reading a map with more than one position), the map it reads, followed back through pooling,
 * dropout and padding to the activation (or conv) that made it. TextCNN's three windows give three layers.
 */
export function classifierFeatureLayers(graph: Graph): Node[] {
  const rank = modelInput(graph).shape.length;
  const nodes = new Map(graph.nodes.map((n) => [n.name, n]));
  const found: Node[] = [];
  for (const node of graph.nodes) {
    const collapses = node.shape.length < rank || spatialSize(node.shape) === 1;
    if (!collapses) continue;
    for (const input of node.inputs) {
      let source = nodes.get(input);
      if (!source || source.shape.length !== rank) continue;
      const size = spatialSize(source.shape);
      if (size === 1) continue;
      while (PASS_THROUGH.has(source.op) && source.inputs.length === 1) {
        const previous = nodes.get(source.inputs[0]!);
        if (!previous || previous.shape.length !== rank) break;
        source = previous;
      }
      if (!found.includes(source)) found.push(source);
    }
  }
  return found;
}

/**
 * Whether a feature map reaches the classifier through a flatten or reshape (after element-wise ops and local
 * pools), so that the head weighs every position separately, rather than through global pooling. Grad-CAM's
 * per-channel average of the gradient then discards those position-specific weights (HiResCAM keeps them).
 */
export function feedsPositionSpecificHead(graph: Graph, layer: string): boolean {
  const readers = consumers(graph);
  const seen = new Set<string>();
  const pending = [layer];
  while (pending.length > 0) {
    const name = pending.pop()!;
    if (seen.has(name)) continue;
    seen.add(name);
    for (const reader of readers.get(name) ?? []) {
      if (reader.op === 'flatten' || reader.op === 'reshape') return true;
      if (PASS_THROUGH.has(reader.op) || reader.op === 'activation' || reader.op === 'batchnorm') pending.push(reader.name);
    }
  }
  return false;
}

/** The class-score node: the first output, or the input of a final softmax (Grad-CAM wants pre-softmax scores). */
export function scoreNode(graph: Graph): { node: Node; note?: string } {
  const output = graph.outputs[0];
  const node = output ? graph.nodes.find((n) => n.name === output.value) : undefined;
  if (!node) throw new VizError(`${graph.name} has no output computed by a layer`);
  if (node.op === 'activation' && node.fn.kind === 'softmax') {
    const before = graph.nodes.find((n) => n.name === node.inputs[0]);
    if (before) return { node: before, note: `class scores are taken before the softmax (${before.name})` };
  }
  const size = spatialSize(node.shape);
  if (node.shape.length < 2 || size !== 1) throw new VizError(`output '${output!.name}' of shape [${node.shape.map(dimToString).join(', ')}] is not one score per class`, 'class-based visualisations need an output [N, K]');
  return { node };
}

export function classCount(node: Node): number {
  const k = node.shape[1];
  if (typeof k !== 'number') throw new VizError(`the number of classes of ${node.name} is symbolic`);
  return k;
}

export interface RunGraphOptions {
  /** Tensors to return (node or input names). */
  readonly targets: readonly string[];
  /** Values used instead of computing these nodes (channels-last). */
  readonly replace?: ReadonlyMap<string, tf.Tensor>;
}

/**
 * Runs the part of the graph the targets need, in inference mode, on channels-last feeds. Returns the targets
 * channels-last; the caller disposes (run it inside `tf.tidy`).
 */
export function runGraph(engine: TfjsEngine, feeds: ReadonlyMap<string, tf.Tensor>, options: RunGraphOptions): Map<string, tf.Tensor> {
  engine.activate();
  const graph = engine.graph;
  const replace = options.replace ?? new Map<string, tf.Tensor>();
  const nodes = new Map(graph.nodes.map((n) => [n.name, n]));
  const needed = new Set<string>();
  const stack = [...options.targets];
  while (stack.length > 0) {
    const name = stack.pop()!;
    if (needed.has(name)) continue;
    needed.add(name);
    if (replace.has(name)) continue;
    const node = nodes.get(name);
    if (node) stack.push(...node.inputs);
    else if (!feeds.has(name)) throw new VizError(`${graph.name} has no tensor '${name}'`);
  }
  const bindings = engine.bindSymbols(feeds);
  const context = engine.loweringContext(bindings);
  const values = new Map<string, tf.Tensor>(feeds);
  for (const [name, tensor] of replace) values.set(name, tensor);
  for (const node of graph.nodes) {
    if (!needed.has(node.name) || values.has(node.name)) continue;
    values.set(node.name, lowerNode(node, node.inputs.map((i) => values.get(i)!), context));
  }
  const result = new Map<string, tf.Tensor>();
  for (const target of options.targets) result.set(target, values.get(target)!);
  return result;
}

/** A logical-layout sample [C, …] as the engine's channels-last batch of one. */
export function sampleToInternal(sample: Sample): tf.Tensor {
  return toInternal(tf.tensor(sample.data, [1, ...sample.dims], 'float32'));
}

/** A channels-last batch-of-one tensor back to a logical sample (asynchronous read: every backend). */
export async function internalToSample(tensor: tf.Tensor): Promise<Sample> {
  const logical = toLogical(tensor);
  const data = Float32Array.from((await logical.data()) as Float32Array);
  const dims = logical.shape.slice(1);
  if (logical !== tensor) logical.dispose();
  return { data, dims };
}

/** The engine's feeds for one sample of the model's input. */
export function feedsOf(engine: TfjsEngine, x: tf.Tensor): Map<string, tf.Tensor> {
  return new Map([[modelInput(engine.graph).name, x]]);
}

let variableCount = 0;

/** A unique name for a tfjs variable that a visualisation optimises (names are global in tfjs). */
export function variableName(kind: string): string {
  return `convspec-viz/${kind}/${++variableCount}`;
}

/** The scalar a visualisation reads back (asynchronous read). */
export async function readScalar(tensor: tf.Tensor): Promise<number> {
  const value = (await tensor.data())[0]!;
  tensor.dispose();
  return value;
}

/** Checks a sample against the model input (rank, fixed sizes); returns the concrete sample dims. */
export function checkSample(graph: Graph, sample: Sample): void {
  const input = modelInput(graph);
  const expected = input.shape.slice(1);
  const fits = sample.dims.length === expected.length && expected.every((d, i) => typeof d !== 'number' || d === sample.dims[i]);
  if (!fits) throw new VizError(`the input sample is [${sample.dims.join(', ')}] but '${input.name}' takes [${expected.map(dimToString).join(', ')}] per sample`);
}

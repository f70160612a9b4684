/**
 * Cost of every layer: parameters, multiply-accumulates, floating-point operations and activation memory,
 * for a batch of one (the batch axis counts as 1 whatever its name).
 *
 * - params: learnable tensors only (conv/dense weights and biases, BN γ and β), as PyTorch's
 *   `sum(p.numel() for p in model.parameters())` counts; `trainable` excludes frozen layers.
 * - MACs: conv = output elements × (C_in / groups) × ∏k; transposed conv = input elements × (C_out / groups) × ∏k;
 *   dense = in × out; every other op 0.
 * - FLOPs: 2 × MACs for conv and dense (biases not counted, as fvcore/ptflops do); element-wise work for the
 *   rest, per output element: batch norm 2 (scale and shift), add/mul 1 per extra input, activations 1
 *   (sigmoid, tanh, swish, gelu, softmax, elu, hard ones: 4), pooling ∏k, global pooling one per input element,
 *   linear upsampling 4; layout ops (flatten, reshape, concat, pad, nearest upsampling) and dropout 0.
 * - memory: output elements × 4 bytes.
 * A cost over a symbolic spatial size stays symbolic (a `Dim`).
 */
import { add, dimToJson, mul, scale, type Dim } from '../ir/dims.js';
import type { Graph, Node, Shape } from '../ir/graph.js';
import { parametersOf, parameterSize } from '../ir/params.js';

export interface LayerCost {
  readonly params: number;
  readonly trainable: number;
  readonly macs: Dim;
  readonly flops: Dim;
  readonly memoryBytes: Dim;
}

export interface CostResult {
  readonly layers: ReadonlyMap<string, LayerCost>;
  readonly totals: LayerCost;
}

/** Elements of a shape with the batch axis counted as 1. */
function elements(shape: Shape): Dim {
  let count: Dim = 1;
  shape.forEach((d, i) => {
    if (i > 0) count = mul(count, d);
  });
  return count;
}

const EXPENSIVE_ACTIVATIONS = new Set(['sigmoid', 'tanh', 'swish', 'gelu', 'softmax', 'elu', 'hard_sigmoid', 'hard_swish']);

export function layerCost(node: Node, inputShapes: readonly Shape[]): LayerCost {
  const params = parametersOf(node).filter((p) => p.learnable).reduce((sum, p) => sum + parameterSize(p), 0);
  const out = elements(node.shape);
  let macs: Dim = 0;
  let flops: Dim = 0;
  switch (node.op) {
    case 'conv':
      macs = scale(out, (node.inChannels / node.groups) * node.kernel.reduce((a, b) => a * b, 1));
      flops = scale(macs, 2);
      break;
    case 'conv_transpose':
      macs = scale(elements(inputShapes[0]!), (node.filters / node.groups) * node.kernel.reduce((a, b) => a * b, 1));
      flops = scale(macs, 2);
      break;
    case 'dense':
      macs = node.inFeatures * node.units;
      flops = scale(macs, 2);
      break;
    case 'batchnorm':
      flops = scale(out, 2);
      break;
    case 'activation':
      flops = scale(out, EXPENSIVE_ACTIVATIONS.has(node.fn.kind) ? 4 : 1);
      break;
    case 'add':
    case 'mul':
      flops = scale(out, node.inputs.length - 1);
      break;
    case 'maxpool':
    case 'avgpool':
      flops = scale(out, node.kernel.reduce((a, b) => a * b, 1));
      break;
    case 'global_avgpool':
    case 'global_maxpool':
      flops = elements(inputShapes[0]!);
      break;
    case 'upsample':
      flops = node.mode === 'linear' ? scale(out, 4) : 0;
      break;
    case 'dropout':
    case 'flatten':
    case 'reshape':
    case 'concat':
    case 'pad':
      break;
  }
  return { params, trainable: node.frozen ? 0 : params, macs, flops, memoryBytes: scale(out, 4) };
}

export function computeCost(graph: Graph): CostResult {
  const shapes = new Map<string, Shape>();
  for (const input of graph.inputs) shapes.set(input.name, input.shape);
  const layers = new Map<string, LayerCost>();
  let totals: LayerCost = { params: 0, trainable: 0, macs: 0, flops: 0, memoryBytes: 0 };
  for (const node of graph.nodes) {
    const cost = layerCost(node, node.inputs.map((i) => shapes.get(i)!));
    shapes.set(node.name, node.shape);
    layers.set(node.name, cost);
    totals = {
      params: totals.params + cost.params,
      trainable: totals.trainable + cost.trainable,
      macs: add(totals.macs, cost.macs),
      flops: add(totals.flops, cost.flops),
      memoryBytes: add(totals.memoryBytes, cost.memoryBytes),
    };
  }
  return { layers, totals };
}

/** Sum of costs over the nodes a predicate selects. */
export function sumCost(graph: Graph, cost: CostResult, select: (node: Node) => boolean): LayerCost | undefined {
  let total: LayerCost | undefined;
  for (const node of graph.nodes) {
    if (!select(node)) continue;
    const c = cost.layers.get(node.name)!;
    total = total
      ? { params: total.params + c.params, trainable: total.trainable + c.trainable, macs: add(total.macs, c.macs), flops: add(total.flops, c.flops), memoryBytes: add(total.memoryBytes, c.memoryBytes) }
      : c;
  }
  return total;
}

export { dimToJson };

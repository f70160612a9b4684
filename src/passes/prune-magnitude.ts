/**
 * prune-magnitude: unstructured magnitude pruning — zeroes the smallest-|w| fraction of conv, transposed conv and
 * dense weights (biases and batch norms are left alone, as TF-MOT and torch.nn.utils.prune do by default).
 *
 * Options:
 *   - `sparsity` ∈ [0, 1] (default 0.5): the fraction of weights to be zero afterwards; the count is
 *     n − round(n·(1 − sparsity)), TF-MOT's rule (it keeps round(n·(1 − s)) weights);
 *   - `scope`: `'layer'` (default) prunes each weight tensor to the sparsity on its own; `'global'` ranks all of
 *     them together with one threshold, so layers with many small weights lose more;
 *   - `exclude`: node names or glob patterns (`stem.*`) to leave dense.
 * Ties at the threshold are broken by position (first in node order, then in the tensor), so the result is
 * deterministic. Weights that are already zero count towards the sparsity.
 *
 * The graph is unchanged (the same object): the mask lives in the weights as zeros. The report gives the achieved
 * sparsity of each layer. Outputs change by design (tolerance ∞); sparsity 0 returns the same weights object.
 */
import { isWeighted, type Graph } from '../ir/graph.js';
import type { WeightTensor } from '../ir/weights.js';
import { excludedBy, numberOption } from './graph-editor.js';
import type { Pass, PassContext, PassResult } from './manager.js';

interface Target {
  readonly node: string;
  readonly param: string;
  readonly tensor: WeightTensor;
}

/** Masks (1 = prune) of the `count` smallest |w| over the targets taken together, ties by position. */
function smallest(targets: readonly Target[], count: number): Uint8Array[] {
  const selected = targets.map((t) => new Uint8Array(t.tensor.data.length));
  if (count <= 0) return selected;
  const total = targets.reduce((sum, t) => sum + t.tensor.data.length, 0);
  const magnitudes = new Float32Array(total);
  let offset = 0;
  for (const t of targets) {
    for (let i = 0; i < t.tensor.data.length; i++) magnitudes[offset + i] = Math.abs(t.tensor.data[i]!);
    offset += t.tensor.data.length;
  }
  const sorted = magnitudes.slice().sort();
  const threshold = sorted[count - 1]!;
  let below = 0;
  for (let i = 0; i < total; i++) if (magnitudes[i]! < threshold) below++;
  let ties = count - below;
  offset = 0;
  targets.forEach((t, k) => {
    for (let i = 0; i < t.tensor.data.length; i++) {
      const m = magnitudes[offset + i]!;
      if (m < threshold) selected[k]![i] = 1;
      else if (m === threshold && ties > 0) {
        selected[k]![i] = 1;
        ties--;
      }
    }
    offset += t.tensor.data.length;
  });
  return selected;
}

function pruneCount(size: number, sparsity: number): number {
  return size - Math.round(size * (1 - sparsity));
}

export function pruneMagnitude(graph: Graph, context: PassContext): PassResult {
  const weights = context.weights;
  if (!weights) return { graph, applied: [], refused: ['needs weights'] };
  const sparsityOption = numberOption(context.options, 'sparsity', 0.5, 0, 1);
  if ('problem' in sparsityOption) return { graph, weights, applied: [], refused: [sparsityOption.problem] };
  const sparsity = sparsityOption.value;
  const scope = context.options['scope'] ?? 'layer';
  if (scope !== 'layer' && scope !== 'global') return { graph, weights, applied: [], refused: [`option scope must be 'layer' or 'global' (got ${JSON.stringify(scope)})`] };
  const excluded = excludedBy(context.options);
  const refused: string[] = [];
  const targets: Target[] = [];
  for (const node of graph.nodes) {
    if (!isWeighted(node)) continue;
    if (excluded(node.name)) {
      refused.push(`${node.name}: excluded by option`);
      continue;
    }
    const param = `${node.name}.weight`;
    const tensor = weights.get(param);
    if (!tensor) throw new Error(`weight '${param}' is missing`);
    targets.push({ node: node.name, param, tensor });
  }
  const selections =
    scope === 'global'
      ? smallest(targets, pruneCount(targets.reduce((sum, t) => sum + t.tensor.data.length, 0), sparsity))
      : targets.map((t) => smallest([t], pruneCount(t.tensor.data.length, sparsity))[0]!);
  let next: Map<string, WeightTensor> | undefined;
  const applied: string[] = [];
  targets.forEach((target, k) => {
    const mask = selections[k]!;
    const data = target.tensor.data;
    const changed = data.some((v, i) => mask[i] === 1 && v !== 0);
    let tensor = target.tensor;
    if (changed) {
      const pruned = data.map((v, i) => (mask[i] === 1 ? 0 : v));
      tensor = { shape: target.tensor.shape, data: pruned };
      next ??= new Map(weights);
      next.set(target.param, tensor);
    }
    let zeros = 0;
    for (const v of tensor.data) if (v === 0) zeros++;
    applied.push(`${target.node}: ${((100 * zeros) / tensor.data.length).toFixed(1)}% zero (${zeros} of ${tensor.data.length} weights)`);
  });
  return { graph, weights: next ?? weights, applied: next ? applied : [], refused };
}

export const pruneMagnitudePass: Pass = {
  name: 'prune-magnitude',
  description: "zeroes the smallest-magnitude fraction of conv and dense weights (options: sparsity (0.5), scope 'layer'|'global', exclude)",
  needsWeights: true,
  inferenceOnly: false,
  // Pruning changes outputs by design; its tests check sparsity and structure instead.
  tolerance: Number.POSITIVE_INFINITY,
  run: pruneMagnitude,
};

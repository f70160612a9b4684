/**
 * Layer groups for fine-tuning: which layers a target names, when frozen layers start training (`unfreeze`), and
 * per-group learning-rate multipliers (discriminative learning rates).
 *
 * Targets are the strings a spec's `freeze` takes, resolved on the graph's layer names:
 *   "stage4"          a layer or a scope: every layer named stage4 or stage4.…;
 *   "stem..stage3"    a range of top-level scopes (a name's first segment) in graph order, both ends included —
 *                     also across layers brought in by `from "other.cnn" take …`, which keep their names;
 *   "stage*.conv1"    a glob (`*`, `?`) matching a layer's name or one of its scope prefixes;
 *   "conv", "bn", "dense", "dwconv", "deconv", "batchnorm"   every layer of that kind.
 *
 * The spec's setting, a list of steps [epochs, target] or [epochs, target, lr scale]:
 *   train { unfreeze: [[3, "stage4"], [5, "stage3", 0.1]] }
 * reads "after 3 epochs stage4 starts training; after 5, stage3 does, at 0.1× the learning rate". Epoch 0 means
 * from the start; a step that names layers that are not frozen only sets their scale (discriminative learning
 * rates without freezing: [[0, "stem..stage3", 0.1]]). `trainModel`'s `learningRateScales` (the CLI's
 * `--lr-scale TARGET=X`) set scales the same way; they apply after the spec's steps, and for a layer named by
 * several entries the last one wins.
 *
 * What unfreezing changes: the group's learnable parameters (weights, biases, BN γ and β) join the optimizer from
 * that epoch on (their optimizer state starts at zero then), and their regularisers and max-norm constraints start
 * to apply. A batch norm frozen in the spec keeps normalising with its running statistics, and they stay as they
 * are: the practice Keras's transfer-learning guide recommends for fine-tuning, since batch statistics of small
 * fine-tuning batches would wreck statistics learnt on the large data set.
 */
import { globToRegex } from '../../elaborate/elaborate.js';
import { OP_KIND_TARGETS } from '../../elaborate/ops.js';
import type { Graph, SettingValue } from '../../ir/graph.js';

export interface UnfreezeStep {
  /** Epochs completed before the group starts training (0: from the start). */
  readonly afterEpoch: number;
  readonly target: string;
  /** Learning-rate multiplier of the group; default 1. */
  readonly lrScale?: number;
}

export interface LearningRateScale {
  readonly target: string;
  readonly scale: number;
}

/** The layers (node names) a target selects; an empty set when it names nothing. */
export function selectLayers(graph: Graph, target: string): Set<string> {
  const names = graph.nodes.map((n) => n.name);
  const range = /^([^.*?]+)\.\.([^.*?]+)$/.exec(target);
  if (range) {
    const scopes: string[] = [];
    for (const name of names) {
      const scope = name.split('.')[0]!;
      if (!scopes.includes(scope)) scopes.push(scope);
    }
    const from = scopes.indexOf(range[1]!);
    const to = scopes.indexOf(range[2]!);
    if (from < 0 || to < from) return new Set();
    const selected = new Set(scopes.slice(from, to + 1));
    return new Set(names.filter((n) => selected.has(n.split('.')[0]!)));
  }
  if (target.includes('*') || target.includes('?')) {
    const regex = globToRegex(target);
    return new Set(names.filter((n) => n.split('.').some((_, i, parts) => regex.test(parts.slice(0, i + 1).join('.')))));
  }
  const byName = names.filter((n) => n === target || n.startsWith(`${target}.`));
  if (byName.length > 0) return new Set(byName);
  const kind = OP_KIND_TARGETS.get(target);
  return new Set(kind ? graph.nodes.filter((n) => kind(n)).map((n) => n.name) : []);
}

/** Reads the spec's `unfreeze` setting (or steps given directly); problems are one line each. */
export function readUnfreezeSetting(value: SettingValue | readonly UnfreezeStep[] | undefined): { steps: UnfreezeStep[]; problems: string[] } {
  const steps: UnfreezeStep[] = [];
  const problems: string[] = [];
  if (value === undefined) return { steps, problems };
  const shape = 'a list of [epochs, "target"] or [epochs, "target", lr scale], e.g. [[3, "stage4"], [5, "stage3", 0.1]]';
  if (!Array.isArray(value)) {
    problems.push(`unfreeze: expected ${shape}, found ${JSON.stringify(value)}`);
    return { steps, problems };
  }
  for (const entry of value as readonly unknown[]) {
    if (typeof entry === 'object' && entry !== null && !Array.isArray(entry) && 'target' in entry) {
      steps.push(entry as UnfreezeStep);
      continue;
    }
    const [epoch, target, scale] = Array.isArray(entry) ? (entry as unknown[]) : [];
    const valid =
      Array.isArray(entry) &&
      (entry.length === 2 || entry.length === 3) &&
      typeof epoch === 'number' &&
      Number.isInteger(epoch) &&
      epoch >= 0 &&
      typeof target === 'string' &&
      target !== '' &&
      (scale === undefined || (typeof scale === 'number' && scale > 0 && Number.isFinite(scale)));
    if (!valid) {
      problems.push(`unfreeze: each step is [epochs ≥ 0, "target"] or [epochs, "target", lr scale > 0]; found ${JSON.stringify(entry)}`);
      continue;
    }
    steps.push({ afterEpoch: epoch as number, target: target as string, ...(scale !== undefined ? { lrScale: scale as number } : {}) });
  }
  return { steps, problems };
}

export interface LayerGroupPlan {
  /** Frozen layers that start training, and the epoch index (0-based) from which they do. */
  readonly startEpoch: ReadonlyMap<string, number>;
  /** Learning-rate multiplier per layer (absent: 1). */
  readonly scale: ReadonlyMap<string, number>;
}

/**
 * The unfreeze schedule and the learning-rate scales resolved to layers. Problems (a target naming nothing, a
 * schedule step whose layers are none of them frozen or have no parameters) are returned one line each.
 */
export function planLayerGroups(graph: Graph, unfreeze: readonly UnfreezeStep[], scales: readonly LearningRateScale[] = []): { plan: LayerGroupPlan; problems: string[] } {
  const startEpoch = new Map<string, number>();
  const scale = new Map<string, number>();
  const problems: string[] = [];
  const byName = new Map(graph.nodes.map((n) => [n.name, n]));
  const weighted = (name: string) => {
    const node = byName.get(name)!;
    return node.op === 'conv' || node.op === 'conv_transpose' || node.op === 'dense' || node.op === 'batchnorm';
  };
  for (const step of unfreeze) {
    const layers = [...selectLayers(graph, step.target)].filter(weighted);
    if (layers.length === 0) {
      problems.push(`unfreeze: '${step.target}' names no layer with parameters in ${graph.name}`);
      continue;
    }
    const frozen = layers.filter((name) => byName.get(name)!.frozen);
    if (step.afterEpoch > 0 && frozen.length === 0) {
      problems.push(`unfreeze: the layers of '${step.target}' are not frozen, so they train from the start (freeze them, or use epoch 0 to only scale their learning rate)`);
      continue;
    }
    for (const name of frozen) startEpoch.set(name, step.afterEpoch);
    if (step.lrScale !== undefined) for (const name of layers) scale.set(name, step.lrScale);
  }
  for (const entry of scales) {
    if (!(entry.scale > 0 && Number.isFinite(entry.scale))) {
      problems.push(`learning-rate scale of '${entry.target}' must be a positive number, got ${entry.scale}`);
      continue;
    }
    const layers = [...selectLayers(graph, entry.target)].filter(weighted);
    if (layers.length === 0) problems.push(`learning-rate scale: '${entry.target}' names no layer with parameters in ${graph.name}`);
    for (const name of layers) scale.set(name, entry.scale);
  }
  return { plan: { startEpoch, scale }, problems };
}

/**
 * prune-filters: structured pruning — removes whole output channels (conv filters, transposed-conv filters,
 * dense units) with the smallest L1 norm, and everything that depends on them, so tensors, IR attributes,
 * exported files and run time all shrink.
 *
 * Dependency groups (the idea of Torch-Pruning's DepGraph). Every channel of every tensor (axis 1) is a slot; slots
 * that must be removed together are merged (union-find):
 *   - element-wise and per-channel ops (batch norm, activations, dropout, pools, global pools, upsample, pad) tie
 *     output channel c to input channel c; add/mul tie every input with the same channel count (an input with one
 *     channel broadcasts and is not tied) — so the branches of a residual add are pruned together;
 *   - a depthwise conv (groups = in channels, multiplier m) ties input channel c to its outputs c·m … c·m + m − 1,
 *     so the same channels are removed through it; a transposed depthwise conv likewise;
 *   - concat on the channel axis ties input i's channel c to output channel offset_i + c (inputs stay separate);
 *   - flatten of [N, C, …spatial] ties channel c to features c·S … c·S + S − 1 (S = spatial size), so a dense after
 *     it loses whole input-feature blocks;
 *   - a conv/transposed conv, or a dense, starts fresh channels: its inputs are not tied to its outputs, it only
 *     drops the input channels its producer lost;
 *   - a grouped conv that is not depthwise (1 < groups < in channels) must keep equal groups: its input channels
 *     and its output channels are each partitioned by group, and a group of channel sets that meets such a
 *     partition loses the same number from every part (all parts must lie in that group, equally sized).
 * Pinned (never pruned): channels of graph inputs and of graph outputs, channels that meet a reshape, a broadcast
 * of mismatched rank, a node matched by option `exclude`, or grouped-conv partitions they cannot satisfy evenly
 * (parts spread over several groups, or two different partitions). A whole set of merged channels is pinned if any
 * of its slots is.
 *
 * A group is the set of channel sets whose filters come from the same producing layers (`a.conv1 + c.conv1` for a
 * residual add). Each set's importance is the sum of the L1 norms of its filters in those layers; a group of n sets
 * keeps max(1, ⌊n·(1 − sparsity)⌋) of them (Torch-Pruning's rule) and removes the least important, ties by index;
 * a partitioned group applies the rule to each part.
 *
 * Rewrite: conv/transposed conv/dense weights are sliced on both channel axes (a grouped conv's in-group axis per
 * group), biases and batch-norm γ, β, μ, σ² on theirs; `filters`, `inChannels`, depthwise `groups`, `units`,
 * `inFeatures` and BN `channels` shrink (other groups counts stay); every
 * shape is re-inferred from the shape rules. Names, spans, frozen flags and regularisers are kept.
 * Options: `sparsity` ∈ [0, 1] (default 0.5), `exclude` (names or globs). Outputs change by design (tolerance ∞);
 * sparsity 0 returns the same graph and weights objects.
 */
import { equalDims, shapeToString } from '../ir/dims.js';
import type { Graph, Node, Shape } from '../ir/graph.js';
import { parametersOf } from '../ir/params.js';
import { inferShape } from '../ir/shapes.js';
import type { WeightTensor, Weights } from '../ir/weights.js';
import { GraphEditor, editorResult, excludedBy, numberOption } from './graph-editor.js';
import type { Pass, PassContext, PassResult } from './manager.js';

class UnionFind {
  private readonly parent: Int32Array;
  constructor(size: number) {
    this.parent = Int32Array.from({ length: size }, (_, i) => i);
  }
  find(x: number): number {
    while (this.parent[x] !== x) {
      this.parent[x] = this.parent[this.parent[x]!]!;
      x = this.parent[x]!;
    }
    return x;
  }
  union(a: number, b: number): void {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra !== rb) this.parent[Math.max(ra, rb)] = Math.min(ra, rb);
  }
}

interface Source {
  readonly node: string;
  readonly channel: number;
  readonly slot: number;
}

/** How a conv-like node relates its input channels to its output channels. */
type ChannelRole = 'fresh' | 'depthwise' | 'grouped' | 'none';

function channelRole(node: Node): ChannelRole {
  if (node.op === 'dense') return 'fresh';
  if (node.op !== 'conv' && node.op !== 'conv_transpose') return 'none';
  if (node.groups === 1) return 'fresh';
  return node.groups === node.inChannels ? 'depthwise' : 'grouped';
}

const CHANNELWISE = new Set<Node['op']>(['batchnorm', 'activation', 'dropout', 'maxpool', 'avgpool', 'global_avgpool', 'global_maxpool', 'upsample', 'pad']);

/** The channel slots of every tensor, what ties them, and which are pinned (with why). */
export class ChannelDependencies {
  readonly base = new Map<string, number>();
  readonly count = new Map<string, number>();
  readonly sources: Source[] = [];
  private readonly pins = new Map<number, string>();
  private readonly sets: UnionFind;
  /** Grouped-conv partitions: slot → [partition name, part]; partition name → number of parts. */
  readonly labels = new Map<number, Array<readonly [string, number]>>();
  readonly partitionSizes = new Map<string, number>();

  constructor(readonly graph: Graph, excluded: (name: string) => boolean) {
    let total = 0;
    const add = (name: string, shape: Shape) => {
      const channels = shape[1];
      const count = typeof channels === 'number' ? channels : 0;
      this.base.set(name, total);
      this.count.set(name, count);
      total += count;
    };
    for (const input of graph.inputs) add(input.name, input.shape);
    for (const node of graph.nodes) add(node.name, node.shape);
    this.sets = new UnionFind(total);

    for (const input of graph.inputs) this.pinTensor(input.name, `its channels come from the graph input '${input.name}'`);
    for (const node of graph.nodes) this.addNode(node, excluded);
    for (const output of graph.outputs) this.pinTensor(output.value, `its channels reach the graph output '${output.name}'`);
  }

  slot(tensor: string, channel: number): number {
    return this.base.get(tensor)! + channel;
  }

  private symbolic(tensor: string): boolean {
    return this.count.get(tensor) === 0;
  }

  private pinTensor(tensor: string, reason: string): void {
    const count = this.count.get(tensor) ?? 0;
    for (let c = 0; c < count; c++) if (!this.pins.has(this.slot(tensor, c))) this.pins.set(this.slot(tensor, c), reason);
  }

  /** Ties channel c of a to channel c of b; mismatched or symbolic channel axes pin both instead. */
  private tieTensors(a: string, b: string, reason: string): void {
    const count = this.count.get(a)!;
    if (this.symbolic(a) || this.symbolic(b) || count !== this.count.get(b)) {
      this.pinTensor(a, reason);
      this.pinTensor(b, reason);
      return;
    }
    for (let c = 0; c < count; c++) this.sets.union(this.slot(a, c), this.slot(b, c));
  }

  private addNode(node: Node, excluded: (name: string) => boolean): void {
    const out = node.name;
    const input = node.inputs[0]!;
    const cannot = (why: string) => `${why}, so its channels cannot shrink`;
    if (excluded(node.name)) this.pinTensor(out, `'${node.name}' is excluded by option`);
    const role = channelRole(node);
    if (role === 'fresh') {
      for (let c = 0; c < this.count.get(out)!; c++) this.sources.push({ node: out, channel: c, slot: this.slot(out, c) });
      return;
    }
    if (role === 'depthwise' && (node.op === 'conv' || node.op === 'conv_transpose')) {
      const multiplier = node.filters / node.groups;
      for (let c = 0; c < node.inChannels; c++) for (let k = 0; k < multiplier; k++) this.sets.union(this.slot(input, c), this.slot(out, c * multiplier + k));
      return;
    }
    if (role === 'grouped' && (node.op === 'conv' || node.op === 'conv_transpose')) {
      for (let c = 0; c < this.count.get(out)!; c++) this.sources.push({ node: out, channel: c, slot: this.slot(out, c) });
      const inPerGroup = node.inChannels / node.groups;
      const outPerGroup = node.filters / node.groups;
      const inputs = `the input groups of '${node.name}'`;
      const outputs = `the output groups of '${node.name}'`;
      this.partitionSizes.set(inputs, node.groups).set(outputs, node.groups);
      for (let c = 0; c < node.inChannels; c++) this.label(this.slot(input, c), inputs, Math.floor(c / inPerGroup));
      for (let o = 0; o < node.filters; o++) this.label(this.slot(out, o), outputs, Math.floor(o / outPerGroup));
      return;
    }
    if (CHANNELWISE.has(node.op)) {
      this.tieTensors(out, input, cannot(`'${node.name}' changes its channel count`));
      return;
    }
    switch (node.op) {
      case 'add':
      case 'mul':
        for (const other of node.inputs) {
          const shape = this.shapeOf(other);
          if (shape.length === node.shape.length && shape[1] === 1 && node.shape[1] !== 1) continue; // broadcast over channels
          if (shape.length !== node.shape.length) {
            const reason = cannot(`'${node.name}' broadcasts '${other}' of another rank`);
            this.pinTensor(out, reason);
            this.pinTensor(other, reason);
          } else this.tieTensors(out, other, cannot(`'${node.name}' adds channel counts that differ`));
        }
        return;
      case 'concat': {
        const axis = node.axis < 0 ? node.shape.length + node.axis : node.axis;
        if (axis !== 1) {
          for (const other of node.inputs) this.tieTensors(out, other, cannot(`'${node.name}' concatenates inputs whose channels differ`));
          return;
        }
        let offset = 0;
        for (const other of node.inputs) {
          const count = this.count.get(other)!;
          if (this.symbolic(other)) {
            this.pinTensor(out, cannot(`'${node.name}' concatenates a symbolic channel count`));
            return;
          }
          for (let c = 0; c < count; c++) this.sets.union(this.slot(other, c), this.slot(out, offset + c));
          offset += count;
        }
        return;
      }
      case 'flatten': {
        const shape = this.shapeOf(input);
        const spatial = shape.slice(2).reduce<number | undefined>((a, d) => (a !== undefined && typeof d === 'number' ? a * d : undefined), 1);
        if (spatial === undefined || this.symbolic(input)) {
          const reason = cannot(`'${node.name}' flattens a symbolic size`);
          this.pinTensor(out, reason);
          this.pinTensor(input, reason);
          return;
        }
        for (let c = 0; c < this.count.get(input)!; c++) for (let r = 0; r < spatial; r++) this.sets.union(this.slot(input, c), this.slot(out, c * spatial + r));
        return;
      }
      default: {
        // reshape, and any op this analysis does not know: keep its channels as they are.
        const reason = cannot(`'${node.name}' (${node.op}) rearranges channels`);
        this.pinTensor(out, reason);
        for (const other of node.inputs) this.pinTensor(other, reason);
      }
    }
  }

  private label(slot: number, partition: string, part: number): void {
    const list = this.labels.get(slot) ?? [];
    list.push([partition, part]);
    this.labels.set(slot, list);
  }

  private shapeOf(tensor: string): Shape {
    return this.graph.inputs.find((i) => i.name === tensor)?.shape ?? this.graph.nodes.find((n) => n.name === tensor)!.shape;
  }

  root(slot: number): number {
    return this.sets.find(slot);
  }

  /** The reason a merged channel set is pinned, if it is. */
  pinnedSets(): Map<number, string> {
    const pinned = new Map<number, string>();
    for (const [slot, reason] of this.pins) {
      const root = this.root(slot);
      if (!pinned.has(root)) pinned.set(root, reason);
    }
    return pinned;
  }
}

export interface PruneGroup {
  /** The layers whose filters the group removes, in node order. */
  readonly layers: readonly string[];
  /** Roots of its channel sets, in order of their first filter. */
  readonly sets: readonly number[];
  /** Why the group keeps every channel, if it does. */
  readonly pinned: string | undefined;
  /** For a group that meets a grouped conv: the part of each set (each part loses the same number). */
  readonly parts: ReadonlyMap<number, number> | undefined;
}

/** Groups of channel sets with the same producing layers, with their grouped-conv partition if any. */
export function pruneGroups(dependencies: ChannelDependencies): PruneGroup[] {
  const layersOf = new Map<number, string[]>();
  for (const source of dependencies.sources) {
    const root = dependencies.root(source.slot);
    const list = layersOf.get(root) ?? [];
    if (!list.includes(source.node)) list.push(source.node);
    layersOf.set(root, list);
  }
  // Partition labels of each set: partition name → parts.
  const labelsOf = new Map<number, Map<string, Set<number>>>();
  for (const [slot, labels] of dependencies.labels) {
    const root = dependencies.root(slot);
    const byPartition = labelsOf.get(root) ?? new Map<string, Set<number>>();
    for (const [partition, part] of labels) byPartition.set(partition, (byPartition.get(partition) ?? new Set<number>()).add(part));
    labelsOf.set(root, byPartition);
  }
  const pinned = dependencies.pinnedSets();
  const groups = new Map<string, { layers: string[]; sets: number[]; pinned: string | undefined }>();
  for (const [root, layers] of layersOf) {
    const key = layers.join(' + ');
    const group = groups.get(key) ?? { layers, sets: [], pinned: undefined };
    group.sets.push(root);
    group.pinned ??= pinned.get(root);
    groups.set(key, group);
  }
  return [...groups.values()].map((group) => {
    const partitions = new Set(group.sets.flatMap((root) => [...(labelsOf.get(root)?.keys() ?? [])]));
    if (partitions.size === 0 || group.pinned) return { ...group, parts: undefined };
    const [partition, ...others] = [...partitions];
    const uneven = (why: string) => ({ ...group, parts: undefined, pinned: `its channels meet ${partition}${others.length ? ` and ${others.join(' and ')}` : ''}, ${why}, so they cannot shrink evenly` });
    if (others.length > 0) return uneven('two different partitions');
    const parts = new Map<number, number>();
    for (const root of group.sets) {
      const labels = labelsOf.get(root)?.get(partition!);
      if (!labels || labels.size !== 1) return uneven('not one part per channel');
      parts.set(root, [...labels][0]!);
    }
    const sizes = new Map<number, number>();
    for (const part of parts.values()) sizes.set(part, (sizes.get(part) ?? 0) + 1);
    if (sizes.size !== dependencies.partitionSizes.get(partition!)) return uneven('some of whose parts lie in other groups');
    if (new Set(sizes.values()).size !== 1) return uneven('with parts of different sizes');
    return { ...group, parts };
  });
}

/** Sum of |w| of one output channel's filter. */
function filterL1(node: Node, weight: WeightTensor, channel: number): number {
  const w = weight.data;
  let sum = 0;
  if (node.op === 'conv_transpose') {
    // [in, out/groups, k…]: output channel o = g·(out/groups) + j reads inputs g·(in/groups) … of group g.
    const outPerGroup = weight.shape[1]!;
    const inPerGroup = node.inChannels / node.groups;
    const kernelSize = w.length / (weight.shape[0]! * outPerGroup);
    const group = Math.floor(channel / outPerGroup);
    const j = channel % outPerGroup;
    for (let i = group * inPerGroup; i < (group + 1) * inPerGroup; i++) for (let r = 0; r < kernelSize; r++) sum += Math.abs(w[(i * outPerGroup + j) * kernelSize + r]!);
    return sum;
  }
  const per = w.length / weight.shape[0]!;
  for (let r = 0; r < per; r++) sum += Math.abs(w[channel * per + r]!);
  return sum;
}

/** Keeps the listed indices on the first axes of a tensor (undefined: keep the axis whole). */
export function sliceTensor(tensor: WeightTensor, keep: ReadonlyArray<readonly number[] | undefined>): WeightTensor {
  const shape = tensor.shape;
  const axis0 = keep[0] ?? [...Array(shape[0]!).keys()];
  const axis1 = shape.length > 1 ? (keep[1] ?? [...Array(shape[1]!).keys()]) : [0];
  const inner = shape.slice(2).reduce((a, b) => a * b, 1);
  const width = shape.length > 1 ? shape[1]! : 1;
  const data = new Float32Array(axis0.length * axis1.length * inner);
  let offset = 0;
  for (const i of axis0) {
    for (const j of axis1) {
      const start = (i * width + j) * inner;
      data.set(tensor.data.subarray(start, start + inner), offset);
      offset += inner;
    }
  }
  const newShape = shape.length > 1 ? [axis0.length, axis1.length, ...shape.slice(2)] : [axis0.length];
  return { shape: newShape, data };
}

/**
 * Slices a grouped conv's weight: conv [out, in/groups, k…] keeps the kept output rows and, for a row of group g,
 * the kept inputs of group g (local index c − g·in/groups); a transposed conv [in, out/groups, k…] the other way.
 */
function sliceGrouped(node: Extract<Node, { op: 'conv' | 'conv_transpose' }>, weight: WeightTensor, keptIn: readonly number[] | undefined, keptOut: readonly number[] | undefined): WeightTensor {
  const groups = node.groups;
  const all = (n: number) => [...Array(n).keys()];
  const inputs = keptIn ?? all(node.inChannels);
  const outputs = keptOut ?? all(node.filters);
  const [rows, columns, rowsPerGroup, columnsPerGroup] =
    node.op === 'conv' ? [outputs, inputs, node.filters / groups, node.inChannels / groups] : [inputs, outputs, node.inChannels / groups, node.filters / groups];
  const inner = weight.shape.slice(2).reduce((a, b) => a * b, 1);
  const width = weight.shape[1]!;
  const newWidth = columns.length / groups;
  if (!Number.isInteger(newWidth) || !Number.isInteger(rows.length / groups)) throw new Error(`prune-filters: '${node.name}' would get unequal groups`);
  const data = new Float32Array(rows.length * newWidth * inner);
  let offset = 0;
  for (const row of rows) {
    const group = Math.floor(row / rowsPerGroup);
    const local = columns.filter((c) => Math.floor(c / columnsPerGroup) === group).map((c) => c - group * columnsPerGroup);
    if (local.length !== newWidth) throw new Error(`prune-filters: '${node.name}' would get unequal groups`);
    for (const c of local) {
      data.set(weight.data.subarray((row * width + c) * inner, (row * width + c + 1) * inner), offset);
      offset += inner;
    }
  }
  return { shape: [rows.length, newWidth, ...weight.shape.slice(2)], data };
}

export interface FilterPruningPlan {
  /** Kept channel indices (axis 1) of every tensor that loses channels. */
  readonly kept: ReadonlyMap<string, readonly number[]>;
  /** One line per group that loses channels. */
  readonly applied: readonly string[];
  /** One line per group that keeps all its channels, with the reason. */
  readonly refused: readonly string[];
}

/** What prune-filters would remove: dependency groups, importance, selection. */
export function planFilterPruning(graph: Graph, weights: Weights, sparsity: number, excluded: (name: string) => boolean): FilterPruningPlan {
  const dependencies = new ChannelDependencies(graph, excluded);
  const nodes = new Map(graph.nodes.map((n) => [n.name, n]));
  const applied: string[] = [];
  const refused: string[] = [];

  // Importance of each channel set: the L1 norms of its filters in every producing layer.
  const importance = new Map<number, number>();
  const firstChannel = new Map<number, Map<string, number[]>>();
  for (const source of dependencies.sources) {
    const node = nodes.get(source.node)!;
    const root = dependencies.root(source.slot);
    const weight = weights.get(`${node.name}.weight`);
    if (!weight) throw new Error(`weight '${node.name}.weight' is missing`);
    importance.set(root, (importance.get(root) ?? 0) + filterL1(node, weight, source.channel));
    const byLayer = firstChannel.get(root) ?? new Map<string, number[]>();
    byLayer.set(source.node, [...(byLayer.get(source.node) ?? []), source.channel]);
    firstChannel.set(root, byLayer);
  }

  const removed = new Set<number>();
  for (const group of pruneGroups(dependencies)) {
    const name = group.layers.join(' + ');
    if (group.pinned) {
      refused.push(`${name}: kept all ${group.sets.length} channels: ${group.pinned}`);
      continue;
    }
    const n = group.sets.length;
    // Each part (the whole group when it has none) keeps max(1, ⌊size·(1 − sparsity)⌋) sets.
    const partOf = (root: number) => group.parts?.get(root) ?? 0;
    const chosen: number[] = [];
    for (const part of new Set(group.sets.map(partOf))) {
      const members = group.sets.filter((root) => partOf(root) === part);
      const keep = Math.max(1, Math.floor(members.length * (1 - sparsity) + 1e-9));
      const order = members.map((root, index) => ({ root, index, value: importance.get(root)! })).sort((a, b) => a.value - b.value || a.index - b.index);
      chosen.push(...order.slice(0, members.length - keep).map((e) => e.root));
    }
    if (chosen.length === 0) continue;
    for (const root of chosen) removed.add(root);
    const first = group.layers[0]!;
    const channels = chosen.flatMap((root) => firstChannel.get(root)!.get(first) ?? []).sort((a, b) => a - b);
    const evenly = group.parts ? `, evenly over ${new Set(group.parts.values()).size} groups` : '';
    applied.push(`${name}: removed ${chosen.length} of ${n} channels${evenly} (${first} [${channels.join(', ')}])`);
  }

  const kept = new Map<string, number[]>();
  for (const [tensor, count] of dependencies.count) {
    const list: number[] = [];
    for (let c = 0; c < count; c++) if (!removed.has(dependencies.root(dependencies.slot(tensor, c)))) list.push(c);
    if (list.length !== count) kept.set(tensor, list);
  }
  return { kept, applied, refused };
}

export function pruneFilters(graph: Graph, context: PassContext): PassResult {
  const weights = context.weights;
  if (!weights) return { graph, applied: [], refused: ['needs weights'] };
  const option = numberOption(context.options, 'sparsity', 0.5, 0, 1);
  if ('problem' in option) return { graph, weights, applied: [], refused: [option.problem] };
  const plan = planFilterPruning(graph, weights, option.value, excludedBy(context.options));
  const { applied, refused } = plan;
  if (plan.kept.size === 0) return { graph, weights, applied, refused };
  const editor = new GraphEditor(graph, weights);
  const kept = (tensor: string): readonly number[] | undefined => plan.kept.get(tensor);
  const channelCount = (tensor: string): number => {
    const shape = graph.inputs.find((i) => i.name === tensor)?.shape ?? editor.node(tensor)!.shape;
    return shape[1] as number;
  };
  const shapes = new Map<string, Shape>(graph.inputs.map((i) => [i.name, i.shape]));
  for (const node of graph.nodes) {
    const out = kept(node.name);
    const inputs = node.inputs.map(kept);
    const into = inputs[0];
    if (out === undefined && inputs.every((k) => k === undefined)) {
      shapes.set(node.name, node.shape);
      continue;
    }
    const outCount = out?.length ?? channelCount(node.name);
    const inCount = into?.length ?? channelCount(node.inputs[0]!);
    let next: Node = node;
    const slice = (role: string, keep: ReadonlyArray<readonly number[] | undefined>) => editor.setWeight(`${node.name}.${role}`, sliceTensor(editor.requireWeight(`${node.name}.${role}`), keep));
    switch (node.op) {
      case 'conv':
      case 'conv_transpose': {
        const role = channelRole(node);
        if (role === 'grouped') {
          next = { ...node, inChannels: inCount, filters: outCount };
          editor.setWeight(`${node.name}.weight`, sliceGrouped(node, editor.requireWeight(`${node.name}.weight`), into, out));
        } else if (role === 'depthwise') {
          next = { ...node, inChannels: inCount, groups: inCount, filters: outCount };
          // conv [out, 1, k…] loses output rows; transposed [in, m, k…] loses input rows.
          slice('weight', [node.op === 'conv' ? out : into]);
        } else {
          next = { ...node, inChannels: inCount, filters: outCount };
          slice('weight', node.op === 'conv' ? [out, into] : [into, out]);
        }
        if (node.bias && out) slice('bias', [out]);
        break;
      }
      case 'dense':
        next = { ...node, inFeatures: inCount, units: outCount };
        slice('weight', [out, into]);
        if (node.bias && out) slice('bias', [out]);
        break;
      case 'batchnorm':
        next = { ...node, channels: outCount };
        if (out) for (const param of parametersOf(node)) slice(param.role, [out]);
        break;
      default:
        break;
    }
    const inferred = inferShape(next, next.inputs.map((i) => shapes.get(i)!));
    if (!inferred.ok) throw new Error(`prune-filters: '${node.name}' no longer fits its inputs: ${JSON.stringify(inferred.problem)}`);
    if (!equalDims(inferred.shape[1]!, outCount)) throw new Error(`prune-filters: '${node.name}' has ${shapeToString(inferred.shape)}, expected ${outCount} channels`);
    next = { ...next, shape: inferred.shape };
    shapes.set(node.name, inferred.shape);
    editor.replace(next);
  }
  return editorResult(editor, applied, refused);
}

export const pruneFiltersPass: Pass = {
  name: 'prune-filters',
  description: 'removes the lowest-L1 output channels of convs and dense layers with their dependents (options: sparsity (0.5), exclude)',
  needsWeights: true,
  inferenceOnly: false,
  // Pruning changes outputs by design; its tests check structure, shapes and parameter counts instead.
  tolerance: Number.POSITIVE_INFINITY,
  run: pruneFilters,
};

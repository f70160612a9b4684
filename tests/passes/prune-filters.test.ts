import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Graph, Node } from '../../src/ir/graph.js';
import { printGraph } from '../../src/ir/print.js';
import type { WeightTensor, Weights } from '../../src/ir/weights.js';
import { excludedBy } from '../../src/passes/graph-editor.js';
import { ChannelDependencies, planFilterPruning, pruneGroups } from '../../src/passes/prune-filters.js';
import { compile, goldenText, keptNodesUnchangedIn, parameterCount, randomInputs, runPass, structure, weightsFor } from './helpers.js';
import { compareOutputs, runReference } from './reference.js';
import { plainSpecArbitrary, specArbitrary } from './random-specs.js';
import { EXAMPLE, RESIDUAL } from './specs.js';

const CHAIN = `model Chain {
  input x: f32[N, 3, 6, 6]
  y = x -> conv(8, 3, pad: 1) -> bn -> relu -> conv(16, 3, pad: 1, bias: false) -> bn -> relu -> maxpool(2) -> flatten -> dense(10)
  output y
}
`;

function find(graph: Graph, name: string): Node {
  const node = graph.nodes.find((n) => n.name === name);
  if (!node) throw new Error(`no node ${name}`);
  return node;
}

/** Rows (axis 0) of a tensor, each as a plain array. */
function rows(tensor: WeightTensor): number[][] {
  const per = tensor.data.length / tensor.shape[0]!;
  return Array.from({ length: tensor.shape[0]! }, (_, i) => [...tensor.data.subarray(i * per, (i + 1) * per)]);
}

function l1(values: readonly number[]): number {
  return values.reduce((s, v) => s + Math.abs(v), 0);
}

describe('prune-filters', () => {
  it('removes the lowest-L1 filters of a chain and everything that reads them', () => {
    const graph = compile(CHAIN);
    const weights = weightsFor(graph, 4);
    const run = runPass('prune-filters', graph, weights, { sparsity: 0.5 });
    expect(parameterCount(graph)).toBe(224 + 32 + 1152 + 64 + 1450);
    // conv1 8 → 4, conv2 16 → 8, the dense reads 8 channels × 3 × 3 features; its 10 outputs are the graph's.
    expect(parameterCount(run.graph)).toBe(112 + 16 + 288 + 32 + 730);
    expect(find(run.graph, 'y.conv1')).toMatchObject({ filters: 4, shape: [expect.anything(), 4, 6, 6] });
    expect(find(run.graph, 'y.bn1')).toMatchObject({ channels: 4 });
    expect(find(run.graph, 'y.conv2')).toMatchObject({ inChannels: 4, filters: 8 });
    expect(find(run.graph, 'y.dense1')).toMatchObject({ inFeatures: 72, units: 10 });

    // The kept filters are the four with the largest L1 norm, in their original order.
    const original = rows(weights.get('y.conv1.weight')!);
    const keptFirst = original
      .map((r, i) => [l1(r), i] as const)
      .sort((a, b) => b[0] - a[0])
      .slice(0, 4)
      .map(([, i]) => i)
      .sort((a, b) => a - b);
    expect(rows(run.weights!.get('y.conv1.weight')!)).toEqual(keptFirst.map((i) => original[i]));
    expect([...run.weights!.get('y.bn1.running_var')!.data]).toEqual(keptFirst.map((i) => weights.get('y.bn1.running_var')!.data[i]));
    const plan = planFilterPruning(graph, weights, 0.5, () => false);
    expect(plan.kept.get('y.conv1')).toEqual(keptFirst);
    // conv2 keeps the kept input channels of each kept filter; the dense keeps whole 3×3 feature blocks.
    const keptSecond = plan.kept.get('y.conv2')!;
    const conv2 = weights.get('y.conv2.weight')!;
    const expectedConv2 = keptSecond.flatMap((o) => keptFirst.flatMap((c) => [...conv2.data.subarray((o * 8 + c) * 9, (o * 8 + c + 1) * 9)]));
    expect([...run.weights!.get('y.conv2.weight')!.data]).toEqual(expectedConv2);
    const dense = rows(weights.get('y.dense1.weight')!);
    const features = keptSecond.flatMap((c) => [...Array(9).keys()].map((r) => c * 9 + r));
    expect(rows(run.weights!.get('y.dense1.weight')!)).toEqual(dense.map((row) => features.map((f) => row[f])));
    expect(run.result.applied).toEqual([
      `y.conv1: removed 4 of 8 channels (y.conv1 [${[...Array(8).keys()].filter((i) => !keptFirst.includes(i)).join(', ')}])`,
      `y.conv2: removed 8 of 16 channels (y.conv2 [${[...Array(16).keys()].filter((i) => !keptSecond.includes(i)).join(', ')}])`,
    ]);
    expect(run.result.refused).toEqual(["y.dense1: kept all 10 channels: its channels reach the graph output 'y'"]);
    keptNodesUnchangedIn(graph, run.graph);
  });

  it('prunes residual branches together, through depthwise convs, concat offsets, an SE gate and flatten → dense', () => {
    const graph = compile(RESIDUAL);
    const weights = weightsFor(graph, 8);
    const plan = planFilterPruning(graph, weights, 0.5, () => false);
    const trunk = plan.kept.get('stem.conv1')!;
    expect(trunk).toHaveLength(4);
    for (const tied of ['stem.bn1', 'stem.relu1', 'branch.conv2', 'branch.bn2', 'sum.add1', 'sum.relu1', 'side.dwconv1', 'side.bn1', 'side.relu1']) expect(plan.kept.get(tied)).toEqual(trunk);
    const side = plan.kept.get('side.conv1')!;
    expect(side).toHaveLength(2);
    expect(plan.kept.get('gate.conv1')).toEqual(side);
    expect(plan.kept.get('cat.concat1')).toEqual([...trunk, ...side.map((c) => 8 + c)]);
    const run = runPass('prune-filters', graph, weights, { sparsity: 0.5 });
    expect(find(run.graph, 'side.dwconv1')).toMatchObject({ inChannels: 4, filters: 4, groups: 4 });
    expect(find(run.graph, 'cat.bn1')).toMatchObject({ channels: 6 });
    expect(find(run.graph, 'logits.dense1')).toMatchObject({ inFeatures: 6 * 16, units: 5 });
    // The depthwise filters kept are those of the kept channels.
    const dw = rows(weights.get('side.dwconv1.weight')!);
    expect(rows(run.weights!.get('side.dwconv1.weight')!)).toEqual(trunk.map((c) => dw[c]));
  });

  it('shrinks a grouped conv evenly over its groups', () => {
    const graph = compile(EXAMPLE);
    const weights = weightsFor(graph, 5);
    const run = runPass('prune-filters', graph, weights, { sparsity: 0.5 });
    expect(find(run.graph, 'c.conv1')).toMatchObject({ inChannels: 4, filters: 8, groups: 2 });
    const plan = planFilterPruning(graph, weights, 0.5, () => false);
    const trunk = plan.kept.get('a.conv1')!;
    expect(trunk.filter((c) => c < 4)).toHaveLength(2);
    expect(trunk.filter((c) => c >= 4)).toHaveLength(2);
    const out = plan.kept.get('c.conv1')!;
    expect(out.filter((c) => c < 8)).toHaveLength(4);
    // Row o of the pruned grouped conv holds the kept inputs of o's own group.
    const original = weights.get('c.conv1.weight')!;
    const pruned = run.weights!.get('c.conv1.weight')!;
    expect(pruned.shape).toEqual([8, 2, 1, 1]);
    out.forEach((o, row) => {
      const group = Math.floor(o / 8);
      const local = trunk.filter((c) => Math.floor(c / 4) === group).map((c) => c - 4 * group);
      expect([...pruned.data.subarray(row * 2, row * 2 + 2)]).toEqual(local.map((c) => original.data[o * 4 + c]));
    });
    expect(run.result.applied).toContainEqual(expect.stringMatching(/^b\.conv1 \+ c\.conv1: removed 8 of 16 channels, evenly over 2 groups/));
  });

  it('never prunes channels of graph inputs and outputs, nor excluded layers, and says why', () => {
    const graph = compile(`model Pinned {
  input x: f32[N, 3, 4, 4]
  r = x + (x -> conv(3, 1))
  h = r -> conv(6, 1) -> relu -> conv(4, 1)
  output h
}`);
    const weights = weightsFor(graph);
    const run = runPass('prune-filters', graph, weights, { sparsity: 0.5, exclude: 'h.conv1' });
    expect(run.graph).toBe(graph);
    expect(run.result.refused).toEqual([
      "r.conv1: kept all 3 channels: its channels come from the graph input 'x'",
      "h.conv1: kept all 6 channels: 'h.conv1' is excluded by option",
      "h.conv2: kept all 4 channels: its channels reach the graph output 'h'",
    ]);
  });

  it('keeps at least one channel per group', () => {
    const graph = compile(CHAIN);
    const run = runPass('prune-filters', graph, weightsFor(graph), { sparsity: 0.99 });
    expect(find(run.graph, 'y.conv1')).toMatchObject({ filters: 1 });
    expect(find(run.graph, 'y.conv2')).toMatchObject({ filters: 1, inChannels: 1 });
  });

  it('is the identity at sparsity 0, and refuses a sparsity outside [0, 1]', () => {
    const graph = compile(RESIDUAL);
    const weights = weightsFor(graph);
    const none = runPass('prune-filters', graph, weights, { sparsity: 0 });
    expect(none.graph).toBe(graph);
    expect(none.weights).toBe(weights);
    expect(none.changed).toBe(false);
    expect(runPass('prune-filters', graph, weights, { sparsity: -0.1 }).result.refused).toEqual(['option sparsity must be a number in [0, 1] (got -0.1)']);
  });

  it('golden: the example and residual specs before and after', async () => {
    for (const [spec, name] of [
      [EXAMPLE, 'example'],
      [RESIDUAL, 'residual'],
    ] as const) {
      const graph = compile(spec);
      await expect(goldenText('prune-filters', graph, runPass('prune-filters', graph, weightsFor(graph), { sparsity: 0.5 }))).toMatchFileSnapshot(`golden/prune-filters.${name}.txt`);
    }
  });
});

// -- properties ---------------------------------------------------------------------------------------------

/** Parameters each node would have with the plan's channel counts, computed from the original attributes. */
function expectedParameters(graph: Graph, kept: ReadonlyMap<string, readonly number[]>): number {
  const channels = (tensor: string) => kept.get(tensor)?.length ?? (graph.inputs.find((i) => i.name === tensor)?.shape ?? find(graph, tensor).shape)[1] as number;
  let total = 0;
  for (const node of graph.nodes) {
    const out = channels(node.name);
    const into = node.inputs.length > 0 ? channels(node.inputs[0]!) : 0;
    switch (node.op) {
      case 'conv':
      case 'conv_transpose': {
        const groups = node.groups === node.inChannels && node.groups > 1 ? into : node.groups;
        total += out * (into / groups) * node.kernel.reduce((a, b) => a * b, 1) + (node.bias ? out : 0);
        break;
      }
      case 'dense':
        total += out * into + (node.bias ? out : 0);
        break;
      case 'batchnorm':
        total += 4 * out;
        break;
      default:
        break;
    }
  }
  return total;
}

/** Zeroes the filters the plan removes, in the original graph's weights. */
function zeroRemovedFilters(graph: Graph, weights: Weights, kept: ReadonlyMap<string, readonly number[]>): Weights {
  const result = new Map(weights);
  for (const node of graph.nodes) {
    const keep = kept.get(node.name);
    if (!keep || (node.op !== 'conv' && node.op !== 'conv_transpose' && node.op !== 'dense')) continue;
    if ((node.op === 'conv' || node.op === 'conv_transpose') && node.groups === node.inChannels && node.groups > 1) continue; // depthwise: its input is zero already
    const tensor = weights.get(`${node.name}.weight`)!;
    const data = Float32Array.from(tensor.data);
    const channels = node.op === 'dense' ? node.units : node.filters;
    for (let o = 0; o < channels; o++) {
      if (keep.includes(o)) continue;
      if (node.op === 'conv_transpose') {
        const outPerGroup = tensor.shape[1]!;
        const inPerGroup = node.inChannels / node.groups;
        const inner = tensor.data.length / (tensor.shape[0]! * outPerGroup);
        const group = Math.floor(o / outPerGroup);
        for (let i = group * inPerGroup; i < (group + 1) * inPerGroup; i++) data.fill(0, (i * outPerGroup + (o % outPerGroup)) * inner, (i * outPerGroup + (o % outPerGroup) + 1) * inner);
      } else {
        const per = tensor.data.length / channels;
        data.fill(0, o * per, (o + 1) * per);
      }
    }
    result.set(`${node.name}.weight`, { shape: tensor.shape, data });
  }
  return result;
}

describe('prune-filters properties on random specs', () => {
  it('shapes stay consistent, each group loses the expected count, parameters shrink as the plan says, and the printed graph elaborates back', () => {
    fc.assert(
      fc.property(specArbitrary, fc.double({ min: 0, max: 0.95, noNaN: true }), fc.integer({ min: 0, max: 1000 }), (text, sparsity, seed) => {
        const graph = compile(text);
        const weights = weightsFor(graph, seed);
        const run = runPass('prune-filters', graph, weights, { sparsity }); // verifier on
        const plan = planFilterPruning(graph, weights, sparsity, excludedBy({}));
        expect(parameterCount(run.graph)).toBe(expectedParameters(graph, plan.kept));
        expect(parameterCount(run.graph) < parameterCount(graph)).toBe(plan.kept.size > 0);
        expect(run.changed).toBe(plan.kept.size > 0);

        // Per group: pinned groups lose nothing; others lose n − max(1, ⌊n(1 − s)⌋) per part.
        const dependencies = new ChannelDependencies(graph, () => false);
        for (const group of pruneGroups(dependencies)) {
          const removed = group.sets.filter((root) => {
            const source = dependencies.sources.find((s) => dependencies.root(s.slot) === root)!;
            const keep = plan.kept.get(source.node);
            return keep !== undefined && !keep.includes(source.channel);
          }).length;
          const parts = new Map<number, number>();
          for (const root of group.sets) parts.set(group.parts?.get(root) ?? 0, (parts.get(group.parts?.get(root) ?? 0) ?? 0) + 1);
          const expected = group.pinned ? 0 : [...parts.values()].reduce((sum, n) => sum + n - Math.max(1, Math.floor(n * (1 - sparsity) + 1e-9)), 0);
          expect(removed).toBe(expected);
        }
        // Graph outputs keep their shapes.
        for (const output of graph.outputs) {
          const shape = (g: Graph) => JSON.stringify(g.nodes.find((n) => n.name === output.value)?.shape ?? g.inputs.find((i) => i.name === output.value)!.shape);
          expect(shape(run.graph)).toBe(shape(graph));
        }
        // The pruned graph printed as a spec elaborates back to the same graph.
        expect(structure(compile(printGraph(run.graph), 'pruned.cnn'))).toEqual(structure(run.graph));
        // Sparsity 0 is the identity.
        expect(runPass('prune-filters', graph, weights, { sparsity: 0 }).graph).toBe(graph);
      }),
      { numRuns: 60 },
    );
  });

  it('removing channels equals zeroing the filters that produce them (specs where zero channels stay zero)', () => {
    fc.assert(
      fc.property(plainSpecArbitrary, fc.double({ min: 0.1, max: 0.9, noNaN: true }), fc.integer({ min: 0, max: 1000 }), (text, sparsity, seed) => {
        const graph = compile(text);
        const weights = weightsFor(graph, seed);
        const run = runPass('prune-filters', graph, weights, { sparsity });
        const plan = planFilterPruning(graph, weights, sparsity, excludedBy({}));
        const inputs = randomInputs(graph, seed);
        const masked = runReference(graph, zeroRemovedFilters(graph, weights, plan.kept), inputs);
        const pruned = runReference(run.graph, run.weights!, inputs);
        const { maxError, maxMagnitude } = compareOutputs(masked, pruned);
        expect(maxError).toBeLessThanOrEqual(1e-12 * Math.max(1, maxMagnitude));
      }),
      { numRuns: 80 },
    );
  });
});

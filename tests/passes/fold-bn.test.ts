import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Graph, Node } from '../../src/ir/graph.js';
import type { WeightTensor, Weights } from '../../src/ir/weights.js';
import { getPass, runPasses } from '../../src/passes/manager.js';
import { createMulberry32 } from '../../src/random.js';
import { compile, goldenText, keptNodesUnchangedIn, randomInputs, runPass, weightsFor } from './helpers.js';
import { type Tensor, compareOutputs, runReference } from './reference.js';
import { EXAMPLE, RESIDUAL } from './specs.js';

const TOLERANCE = getPass('fold-bn')!.tolerance;

/**
 * The scale float32 rounding errors are measured against: the folded graph run on |weights| and |inputs| bounds
 * every sum it computes term by term (Σ|w||x|), as in the usual dot-product error bound. It equals the largest
 * output unless terms cancel — e.g. a large BN shift folded into the next conv, then a ReLU that zeroes all
 * but a tiny output — where rounding the folded weights to float32 errs relative to the terms, not the output.
 */
function magnitudeScale(graph: Graph, weights: Weights, inputs: ReadonlyMap<string, Tensor>): number {
  const absWeights: Weights = new Map([...weights].map(([name, t]) => [name, { shape: t.shape, data: t.data.map(Math.abs) }]));
  const absInputs = new Map([...inputs].map(([name, t]) => [name, { shape: t.shape, data: t.data.map(Math.abs) }]));
  let scale = 0;
  for (const tensor of runReference(graph, absWeights, absInputs).values()) for (const v of tensor.data) scale = Math.max(scale, v);
  return scale;
}

function outputsAgree(before: Graph, beforeWeights: Weights, after: Graph, afterWeights: Weights, seed: number): void {
  const inputs = randomInputs(before, seed);
  const expected = runReference(before, beforeWeights, inputs);
  const { maxError, maxMagnitude } = compareOutputs(expected, runReference(after, afterWeights, inputs));
  const scale = Math.max(maxMagnitude, magnitudeScale(after, afterWeights, inputs));
  expect(maxError).toBeLessThanOrEqual(TOLERANCE * scale);
  // The folded graph run in float32 (every node's output rounded) stays within the same bound.
  const rounded = compareOutputs(expected, runReference(after, afterWeights, inputs, { round: true }));
  expect(rounded.maxError).toBeLessThanOrEqual(TOLERANCE * scale);
}

function withNode(graph: Graph, name: string, change: (node: Node) => Node): Graph {
  return { ...graph, nodes: graph.nodes.map((n) => (n.name === name ? change(n) : n)) };
}

describe('fold-bn', () => {
  it('folds every BN of the example into its producer: conv without bias, depthwise, grouped, transposed, dense', () => {
    const graph = compile(EXAMPLE);
    const weights = weightsFor(graph, 3);
    const run = runPass('fold-bn', graph, weights);
    expect(run.messages).toEqual([
      'fold-bn: folded a.bn1 into a.conv1 (its producer; created its bias)',
      'fold-bn: folded b.bn1 into b.dwconv1 (its producer)',
      'fold-bn: folded b.bn2 into b.conv1 (its producer)',
      'fold-bn: folded c.bn1 into c.conv1 (its producer)',
      'fold-bn: folded d.bn1 into d.deconv1 (its producer)',
      'fold-bn: folded logits.bn1 into logits.dense1 (its producer)',
    ]);
    expect(run.graph.nodes.filter((n) => n.op === 'batchnorm')).toEqual([]);
    expect(run.graph.nodes.find((n) => n.name === 'a.conv1')).toMatchObject({ bias: true });
    expect(run.weights!.get('a.conv1.bias')!.shape).toEqual([8]);
    expect([...run.weights!.keys()].filter((k) => k.includes('bn'))).toEqual([]);
    expect(run.graph.outputs).toEqual([{ ...graph.outputs[0]!, value: 'logits.dense1' }]);
    keptNodesUnchangedIn(graph, run.graph);
    outputsAgree(graph, weights, run.graph, run.weights!, 5);
  });

  it('folds into the following conv without padding (any kernel), dense, or flatten → dense', () => {
    const graph = compile(`model Next {
  input x: f32[N, 3, 6, 6]
  a = x -> relu -> bn -> conv(4, 1, bias: false)
  b = x -> relu -> bn(eps: 0.1) -> conv(4, 3, stride: 2, dilation: 1, groups: 1)
  g = x -> conv(4, 1) -> relu -> bn -> conv(4, 2, groups: 2)
  f = x -> relu -> bn -> flatten -> dense(5)
  d = x -> globalavgpool -> flatten -> relu -> bn -> dense(2, bias: false)
  output a, b, g, f, d
}`);
    const weights = weightsFor(graph, 11);
    const run = runPass('fold-bn', graph, weights);
    expect(run.result.applied).toEqual([
      'folded a.bn1 into a.conv1 (its consumer; created its bias)',
      'folded b.bn1 into b.conv1 (its consumer)',
      'folded g.bn1 into g.conv2 (its consumer)',
      'folded f.bn1 into f.dense1 (its consumer, through f.flatten1)',
      'folded d.bn1 into d.dense1 (its consumer; created its bias)',
    ]);
    expect(run.graph.nodes.find((n) => n.name === 'f.flatten1')!.inputs).toEqual(['f.relu1']);
    outputsAgree(graph, weights, run.graph, run.weights!, 12);
  });

  it('with overwriteWeights, folds into the arrays it was given, to the same values as a copying fold', () => {
    const producerAndConsumer = `model Both {
  input x: f32[N, 3, 6, 6]
  p = x -> conv(4, 3, groups: 1) -> bn -> relu -> conv_transpose(4, 2, stride: 2, groups: 2) -> bn
  c = x -> relu -> bn -> conv(4, 3, stride: 2) -> relu -> bn -> flatten -> dense(5)
  output p, c
}`;
    for (const [spec, seed] of [[EXAMPLE, 3], [producerAndConsumer, 7]] as const) {
      const graph = compile(spec);
      const copy = (w: Weights): Map<string, WeightTensor> => new Map([...w].map(([k, t]) => [k, { shape: t.shape, data: t.data.slice() }]));
      const given = copy(weightsFor(graph, seed));
      const untouched = copy(given);
      const copying = runPasses(graph, given, [getPass('fold-bn')!]);
      // The copying fold left its input alone …
      for (const [name, tensor] of untouched) expect(given.get(name)!.data).toEqual(tensor.data);
      const inPlace = runPasses(graph, given, [getPass('fold-bn')!], { overwriteWeights: true });
      expect(inPlace.graph).toEqual(copying.graph);
      expect([...inPlace.weights!.keys()]).toEqual([...copying.weights!.keys()]);
      let reused = 0;
      for (const [name, tensor] of copying.weights!) {
        const folded = inPlace.weights!.get(name)!;
        expect(folded.data, name).toEqual(tensor.data);
        // … the other wrote into the given arrays.
        if (given.get(name)?.data === folded.data && !untouched.get(name)!.data.every((v, i) => v === folded.data[i])) reused++;
      }
      expect(reused).toBeGreaterThan(0);
    }
  });

  it('refuses, with the reason, where folding would change the function', () => {
    const graph = compile(`model Refuse {
  input x: f32[N, 3, 6, 6]
  c = x -> conv(4, 3, pad: 1)
  shared = c -> bn
  both = c + shared
  padded = x -> relu -> bn -> conv(4, 3, pad: 1)
  act = x -> conv(3, 1) -> relu -> bn -> relu
  out = x -> relu -> bn
  deconv = x -> relu -> bn -> deconv(2, 3, stride: 2)
  output both, padded, act, out, deconv
}`);
    const weights = weightsFor(graph, 2);
    const run = runPass('fold-bn', graph, weights);
    expect(run.messages).toEqual([
      "fold-bn: shared.bn1: the conv output 'c.conv1' has a second consumer ('both.add1'); and its consumer 'both.add1' (add) is not a conv or dense",
      "fold-bn: padded.bn1: its producer 'padded.relu1' (relu) is not a conv, transposed conv or dense; and its consumer 'padded.conv1' pads with zeros, where the batch norm would have produced β − μ·γ/√(σ²+ε): the shift would differ at the borders, so it is no bias",
      "fold-bn: act.bn1: its producer 'act.relu1' (relu) is not a conv, transposed conv or dense; and its consumer 'act.relu2' (relu) is not a conv or dense",
      "fold-bn: out.bn1: its producer 'out.relu1' (relu) is not a conv, transposed conv or dense; and its output is the graph output 'out'",
      "fold-bn: deconv.bn1: its producer 'deconv.relu1' (relu) is not a conv, transposed conv or dense; and its consumer 'deconv.deconv1' is a transposed conv, whose outputs sum a varying number of inputs near the borders, so the shift is no constant bias",
    ]);
    expect(run.graph).toBe(graph);
    expect(run.weights).toBe(weights);
    expect(run.changed).toBe(false);
  });

  it('with option training, folds only frozen BN into frozen layers', () => {
    const graph = compile(`model Frozen {
  input x: f32[N, 2, 4, 4]
  a = x -> conv(3, 1) -> bn
  b = x -> conv(3, 1) -> bn
  c = x -> conv(3, 1) -> bn
  output a, b, c
  freeze "a.conv1", "a.bn1", "b.bn1"
}`);
    const weights = weightsFor(graph);
    const run = runPass('fold-bn', graph, weights, { training: true });
    expect(run.result.applied).toEqual(['folded a.bn1 into a.conv1 (its producer)']);
    expect(run.result.refused).toEqual([
      "b.bn1: the batch norm is frozen but 'b.conv1' is trainable: training would change the frozen scale folded into it; and its output is the graph output 'b'",
      "c.bn1: the batch norm is trained (not frozen): in training it normalises with batch statistics, which is no fixed affine map (fold it for an inference export); and its output is the graph output 'c'",
    ]);
    // For an inference export (the default) all three fold.
    expect(runPass('fold-bn', graph, weights).result.applied).toHaveLength(3);
  });

  it('refuses tied weights and a consumer whose input scale was measured after the BN', () => {
    const graph = compile(`model Tied {
  input x: f32[N, 2, 4, 4]
  a = x -> conv(3, 1) -> bn
  b = x -> conv(3, 1) -> bn
  q = x -> relu -> bn -> conv(2, 1)
  output a, b, q
}`);
    const weights = new Map(weightsFor(graph));
    weights.set('b.conv1.weight', weights.get('a.conv1.weight')!);
    const quantized = withNode(graph, 'q.conv1', (n) => ({ ...n, quantization: { role: 'int8', inputs: [{ scale: 0.05, zeroPoint: 0 }], weights: 'per-channel-symmetric' } }));
    const run = runPass('fold-bn', quantized, weights);
    expect(run.result.applied).toEqual([]);
    expect(run.result.refused[0]).toContain("'a.conv1' shares weight storage with 'b.conv1.weight': folding would untie them");
    expect(run.result.refused[1]).toContain("'b.conv1' shares weight storage with 'a.conv1.weight'");
    expect(run.result.refused[2]).toContain("'q.conv1' recorded an input quantization scale measured after the batch norm");
  });

  it('needs weights: without them the manager refuses and nothing changes', () => {
    const graph = compile(EXAMPLE);
    const result = runPasses(graph, undefined, [getPass('fold-bn')!], { verify: true });
    expect(result.graph).toBe(graph);
    expect(result.diagnostics.map((d) => d.message)).toEqual(['fold-bn: needs weights; pass --weights']);
  });

  it('returns the same graph and weights without batch norms', () => {
    const graph = compile('model P {\n  input x: f32[N, 2, 4]\n  y = x -> conv(2, 1) -> relu\n  output y\n}');
    const weights = weightsFor(graph);
    const run = runPass('fold-bn', graph, weights);
    expect(run.graph).toBe(graph);
    expect(run.weights).toBe(weights);
    expect(run.changed).toBe(false);
  });

  it('golden: the example and residual specs before and after', async () => {
    for (const [spec, name] of [
      [EXAMPLE, 'example'],
      [RESIDUAL, 'residual'],
    ] as const) {
      const graph = compile(spec);
      await expect(goldenText('fold-bn', graph, runPass('fold-bn', graph, weightsFor(graph)))).toMatchFileSnapshot(`golden/fold-bn.${name}.txt`);
    }
  });
});

// -- property: random conv + BN stacks ---------------------------------------------------------------------

type Item =
  | { kind: 'conv'; filters: number; kernel: number; groups: number; bias: boolean; pad: number; relu: boolean }
  | { kind: 'dwconv'; multiplier: number; kernel: number; bias: boolean; relu: boolean }
  | { kind: 'deconv'; filters: number; kernel: number; stride: number; groups: number; bias: boolean; relu: boolean }
  | { kind: 'bn_conv'; filters: number; kernel: number; groups: number; bias: boolean; relu: boolean };
type Tail = { kind: 'none' } | { kind: 'dense' | 'bn_dense' | 'bn_flatten_dense'; units: number; bias: boolean };

const itemArbitrary: fc.Arbitrary<Item> = fc.oneof(
  fc.record({ kind: fc.constant('conv' as const), filters: fc.integer({ min: 1, max: 6 }), kernel: fc.integer({ min: 1, max: 3 }), groups: fc.integer({ min: 1, max: 3 }), bias: fc.boolean(), pad: fc.integer({ min: 0, max: 1 }), relu: fc.boolean() }),
  fc.record({ kind: fc.constant('dwconv' as const), multiplier: fc.integer({ min: 1, max: 2 }), kernel: fc.integer({ min: 1, max: 3 }), bias: fc.boolean(), relu: fc.boolean() }),
  fc.record({ kind: fc.constant('deconv' as const), filters: fc.integer({ min: 1, max: 4 }), kernel: fc.integer({ min: 1, max: 3 }), stride: fc.integer({ min: 1, max: 2 }), groups: fc.integer({ min: 1, max: 2 }), bias: fc.boolean(), relu: fc.boolean() }),
  fc.record({ kind: fc.constant('bn_conv' as const), filters: fc.integer({ min: 1, max: 6 }), kernel: fc.integer({ min: 1, max: 2 }), groups: fc.integer({ min: 1, max: 3 }), bias: fc.boolean(), relu: fc.boolean() }),
);
const tailArbitrary: fc.Arbitrary<Tail> = fc.oneof(
  fc.constant<Tail>({ kind: 'none' }),
  fc.record({ kind: fc.constantFrom('dense' as const, 'bn_dense' as const, 'bn_flatten_dense' as const), units: fc.integer({ min: 1, max: 5 }), bias: fc.boolean() }),
);

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

function pickGroups(channels: number, filters: number, pick: number): number {
  const common = gcd(channels, filters);
  const divisors = [...Array(common).keys()].map((i) => i + 1).filter((d) => common % d === 0);
  return divisors[Math.min(pick, divisors.length) - 1]!;
}

function stackSpec(rank: number, inputChannels: number, size: number, items: readonly Item[], tail: Tail): string {
  let channels = inputChannels;
  let spatial = size;
  const chain: string[] = ['x'];
  for (const item of items) {
    switch (item.kind) {
      case 'conv': {
        if (spatial + 2 * item.pad - item.kernel + 1 < 1) continue;
        chain.push(`conv(${item.filters}, ${item.kernel}, pad: ${item.pad}, groups: ${pickGroups(channels, item.filters, item.groups)}, bias: ${item.bias})`, 'bn(eps: 1e-3)');
        spatial = spatial + 2 * item.pad - item.kernel + 1;
        channels = item.filters;
        break;
      }
      case 'dwconv':
        if (channels * item.multiplier > 8) continue;
        chain.push(`dwconv(${item.kernel}, multiplier: ${item.multiplier}, pad: same, bias: ${item.bias})`, 'bn');
        channels *= item.multiplier;
        break;
      case 'deconv': {
        const out = (spatial - 1) * item.stride + item.kernel;
        if (out > 8) continue;
        chain.push(`deconv(${item.filters}, ${item.kernel}, stride: ${item.stride}, groups: ${pickGroups(channels, item.filters, item.groups)}, bias: ${item.bias})`, 'bn(eps: 0.1)');
        spatial = out;
        channels = item.filters;
        break;
      }
      case 'bn_conv':
        if (spatial - item.kernel + 1 < 1) continue;
        chain.push('bn', `conv(${item.filters}, ${item.kernel}, groups: ${pickGroups(channels, item.filters, item.groups)}, bias: ${item.bias})`);
        spatial = spatial - item.kernel + 1;
        channels = item.filters;
        break;
    }
    if (item.relu) chain.push('relu');
  }
  if (tail.kind === 'dense') chain.push('flatten', `dense(${tail.units}, bias: ${tail.bias})`, 'bn');
  if (tail.kind === 'bn_dense') chain.push('flatten', 'relu', 'bn', `dense(${tail.units}, bias: ${tail.bias})`);
  if (tail.kind === 'bn_flatten_dense') chain.push('relu', 'bn', 'flatten', `dense(${tail.units}, bias: ${tail.bias})`);
  const shape = rank === 1 ? `${size}` : `${size}, ${size}`;
  return `model Stack {\n  input x: f32[N, ${inputChannels}, ${shape}]\n  y = ${chain.join(' -> ')}\n  output y\n}\n`;
}

/** BN statistics from wide ranges (negative γ, tiny and large variances) instead of randomWeights' mild ones. */
function wideStatistics(graph: Graph, weights: Weights, seed: number): Weights {
  const random = createMulberry32(seed);
  const uniform = (low: number, high: number) => low + (high - low) * random();
  const result = new Map<string, WeightTensor>(weights);
  for (const node of graph.nodes) {
    if (node.op !== 'batchnorm') continue;
    const fill = (role: string, draw: () => number) => result.set(`${node.name}.${role}`, { shape: [node.channels], data: Float32Array.from({ length: node.channels }, draw) });
    fill('weight', () => uniform(-2, 2));
    fill('bias', () => uniform(-1, 1));
    fill('running_mean', () => uniform(-2, 2));
    fill('running_var', () => Math.exp(uniform(Math.log(1e-3), Math.log(4))));
  }
  return result;
}

describe('fold-bn property: random conv + BN stacks', () => {
  it('removes every BN and preserves outputs within 1e-5 of the largest output or sum of terms (float64, and float32-rounded)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(1, 2, 2),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 3, max: 5 }),
        fc.array(itemArbitrary, { minLength: 1, maxLength: 3 }),
        tailArbitrary,
        fc.integer({ min: 0, max: 10_000 }),
        (rank, channels, size, items, tail, seed) => {
          const graph = compile(stackSpec(rank, channels, size, items, tail));
          const weights = wideStatistics(graph, weightsFor(graph, seed), seed + 1);
          const run = runPass('fold-bn', graph, weights);
          expect(run.result.refused).toEqual([]);
          expect(run.graph.nodes.filter((n) => n.op === 'batchnorm')).toEqual([]);
          expect(run.changed).toBe(graph.nodes.some((n) => n.op === 'batchnorm'));
          outputsAgree(graph, weights, run.graph, run.weights ?? weights, seed + 2);
        },
      ),
      // The example once failed against the largest output alone: a BN shift of ~100 cancelled by the conv, then ReLU.
      { numRuns: 300, examples: [[1, 3, 3, [{ kind: 'bn_conv', filters: 2, kernel: 1, groups: 1, bias: true, relu: true }], { kind: 'none' }, 3438]] },
    );
  });
});

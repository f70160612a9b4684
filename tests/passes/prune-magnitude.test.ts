import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isWeighted, type Graph } from '../../src/ir/graph.js';
import type { Weights } from '../../src/ir/weights.js';
import { compile, goldenText, runPass, weightsFor } from './helpers.js';
import { specArbitrary } from './random-specs.js';
import { EXAMPLE } from './specs.js';

function zeros(data: Float32Array): number {
  return data.reduce((n, v) => n + (v === 0 ? 1 : 0), 0);
}

/** Every zeroed weight is no larger in magnitude than every kept one (over the tensors given). */
function smallestWereZeroed(before: Weights, after: Weights, names: readonly string[]): void {
  let largestZeroed = 0;
  let smallestKept = Number.POSITIVE_INFINITY;
  for (const name of names) {
    const original = before.get(name)!.data;
    after.get(name)!.data.forEach((v, i) => {
      if (v === 0) largestZeroed = Math.max(largestZeroed, Math.abs(original[i]!));
      else {
        expect(v).toBe(original[i]); // kept weights are untouched
        smallestKept = Math.min(smallestKept, Math.abs(v));
      }
    });
  }
  expect(largestZeroed).toBeLessThanOrEqual(smallestKept);
}

function weightNames(graph: Graph): string[] {
  return graph.nodes.filter(isWeighted).map((n) => `${n.name}.weight`);
}

describe('prune-magnitude', () => {
  const graph = compile(EXAMPLE);
  const weights = weightsFor(graph);

  it('zeroes the smallest half of each layer (scope layer) and reports each layer', () => {
    const run = runPass('prune-magnitude', graph, weights, { sparsity: 0.5 });
    expect(run.graph).toBe(graph); // the mask lives in the weights
    expect(run.changed).toBe(true);
    expect(run.result.applied).toEqual([
      'a.conv1: 50.0% zero (108 of 216 weights)',
      'b.dwconv1: 50.0% zero (36 of 72 weights)',
      'b.conv1: 50.0% zero (64 of 128 weights)',
      'c.conv1: 50.0% zero (32 of 64 weights)',
      'd.deconv1: 50.0% zero (288 of 576 weights)',
      'logits.dense1: 50.0% zero (20 of 40 weights)',
    ]);
    for (const name of weightNames(graph)) smallestWereZeroed(weights, run.weights!, [name]);
    // Biases and batch norms are left alone; the input weights are untouched.
    for (const [name, tensor] of run.weights!) if (!name.endsWith('.weight') || name.includes('bn')) expect(tensor).toBe(weights.get(name));
    expect(zeros(weights.get('a.conv1.weight')!.data)).toBe(0);
  });

  it('ranks all layers together with scope global', () => {
    const run = runPass('prune-magnitude', graph, weights, { sparsity: 0.7, scope: 'global' });
    const names = weightNames(graph);
    const total = names.reduce((n, name) => n + weights.get(name)!.data.length, 0);
    const zeroed = names.reduce((n, name) => n + zeros(run.weights!.get(name)!.data), 0);
    expect(zeroed).toBe(total - Math.round(total * 0.3));
    smallestWereZeroed(weights, run.weights!, names);
    // One threshold: layers end up with different sparsities.
    expect(new Set(run.result.applied.map((line) => line.split(': ')[1]!.split('%')[0])).size).toBeGreaterThan(1);
  });

  it('leaves excluded layers dense and says so', () => {
    const run = runPass('prune-magnitude', graph, weights, { sparsity: 0.5, exclude: ['a.*', 'logits.dense1'] });
    expect(run.weights!.get('a.conv1.weight')).toBe(weights.get('a.conv1.weight'));
    expect(run.weights!.get('logits.dense1.weight')).toBe(weights.get('logits.dense1.weight'));
    expect(run.result.refused).toEqual(['a.conv1: excluded by option', 'logits.dense1: excluded by option']);
  });

  it('is the identity at sparsity 0 and on weights already that sparse', () => {
    const none = runPass('prune-magnitude', graph, weights, { sparsity: 0 });
    expect(none.weights).toBe(weights);
    expect(none.changed).toBe(false);
    const once = runPass('prune-magnitude', graph, weights, { sparsity: 0.4 });
    const twice = runPass('prune-magnitude', graph, once.weights, { sparsity: 0.4 });
    expect(twice.weights).toBe(once.weights);
    expect(twice.changed).toBe(false);
  });

  it('refuses unusable options with the reason and changes nothing', () => {
    const run = runPass('prune-magnitude', graph, weights, { sparsity: 1.5 });
    expect(run.messages).toEqual(['prune-magnitude: option sparsity must be a number in [0, 1] (got 1.5)']);
    expect(run.weights).toBe(weights);
    expect(runPass('prune-magnitude', graph, weights, { scope: 'model' }).result.refused).toEqual(["option scope must be 'layer' or 'global' (got \"model\")"]);
  });

  it('golden: the example spec (the graph is unchanged; the report gives the sparsity)', async () => {
    await expect(goldenText('prune-magnitude', graph, runPass('prune-magnitude', graph, weights, { sparsity: 0.5 }))).toMatchFileSnapshot('golden/prune-magnitude.example.txt');
  });

  it('property: on random specs each layer reaches the requested sparsity by magnitude', () => {
    fc.assert(
      fc.property(specArbitrary, fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: 0, max: 1000 }), (text, sparsity, seed) => {
        const random = compile(text);
        const original = weightsFor(random, seed);
        const run = runPass('prune-magnitude', random, original, { sparsity });
        for (const name of weightNames(random)) {
          const size = original.get(name)!.data.length;
          expect(zeros(run.weights!.get(name)!.data)).toBe(size - Math.round(size * (1 - sparsity)));
          smallestWereZeroed(original, run.weights!, [name]);
        }
        expect(run.graph).toBe(random);
      }),
      { numRuns: 60 },
    );
  });
});

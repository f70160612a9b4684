import { describe, expect, it } from 'vitest';
import { verifyGraph } from '../../src/ir/verify.js';
import { compile, goldenText, keptNodesUnchangedIn, runPass, weightsFor } from './helpers.js';
import { EXAMPLE, RESIDUAL } from './specs.js';

describe('eliminate-dead', () => {
  it('removes nodes that reach no output, with their weights', () => {
    const graph = compile(RESIDUAL);
    const weights = weightsFor(graph);
    const run = runPass('eliminate-dead', graph, weights);
    expect(run.result.applied).toEqual(['removed unused.conv1 (conv): it reaches no output', 'removed unused.relu1 (activation): it reaches no output']);
    expect(run.graph.nodes.map((n) => n.name)).toEqual(graph.nodes.map((n) => n.name).filter((n) => !n.startsWith('unused.')));
    expect([...run.weights!.keys()].filter((k) => k.startsWith('unused.'))).toEqual([]);
    expect(weights.has('unused.conv1.weight')).toBe(true); // the input map is untouched
    expect(verifyGraph(run.graph, run.weights)).toEqual([]);
    keptNodesUnchangedIn(graph, run.graph);
    for (const node of run.graph.nodes) expect(node).toBe(graph.nodes.find((n) => n.name === node.name));
  });

  it('keeps unused graph inputs (the model interface) and works without weights', () => {
    const graph = compile(`model T {
  input a: f32[N, 2, 4]
  input b: f32[N, 2, 4]
  y = a -> relu
  side = a -> conv(3, 1) -> relu -> conv(2, 1)
  output y
}`);
    const run = runPass('eliminate-dead', graph);
    expect(run.graph.inputs.map((i) => i.name)).toEqual(['a', 'b']);
    expect(run.graph.nodes.map((n) => n.name)).toEqual(['y.relu1']);
    expect(run.weights).toBeUndefined();
  });

  it('returns the same graph and weights when everything is live', () => {
    const graph = compile(EXAMPLE);
    const weights = weightsFor(graph);
    const run = runPass('eliminate-dead', graph, weights);
    expect(run.graph).toBe(graph);
    expect(run.weights).toBe(weights);
    expect(run.changed).toBe(false);
    expect(run.messages).toEqual([]);
  });

  it('golden: the residual spec before and after', async () => {
    const graph = compile(RESIDUAL);
    await expect(goldenText('eliminate-dead', graph, runPass('eliminate-dead', graph))).toMatchFileSnapshot('golden/eliminate-dead.residual.txt');
  });
});

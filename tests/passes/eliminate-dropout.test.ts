import { describe, expect, it } from 'vitest';
import { compile, goldenText, keptNodesUnchangedIn, runPass, weightsFor } from './helpers.js';
import { EXAMPLE } from './specs.js';

describe('eliminate-dropout', () => {
  it('removes dropout and rewires its readers to its input, keeping every other node as it was', () => {
    const graph = compile(EXAMPLE);
    const weights = weightsFor(graph);
    const run = runPass('eliminate-dropout', graph, weights);
    expect(run.changed).toBe(true);
    expect(run.messages).toEqual(['eliminate-dropout: removed a.dropout1 (dropout 0.2); its readers read a.relu1']);
    expect(run.graph.nodes.map((n) => n.name)).toEqual(graph.nodes.map((n) => n.name).filter((n) => n !== 'a.dropout1'));
    const byName = new Map(run.graph.nodes.map((n) => [n.name, n]));
    expect(byName.get('b.dwconv1')!.inputs).toEqual(['a.relu1']);
    expect(byName.get('c.conv1')!.inputs).toEqual(['a.relu1']);
    // Nodes that did not read the dropout are the very same objects.
    for (const node of run.graph.nodes) if (!['b.dwconv1', 'c.conv1'].includes(node.name)) expect(node).toBe(graph.nodes.find((n) => n.name === node.name));
    keptNodesUnchangedIn(graph, run.graph);
    // No weights change: the same map comes back.
    expect(run.weights).toBe(weights);
  });

  it('forwards a graph output that named the dropout, keeping the output name', () => {
    const graph = compile(`model D {
  input image: f32[N, 2, 4, 4]
  y = image -> conv(2, 1) -> spatial_dropout(0.3) -> dropout(0.5)
  z = image -> dropout(0.1)
  output y, z
}`);
    const run = runPass('eliminate-dropout', graph);
    expect(run.graph.nodes.map((n) => n.op)).toEqual(['conv']);
    expect(run.graph.outputs.map((o) => [o.name, o.value])).toEqual([
      ['y', 'y.conv1'],
      ['z', 'image'],
    ]);
    expect(run.result.applied).toHaveLength(3);
  });

  it('returns the same graph object when there is no dropout (changed is an identity check)', () => {
    const graph = compile(`model P {
  input image: f32[N, 2, 4, 4]
  y = image -> conv(2, 1) -> relu
  output y
}`);
    const run = runPass('eliminate-dropout', graph);
    expect(run.graph).toBe(graph);
    expect(run.changed).toBe(false);
    expect(run.messages).toEqual([]);
  });

  it('golden: the example spec before and after', async () => {
    const graph = compile(EXAMPLE);
    await expect(goldenText('eliminate-dropout', graph, runPass('eliminate-dropout', graph))).toMatchFileSnapshot('golden/eliminate-dropout.example.txt');
  });
});

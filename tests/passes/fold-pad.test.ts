import { describe, expect, it } from 'vitest';
import type { Node } from '../../src/ir/graph.js';
import { compile, goldenText, keptNodesUnchangedIn, randomInputs, runPass, weightsFor } from './helpers.js';
import { compareOutputs, runReference } from './reference.js';
import { EXAMPLE, RESIDUAL } from './specs.js';

/** Every fold-pad situation on 1D or 2D maps: matches and refusals. */
export const PADS = `model Pads {
  input x: f32[N, 2, 6, 6]
  input s: f32[N, 1, 5]
  conv_same = x -> pad([[1, 0], [2, 1]]) -> conv(3, 3, pad: same)
  avg_counted = x -> pad([[1, 1], [1, 1]]) -> avgpool(3, stride: 2, pad: 1, count_include_pad: true)
  avg_plain = x -> pad([[0, 1], [1, 0]]) -> avgpool(2, count_include_pad: false)
  avg_excluded = x -> pad([[1, 1], [1, 1]]) -> avgpool(3, pad: 1, count_include_pad: false)
  max_inf = x -> pad([[1, 1], [0, 1]], value: -1e30) -> maxpool(2, stride: 1)
  max_zero = x -> pad([[1, 1], [1, 1]]) -> maxpool(2)
  max_wide = x -> pad([[2, 0], [0, 0]], value: -1e30) -> maxpool(2)
  reflected = x -> pad([[1, 1], [1, 1]], mode: reflect) -> conv(2, 3)
  edged = x -> pad([[1, 1], [1, 1]], mode: edge) -> conv(2, 3)
  valued = x -> pad([[1, 1], [1, 1]], value: 0.5) -> conv(2, 3)
  into_deconv = x -> pad([[1, 1], [1, 1]]) -> deconv(2, 3)
  shared = x -> pad([[1, 1], [1, 1]])
  shared_conv = shared -> conv(2, 3)
  shared_relu = shared -> relu
  nothing = x -> pad([[0, 0], [0, 0]]) -> relu
  ceil_changes = s -> pad([[0, 2]]) -> avgpool(2, ceil: true, count_include_pad: true)
  ceil_same = s -> pad([[1, 0]]) -> avgpool(2, ceil: true, count_include_pad: true)
  twice = x -> pad([[1, 0], [0, 0]]) -> pad([[0, 1], [1, 1]]) -> conv(2, 3)
  mirrors = x -> pad([[1, 1], [1, 1]], mode: reflect) -> pad([[1, 1], [1, 1]], mode: reflect)
  output conv_same, avg_counted, avg_plain, avg_excluded, max_inf, max_zero, max_wide, reflected, edged, valued, into_deconv, shared_conv, shared_relu, shared, nothing, ceil_changes, ceil_same, twice, mirrors
}
`;

function node(nodes: readonly Node[], name: string): Node {
  const found = nodes.find((n) => n.name === name);
  if (!found) throw new Error(`no node ${name}`);
  return found;
}

describe('fold-pad', () => {
  const graph = compile(PADS);
  const weights = weightsFor(graph);
  const run = runPass('fold-pad', graph, weights);
  const after = run.graph.nodes;

  it('moves a zero pad into a conv, summing pads and making SAME explicit', () => {
    const conv = node(after, 'conv_same.conv1') as Extract<Node, { op: 'conv' }>;
    expect(conv.inputs).toEqual(['x']);
    expect(conv.padMode).toBe('explicit');
    expect(conv.padding).toEqual({ begin: [2, 3], end: [1, 2] });
    expect(after.some((n) => n.name === 'conv_same.pad1')).toBe(false);
    expect(run.result.applied).toContain('folded conv_same.pad1 [[1, 0], [2, 1]] into conv_same.conv1');
  });

  it('moves zeros into an average pool that counts pads, or one without pads of its own (switching the count on)', () => {
    expect(node(after, 'avg_counted.avgpool1')).toMatchObject({ inputs: ['x'], padding: { begin: [2, 2], end: [2, 2] }, countIncludePad: true });
    expect(node(after, 'avg_plain.avgpool1')).toMatchObject({ inputs: ['x'], padding: { begin: [0, 1], end: [1, 0] }, countIncludePad: true });
  });

  it('moves a −1e30 pad into a max pool while every window keeps a real element', () => {
    expect(node(after, 'max_inf.maxpool1')).toMatchObject({ inputs: ['x'], padding: { begin: [1, 0], end: [1, 1] } });
  });

  it('refuses, with the reason, where the fold would change values', () => {
    const refused = run.result.refused;
    expect(refused).toContain("avg_excluded.pad1 into avg_excluded.avgpool1: the pool leaves its own pads out of the divisor (count_include_pad: false) but the pad op's zeros are counted");
    expect(refused).toContain('max_zero.pad1 into max_zero.maxpool1: a max pool pads with −inf; the pad value 0 would win the max where inputs are below it (use a value ≤ -1e+30)');
    expect(refused).toContain('max_wide.pad1 into max_wide.maxpool1: on axis 0 a window would hold only padding, where −inf and -1e+30 differ');
    expect(refused).toContain('reflected.pad1 into reflected.conv1: reflect padding repeats data; an op\'s own padding writes a constant');
    expect(refused).toContain('edged.pad1 into edged.conv1: edge padding repeats data; an op\'s own padding writes a constant');
    expect(refused).toContain('valued.pad1 into valued.conv1: a conv pads with zeros; the pad value is 0.5');
    expect(refused).toContain("into_deconv.pad1 into into_deconv.deconv1: a transposed conv's pads crop its output; they cannot pad its input");
    expect(refused).toContain('ceil_changes.pad1 into ceil_changes.avgpool1: in ceil mode the folded pool\'s output would be [N, 1, 3], not [N, 1, 4]');
    for (const name of ['avg_excluded', 'max_zero', 'max_wide', 'reflected', 'edged', 'valued', 'into_deconv', 'ceil_changes']) expect(node(after, `${name}.pad1`)).toBe(node(graph.nodes, `${name}.pad1`));
  });

  it('folds a pad with two readers into the one that can take it and keeps it for the other', () => {
    expect(node(after, 'shared_conv.conv1').inputs).toEqual(['x']);
    expect(node(after, 'shared_relu.relu1').inputs).toEqual(['shared.pad1']);
    expect(run.result.refused).toContain('shared.pad1 into shared_relu.relu1: relu has no padding of its own to absorb it');
    expect(run.result.refused).toContain("shared.pad1: it is the graph output 'shared'");
  });

  it('removes a pad of zero and folds in ceil mode when the output size stays', () => {
    expect(node(after, 'nothing.relu1').inputs).toEqual(['x']);
    expect(node(after, 'ceil_same.avgpool1')).toMatchObject({ inputs: ['s'], padding: { begin: [1], end: [0] } });
  });

  it('merges two constant pads in a row, then folds the result', () => {
    expect(node(after, 'twice.conv1')).toMatchObject({ inputs: ['x'], padding: { begin: [1, 1], end: [1, 1] } });
    expect(run.result.applied).toContain('merged twice.pad1 [[1, 0], [0, 0]] into twice.pad2');
    expect(run.result.applied).toContain('folded twice.pad2 [[1, 1], [1, 1]] into twice.conv1');
    expect(run.result.refused).toContain('mirrors.pad1 into mirrors.pad2: reflecting twice mirrors the padded data, not the input');
    expect(runPass('fold-pad', run.graph).changed).toBe(false);
  });

  it('preserves every output exactly and keeps names and spans', () => {
    keptNodesUnchangedIn(graph, run.graph);
    const inputs = randomInputs(graph, 7);
    // Make some inputs very negative so that a wrong max-pool fold would show.
    inputs.get('x')!.data.forEach((v, i, data) => (data[i] = v - 3));
    const { maxError } = compareOutputs(runReference(graph, weights, inputs), runReference(run.graph, run.weights!, inputs));
    expect(maxError).toBe(0);
  });

  it('returns the same graph when there is no pad to fold', () => {
    const plain = compile(EXAMPLE.replace(' -> pad([[1, 1], [0, 1]])', ''));
    const result = runPass('fold-pad', plain);
    expect(result.graph).toBe(plain);
    expect(result.changed).toBe(false);
  });

  it('golden: the residual spec and the pads spec before and after', async () => {
    const residual = compile(RESIDUAL);
    await expect(goldenText('fold-pad', residual, runPass('fold-pad', residual))).toMatchFileSnapshot('golden/fold-pad.residual.txt');
    await expect(goldenText('fold-pad', graph, run)).toMatchFileSnapshot('golden/fold-pad.pads.txt');
  });
});

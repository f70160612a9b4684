/**
 * The `quantize` pass: which nodes run on int8 and with which parameters, what it refuses and why, exclusions,
 * an honest `changed`, and the spec-comment convention for exclusions.
 */
import { describe, expect, it } from 'vitest';
import { consumers } from '../../src/ir/graph.js';
import { verifyGraph } from '../../src/ir/verify.js';
import { getPass } from '../../src/passes/manager.js';
import { INT8_MIN, planQuantization, quantizationTargets, quantizedTensors, specQuantizeExclusions } from '../../src/passes/quantize.js';
import type { CalibrationRange } from '../../src/passes/quantize-calibration.js';
import { compile } from './helpers.js';

const SPEC = `model Q {
  input x: f32[N, 3, 8, 8]
  a = x -> conv(4, 3, pad: 1) -> relu
  b = a -> conv(4, 3, pad: 1)
  c = relu(a + b)
  d = c -> maxpool(2) -> conv(6, 1) -> bn -> sigmoid
  y = d -> globalavgpool -> flatten -> dense(3)
  output y
}`;

const graph = compile(SPEC);
const pass = getPass('quantize')!;

/** ReLU outputs get [0, 3], everything else [−1, 2]. */
function syntheticRanges(exclude: readonly string[] = []): Map<string, CalibrationRange> {
  const byName = new Map(graph.nodes.map((n) => [n.name, n]));
  return new Map(
    quantizationTargets(graph, { exclude }).map((t) => {
      const node = byName.get(t);
      return [t, node?.op === 'activation' && node.fn.kind === 'relu' ? { min: 0, max: 3 } : { min: -1, max: 2 }];
    }),
  );
}

function run(options: Record<string, unknown>) {
  return pass.run(graph, { weights: undefined, options });
}

describe('quantize pass', () => {
  it('without calibrated ranges it changes nothing and says why', () => {
    const result = run({});
    expect(result.graph).toBe(graph);
    expect(result.applied).toEqual([]);
    expect(result.refused[0]).toMatch(/needs calibrated activation ranges/);
  });

  it('a missing range is named and nothing changes', () => {
    const ranges = syntheticRanges();
    ranges.delete('b.conv1');
    const result = run({ ranges });
    expect(result.graph).toBe(graph);
    expect(result.refused).toEqual(["cannot quantize: no calibrated range for 'b.conv1'"]);
  });

  it('annotates int8 ops, folds ReLUs into their producer, passes max pool and flatten through', () => {
    const result = run({ ranges: syntheticRanges() });
    expect(verifyGraph(result.graph)).toEqual([]);
    const info = new Map(result.graph.nodes.map((n) => [n.name, n.quantization]));
    expect(info.get('a.conv1')).toMatchObject({ role: 'int8', weights: 'per-channel-symmetric' });
    expect(info.get('a.conv1')!.output).toBeUndefined(); // its output goes through the folded ReLU
    expect(info.get('a.relu1')).toMatchObject({ role: 'folded-activation', inputs: [null] });
    expect(info.get('a.relu1')!.output!.zeroPoint).toBe(INT8_MIN);
    expect(info.get('b.conv1')!.output).toBeDefined(); // read by the add: quantized itself
    expect(info.get('c.add1')).toMatchObject({ role: 'int8' });
    expect(info.get('c.add1')!.inputs).toEqual([info.get('a.relu1')!.output, info.get('b.conv1')!.output]);
    expect(info.get('c.relu1')!.role).toBe('folded-activation');
    // pass-through: the output shares the input's parameters, so ORT drops the Q/DQ pair
    expect(info.get('d.maxpool1')).toMatchObject({ role: 'pass-through' });
    expect(info.get('d.maxpool1')!.output).toEqual(info.get('c.relu1')!.output);
    expect(info.get('y.flatten1')!.output).toEqual(info.get('y.globalavgpool1')!.output);
    // d.conv1 feeds a batch norm that stayed float: its output is still quantized so the conv fuses
    expect(info.get('d.conv1')!.output).toBeDefined();
    expect(info.get('d.bn1')).toBeUndefined();
    expect(info.get('d.sigmoid1')).toMatchObject({ role: 'int8' });
    // the graph output stays float (QGemm writes float)
    expect(info.get('y.dense1')).toMatchObject({ role: 'int8', weights: 'per-channel-symmetric' });
    expect(info.get('y.dense1')!.output).toBeUndefined();
    expect(result.refused).toContain('d.bn1: stays float (batch norm has no int8 kernel; fold it into its conv first (fold-bn))');
    expect(result.applied.find((l) => l.startsWith('a.conv1:'))).toMatch(/QLinearConv .*output through a\.relu1, folded/);
  });

  it('keeps names, shapes and the float function; a second run changes nothing', () => {
    const ranges = syntheticRanges();
    const first = run({ ranges });
    expect(first.graph.nodes.map((n) => [n.name, n.op, n.shape])).toEqual(graph.nodes.map((n) => [n.name, n.op, n.shape]));
    const again = pass.run(first.graph, { weights: undefined, options: { ranges } });
    expect(again.graph).toBe(first.graph);
    // one set of parameters per tensor
    const tensors = quantizedTensors(first.graph);
    expect(tensors.has('x')).toBe(true);
    expect(tensors.has('a.conv1')).toBe(false);
  });

  it('respects exclusions: an excluded conv stays float, and so does the int8 op that reads it (with the reason)', () => {
    const result = run({ ranges: syntheticRanges(['b.*']), exclude: ['b.*'] });
    const info = new Map(result.graph.nodes.map((n) => [n.name, n.quantization]));
    expect(info.get('b.conv1')).toBeUndefined();
    expect(result.refused).toContain('b.conv1: stays float (excluded)');
    // an int8 add would quantize b's output right after a conv whose input is dequantized: ONNX Runtime would
    // then quantize b itself (WeightBiasQuantization), so the add stays float and b's output is never quantized
    expect(info.get('c.add1')).toBeUndefined();
    expect(result.refused.find((l) => l.startsWith('c.add1:'))).toMatch(/reads b\.conv1 of the float layer b\.conv1/);
    expect(quantizedTensors(result.graph).has('b.conv1')).toBe(false);
    // the rest is still int8
    expect(info.get('a.conv1')!.role).toBe('int8');
    expect(info.get('d.conv1')!.role).toBe('int8');
  });

  it('a ReLU with two readers of its producer stays float, with the reason', () => {
    const g = compile(`model R {
  input x: f32[N, 2, 4, 4]
  a = x -> conv(2, 1)
  r = a -> relu
  y = a + r
  output y
}`);
    const plan = planQuantization(g, new Map(quantizationTargets(g).map((t) => [t, { min: -1, max: 1 }])));
    if ('problems' in plan) throw new Error(plan.problems.join());
    expect(plan.refused.some((l) => l.startsWith('r.relu1: stays float (not folded'))).toBe(true);
    expect(consumers(g).get('a.conv1')!.length).toBe(2);
  });
});

describe('spec-level exclusions', () => {
  it('reads `// quantize: exclude …` comment lines', () => {
    const text = `// a spec\n  // quantize: exclude stem.conv1, stage3.*\nmodel M {\n// quantize: exclude head.dense1\n}`;
    expect(specQuantizeExclusions(text)).toEqual(['stem.conv1', 'stage3.*', 'head.dense1']);
    expect(specQuantizeExclusions('// quantize this model later')).toEqual([]);
  });
});

/**
 * Weight initialisation and the row-major permutation every layout conversion uses.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileSpec } from '../../src/testing.js';
import { graphParameters } from '../../src/ir/params.js';
import { initializeWeights, permuteTensor } from '../../src/ir/weights.js';
import { createMulberry32, deriveSeed } from '../../src/random.js';

describe('initializeWeights', () => {
  const graph = compileSpec(`model M {
  input x: f32[N, 3, 8, 8]
  y = x -> conv(4, 3) -> bn -> relu -> flatten -> dense(5)
  output y
}`).graph!;

  it('draws He-uniform weights from the mulberry32 stream of each parameter, zero biases and identity batch norm', () => {
    const weights = initializeWeights(graph, 7);
    for (const param of graphParameters(graph.nodes)) {
      const { data } = weights.get(param.name)!;
      if (param.role === 'weight' && param.shape.length >= 2) {
        let hash = 0;
        for (let i = 0; i < param.name.length; i++) hash = (Math.imul(hash, 31) + param.name.charCodeAt(i)) >>> 0;
        const random = createMulberry32(deriveSeed(7, hash));
        const bound = Math.sqrt(6 / param.shape.slice(1).reduce((a, b) => a * b, 1));
        const expected = Float32Array.from(data, () => (2 * random() - 1) * bound);
        expect(data, param.name).toEqual(expected);
        expect(Math.max(...data.map(Math.abs))).toBeLessThanOrEqual(bound);
      } else {
        const one = param.role === 'running_var' || (param.role === 'weight' && param.shape.length === 1);
        expect([...new Set(data)], param.name).toEqual([one ? 1 : 0]);
      }
    }
    expect(initializeWeights(graph, 8).get('y.conv1.weight')!.data).not.toEqual(weights.get('y.conv1.weight')!.data);
  });
});

describe('permuteTensor', () => {
  it('moves every element to its permuted index, and the inverse permutation restores the data', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 5 }), fc.nat(), (shape, pick) => {
        const rank = shape.length;
        const perm = Array.from({ length: rank }, (_, i) => i);
        for (let i = rank - 1; i > 0; i--) {
          const j = (pick + i * 7) % (i + 1);
          [perm[i], perm[j]] = [perm[j]!, perm[i]!];
        }
        const size = shape.reduce((a, b) => a * b, 1);
        const data = Float32Array.from({ length: size }, (_, i) => i);
        const out = permuteTensor({ shape, data }, perm);
        expect(out.shape).toEqual(perm.map((a) => shape[a]));
        const strides = shape.map((_, a) => shape.slice(a + 1).reduce((x, y) => x * y, 1));
        const outStrides = out.shape.map((_, a) => out.shape.slice(a + 1).reduce((x, y) => x * y, 1));
        for (let target = 0; target < size; target++) {
          const index = outStrides.map((s, a) => Math.floor(target / s) % out.shape[a]!);
          const source = index.reduce((sum, i, a) => sum + i * strides[perm[a]!]!, 0);
          expect(out.data[target]).toBe(source);
        }
        const inverse = new Array<number>(rank);
        perm.forEach((a, i) => (inverse[a] = i));
        expect(permuteTensor(out, inverse).data).toEqual(data);
      }),
      { numRuns: 200 },
    );
  });
});

/**
 * TF-MOT's polynomial-decay sparsity schedule s_t = s_f + (s_i − s_f)(1 − (t − t₀)/(t₁ − t₀))³ and when masks are
 * recomputed.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { defaultSchedule, isPruningStep, polynomialSparsity } from '../../src/runtime/prune.js';

describe('polynomial sparsity schedule', () => {
  const schedule = { initialSparsity: 0, finalSparsity: 0.8, beginStep: 0, endStep: 100, frequency: 10 };

  it('starts at s_i, ends at s_f, follows the cubic in between', () => {
    expect(polynomialSparsity(schedule, 0)).toBe(0);
    expect(polynomialSparsity(schedule, 100)).toBe(0.8);
    expect(polynomialSparsity(schedule, 250)).toBe(0.8);
    expect(polynomialSparsity(schedule, 50)).toBeCloseTo(0.8 * (1 - 0.5 ** 3), 12);
    expect(polynomialSparsity(schedule, 10)).toBeCloseTo(0.8 * (1 - 0.9 ** 3), 12);
  });

  it('property: non-decreasing and within [s_i, s_f]', () => {
    fc.assert(
      fc.property(fc.double({ min: 0, max: 0.99, noNaN: true }), fc.integer({ min: 1, max: 10000 }), fc.integer({ min: 0, max: 20000 }), (sf, end, t) => {
        const s = { initialSparsity: 0, finalSparsity: sf, beginStep: 0, endStep: end, frequency: 1 };
        const a = polynomialSparsity(s, t);
        const b = polynomialSparsity(s, t + 1);
        expect(b).toBeGreaterThanOrEqual(a - 1e-15);
        expect(a).toBeGreaterThanOrEqual(0);
        expect(a).toBeLessThanOrEqual(sf + 1e-15);
      }),
    );
  });

  it('recomputes masks every `frequency` steps and at t₁, never after', () => {
    const steps = Array.from({ length: 120 }, (_, i) => i + 1).filter((t) => isPruningStep({ ...schedule, endStep: 95 }, t));
    expect(steps).toEqual([10, 20, 30, 40, 50, 60, 70, 80, 90, 95]);
  });

  it('the default reaches s_f at 70 % of the steps, with about 20 mask updates', () => {
    const s = defaultSchedule(0.8, 1000);
    expect(s).toEqual({ initialSparsity: 0, finalSparsity: 0.8, beginStep: 0, endStep: 700, frequency: 35 });
    expect(defaultSchedule(0.5, 3)).toMatchObject({ endStep: 3, frequency: 1 });
  });
});

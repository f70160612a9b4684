/**
 * Properties over random specs: every pass that claims to preserve outputs does so within its stated tolerance
 * (float64 reference interpreter), keeps the verifier clean, is pure (inputs untouched) and honest about
 * `changed`; a second run finds nothing to do.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { verifyGraph } from '../../src/ir/verify.js';
import { OPTIMISATION_PASSES } from '../../src/passes/index.js';
import { compile, keptNodesUnchangedIn, randomInputs, runPass, weightsFor } from './helpers.js';
import { compareOutputs, runReference } from './reference.js';
import { specArbitrary } from './random-specs.js';

const RUNS = 100;

describe('random specs', () => {
  it('compile and verify (the generator is sound)', () => {
    fc.assert(
      fc.property(specArbitrary, (text) => {
        const graph = compile(text);
        expect(verifyGraph(graph, weightsFor(graph))).toEqual([]);
      }),
      { numRuns: 200 },
    );
  });
});

const preserving = OPTIMISATION_PASSES.filter((p) => Number.isFinite(p.tolerance));

describe.each(preserving.map((p) => [p.name, p] as const))('%s preserves outputs on random specs', (name, pass) => {
  it(`within ${pass.tolerance} of the largest output, purely, and idempotently`, () => {
    fc.assert(
      fc.property(specArbitrary, fc.integer({ min: 0, max: 1000 }), (text, seed) => {
        const graph = compile(text);
        const weights = weightsFor(graph, seed);
        const graphBefore = JSON.stringify(graph);
        const weightsBefore = [...weights].map(([k, t]) => [k, [...t.data]]);
        const run = runPass(name, graph, weights);
        // Pure: nothing the pass was given changed.
        expect(JSON.stringify(graph)).toBe(graphBefore);
        expect([...weights].map(([k, t]) => [k, [...t.data]])).toEqual(weightsBefore);
        // Honest: "changed" is an identity check and agrees with the report.
        expect(run.changed).toBe(run.graph !== graph || run.weights !== weights);
        if (!run.changed) expect(run.result.applied).toEqual([]);
        keptNodesUnchangedIn(graph, run.graph);
        const inputs = randomInputs(graph, seed);
        const expected = runReference(graph, weights, inputs);
        const actual = runReference(run.graph, run.weights!, inputs);
        const { maxError, maxMagnitude } = compareOutputs(expected, actual);
        expect(maxError).toBeLessThanOrEqual(pass.tolerance * Math.max(maxMagnitude, 1e-30));
        // Idempotent: nothing left to do.
        const again = runPass(name, run.graph, run.weights);
        expect(again.changed).toBe(false);
      }),
      { numRuns: RUNS },
    );
  });
});

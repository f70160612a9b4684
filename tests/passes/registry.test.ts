import { describe, expect, it } from 'vitest';
import { OPTIMISATION_PASSES } from '../../src/passes/index.js';
import { getPass, passNames, resolvePassList } from '../../src/passes/manager.js';

describe('pass registry', () => {
  it('registers every optimisation pass once, with a stated contract', () => {
    expect(OPTIMISATION_PASSES.map((p) => p.name)).toEqual(['eliminate-dropout', 'eliminate-dead', 'fold-pad', 'fold-bn', 'prune-magnitude', 'prune-filters', 'quantize']);
    for (const pass of OPTIMISATION_PASSES) {
      expect(getPass(pass.name)).toBe(pass);
      expect(pass.description.length).toBeGreaterThan(20);
      expect(pass.tolerance).toBeGreaterThanOrEqual(0);
    }
    expect(new Set(passNames()).size).toBe(passNames().length);
    // Inference-only passes are the ones that change training behaviour.
    expect(OPTIMISATION_PASSES.filter((p) => p.inferenceOnly).map((p) => p.name)).toEqual(['eliminate-dropout', 'fold-bn']);
    expect(OPTIMISATION_PASSES.filter((p) => p.needsWeights).map((p) => p.name)).toEqual(['fold-bn', 'prune-magnitude', 'prune-filters']);
  });

  it('resolves a pass list and names the valid passes for an unknown one', () => {
    const { passes, diagnostics } = resolvePassList('eliminate-dropout, fold-bn,fold-pad', ['fold-pad']);
    expect(passes.map((p) => p.name)).toEqual(['eliminate-dropout', 'fold-bn']);
    expect(diagnostics).toEqual([]);
    const unknown = resolvePassList('fold-batchnorm');
    expect(unknown.diagnostics[0]!.message).toContain("unknown pass 'fold-batchnorm'");
    expect(unknown.diagnostics[0]!.message).toContain('fold-bn');
  });
});

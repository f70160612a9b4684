/**
 * Weights that do not fit a graph, as diagnostics placed on the layer that owns each tensor: what every exporter
 * reports before it builds anything, so a bad weights file never half-writes an output.
 */
import { diagnostic, type Diagnostic } from '../diagnostics.js';
import type { Graph } from '../ir/graph.js';
import { graphParameters } from '../ir/params.js';
import { checkWeights, type Weights } from '../ir/weights.js';

/** One diagnostic per missing, misshapen or unused tensor (CNN codes `weightMissing`, `weightShape`, `weightUnused`). */
export function weightDiagnostics(graph: Graph, weights: Weights): Diagnostic[] {
  const spans = new Map(graph.nodes.map((n) => [n.name, n.span]));
  const owner = new Map(graphParameters(graph.nodes).map((p) => [p.name, p.node]));
  const shape = (dims: readonly number[] | undefined) => `[${(dims ?? []).join(', ')}]`;
  return checkWeights(graph, weights).map((problem) => {
    const span = spans.get(owner.get(problem.name) ?? '');
    switch (problem.kind) {
      case 'missing':
        return diagnostic('weightMissing', span, [problem.name, shape(problem.expected)]);
      case 'shape':
        return diagnostic('weightShape', span, [problem.name, shape(problem.expected), shape(problem.found)]);
      case 'unused':
        return diagnostic('weightUnused', undefined, [problem.name, shape(problem.found)]);
    }
  });
}

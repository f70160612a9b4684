/**
 * `checkSpec`: what `convspec check` and `convspec summary` run — elaboration, receptive fields, cost, then the
 * spec's `assert`s evaluated against those analyses. Every problem comes back as a diagnostic, sorted by position.
 */
import { sortDiagnostics, type Diagnostic } from './diagnostics.js';
import { elaborate, type ElaborateOptions } from './elaborate/elaborate.js';
import { globToRegex } from './elaborate/elaborate.js';
import { OP_KIND_TARGETS } from './elaborate/ops.js';
import type { Graph, Node } from './ir/graph.js';
import { computeCost, sumCost, type CostResult } from './passes/cost.js';
import { inferReceptiveFields, type ReceptiveFieldResult } from './passes/receptive-field.js';
import type { SourceFile } from './source.js';
import { loadJsonSpec, isJsonSpecPath } from './elaborate/json-spec.js';

export interface CheckResult {
  readonly ok: boolean;
  readonly graph: Graph | undefined;
  readonly diagnostics: Diagnostic[];
  readonly sources: ReadonlyMap<string, SourceFile>;
  readonly receptiveFields: ReceptiveFieldResult | undefined;
  readonly cost: CostResult | undefined;
  /** A block library (blocks, no model): checked for syntax only. */
  readonly library: boolean;
}

/** Selects the nodes of a layer name, scope prefix, op kind or glob pattern. */
export function selectNodes(graph: Graph, target: string): (node: Node) => boolean {
  if (target.includes('*') || target.includes('?')) {
    const regex = globToRegex(target);
    return (node) => node.name.split('.').some((_, i, parts) => regex.test(parts.slice(0, i + 1).join('.')));
  }
  const byName = (node: Node) => node.name === target || node.name.startsWith(`${target}.`);
  if (graph.nodes.some(byName)) return byName;
  const kind = OP_KIND_TARGETS.get(target);
  return kind ?? (() => false);
}

export function checkSpec(file: string, options: ElaborateOptions = {}): CheckResult {
  const elaborated = isJsonSpecPath(file) ? loadJsonSpec(file, options) : elaborate(file, options);
  const { graph } = elaborated;
  const diagnostics = [...elaborated.diagnostics];
  let receptiveFields: ReceptiveFieldResult | undefined;
  let cost: CostResult | undefined;
  if (graph) {
    receptiveFields = inferReceptiveFields(graph);
    cost = computeCost(graph);
    diagnostics.push(...receptiveFields.diagnostics);
    const fields = receptiveFields;
    const costs = cost;
    const evaluator = elaborated.evaluator;
    if (evaluator) {
      const numberOrUndefined = (value: unknown) => (typeof value === 'number' ? value : undefined);
      const analyses = {
        receptiveField: (tensor: string) => fields.fields.get(tensor),
        params: (target: string | undefined, trainableOnly: boolean) => {
          const total = target === undefined ? costs.totals : sumCost(graph, costs, selectNodes(graph, target));
          return total === undefined ? undefined : trainableOnly ? total.trainable : total.params;
        },
        macs: (target: string | undefined) => numberOrUndefined((target === undefined ? costs.totals : sumCost(graph, costs, selectNodes(graph, target)))?.macs),
        flops: (target: string | undefined) => numberOrUndefined((target === undefined ? costs.totals : sumCost(graph, costs, selectNodes(graph, target)))?.flops),
      };
      const before = evaluator.bag.items.length;
      for (const pending of elaborated.asserts) evaluator.evaluateAssert(pending, analyses);
      diagnostics.push(...evaluator.bag.items.slice(before));
    }
  }
  const sorted = sortDiagnostics(dedupeDiagnostics(diagnostics));
  return {
    ok: (graph !== undefined || elaborated.library === true) && !sorted.some((d) => d.severity === 'error'),
    graph,
    diagnostics: sorted,
    sources: elaborated.sources,
    receptiveFields,
    cost,
    library: elaborated.library === true,
  };
}

/** The same diagnostic from several instantiations of one block is reported once. */
function dedupeDiagnostics(items: readonly Diagnostic[]): Diagnostic[] {
  const seen = new Set<string>();
  return items.filter((d) => {
    const key = `${d.code}|${d.span?.file}|${d.span?.start}|${d.span?.end}|${d.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

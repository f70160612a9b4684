/**
 * The pass manager and the one registry of passes.
 *
 * A pass is a small contract (STYLE.md §5): a name, a one-line description, whether it needs weights, whether it
 * is meant for inference exports only, and a pure `run(graph, context)` that returns the new graph (the same
 * object when nothing changed), possibly new weights, and what it did — every rewrite it applied and every one
 * it refused with the reason (`fold-bn: stage2.bn1 has a second consumer`), so nothing is skipped silently.
 *
 * The registry feeds `--passes`, `--disable-pass`, `--print-after`, `--time-passes` and the error message that
 * lists the valid names. With `verify`, the IR verifier runs after every pass and a broken invariant names the
 * pass and the ones before it.
 */
import { diagnostic, type Diagnostic } from '../diagnostics.js';
import type { Graph } from '../ir/graph.js';
import { printGraph } from '../ir/print.js';
import { verifyGraph } from '../ir/verify.js';
import type { Weights } from '../ir/weights.js';

export interface PassContext {
  /** Weights to transform along with the graph (passes that need them refuse without). */
  readonly weights: Weights | undefined;
  /** Pass-specific options, e.g. `{ sparsity: 0.5 }` for pruning. */
  readonly options: Readonly<Record<string, unknown>>;
  /**
   * The caller hands the weights' arrays over (see `PipelineOptions.overwriteWeights`): a pass that replaces a
   * tensor by one of the same size may write the result into the old array instead of allocating another.
   */
  readonly overwriteWeights?: boolean;
}

export interface PassResult {
  readonly graph: Graph;
  readonly weights?: Weights;
  /** Rewrites applied, one line each (`folded stem.bn1 into stem.conv1`). */
  readonly applied: readonly string[];
  /** Rewrites refused, with the reason. */
  readonly refused: readonly string[];
}

export interface Pass {
  readonly name: string;
  readonly description: string;
  readonly needsWeights: boolean;
  /** Changes training behaviour (drops dropout, folds BN): only for inference exports. */
  readonly inferenceOnly: boolean;
  /** Numerical tolerance within which outputs are preserved (relative), stated for property tests. */
  readonly tolerance: number;
  run(graph: Graph, context: PassContext): PassResult;
}

const registry = new Map<string, Pass>();

export function registerPass(pass: Pass): void {
  if (registry.has(pass.name)) throw new Error(`pass '${pass.name}' registered twice`);
  registry.set(pass.name, pass);
}

export function getPass(name: string): Pass | undefined {
  return registry.get(name);
}

export function passNames(): string[] {
  return [...registry.keys()];
}

/** Parses a comma-separated pass list; unknown names become diagnostics listing the valid ones. */
export function resolvePassList(list: string, disabled: readonly string[] = []): { passes: Pass[]; diagnostics: Diagnostic[] } {
  const diagnostics: Diagnostic[] = [];
  const passes: Pass[] = [];
  const names = list
    .split(',')
    .map((n) => n.trim())
    .filter((n) => n.length > 0);
  for (const name of [...names, ...disabled]) {
    if (!registry.has(name)) diagnostics.push(diagnostic('unknownPass', undefined, [name, passNames().join(', ')]));
  }
  for (const name of names) {
    const pass = registry.get(name);
    if (pass && !disabled.includes(name)) passes.push(pass);
  }
  return { passes, diagnostics };
}

export interface PipelineOptions {
  readonly verify?: boolean;
  /** Pass names after which to print the IR (or 'all'). */
  readonly printAfter?: readonly string[];
  readonly timePasses?: boolean;
  readonly options?: Readonly<Record<string, unknown>>;
  readonly log?: (text: string) => void;
  /**
   * Nothing else reads `weights`' arrays after this call (the compile command's freshly initialised or loaded
   * weights): passes may overwrite them. Folding ResNet-50's batch norms then writes 100 MB less.
   */
  readonly overwriteWeights?: boolean;
}

export interface PipelineResult {
  readonly graph: Graph;
  readonly weights: Weights | undefined;
  /** Applied and refused rewrites as notes (CNN7004 / CNN7003). */
  readonly diagnostics: Diagnostic[];
  readonly timings: ReadonlyArray<{ readonly pass: string; readonly milliseconds: number; readonly changed: boolean }>;
}

export class PassVerificationError extends Error {
  constructor(
    readonly pass: string,
    readonly before: readonly string[],
    readonly problems: readonly string[],
  ) {
    super(`IR invalid after pass '${pass}' (ran before it: ${before.length ? before.join(', ') : 'none'}):\n  ${problems.join('\n  ')}`);
  }
}

export function runPasses(graph: Graph, weights: Weights | undefined, passes: readonly Pass[], options: PipelineOptions = {}): PipelineResult {
  const diagnostics: Diagnostic[] = [];
  const timings: Array<{ pass: string; milliseconds: number; changed: boolean }> = [];
  const ran: string[] = [];
  let current = graph;
  let currentWeights = weights;
  for (const pass of passes) {
    if (pass.needsWeights && !currentWeights) {
      diagnostics.push(diagnostic('passRefused', undefined, [pass.name, 'needs weights; pass --weights']));
      continue;
    }
    const start = performance.now();
    const result = pass.run(current, { weights: currentWeights, options: options.options ?? {}, overwriteWeights: options.overwriteWeights === true });
    const milliseconds = performance.now() - start;
    const changed = result.graph !== current || (result.weights !== undefined && result.weights !== currentWeights);
    timings.push({ pass: pass.name, milliseconds, changed });
    for (const line of result.applied) diagnostics.push(diagnostic('passApplied', undefined, [pass.name, line]));
    for (const line of result.refused) diagnostics.push(diagnostic('passRefused', undefined, [pass.name, line]));
    current = result.graph;
    if (result.weights) currentWeights = result.weights;
    if (options.verify) {
      const problems = verifyGraph(current, currentWeights);
      if (problems.length > 0) throw new PassVerificationError(pass.name, ran, problems);
    }
    ran.push(pass.name);
    if (options.printAfter && (options.printAfter.includes(pass.name) || options.printAfter.includes('all'))) {
      options.log?.(printGraph(current, `IR after ${pass.name}`));
    }
  }
  if (options.timePasses) {
    for (const t of timings) options.log?.(`${t.pass.padEnd(24)} ${t.milliseconds.toFixed(2).padStart(9)} ms${t.changed ? '' : '  (no change)'}`);
  }
  return { graph: current, weights: currentWeights, diagnostics, timings };
}

/** An unchanged result: the same graph object, nothing applied. */
export function unchanged(graph: Graph, refused: readonly string[] = []): PassResult {
  return { graph, applied: [], refused };
}

/**
 * Helpers for testing specs, for users of the library and for convspec's own tests (`convspec/testing`).
 *
 * - `compileSpec(text)`: elaborate and check a spec held in a string;
 * - `specGraph(text)`: the graph it elaborates to, or an error with its diagnostics;
 * - `printSpecIr(text)`: its IR printed as a flat spec;
 * - `expectDiagnosticAt(text, code)`: a spec with one `⟦…⟧` marked range must give a diagnostic with that code
 *   exactly there — the way to pin a diagnostic's location in a test without counting columns.
 */
import { checkSpec, type CheckResult } from './check.js';
import { renderDiagnostic, type Diagnostic } from './diagnostics.js';
import { elaborate, type ElaborateOptions } from './elaborate/elaborate.js';
import type { Graph } from './ir/graph.js';
import { printGraph } from './ir/print.js';

export function compileSpec(text: string, options: ElaborateOptions & { file?: string } = {}): CheckResult {
  return checkSpec(options.file ?? 'test.cnn', { ...options, text });
}

/** The graph a spec held in a string elaborates to; throws, with its errors rendered, when it has any. */
export function specGraph(text: string, options: ElaborateOptions & { file?: string } = {}): Graph {
  const result = elaborate(options.file ?? 'test.cnn', { ...options, text });
  const errors = result.diagnostics.filter((d) => d.severity === 'error');
  if (!result.graph || errors.length > 0) throw new Error(`spec does not elaborate:\n${errors.map((d) => renderDiagnostic(d, result.sources)).join('\n')}\n${text}`);
  return result.graph;
}

export function printSpecIr(text: string, options: ElaborateOptions = {}): string {
  const result = compileSpec(text, options);
  if (!result.graph) throw new Error(`spec has errors:\n${renderAll(result)}`);
  return printGraph(result.graph);
}

export function renderAll(result: CheckResult): string {
  return result.diagnostics.map((d) => renderDiagnostic(d, result.sources)).join('\n');
}

const OPEN = '⟦';
const CLOSE = '⟧';

/**
 * Checks that the spec (with one marked range `⟦…⟧`) reports `code` exactly over the marked text.
 * Returns the matching diagnostic; throws with every diagnostic rendered when none matches.
 */
export function expectDiagnosticAt(markedText: string, code: string, options: ElaborateOptions = {}): Diagnostic {
  const start = markedText.indexOf(OPEN);
  const end = markedText.indexOf(CLOSE);
  if (start < 0 || end < start) throw new Error(`mark the expected range with ${OPEN}…${CLOSE}`);
  const text = markedText.slice(0, start) + markedText.slice(start + 1, end) + markedText.slice(end + 1);
  const result = compileSpec(text, options);
  const expectedEnd = end - 1;
  const match = result.diagnostics.find((d) => d.code === code && d.span?.start === start && d.span?.end === expectedEnd);
  if (!match) throw new Error(`expected ${code} at offsets ${start}–${expectedEnd}; got:\n${renderAll(result) || '(no diagnostics)'}`);
  return match;
}

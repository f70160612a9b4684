/**
 * How the command prints: diagnostics in the three formats, tables, and the exit codes of CLI.md.
 */
import { diagnosticToJson, renderDiagnostic, renderGithub, type Diagnostic } from '../diagnostics.js';
import type { SourceFile } from '../source.js';

export const EXIT = {
  ok: 0,
  /** The input has errors (diagnostics were printed). */
  inputErrors: 1,
  usage: 2,
  /** A bug: message plus a hint to report it. */
  internal: 3,
} as const;

export type DiagnosticFormat = 'text' | 'json' | 'github';

/** A usage error detected after argument parsing (bad values); exits 2. */
export class UsageError extends Error {}

export interface Output {
  out(text: string): void;
  err(text: string): void;
}

export const processOutput: Output = {
  out: (text) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
  err: (text) => process.stderr.write(text.endsWith('\n') ? text : `${text}\n`),
};

export function printDiagnostics(output: Output, diagnostics: readonly Diagnostic[], sources: ReadonlyMap<string, SourceFile>, format: DiagnosticFormat): void {
  if (format === 'github') {
    for (const d of diagnostics) output.out(renderGithub(d));
    return;
  }
  for (const d of diagnostics) output.err(`${renderDiagnostic(d, sources)}\n`);
}

export function diagnosticsJson(diagnostics: readonly Diagnostic[]) {
  return diagnostics.map(diagnosticToJson);
}

export function countSummary(diagnostics: readonly Diagnostic[]): string {
  const errors = diagnostics.filter((d) => d.severity === 'error').length;
  const warnings = diagnostics.filter((d) => d.severity === 'warning').length;
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  return `${plural(errors, 'error')}, ${plural(warnings, 'warning')}`;
}

/** A plain text table with right-aligned numeric columns. */
export function renderTable(header: readonly string[], rows: readonly (readonly string[])[], numeric: ReadonlySet<number>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => (numeric.has(i) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  const rule = widths.map((w) => '─'.repeat(w)).join('  ');
  return [line(header), rule, ...rows.map(line)].join('\n');
}

/** 11689512 → "11,689,512". */
export function groupDigits(value: number | string): string {
  if (typeof value === 'string') return value;
  return value.toLocaleString('en-US');
}

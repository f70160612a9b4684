/**
 * `convspec check SPEC… [--format text|json|github]`: parse, elaborate, infer shapes and receptive fields,
 * evaluate asserts. Exit 1 when any spec has an error.
 */
import { checkSpec } from '../../check.js';
import type { Diagnostic } from '../../diagnostics.js';
import type { ElaborateOptions } from '../../elaborate/elaborate.js';
import { countSummary, diagnosticsJson, EXIT, printDiagnostics, type DiagnosticFormat, type Output } from '../output.js';

export interface CheckCommandOptions {
  readonly format: DiagnosticFormat;
  readonly elaborate: ElaborateOptions;
}

export function runCheck(files: readonly string[], options: CheckCommandOptions, output: Output): number {
  const all: Diagnostic[] = [];
  let failed = false;
  for (const file of files) {
    const result = checkSpec(file, options.elaborate);
    all.push(...result.diagnostics);
    if (!result.ok) failed = true;
    if (options.format !== 'json') printDiagnostics(output, result.diagnostics, result.sources, options.format);
    if (options.format === 'text') output.err(result.ok ? `✓ ${file}${result.library ? " (block library)" : ""}${result.diagnostics.length ? ` (${countSummary(result.diagnostics)})` : ''}` : `✗ ${file}: ${countSummary(result.diagnostics)}`);
  }
  if (options.format === 'json') output.out(JSON.stringify({ ok: !failed, diagnostics: diagnosticsJson(all) }, null, 2));
  return failed ? EXIT.inputErrors : EXIT.ok;
}

/**
 * `convspec fmt SPEC… [--check]`: rewrites specs in canonical form (atomically), or with `--check` only reports
 * which files would change (exit 1). A file with syntax errors is left alone and its errors are printed.
 */
import * as fs from 'node:fs';
import { formatProgram } from '../../parser/format.js';
import { parse } from '../../parser/index.js';
import { writeFileAtomic } from '../../runtime/data/atomic-write.js';
import { EXIT, printDiagnostics, type Output } from '../output.js';

export function formatText(text: string, file: string): { text: string } | { errors: ReturnType<typeof parse> } {
  const parsed = parse(text, file);
  if (parsed.diagnostics.some((d) => d.severity === 'error')) return { errors: parsed };
  return { text: formatProgram(parsed.program, text) };
}

export function runFmt(files: readonly string[], options: { check: boolean }, output: Output): number {
  let status: number = EXIT.ok;
  for (const file of files) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (error) {
      output.err(`error CNN1006: cannot read '${file}': ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message}`);
      status = EXIT.inputErrors;
      continue;
    }
    const result = formatText(text, file);
    if ('errors' in result) {
      printDiagnostics(output, result.errors.diagnostics, new Map([[file, result.errors.source]]), 'text');
      status = EXIT.inputErrors;
      continue;
    }
    if (result.text === text) continue;
    if (options.check) {
      output.out(`would reformat ${file}`);
      status = EXIT.inputErrors;
    } else {
      writeFileAtomic(file, Buffer.from(result.text, 'utf8'));
      output.out(`formatted ${file}`);
    }
  }
  return status;
}

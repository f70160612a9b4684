/**
 * Golden diagnostics, as TypeScript's `.errors.txt` baselines: every broken spec under `broken/` is checked and
 * its diagnostics, rendered exactly as `convspec check` prints them (code, file:line:col, the source line with
 * carets, hints), are compared with `broken/<name>.errors.txt`. `vitest -u` rewrites the goldens deliberately;
 * read the diff as a user would before committing it.
 *
 * Each `.cnn` spec lists the codes it must produce, in order, in a first-line comment (`// expect: CNN2001`),
 * so a golden accepted carelessly still cannot hide a lost, an extra or a cascading diagnostic. The JSON specs
 * cannot hold comments; their codes are in `JSON_EXPECTATIONS` below.
 *
 * Fixtures of several files (imports) live in a folder whose entry is `main.cnn`; its golden is
 * `broken/<folder>.errors.txt`. Paths in the goldens are relative to the project root, as a user running
 * `npx convspec check tests/language/broken/x.cnn` from there sees them.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkSpec, type CheckResult } from '../../src/check.js';
import { renderDiagnostic } from '../../src/diagnostics.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const projectRoot = path.resolve(here, '../..');
const brokenDir = path.join(here, 'broken');

const JSON_EXPECTATIONS: Record<string, string[]> = {
  'json-assert.json': ['CNN5001'],
  'json-invalid.json': ['CNN1007'],
  'json-schema.json': ['CNN1008', 'CNN1008', 'CNN1008', 'CNN1008'],
  'json-unknown-op.json': ['CNN3002'],
};

interface Case {
  /** Path relative to the project root, with '/' separators. */
  readonly spec: string;
  readonly golden: string;
  readonly expected: string[];
}

function expectedCodes(file: string): string[] {
  const base = path.basename(file);
  if (base.endsWith('.json')) {
    const codes = JSON_EXPECTATIONS[base];
    if (!codes) throw new Error(`${base}: add its expected codes to JSON_EXPECTATIONS`);
    return codes;
  }
  const match = /^\/\/ expect: (.*)$/m.exec(fs.readFileSync(file, 'utf8').split('\n')[0] ?? '');
  if (!match) throw new Error(`${file}: the first line must be '// expect: CNN…'`);
  return match[1]!.trim().split(/\s+/);
}

function cases(): Case[] {
  const found: Case[] = [];
  for (const entry of fs.readdirSync(brokenDir, { withFileTypes: true })) {
    const absolute = path.join(brokenDir, entry.name);
    if (entry.isDirectory()) {
      const main = path.join(absolute, 'main.cnn');
      found.push({ spec: relative(main), golden: `${absolute}.errors.txt`, expected: expectedCodes(main) });
    } else if (/\.(cnn|json)$/.test(entry.name)) {
      found.push({ spec: relative(absolute), golden: absolute.replace(/\.(cnn|json)$/, '.errors.txt'), expected: expectedCodes(absolute) });
    }
  }
  return found.sort((a, b) => (a.spec < b.spec ? -1 : 1));
}

function relative(file: string): string {
  return path.relative(projectRoot, file).split(path.sep).join('/');
}

/** The text `convspec check` prints for one spec, with a closing count line. */
function render(result: CheckResult): string {
  const blocks = result.diagnostics.map((d) => renderDiagnostic(d, result.sources));
  const errors = result.diagnostics.filter((d) => d.severity === 'error').length;
  const warnings = result.diagnostics.filter((d) => d.severity === 'warning').length;
  return `${blocks.join('\n\n')}\n\n${errors} error(s), ${warnings} warning(s)\n`;
}

const all = cases();

beforeAll(() => {
  // Specs are named relative to the project root, as users name them.
  if (process.cwd() !== projectRoot) process.chdir(projectRoot);
});

describe('golden diagnostics of broken specs', () => {
  it('has a corpus of at least 45 focused specs, and no golden without its spec', () => {
    expect(all.length).toBeGreaterThanOrEqual(45);
    const goldens = fs.readdirSync(brokenDir).filter((f) => f.endsWith('.errors.txt'));
    const expectedGoldens = new Set(all.map((c) => path.basename(c.golden)));
    for (const golden of goldens) expect(expectedGoldens.has(golden), `${golden} has no spec`).toBe(true);
  });

  it.each(all.map((c) => [c.spec, c] as const))('%s', async (_name, c) => {
    const result = checkSpec(c.spec, {});
    expect(result.diagnostics.map((d) => d.code)).toEqual(c.expected);
    // Every diagnostic points into a file the result can show, so the caret line is never missing.
    for (const d of result.diagnostics) {
      expect(d.span, `${d.code} ${d.message}`).toBeDefined();
      expect(result.sources.has(d.span!.file), `${d.span!.file} is among the sources`).toBe(true);
    }
    const hasErrors = result.diagnostics.some((d) => d.severity === 'error');
    expect(result.ok).toBe(!hasErrors);
    await expect(render(result)).toMatchFileSnapshot(c.golden);
  });
});

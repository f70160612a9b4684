/**
 * The example specs users copy are in canonical form: `convspec fmt --check` passes on every `specs/**\/*.cnn`
 * (whatever exists when the tests run), formatting is idempotent on them, and formatting keeps their meaning —
 * the IR elaborated from the formatted text equals the original's, source spans aside.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { checkSpec } from '../../src/check.js';
import { main } from '../../src/cli/main.js';
import { elaborate } from '../../src/elaborate/elaborate.js';
import type { Graph } from '../../src/ir/graph.js';
import { formatProgram } from '../../src/parser/format.js';
import { parse } from '../../src/parser/index.js';

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function specFiles(directory: string): string[] {
  if (!fs.existsSync(directory)) return [];
  return fs
    .readdirSync(directory, { withFileTypes: true })
    .flatMap((entry) => (entry.isDirectory() ? specFiles(path.join(directory, entry.name)) : entry.name.endsWith('.cnn') ? [path.join(directory, entry.name)] : []))
    .sort();
}

const specs = specFiles(path.join(projectRoot, 'specs')).map((file) => path.relative(projectRoot, file));

function meaning(graph: Graph | undefined): unknown {
  return graph === undefined ? undefined : JSON.parse(JSON.stringify(graph, (key, value: unknown) => (key === 'span' ? undefined : value)));
}

function format(text: string, file: string): string {
  const parsed = parse(text, file);
  expect(parsed.diagnostics, file).toEqual([]);
  return formatProgram(parsed.program, text);
}

describe.runIf(specs.length > 0)('example specs', () => {
  it.each(specs)('%s is formatted (fmt --check exits 0)', async (spec) => {
    const out: string[] = [];
    const code = await main(['node', 'convspec', 'fmt', '--check', path.join(projectRoot, spec)], { out: (t) => out.push(t), err: (t) => out.push(t) });
    expect(out.join('\n'), `run \`npx convspec fmt ${spec}\``).toBe('');
    expect(code).toBe(0);
  });

  it.each(specs)('%s keeps its IR through formatting, and formats idempotently', (spec) => {
    const file = path.join(projectRoot, spec);
    const text = fs.readFileSync(file, 'utf8');
    const formatted = format(text, spec);
    expect(format(formatted, spec)).toBe(formatted);
    // Elaborated under the spec's own path, so its imports resolve as they do for the original.
    const original = elaborate(file, { text });
    const reformatted = elaborate(file, { text: formatted });
    expect(reformatted.diagnostics.map((d) => d.code)).toEqual(original.diagnostics.map((d) => d.code));
    expect(meaning(reformatted.graph)).toEqual(meaning(original.graph));
  });
});

/** The JSON form of example specs: specs/json/<name>.json is specs/<name>.cnn written for tools that generate models. */
const jsonSpecs = fs.existsSync(path.join(projectRoot, 'specs/json'))
  ? fs.readdirSync(path.join(projectRoot, 'specs/json')).filter((f) => f.endsWith('.json')).sort()
  : [];

describe('JSON versions of example specs', () => {
  it('there are at least two', () => {
    expect(jsonSpecs.length).toBeGreaterThanOrEqual(2);
  });

  it.each(jsonSpecs)('specs/json/%s checks, and elaborates to the IR of its .cnn twin (source spans and file aside)', async (name) => {
    const out: string[] = [];
    const file = path.join(projectRoot, 'specs/json', name);
    const code = await main(['node', 'convspec', 'check', file], { out: (t) => out.push(t), err: (t) => out.push(t) });
    expect(out.join('\n')).toMatch(/✓/);
    expect(code).toBe(0);
    const fromJson = checkSpec(file);
    const fromText = checkSpec(path.join(projectRoot, 'specs', name.replace(/\.json$/, '.cnn')));
    expect(fromJson.ok).toBe(true);
    const strip = (graph: Graph | undefined) => {
      const m = meaning(graph) as Record<string, unknown>;
      delete m['source'];
      return m;
    };
    expect(strip(fromJson.graph)).toEqual(strip(fromText.graph));
  });
});

/**
 * Properties of the front end, checked with fast-check:
 *
 * (a) random VALID specs (see random-specs.ts) elaborate and check without errors; `fmt` is idempotent, keeps
 *     every comment, and the formatted text means the same: its IR, with source spans stripped, equals the
 *     original's (node names, ops, attributes, shapes, inputs, outputs, frozen flags, regularisers, training).
 * (b) random bytes, random token soup and token-level mutations of valid specs (delete, duplicate, swap, insert)
 *     never make `elaborate` throw, finish within 2 s each, and every diagnostic has a location with a valid
 *     range (1 ≤ line ≤ lines, columns within their line, end ≥ start). Mutants that still parse cleanly also
 *     format idempotently and keep their meaning.
 * (c) the same robustness for `checkSpec`, which adds receptive fields, costs and asserts.
 *
 * Seeds are random per run; a failure prints the seed and the shrunk counterexample to replay it.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkSpec } from '../../src/check.js';
import type { Diagnostic } from '../../src/diagnostics.js';
import { renderDiagnostic } from '../../src/diagnostics.js';
import { elaborate } from '../../src/elaborate/elaborate.js';
import type { Graph } from '../../src/ir/graph.js';
import { formatProgram } from '../../src/parser/format.js';
import { parse } from '../../src/parser/index.js';
import { convspecLexer } from '../../src/parser/tokens.js';
import type { SourceFile } from '../../src/source.js';
import { validSpec } from './random-specs.js';

const FILE = 'random.cnn';
const TIME_LIMIT_MS = 2000;

/** `convspec fmt` on a text: undefined when it has syntax errors (fmt leaves such files alone). */
function format(text: string): string | undefined {
  const parsed = parse(text, FILE);
  if (parsed.diagnostics.some((d) => d.severity === 'error')) return undefined;
  return formatProgram(parsed.program, text);
}

/** The comments of a text, sorted: formatting may move a comment before its statement, never drop one. */
function commentsOf(text: string): string[] {
  return parse(text, FILE)
    .program.comments.map((c) => c.text.trimEnd())
    .sort();
}

/** The graph without source spans: what formatting must not change. */
function meaning(graph: Graph | undefined): unknown {
  return graph === undefined ? undefined : JSON.parse(JSON.stringify(graph, (key, value: unknown) => (key === 'span' ? undefined : value)));
}

function rendered(diagnostics: readonly Diagnostic[], sources: ReadonlyMap<string, SourceFile>): string {
  return diagnostics.map((d) => renderDiagnostic(d, sources)).join('\n');
}

/** Every diagnostic has a location inside the text it points into, with its end at or after its start. */
function expectValidRanges(diagnostics: readonly Diagnostic[], sources: ReadonlyMap<string, SourceFile>): void {
  for (const d of diagnostics) {
    expect(d.span, `${d.code} ${d.message} has a location`).toBeDefined();
    const span = d.span!;
    const text = sources.get(span.file)?.text;
    expect(text, `the source of ${span.file}`).toBeDefined();
    const lines = text!.split('\n');
    const where = `${d.code} at ${span.line}:${span.column}–${span.endLine}:${span.endColumn} (offsets ${span.start}–${span.end})`;
    expect(span.line >= 1 && span.line <= lines.length, where).toBe(true);
    expect(span.endLine >= span.line && span.endLine <= lines.length, where).toBe(true);
    expect(span.column >= 1 && span.column <= lines[span.line - 1]!.length + 1, where).toBe(true);
    expect(span.endColumn >= 1 && span.endColumn <= lines[span.endLine - 1]!.length + 1, where).toBe(true);
    if (span.endLine === span.line) expect(span.endColumn >= span.column, where).toBe(true);
    expect(span.start >= 0 && span.start <= span.end && span.end <= text!.length, where).toBe(true);
  }
}

/** Runs a stage on arbitrary text: it must return (not throw), in time, with well-located diagnostics. */
function expectRobust(text: string, stage: (text: string) => { diagnostics: Diagnostic[]; sources: ReadonlyMap<string, SourceFile> }): void {
  const started = performance.now();
  const result = stage(text);
  const elapsed = performance.now() - started;
  expect(elapsed, 'milliseconds').toBeLessThan(TIME_LIMIT_MS);
  expectValidRanges(result.diagnostics, result.sources);
}

// ---------------------------------------------------------------------------------------------------------------
// Inputs for the robustness properties

const VOCABULARY = [
  ...['model', 'block', 'input', 'param', 'let', 'output', 'return', 'repeat', 'as', 'when', 'assert', 'freeze', 'regularize', 'on', 'train', 'import', 'from', 'take', 'true', 'false', 'and', 'or', 'not'],
  ...['conv', 'relu', 'bn', 'maxpool', 'dense', 'flatten', 'concat', 'add', 'globalavgpool', 'dwconv', 'channels', 'shape', 'rf', 'params'],
  ...['(', ')', '[', ']', '{', '}', ',', ':', '=', '->', '..', '.', '?', '??', '==', '!=', '<', '<=', '>', '>=', '+', '-', '*', '/', '%'],
  ...['0', '1', '3', '64', '1e-4', '10k', '1e999', '2.5', '"x"', '"stage*"', '"unterminated', '/*', '*/', '// c', 'f32'],
  ...['x', 'y', 'N', 'H', 'image', 'stem', 'c', '@', '$', 'é', '😀', '\\', '\t', '\r\n'],
];

const separator = fc.constantFrom(' ', ' ', '\n', '', '  ');

/** Random bytes read as UTF-8 (with replacement characters) or Latin-1, and random UTF-16 strings. */
const randomText = fc.oneof(
  fc.uint8Array({ maxLength: 400 }).map((bytes) => Buffer.from(bytes).toString('utf8')),
  fc.uint8Array({ maxLength: 400 }).map((bytes) => Buffer.from(bytes).toString('latin1')),
  fc.string({ unit: 'binary', maxLength: 200 }),
);

/** Tokens of the language in random order, alone or inside a model body (where statements are parsed). */
const tokenSoup = fc
  .tuple(fc.array(fc.tuple(fc.constantFrom(...VOCABULARY), separator), { maxLength: 80 }), fc.boolean())
  .map(([items, inModel]) => {
    const soup = items.map(([token, sep]) => token + sep).join('');
    return inModel ? `model M {\n  input x: f32[N, 3, 8, 8]\n${soup}\n  output x\n}\n` : soup;
  });

type Mutation = { readonly kind: 'delete' | 'duplicate' | 'swap' | 'insert'; readonly at: number; readonly other: number; readonly token: string };

const mutation: fc.Arbitrary<Mutation> = fc.record({
  kind: fc.constantFrom('delete', 'duplicate', 'swap', 'insert'),
  at: fc.nat(),
  other: fc.nat(),
  token: fc.constantFrom(...VOCABULARY),
});

/** Applies token-level edits; each token moves with the whitespace and comments before it. */
function mutate(text: string, mutations: readonly Mutation[]): string {
  const tokens = convspecLexer.tokenize(text).tokens;
  const pieces: string[] = [];
  let last = 0;
  for (const token of tokens) {
    pieces.push(text.slice(last, token.endOffset! + 1));
    last = token.endOffset! + 1;
  }
  const tail = text.slice(last);
  for (const m of mutations) {
    if (pieces.length === 0) break;
    const i = m.at % pieces.length;
    const j = m.other % pieces.length;
    if (m.kind === 'delete') pieces.splice(i, 1);
    else if (m.kind === 'duplicate') pieces.splice(i, 0, pieces[i]!);
    else if (m.kind === 'swap') [pieces[i], pieces[j]] = [pieces[j]!, pieces[i]!];
    else pieces.splice(i, 0, ` ${m.token}`);
  }
  return pieces.join('') + tail;
}

const mutatedSpec = fc.tuple(validSpec(), fc.array(mutation, { minLength: 1, maxLength: 4 })).map(([text, mutations]) => mutate(text, mutations));

const elaborateText = (text: string) => elaborate(FILE, { text });
const checkText = (text: string) => checkSpec(FILE, { text });

// ---------------------------------------------------------------------------------------------------------------

describe('(a) random valid specs', () => {
  it('check without errors, format idempotently, and keep their IR through formatting', () => {
    fc.assert(
      fc.property(validSpec(), (text) => {
        const checked = checkText(text);
        const errors = checked.diagnostics.filter((d) => d.severity === 'error');
        expect(rendered(errors, checked.sources), text).toBe('');
        expect(checked.ok).toBe(true);

        const formatted = format(text);
        expect(formatted, text).toBeDefined();
        expect(format(formatted!), formatted).toBe(formatted);
        expect(commentsOf(formatted!)).toEqual(commentsOf(text));

        const again = checkText(formatted!);
        expect(again.ok, rendered(again.diagnostics, again.sources)).toBe(true);
        expect(meaning(again.graph)).toEqual(meaning(checked.graph));
        expect(again.diagnostics.map((d) => d.code)).toEqual(checked.diagnostics.map((d) => d.code));
      }),
      { numRuns: 150 },
    );
  });

  it('cover what the generator promises: ranks, symbolic sizes, blocks, repeat, when, concat and residuals', () => {
    // A generator that silently stopped producing a feature would leave the property above toothless.
    const samples = fc.sample(validSpec(), { numRuns: 300, seed: 20261128 });
    const share = (pattern: RegExp) => samples.filter((s) => pattern.test(s)).length / samples.length;
    expect(share(/f32\[\w+, \d+, \w+\]/)).toBeGreaterThan(0.1);
    expect(share(/f32\[\w+, \d+, \w+, \w+\]/)).toBeGreaterThan(0.1);
    expect(share(/f32\[\w+, \d+, \w+, \w+, \w+\]/)).toBeGreaterThan(0.1);
    expect(share(/f32\[[^\]]*\bH\b/)).toBeGreaterThan(0.05);
    for (const feature of [/block \w+\(/, /repeat \d+ as i/, /repeat \d+ /, / when /, / \?\? /, /concat\(/, / \+ /, /let width/, /param use_branch/, /-> unit\(|-> stack\(/]) {
      expect(share(feature), String(feature)).toBeGreaterThan(0.05);
    }
  });
});

describe('(b) elaborate on arbitrary text', () => {
  it('survives random bytes', () => {
    fc.assert(fc.property(randomText, (text) => expectRobust(text, elaborateText)), { numRuns: 300 });
  });

  it('survives random sequences of the language’s tokens', () => {
    fc.assert(fc.property(tokenSoup, (text) => expectRobust(text, elaborateText)), { numRuns: 300 });
  });

  it('survives token-level mutations of valid specs', () => {
    fc.assert(fc.property(mutatedSpec, (text) => expectRobust(text, elaborateText)), { numRuns: 300 });
  });

  it('formats mutants that still parse idempotently, without changing what they mean', () => {
    fc.assert(
      fc.property(mutatedSpec, (text) => {
        const formatted = format(text);
        fc.pre(formatted !== undefined);
        expect(format(formatted!), formatted).toBe(formatted);
        expect(commentsOf(formatted!)).toEqual(commentsOf(text));
        const before = elaborateText(text);
        const after = elaborateText(formatted!);
        expect(after.diagnostics.map((d) => d.code)).toEqual(before.diagnostics.map((d) => d.code));
        expect(meaning(after.graph)).toEqual(meaning(before.graph));
      }),
      // Most mutants do not parse; each run here costs several generated ones.
      { numRuns: 60 },
    );
  });
});

describe('(c) checkSpec on arbitrary text', () => {
  it('survives random bytes', () => {
    fc.assert(fc.property(randomText, (text) => expectRobust(text, checkText)), { numRuns: 200 });
  });

  it('survives random sequences of the language’s tokens', () => {
    fc.assert(fc.property(tokenSoup, (text) => expectRobust(text, checkText)), { numRuns: 200 });
  });

  it('survives token-level mutations of valid specs', () => {
    fc.assert(fc.property(mutatedSpec, (text) => expectRobust(text, checkText)), { numRuns: 300 });
  });
});

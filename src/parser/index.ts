/**
 * `parse(text, path)`: lexing, parsing with recovery, and the CST → AST step, with every problem as a diagnostic.
 */
import { EOF, type IParserErrorMessageProvider, type IToken, type TokenType } from 'chevrotain';
import type * as A from './ast.js';
import { AstBuilder } from './build-ast.js';
import { cstParser } from './grammar.js';
import { convspecLexer, KEYWORDS, UnterminatedComment, UnterminatedString } from './tokens.js';
import { DiagnosticBag, type Diagnostic } from '../diagnostics.js';
import { SourceFile } from '../source.js';

export * from './ast.js';
export { quote, unquote } from './build-ast.js';
export { KEYWORDS } from './tokens.js';

/** Bracket nesting beyond this is refused before parsing, so no input can exhaust the parser's stack. */
export const MAX_NESTING = 200;

export interface ParseResult {
  readonly program: A.Program;
  readonly source: SourceFile;
  readonly diagnostics: Diagnostic[];
  /** Names whose definitions had syntax errors: uses of them are not reported again. */
  readonly brokenNames: ReadonlySet<string>;
}

/** Words describing what a rule expected, for "expected … but found …". */
const RULE_DESCRIPTIONS: Record<string, string> = {
  program: "'model', 'block' or 'import'",
  statement: 'a statement (input, param, let, block, output, assert, freeze, regularize, train, return, or name = …)',
  primary: 'an expression',
  postfix: 'an expression',
  unary: 'an expression',
  expression: 'an expression',
  chainStep: 'an op or block name',
  target: 'a layer name, range or quoted pattern',
  importDecl: 'a quoted path or { names } from "path"',
  assignStmt: "an expression or 'from'",
  argument: 'an argument',
};

function describeToken(token: IToken): string {
  if (token.tokenType === EOF) return 'end of file';
  if (KEYWORDS.has(token.image)) return `keyword '${token.image}'`;
  return `'${token.image.length > 30 ? `${token.image.slice(0, 30)}…` : token.image}'`;
}

function describeTokenType(type: TokenType): string {
  if (type === EOF) return 'end of file';
  const label = type.LABEL ?? type.name;
  return label === 'Identifier' ? 'a name' : label;
}

/** Encodes both sides of a syntax error as JSON so `parse` can build a catalogue diagnostic from it. */
const messageProvider: IParserErrorMessageProvider = {
  buildMismatchTokenMessage({ expected, actual }) {
    return JSON.stringify({ expected: describeTokenType(expected), found: describeToken(actual) });
  },
  buildNotAllInputParsedMessage({ firstRedundant }) {
    return JSON.stringify({ expected: "'model', 'block' or 'import'", found: describeToken(firstRedundant) });
  },
  buildNoViableAltMessage({ expectedPathsPerAlt, actual, ruleName }) {
    const firsts = new Set<string>();
    for (const alternative of expectedPathsPerAlt) for (const path of alternative) if (path[0]) firsts.add(describeTokenType(path[0]));
    const expected = RULE_DESCRIPTIONS[ruleName] ?? [...firsts].join(', ');
    return JSON.stringify({ expected, found: describeToken(actual[0]!) });
  },
  buildEarlyExitMessage({ expectedIterationPaths, actual, ruleName }) {
    const firsts = new Set<string>();
    for (const path of expectedIterationPaths) if (path[0]) firsts.add(describeTokenType(path[0]));
    const expected = RULE_DESCRIPTIONS[ruleName] ?? [...firsts].join(', ');
    return JSON.stringify({ expected, found: describeToken(actual[0]!) });
  },
};

export function parse(text: string, path: string): ParseResult {
  const source = new SourceFile(path, text);
  const bag = new DiagnosticBag();
  const emptyProgram: A.Program = { $type: 'Program', span: source.span(0, text.length), imports: [], blocks: [], models: [], items: [], comments: [] };

  const lexed = convspecLexer.tokenize(text);
  for (const error of lexed.errors) {
    const offset = error.offset;
    const ch = String.fromCodePoint(text.codePointAt(offset) ?? 0xfffd);
    bag.add('unexpectedCharacter', source.span(offset, offset + Math.max(1, error.length)), [ch]);
  }
  for (const token of lexed.groups['errors'] ?? []) {
    const span = source.span(token.startOffset, token.endOffset! + 1);
    if (token.tokenType === UnterminatedString) bag.add('unterminatedString', span, []);
    else if (token.tokenType === UnterminatedComment) bag.add('unterminatedComment', source.span(token.startOffset, token.startOffset + 2), []);
  }

  const comments: A.Comment[] = (lexed.groups['comments'] ?? []).map((token) => {
    const lineStart = text.lastIndexOf('\n', token.startOffset - 1) + 1;
    return {
      text: token.image,
      span: source.span(token.startOffset, token.endOffset! + 1),
      trailing: text.slice(lineStart, token.startOffset).trim().length > 0,
    };
  });

  let depth = 0;
  for (const token of lexed.tokens) {
    const image = token.image;
    if (image === '(' || image === '[' || image === '{') depth++;
    else if (image === ')' || image === ']' || image === '}') depth = Math.max(0, depth - 1);
    if (depth > MAX_NESTING) {
      bag.add('nestingTooDeep', source.span(token.startOffset, token.endOffset! + 1), [MAX_NESTING]);
      return { program: emptyProgram, source, diagnostics: bag.items, brokenNames: new Set() };
    }
  }

  const parser = cstParser();
  try {
    (parser as unknown as { errorMessageProvider: IParserErrorMessageProvider }).errorMessageProvider = messageProvider;
    parser.input = lexed.tokens;
    const cst = parser.program();
    for (const error of parser.errors) {
      const token = error.token;
      const atEnd = token.tokenType === EOF || Number.isNaN(token.startOffset);
      const start = atEnd ? text.length : token.startOffset;
      const span = source.span(start, atEnd ? text.length : token.endOffset! + 1);
      let expected = 'something else';
      let found = describeToken(token);
      try {
        const parts = JSON.parse(error.message) as { expected: string; found: string };
        expected = parts.expected;
        found = parts.found;
      } catch {
        // a message from chevrotain itself: keep the generic words
      }
      bag.add('unexpectedToken', span, [found, expected]);
    }
    const builder = new AstBuilder(source);
    const program = builder.program(cst, comments);
    const errorLines = new Set(bag.items.map((d) => d.span?.line));
    for (const run of builder.strayRuns) {
      const first = run[0]!;
      const line = source.position(first.startOffset).line;
      // A run right after a reported error is the tail of that error, not a new one.
      if (errorLines.has(line) || errorLines.has(line - 1)) continue;
      bag.add('unexpectedToken', source.span(first.startOffset, first.endOffset! + 1), [describeToken(first), RULE_DESCRIPTIONS['statement']!]);
    }
    return { program, source, diagnostics: dedupe(bag.items), brokenNames: builder.brokenNames };
  } catch (error) {
    if (error instanceof RangeError) {
      bag.add('nestingTooDeep', source.span(0, Math.min(1, text.length)), [MAX_NESTING]);
      return { program: emptyProgram, source, diagnostics: bag.items, brokenNames: new Set() };
    }
    throw error;
  } finally {
    parser.input = [];
  }
}

/** Recovery may report the same position twice (once per alternative it tried); keep the first. */
function dedupe(items: Diagnostic[]): Diagnostic[] {
  const seen = new Set<string>();
  return items.filter((d) => {
    const key = `${d.code}:${d.span?.start}:${d.span?.end}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

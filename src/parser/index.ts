/**
 * `parse(text, path)`: lexing, parsing with recovery, and the CST → AST step, with every problem as a diagnostic.
 */
import type { CstNode, IParserErrorMessageProvider, IToken, TokenType } from 'chevrotain';
import { EOF } from './chevrotain.js';
import type * as A from './ast.js';
import { AstBuilder } from './build-ast.js';
import { cstParser } from './grammar.js';
import { convspecLexer, Identifier, KEYWORDS, UnterminatedComment, UnterminatedString } from './tokens.js';
import { DiagnosticBag, type Diagnostic } from '../diagnostics.js';
import { SourceFile, type Span } from '../source.js';

export * from './ast.js';
export { quote, unquote } from './build-ast.js';
export { KEYWORDS } from './tokens.js';

/**
 * Bracket nesting beyond this is refused before parsing, so no input can exhaust the parser's stack (one level of
 * parentheses costs the recursive-descent parser a dozen frames; about 140 levels fit the default stack).
 */
export const MAX_NESTING = 64;
/** Syntax trees deeper than this (long runs of `-`, `not`, `? :` or `[i]`) are refused after parsing. */
export const MAX_DEPTH = 256;
/** Files with more tokens are refused before parsing: the parser's memory grows with every token. */
export const MAX_TOKENS = 200_000;

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
  const refuse = (): ParseResult => ({ program: emptyProgram, source, diagnostics: bag.items, brokenNames: new Set() });

  const lexed = convspecLexer.tokenize(text);
  for (const error of lexed.errors) {
    const offset = error.offset;
    const ch = String.fromCodePoint(text.codePointAt(offset) ?? 0xfffd);
    bag.add('unexpectedCharacter', source.span(offset, offset + Math.max(1, error.length)), [ch]);
  }
  const tokens = lexed.tokens;
  for (const token of tokens) {
    if (token.tokenType === UnterminatedString) bag.add('unterminatedString', source.span(token.startOffset, token.endOffset! + 1), []);
  }
  let unterminatedComment = false;
  for (const token of lexed.groups['errors'] ?? []) {
    if (token.tokenType === UnterminatedComment) {
      bag.add('unterminatedComment', source.span(token.startOffset, token.startOffset + 2), [], 'close it with */');
      unterminatedComment = true;
    }
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
  for (const token of tokens) {
    const image = token.image;
    if (image === '(' || image === '[' || image === '{') depth++;
    else if (image === ')' || image === ']' || image === '}') depth = Math.max(0, depth - 1);
    if (depth > MAX_NESTING) {
      bag.add('nestingTooDeep', source.span(token.startOffset, token.endOffset! + 1), [MAX_NESTING]);
      return refuse();
    }
  }

  if (tokens.length > MAX_TOKENS) {
    const first = tokens[MAX_TOKENS]!;
    bag.add('tooManyTokens', source.span(first.startOffset, first.endOffset! + 1), [MAX_TOKENS]);
    return refuse();
  }

  const parser = cstParser();
  try {
    (parser as unknown as { errorMessageProvider: IParserErrorMessageProvider }).errorMessageProvider = messageProvider;
    parser.input = tokens;
    let cst: CstNode;
    try {
      cst = parser.program();
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
      // Only a pathological input (thousands of nested `? :` or the like) exhausts the stack.
      const token = parser.nextToken();
      const start = Number.isFinite(token.startOffset) ? token.startOffset : 0;
      bag.add('nestingTooDeep', source.span(start, start + 1), [MAX_NESTING]);
      return refuse();
    }
    for (const error of parser.errors) {
      const token = error.token;
      const atEnd = token.tokenType === EOF || Number.isNaN(token.startOffset);
      // An unterminated comment swallows the rest of the file: the missing closers are its consequence.
      if (atEnd && unterminatedComment) continue;
      let expected = 'something else';
      let found = describeToken(token);
      try {
        const parts = JSON.parse(error.message) as { expected: string; found: string };
        expected = parts.expected;
        found = parts.found;
      } catch {
        // a message from chevrotain itself: keep the generic words
      }
      const index = atEnd ? tokens.length : tokenIndex(tokens, token.startOffset);
      const previous = tokens[index - 1];
      const closer = expected;
      // After an element of a comma-separated list, a comma would do as well as the closer.
      const rule = error.context?.ruleStack?.at(-1);
      const listRule = rule === 'argumentList' || rule === 'inputDecl' || rule === 'blockDecl' || rule === 'importDecl' || (rule === 'primary' && expected === "']'");
      if (listRule && (expected === "')'" || expected === "']'" || expected === "'}'") && previous && !['(', '[', '{', ','].includes(previous.image)) expected = `',' or ${expected}`;
      let span = atEnd ? source.span(text.length, text.length) : source.span(token.startOffset, token.endOffset! + 1);
      let hint: string | undefined;
      // A token on a later line means the line ended early: point there, where the missing part belongs.
      if (previous && (atEnd || (previous.endLine ?? 0) < (token.startLine ?? 0))) {
        span = source.span(previous.endOffset! + 1, previous.endOffset! + 1);
        found = atEnd ? 'end of file' : 'the end of the line';
        // `a // b` reads as `a` and a comment: when the comment reads like the rest of an expression, say so.
        const comment = comments.find((c) => !c.text.startsWith('/*') && c.span.line === previous.endLine && c.span.start > previous.endOffset!);
        const operandBefore = previous.tokenType === Identifier || /^[0-9.)\]]/.test(previous.image);
        const divisionHint = comment && operandBefore && /^\/\/\s*[0-9A-Za-z_(]/.test(comment.text) ? "'//' starts a comment here; floor division is written floor(a / b)" : undefined;
        const unclosed = unclosedBracketHint(tokens, index, closer, source);
        hint = divisionHint ?? unclosed;
      }
      bag.add('unexpectedToken', span, [found, expected], hint);
    }
    const builder = new AstBuilder(source);
    const program = builder.program(cst, comments);
    for (const problem of builder.problems) {
      if (problem.kind === 'missing') {
        const token = tokens[tokenIndex(tokens, problem.offset)]!;
        bag.add('unexpectedToken', source.span(token.startOffset, token.endOffset! + 1), [describeToken(token), problem.expected]);
        continue;
      }
      const span = source.span(problem.token.startOffset, problem.token.endOffset! + 1);
      if (problem.kind === 'misplaced') bag.add('misplacedStatement', span, [problem.what, problem.where], problem.hint);
      else if (problem.kind === 'invalidNumber') bag.add('invalidNumber', span, [problem.token.image], 'numbers must be finite');
      else bag.add('unexpectedToken', span, [describeToken(problem.token), problem.expected]);
    }
    for (const run of builder.strayRuns) {
      const first = run.tokens[0]!;
      // A run in the same region as an error already reported, or on its line, is the tail of that error.
      // Statements at the top level after an item with an error are what is left of a model that closed early
      // (a block inside it lost its '}'): also a tail.
      const line = source.position(first.startOffset).line;
      const statementLike = STATEMENT_WORDS.has(first.image) || (first.tokenType === Identifier && run.tokens[1]?.image === '=');
      const regionStart = run.topLevel && statementLike ? run.itemStart : run.after;
      if (bag.items.some((d) => d.span !== undefined && d.span.start <= first.startOffset && (d.span.start >= regionStart || d.span.line === line))) continue;
      const span = source.span(first.startOffset, first.endOffset! + 1);
      if (run.topLevel) {
        bag.add('unexpectedToken', span, [describeToken(first), RULE_DESCRIPTIONS['program']!], statementLike ? 'statements belong inside a model { … } or a block' : undefined);
      } else {
        const operator = BINARY_OPERATORS.has(first.image) && run.afterChain;
        const hint = operator ? `a chain ('->') takes the rest of the expression; to combine its result with '${first.image}', put the chain in parentheses: (x -> f) ${first.image} y` : undefined;
        bag.add('unexpectedToken', span, [describeToken(first), RULE_DESCRIPTIONS['statement']!], hint);
      }
    }
    const deep = tooDeep(program, MAX_DEPTH);
    if (deep) {
      bag.add('nestingTooDeep', deep.span, [MAX_DEPTH]);
      return refuse();
    }
    return { program, source, diagnostics: dedupe(bag.items), brokenNames: builder.brokenNames };
  } catch (error) {
    if (error instanceof RangeError) {
      bag.add('nestingTooDeep', source.span(0, Math.min(1, text.length)), [MAX_DEPTH]);
      return refuse();
    }
    throw error;
  } finally {
    parser.input = [];
  }
}

const STATEMENT_WORDS: ReadonlySet<string> = new Set(['input', 'param', 'let', 'output', 'return', 'assert', 'freeze', 'regularize', 'train']);
const BINARY_OPERATORS: ReadonlySet<string> = new Set(['+', '-', '*', '/', '%', '==', '!=', '<', '<=', '>', '>=', 'and', 'or', '??']);

/** Index of the token starting at `offset` (tokens are sorted by offset). */
function tokenIndex(tokens: readonly IToken[], offset: number): number {
  let low = 0;
  let high = tokens.length;
  while (low < high) {
    const mid = (low + high) >> 1;
    if (tokens[mid]!.startOffset < offset) low = mid + 1;
    else high = mid;
  }
  return low;
}

const CLOSERS: Record<string, string> = { "')'": '(', "']'": '[', "'}'": '{' };

/** "the '(' opened at 3:20 is not closed", for a missing closer found at the end of a line or the file. */
function unclosedBracketHint(tokens: readonly IToken[], before: number, expected: string, source: SourceFile): string | undefined {
  const opener = CLOSERS[expected];
  if (!opener) return undefined;
  const pairs: Record<string, string> = { ')': '(', ']': '[', '}': '{' };
  const indentation = (token: IToken) => {
    const line = source.lineText(token.startLine ?? 1);
    return line.length - line.trimStart().length;
  };
  const open: IToken[] = [];
  for (let i = 0; i < before; i++) {
    const token = tokens[i]!;
    const image = token.image;
    if (image === '(' || image === '[' || image === '{') open.push(token);
    else if (pairs[image]) {
      // A closer that starts its line closes the opener on a line indented like it (so a block that lost its
      // '}' is the one named, not the model around it); otherwise the innermost opener of its kind.
      const firstOnLine = i === 0 || tokens[i - 1]!.endLine !== token.startLine;
      let match = -1;
      for (let j = open.length - 1; j >= 0; j--) {
        if (open[j]!.image !== pairs[image]) continue;
        if (match < 0) match = j;
        if (!firstOnLine) break;
        if (indentation(open[j]!) === indentation(token)) {
          match = j;
          break;
        }
      }
      if (match >= 0) open.splice(match, 1);
    }
  }
  const unclosed = [...open].reverse().find((t) => t.image === opener);
  if (!unclosed) return undefined;
  const where = source.position(unclosed.startOffset);
  return `the '${opener}' opened at ${where.line}:${where.column} is not closed`;
}

/**
 * The first node nested deeper than `limit` (iteratively, so no input can overflow the stack here). Later stages
 * walk the AST recursively; this bound keeps them safe.
 */
function tooDeep(program: A.Program, limit: number): { span: Span } | undefined {
  const stack: Array<{ value: unknown; depth: number }> = [{ value: program, depth: 0 }];
  while (stack.length > 0) {
    const { value, depth } = stack.pop()!;
    if (Array.isArray(value)) {
      for (const item of value) stack.push({ value: item, depth });
      continue;
    }
    if (value === null || typeof value !== 'object' || !('$type' in value)) {
      // Plain records inside nodes (a step's `repeat`) hold nodes too.
      if (value !== null && typeof value === 'object') for (const [key, field] of Object.entries(value)) if (key !== 'span') stack.push({ value: field, depth });
      continue;
    }
    const node = value as { $type: string; span: Span };
    if (depth > limit) return { span: node.span };
    for (const [key, field] of Object.entries(node)) {
      if (key !== 'span' && field !== null && typeof field === 'object') stack.push({ value: field, depth: depth + 1 });
    }
  }
  return undefined;
}

/**
 * One syntax error per line, the first: a second one on the same line is nearly always recovery stumbling over
 * the rest of the first (recovery may also report one position twice, once per alternative it tried).
 */
function dedupe(items: Diagnostic[]): Diagnostic[] {
  const lines = new Set<number>();
  return [...items]
    .sort((a, b) => (a.span?.start ?? 0) - (b.span?.start ?? 0))
    .filter((d) => {
      const line = d.span?.line ?? 0;
      if (lines.has(line)) return false;
      lines.add(line);
      return true;
    });
}

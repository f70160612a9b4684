/**
 * Tokens of the convspec language (see grammar/convspec.ebnf).
 *
 * Keywords are identifiers with `longer_alt: Identifier`, so `models` or `input_image` stay identifiers.
 * Unterminated strings and block comments are matched by dedicated error tokens, so the lexer reports them with
 * their full extent instead of one "unexpected character" per character.
 */
import type { TokenType } from 'chevrotain';
import { createToken, Lexer } from './chevrotain.js';

export const Identifier = createToken({ name: 'Identifier', pattern: /[A-Za-z_][A-Za-z0-9_]*/ });

function keyword(word: string): TokenType {
  return createToken({ name: `Kw_${word}`, pattern: new RegExp(`${word}(?![A-Za-z0-9_])`), longer_alt: Identifier, label: `'${word}'` });
}

export const Keywords = {
  model: keyword('model'),
  block: keyword('block'),
  input: keyword('input'),
  param: keyword('param'),
  let: keyword('let'),
  output: keyword('output'),
  return: keyword('return'),
  repeat: keyword('repeat'),
  as: keyword('as'),
  when: keyword('when'),
  assert: keyword('assert'),
  freeze: keyword('freeze'),
  regularize: keyword('regularize'),
  on: keyword('on'),
  train: keyword('train'),
  import: keyword('import'),
  from: keyword('from'),
  take: keyword('take'),
  true: keyword('true'),
  false: keyword('false'),
  and: keyword('and'),
  or: keyword('or'),
  not: keyword('not'),
} as const;

export const KEYWORDS: ReadonlySet<string> = new Set(Object.keys(Keywords));

/**
 * Keywords that start statements or items. The parser accepts one where an expression or an op name belongs
 * (on the same line) only to report it there, instead of restarting a statement at it and cascading.
 */
export const StatementKeyword = createToken({ name: 'StatementKeyword', pattern: Lexer.NA });
for (const word of ['model', 'block', 'input', 'param', 'let', 'output', 'return', 'assert', 'freeze', 'regularize', 'train', 'import'] as const) {
  const token = Keywords[word] as { CATEGORIES?: TokenType[] };
  token.CATEGORIES = [...(token.CATEGORIES ?? []), StatementKeyword];
}

export const WhiteSpace = createToken({ name: 'WhiteSpace', pattern: /[ \t\r\n]+/, group: Lexer.SKIPPED, line_breaks: true });
/** `//` always starts a comment, so floor division is written `floor(a / b)`. */
export const LineComment = createToken({ name: 'LineComment', pattern: /\/\/[^\n]*/, group: 'comments' });
export const BlockComment = createToken({ name: 'BlockComment', pattern: /\/\*[\s\S]*?\*\//, group: 'comments', line_breaks: true });
export const UnterminatedComment = createToken({ name: 'UnterminatedComment', pattern: /\/\*[\s\S]*/, group: 'errors', line_breaks: true });

export const StringLiteral = createToken({ name: 'StringLiteral', pattern: /"(?:[^"\\\n]|\\[^\n])*"/, label: 'string' });
/**
 * A string that runs to the end of its line. It is reported by `parse` and otherwise read as a string (it belongs
 * to the StringLiteral category), so the statement around it parses normally instead of failing a second time.
 */
export const UnterminatedString = createToken({ name: 'UnterminatedString', pattern: /"(?:[^"\\\n]|\\[^\n])*/, categories: [StringLiteral], label: 'string' });
/** Numbers: `3`, `0.5`, `1e-4`, and size suffixes `10k`, `12M`, `4G` (×10³, ×10⁶, ×10⁹) for assertions. */
export const NumberLiteral = createToken({
  name: 'NumberLiteral',
  pattern: /(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?:[kMG](?![A-Za-z0-9_]))?/,
  label: 'number',
});

export const Arrow = createToken({ name: 'Arrow', pattern: /->/, label: "'->'" });
export const DotDot = createToken({ name: 'DotDot', pattern: /\.\./, label: "'..'" });
export const Dot = createToken({ name: 'Dot', pattern: /\./, label: "'.'" });
export const QuestionQuestion = createToken({ name: 'QuestionQuestion', pattern: /\?\?/, label: "'??'" });
export const Question = createToken({ name: 'Question', pattern: /\?/, label: "'?'" });
export const EqualEqual = createToken({ name: 'EqualEqual', pattern: /==/, label: "'=='" });
export const NotEqual = createToken({ name: 'NotEqual', pattern: /!=/, label: "'!='" });
export const LessEqual = createToken({ name: 'LessEqual', pattern: /<=/, label: "'<='" });
export const GreaterEqual = createToken({ name: 'GreaterEqual', pattern: />=/, label: "'>='" });
export const Less = createToken({ name: 'Less', pattern: /</, label: "'<'" });
export const Greater = createToken({ name: 'Greater', pattern: />/, label: "'>'" });
export const Equals = createToken({ name: 'Equals', pattern: /=/, label: "'='" });
export const Plus = createToken({ name: 'Plus', pattern: /\+/, label: "'+'" });
export const Minus = createToken({ name: 'Minus', pattern: /-/, label: "'-'" });
export const Star = createToken({ name: 'Star', pattern: /\*/, label: "'*'" });
export const Slash = createToken({ name: 'Slash', pattern: /\//, label: "'/'" });
export const Percent = createToken({ name: 'Percent', pattern: /%/, label: "'%'" });
export const Colon = createToken({ name: 'Colon', pattern: /:/, label: "':'" });
export const Comma = createToken({ name: 'Comma', pattern: /,/, label: "','" });
export const LParen = createToken({ name: 'LParen', pattern: /\(/, label: "'('" });
export const RParen = createToken({ name: 'RParen', pattern: /\)/, label: "')'" });
export const LBracket = createToken({ name: 'LBracket', pattern: /\[/, label: "'['" });
export const RBracket = createToken({ name: 'RBracket', pattern: /]/, label: "']'" });
export const LBrace = createToken({ name: 'LBrace', pattern: /\{/, label: "'{'" });
export const RBrace = createToken({ name: 'RBrace', pattern: /}/, label: "'}'" });

/** Order matters: longer operators first, comments before '/', error tokens after the tokens they shadow. */
export const allTokens: TokenType[] = [
  WhiteSpace,
  BlockComment,
  UnterminatedComment,
  LineComment,
  StringLiteral,
  UnterminatedString,
  NumberLiteral,
  Arrow,
  DotDot,
  Dot,
  QuestionQuestion,
  Question,
  EqualEqual,
  NotEqual,
  LessEqual,
  GreaterEqual,
  Less,
  Greater,
  Equals,
  Plus,
  Minus,
  Star,
  Slash,
  Percent,
  Colon,
  Comma,
  LParen,
  RParen,
  LBracket,
  RBracket,
  LBrace,
  RBrace,
  ...Object.values(Keywords),
  Identifier,
];

/**
 * Tokens that cannot span lines say so, sparing chevrotain the analysis of each pattern's regex at every start
 * (about 5 ms). Not the line comment and the strings: their `[^\n…]` classes match a '\r'.
 */
for (const token of allTokens) {
  const typed = token as { LINE_BREAKS?: boolean };
  if (typed.LINE_BREAKS === undefined && ![LineComment, StringLiteral, UnterminatedString].includes(token)) typed.LINE_BREAKS = false;
}

/**
 * Every token also belongs to `AnyToken`, so the parser can swallow one unreadable token as a stray statement
 * and carry on with the next statement (see `strayToken` in grammar.ts).
 */
export const AnyToken = createToken({ name: 'AnyToken', pattern: Lexer.NA });
for (const token of allTokens) {
  const typed = token as { CATEGORIES?: TokenType[] };
  if (token.GROUP !== Lexer.SKIPPED) typed.CATEGORIES = [...(typed.CATEGORIES ?? []), AnyToken];
}

/**
 * `validate` runs chevrotain's token-pattern checks (unreachable or empty patterns, bad groups) while building the
 * lexer, throwing on any finding. The tokens never change at run time, so the command skips them and
 * tests/grammar runs them on every change (as for the parser).
 */
export function createLexer(options: { readonly validate?: boolean } = {}): InstanceType<typeof Lexer> {
  return new Lexer(allTokens, { positionTracking: 'full', ensureOptimizations: false, skipValidations: options.validate !== true });
}

export const convspecLexer = createLexer();

/**
 * The canonical printer behind `convspec fmt`: AST → text.
 *
 * Layout: two-space indentation, one statement per line, spaces around binary operators and `->`, no space
 * before `(` or `:`. A statement's chain keeps the line breaks its author put before `->` (users group
 * `conv -> bn -> relu` per line) with a four-space continuation, and breaks further, filling each line, only
 * where a line would pass the width. Parentheses are printed exactly where precedence needs them. Blank lines
 * between statements are kept (one at most). Comments are kept: a comment on its own line stays before the
 * statement that follows it, a trailing comment stays at the end of its line (in a chain, the line of its step),
 * and any other comment inside a statement moves before it.
 *
 * Printing is idempotent: formatting formatted text changes nothing.
 */
import type * as A from './ast.js';
import { quote } from './build-ast.js';
import { KEYWORDS } from './tokens.js';

const WIDTH = 100;

/** Binding strength of each expression form; a child weaker than its context gets parentheses. */
const enum Precedence {
  Chain = 0,
  Conditional = 1,
  Coalesce = 2,
  Or = 3,
  And = 4,
  Not = 5,
  Comparison = 6,
  Additive = 7,
  Multiplicative = 8,
  Unary = 9,
  Postfix = 10,
}

function operatorPrecedence(operator: A.BinaryOperator): Precedence {
  switch (operator) {
    case '??':
      return Precedence.Coalesce;
    case 'or':
      return Precedence.Or;
    case 'and':
      return Precedence.And;
    case '==':
    case '!=':
    case '<':
    case '<=':
    case '>':
    case '>=':
      return Precedence.Comparison;
    case '+':
    case '-':
      return Precedence.Additive;
    default:
      return Precedence.Multiplicative;
  }
}

function precedenceOf(expr: A.Expr): Precedence {
  switch (expr.$type) {
    case 'ChainExpr':
      return Precedence.Chain;
    case 'ConditionalExpr':
      return Precedence.Conditional;
    case 'BinaryExpr':
      return operatorPrecedence(expr.operators[0]!);
    case 'UnaryExpr':
      return expr.operator === 'not' ? Precedence.Not : Precedence.Unary;
    default:
      return Precedence.Postfix;
  }
}

export function formatExpression(expr: A.Expr, context: Precedence = Precedence.Chain, indent = ''): string {
  const text = printExpr(expr, indent);
  return precedenceOf(expr) < context ? `(${text})` : text;
}

function printArguments(args: readonly A.Argument[], indent: string): string {
  return args.map((a) => (a.name ? `${a.name.name}: ${formatExpression(a.value, Precedence.Chain, indent)}` : formatExpression(a.value, Precedence.Chain, indent))).join(', ');
}

function printStep(step: A.ChainStep, indent: string): string {
  let text = step.callee.name;
  if (step.args !== undefined) text += `(${printArguments(step.args, indent)})`;
  if (step.alias) text += ` as ${step.alias.$type === 'StringLit' ? quote(step.alias.value) : step.alias.name}`;
  if (step.repeat) {
    const count = formatExpression(step.repeat.count, Precedence.Additive, indent);
    text = `repeat ${count}${step.repeat.index ? ` as ${step.repeat.index.name}` : ''} ${text}`;
  }
  return text;
}

function printExpr(expr: A.Expr, indent: string): string {
  switch (expr.$type) {
    case 'NumberLit':
      return expr.text;
    case 'StringLit':
      return quote(expr.value);
    case 'BoolLit':
      return String(expr.value);
    case 'Identifier':
      return expr.name;
    case 'ListExpr':
      return `[${expr.items.map((i) => formatExpression(i, Precedence.Chain, indent)).join(', ')}]`;
    case 'UnaryExpr':
      return expr.operator === 'not'
        ? `not ${formatExpression(expr.operand, Precedence.Not, indent)}`
        : `-${formatExpression(expr.operand, Precedence.Unary, indent)}`;
    case 'BinaryExpr': {
      const level = operatorPrecedence(expr.operators[0]!);
      // Left-associative: the first operand may be at the same level, later ones must bind tighter;
      // comparisons are not associative, so both sides must bind tighter.
      let text = formatExpression(expr.operands[0]!, level === Precedence.Comparison ? level + 1 : level, indent);
      expr.operators.forEach((operator, i) => {
        text += ` ${operator} ${formatExpression(expr.operands[i + 1]!, level + 1, indent)}`;
      });
      return text;
    }
    case 'ConditionalExpr':
      return `${formatExpression(expr.condition, Precedence.Coalesce, indent)} ? ${formatExpression(expr.then, Precedence.Chain, indent)} : ${formatExpression(expr.otherwise, Precedence.Chain, indent)}`;
    case 'CallExpr':
      return `${expr.callee.name}(${printArguments(expr.args, indent)})`;
    case 'IndexExpr':
      return `${formatExpression(expr.target, Precedence.Postfix, indent)}[${formatExpression(expr.index, Precedence.Chain, indent)}]`;
    case 'ChainExpr':
      // A chain inside an expression stays on one line; statement-level chains are laid out by printChain.
      return [formatExpression(expr.head, Precedence.Conditional, indent), ...expr.steps.map((s) => printStep(s, indent))].join(' -> ');
    case 'ErrorExpr':
      return '<error>';
  }
}

function printTarget(target: A.Target): string {
  switch (target.$type) {
    case 'NameTarget':
      return target.path;
    case 'RangeTarget':
      return `${target.from}..${target.to}`;
    case 'PatternTarget':
      return quote(target.pattern);
  }
}

function printType(type: A.TypeRef): string {
  return `${type.name}${type.list ? '[]' : ''}`;
}

/** Statement text without comments; multi-line for blocks, models and train sections. */
function printStatement(statement: A.Statement | A.TopLevelItem, indent: string, comments: CommentQueue): string {
  switch (statement.$type) {
    case 'ImportDecl':
      return statement.names ? `import { ${statement.names.map((n) => n.name).join(', ')} } from ${quote(statement.path.value)}` : `import ${quote(statement.path.value)}`;
    case 'ModelDecl':
      return `model ${statement.name.name} {\n${printBody(statement.body, `${indent}  `, comments, statement.span.end)}${indent}}`;
    case 'BlockDecl': {
      const params = statement.params.map((p) => `${p.name.name}: ${printType(p.type)}${p.defaultValue ? ` = ${formatExpression(p.defaultValue)}` : ''}`);
      const head = `block ${statement.name.name}(${params.join(', ')}) (${statement.inputs.map((i) => i.name).join(', ')}) {`;
      return `${head}\n${printBody(statement.body, `${indent}  `, comments, statement.span.end)}${indent}}`;
    }
    case 'InputDecl':
      return `input ${statement.name.name}: ${statement.dtype.name}[${statement.dims.map((d) => formatExpression(d, Precedence.Chain, indent)).join(', ')}]`;
    case 'ParamDecl':
      return `param ${statement.name.name}: ${printType(statement.type)} = ${formatExpression(statement.value, Precedence.Chain, indent)}`;
    case 'LetDecl':
      return `let ${statement.name.name} = ${formatExpression(statement.value, Precedence.Chain, indent)}`;
    case 'AssignStmt': {
      const value = formatExpression(statement.value, Precedence.Chain, indent);
      const when = statement.when ? `${value.includes('\n') ? `\n${indent}   ` : ''} when ${formatExpression(statement.when, Precedence.Chain, indent)}` : '';
      return `${statement.name.name} = ${value}${when}`;
    }
    case 'TakeStmt':
      return `${statement.name.name} = from ${quote(statement.path.value)} take ${statement.targets.map(printTarget).join(', ')}${statement.input ? ` (${formatExpression(statement.input)})` : ''}`;
    case 'OutputStmt':
      return `output ${statement.names.map((n) => n.name).join(', ')}`;
    case 'RegularizeStmt': {
      const call = `${statement.regularizer.callee.name}(${printArguments(statement.regularizer.args, indent)})`;
      return `regularize ${call}${statement.targets.length > 0 ? ` on ${statement.targets.map(printTarget).join(', ')}` : ''}`;
    }
    case 'FreezeStmt':
      return `freeze ${statement.targets.map(printTarget).join(', ')}`;
    case 'AssertStmt':
      return `assert ${formatExpression(statement.condition, Precedence.Chain, indent)}${statement.message ? `, ${quote(statement.message.value)}` : ''}`;
    case 'TrainStmt': {
      const inner = statement.settings.map((s) => `${indent}  ${s.key.name}: ${formatExpression(s.value, Precedence.Chain, `${indent}  `)}\n`).join('');
      return `train {\n${inner}${indent}}`;
    }
    case 'ReturnStmt':
      return `return ${formatExpression(statement.value, Precedence.Chain, indent)}`;
  }
}

/** Comments in source order, consumed as the printer passes them. */
class CommentQueue {
  private index = 0;

  constructor(
    private readonly comments: readonly A.Comment[],
    readonly text: string,
  ) {}

  /** Comments that start before `offset` and have not been printed. */
  takeBefore(offset: number): A.Comment[] {
    const taken: A.Comment[] = [];
    while (this.index < this.comments.length && this.comments[this.index]!.span.start < offset) taken.push(this.comments[this.index++]!);
    return taken;
  }

  /** A trailing comment on `line`, if the next unprinted comment is one. */
  takeTrailing(line: number): A.Comment | undefined {
    const next = this.comments[this.index];
    if (next && next.trailing && next.span.line === line) {
      this.index++;
      return next;
    }
    return undefined;
  }
}

function blankLineBefore(text: string, offset: number): boolean {
  // Walk back over whitespace: two newlines mean a blank line.
  let newlines = 0;
  for (let i = offset - 1; i >= 0; i--) {
    const ch = text[i]!;
    if (ch === '\n') newlines++;
    else if (ch !== ' ' && ch !== '\t' && ch !== '\r') break;
    if (newlines >= 2) return true;
  }
  return false;
}

function printBody(statements: ReadonlyArray<A.Statement | A.TopLevelItem>, indent: string, comments: CommentQueue, end: number): string {
  let out = '';
  statements.forEach((statement, index) => {
    const leading = comments.takeBefore(statement.span.start);
    const first = leading[0];
    const startOfGroup = first ? first.span.start : statement.span.start;
    if (index > 0 && blankLineBefore(comments.text, startOfGroup)) out += '\n';
    // Blank lines inside the group (a file header above the first item's own comment) stay too.
    leading.forEach((comment, i) => {
      if (i > 0 && blankLineBefore(comments.text, comment.span.start)) out += '\n';
      out += `${indent}${comment.text.trimEnd()}\n`;
    });
    if (leading.length > 0 && blankLineBefore(comments.text, statement.span.start)) out += '\n';
    const chained = chainParts(statement, indent);
    // Comments inside a simple statement move in front of it; a chain keeps those it can place on its lines.
    const inner = statement.$type === 'ModelDecl' || statement.$type === 'BlockDecl' ? [] : comments.takeBefore(statement.span.end);
    let text: string;
    let unplaced = inner;
    if (chained) ({ text, unplaced } = printChain(chained, indent, inner, comments.text));
    else text = printStatement(statement, indent, comments);
    for (const comment of unplaced) out += `${indent}${comment.text.trimEnd()}\n`;
    const trailing = comments.takeTrailing(statement.span.endLine);
    if (trailing) text += ` ${trailing.text.trimEnd()}`;
    out += `${indent}${text}\n`;
  });
  const closing = comments.takeBefore(end);
  if (closing.length > 0 && statements.length > 0 && blankLineBefore(comments.text, closing[0]!.span.start)) out += '\n';
  for (const comment of closing) out += `${indent}${comment.text.trimEnd()}\n`;
  return out;
}

interface ChainParts {
  /** `name = `, `return ` or `let name = `. */
  readonly prefix: string;
  readonly chain: A.ChainExpr;
  /** The `when` condition of an assignment, printed. */
  readonly when: string | undefined;
  readonly line: number;
}

function chainParts(statement: A.Statement | A.TopLevelItem, indent: string): ChainParts | undefined {
  switch (statement.$type) {
    case 'AssignStmt':
      if (statement.value.$type !== 'ChainExpr') return undefined;
      return {
        prefix: `${statement.name.name} = `,
        chain: statement.value,
        when: statement.when ? formatExpression(statement.when, Precedence.Chain, indent) : undefined,
        line: statement.span.line,
      };
    case 'ReturnStmt':
      return statement.value.$type === 'ChainExpr' ? { prefix: 'return ', chain: statement.value, when: undefined, line: statement.span.line } : undefined;
    case 'LetDecl':
      return statement.value.$type === 'ChainExpr' ? { prefix: `let ${statement.name.name} = `, chain: statement.value, when: undefined, line: statement.span.line } : undefined;
    default:
      return undefined;
  }
}

/**
 * A statement-level chain: one output group per source line of the chain (a group starts at a step the author
 * put on a new line), each group filled onto lines of at most WIDTH columns. Comments inside the statement that
 * trail a line of the chain end the last line of its group; comments on their own line between groups stay
 * between them; others are returned as unplaced (the caller prints them before the statement).
 */
function printChain(parts: ChainParts, indent: string, inner: readonly A.Comment[], source: string): { text: string; unplaced: A.Comment[] } {
  const { chain } = parts;
  const continuation = `${indent}    `;
  const steps = chain.steps.map((s) => printStep(s, continuation));
  // Group steps by the author's line breaks before them.
  const groups: Array<{ line: number; steps: string[] }> = [{ line: parts.line, steps: [] }];
  chain.steps.forEach((step, i) => {
    const previousEnd = i === 0 ? chain.head.span.end : chain.steps[i - 1]!.span.end;
    if (source.slice(previousEnd, step.span.start).includes('\n')) groups.push({ line: step.span.line, steps: [] });
    groups[groups.length - 1]!.steps.push(steps[i]!);
  });
  // Fill each group onto lines; remember the last line of each group for trailing comments.
  const lines: string[] = [];
  const lastLineOfGroup: number[] = [];
  const beforeGroup: string[][] = groups.map(() => []);
  groups.forEach((group, g) => {
    let current = g === 0 ? `${parts.prefix}${formatExpression(chain.head, Precedence.Conditional, continuation)}` : undefined;
    const width = () => (lines.length === 0 ? indent.length : continuation.length);
    for (const step of group.steps) {
      if (current === undefined) current = `-> ${step}`;
      else if (width() + current.length + 4 + step.length <= WIDTH) current += ` -> ${step}`;
      else {
        lines.push(current);
        current = `-> ${step}`;
      }
    }
    lines.push(current!);
    lastLineOfGroup.push(lines.length - 1);
  });
  if (parts.when !== undefined) {
    const joined = `${lines[0]} when ${parts.when}`;
    if (lines.length === 1 && indent.length + joined.length <= WIDTH) lines[0] = joined;
    else lines.push(`when ${parts.when}`);
  }
  // Comments: by the source line they are on, to the group that line belongs to.
  const trailing: string[][] = lines.map(() => []);
  const unplaced: A.Comment[] = [];
  for (const comment of inner) {
    let g = 0;
    while (g + 1 < groups.length && groups[g + 1]!.line <= comment.span.line) g++;
    if (comment.trailing && comment.span.line >= groups[g]!.line) trailing[lastLineOfGroup[g]!]!.push(comment.text.trimEnd());
    else if (!comment.trailing && g + 1 < groups.length) beforeGroup[g + 1]!.push(comment.text.trimEnd());
    else unplaced.push(comment);
  }
  let text = '';
  lines.forEach((line, i) => {
    const group = lastLineOfGroup.indexOf(i - 1) + 1;
    if (i > 0) {
      if (group > 0 && lastLineOfGroup[group - 1] === i - 1) for (const comment of beforeGroup[group] ?? []) text += `\n${continuation}${comment}`;
      text += `\n${continuation}`;
    }
    text += [line, ...trailing[i]!].join(' ');
  });
  return { text, unplaced };
}

/** Formats a whole program. `text` is the source it was parsed from (for blank lines). */
export function formatProgram(program: A.Program, text: string): string {
  const comments = new CommentQueue(program.comments, text);
  const out = printBody(program.items, '', comments, text.length + 1);
  return out.replace(/\n{3,}/g, '\n\n');
}

/** True when a name can be printed bare (not a keyword). */
export function isPlainName(name: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name) && !KEYWORDS.has(name);
}

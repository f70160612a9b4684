/**
 * CST → typed AST.
 *
 * The parser recovers from errors, so a CST node may lack children it should have. A statement that is missing
 * a required part is dropped here (the syntax error was already reported); the name it would have defined is
 * recorded in `brokenNames`, so elaboration stays silent about uses of it instead of cascading errors.
 *
 * The grammar accepts a few things only to report them well (a statement keyword where an expression belongs,
 * a token between items); those become `problems` and `strayRuns` for `parse` to turn into diagnostics.
 */
import type { CstElement, CstNode, IToken } from 'chevrotain';
import type * as A from './ast.js';
import type { SourceFile, Span } from '../source.js';
import { joinSpans } from '../source.js';
import { UnterminatedString } from './tokens.js';

class Incomplete extends Error {}

type Children = Record<string, CstElement[] | undefined>;

function isToken(element: CstElement | undefined): element is IToken {
  return element !== undefined && (element as IToken).image !== undefined;
}

/** Multipliers of the size suffixes of number literals. */
const SUFFIX: Record<string, number> = { k: 1e3, M: 1e6, G: 1e9 };

/**
 * Consecutive tokens that started no statement (or no item at the top level): one diagnostic per run.
 * `after` is where the run's region began (the end of the previous statement, or the opening brace), so
 * `parse` can tell the tail of an error already reported in that region from a new error.
 */
export interface StrayRun {
  readonly tokens: IToken[];
  readonly after: number;
  /** At the top level, where the item before the run starts. */
  readonly itemStart: number;
  readonly topLevel: boolean;
  /** The statement before the run contains a chain (`->`): an operator after it needs parentheses. */
  readonly afterChain: boolean;
}

/** Something the grammar accepted only to report it here. */
export type BuildProblem =
  | { readonly kind: 'unexpected'; readonly token: IToken; readonly expected: string }
  | { readonly kind: 'missing'; readonly offset: number; readonly expected: string }
  | { readonly kind: 'invalidNumber'; readonly token: IToken }
  | { readonly kind: 'misplaced'; readonly token: IToken; readonly what: string; readonly where: string; readonly hint: string };

export class AstBuilder {
  readonly brokenNames = new Set<string>();
  readonly strayRuns: StrayRun[] = [];
  readonly problems: BuildProblem[] = [];

  constructor(private readonly source: SourceFile) {}

  private tokenSpan(token: IToken): Span {
    return this.source.span(token.startOffset, (token.endOffset ?? token.startOffset) + 1);
  }

  private nodeSpan(node: CstNode): Span {
    const location = node.location;
    if (location && Number.isFinite(location.startOffset) && Number.isFinite(location.endOffset ?? NaN)) {
      return this.source.span(location.startOffset, (location.endOffset as number) + 1);
    }
    throw new Incomplete();
  }

  private token(children: Children, key: string, index = 0): IToken {
    const element = children[key]?.[index];
    if (!isToken(element) || element.isInsertedInRecovery || Number.isNaN(element.startOffset)) throw new Incomplete();
    return element;
  }

  private optionalToken(children: Children, key: string, index = 0): IToken | undefined {
    const element = children[key]?.[index];
    return isToken(element) && !element.isInsertedInRecovery && !Number.isNaN(element.startOffset) ? element : undefined;
  }

  private tokens(children: Children, key: string): IToken[] {
    return (children[key] ?? []).filter(isToken).filter((t) => !t.isInsertedInRecovery && !Number.isNaN(t.startOffset));
  }

  private child(children: Children, key: string, index = 0): CstNode {
    const element = children[key]?.[index];
    if (!element || isToken(element)) throw new Incomplete();
    return element;
  }

  private optionalChild(children: Children, key: string): CstNode | undefined {
    const element = children[key]?.[0];
    return element && !isToken(element) ? element : undefined;
  }

  private nodes(children: Children, key: string): CstNode[] {
    return (children[key] ?? []).filter((e): e is CstNode => !isToken(e));
  }

  private identifier(token: IToken): A.Identifier {
    return { $type: 'Identifier', span: this.tokenSpan(token), name: token.image };
  }

  private stringLiteral(token: IToken): A.StringLit {
    // An unterminated string (already reported) reads to the end of its line.
    const image = token.tokenType === UnterminatedString ? `${token.image}"` : token.image;
    return { $type: 'StringLit', span: this.tokenSpan(token), value: unquote(image) };
  }

  // ------------------------------------------------------------------------------------------------------------

  program(cst: CstNode, comments: A.Comment[]): A.Program {
    const c = cst.children as Children;
    const items: A.TopLevelItem[] = [];
    const elements: Array<CstNode | IToken> = [...this.nodes(c, 'importDecl'), ...this.nodes(c, 'blockDecl'), ...this.nodes(c, 'modelDecl'), ...this.tokens(c, 'stray')];
    const startOf = (e: CstNode | IToken) => (isToken(e) ? e.startOffset : (e.location?.startOffset ?? 0));
    elements.sort((a, b) => startOf(a) - startOf(b));
    let run: IToken[] | undefined;
    let after = 0;
    let itemStart = 0;
    for (const element of elements) {
      if (isToken(element)) {
        if (!run) this.strayRuns.push({ tokens: (run = []), after, itemStart, topLevel: true, afterChain: false });
        run.push(element);
        continue;
      }
      run = undefined;
      if (element.location && Number.isFinite(element.location.startOffset)) itemStart = element.location.startOffset;
      if (element.location && Number.isFinite(element.location.endOffset ?? NaN)) after = (element.location.endOffset as number) + 1;
      const item = this.attempt(() => {
        if (element.name === 'importDecl') return this.importDecl(element);
        if (element.name === 'blockDecl') return this.blockDecl(element);
        return this.modelDecl(element);
      }, element);
      if (item) items.push(item);
    }
    return {
      $type: 'Program',
      span: this.source.span(0, this.source.text.length),
      imports: items.filter((i): i is A.ImportDecl => i.$type === 'ImportDecl'),
      blocks: items.filter((i): i is A.BlockDecl => i.$type === 'BlockDecl'),
      models: items.filter((i): i is A.ModelDecl => i.$type === 'ModelDecl'),
      items,
      comments,
    };
  }

  /** Runs a builder; on a missing part, records the defined name as broken and drops the item. */
  private attempt<T>(build: () => T, node: CstNode): T | undefined {
    try {
      return build();
    } catch (error) {
      if (!(error instanceof Incomplete)) throw error;
      const declarations = node.name === 'statement' ? Object.values(node.children as Children).map((inner) => inner?.[0]) : [node];
      for (const declaration of declarations) {
        if (!declaration || isToken(declaration)) continue;
        const c = declaration.children as Children;
        const named = ['modelDecl', 'letDecl', 'paramDecl'].includes(declaration.name) ? 'Identifier' : 'name';
        const name = this.optionalToken(c, named);
        if (name) this.brokenNames.add(name.image);
        // A block whose header broke may have its body read as the enclosing body: its parameters and inputs
        // then appear there, and are not unknown names.
        if (declaration.name === 'blockDecl') {
          for (const param of this.nodes(c, 'blockParam')) {
            const paramName = this.optionalToken(param.children as Children, 'Identifier');
            if (paramName) this.brokenNames.add(paramName.image);
          }
          for (const input of this.tokens(c, 'inputs')) this.brokenNames.add(input.image);
        }
      }
      return undefined;
    }
  }

  private importDecl(node: CstNode): A.ImportDecl {
    const c = node.children as Children;
    const path = this.optionalToken(c, 'StringLiteral') ?? this.token(c, 'StringLiteral', 0);
    const names = c['names'] ? this.tokens(c, 'names').map((t) => this.identifier(t)) : undefined;
    return { $type: 'ImportDecl', span: this.nodeSpan(node), path: this.stringLiteral(path), names };
  }

  private modelDecl(node: CstNode): A.ModelDecl {
    const c = node.children as Children;
    this.token(c, 'RBrace');
    return {
      $type: 'ModelDecl',
      span: this.nodeSpan(node),
      name: this.identifier(this.token(c, 'Identifier')),
      body: this.statements(c),
    };
  }

  private statements(c: Children): A.Statement[] {
    const result: A.Statement[] = [];
    let run: IToken[] | undefined;
    let after = this.optionalToken(c, 'LBrace')?.endOffset ?? 0;
    let afterChain = false;
    for (const statement of this.nodes(c, 'statement')) {
      const stray = this.optionalToken(statement.children as Children, 'stray');
      if (stray) {
        if (!run) this.strayRuns.push({ tokens: (run = []), after, itemStart: after, topLevel: false, afterChain });
        run.push(stray);
        continue;
      }
      run = undefined;
      const location = statement.location;
      if (location && Number.isFinite(location.endOffset ?? NaN)) after = (location.endOffset as number) + 1;
      const built = this.attempt(() => this.statement(statement), statement);
      afterChain = built !== undefined && containsChain(built);
      if (built) result.push(built);
    }
    return result;
  }

  private statement(node: CstNode): A.Statement {
    const c = node.children as Children;
    const [key] = Object.keys(c);
    if (key === undefined) throw new Incomplete();
    const inner = this.child(c, key);
    switch (inner.name) {
      case 'inputDecl':
        return this.inputDecl(inner);
      case 'paramDecl':
        return this.paramDecl(inner);
      case 'letDecl':
        return this.letDecl(inner);
      case 'blockDecl':
        return this.blockDecl(inner);
      case 'outputStmt':
        return this.outputStmt(inner);
      case 'regularizeStmt':
        return this.regularizeStmt(inner);
      case 'freezeStmt':
        return this.freezeStmt(inner);
      case 'assertStmt':
        return this.assertStmt(inner);
      case 'trainStmt':
        return this.trainStmt(inner);
      case 'returnStmt':
        return this.returnStmt(inner);
      case 'assignStmt':
        return this.assignStmt(inner);
      case 'modelDecl': {
        const keyword = this.token(inner.children as Children, 'Kw_model');
        this.problems.push({ kind: 'misplaced', token: keyword, what: 'a model', where: 'inside another model or a block', hint: 'a file declares one model; blocks can be shared through imports' });
        throw new Incomplete();
      }
      default:
        throw new Incomplete();
    }
  }

  private inputDecl(node: CstNode): A.InputDecl {
    const c = node.children as Children;
    this.token(c, 'RBracket');
    return {
      $type: 'InputDecl',
      span: this.nodeSpan(node),
      name: this.identifier(this.token(c, 'name')),
      dtype: this.identifier(this.token(c, 'dtype')),
      dims: this.nodes(c, 'expression').map((e) => this.expression(e)),
    };
  }

  private typeRef(node: CstNode): A.TypeRef {
    const c = node.children as Children;
    return { $type: 'TypeRef', span: this.nodeSpan(node), name: this.token(c, 'Identifier').image, list: this.optionalToken(c, 'RBracket') !== undefined };
  }

  private paramDecl(node: CstNode): A.ParamDecl {
    const c = node.children as Children;
    return {
      $type: 'ParamDecl',
      span: this.nodeSpan(node),
      name: this.identifier(this.token(c, 'Identifier')),
      type: this.typeRef(this.child(c, 'typeRef')),
      value: this.expression(this.child(c, 'expression')),
    };
  }

  private letDecl(node: CstNode): A.LetDecl {
    const c = node.children as Children;
    return {
      $type: 'LetDecl',
      span: this.nodeSpan(node),
      name: this.identifier(this.token(c, 'Identifier')),
      value: this.expression(this.child(c, 'expression')),
    };
  }

  private blockDecl(node: CstNode): A.BlockDecl {
    const c = node.children as Children;
    this.token(c, 'RBrace');
    const params = this.nodes(c, 'blockParam').map((p): A.BlockParam => {
      const pc = p.children as Children;
      const defaultNode = this.optionalChild(pc, 'expression');
      return {
        $type: 'BlockParam',
        span: this.nodeSpan(p),
        name: this.identifier(this.token(pc, 'Identifier')),
        type: this.typeRef(this.child(pc, 'typeRef')),
        defaultValue: defaultNode ? this.expression(defaultNode) : undefined,
      };
    });
    return {
      $type: 'BlockDecl',
      span: this.nodeSpan(node),
      name: this.identifier(this.token(c, 'name')),
      params,
      inputs: this.tokens(c, 'inputs').map((t) => this.identifier(t)),
      body: this.statements(c),
    };
  }

  private assignStmt(node: CstNode): A.AssignStmt | A.TakeStmt {
    const c = node.children as Children;
    const name = this.identifier(this.token(c, 'name'));
    if (!c['Equals']) {
      const offset = this.optionalToken(c, 'Kw_from')?.startOffset ?? this.optionalChild(c, 'value')?.location?.startOffset;
      if (offset === undefined || !Number.isFinite(offset)) throw new Incomplete();
      this.problems.push({ kind: 'missing', offset, expected: "'='" });
    }
    if (c['Kw_take']) {
      const inputNode = this.optionalChild(c, 'takeInput');
      return {
        $type: 'TakeStmt',
        span: this.nodeSpan(node),
        name,
        path: this.stringLiteral(this.token(c, 'StringLiteral')),
        targets: this.nodes(c, 'target').map((t) => this.target(t)),
        input: inputNode ? this.expression(inputNode) : undefined,
      };
    }
    const condition = this.optionalChild(c, 'condition');
    if (c['Kw_when'] && !condition) throw new Incomplete();
    return {
      $type: 'AssignStmt',
      span: this.nodeSpan(node),
      name,
      value: this.expression(this.child(c, 'value')),
      when: condition ? this.expression(condition) : undefined,
    };
  }

  private outputStmt(node: CstNode): A.OutputStmt {
    const c = node.children as Children;
    return { $type: 'OutputStmt', span: this.nodeSpan(node), names: this.tokens(c, 'Identifier').map((t) => this.identifier(t)) };
  }

  private target(node: CstNode): A.Target {
    const c = node.children as Children;
    const pattern = this.optionalToken(c, 'StringLiteral');
    if (pattern) return { $type: 'PatternTarget', span: this.nodeSpan(node), pattern: this.stringLiteral(pattern).value };
    const from = this.path(this.child(c, 'from'));
    const toNode = this.optionalChild(c, 'to');
    if (c['DotDot'] && !toNode) throw new Incomplete();
    if (toNode) return { $type: 'RangeTarget', span: this.nodeSpan(node), from, to: this.path(toNode) };
    return { $type: 'NameTarget', span: this.nodeSpan(node), path: from };
  }

  private path(node: CstNode): string {
    const c = node.children as Children;
    const parts = this.tokens(c, 'Identifier').map((t) => t.image);
    if (parts.length === 0 || parts.length !== (c['Identifier']?.length ?? 0)) throw new Incomplete();
    return parts.join('.');
  }

  private regularizeStmt(node: CstNode): A.RegularizeStmt {
    const c = node.children as Children;
    const kind = this.token(c, 'kind');
    const args = this.argumentList(this.child(c, 'argumentList'));
    const regularizer: A.CallExpr = {
      $type: 'CallExpr',
      span: joinSpans(this.tokenSpan(kind), this.nodeSpan(this.child(c, 'argumentList'))),
      callee: this.identifier(kind),
      args,
    };
    if (c['Kw_on'] && this.nodes(c, 'target').length === 0) throw new Incomplete();
    return { $type: 'RegularizeStmt', span: this.nodeSpan(node), regularizer, targets: this.nodes(c, 'target').map((t) => this.target(t)) };
  }

  private freezeStmt(node: CstNode): A.FreezeStmt {
    const c = node.children as Children;
    const targets = this.nodes(c, 'target').map((t) => this.target(t));
    if (targets.length === 0) throw new Incomplete();
    return { $type: 'FreezeStmt', span: this.nodeSpan(node), targets };
  }

  private assertStmt(node: CstNode): A.AssertStmt {
    const c = node.children as Children;
    const message = this.optionalToken(c, 'StringLiteral');
    if (c['Comma'] && !message) throw new Incomplete();
    return {
      $type: 'AssertStmt',
      span: this.nodeSpan(node),
      condition: this.expression(this.child(c, 'expression')),
      message: message ? this.stringLiteral(message) : undefined,
    };
  }

  private trainStmt(node: CstNode): A.TrainStmt {
    const c = node.children as Children;
    this.token(c, 'RBrace');
    const settings: A.TrainSetting[] = [];
    for (const setting of this.nodes(c, 'trainSetting')) {
      const built = this.attempt(() => {
        const sc = setting.children as Children;
        return {
          $type: 'TrainSetting' as const,
          span: this.nodeSpan(setting),
          key: this.identifier(this.token(sc, 'Identifier')),
          value: this.expression(this.child(sc, 'expression')),
        };
      }, setting);
      if (built) settings.push(built);
    }
    return { $type: 'TrainStmt', span: this.nodeSpan(node), settings };
  }

  private returnStmt(node: CstNode): A.ReturnStmt {
    const c = node.children as Children;
    return { $type: 'ReturnStmt', span: this.nodeSpan(node), value: this.expression(this.child(c, 'expression')) };
  }

  // ------------------------------------------------------------------------------------------------------------
  // Expressions

  expression(node: CstNode): A.Expr {
    const c = node.children as Children;
    const head = this.conditional(this.child(c, 'conditional'));
    const stepNodes = this.nodes(c, 'chainStep');
    if (stepNodes.length !== (c['Arrow']?.length ?? 0)) throw new Incomplete();
    if (stepNodes.length === 0) return head;
    return { $type: 'ChainExpr', span: this.nodeSpan(node), head, steps: stepNodes.map((s) => this.chainStep(s)) };
  }

  private chainStep(node: CstNode): A.ChainStep {
    const c = node.children as Children;
    const keyword = this.optionalToken(c, 'keyword');
    if (keyword) {
      this.problems.push({ kind: 'unexpected', token: keyword, expected: 'an op or block name' });
      throw new Incomplete();
    }
    let repeat: A.ChainStep['repeat'];
    if (c['Kw_repeat']) {
      const index = this.optionalToken(c, 'index');
      if (c['indexAs'] && !index) throw new Incomplete();
      repeat = { count: this.binaryLevel(this.child(c, 'count')), index: index ? this.identifier(index) : undefined };
    }
    const callee = this.identifier(this.token(c, 'callee'));
    const argumentNode = this.optionalChild(c, 'argumentList');
    const aliasToken = this.optionalToken(c, 'alias');
    if (c['aliasAs'] && !aliasToken) throw new Incomplete();
    const alias = aliasToken
      ? aliasToken.image.startsWith('"')
        ? this.stringLiteral(aliasToken)
        : this.identifier(aliasToken)
      : undefined;
    return {
      $type: 'ChainStep',
      span: this.nodeSpan(node),
      callee,
      args: argumentNode ? this.argumentList(argumentNode) : undefined,
      repeat,
      alias,
    };
  }

  private conditional(node: CstNode): A.Expr {
    const c = node.children as Children;
    const condition = this.binaryLevel(this.child(c, 'coalesce'));
    if (!c['Question']) return condition;
    return {
      $type: 'ConditionalExpr',
      span: this.nodeSpan(node),
      condition,
      then: this.expression(this.child(c, 'then')),
      otherwise: this.expression(this.child(c, 'otherwise')),
    };
  }

  /**
   * The binary precedence levels share one shape: `operand {operator operand}`. Each level's single-operand
   * node is skipped, so `x` does not become a tower of six one-child nodes.
   */
  private binaryLevel(node: CstNode): A.Expr {
    const c = node.children as Children;
    switch (node.name) {
      case 'notExpression':
        return this.prefixed(node, this.tokens(c, 'operator').length, 'not', this.binaryLevel(this.child(c, 'comparison')));
      case 'unary':
        return this.prefixed(node, this.tokens(c, 'operator').length, '-', this.postfix(this.child(c, 'postfix')));
      default: {
        const operands = this.nodes(c, 'operand');
        const operators = this.tokens(c, 'operator').map((t) => t.image as A.BinaryOperator);
        if (operands.length === 0 || operators.length !== operands.length - 1) throw new Incomplete();
        const built = operands.map((o) => this.binaryLevel(o));
        if (built.length === 1) return built[0]!;
        return { $type: 'BinaryExpr', span: this.nodeSpan(node), operands: built, operators };
      }
    }
  }

  private prefixed(node: CstNode, count: number, operator: A.UnaryOperator, operand: A.Expr): A.Expr {
    // `- - x` folds pairwise: an even count of '-' or 'not' is the operand itself only for numbers/bools,
    // so keep one node per operator but build them without recursion.
    let result = operand;
    for (let i = 0; i < count; i++) {
      result = { $type: 'UnaryExpr', span: this.nodeSpan(node), operator, operand: result };
    }
    return result;
  }

  private postfix(node: CstNode): A.Expr {
    const c = node.children as Children;
    let result = this.primary(this.child(c, 'primary'));
    for (const indexNode of this.nodes(c, 'index')) {
      result = { $type: 'IndexExpr', span: joinSpans(result.span, this.nodeSpan(indexNode)), target: result, index: this.expression(indexNode) };
    }
    if (this.tokens(c, 'RBracket').length !== this.nodes(c, 'index').length) throw new Incomplete();
    return result;
  }

  private primary(node: CstNode): A.Expr {
    const c = node.children as Children;
    const keyword = this.optionalToken(c, 'keyword');
    if (keyword) {
      this.problems.push({ kind: 'unexpected', token: keyword, expected: 'an expression' });
      throw new Incomplete();
    }
    const span = this.nodeSpan(node);
    const number = this.optionalToken(c, 'NumberLiteral');
    if (number) {
      const literal = numberLiteral(number.image, span);
      if (!Number.isFinite(literal.value)) {
        this.problems.push({ kind: 'invalidNumber', token: number });
        throw new Incomplete();
      }
      return literal;
    }
    const string = this.optionalToken(c, 'StringLiteral');
    if (string) return this.stringLiteral(string);
    if (c['Kw_true']) return { $type: 'BoolLit', span, value: true };
    if (c['Kw_false']) return { $type: 'BoolLit', span, value: false };
    const identifier = this.optionalToken(c, 'Identifier');
    if (identifier) {
      const argumentNode = this.optionalChild(c, 'argumentList');
      if (!argumentNode) return this.identifier(identifier);
      return { $type: 'CallExpr', span, callee: this.identifier(identifier), args: this.argumentList(argumentNode) };
    }
    if (c['LBracket']) {
      this.token(c, 'RBracket');
      return { $type: 'ListExpr', span, items: this.nodes(c, 'item').map((i) => this.expression(i)) };
    }
    if (c['LParen']) {
      this.token(c, 'RParen');
      return this.expression(this.child(c, 'inner'));
    }
    throw new Incomplete();
  }

  private argumentList(node: CstNode): A.Argument[] {
    const c = node.children as Children;
    this.token(c, 'RParen');
    return this.nodes(c, 'argument').map((a) => {
      const ac = a.children as Children;
      const name = this.optionalToken(ac, 'name');
      return {
        $type: 'Argument' as const,
        span: this.nodeSpan(a),
        name: name ? this.identifier(name) : undefined,
        value: this.expression(this.child(ac, 'expression')),
      };
    });
  }
}

/** True when a statement's expressions contain a chain; no deep recursion (chains are flat). */
function containsChain(statement: A.Statement): boolean {
  const values: Array<A.Expr | undefined> = [];
  switch (statement.$type) {
    case 'AssignStmt':
      values.push(statement.value, statement.when);
      break;
    case 'ReturnStmt':
    case 'LetDecl':
    case 'ParamDecl':
      values.push(statement.value);
      break;
    case 'AssertStmt':
      values.push(statement.condition);
      break;
    default:
      break;
  }
  return values.some((v) => v?.$type === 'ChainExpr');
}

export function numberLiteral(text: string, span: Span): A.NumberLit {
  const last = text[text.length - 1]!;
  const multiplier = SUFFIX[last];
  const digits = multiplier ? text.slice(0, -1) : text;
  const value = Number(digits) * (multiplier ?? 1);
  const isInteger = Number.isInteger(value) && (multiplier !== undefined || /^\d+$/.test(digits));
  return { $type: 'NumberLit', span, value, text, isInteger };
}

export function unquote(image: string): string {
  const body = image.slice(1, -1);
  return body.replace(/\\(.)/g, (_, ch: string) => (ch === 'n' ? '\n' : ch === 't' ? '\t' : ch));
}

export function quote(value: string): string {
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n').replace(/\t/g, '\\t')}"`;
}

/**
 * The typed AST of a convspec file. Each node has a `$type` discriminant and the span of the text it came from.
 *
 * Left-associative operator runs (`a + b - c`) are one n-ary `Binary` node, and chains (`x -> a -> b`) one
 * `Chain` node with a list of steps, so walking a 10,000-step chain or a long sum never recurses deeply.
 */
import type { Span } from '../source.js';

export interface Comment {
  readonly text: string;
  readonly span: Span;
  /** True when code precedes the comment on its line. */
  readonly trailing: boolean;
}

export interface Program {
  readonly $type: 'Program';
  readonly span: Span;
  readonly imports: ImportDecl[];
  readonly blocks: BlockDecl[];
  readonly models: ModelDecl[];
  /** Top-level items in source order, for the formatter. */
  readonly items: TopLevelItem[];
  readonly comments: Comment[];
}

export type TopLevelItem = ImportDecl | BlockDecl | ModelDecl;

/** `import "lib/blocks.cnn"` makes the file's blocks visible; `import { a, b } from "x.cnn"` only those named. */
export interface ImportDecl {
  readonly $type: 'ImportDecl';
  readonly span: Span;
  readonly path: StringLit;
  readonly names: Identifier[] | undefined;
}

export interface ModelDecl {
  readonly $type: 'ModelDecl';
  readonly span: Span;
  readonly name: Identifier;
  readonly body: Statement[];
}

export type Statement =
  | InputDecl
  | ParamDecl
  | LetDecl
  | BlockDecl
  | AssignStmt
  | OutputStmt
  | RegularizeStmt
  | FreezeStmt
  | AssertStmt
  | TrainStmt
  | ReturnStmt
  | TakeStmt;

export interface InputDecl {
  readonly $type: 'InputDecl';
  readonly span: Span;
  readonly name: Identifier;
  readonly dtype: Identifier;
  readonly dims: Expr[];
}

export interface TypeRef {
  readonly $type: 'TypeRef';
  readonly span: Span;
  readonly name: string;
  /** `int[]`: a list of the element type. */
  readonly list: boolean;
}

/** `param alpha: float = 1.0`: a model parameter that the command line may override. */
export interface ParamDecl {
  readonly $type: 'ParamDecl';
  readonly span: Span;
  readonly name: Identifier;
  readonly type: TypeRef;
  readonly value: Expr;
}

export interface LetDecl {
  readonly $type: 'LetDecl';
  readonly span: Span;
  readonly name: Identifier;
  readonly value: Expr;
}

export interface BlockParam {
  readonly $type: 'BlockParam';
  readonly span: Span;
  readonly name: Identifier;
  readonly type: TypeRef;
  readonly defaultValue: Expr | undefined;
}

export interface BlockDecl {
  readonly $type: 'BlockDecl';
  readonly span: Span;
  readonly name: Identifier;
  readonly params: BlockParam[];
  readonly inputs: Identifier[];
  readonly body: Statement[];
}

export interface AssignStmt {
  readonly $type: 'AssignStmt';
  readonly span: Span;
  readonly name: Identifier;
  readonly value: Expr;
  readonly when: Expr | undefined;
}

export interface OutputStmt {
  readonly $type: 'OutputStmt';
  readonly span: Span;
  readonly names: Identifier[];
}

/** A layer selector: a name or dotted path, a range `stem..stage3` of top-level values, or a quoted glob. */
export type Target = NameTarget | RangeTarget | PatternTarget;

export interface NameTarget {
  readonly $type: 'NameTarget';
  readonly span: Span;
  readonly path: string;
}

export interface RangeTarget {
  readonly $type: 'RangeTarget';
  readonly span: Span;
  readonly from: string;
  readonly to: string;
}

export interface PatternTarget {
  readonly $type: 'PatternTarget';
  readonly span: Span;
  readonly pattern: string;
}

export interface RegularizeStmt {
  readonly $type: 'RegularizeStmt';
  readonly span: Span;
  readonly regularizer: CallExpr;
  readonly targets: Target[];
}

export interface FreezeStmt {
  readonly $type: 'FreezeStmt';
  readonly span: Span;
  readonly targets: Target[];
}

export interface AssertStmt {
  readonly $type: 'AssertStmt';
  readonly span: Span;
  readonly condition: Expr;
  readonly message: StringLit | undefined;
}

export interface TrainSetting {
  readonly $type: 'TrainSetting';
  readonly span: Span;
  readonly key: Identifier;
  readonly value: Expr;
}

export interface TrainStmt {
  readonly $type: 'TrainStmt';
  readonly span: Span;
  readonly settings: TrainSetting[];
}

export interface ReturnStmt {
  readonly $type: 'ReturnStmt';
  readonly span: Span;
  readonly value: Expr;
}

/** `base = from "resnet18.cnn" take stem..stage4 (image)`: reuse part of another model's graph. */
export interface TakeStmt {
  readonly $type: 'TakeStmt';
  readonly span: Span;
  readonly name: Identifier;
  readonly path: StringLit;
  readonly targets: Target[];
  readonly input: Expr | undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// Expressions

export type Expr =
  | NumberLit
  | StringLit
  | BoolLit
  | Identifier
  | ListExpr
  | UnaryExpr
  | BinaryExpr
  | ConditionalExpr
  | CallExpr
  | IndexExpr
  | ChainExpr
  | ErrorExpr;

export interface NumberLit {
  readonly $type: 'NumberLit';
  readonly span: Span;
  readonly value: number;
  /** The literal as written (`1e-4`, `12M`), kept for formatting. */
  readonly text: string;
  /** Written without a fraction or exponent (an `int`). */
  readonly isInteger: boolean;
}

export interface StringLit {
  readonly $type: 'StringLit';
  readonly span: Span;
  readonly value: string;
}

export interface BoolLit {
  readonly $type: 'BoolLit';
  readonly span: Span;
  readonly value: boolean;
}

export interface Identifier {
  readonly $type: 'Identifier';
  readonly span: Span;
  readonly name: string;
}

export interface ListExpr {
  readonly $type: 'ListExpr';
  readonly span: Span;
  readonly items: Expr[];
}

export type UnaryOperator = '-' | 'not';

export interface UnaryExpr {
  readonly $type: 'UnaryExpr';
  readonly span: Span;
  readonly operator: UnaryOperator;
  readonly operand: Expr;
}

export type BinaryOperator =
  | '+'
  | '-'
  | '*'
  | '/'
  | '%'
  | '=='
  | '!='
  | '<'
  | '<='
  | '>'
  | '>='
  | 'and'
  | 'or'
  | '??';

/** `operands[0] op[0] operands[1] op[1] …`, evaluated left to right. Comparisons have exactly two operands. */
export interface BinaryExpr {
  readonly $type: 'BinaryExpr';
  readonly span: Span;
  readonly operands: Expr[];
  readonly operators: BinaryOperator[];
}

export interface ConditionalExpr {
  readonly $type: 'ConditionalExpr';
  readonly span: Span;
  readonly condition: Expr;
  readonly then: Expr;
  readonly otherwise: Expr;
}

export interface Argument {
  readonly $type: 'Argument';
  readonly span: Span;
  readonly name: Identifier | undefined;
  readonly value: Expr;
}

export interface CallExpr {
  readonly $type: 'CallExpr';
  readonly span: Span;
  readonly callee: Identifier;
  readonly args: Argument[];
}

export interface IndexExpr {
  readonly $type: 'IndexExpr';
  readonly span: Span;
  readonly target: Expr;
  readonly index: Expr;
}

/**
 * One step of a chain: an op or block applied to the incoming tensor, e.g. `conv(64, 3)` or `relu`;
 * `repeat n [as i] step` applies the step n times; `as name` names the layer (a string names it absolutely).
 */
export interface ChainStep {
  readonly $type: 'ChainStep';
  readonly span: Span;
  readonly callee: Identifier;
  /** undefined when written without parentheses (`-> relu`). */
  readonly args: Argument[] | undefined;
  readonly repeat: { readonly count: Expr; readonly index: Identifier | undefined } | undefined;
  readonly alias: Identifier | StringLit | undefined;
}

export interface ChainExpr {
  readonly $type: 'ChainExpr';
  readonly span: Span;
  readonly head: Expr;
  readonly steps: ChainStep[];
}

/** Stands in for an expression the parser could not read; elaboration treats it as already reported. */
export interface ErrorExpr {
  readonly $type: 'ErrorExpr';
  readonly span: Span;
}

export function isExpr(node: { $type: string }): node is Expr {
  return (
    node.$type === 'NumberLit' ||
    node.$type === 'StringLit' ||
    node.$type === 'BoolLit' ||
    node.$type === 'Identifier' ||
    node.$type === 'ListExpr' ||
    node.$type === 'UnaryExpr' ||
    node.$type === 'BinaryExpr' ||
    node.$type === 'ConditionalExpr' ||
    node.$type === 'CallExpr' ||
    node.$type === 'IndexExpr' ||
    node.$type === 'ChainExpr' ||
    node.$type === 'ErrorExpr'
  );
}

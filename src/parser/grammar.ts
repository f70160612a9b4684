/**
 * The grammar-only chevrotain parser: it builds a concrete syntax tree and nothing else.
 * Meaning is given by `build-ast.ts` (CST → typed AST) and by elaboration. grammar/convspec.ebnf is the
 * readable form of the same rules; keep the two in step.
 *
 * Error recovery is on: single-token insertion/deletion and re-synchronisation at statement boundaries, so one
 * run reports every independent syntax error.
 */
import type { CstNode, IToken, TokenType } from 'chevrotain';
import { CstParser, EOF } from './chevrotain.js';
import {
  AnyToken,
  allTokens,
  Arrow,
  Colon,
  Comma,
  DotDot,
  Dot,
  EqualEqual,
  Equals,
  Greater,
  GreaterEqual,
  Identifier,
  Keywords as K,
  LBrace,
  LBracket,
  Less,
  LessEqual,
  LParen,
  Minus,
  NotEqual,
  NumberLiteral,
  Percent,
  Plus,
  Question,
  QuestionQuestion,
  RBrace,
  RBracket,
  RParen,
  Slash,
  Star,
  StatementKeyword,
  StringLiteral,
} from './tokens.js';

export class ConvspecCstParser extends CstParser {
  /**
   * `validate` runs chevrotain's grammar validations (ambiguities, left recursion, unreachable alternatives) while
   * building the parser, throwing on any finding. The grammar never changes at run time, so the command skips
   * them (about a third of the parser's start-up) and tests/grammar runs them on every change.
   */
  constructor(options: { readonly validate?: boolean } = {}) {
    super([...allTokens, AnyToken, StatementKeyword], {
      recoveryEnabled: true,
      maxLookahead: 3,
      nodeLocationTracking: 'full',
      skipValidations: options.validate !== true,
    });
    this.performSelfAnalysis();
  }

  /** The next token, for locating a failure that escaped the parser (a stack overflow). */
  nextToken(): IToken {
    return this.LA(1);
  }

  /** True when the next token is on the line where the previous one ends. */
  private nextOnSameLine(): boolean {
    const previous = this.LA(0);
    const next = this.LA(1);
    return previous.endLine !== undefined && next.startLine !== undefined && previous.endLine === next.startLine;
  }

  // program = { import | block | model }
  // As in bodies, the loop is gated on "not at the end" and a stray token is swallowed on its own, so one
  // unreadable token between items is one error instead of the end of parsing.
  program = this.RULE('program', () => {
    this.MANY({
      GATE: () => this.LA(1).tokenType !== EOF,
      DEF: () => {
        this.OR([
          { ALT: () => this.SUBRULE(this.importDecl) },
          { ALT: () => this.SUBRULE(this.blockDecl) },
          { ALT: () => this.SUBRULE(this.modelDecl) },
          { ALT: () => this.CONSUME(AnyToken, { LABEL: 'stray' }), IGNORE_AMBIGUITIES: true },
        ]);
      },
    });
  });

  // import = "import" ( STRING | "{" IDENT {"," IDENT} "}" "from" STRING )
  importDecl = this.RULE('importDecl', () => {
    this.CONSUME(K.import);
    this.OR([
      { ALT: () => this.CONSUME(StringLiteral) },
      {
        ALT: () => {
          this.CONSUME(LBrace);
          this.AT_LEAST_ONE_SEP({ SEP: Comma, DEF: () => this.CONSUME(Identifier, { LABEL: 'names' }) });
          this.CONSUME(RBrace);
          this.CONSUME(K.from);
          this.CONSUME2(StringLiteral);
        },
      },
    ]);
  });

  modelDecl = this.RULE('modelDecl', () => {
    this.CONSUME(K.model);
    this.CONSUME(Identifier);
    this.CONSUME(LBrace);
    this.statementsUntilBrace();
    this.CONSUME(RBrace);
  });

  /**
   * Statements up to the closing brace. The loop is gated on "not at '}'" rather than on "a statement starts
   * here", so a stray token fails inside an iteration and chevrotain re-synchronises to the next statement
   * instead of abandoning the whole body.
   */
  private statementsUntilBrace(): void {
    this.MANY({
      GATE: () => this.LA(1).tokenType !== RBrace && this.LA(1).tokenType !== EOF,
      DEF: () => this.SUBRULE(this.statement),
    });
  }

  statement = this.RULE('statement', () => {
    this.OR([
      { ALT: () => this.SUBRULE(this.inputDecl) },
      { ALT: () => this.SUBRULE(this.paramDecl) },
      { ALT: () => this.SUBRULE(this.letDecl) },
      { ALT: () => this.SUBRULE(this.blockDecl) },
      { ALT: () => this.SUBRULE(this.outputStmt) },
      { ALT: () => this.SUBRULE(this.regularizeStmt) },
      { ALT: () => this.SUBRULE(this.freezeStmt) },
      { ALT: () => this.SUBRULE(this.assertStmt) },
      { ALT: () => this.SUBRULE(this.trainStmt) },
      { ALT: () => this.SUBRULE(this.returnStmt) },
      // Only to report it (the AST builder does): a nested model, read whole so its '}' does not end this body.
      { ALT: () => this.SUBRULE(this.modelDecl) },
      // `name = …`, and `name value` on one line (a forgotten '='): the assignment is read without its '=' and
      // the AST builder reports it, so the name stays defined.
      {
        GATE: () => this.LA(2).tokenType === Equals || (this.LA(2).tokenType === Identifier && this.LA(1).endLine === this.LA(2).startLine),
        ALT: () => this.SUBRULE(this.assignStmt),
      },
      { ALT: () => this.CONSUME(AnyToken, { LABEL: 'stray' }), IGNORE_AMBIGUITIES: true },
    ]);
  });

  // input = "input" IDENT ":" IDENT "[" expr {"," expr} "]"
  inputDecl = this.RULE('inputDecl', () => {
    this.CONSUME(K.input);
    this.CONSUME(Identifier, { LABEL: 'name' });
    this.CONSUME(Colon);
    this.CONSUME2(Identifier, { LABEL: 'dtype' });
    this.CONSUME(LBracket);
    this.MANY_SEP({ SEP: Comma, DEF: () => this.SUBRULE(this.expression) });
    this.CONSUME(RBracket);
  });

  typeRef = this.RULE('typeRef', () => {
    this.CONSUME(Identifier);
    this.OPTION(() => {
      this.CONSUME(LBracket);
      this.CONSUME(RBracket);
    });
  });

  paramDecl = this.RULE('paramDecl', () => {
    this.CONSUME(K.param);
    this.CONSUME(Identifier);
    this.CONSUME(Colon);
    this.SUBRULE(this.typeRef);
    this.CONSUME(Equals);
    this.SUBRULE(this.expression);
  });

  letDecl = this.RULE('letDecl', () => {
    this.CONSUME(K.let);
    this.CONSUME(Identifier);
    this.CONSUME(Equals);
    this.SUBRULE(this.expression);
  });

  // block = "block" IDENT "(" [blockParam {"," blockParam}] ")" "(" [IDENT {"," IDENT}] ")" "{" {statement} "}"
  blockDecl = this.RULE('blockDecl', () => {
    this.CONSUME(K.block);
    this.CONSUME(Identifier, { LABEL: 'name' });
    this.CONSUME(LParen);
    this.MANY_SEP({ SEP: Comma, DEF: () => this.SUBRULE(this.blockParam) });
    this.CONSUME(RParen);
    this.CONSUME2(LParen);
    this.MANY_SEP2({ SEP: Comma, DEF: () => this.CONSUME2(Identifier, { LABEL: 'inputs' }) });
    this.CONSUME2(RParen);
    this.CONSUME(LBrace);
    this.statementsUntilBrace();
    this.CONSUME(RBrace);
  });

  blockParam = this.RULE('blockParam', () => {
    this.CONSUME(Identifier);
    this.CONSUME(Colon);
    this.SUBRULE(this.typeRef);
    this.OPTION(() => {
      this.CONSUME(Equals);
      this.SUBRULE(this.expression);
    });
  });

  // assign = IDENT "=" ( expression ["when" expression] | "from" STRING "take" target {"," target} ["(" expression ")"] )
  assignStmt = this.RULE('assignStmt', () => {
    this.CONSUME(Identifier, { LABEL: 'name' });
    // Optional only so that `x image -> …` (a forgotten '=') parses; the AST builder reports the missing '='.
    this.OPTION3(() => this.CONSUME(Equals));
    this.OR([
      {
        ALT: () => {
          this.CONSUME(K.from);
          this.CONSUME(StringLiteral);
          this.CONSUME(K.take);
          this.AT_LEAST_ONE_SEP({ SEP: Comma, DEF: () => this.SUBRULE(this.target) });
          this.OPTION2(() => {
            this.CONSUME(LParen);
            this.SUBRULE2(this.expression, { LABEL: 'takeInput' });
            this.CONSUME(RParen);
          });
        },
      },
      {
        ALT: () => {
          this.SUBRULE(this.expression, { LABEL: 'value' });
          this.OPTION(() => {
            this.CONSUME(K.when);
            this.SUBRULE3(this.expression, { LABEL: 'condition' });
          });
        },
      },
    ]);
  });

  outputStmt = this.RULE('outputStmt', () => {
    this.CONSUME(K.output);
    this.AT_LEAST_ONE_SEP({ SEP: Comma, DEF: () => this.CONSUME(Identifier) });
  });

  // target = STRING | path [".." path];   path = IDENT {"." IDENT}
  target = this.RULE('target', () => {
    this.OR([
      { ALT: () => this.CONSUME(StringLiteral) },
      {
        ALT: () => {
          this.SUBRULE(this.path, { LABEL: 'from' });
          this.OPTION(() => {
            this.CONSUME(DotDot);
            this.SUBRULE2(this.path, { LABEL: 'to' });
          });
        },
      },
    ]);
  });

  path = this.RULE('path', () => {
    this.CONSUME(Identifier);
    this.MANY(() => {
      this.CONSUME(Dot);
      this.CONSUME2(Identifier);
    });
  });

  regularizeStmt = this.RULE('regularizeStmt', () => {
    this.CONSUME(K.regularize);
    this.CONSUME(Identifier, { LABEL: 'kind' });
    this.SUBRULE(this.argumentList);
    this.OPTION(() => {
      this.CONSUME(K.on);
      this.AT_LEAST_ONE_SEP({ SEP: Comma, DEF: () => this.SUBRULE(this.target) });
    });
  });

  freezeStmt = this.RULE('freezeStmt', () => {
    this.CONSUME(K.freeze);
    this.AT_LEAST_ONE_SEP({ SEP: Comma, DEF: () => this.SUBRULE(this.target) });
  });

  assertStmt = this.RULE('assertStmt', () => {
    this.CONSUME(K.assert);
    this.SUBRULE(this.expression);
    this.OPTION(() => {
      this.CONSUME(Comma);
      this.CONSUME(StringLiteral);
    });
  });

  trainStmt = this.RULE('trainStmt', () => {
    this.CONSUME(K.train);
    this.CONSUME(LBrace);
    this.MANY(() => this.SUBRULE(this.trainSetting));
    this.CONSUME(RBrace);
  });

  trainSetting = this.RULE('trainSetting', () => {
    this.CONSUME(Identifier);
    this.CONSUME(Colon);
    this.SUBRULE(this.expression);
  });

  returnStmt = this.RULE('returnStmt', () => {
    this.CONSUME(K.return);
    this.SUBRULE(this.expression);
  });

  // ------------------------------------------------------------------------------------------------------------
  // Expressions, lowest precedence first. A chain (`->`) binds loosest.

  expression = this.RULE('expression', () => {
    this.SUBRULE(this.conditional);
    this.MANY(() => {
      this.CONSUME(Arrow);
      this.SUBRULE(this.chainStep);
    });
  });

  // step = ["repeat" expr ["as" IDENT]] IDENT [argumentList] ["as" (IDENT | STRING)]
  // One repeat per step: a repeated sequence or a nested repeat is written as a block.
  chainStep = this.RULE('chainStep', () => {
    this.OPTION(() => {
      this.CONSUME(K.repeat);
      this.SUBRULE(this.additive, { LABEL: 'count' });
      this.OPTION4(() => {
        this.CONSUME(K.as, { LABEL: 'indexAs' });
        this.CONSUME(Identifier, { LABEL: 'index' });
      });
    });
    this.OR([
      // `-> name =` is the next statement after a dangling '->', not a step.
      { GATE: () => this.LA(2).tokenType !== Equals, ALT: () => this.CONSUME2(Identifier, { LABEL: 'callee' }) },
      { GATE: () => this.nextOnSameLine(), ALT: () => this.CONSUME(StatementKeyword, { LABEL: 'keyword' }) },
    ]);
    this.OPTION2(() => this.SUBRULE(this.argumentList));
    this.OPTION3(() => {
      this.CONSUME2(K.as, { LABEL: 'aliasAs' });
      this.OR2([
        { ALT: () => this.CONSUME3(Identifier, { LABEL: 'alias' }) },
        { ALT: () => this.CONSUME(StringLiteral, { LABEL: 'alias' }) },
      ]);
    });
  });

  conditional = this.RULE('conditional', () => {
    this.SUBRULE(this.coalesce);
    this.OPTION(() => {
      this.CONSUME(Question);
      this.SUBRULE(this.expression, { LABEL: 'then' });
      this.CONSUME(Colon);
      this.SUBRULE2(this.expression, { LABEL: 'otherwise' });
    });
  });

  coalesce = this.RULE('coalesce', () => {
    this.SUBRULE(this.orExpression, { LABEL: 'operand' });
    this.MANY(() => {
      this.CONSUME(QuestionQuestion, { LABEL: 'operator' });
      this.SUBRULE2(this.orExpression, { LABEL: 'operand' });
    });
  });

  orExpression = this.RULE('orExpression', () => {
    this.SUBRULE(this.andExpression, { LABEL: 'operand' });
    this.MANY(() => {
      this.CONSUME(K.or, { LABEL: 'operator' });
      this.SUBRULE2(this.andExpression, { LABEL: 'operand' });
    });
  });

  andExpression = this.RULE('andExpression', () => {
    this.SUBRULE(this.notExpression, { LABEL: 'operand' });
    this.MANY(() => {
      this.CONSUME(K.and, { LABEL: 'operator' });
      this.SUBRULE2(this.notExpression, { LABEL: 'operand' });
    });
  });

  notExpression = this.RULE('notExpression', () => {
    this.MANY(() => this.CONSUME(K.not, { LABEL: 'operator' }));
    this.SUBRULE(this.comparison);
  });

  comparison = this.RULE('comparison', () => {
    this.SUBRULE(this.additive, { LABEL: 'operand' });
    this.OPTION(() => {
      this.OR([
        { ALT: () => this.CONSUME(EqualEqual, { LABEL: 'operator' }) },
        { ALT: () => this.CONSUME(NotEqual, { LABEL: 'operator' }) },
        { ALT: () => this.CONSUME(LessEqual, { LABEL: 'operator' }) },
        { ALT: () => this.CONSUME(GreaterEqual, { LABEL: 'operator' }) },
        { ALT: () => this.CONSUME(Less, { LABEL: 'operator' }) },
        { ALT: () => this.CONSUME(Greater, { LABEL: 'operator' }) },
      ]);
      this.SUBRULE2(this.additive, { LABEL: 'operand' });
    });
  });

  additive = this.RULE('additive', () => {
    this.SUBRULE(this.multiplicative, { LABEL: 'operand' });
    this.MANY(() => {
      this.OR([
        { ALT: () => this.CONSUME(Plus, { LABEL: 'operator' }) },
        { ALT: () => this.CONSUME(Minus, { LABEL: 'operator' }) },
      ]);
      this.SUBRULE2(this.multiplicative, { LABEL: 'operand' });
    });
  });

  multiplicative = this.RULE('multiplicative', () => {
    this.SUBRULE(this.unary, { LABEL: 'operand' });
    this.MANY(() => {
      this.OR([
        { ALT: () => this.CONSUME(Star, { LABEL: 'operator' }) },
        { ALT: () => this.CONSUME(Slash, { LABEL: 'operator' }) },
        { ALT: () => this.CONSUME(Percent, { LABEL: 'operator' }) },
      ]);
      this.SUBRULE2(this.unary, { LABEL: 'operand' });
    });
  });

  unary = this.RULE('unary', () => {
    this.MANY(() => this.CONSUME(Minus, { LABEL: 'operator' }));
    this.SUBRULE(this.postfix);
  });

  // postfix = primary { "[" expression "]" }
  postfix = this.RULE('postfix', () => {
    this.SUBRULE(this.primary);
    this.MANY(() => {
      this.CONSUME(LBracket);
      this.SUBRULE(this.expression, { LABEL: 'index' });
      this.CONSUME(RBracket);
    });
  });

  primary = this.RULE('primary', () => {
    this.OR([
      { ALT: () => this.CONSUME(NumberLiteral) },
      { ALT: () => this.CONSUME(StringLiteral) },
      { ALT: () => this.CONSUME(K.true) },
      { ALT: () => this.CONSUME(K.false) },
      {
        ALT: () => {
          this.CONSUME(Identifier);
          this.OPTION(() => this.SUBRULE(this.argumentList));
        },
      },
      {
        ALT: () => {
          this.CONSUME(LBracket);
          this.MANY_SEP({ SEP: Comma, DEF: () => this.SUBRULE(this.expression, { LABEL: 'item' }) });
          this.CONSUME(RBracket);
        },
      },
      {
        ALT: () => {
          this.CONSUME(LParen);
          this.SUBRULE2(this.expression, { LABEL: 'inner' });
          this.CONSUME(RParen);
        },
      },
      // A statement keyword on the same line (`x = input`) is read here and reported by the AST builder.
      { GATE: () => this.nextOnSameLine(), ALT: () => this.CONSUME(StatementKeyword, { LABEL: 'keyword' }) },
    ]);
  });

  argumentList = this.RULE('argumentList', () => {
    this.CONSUME(LParen);
    this.MANY_SEP({ SEP: Comma, DEF: () => this.SUBRULE(this.argument) });
    this.CONSUME(RParen);
  });

  // argument = [IDENT ":"] expression
  argument = this.RULE('argument', () => {
    this.OPTION({
      GATE: () => this.LA(2).tokenType === Colon,
      DEF: () => {
        this.CONSUME(Identifier, { LABEL: 'name' });
        this.CONSUME(Colon);
      },
    });
    this.SUBRULE(this.expression);
  });

  /** Statements start with these tokens; recovery re-synchronises on them. */
  protected override canTokenTypeBeInsertedInRecovery(tokenType: TokenType): boolean {
    return tokenType === RParen || tokenType === RBracket || tokenType === RBrace || tokenType === Comma || tokenType === Colon || tokenType === Equals;
  }
}

export type { CstNode };
export { EOF };

let shared: ConvspecCstParser | undefined;

/** Self-analysis is costly, so one parser instance is reused (its input is reset per parse). */
export function cstParser(): ConvspecCstParser {
  shared ??= new ConvspecCstParser();
  return shared;
}

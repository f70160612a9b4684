/**
 * Elaboration: AST → IR.
 *
 * Evaluates a model's statements in order, instantiating blocks and ops into IR nodes as it goes, so every
 * tensor's shape is known at the point it is made (conditions such as `channels(x) != c` depend on it).
 *
 * Naming: each top-level assignment opens a scope named after it; each op or block call inside takes the next
 * number for its kind in that scope (`stage2.basic1.conv2`); a block call opens a nested scope; `as name` names
 * a layer inside its scope and `as "a.b"` names it absolutely. Names are stable: adding a layer at the end of a
 * scope never renames the ones before it.
 *
 * Limits turn runaway specs into diagnostics: repeat counts, block nesting depth, node count and evaluation steps.
 * `assert`s are collected with their environment and evaluated by `check` once analyses of the whole graph exist.
 */
import * as path from 'node:path';
import { closestName, didYouMean, type Diagnostic, DiagnosticBag } from '../diagnostics.js';
import { add, ceilDiv, dimToString, floorDiv, isSymbolic, mul, scale, shapeToString, sub, symbol, type Dim } from '../ir/dims.js';
import type { Graph, GraphInput, GraphOutput, Node, OpAttributes, Regularizer, SettingValue, Shape } from '../ir/graph.js';
import { inferShape, type ShapeProblem } from '../ir/shapes.js';
import { effectiveKernel } from '../ir/graph.js';
import type * as A from '../parser/ast.js';
import type { Span } from '../source.js';
import { SpecLoader, type LoadedFile, type LoadOptions } from './loader.js';
import { OP_KIND_TARGETS, OPS, type ArgSpec, type ArgType, type NodeRequest, type OpSpec } from './ops.js';
import { bool, describeValue, ERROR, list, num, renderValue, str, type Value } from './values.js';

export const LIMITS = {
  repeat: 10_000,
  blockDepth: 64,
  nodes: 500_000,
  steps: 50_000_000,
} as const;

/** Functions that need the finished graph: allowed in `assert` only. */
export const ANALYSIS_FUNCTIONS = ['rf', 'rf_stride', 'rf_padding', 'covers', 'params', 'trainable_params', 'macs', 'flops'] as const;
export type AnalysisFunction = (typeof ANALYSIS_FUNCTIONS)[number];

const VALUE_FUNCTIONS = ['int', 'float', 'round', 'floor', 'ceil', 'min', 'max', 'abs', 'make_divisible', 'len', 'channels', 'shape', 'rank', 'dim', 'sum', 'floordiv', 'ceildiv'] as const;

const TRAIN_SETTINGS = [
  'data',
  'loss',
  'optimizer',
  'schedule',
  'epochs',
  'batch',
  'seed',
  'metrics',
  'validation',
  'augment',
  'early_stopping',
  'clip',
  'classes',
  'normalize',
  'lr',
  'unfreeze',
  'label_smoothing',
] as const;

export interface ElaborateOptions extends LoadOptions {
  /** Overrides of `param` declarations (`--param alpha=0.5`). */
  readonly params?: Readonly<Record<string, string | number | boolean>>;
  /** Overrides of input shapes (`--input-shape image=1,3,160,160`); entries may be symbol names. */
  readonly inputShapes?: Readonly<Record<string, ReadonlyArray<number | string>>>;
  /** Spec text to use for the entry file instead of reading it. */
  readonly text?: string;
}

/** An assertion to evaluate once the graph is complete. */
export interface PendingAssert {
  readonly statement: A.AssertStmt;
  readonly env: Env;
  /** The block instance it came from (`stage2.basic1`), or undefined at model level. */
  readonly instance: string | undefined;
}

export interface ElaborateResult {
  readonly graph: Graph | undefined;
  readonly diagnostics: Diagnostic[];
  readonly sources: SpecLoader['sources'];
  readonly asserts: readonly PendingAssert[];
  /** Top-level value names in order, for ranges such as `stem..stage3`. */
  readonly topLevel: readonly string[];
  /** Elaborator handle for evaluating the pending asserts. */
  readonly evaluator: Evaluator | undefined;
  /** The file declares blocks and no model (a block library). */
  readonly library?: boolean;
}

/** Thrown to abandon elaboration after a limit diagnostic; never escapes `elaborate`. */
class LimitExceeded extends Error {}

interface BlockBinding {
  readonly decl: A.BlockDecl;
  /** Where the block was declared: it sees that environment's constants, never its tensors. */
  readonly env: Env;
}

export class Env {
  readonly values = new Map<string, Value>();
  readonly blocks = new Map<string, BlockBinding>();
  /** Names assigned later in this body: using one early is a forward reference, not an unknown name. */
  readonly pending = new Set<string>();
  /** Names whose definitions had syntax errors (or came from an import that failed): uses are silent. */
  readonly broken: ReadonlySet<string>;
  /** A whole-file import of this file failed: its blocks are unknown, so unknown callees may be among them. */
  readonly importFailed: boolean;

  constructor(
    readonly parent: Env | undefined,
    broken?: ReadonlySet<string>,
    importFailed?: boolean,
  ) {
    this.broken = broken ?? parent?.broken ?? new Set();
    this.importFailed = importFailed ?? parent?.importFailed ?? false;
  }

  /** Set on a block instance's scope: the block sees the constants around its declaration, not their tensors. */
  blockScope = false;

  lookup(name: string): Value | undefined {
    return this.values.get(name) ?? this.parent?.lookup(name);
  }

  /** True when `name` resolves to a value defined outside the innermost block scope. */
  definedOutsideBlock(name: string): boolean {
    if (this.values.has(name)) return false;
    if (this.blockScope) return this.parent?.lookup(name) !== undefined;
    return this.parent?.definedOutsideBlock(name) ?? false;
  }

  lookupBlock(name: string): BlockBinding | undefined {
    return this.blocks.get(name) ?? this.parent?.lookupBlock(name);
  }

  isPending(name: string): boolean {
    return this.pending.has(name) || (this.parent?.isPending(name) ?? false);
  }

  allNames(): string[] {
    return [...this.values.keys(), ...(this.parent?.allNames() ?? [])];
  }

  allBlocks(): string[] {
    return [...this.blocks.keys(), ...(this.parent?.allBlocks() ?? [])];
  }
}

/** Per-scope counters that number layers: `conv1`, `conv2`, `basic1`… */
class NameScope {
  private readonly counters = new Map<string, number>();

  constructor(readonly prefix: string) {}

  next(kind: string): string {
    const count = (this.counters.get(kind) ?? 0) + 1;
    this.counters.set(kind, count);
    return this.qualify(`${kind}${count}`);
  }

  qualify(leaf: string): string {
    return this.prefix === '' ? leaf : `${this.prefix}.${leaf}`;
  }
}

/** Analyses that `assert`s may call, provided by `check` once the graph is complete. */
export interface AssertAnalyses {
  /** Receptive field of a tensor per spatial axis. */
  receptiveField(tensor: string): { size: number[]; stride: number[]; padding: number[]; covers: boolean } | undefined;
  /** Parameter count of the nodes a target selects (the whole model when undefined). */
  params(target: string | undefined, trainableOnly: boolean): number | undefined;
  macs(target: string | undefined): number | undefined;
  flops(target: string | undefined): number | undefined;
}

interface CallContext {
  readonly env: Env;
  readonly scope: NameScope;
  /** Blocks being instantiated, outermost first (for depth limits and messages). */
  readonly stack: readonly string[];
  /** Set while evaluating an assert: analysis functions are available. */
  readonly analyses?: AssertAnalyses;
  /** Set inside a block body. */
  readonly instance?: string;
}

export class Evaluator {
  readonly bag = new DiagnosticBag();
  readonly nodes: Node[] = [];
  readonly nodeNames = new Set<string>();
  readonly asserts: PendingAssert[] = [];
  readonly topLevel: string[] = [];
  private steps = 0;

  constructor(private readonly loader: SpecLoader) {}

  private tick(span: Span): void {
    if (++this.steps > LIMITS.steps) {
      this.bag.add('tooManyNodes', span, [LIMITS.nodes], `evaluation exceeded ${LIMITS.steps} steps`);
      throw new LimitExceeded();
    }
  }

  // ------------------------------------------------------------------------------------------------------------
  // Model

  elaborateModel(file: LoadedFile, model: A.ModelDecl, options: ElaborateOptions): Graph | undefined {
    const fileEnv = this.fileEnvironment(file, file.parsed.brokenNames);
    const env = new Env(fileEnv);
    const scope = new NameScope('');
    const context: CallContext = { env, scope, stack: [] };
    const inputs: GraphInput[] = [];
    const outputs: GraphOutput[] = [];
    const training: Record<string, SettingValue> = {};
    const freezes: A.FreezeStmt[] = [];
    const regularizes: Array<{ statement: A.RegularizeStmt; regularizer: Regularizer | undefined }> = [];
    const declaredParams = new Set<string>();

    for (const statement of model.body) if (statement.$type === 'BlockDecl') this.declareBlock(env, statement);
    for (const statement of model.body) {
      if (statement.$type === 'AssignStmt' || statement.$type === 'TakeStmt' || statement.$type === 'LetDecl' || statement.$type === 'ParamDecl') env.pending.add(statement.name.name);
    }

    for (const statement of model.body) {
      this.tick(statement.span);
      switch (statement.$type) {
        case 'InputDecl': {
          const input = this.inputDecl(statement, env, options);
          if (input) inputs.push(input);
          break;
        }
        case 'ParamDecl':
          declaredParams.add(statement.name.name);
          this.paramDecl(statement, env, options);
          break;
        case 'LetDecl':
          if (this.alreadyDefined(env, statement.name)) break;
          this.define(env, statement.name, this.evaluate(statement.value, context));
          break;
        case 'BlockDecl':
          break;
        case 'AssignStmt':
          if (this.alreadyDefined(env, statement.name)) break;
          this.topLevel.push(statement.name.name);
          this.assign(statement, { ...context, scope: new NameScope(statement.name.name) });
          break;
        case 'TakeStmt':
          if (this.alreadyDefined(env, statement.name)) break;
          this.topLevel.push(statement.name.name);
          this.take(statement, { ...context, scope: new NameScope(statement.name.name) }, options);
          break;
        case 'OutputStmt':
          for (const name of statement.names) {
            const value = this.identifierValue(name, context);
            const tensor = this.expectTensor(value, `output '${name.name}'`, name.span);
            if (tensor) outputs.push({ name: name.name, value: tensor.name, span: name.span });
          }
          break;
        case 'RegularizeStmt':
          regularizes.push({ statement, regularizer: this.regularizer(statement.regularizer, context) });
          break;
        case 'FreezeStmt':
          freezes.push(statement);
          break;
        case 'AssertStmt':
          this.asserts.push({ statement, env, instance: undefined });
          break;
        case 'TrainStmt':
          for (const setting of statement.settings) {
            const key = setting.key.name;
            if (!(TRAIN_SETTINGS as readonly string[]).includes(key)) {
              this.bag.add('unknownSetting', setting.key.span, [key, 'train'], didYouMean(key, TRAIN_SETTINGS));
              continue;
            }
            const value = this.settingValue(setting.value, context);
            if (value === undefined) continue;
            const problem = checkSetting(key, value);
            if (problem) {
              this.bag.add('invalidSetting', setting.value.span, [key, 'train', problem, describeSetting(value)]);
              continue;
            }
            training[key] = value;
          }
          break;
        case 'ReturnStmt':
          // After a syntax error, this is likely the body of a block whose header broke, read as the model's.
          if (!file.parsed.diagnostics.some((d) => d.severity === 'error' && d.span && d.span.start < statement.span.start))
            this.bag.add('misplacedStatement', statement.span, ["'return'", 'in a model body; it ends a block'], "a model names its results with 'output <name>'");
          break;
      }
    }

    for (const name of Object.keys(options.params ?? {})) {
      if (!declaredParams.has(name)) this.bag.add('unknownParameter', undefined, [name, model.name.name], didYouMean(name, declaredParams));
    }
    // With syntax errors the missing statement may be one the parser dropped: stay silent then.
    const syntaxErrors = file.parsed.diagnostics.some((d) => d.severity === 'error');
    if (!syntaxErrors && !model.body.some((s) => s.$type === 'InputDecl')) this.bag.add('noInput', model.name.span, [model.name.name], "declare one, e.g. 'input image: f32[N, 3, 224, 224]'");
    if (!syntaxErrors && !model.body.some((s) => s.$type === 'OutputStmt' || s.$type === 'ReturnStmt')) this.bag.add('noOutput', model.name.span, [model.name.name], "add 'output <name>'");

    let nodes: Node[] = this.nodes;
    const frozen = this.resolveTargets(freezes.flatMap((f) => f.targets), 'freeze', nodes);
    const regularizers = new Map<string, Regularizer[]>();
    for (const { statement, regularizer } of regularizes) {
      if (!regularizer) continue;
      const selected = statement.targets.length === 0 ? new Set(nodes.map((n) => n.name)) : this.resolveTargets(statement.targets, 'regularize', nodes);
      for (const name of selected) regularizers.set(name, [...(regularizers.get(name) ?? []), regularizer]);
    }
    nodes = nodes.map((node) => {
      const isFrozen = frozen.has(node.name);
      const extra = (regularizers.get(node.name) ?? []).filter(() => node.op === 'conv' || node.op === 'conv_transpose' || node.op === 'dense');
      if (!isFrozen && extra.length === 0) return node;
      return { ...node, frozen: isFrozen, regularizers: [...node.regularizers, ...extra] };
    });

    return { name: model.name.name, inputs, nodes, outputs, training, source: file.path };
  }

  /** Blocks visible in a file: its own and those its imports make visible. */
  private fileEnvironment(file: LoadedFile, broken: ReadonlySet<string>): Env {
    // Names an import failed to bring are broken (the import was reported), not unknown.
    const failed = file.imports.filter((i) => !i.file);
    const env = new Env(undefined, new Set([...broken, ...failed.flatMap((i) => (i.decl.names ?? []).map((n) => n.name))]), failed.some((i) => !i.decl.names));
    for (const { decl, file: imported } of file.imports) {
      if (!imported) continue;
      const importedEnv = this.fileEnvironment(imported, imported.parsed.brokenNames);
      const wanted = decl.names;
      if (wanted) {
        for (const name of wanted) {
          const block = importedEnv.blocks.get(name.name);
          if (block) env.blocks.set(name.name, block);
          else this.bag.add('unknownName', name.span, [name.name], didYouMean(name.name, importedEnv.blocks.keys()));
        }
      } else {
        for (const [name, block] of importedEnv.blocks) env.blocks.set(name, block);
      }
    }
    for (const block of file.parsed.program.blocks) this.declareBlock(env, block);
    return env;
  }

  private declareBlock(env: Env, decl: A.BlockDecl): void {
    if (env.blocks.has(decl.name.name)) {
      this.bag.add('duplicateName', decl.name.span, [decl.name.name]);
      return;
    }
    if (OPS.has(decl.name.name)) this.bag.add('duplicateName', decl.name.span, [decl.name.name], 'an op of the language has this name; choose another');
    env.blocks.set(decl.name.name, { decl, env });
  }

  /**
   * Reports a second definition of a name before its value is evaluated: evaluating it would build layers whose
   * names clash with the first definition's, one more error per layer.
   */
  private alreadyDefined(env: Env, name: A.Identifier): boolean {
    if (!env.values.has(name.name)) return false;
    this.bag.add('duplicateName', name.span, [name.name]);
    return true;
  }

  private define(env: Env, name: A.Identifier, value: Value): void {
    if (env.values.has(name.name)) {
      this.bag.add('duplicateName', name.span, [name.name]);
      return;
    }
    env.pending.delete(name.name);
    env.values.set(name.name, value);
  }

  private inputDecl(statement: A.InputDecl, env: Env, options: ElaborateOptions): GraphInput | undefined {
    if (statement.dtype.name !== 'f32') this.bag.add('invalidDtype', statement.dtype.span, [statement.dtype.name], "convspec models take 'f32' inputs");
    const override = options.inputShapes?.[statement.name.name];
    const shape: Dim[] = [];
    // A broken input is still defined (as an erroneous value), so its uses are not reported as unknown names.
    const fail = (): undefined => {
      this.define(env, statement.name, ERROR);
      return undefined;
    };
    let failed = false;
    if (override) {
      for (const d of override) shape.push(typeof d === 'number' ? d : this.symbolIn(env, d));
    } else {
      for (const [axis, dimExpr] of statement.dims.entries()) {
        if (dimExpr.$type === 'Identifier' && env.lookup(dimExpr.name) === undefined) {
          shape.push(this.symbolIn(env, dimExpr.name));
          continue;
        }
        const value = this.evaluate(dimExpr, { env, scope: new NameScope(''), stack: [] });
        if (value.kind === 'number' && value.integer && value.value >= 1 && value.value <= Number.MAX_SAFE_INTEGER) shape.push(value.value);
        else if (value.kind === 'dim') shape.push(value.dim);
        else {
          if (value.kind !== 'error') this.bag.add('invalidDimension', dimExpr.span, [axis, statement.name.name, describeValue(value)]);
          failed = true;
        }
      }
    }
    if (failed) return fail();
    if (shape.length < 2) {
      this.bag.add('rankMismatch', statement.span, [`input '${statement.name.name}'`, 'at least [N, C]', shapeToString(shape)]);
      return fail();
    }
    if (!this.checkSize(statement.name.name, shape, statement.span)) return fail();
    this.define(env, statement.name, { kind: 'tensor', name: statement.name.name, shape });
    this.tensorShapes.set(statement.name.name, shape);
    return { name: statement.name.name, dtype: 'f32', shape, span: statement.span };
  }

  /** The symbolic dimension named `name`, bound in the model environment on first use. */
  private symbolIn(env: Env, name: string): Dim {
    const existing = env.lookup(name);
    if (existing?.kind === 'dim') return existing.dim;
    const dim = symbol(name);
    env.values.set(name, { kind: 'dim', dim });
    return dim;
  }

  private paramDecl(statement: A.ParamDecl, env: Env, options: ElaborateOptions): void {
    const override = options.params?.[statement.name.name];
    let value: Value;
    if (override !== undefined) {
      value = typeof override === 'number' ? num(override) : typeof override === 'boolean' ? bool(override) : parseOverride(override);
    } else {
      value = this.evaluate(statement.value, { env, scope: new NameScope(''), stack: [] });
    }
    const checked = this.checkType(value, statement.type, statement.name.name, 'param', override !== undefined ? undefined : statement.value.span);
    this.define(env, statement.name, checked);
  }

  private checkType(value: Value, type: A.TypeRef, name: string, owner: string, span: Span | undefined): Value {
    if (value.kind === 'error' || value.kind === 'none') return value;
    const accepts = (v: Value, t: string): Value | undefined => {
      switch (t) {
        case 'int':
          return v.kind === 'number' && Number.isInteger(v.value) ? num(v.value, true) : undefined;
        case 'float':
          return v.kind === 'number' ? num(v.value, false) : undefined;
        case 'bool':
          return v.kind === 'bool' ? v : undefined;
        case 'string':
          return v.kind === 'string' ? v : undefined;
        case 'dim':
          return v.kind === 'dim' || (v.kind === 'number' && Number.isInteger(v.value)) ? v : undefined;
        case 'any':
          return v;
        default:
          return undefined;
      }
    };
    if (!['int', 'float', 'bool', 'string', 'dim', 'any'].includes(type.name)) {
      this.bag.add('invalidType', type.span, [type.name], didYouMean(type.name, ['int', 'float', 'bool', 'string', 'dim', 'any']));
      return ERROR;
    }
    if (type.list) {
      if (value.kind === 'list') {
        const items = value.items.map((item) => accepts(item, type.name));
        if (items.every((i) => i !== undefined)) return list(items as Value[]);
      }
    } else {
      const accepted = accepts(value, type.name);
      if (accepted) return accepted;
    }
    const article: Record<string, string> = { int: 'an int', float: 'a float', bool: 'a bool', string: 'a string', dim: 'a size', any: 'a value' };
    this.bag.add('wrongArgumentType', span, [name, owner, type.list ? `a list of ${type.name} (${type.name}[])` : (article[type.name] ?? type.name), describeValue(value)]);
    return ERROR;
  }

  // ------------------------------------------------------------------------------------------------------------
  // Statements shared by models and blocks

  private assign(statement: A.AssignStmt, context: CallContext): void {
    if (statement.when) {
      const condition = this.evaluate(statement.when, context);
      if (condition.kind === 'error') {
        this.define(context.env, statement.name, ERROR);
        return;
      }
      if (condition.kind !== 'bool') {
        this.bag.add('conditionNotBool', statement.when.span, ['when', describeValue(condition)], condition.kind === 'number' ? `compare it, e.g. '${this.sourceText(statement.when)} > 0'` : undefined);
        this.define(context.env, statement.name, ERROR);
        return;
      }
      if (!condition.value) {
        this.define(context.env, statement.name, { kind: 'none', name: statement.name.name });
        return;
      }
    }
    this.define(context.env, statement.name, this.evaluate(statement.value, context));
  }

  private take(statement: A.TakeStmt, context: CallContext, options: ElaborateOptions): void {
    const here = path.resolve(statement.span.file);
    const file = this.loader.resolveImport(here, statement.span.file, statement.path.value, statement.path.span);
    if (!file) {
      this.define(context.env, statement.name, ERROR);
      return;
    }
    const model = file.parsed.program.models[0];
    if (!model) {
      this.bag.add('takeFromImport', statement.path.span, [`'${statement.path.value}' declares no model to take from`]);
      this.define(context.env, statement.name, ERROR);
      return;
    }
    // The other model is elaborated on its own, then its nodes up to the last taken value are copied in,
    // wired to this model's tensors: its inputs bind to the explicit input or to our inputs of the same name.
    const inner = new Evaluator(this.loader);
    const graph = inner.elaborateModel(file, model, { ...options, params: undefined, inputShapes: undefined });
    if (!graph || inner.bag.hasErrors) {
      this.bag.add('takeFromImport', statement.path.span, [`'${statement.path.value}' has errors; check it first`]);
      this.define(context.env, statement.name, ERROR);
      return;
    }
    const selected = inner.resolveTargets(statement.targets, 'take', graph.nodes);
    this.bag.push(...inner.bag.items.filter((d) => d.span?.file === statement.span.file));
    if (selected.size === 0) {
      this.define(context.env, statement.name, ERROR);
      return;
    }
    const explicitInput = statement.input ? this.expectTensor(this.evaluate(statement.input, context), 'take input', statement.input.span) : undefined;
    const rename = new Map<string, string>();
    for (const input of graph.inputs) {
      const bound = explicitInput ?? (context.env.lookup(input.name)?.kind === 'tensor' ? (context.env.lookup(input.name) as { name: string; shape: Shape }) : undefined);
      if (!bound) {
        this.bag.add('takeFromImport', statement.span, [`no tensor to feed input '${input.name}' of '${statement.path.value}': pass one in parentheses`]);
        this.define(context.env, statement.name, ERROR);
        return;
      }
      rename.set(input.name, bound.name);
    }
    const lastSelected = graph.nodes.filter((n) => selected.has(n.name)).at(-1)!;
    // Everything the last selected node depends on comes along, so the taken part is a closed subgraph.
    const needed = new Set<string>([lastSelected.name]);
    const byName = new Map(graph.nodes.map((n) => [n.name, n]));
    for (let i = graph.nodes.length - 1; i >= 0; i--) {
      const node = graph.nodes[i]!;
      if (needed.has(node.name)) for (const input of node.inputs) if (byName.has(input)) needed.add(input);
    }
    let last: Value = ERROR;
    const taken: string[] = [];
    for (const node of graph.nodes) {
      if (!needed.has(node.name)) continue;
      const inputs = node.inputs.map((i) => rename.get(i) ?? i);
      const inputShapes = inputs.map((i) => this.shapeOf(i)!);
      const result = inferShape(node, inputShapes);
      if (!result.ok) {
        this.reportShapeProblem(result.problem, node.op, node.name, statement.span, inputShapes, node);
        this.define(context.env, statement.name, ERROR);
        return;
      }
      if (this.nodeNames.has(node.name)) {
        this.bag.add('duplicateName', statement.name.span, [node.name], 'a taken layer keeps its name; rename the clashing layer');
        this.define(context.env, statement.name, ERROR);
        return;
      }
      this.pushNode({ ...node, inputs, shape: result.shape, frozen: false, regularizers: [] });
      taken.push(node.name);
      last = { kind: 'tensor', name: node.name, shape: result.shape };
    }
    this.takenLayers.set(statement.name.name, taken);
    this.define(context.env, statement.name, last);
  }

  /**
   * Layers each `x = from "…" take …` brought in, by x. They keep their names (`stem.conv1`), so `freeze x` and
   * ranges over x select them through this map.
   */
  private readonly takenLayers = new Map<string, string[]>();

  private shapeOf(tensor: string): Shape | undefined {
    return this.tensorShapes.get(tensor);
  }

  /** Shapes of graph inputs and of every node made so far. */
  private readonly tensorShapes = new Map<string, Shape>();

  private pushNode(node: Node): void {
    if (this.nodes.length >= LIMITS.nodes) {
      this.bag.add('tooManyNodes', node.span, [LIMITS.nodes]);
      throw new LimitExceeded();
    }
    this.nodes.push(node);
    this.nodeNames.add(node.name);
    this.tensorShapes.set(node.name, node.shape);
  }

  private regularizer(call: A.CallExpr, context: CallContext): Regularizer | undefined {
    const kinds = ['l1', 'l2', 'l1_l2', 'max_norm'];
    const name = call.callee.name;
    if (!kinds.includes(name)) {
      this.bag.add('unknownCallee', call.callee.span, [name], didYouMean(name, kinds) ?? `regularizers: ${kinds.join(', ')}`);
      return undefined;
    }
    const values = call.args.map((a) => this.evaluate(a.value, context));
    const first = values[0];
    if (!first || first.kind !== 'number' || first.value < 0) {
      if (first?.kind !== 'error') this.bag.add('wrongArgumentType', call.span, ['factor', name, 'a non-negative number', first ? describeValue(first) : 'nothing']);
      return undefined;
    }
    if (name === 'max_norm') return { kind: 'max_norm', value: first.value };
    return { kind: name === 'l1' ? 'l1' : 'l2', factor: first.value };
  }

  private settingValue(expr: A.Expr, context: CallContext): SettingValue | undefined {
    if (expr.$type === 'Identifier' && context.env.lookup(expr.name) === undefined) return expr.name;
    if (expr.$type === 'ListExpr') {
      const items = expr.items.map((item) => this.settingValue(item, context));
      return items.every((i) => i !== undefined) ? (items as SettingValue[]) : undefined;
    }
    if (expr.$type === 'CallExpr' && !OPS.has(expr.callee.name) && !context.env.lookupBlock(expr.callee.name) && !(VALUE_FUNCTIONS as readonly string[]).includes(expr.callee.name)) {
      const args: Record<string, SettingValue> = {};
      expr.args.forEach((argument, index) => {
        const value = this.settingValue(argument.value, context);
        if (value !== undefined) args[argument.name?.name ?? String(index)] = value;
      });
      return { call: expr.callee.name, args };
    }
    const value = this.evaluate(expr, context);
    return toSetting(value);
  }

  // ------------------------------------------------------------------------------------------------------------
  // Targets (freeze, regularize, take)

  resolveTargets(targets: readonly A.Target[], what: string, nodes: readonly Node[]): Set<string> {
    const selected = new Set<string>();
    for (const target of targets) {
      const before = selected.size;
      let matchedAny = false;
      switch (target.$type) {
        case 'NameTarget': {
          for (const name of this.takenLayers.get(target.path) ?? []) {
            selected.add(name);
            matchedAny = true;
          }
          for (const node of nodes) {
            if (node.name === target.path || node.name.startsWith(`${target.path}.`)) {
              selected.add(node.name);
              matchedAny = true;
            }
          }
          const kind = OP_KIND_TARGETS.get(target.path);
          if (!matchedAny && kind) {
            for (const node of nodes) if (kind(node)) selected.add(node.name);
            matchedAny = true;
          }
          if (!matchedAny) {
            const scopes = new Set(nodes.flatMap((n) => prefixes(n.name)));
            this.bag.add('nothingMatched', target.span, [what, target.path], didYouMean(target.path, [...scopes, ...OP_KIND_TARGETS.keys()]));
          }
          break;
        }
        case 'RangeTarget': {
          // Top-level values in order; for layers a take brought in (named after the other model's values,
          // `stem.conv1`), the scopes of the layers in graph order, so `freeze stem..stage2` works there too.
          let order: readonly string[] = this.topLevel;
          if (!order.includes(target.from) || !order.includes(target.to)) {
            const scopes = [...new Set(nodes.map((n) => n.name.split('.')[0]!))];
            if (scopes.includes(target.from) && scopes.includes(target.to) && [...this.takenLayers.values()].some((layers) => layers.some((l) => l.split('.')[0] === target.from))) order = scopes;
          }
          const from = order.indexOf(target.from);
          const to = order.indexOf(target.to);
          if (from < 0 || to < 0 || to < from) {
            const unknown = from < 0 ? target.from : target.to;
            this.bag.add('invalidRange', target.span, [target.from, target.to], from < 0 || to < 0 ? didYouMean(unknown, this.topLevel) : `'${target.to}' comes before '${target.from}'`);
            break;
          }
          const names = order.slice(from, to + 1);
          for (const node of nodes) if (names.some((n) => node.name === n || node.name.startsWith(`${n}.`))) selected.add(node.name);
          for (const name of names) for (const layer of this.takenLayers.get(name) ?? []) selected.add(layer);
          matchedAny = true;
          break;
        }
        case 'PatternTarget': {
          const regex = globToRegex(target.pattern);
          for (const node of nodes) if (prefixes(node.name).some((p) => regex.test(p))) selected.add(node.name);
          if (selected.size === before) this.bag.add('nothingMatched', target.span, [what, target.pattern]);
          matchedAny = true;
          break;
        }
      }
    }
    return selected;
  }

  // ------------------------------------------------------------------------------------------------------------
  // Expressions

  evaluate(expr: A.Expr, context: CallContext): Value {
    this.tick(expr.span);
    switch (expr.$type) {
      case 'NumberLit':
        return num(expr.value, expr.isInteger);
      case 'StringLit':
        return str(expr.value);
      case 'BoolLit':
        return bool(expr.value);
      case 'Identifier':
        return this.identifierValue(expr, context);
      case 'ListExpr':
        return list(expr.items.map((item) => this.evaluate(item, context)));
      case 'UnaryExpr': {
        const operand = this.evaluate(expr.operand, context);
        if (operand.kind === 'error') return ERROR;
        if (expr.operator === '-') {
          if (operand.kind === 'number') return num(-operand.value, operand.integer);
          if (operand.kind === 'dim') return dimValue(scale(operand.dim, -1));
        } else if (operand.kind === 'bool') return bool(!operand.value);
        this.bag.add('operandType', expr.span, [expr.operator, describeValue(operand), 'nothing']);
        return ERROR;
      }
      case 'BinaryExpr':
        return this.binary(expr, context);
      case 'ConditionalExpr': {
        const condition = this.evaluate(expr.condition, context);
        if (condition.kind === 'error') return ERROR;
        if (condition.kind !== 'bool') {
          this.bag.add('conditionNotBool', expr.condition.span, ['? :', describeValue(condition)]);
          return ERROR;
        }
        return this.evaluate(condition.value ? expr.then : expr.otherwise, context);
      }
      case 'CallExpr':
        return this.call(expr.callee, expr.args, undefined, context, expr.span, undefined);
      case 'IndexExpr': {
        const target = this.evaluate(expr.target, context);
        const index = this.evaluate(expr.index, context);
        if (target.kind === 'error' || index.kind === 'error') return ERROR;
        if (target.kind !== 'list' || index.kind !== 'number' || !index.integer) {
          this.bag.add('operandType', expr.span, ['[]', describeValue(target), describeValue(index)]);
          return ERROR;
        }
        const i = index.value < 0 ? target.items.length + index.value : index.value;
        const item = target.items[i];
        if (!item) {
          this.bag.add('arithmetic', expr.index.span, [`index ${index.value} is outside a list of ${target.items.length}`]);
          return ERROR;
        }
        return item;
      }
      case 'ChainExpr':
        return this.chain(expr, context);
      case 'ErrorExpr':
        return ERROR;
    }
  }

  private identifierValue(identifier: A.Identifier, context: CallContext): Value {
    const value = context.env.lookup(identifier.name);
    if (value !== undefined) {
      if ((value.kind === 'tensor' || value.kind === 'none') && context.env.definedOutsideBlock(identifier.name)) {
        const block = context.stack[context.stack.length - 1] ?? 'block';
        this.bag.add('outerTensor', identifier.span, [block, identifier.name], `add it to the block's inputs: block ${block}(…) (…, ${identifier.name})`);
        return ERROR;
      }
      return value;
    }
    if (context.env.broken.has(identifier.name)) return ERROR;
    if (context.env.isPending(identifier.name)) {
      this.bag.add('cyclicReference', identifier.span, [identifier.name]);
      return ERROR;
    }
    const callable = OPS.has(identifier.name) || context.env.lookupBlock(identifier.name);
    if (callable) {
      // A bare op name in value position is a call without arguments on nothing: only valid in a chain.
      this.bag.add('notATensor', identifier.span, [`'${identifier.name}'`, 'an op'], `apply it in a chain: x -> ${identifier.name}`);
      return ERROR;
    }
    this.bag.add('unknownName', identifier.span, [identifier.name], didYouMean(identifier.name, context.env.allNames()));
    return ERROR;
  }

  private binary(expr: A.BinaryExpr, context: CallContext): Value {
    let left = this.evaluate(expr.operands[0]!, context);
    for (let i = 0; i < expr.operators.length; i++) {
      const operator = expr.operators[i]!;
      const rightExpr = expr.operands[i + 1]!;
      if (operator === '??') {
        if (left.kind === 'none') left = this.evaluate(rightExpr, context);
        continue;
      }
      if (operator === 'and' || operator === 'or') {
        if (left.kind === 'error') return ERROR;
        if (left.kind !== 'bool') {
          this.bag.add('operandType', expr.operands[i]!.span, [operator, describeValue(left), 'a bool']);
          return ERROR;
        }
        if (operator === 'and' ? !left.value : left.value) continue;
        const right = this.evaluate(rightExpr, context);
        if (right.kind === 'error') return ERROR;
        if (right.kind !== 'bool') {
          this.bag.add('operandType', rightExpr.span, [operator, describeValue(left), describeValue(right)]);
          return ERROR;
        }
        left = right;
        continue;
      }
      const right = this.evaluate(rightExpr, context);
      left = this.applyOperator(operator, left, right, expr, i, context);
      if (left.kind === 'error') return ERROR;
    }
    if (left.kind === 'none' && expr.operators.every((o) => o === '??')) return left;
    return left;
  }

  private applyOperator(operator: A.BinaryOperator, left: Value, right: Value, expr: A.BinaryExpr, index: number, context: CallContext): Value {
    if (left.kind === 'error' || right.kind === 'error') return ERROR;
    for (const [value, operandExpr] of [
      [left, expr.operands[index]!],
      [right, expr.operands[index + 1]!],
    ] as const) {
      if (value.kind === 'none') {
        this.bag.add('noneValue', operandExpr.span, [value.name]);
        return ERROR;
      }
    }
    const span = expr.span;
    // Tensors: + and * build add / mul layers.
    if (left.kind === 'tensor' || right.kind === 'tensor') {
      if ((operator === '+' || operator === '*') && left.kind === 'tensor' && right.kind === 'tensor') {
        const opName = operator === '+' ? 'add' : 'mul';
        const callee: A.Identifier = { $type: 'Identifier', span, name: opName };
        return this.callOp(OPS.get(opName)!, callee, [left, right], [], new Map(), context, span, undefined);
      }
      this.bag.add('operandType', span, [operator, describeValue(left), describeValue(right)]);
      return ERROR;
    }
    switch (operator) {
      case '==':
      case '!=': {
        const equal = valuesEqual(left, right);
        if (equal === undefined) {
          this.bag.add('operandType', span, [operator, describeValue(left), describeValue(right)]);
          return ERROR;
        }
        return bool(operator === '==' ? equal : !equal);
      }
      case '<':
      case '<=':
      case '>':
      case '>=': {
        const result = compareValues(operator, left, right);
        if (result === undefined) {
          this.bag.add('operandType', span, [operator, describeValue(left), describeValue(right)]);
          return ERROR;
        }
        return bool(result);
      }
      default:
        return this.arithmetic(operator, left, right, span);
    }
  }

  private arithmetic(operator: A.BinaryOperator, left: Value, right: Value, span: Span): Value {
    const isNumeric = (v: Value) => v.kind === 'number' || v.kind === 'dim';
    if (operator === '+' && left.kind === 'list' && right.kind === 'list') return list([...left.items, ...right.items]);
    if (operator === '+' && left.kind === 'string' && right.kind === 'string') return str(left.value + right.value);
    if (!isNumeric(left) || !isNumeric(right)) {
      this.bag.add('operandType', span, [operator, describeValue(left), describeValue(right)]);
      return ERROR;
    }
    if (left.kind === 'number' && right.kind === 'number') {
      const a = left.value;
      const b = right.value;
      const integer = left.integer && right.integer;
      switch (operator) {
        case '+':
          return num(a + b, integer);
        case '-':
          return num(a - b, integer);
        case '*':
          return num(a * b, integer);
        case '/':
          if (b === 0) break;
          return num(a / b, false);
        case '%':
          if (b === 0) break;
          return num(a - b * Math.floor(a / b), integer);
        default:
          break;
      }
      this.bag.add('arithmetic', span, ['division by zero']);
      return ERROR;
    }
    const a: Dim = left.kind === 'number' ? left.value : (left as { dim: Dim }).dim;
    const b: Dim = right.kind === 'number' ? right.value : (right as { dim: Dim }).dim;
    const integral = (v: Value) => v.kind === 'dim' || (v.kind === 'number' && v.integer);
    if (!integral(left) || !integral(right)) {
      this.bag.add('operandType', span, [operator, describeValue(left), describeValue(right)]);
      return ERROR;
    }
    switch (operator) {
      case '+':
        return dimValue(add(a, b));
      case '-':
        return dimValue(sub(a, b));
      case '*':
        return dimValue(mul(a, b));
      default:
        break;
    }
    this.bag.add('operandType', span, [operator, describeValue(left), describeValue(right)], 'symbolic sizes support +, − and ×');
    return ERROR;
  }

  // ------------------------------------------------------------------------------------------------------------
  // Chains, calls, blocks and ops

  private chain(expr: A.ChainExpr, context: CallContext): Value {
    let current = this.evaluate(expr.head, context);
    if (current.kind === 'none') {
      this.bag.add('noneValue', expr.head.span, [current.name]);
      current = ERROR;
    } else if (current.kind !== 'tensor' && current.kind !== 'error') {
      this.bag.add('notATensor', expr.head.span, ['the start of a chain', describeValue(current)]);
      current = ERROR;
    }
    for (const step of expr.steps) {
      // After a failure the later steps cannot be built, but a misspelt op among them is its own error.
      if (current.kind === 'error') this.checkCallee(step.callee, context);
      else current = this.step(step, current, context);
    }
    return current;
  }

  /** Reports a callee that names no op, block or function (used where the call itself cannot be made). */
  private checkCallee(callee: A.Identifier, context: CallContext): void {
    const name = callee.name;
    if (OPS.has(name) || context.env.lookupBlock(name) || context.env.broken.has(name) || context.env.lookup(name) !== undefined) return;
    if ((VALUE_FUNCTIONS as readonly string[]).includes(name) || (ANALYSIS_FUNCTIONS as readonly string[]).includes(name)) return;
    this.reportUnknownCallee(callee, context);
  }

  private reportUnknownCallee(callee: A.Identifier, context: CallContext): void {
    const candidates = [...OPS.keys(), ...context.env.allBlocks(), ...VALUE_FUNCTIONS];
    const hint = didYouMean(callee.name, candidates);
    // A block from a file whose import failed would be unknown too: say nothing unless it looks like a typo.
    if (context.env.importFailed && hint === undefined) return;
    this.bag.add('unknownCallee', callee.span, [callee.name], hint);
  }

  private sourceText(expr: A.Expr): string {
    const source = this.loader.sources.get(expr.span.file);
    return source ? source.text.slice(expr.span.start, expr.span.end) : 'x';
  }

  private step(step: A.ChainStep, input: Value, context: CallContext): Value {
    if (!step.repeat) return this.call(step.callee, step.args ?? [], input, context, step.span, step.alias);
    const count = this.evaluate(step.repeat.count, context);
    if (count.kind === 'error') return ERROR;
    if (count.kind !== 'number' || !count.integer || count.value < 0) {
      this.bag.add('wrongArgumentType', step.repeat.count.span, ['count', 'repeat', 'a non-negative int', describeValue(count)]);
      return ERROR;
    }
    if (count.value > LIMITS.repeat) {
      this.bag.add('repeatTooLarge', step.repeat.count.span, [String(count.value), LIMITS.repeat]);
      throw new LimitExceeded();
    }
    if (step.alias) this.bag.add('misplacedStatement', step.alias.span, ["'as'", 'on a repeated step (each repetition needs its own name)']);
    let current = input;
    for (let i = 0; i < count.value; i++) {
      let env = context.env;
      if (step.repeat.index) {
        env = new Env(context.env);
        env.values.set(step.repeat.index.name, num(i, true));
      }
      current = this.call(step.callee, step.args ?? [], current, { ...context, env }, step.span, undefined);
      if (current.kind === 'error') return ERROR;
    }
    return current;
  }

  /**
   * Calls an op, a block, or a value function. `chained` is the tensor flowing in from a chain (its first input).
   */
  private call(callee: A.Identifier, args: readonly A.Argument[], chained: Value | undefined, context: CallContext, span: Span, alias: A.Identifier | A.StringLit | undefined): Value {
    const name = callee.name;
    const block = context.env.lookupBlock(name);
    const op = OPS.get(name);
    if (!block && !op) {
      if ((VALUE_FUNCTIONS as readonly string[]).includes(name) || (ANALYSIS_FUNCTIONS as readonly string[]).includes(name)) {
        if (chained) {
          this.bag.add('notCallable', callee.span, [name, 'a function of values'], 'only ops and blocks can follow ->');
          return ERROR;
        }
        return this.valueFunction(callee, args, context, span);
      }
      if (context.env.broken.has(name)) return ERROR;
      const local = context.env.lookup(name);
      if (local) {
        this.bag.add('notCallable', callee.span, [name, describeValue(local)]);
        return ERROR;
      }
      this.reportUnknownCallee(callee, context);
      return ERROR;
    }

    // Split arguments: tensors are inputs; other positional values fill the signature in order.
    const inputs: Array<{ name: string; shape: Shape }> = [];
    if (chained) {
      if (chained.kind !== 'tensor') return ERROR;
      inputs.push(chained);
    }
    const positional: Array<{ value: Value; expr: A.Expr }> = [];
    const named = new Map<string, { value: Value; expr: A.Expr; span: Span }>();
    const enumParams = new Set<string>();
    const signature: readonly ArgSpec[] = op ? op.args : [];
    for (const spec of signature) if (spec.type.kind === 'enum' || spec.type.kind === 'padding') enumParams.add(spec.name);
    let failed = false;
    args.forEach((argument) => {
      const positionIndex = positional.length;
      const targetName = argument.name?.name ?? (op ? op.args[positionIndex]?.name : block?.decl.params[positionIndex]?.name.name);
      let value: Value;
      // Bare words such as `same` or `nearest` are strings where the signature expects a choice.
      // A bare word names a choice unless it is bound to a value the argument can take (`pad: p` with an int
      // parameter p, `mode: m` with a string parameter m); a tensor of the same name does not shadow the word.
      const bound = argument.value.$type === 'Identifier' ? context.env.lookup(argument.value.name) : undefined;
      if (argument.value.$type === 'Identifier' && targetName !== undefined && enumParams.has(targetName) && (bound === undefined || bound.kind === 'tensor')) {
        value = str(argument.value.name);
      } else {
        value = this.evaluate(argument.value, context);
      }
      if (value.kind === 'error') failed = true;
      if (value.kind === 'none') {
        this.bag.add('noneValue', argument.value.span, [value.name]);
        failed = true;
        return;
      }
      if (argument.name) {
        if (named.has(argument.name.name)) {
          this.bag.add('duplicateArgument', argument.name.span, [argument.name.name, name]);
          failed = true;
        }
        named.set(argument.name.name, { value, expr: argument.value, span: argument.span });
      } else if (value.kind === 'tensor') {
        inputs.push(value);
      } else {
        positional.push({ value, expr: argument.value });
      }
    });
    if (failed) return ERROR;
    if (block) return this.callBlock(block, callee, inputs, positional, named, context, span, alias);
    return this.callOp(op!, callee, inputs, positional, named, context, span, alias);
  }

  private callOp(
    op: OpSpec,
    callee: A.Identifier,
    inputs: Array<{ name: string; shape: Shape }>,
    positional: Array<{ value: Value; expr: A.Expr }>,
    named: Map<string, { value: Value; expr: A.Expr; span: Span }>,
    context: CallContext,
    span: Span,
    alias: A.Identifier | A.StringLit | undefined,
  ): Value {
    const name = callee.name;
    if (inputs.length < op.inputs.min || inputs.length > op.inputs.max) {
      const expected = op.inputs.max === Infinity ? `at least ${op.inputs.min}` : op.inputs.min === op.inputs.max ? String(op.inputs.min) : `${op.inputs.min} to ${op.inputs.max}`;
      this.bag.add('wrongTensorInputs', span, [name, expected, inputs.length], inputs.length === 0 ? `apply it in a chain: x -> ${name}(…)` : undefined);
      return ERROR;
    }
    if (positional.length > op.args.length) {
      this.bag.add('tooManyArguments', positional[op.args.length]!.expr.span, [name, op.args.length, positional.length]);
      return ERROR;
    }
    const values = new Map<string, Value>();
    const spans = new Map<string, Span>();
    positional.forEach((p, i) => {
      values.set(op.args[i]!.name, p.value);
      spans.set(op.args[i]!.name, p.expr.span);
    });
    for (const [argumentName, entry] of named) {
      if (!op.args.some((a) => a.name === argumentName)) {
        this.bag.add('unknownArgument', entry.span, [argumentName, name], didYouMean(argumentName, op.args.map((a) => a.name)));
        return ERROR;
      }
      if (values.has(argumentName)) {
        this.bag.add('duplicateArgument', entry.span, [argumentName, name]);
        return ERROR;
      }
      values.set(argumentName, entry.value);
      spans.set(argumentName, entry.expr.span);
    }
    for (const spec of op.args) {
      if (!values.has(spec.name)) {
        if (spec.default === undefined) {
          this.bag.add('missingArgument', span, [spec.name, name], `${name}(${op.args.map((a) => (a.default === undefined ? a.name : `${a.name}: …`)).join(', ')})`);
          return ERROR;
        }
        values.set(spec.name, typeof spec.default === 'function' ? spec.default(values) : spec.default);
        continue;
      }
      const checked = this.checkArgument(values.get(spec.name)!, spec.type, spec.name, name, spans.get(spec.name) ?? span);
      if (checked.kind === 'error') return ERROR;
      values.set(spec.name, checked);
    }
    const built = op.build(values, inputs);
    if (!built.ok) {
      if (built.argument) this.bag.add('invalidArgumentValue', spans.get(built.argument) ?? span, [built.argument, name, built.message]);
      else if (built.kind === 'rank') this.bag.add('rankMismatch', span, [name, built.message.replace(/^expects /, '').replace(/, found.*$/, ''), built.message.replace(/^.*found /, '')]);
      else this.bag.add('invalidArgumentValue', span, ['input', name, built.message]);
      return ERROR;
    }
    return this.emitNodes(name, built.nodes, context, span, alias);
  }

  /** Adds the nodes of one op call, inferring shapes; returns the last node's tensor. */
  private emitNodes(kind: string, requests: readonly NodeRequest[], context: CallContext, span: Span, alias: A.Identifier | A.StringLit | undefined): Value {
    let base: string;
    if (alias?.$type === 'StringLit') base = alias.value;
    else if (alias) base = context.scope.qualify(alias.name);
    else base = context.scope.next(kind);
    const made: Array<{ name: string; shape: Shape }> = [];
    for (const request of requests) {
      const name = request.suffix ? `${base}.${request.suffix}` : base;
      if (this.tensorShapes.has(name)) {
        this.bag.add('duplicateName', alias?.span ?? span, [name]);
        return ERROR;
      }
      const inputs = request.inputs.map((i) => (typeof i === 'string' ? i : made[i.request]!.name));
      const inputShapes = inputs.map((i) => this.shapeOf(i)!);
      const result = inferShape(request.attributes, inputShapes);
      if (!result.ok) {
        this.reportShapeProblem(result.problem, kind, context.instance ?? context.scope.prefix ?? name, span, inputShapes, request.attributes);
        return ERROR;
      }
      if (!this.checkSize(name, result.shape, span)) return ERROR;
      this.pushNode({ ...request.attributes, name, inputs, shape: result.shape, span, frozen: false, regularizers: [] } as Node);
      made.push({ name, shape: result.shape });
    }
    const last = made[made.length - 1]!;
    return { kind: 'tensor', name: last.name, shape: last.shape };
  }

  private checkSize(name: string, shape: Shape, span: Span): boolean {
    // Symbolic sizes are at least 1, so the product of the known sizes is a lower bound of the element count.
    const count = shape.reduce<number>((product, d) => (typeof d === 'number' ? product * d : product), 1);
    if (count > 2 ** 53) {
      this.bag.add('tensorTooLarge', span, [name, shapeToString(shape)]);
      return false;
    }
    return true;
  }

  private reportShapeProblem(problem: ShapeProblem, op: string, where: string, span: Span, inputShapes: readonly Shape[] = [], attributes?: OpAttributes): void {
    const location = where === '' ? 'model level' : where;
    switch (problem.kind) {
      case 'channels':
        this.bag.add('channelMismatch', span, [problem.left, problem.right, op === 'add' ? 'residual add' : op, location], inputShapes.length > 1 ? `input shapes: ${inputShapes.map(shapeToString).join(' and ')}` : undefined);
        break;
      case 'mismatch':
        this.bag.add('shapeMismatch', span, [problem.left, problem.right, op, location], describeMismatch(inputShapes, attributes));
        break;
      case 'rank':
        this.bag.add('rankMismatch', span, [op, problem.expected, problem.found]);
        break;
      case 'empty':
        this.bag.add('emptyOutput', span, [op, describeEmptyOutput(problem.axis, problem.size, inputShapes[0], attributes)], 'pad the input, or use a smaller kernel or dilation');
        break;
      case 'groups':
        this.bag.add('groupsDoNotDivide', span, [problem.what, problem.count, problem.groups]);
        break;
      case 'reshape':
        this.bag.add('reshapeMismatch', span, [problem.from, problem.to]);
        break;
      case 'invalid':
        this.bag.add('invalidPadding', span, [problem.message]);
        break;
    }
  }

  private checkArgument(value: Value, type: ArgType, argument: string, callee: string, span: Span): Value {
    const fail = (expected: string): Value => {
      this.bag.add('wrongArgumentType', span, [argument, callee, expected, describeValue(value)]);
      return ERROR;
    };
    const isInt = (v: Value): v is Value & { kind: 'number' } => v.kind === 'number' && Number.isInteger(v.value);
    switch (type.kind) {
      case 'int':
        if (!isInt(value)) return fail('an int');
        if (type.min !== undefined && value.value < type.min) return this.invalid(argument, callee, span, `must be at least ${type.min}, found ${value.value}`);
        return value;
      case 'float':
        if (value.kind !== 'number') return fail('a number');
        if (type.min !== undefined && value.value < type.min) return this.invalid(argument, callee, span, `must be at least ${type.min}, found ${value.value}`);
        if (type.max !== undefined && (type.maxExclusive ? value.value >= type.max : value.value > type.max))
          return this.invalid(argument, callee, span, `must be ${type.maxExclusive ? 'below' : 'at most'} ${type.max}, found ${value.value}`);
        return value;
      case 'bool':
        return value.kind === 'bool' ? value : fail('a bool');
      case 'string':
        return value.kind === 'string' ? value : fail('a string');
      case 'enum':
        if (value.kind !== 'string') return fail(`one of ${type.values.join(', ')}`);
        if (!type.values.includes(value.value)) {
          this.bag.add('invalidArgumentValue', span, [argument, callee, `must be one of ${type.values.join(', ')}, found '${value.value}'`], didYouMean(value.value, type.values));
          return ERROR;
        }
        return value;
      case 'perAxis': {
        const items = value.kind === 'list' ? value.items : [value];
        if (value.kind === 'list' && (value.items.length < 1 || value.items.length > 3)) return fail('an int or a list of 1 to 3 ints');
        for (const item of items) {
          if (!isInt(item)) return fail('an int or a list of ints');
          if (item.value < type.min) return this.invalid(argument, callee, span, `must be at least ${type.min}, found ${item.value}`);
          if (item.value > 1_000_000) return this.invalid(argument, callee, span, `must be at most 1000000, found ${item.value}`);
        }
        return value;
      }
      case 'padding': {
        if (value.kind === 'string') {
          if (!['same', 'valid', 'causal'].includes(value.value)) {
            this.bag.add('invalidArgumentValue', span, [argument, callee, `must be same, valid, causal or explicit amounts, found '${value.value}'`], didYouMean(value.value, ['same', 'valid', 'causal']));
            return ERROR;
          }
          return value;
        }
        const check = (v: Value): boolean => isInt(v) && v.value >= 0 && v.value <= 1_000_000;
        if (check(value)) return value;
        if (value.kind === 'list' && value.items.length >= 1 && value.items.length <= 3) {
          if (value.items.every((item) => check(item) || (item.kind === 'list' && item.items.length === 2 && item.items.every(check)))) return value;
        }
        return fail('same, valid, causal, a non-negative int, a list of ints or a list of [begin, end] pairs');
      }
      case 'dims': {
        if (value.kind !== 'list') return fail('a list of sizes');
        for (const item of value.items) {
          if (!(item.kind === 'dim' || (isInt(item) && (item.value >= 1 || item.value === -1)))) return fail('a list of positive ints, symbols or -1');
        }
        if (value.items.filter((i) => i.kind === 'number' && i.value === -1).length > 1) return this.invalid(argument, callee, span, 'may contain -1 only once');
        return value;
      }
    }
  }

  private invalid(argument: string, callee: string, span: Span, reason: string): Value {
    this.bag.add('invalidArgumentValue', span, [argument, callee, reason]);
    return ERROR;
  }

  private callBlock(
    block: BlockBinding,
    callee: A.Identifier,
    inputs: Array<{ name: string; shape: Shape }>,
    positional: Array<{ value: Value; expr: A.Expr }>,
    named: Map<string, { value: Value; expr: A.Expr; span: Span }>,
    context: CallContext,
    span: Span,
    alias: A.Identifier | A.StringLit | undefined,
  ): Value {
    const decl = block.decl;
    const name = decl.name.name;
    if (context.stack.length >= LIMITS.blockDepth) {
      const calls = [...context.stack, name];
      const chain = calls.every((c) => c === name) ? `'${name}' calls itself each time` : [...calls.slice(0, 3), '…', ...calls.slice(-3)].join(' → ');
      this.bag.add('nestingLimit', span, [LIMITS.blockDepth, chain]);
      throw new LimitExceeded();
    }
    if (inputs.length !== decl.inputs.length) {
      const hint =
        inputs.length < decl.inputs.length && decl.inputs.length > 1
          ? `the chained tensor is the first input; pass the others as arguments: x -> ${name}(…, ${decl.inputs.slice(1).map((i) => i.name).join(', ')})`
          : undefined;
      this.bag.add('wrongTensorInputs', span, [name, String(decl.inputs.length), inputs.length], hint);
      return ERROR;
    }
    if (positional.length > decl.params.length) {
      this.bag.add('tooManyArguments', positional[decl.params.length]!.expr.span, [name, decl.params.length, positional.length]);
      return ERROR;
    }
    const env = new Env(block.env);
    env.blockScope = true;
    const instance = alias?.$type === 'StringLit' ? alias.value : alias ? context.scope.qualify(alias.name) : context.scope.next(name);
    const innerContext: CallContext = { env, scope: new NameScope(instance), stack: [...context.stack, name], analyses: context.analyses, instance };
    for (const [argumentName, entry] of named) {
      if (!decl.params.some((p) => p.name.name === argumentName)) {
        this.bag.add('unknownArgument', entry.span, [argumentName, name], didYouMean(argumentName, decl.params.map((p) => p.name.name)));
        return ERROR;
      }
    }
    let failed = false;
    decl.params.forEach((param, index) => {
      const given = positional[index] ?? named.get(param.name.name);
      if (positional[index] && named.has(param.name.name)) {
        this.bag.add('duplicateArgument', named.get(param.name.name)!.span, [param.name.name, name]);
        failed = true;
        return;
      }
      let value: Value;
      if (given) value = given.value;
      else if (param.defaultValue) value = this.evaluate(param.defaultValue, { ...innerContext, scope: new NameScope(instance) });
      else {
        this.bag.add('missingArgument', span, [param.name.name, name], `${name}(${decl.params.map((p) => p.name.name).join(', ')})`);
        failed = true;
        return;
      }
      const checked = this.checkType(value, param.type, param.name.name, name, given ? ('expr' in given ? given.expr.span : span) : param.span);
      if (checked.kind === 'error') failed = true;
      env.values.set(param.name.name, checked);
    });
    if (failed) return ERROR;
    decl.inputs.forEach((input, index) => env.values.set(input.name, { kind: 'tensor', ...inputs[index]! }));
    for (const statement of decl.body) {
      if (statement.$type === 'AssignStmt' || statement.$type === 'LetDecl') env.pending.add(statement.name.name);
    }

    let result: Value | undefined;
    for (const statement of decl.body) {
      this.tick(statement.span);
      switch (statement.$type) {
        case 'AssignStmt':
          if (!this.alreadyDefined(env, statement.name)) this.assign(statement, innerContext);
          break;
        case 'LetDecl':
          if (!this.alreadyDefined(env, statement.name)) this.define(env, statement.name, this.evaluate(statement.value, innerContext));
          break;
        case 'ReturnStmt':
          if (result !== undefined) {
            this.bag.add('misplacedStatement', statement.span, ["a second 'return'", `in block '${name}'`]);
            break;
          }
          result = this.evaluate(statement.value, innerContext);
          break;
        case 'AssertStmt':
          this.asserts.push({ statement, env, instance });
          break;
        default:
          this.bag.add('misplacedStatement', statement.span, [describeStatement(statement), 'inside a block']);
      }
    }
    if (result === undefined) {
      this.bag.add('blockWithoutReturn', decl.name.span, [name], "end the block with 'return <tensor>'");
      return ERROR;
    }
    if (result.kind === 'none') {
      this.bag.add('noneValue', decl.name.span, [result.name]);
      return ERROR;
    }
    if (result.kind !== 'tensor' && result.kind !== 'error') {
      this.bag.add('notATensor', decl.name.span, [`the result of block '${name}'`, describeValue(result)]);
      return ERROR;
    }
    return result;
  }

  private expectTensor(value: Value, what: string, span: Span): { name: string; shape: Shape } | undefined {
    if (value.kind === 'tensor') return value;
    if (value.kind === 'error') return undefined;
    if (value.kind === 'none') this.bag.add('noneValue', span, [value.name]);
    else this.bag.add('notATensor', span, [what, describeValue(value)]);
    return undefined;
  }

  // ------------------------------------------------------------------------------------------------------------
  // Functions of values

  private valueFunction(callee: A.Identifier, args: readonly A.Argument[], context: CallContext, span: Span): Value {
    const name = callee.name;
    if ((ANALYSIS_FUNCTIONS as readonly string[]).includes(name) && !context.analyses) {
      this.bag.add('misplacedStatement', callee.span, [`${name}()`, 'outside an assert (it needs the whole model)']);
      return ERROR;
    }
    // Analysis functions take a layer name as their argument, not the tensor value.
    if (name === 'params' || name === 'trainable_params' || name === 'macs' || name === 'flops') {
      if (args.length > 1) {
        this.bag.add('tooManyArguments', args[1]!.span, [name, 1, args.length]);
        return ERROR;
      }
      const target = args[0] ? this.targetName(args[0].value, context) : undefined;
      if (target === null) return ERROR;
      const analyses = context.analyses!;
      const result =
        name === 'params' ? analyses.params(target, false) : name === 'trainable_params' ? analyses.params(target, true) : name === 'macs' ? analyses.macs(target) : analyses.flops(target);
      if (result === undefined) {
        this.bag.add('nothingMatched', args[0]?.span ?? span, [`${name}()`, target ?? '']);
        return ERROR;
      }
      return num(result, true);
    }
    const values = args.map((a) => this.evaluate(a.value, context));
    if (values.some((v) => v.kind === 'error')) return ERROR;
    const noneIndex = values.findIndex((v) => v.kind === 'none');
    if (noneIndex >= 0) {
      this.bag.add('noneValue', args[noneIndex]!.span, [(values[noneIndex] as { name: string }).name]);
      return ERROR;
    }
    const arity = (min: number, max = min): boolean => {
      if (values.length < min) {
        this.bag.add('missingArgument', span, [`#${values.length + 1}`, name]);
        return false;
      }
      if (values.length > max) {
        this.bag.add('tooManyArguments', args[max]!.span, [name, max, values.length]);
        return false;
      }
      return true;
    };
    const numberAt = (i: number): number | undefined => {
      const v = values[i]!;
      if (v.kind === 'number') return v.value;
      this.bag.add('wrongArgumentType', args[i]!.span, [`#${i + 1}`, name, 'a number', describeValue(v)]);
      return undefined;
    };
    const tensorAt = (i: number): { name: string; shape: Shape } | undefined => this.expectTensor(values[i]!, `argument of ${name}()`, args[i]!.span);

    switch (name) {
      case 'int':
      case 'round':
      case 'floor':
      case 'ceil': {
        if (!arity(1)) return ERROR;
        if (values[0]!.kind === 'dim') return values[0]!;
        const x = numberAt(0);
        if (x === undefined) return ERROR;
        const f = name === 'int' ? Math.trunc : name === 'round' ? Math.round : name === 'floor' ? Math.floor : Math.ceil;
        return num(f(x), true);
      }
      case 'float': {
        if (!arity(1)) return ERROR;
        const x = numberAt(0);
        return x === undefined ? ERROR : num(x, false);
      }
      case 'abs': {
        if (!arity(1)) return ERROR;
        const v = values[0]!;
        if (v.kind !== 'number') return numberAt(0) === undefined ? ERROR : ERROR;
        return num(Math.abs(v.value), v.integer);
      }
      case 'min':
      case 'max': {
        const items = values.length === 1 && values[0]!.kind === 'list' ? values[0]!.items : values;
        if (items.length === 0) return arity(1) ? ERROR : ERROR;
        if (!items.every((v) => v.kind === 'number')) {
          this.bag.add('wrongArgumentType', span, ['arguments', name, 'numbers', items.map(describeValue).join(', ')]);
          return ERROR;
        }
        const numbers = items as unknown as Array<{ value: number; integer: boolean }>;
        const pick = name === 'min' ? Math.min(...numbers.map((n) => n.value)) : Math.max(...numbers.map((n) => n.value));
        return num(pick, numbers.every((n) => n.integer));
      }
      case 'sum': {
        if (!arity(1)) return ERROR;
        const v = values[0]!;
        if (v.kind !== 'list' || !v.items.every((i) => i.kind === 'number')) {
          this.bag.add('wrongArgumentType', args[0]!.span, ['#1', name, 'a list of numbers', describeValue(v)]);
          return ERROR;
        }
        const items = v.items as unknown as Array<{ value: number; integer: boolean }>;
        return num(items.reduce((a, b) => a + b.value, 0), items.every((i) => i.integer));
      }
      case 'floordiv':
      case 'ceildiv': {
        // Integer division that also works on symbolic sizes: floordiv(H - 1, 2) + 1.
        if (!arity(2)) return ERROR;
        const numerator = values[0]!;
        const divisor = values[1]!;
        if (divisor.kind !== 'number' || !divisor.integer || divisor.value <= 0) {
          this.bag.add('wrongArgumentType', args[1]!.span, ['divisor', name, 'a positive int', describeValue(divisor)]);
          return ERROR;
        }
        if (numerator.kind === 'dim') return dimValue(name === 'floordiv' ? floorDiv(numerator.dim, divisor.value) : ceilDiv(numerator.dim, divisor.value));
        if (numerator.kind === 'number' && numerator.integer) return num(name === 'floordiv' ? Math.floor(numerator.value / divisor.value) : Math.ceil(numerator.value / divisor.value), true);
        this.bag.add('wrongArgumentType', args[0]!.span, ['numerator', name, 'an int or a symbolic size', describeValue(numerator)]);
        return ERROR;
      }
      case 'make_divisible': {
        // MobileNet's rounding: the nearest multiple of `divisor`, at least `minimum`, never more than 10% below v.
        if (!arity(1, 3)) return ERROR;
        const v = numberAt(0);
        const divisor = values.length > 1 ? numberAt(1) : 8;
        const minimum = values.length > 2 ? numberAt(2) : divisor;
        if (v === undefined || divisor === undefined || minimum === undefined) return ERROR;
        if (divisor <= 0 || !Number.isInteger(divisor)) {
          this.bag.add('invalidArgumentValue', args[1]!.span, ['divisor', name, 'must be a positive int']);
          return ERROR;
        }
        let rounded = Math.max(minimum, Math.floor((v + divisor / 2) / divisor) * divisor);
        if (rounded < 0.9 * v) rounded += divisor;
        return num(rounded, true);
      }
      case 'len': {
        if (!arity(1)) return ERROR;
        const v = values[0]!;
        if (v.kind === 'list') return num(v.items.length, true);
        if (v.kind === 'string') return num(v.value.length, true);
        this.bag.add('wrongArgumentType', args[0]!.span, ['#1', name, 'a list or string', describeValue(v)]);
        return ERROR;
      }
      case 'channels': {
        if (!arity(1)) return ERROR;
        const t = tensorAt(0);
        if (!t) return ERROR;
        const c = t.shape[1]!;
        return typeof c === 'number' ? num(c, true) : dimValue(c);
      }
      case 'shape': {
        if (!arity(1)) return ERROR;
        const t = tensorAt(0);
        if (!t) return ERROR;
        return list(t.shape.map((d) => (typeof d === 'number' ? num(d, true) : dimValue(d))));
      }
      case 'rank': {
        if (!arity(1)) return ERROR;
        const t = tensorAt(0);
        return t ? num(t.shape.length, true) : ERROR;
      }
      case 'dim': {
        if (!arity(2)) return ERROR;
        const t = tensorAt(0);
        const i = numberAt(1);
        if (!t || i === undefined) return ERROR;
        const d = t.shape[i < 0 ? t.shape.length + i : i];
        if (d === undefined) {
          this.bag.add('arithmetic', args[1]!.span, [`axis ${i} is outside ${shapeToString(t.shape)}`]);
          return ERROR;
        }
        return typeof d === 'number' ? num(d, true) : dimValue(d);
      }
      case 'rf':
      case 'rf_stride':
      case 'rf_padding':
      case 'covers': {
        if (!arity(1)) return ERROR;
        const t = tensorAt(0);
        if (!t) return ERROR;
        const rf = context.analyses!.receptiveField(t.name);
        if (!rf) {
          this.bag.add('nothingMatched', args[0]!.span, [`${name}()`, t.name]);
          return ERROR;
        }
        if (name === 'covers') return bool(rf.covers);
        const axes = name === 'rf' ? rf.size : name === 'rf_stride' ? rf.stride : rf.padding;
        return list(axes.map((a) => num(a, Number.isInteger(a))));
      }
      default:
        this.bag.add('unknownCallee', callee.span, [name]);
        return ERROR;
    }
  }

  /** A layer selector written as a name (`params(stem)`) or a string: its text, null when reported as wrong. */
  private targetName(expr: A.Expr, context: CallContext): string | null {
    if (expr.$type === 'Identifier') {
      const value = context.env.lookup(expr.name);
      if (value?.kind === 'tensor') {
        // A top-level name selects its whole scope; a tensor inside a block selects its producing layer.
        return this.topLevel.includes(expr.name) ? expr.name : value.name;
      }
      return expr.name;
    }
    if (expr.$type === 'StringLit') return expr.value;
    this.bag.add('wrongArgumentType', expr.span, ['target', 'params()', 'a layer name', expr.$type]);
    return null;
  }

  // ------------------------------------------------------------------------------------------------------------
  // Assertions

  evaluateAssert(pending: PendingAssert, analyses: AssertAnalyses): void {
    const context: CallContext = { env: pending.env, scope: new NameScope('assert'), stack: [], analyses, instance: pending.instance };
    const before = this.nodes.length;
    const condition = pending.statement.condition;
    const value = this.evaluate(condition, context);
    if (this.nodes.length !== before) {
      this.nodes.length = before;
      this.bag.add('misplacedStatement', condition.span, ['building layers', 'inside an assert']);
      return;
    }
    if (value.kind === 'error') return;
    if (value.kind !== 'bool') {
      this.bag.add('assertionNotBoolean', condition.span, [describeValue(value)]);
      return;
    }
    if (value.value) return;
    const detail = this.explainFailure(condition, context);
    const where = pending.instance ? ` (in ${pending.instance})` : '';
    const message = pending.statement.message ? `${pending.statement.message.value}: ${detail}` : detail;
    this.bag.add('assertionFailed', condition.span, [`${message}${where}`]);
  }

  /** Names the actual values of a failed comparison: `rf(stage4) = [195, 195], not >= 224`. */
  private explainFailure(condition: A.Expr, context: CallContext): string {
    const source = this.loader.sources.get(condition.span.file);
    const text = (e: A.Expr) => source?.text.slice(e.span.start, e.span.end) ?? '';
    if (condition.$type === 'BinaryExpr') {
      if (condition.operators.every((o) => o === 'and')) {
        for (const operand of condition.operands) {
          const value = this.evaluate(operand, context);
          if (value.kind === 'bool' && !value.value) return this.explainFailure(operand, context);
        }
      }
      if (condition.operands.length === 2 && !['and', 'or', '??'].includes(condition.operators[0]!)) {
        const [left, right] = condition.operands as [A.Expr, A.Expr];
        const leftValue = renderValue(this.evaluate(left, context));
        const rightValue = renderValue(this.evaluate(right, context));
        const leftText = text(left);
        const rightText = text(right);
        const shownLeft = leftText === leftValue ? leftValue : `${leftText} = ${leftValue}`;
        const shownRight = rightText === rightValue ? rightValue : `${rightText} = ${rightValue}`;
        return `${shownLeft}, not ${condition.operators[0]} ${shownRight}`;
      }
    }
    return `${text(condition)} is false`;
  }
}

/** The first axis on which the inputs of an element-wise op or a concat disagree. */
function describeMismatch(inputShapes: readonly Shape[], attributes: OpAttributes | undefined): string | undefined {
  const joined = attributes?.op === 'concat' ? (attributes.axis + (inputShapes[0]?.length ?? 0)) % Math.max(1, inputShapes[0]?.length ?? 1) : undefined;
  for (let i = 1; i < inputShapes.length; i++) {
    const [a, b] = [inputShapes[0]!, inputShapes[i]!];
    if (a.length !== b.length) return `ranks differ: ${a.length} and ${b.length}`;
    for (let axis = 0; axis < a.length; axis++) {
      if (axis === joined) continue;
      const [x, y] = [dimToString(a[axis]!), dimToString(b[axis]!)];
      if (x !== y) return `axis ${axis} differs (${x} ≠ ${y})${joined !== undefined ? `; concat joins along axis ${joined} and needs every other axis equal` : ''}`;
    }
  }
  return undefined;
}

/** Why a window op has no output on an axis: its (dilated) window is larger than the padded input. */
function describeEmptyOutput(axis: number, size: string, input: Shape | undefined, attributes: OpAttributes | undefined): string {
  const extent = input?.[2 + axis];
  if (input && typeof extent === 'number' && attributes && (attributes.op === 'conv' || attributes.op === 'maxpool' || attributes.op === 'avgpool')) {
    const dilation = attributes.op === 'conv' ? attributes.dilation[axis]! : 1;
    const window = effectiveKernel(attributes.kernel[axis]!, dilation);
    const pads = attributes.padding === 'same-dynamic' ? 0 : attributes.padding.begin[axis]! + attributes.padding.end[axis]!;
    const windowText = dilation > 1 ? `its window ${window} (kernel ${attributes.kernel[axis]} dilated by ${dilation})` : `its window ${window}`;
    const inputText = pads > 0 ? `the padded input ${extent + pads} (${extent} + ${pads} padding)` : `the input ${extent}`;
    return `${windowText} is larger than ${inputText} on axis ${2 + axis} of ${shapeToString(input)}`;
  }
  return `the output size on axis ${2 + axis} would be ${size}`;
}

/** Training settings with a numeric meaning: what they must be, or undefined when `value` is fine. */
function checkSetting(key: string, value: SettingValue): string | undefined {
  const positiveInt = ['epochs', 'batch'];
  if (positiveInt.includes(key) && !(typeof value === 'number' && Number.isInteger(value) && value >= 1)) return 'a positive int';
  // classes: the class indices to train on (`[0, 1, 2, 3, 4]`, relabelled 0…k−1 when the data is loaded), or a count
  const classIndex = (v: SettingValue) => typeof v === 'number' && Number.isInteger(v) && v >= 0;
  if (key === 'classes' && !(Array.isArray(value) ? value.length > 0 && value.every(classIndex) && new Set(value).size === value.length : classIndex(value) && (value as number) >= 1))
    return 'a list of distinct class indices (e.g. [0, 1, 2, 3, 4]) or a positive int';
  if (key === 'seed' && !(typeof value === 'number' && Number.isInteger(value) && value >= 0)) return 'a non-negative int';
  if ((key === 'lr' || key === 'label_smoothing' || key === 'validation') && typeof value === 'number' && !(value >= 0 && (key === 'lr' ? value > 0 : value < 1)))
    return key === 'lr' ? 'a positive number or a schedule' : 'a number in [0, 1)';
  return undefined;
}

function describeSetting(value: SettingValue): string {
  if (typeof value === 'number') return Number.isInteger(value) ? `int ${value}` : `float ${value}`;
  if (typeof value === 'string') return `string ${JSON.stringify(value)}`;
  if (typeof value === 'boolean') return `bool ${value}`;
  if (Array.isArray(value)) return 'a list';
  return `a call of '${(value as { call: string }).call}'`;
}

function describeStatement(statement: A.Statement): string {
  const words: Record<A.Statement['$type'], string> = {
    InputDecl: "'input'",
    ParamDecl: "'param'",
    LetDecl: "'let'",
    BlockDecl: 'a block declaration',
    AssignStmt: 'an assignment',
    OutputStmt: "'output'",
    RegularizeStmt: "'regularize'",
    FreezeStmt: "'freeze'",
    AssertStmt: "'assert'",
    TrainStmt: "'train'",
    ReturnStmt: "'return'",
    TakeStmt: "'from … take'",
  };
  return words[statement.$type];
}

function dimValue(d: Dim): Value {
  return typeof d === 'number' ? num(d, true) : { kind: 'dim', dim: d };
}

function parseOverride(text: string): Value {
  if (text === 'true' || text === 'false') return bool(text === 'true');
  const number = Number(text);
  if (text.trim() !== '' && Number.isFinite(number)) return num(number, /^-?\d+$/.test(text.trim()));
  return str(text);
}

function valuesEqual(a: Value, b: Value): boolean | undefined {
  if ((a.kind === 'number' || a.kind === 'dim') && (b.kind === 'number' || b.kind === 'dim')) {
    if (a.kind === 'number' && b.kind === 'number') return a.value === b.value;
    if (a.kind === 'dim' && b.kind === 'dim') return a.dim.key === b.dim.key;
    return false;
  }
  if (a.kind === 'list' && b.kind === 'list') {
    if (a.items.length !== b.items.length) return false;
    for (let i = 0; i < a.items.length; i++) {
      const equal = valuesEqual(a.items[i]!, b.items[i]!);
      if (equal !== true) return equal;
    }
    return true;
  }
  if (a.kind === 'list' && b.kind === 'number') return a.items.every((item) => valuesEqual(item, b) === true);
  if (a.kind === 'bool' && b.kind === 'bool') return a.value === b.value;
  if (a.kind === 'string' && b.kind === 'string') return a.value === b.value;
  return undefined;
}

/** Numbers compare as usual; a list compared with a number holds when every element does (rf per axis). */
function compareValues(operator: '<' | '<=' | '>' | '>=', a: Value, b: Value): boolean | undefined {
  const test = (x: number, y: number) => (operator === '<' ? x < y : operator === '<=' ? x <= y : operator === '>' ? x > y : x >= y);
  if (a.kind === 'number' && b.kind === 'number') return test(a.value, b.value);
  if (a.kind === 'list' && b.kind === 'number') {
    if (!a.items.every((i) => i.kind === 'number')) return undefined;
    return a.items.every((i) => test((i as { value: number }).value, b.value));
  }
  if (a.kind === 'number' && b.kind === 'list') {
    if (!b.items.every((i) => i.kind === 'number')) return undefined;
    return b.items.every((i) => test(a.value, (i as { value: number }).value));
  }
  if (a.kind === 'list' && b.kind === 'list' && a.items.length === b.items.length) {
    const results = a.items.map((item, i) => compareValues(operator, item, b.items[i]!));
    if (results.some((r) => r === undefined)) return undefined;
    return results.every(Boolean);
  }
  return undefined;
}

function toSetting(value: Value): SettingValue | undefined {
  switch (value.kind) {
    case 'number':
    case 'bool':
    case 'string':
      return value.value;
    case 'list': {
      const items = value.items.map(toSetting);
      return items.every((i) => i !== undefined) ? (items as SettingValue[]) : undefined;
    }
    case 'dim':
      return dimToString(value.dim);
    default:
      return undefined;
  }
}

/** A node name and every scope above it: `a.b.c` → `a`, `a.b`, `a.b.c`. */
function prefixes(name: string): string[] {
  const parts = name.split('.');
  return parts.map((_, i) => parts.slice(0, i + 1).join('.'));
}

/** Glob to regex: `*` any run of characters, `?` one character; matched against whole names. */
export function globToRegex(pattern: string): RegExp {
  const escaped = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${escaped}$`);
}

// ---------------------------------------------------------------------------------------------------------------

/** Parses and elaborates the spec at `file` (or `options.text`), returning the graph and all diagnostics. */
export function elaborate(file: string, options: ElaborateOptions = {}): ElaborateResult {
  const loader = new SpecLoader(file, options);
  const loaded = options.text !== undefined ? loader.loadText(file, options.text) : loader.loadFile(file);
  const empty = (extra: Diagnostic[] = []): ElaborateResult => ({ graph: undefined, diagnostics: loader.allDiagnostics(extra), sources: loader.sources, asserts: [], topLevel: [], evaluator: undefined });
  if (!loaded) return empty();
  const program = loaded.parsed.program;
  const model = program.models[0];
  if (!model) {
    // A file of blocks only is a library: it has nothing to elaborate until a model imports it.
    if (program.blocks.length > 0) return { ...empty(), library: true };
    if (loaded.parsed.diagnostics.length === 0) return empty([{ code: 'CNN2004', severity: 'error', message: 'the file declares no model', span: program.span }]);
    return empty();
  }
  const extra: Diagnostic[] = [];
  for (const second of program.models.slice(1)) {
    extra.push({ code: 'CNN2005', severity: 'error', message: `a file declares one model; '${second.name.name}' is a second`, span: second.name.span });
  }
  const evaluator = new Evaluator(loader);
  let graph: Graph | undefined;
  try {
    graph = evaluator.elaborateModel(loaded, model, options);
  } catch (error) {
    if (error instanceof LimitExceeded) graph = undefined;
    else if (error instanceof RangeError) {
      evaluator.bag.add('nestingLimit', model.span, [LIMITS.blockDepth, 'the evaluation stack overflowed']);
      graph = undefined;
    } else throw error;
  }
  // One error per line: a line with a syntax error was read by recovery, so what elaboration says about it is
  // most likely a consequence.
  const syntaxLines = new Set(loader.diagnostics.items.filter((d) => d.severity === 'error' && d.span).map((d) => `${d.span!.file}:${d.span!.line}`));
  const semantic = evaluator.bag.items.filter((d) => !d.span || !syntaxLines.has(`${d.span.file}:${d.span.line}`));
  return {
    graph,
    diagnostics: [...loader.diagnostics.items, ...extra, ...semantic],
    sources: loader.sources,
    asserts: evaluator.asserts,
    topLevel: evaluator.topLevel,
    evaluator,
  };
}

export { closestName, isSymbolic, ceilDiv };

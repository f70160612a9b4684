/**
 * The diagnostic catalogue: every message convspec can report, defined once, each with a stable code.
 *
 * Codes are grouped by stage: CNN1xxx files and lexing, CNN2xxx syntax, CNN3xxx names and elaboration,
 * CNN4xxx shapes and receptive fields, CNN5xxx assertions, CNN6xxx limits, CNN7xxx passes and export,
 * CNN8xxx weights, data and runtime. A code never changes meaning once published: scripts match on it.
 *
 * Stages collect diagnostics in a `DiagnosticBag` and keep going; they throw only for bugs.
 */
import type { Span } from './source.js';
import { SourceFile } from './source.js';

export type Severity = 'error' | 'warning' | 'note';

export interface Diagnostic {
  readonly code: string;
  readonly severity: Severity;
  readonly message: string;
  readonly span?: Span;
  readonly hint?: string;
}

type Entry = { readonly code: string; readonly severity: Severity; readonly text: (...args: never[]) => string };

function entry<A extends unknown[]>(code: string, severity: Severity, text: (...args: A) => string) {
  return { code, severity, text };
}

export const catalogue = {
  // files and lexing
  unexpectedCharacter: entry('CNN1001', 'error', (ch: string) => `unexpected character ${JSON.stringify(ch)}`),
  unterminatedString: entry('CNN1002', 'error', () => 'unterminated string literal'),
  unterminatedComment: entry('CNN1003', 'error', () => 'unterminated block comment'),
  invalidNumber: entry('CNN1004', 'error', (text: string) => `invalid number '${text}'`),
  fileTooLarge: entry(
    'CNN1005',
    'error',
    (bytes: number, limit: number) => `file is ${bytes} bytes; specs are limited to ${limit} bytes`,
  ),
  cannotReadFile: entry('CNN1006', 'error', (path: string, reason: string) => `cannot read '${path}': ${reason}`),
  invalidJson: entry('CNN1007', 'error', (reason: string) => `invalid JSON: ${reason}`),
  jsonSchema: entry('CNN1008', 'error', (where: string, reason: string) => `JSON spec ${where}: ${reason}`),
  tooManyTokens: entry('CNN1009', 'error', (limit: number) => `the file has more than ${limit} tokens; specs are limited to ${limit}`),

  // syntax
  unexpectedToken: entry(
    'CNN2001',
    'error',
    (found: string, expected: string) => `expected ${expected} but found ${found}`,
  ),
  noModel: entry('CNN2004', 'error', () => 'the file declares no model'),
  manyModels: entry('CNN2005', 'error', (name: string) => `a file declares one model; '${name}' is a second`),
  misplacedStatement: entry('CNN2006', 'error', (what: string, where: string) => `${what} is not allowed ${where}`),
  nestingTooDeep: entry('CNN2007', 'error', (limit: number) => `nesting deeper than ${limit} levels`),

  // names and elaboration
  unknownName: entry('CNN3001', 'error', (name: string) => `unknown name '${name}'`),
  unknownCallee: entry('CNN3002', 'error', (name: string) => `unknown op or block '${name}'`),
  duplicateName: entry('CNN3003', 'error', (name: string) => `'${name}' is already defined`),
  wrongArgumentType: entry(
    'CNN3004',
    'error',
    (argument: string, callee: string, expected: string, found: string) =>
      `argument '${argument}' of '${callee}' must be ${expected}, found ${found}`,
  ),
  missingArgument: entry(
    'CNN3005',
    'error',
    (argument: string, callee: string) => `missing argument '${argument}' of '${callee}'`,
  ),
  tooManyArguments: entry(
    'CNN3006',
    'error',
    (callee: string, max: number, found: number) => `'${callee}' takes ${max} positional arguments, found ${found}`,
  ),
  unknownArgument: entry(
    'CNN3007',
    'error',
    (argument: string, callee: string) => `'${callee}' has no argument '${argument}'`,
  ),
  duplicateArgument: entry(
    'CNN3008',
    'error',
    (argument: string, callee: string) => `argument '${argument}' of '${callee}' is given twice`,
  ),
  cyclicReference: entry(
    'CNN3009',
    'error',
    (name: string) => `'${name}' is used before it is defined (a cycle or forward reference)`,
  ),
  importNotFound: entry('CNN3010', 'error', (path: string) => `cannot find imported file '${path}'`),
  importEscapesRoot: entry(
    'CNN3011',
    'error',
    (path: string, root: string) => `import '${path}' is outside the project root '${root}'`,
  ),
  importCycle: entry('CNN3012', 'error', (path: string, cycle: string) => `import cycle through '${path}': ${cycle}`),
  wrongTensorInputs: entry(
    'CNN3013',
    'error',
    (callee: string, expected: string, found: number) =>
      `'${callee}' takes ${expected} tensor input${expected === '1' ? '' : 's'}, found ${found}`,
  ),
  notATensor: entry('CNN3014', 'error', (what: string, found: string) => `${what} must be a tensor, found ${found}`),
  blockWithoutReturn: entry('CNN3015', 'error', (block: string) => `block '${block}' does not return a tensor`),
  invalidArgumentValue: entry(
    'CNN3016',
    'error',
    (argument: string, callee: string, reason: string) => `argument '${argument}' of '${callee}' ${reason}`,
  ),
  noneValue: entry(
    'CNN3017',
    'error',
    (name: string) => `'${name}' has no value here (its 'when' condition is false); use '??' to pick another`,
  ),
  arithmetic: entry('CNN3018', 'error', (reason: string) => reason),
  nothingMatched: entry('CNN3019', 'warning', (what: string, target: string) => `${what} '${target}' matches no layer`),
  noOutput: entry('CNN3020', 'error', (model: string) => `model '${model}' declares no output`),
  unknownParameter: entry(
    'CNN3021',
    'error',
    (name: string, model: string) => `model '${model}' has no parameter '${name}'`,
  ),
  invalidDtype: entry('CNN3022', 'error', (dtype: string) => `unknown element type '${dtype}'`),
  unusedValue: entry('CNN3023', 'warning', (name: string) => `'${name}' is computed but never used`),
  invalidType: entry('CNN3024', 'error', (type: string) => `unknown parameter type '${type}'`),
  operandType: entry(
    'CNN3025',
    'error',
    (operator: string, left: string, right: string) => `operator '${operator}' cannot combine ${left} and ${right}`,
  ),
  notCallable: entry('CNN3026', 'error', (name: string, kind: string) => `'${name}' is ${kind}, not an op or block`),
  recursiveBlock: entry('CNN3027', 'error', (block: string) => `block '${block}' calls itself without end`),
  invalidRange: entry('CNN3028', 'error', (from: string, to: string) => `range '${from}..${to}' is empty or unknown`),
  unknownSetting: entry('CNN3029', 'error', (key: string, section: string) => `unknown ${section} setting '${key}'`),
  takeFromImport: entry('CNN3030', 'error', (reason: string) => reason),
  noInput: entry('CNN3031', 'error', (model: string) => `model '${model}' declares no input`),
  outerTensor: entry(
    'CNN3034',
    'error',
    (block: string, name: string) => `block '${block}' cannot use '${name}', a tensor from outside the block`,
  ),
  conditionNotBool: entry(
    'CNN3032',
    'error',
    (construct: string, found: string) => `the condition of '${construct}' must be a bool, found ${found}`,
  ),
  invalidSetting: entry(
    'CNN3033',
    'error',
    (key: string, section: string, expected: string, found: string) => `${section} setting '${key}' must be ${expected}, found ${found}`,
  ),

  // shapes and receptive fields
  channelMismatch: entry(
    'CNN4001',
    'error',
    (left: string, right: string, op: string, where: string) => `channels ${left} ≠ ${right} in ${op} at ${where}`,
  ),
  shapeMismatch: entry(
    'CNN4002',
    'error',
    (left: string, right: string, op: string, where: string) => `shapes ${left} and ${right} differ in ${op} at ${where}`,
  ),
  rankMismatch: entry(
    'CNN4004',
    'error',
    (op: string, expected: string, found: string) => `${op} expects ${expected}, found ${found}`,
  ),
  emptyOutput: entry(
    'CNN4005',
    'error',
    (op: string, detail: string) => `${op} has an empty output: ${detail}`,
  ),
  groupsDoNotDivide: entry(
    'CNN4006',
    'error',
    (what: string, count: number, groups: number) => `${what} ${count} is not divisible by groups ${groups}`,
  ),
  tensorTooLarge: entry(
    'CNN4007',
    'error',
    (name: string, shape: string) => `tensor '${name}' of shape ${shape} has more than 2^53 elements`,
  ),
  reshapeMismatch: entry(
    'CNN4009',
    'error',
    (from: string, to: string) => `cannot reshape ${from} to ${to}: element counts differ`,
  ),
  symbolicSame: entry(
    'CNN4010',
    'warning',
    (name: string) => `'${name}' uses SAME padding with stride > 1 on a symbolic size: pads are chosen at run time (SAME_UPPER)`,
  ),
  misalignedPaths: entry(
    'CNN4011',
    'warning',
    (where: string, detail: string) => `receptive fields of the inputs of ${where} are misaligned: ${detail}`,
  ),
  invalidPadding: entry('CNN4012', 'error', (reason: string) => reason),
  invalidDimension: entry(
    'CNN4013',
    'error',
    (axis: number, input: string, found: string) => `size ${axis} of input '${input}' must be a positive int or a symbol, found ${found}`,
  ),

  // assertions
  assertionFailed: entry('CNN5001', 'error', (detail: string) => `assertion failed: ${detail}`),
  assertionNotBoolean: entry('CNN5002', 'error', (found: string) => `an assertion must be true or false, found ${found}`),

  // limits
  repeatTooLarge: entry(
    'CNN6001',
    'error',
    (count: string, limit: number) => `repeat count ${count} exceeds the limit of ${limit}`,
  ),
  nestingLimit: entry(
    'CNN6002',
    'error',
    (limit: number, chain: string) => `block calls nest deeper than ${limit} (${chain})`,
  ),
  tooManyNodes: entry('CNN6003', 'error', (limit: number) => `the model has more than ${limit} layers`),

  // passes and export
  notExpressibleInOpset: entry('CNN7001', 'error', (reason: string) => reason),
  unknownPass: entry('CNN7002', 'error', (name: string, valid: string) => `unknown pass '${name}'; valid passes: ${valid}`),
  passRefused: entry('CNN7003', 'note', (pass: string, detail: string) => `${pass}: ${detail}`),
  passApplied: entry('CNN7004', 'note', (pass: string, detail: string) => `${pass}: ${detail}`),

  // weights, data, runtime
  weightsUnreadable: entry('CNN8001', 'error', (path: string, reason: string) => `cannot read weights '${path}': ${reason}`),
  weightMissing: entry(
    'CNN8002',
    'error',
    (name: string, shape: string) => `weights lack '${name}' (expected shape ${shape})`,
  ),
  weightShape: entry(
    'CNN8003',
    'error',
    (name: string, expected: string, found: string) => `weight '${name}' has shape ${found}, expected ${expected}`,
  ),
  weightUnused: entry('CNN8004', 'warning', (name: string, shape: string) => `weight '${name}' ${shape} matches no parameter`),
  dataUnreadable: entry('CNN8005', 'error', (path: string, reason: string) => `cannot read data '${path}': ${reason}`),
  unsupportedOnnxOp: entry(
    'CNN8006',
    'error',
    (op: string, node: string) => `ONNX op '${op}' (node '${node}') has no convspec equivalent`,
  ),
  runtimeFailure: entry('CNN8007', 'error', (reason: string) => reason),
  fileSystem: entry('CNN8008', 'error', (reason: string) => reason),
} as const satisfies Record<string, Entry>;

export type DiagnosticKind = keyof typeof catalogue;
type ArgsOf<K extends DiagnosticKind> = Parameters<(typeof catalogue)[K]['text']>;

export function diagnostic<K extends DiagnosticKind>(
  kind: K,
  span: Span | undefined,
  args: ArgsOf<K>,
  hint?: string,
): Diagnostic {
  const item = catalogue[kind] as Entry;
  const message = (item.text as (...a: unknown[]) => string)(...args);
  return {
    code: item.code,
    severity: item.severity,
    message,
    ...(span ? { span } : {}),
    ...(hint ? { hint } : {}),
  };
}

/** Collects diagnostics from a stage that keeps going after an error. */
export class DiagnosticBag {
  readonly items: Diagnostic[] = [];
  /** Applied to every diagnostic added (the JSON spec form moves locations from its rendering to the JSON). */
  transform: ((d: Diagnostic) => Diagnostic) | undefined;

  add<K extends DiagnosticKind>(kind: K, span: Span | undefined, args: ArgsOf<K>, hint?: string): Diagnostic {
    const made = diagnostic(kind, span, args, hint);
    const d = this.transform ? this.transform(made) : made;
    this.items.push(d);
    return d;
  }

  push(...items: Diagnostic[]): void {
    this.items.push(...(this.transform ? items.map(this.transform) : items));
  }

  get hasErrors(): boolean {
    return this.items.some((d) => d.severity === 'error');
  }
}

export function hasErrors(items: readonly Diagnostic[]): boolean {
  return items.some((d) => d.severity === 'error');
}

/** Sorts by file, then position, then code, so output order never depends on the order stages ran in. */
export function sortDiagnostics(items: readonly Diagnostic[]): Diagnostic[] {
  return [...items].sort((a, b) => {
    const fa = a.span?.file ?? '';
    const fb = b.span?.file ?? '';
    if (fa !== fb) return fa < fb ? -1 : 1;
    const sa = a.span?.start ?? -1;
    const sb = b.span?.start ?? -1;
    if (sa !== sb) return sa - sb;
    return a.code < b.code ? -1 : a.code > b.code ? 1 : 0;
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Rendering

/** Text rendering with the source line and a caret run under the span, as compilers print it. */
export function renderDiagnostic(d: Diagnostic, sources: ReadonlyMap<string, SourceFile>): string {
  const where = d.span ? `${d.span.file}:${d.span.line}:${d.span.column}: ` : '';
  const lines = [`${where}${d.severity} ${d.code}: ${d.message}`];
  const source = d.span ? sources.get(d.span.file) : undefined;
  if (d.span && source) {
    const text = source.lineText(d.span.line).replace(/\t/g, ' ');
    const gutter = String(d.span.line);
    const pad = ' '.repeat(gutter.length);
    const lastColumn = d.span.endLine === d.span.line ? d.span.endColumn : text.length + 1;
    const width = Math.max(1, lastColumn - d.span.column);
    lines.push(`${gutter} | ${text}`);
    lines.push(`${pad} | ${' '.repeat(Math.max(0, d.span.column - 1))}${'^'.repeat(width)}`);
  }
  if (d.hint) lines.push(`  hint: ${d.hint}`);
  return lines.join('\n');
}

export interface JsonDiagnostic {
  code: string;
  severity: Severity;
  file?: string;
  line?: number;
  column?: number;
  endLine?: number;
  endColumn?: number;
  message: string;
  hint?: string;
}

export function diagnosticToJson(d: Diagnostic): JsonDiagnostic {
  return {
    code: d.code,
    severity: d.severity,
    ...(d.span
      ? {
          file: d.span.file,
          line: d.span.line,
          column: d.span.column,
          endLine: d.span.endLine,
          endColumn: d.span.endColumn,
        }
      : {}),
    message: d.message,
    ...(d.hint ? { hint: d.hint } : {}),
  };
}

/** GitHub Actions workflow-command annotation (`::error file=…,line=…,col=…::CNN2003 …`). */
export function renderGithub(d: Diagnostic): string {
  const command = d.severity === 'error' ? 'error' : d.severity === 'warning' ? 'warning' : 'notice';
  const escapeProperty = (s: string) =>
    s.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A').replace(/:/g, '%3A').replace(/,/g, '%2C');
  const escapeData = (s: string) => s.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
  const props = d.span
    ? ` file=${escapeProperty(d.span.file)},line=${d.span.line},col=${d.span.column},endLine=${d.span.endLine},endColumn=${d.span.endColumn}`
    : '';
  const hint = d.hint ? ` (hint: ${d.hint})` : '';
  return `::${command}${props}::${escapeData(`${d.code} ${d.message}${hint}`)}`;
}

// ---------------------------------------------------------------------------------------------------------------
// "Did you mean"

/** Damerau–Levenshtein (optimal string alignment) distance. */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, (_, i) => Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The closest candidate within a third of the name's length (at least 1, at most 3 edits), if any. A one-letter
 * name only matches another case of itself: every one-letter name is one edit from every other.
 */
export function closestName(name: string, candidates: Iterable<string>): string | undefined {
  const limit = name.length < 2 ? 0.5 : Math.min(3, Math.max(1, Math.floor(name.length / 3)));
  let best: string | undefined;
  let bestDistance = Infinity;
  const lower = name.toLowerCase();
  for (const candidate of candidates) {
    const distance = candidate.toLowerCase() === lower ? 0.5 : editDistance(lower, candidate.toLowerCase());
    if (distance < bestDistance || (distance === bestDistance && best !== undefined && candidate < best)) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return bestDistance <= limit ? best : undefined;
}

export function didYouMean(name: string, candidates: Iterable<string>): string | undefined {
  const match = closestName(name, candidates);
  return match === undefined ? undefined : `did you mean '${match}'?`;
}

/**
 * The JSON form of a spec, for tools that generate models.
 *
 * A JSON spec is validated against `SPEC_SCHEMA` (published as grammar/spec.schema.json) with ajv; schema
 * errors are reported at the offending JSON value's line and column. A valid document is rendered to the
 * equivalent `.cnn` text and elaborated like any spec, so both forms mean exactly the same thing. Diagnostics
 * from elaboration point into that rendered text, which is registered as a source named `<file>.cnn`.
 *
 * Expressions (conditions, asserts, computed arguments) are written as strings of the language's expression
 * syntax; plain JSON numbers, booleans, lists and strings are literal values.
 */
import { createRequire } from 'node:module';
import type { Ajv as AjvClass, ErrorObject, ValidateFunction } from 'ajv';
import * as fs from 'node:fs';
import { type Diagnostic, DiagnosticBag, didYouMean } from '../diagnostics.js';
import { quote } from '../parser/index.js';
import { SourceFile, syntheticSpan } from '../source.js';
import { elaborate, type ElaborateOptions, type ElaborateResult } from './elaborate.js';
import { MAX_FILE_BYTES } from './loader.js';

const IDENTIFIER = '^[A-Za-z_][A-Za-z0-9_]*$';

const value = { $ref: '#/$defs/value' };

export const SPEC_SCHEMA = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'https://convspec.dev/schema/spec.json',
  title: 'convspec model (JSON form)',
  type: 'object',
  required: ['model', 'inputs', 'layers', 'outputs'],
  additionalProperties: false,
  properties: {
    $schema: { type: 'string' },
    model: { type: 'string', pattern: IDENTIFIER },
    imports: { type: 'array', items: { type: 'string' } },
    inputs: {
      type: 'object',
      minProperties: 1,
      propertyNames: { pattern: IDENTIFIER },
      additionalProperties: {
        type: 'object',
        required: ['shape'],
        additionalProperties: false,
        properties: {
          dtype: { const: 'f32' },
          shape: { type: 'array', minItems: 2, items: { anyOf: [{ type: 'integer', minimum: 1 }, { type: 'string', pattern: IDENTIFIER }] } },
        },
      },
    },
    params: {
      type: 'object',
      propertyNames: { pattern: IDENTIFIER },
      additionalProperties: {
        type: 'object',
        required: ['type', 'default'],
        additionalProperties: false,
        properties: { type: { $ref: '#/$defs/type' }, default: value },
      },
    },
    let: { type: 'object', propertyNames: { pattern: IDENTIFIER }, additionalProperties: { $ref: '#/$defs/expression' } },
    blocks: {
      type: 'object',
      propertyNames: { pattern: IDENTIFIER },
      additionalProperties: {
        type: 'object',
        required: ['inputs', 'layers', 'return'],
        additionalProperties: false,
        properties: {
          params: {
            type: 'object',
            propertyNames: { pattern: IDENTIFIER },
            additionalProperties: {
              type: 'object',
              required: ['type'],
              additionalProperties: false,
              properties: { type: { $ref: '#/$defs/type' }, default: value },
            },
          },
          inputs: { type: 'array', items: { type: 'string', pattern: IDENTIFIER } },
          layers: { type: 'array', items: { $ref: '#/$defs/layer' } },
          asserts: { type: 'array', items: { type: 'string' } },
          return: { $ref: '#/$defs/expression' },
        },
      },
    },
    layers: { type: 'array', items: { $ref: '#/$defs/layer' } },
    outputs: { type: 'array', minItems: 1, items: { type: 'string', pattern: IDENTIFIER } },
    freeze: { type: 'array', items: { type: 'string' } },
    regularize: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        properties: {
          l1: { type: 'number', minimum: 0 },
          l2: { type: 'number', minimum: 0 },
          max_norm: { type: 'number', minimum: 0 },
          on: { type: 'array', items: { type: 'string' } },
        },
        minProperties: 1,
      },
    },
    asserts: { type: 'array', items: { type: 'string' } },
    train: { type: 'object', additionalProperties: value },
  },
  $defs: {
    type: { type: 'string', pattern: '^(int|float|bool|string|dim|any)(\\[\\])?$' },
    expression: { type: 'string', minLength: 1, description: 'an expression in convspec syntax' },
    value: {
      anyOf: [
        { type: 'number' },
        { type: 'boolean' },
        { type: 'string' },
        { type: 'array', items: { $ref: '#/$defs/value' } },
        {
          type: 'object',
          required: ['expr'],
          additionalProperties: false,
          properties: { expr: { $ref: '#/$defs/expression' } },
          description: 'a computed value: { "expr": "channels(x) * 2" }',
        },
      ],
    },
    op: {
      anyOf: [
        { type: 'string', pattern: IDENTIFIER, description: 'an op or block without arguments, e.g. "relu"' },
        {
          type: 'object',
          required: ['op'],
          properties: {
            op: { type: 'string', pattern: IDENTIFIER },
            args: { type: 'array', items: value },
            as: { type: 'string' },
            repeat: { anyOf: [{ type: 'integer', minimum: 0 }, { $ref: '#/$defs/expression' }] },
            index: { type: 'string', pattern: IDENTIFIER },
          },
          additionalProperties: value,
        },
      ],
    },
    layer: {
      type: 'object',
      required: ['name'],
      additionalProperties: false,
      properties: {
        name: { type: 'string', pattern: IDENTIFIER },
        from: { $ref: '#/$defs/expression' },
        ops: { type: 'array', items: { $ref: '#/$defs/op' } },
        expr: { $ref: '#/$defs/expression' },
        when: { $ref: '#/$defs/expression' },
      },
      oneOf: [{ required: ['from', 'ops'] }, { required: ['expr'] }],
    },
  },
} as const;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export function isJsonSpecPath(file: string): boolean {
  return file.toLowerCase().endsWith('.json');
}

let validator: ValidateFunction | undefined;

function validate(document: unknown) {
  if (!validator) {
    // Loaded on the first JSON spec only: ajv and its dependencies are a tenth of `convspec check`'s start-up.
    const { Ajv } = createRequire(import.meta.url)('ajv') as { Ajv: typeof AjvClass };
    validator = new Ajv({ allErrors: true, strict: false, verbose: true }).compile(SPEC_SCHEMA);
  }
  const valid = validator(document);
  return { valid, errors: validator.errors ?? [] };
}

function renderValue(v: Json): string {
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : String(v).includes('e') || String(v).includes('.') ? String(v) : `${v}.0`;
  if (typeof v === 'boolean') return String(v);
  if (typeof v === 'string') return quote(v);
  if (Array.isArray(v)) return `[${v.map(renderValue).join(', ')}]`;
  if (v && typeof v === 'object' && typeof v['expr'] === 'string') return `(${v['expr']})`;
  return 'null';
}

function renderOp(op: Json): string {
  if (typeof op === 'string') return op;
  const object = op as Record<string, Json>;
  const name = object['op'] as string;
  const args: string[] = ((object['args'] as Json[] | undefined) ?? []).map(renderValue);
  for (const [key, v] of Object.entries(object)) {
    if (['op', 'args', 'as', 'repeat', 'index'].includes(key)) continue;
    args.push(`${key}: ${renderValue(v)}`);
  }
  let text = `${name}(${args.join(', ')})`;
  if (object['as'] !== undefined) text += ` as ${/^[A-Za-z_][A-Za-z0-9_]*$/.test(object['as'] as string) ? object['as'] : quote(object['as'] as string)}`;
  if (object['repeat'] !== undefined) {
    const count = typeof object['repeat'] === 'number' ? String(object['repeat']) : `(${object['repeat']})`;
    text = `repeat ${count}${object['index'] ? ` as ${object['index']}` : ''} ${text}`;
  }
  return text;
}

/**
 * The rendered text with, for each piece of it, the JSON pointer of the value it came from, so diagnostics about
 * the rendered text can point into the JSON document instead.
 */
interface RenderedPiece {
  readonly start: number;
  readonly end: number;
  readonly pointer: string;
  /** The piece is the verbatim content of a JSON string (an expression): offsets inside it map one to one. */
  readonly verbatim: boolean;
}

class RenderedSpec {
  private text = '';
  readonly pieces: RenderedPiece[] = [];

  /** Appends a line; `parts` are plain strings or pieces tied to a pointer. */
  line(pointer: string, ...parts: Array<string | { text: string; pointer: string; verbatim?: boolean }>): void {
    const start = this.text.length;
    for (const part of parts) {
      if (typeof part === 'string') this.text += part;
      else {
        this.pieces.push({ start: this.text.length, end: this.text.length + part.text.length, pointer: part.pointer, verbatim: part.verbatim ?? false });
        this.text += part.text;
      }
    }
    this.pieces.push({ start, end: this.text.length, pointer, verbatim: false });
    this.text += '\n';
  }

  toString(): string {
    return this.text;
  }

  /** The narrowest piece containing `offset`. */
  pieceAt(offset: number): RenderedPiece | undefined {
    let best: RenderedPiece | undefined;
    for (const piece of this.pieces) {
      if (piece.start <= offset && offset <= piece.end && (!best || piece.end - piece.start < best.end - best.start)) best = piece;
    }
    return best;
  }
}

function escapePointer(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}

function renderLayer(out: RenderedSpec, layer: Record<string, Json>, indent: string, pointer: string): void {
  const when = layer['when'] !== undefined ? [' when ', { text: layer['when'] as string, pointer: `${pointer}/when`, verbatim: true }] : [];
  if (layer['expr'] !== undefined) {
    out.line(pointer, `${indent}${layer['name']} = `, { text: layer['expr'] as string, pointer: `${pointer}/expr`, verbatim: true }, ...when);
    return;
  }
  const steps = (layer['ops'] as Json[]).flatMap((op, i) => [
    ' -> ',
    { text: renderOp(op), pointer: typeof op === 'string' ? `${pointer}/ops/${i}` : `${pointer}/ops/${i}/op`, verbatim: typeof op === 'string' },
  ]);
  out.line(pointer, `${indent}${layer['name']} = `, { text: layer['from'] as string, pointer: `${pointer}/from`, verbatim: true }, ...steps, ...when);
}

function renderTarget(target: string): string {
  if (/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*(\.\.[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*)?$/.test(target)) return target;
  return quote(target);
}

/** Renders a validated JSON spec as `.cnn` text. */
export function jsonSpecToText(document: Record<string, Json>): string {
  return renderJsonSpec(document).toString();
}

function renderJsonSpec(document: Record<string, Json>): RenderedSpec {
  const out = new RenderedSpec();
  ((document['imports'] as string[] | undefined) ?? []).forEach((imported, i) => out.line(`/imports/${i}`, `import ${quote(imported)}`));
  out.line('/model', `model ${document['model']} {`);
  for (const [name, input] of Object.entries(document['inputs'] as Record<string, Record<string, Json>>)) {
    out.line(`/inputs/${escapePointer(name)}`, `  input ${name}: f32[${(input['shape'] as Json[]).map(String).join(', ')}]`);
  }
  for (const [name, param] of Object.entries((document['params'] as Record<string, Record<string, Json>> | undefined) ?? {})) {
    out.line(`/params/${escapePointer(name)}`, `  param ${name}: ${param['type']} = ${renderValue(param['default']!)}`);
  }
  for (const [name, expression] of Object.entries((document['let'] as Record<string, string> | undefined) ?? {})) {
    const pointer = `/let/${escapePointer(name)}`;
    out.line(pointer, `  let ${name} = `, { text: expression, pointer, verbatim: true });
  }
  for (const [name, block] of Object.entries((document['blocks'] as Record<string, Record<string, Json>> | undefined) ?? {})) {
    const base = `/blocks/${escapePointer(name)}`;
    const params = Object.entries((block['params'] as Record<string, Record<string, Json>> | undefined) ?? {}).map(
      ([p, spec]) => `${p}: ${spec['type']}${spec['default'] !== undefined ? ` = ${renderValue(spec['default'])}` : ''}`,
    );
    out.line(base, `  block ${name}(${params.join(', ')}) (${(block['inputs'] as string[]).join(', ')}) {`);
    (block['layers'] as Array<Record<string, Json>>).forEach((layer, i) => renderLayer(out, layer, '    ', `${base}/layers/${i}`));
    ((block['asserts'] as string[] | undefined) ?? []).forEach((assertion, i) =>
      out.line(`${base}/asserts/${i}`, '    assert ', { text: assertion, pointer: `${base}/asserts/${i}`, verbatim: true }),
    );
    out.line(`${base}/return`, '    return ', { text: block['return'] as string, pointer: `${base}/return`, verbatim: true });
    out.line(base, '  }');
  }
  (document['layers'] as Array<Record<string, Json>>).forEach((layer, i) => renderLayer(out, layer, '  ', `/layers/${i}`));
  out.line('/outputs', `  output ${(document['outputs'] as string[]).join(', ')}`);
  const freeze = (document['freeze'] as string[] | undefined) ?? [];
  if (freeze.length > 0) out.line('/freeze', `  freeze ${freeze.map(renderTarget).join(', ')}`);
  ((document['regularize'] as Array<Record<string, Json>> | undefined) ?? []).forEach((entry, i) => {
    const on = (entry['on'] as string[] | undefined) ?? [];
    const suffix = on.length > 0 ? ` on ${on.map(renderTarget).join(', ')}` : '';
    for (const kind of ['l1', 'l2', 'max_norm']) {
      if (entry[kind] !== undefined) out.line(`/regularize/${i}/${kind}`, `  regularize ${kind}(${renderValue(entry[kind]!)})${suffix}`);
    }
  });
  ((document['asserts'] as string[] | undefined) ?? []).forEach((assertion, i) => out.line(`/asserts/${i}`, '  assert ', { text: assertion, pointer: `/asserts/${i}`, verbatim: true }));
  const train = document['train'] as Record<string, Json> | undefined;
  if (train) {
    out.line('/train', '  train {');
    for (const [key, setting] of Object.entries(train)) {
      // Strings that read as a call or a bare word are written as such (`adam(lr: 1e-3)`, `cross_entropy`).
      const text = typeof setting === 'string' && /^[A-Za-z_][A-Za-z0-9_]*(\(.*\))?$/.test(setting) ? setting : renderValue(setting);
      out.line(`/train/${escapePointer(key)}`, `    ${key}: ${text}`);
    }
    out.line('/train', '  }');
  }
  out.line('', '}');
  return out;
}

/**
 * Moves a diagnostic about the rendered text to the JSON value it came from: inside an expression string to the
 * exact characters when the string has no escapes, otherwise to the start of the value.
 */
function remapDiagnostic(d: Diagnostic, rendered: RenderedSpec, renderedName: string, source: SourceFile): Diagnostic {
  if (!d.span || d.span.file !== renderedName) return d;
  const piece = rendered.pieceAt(d.span.start);
  if (!piece) return d;
  const text = source.text;
  const valueOffset = locatePointer(text, piece.pointer, 'value');
  const length = scalarLength(text, valueOffset);
  let start = valueOffset;
  let end = valueOffset + length;
  const raw = text.slice(valueOffset, valueOffset + length);
  const renderedLength = piece.end - piece.start;
  if (piece.verbatim && raw.length === renderedLength + 2 && raw.startsWith('"') && !raw.includes('\\')) {
    start = valueOffset + 1 + (d.span.start - piece.start);
    end = Math.min(valueOffset + 1 + renderedLength, start + Math.max(0, Math.min(d.span.end, piece.end) - d.span.start));
  }
  return { ...d, span: source.span(start, Math.max(start, end)) };
}

/**
 * Offset of the value at a JSON pointer in valid JSON text (or of its key, for an unknown property), found by
 * walking the document's structure iteratively. The deepest existing ancestor is used when the path is absent.
 */
function locatePointer(text: string, pointer: string, at: 'key' | 'value' = 'value'): number {
  const target = pointer === '' ? [] : pointer.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  type Frame = { kind: '{' | '['; index: number; key: string; keyOffset: number };
  const frames: Frame[] = [];
  let best = 0;
  let i = 0;
  const skipSpace = () => {
    while (i < text.length && /[ \t\n\r]/.test(text[i]!)) i++;
  };
  // `matched` is how many leading parts of the target the current path equals.
  const matched = () => {
    let n = 0;
    while (n < frames.length && n < target.length) {
      const frame = frames[n]!;
      if ((frame.kind === '[' ? String(frame.index) : frame.key) !== target[n]) break;
      n++;
    }
    return n;
  };
  while (i < text.length) {
    skipSpace();
    // At a value: is it the target?
    const depth = matched();
    if (depth === frames.length) {
      if (depth === target.length) return at === 'key' && frames.length > 0 ? frames[frames.length - 1]!.keyOffset : i;
      best = i;
    }
    const ch = text[i];
    if (ch === '{' || ch === '[') {
      frames.push({ kind: ch, index: 0, key: '', keyOffset: i });
      i++;
      skipSpace();
      if (text[i] === '}' || text[i] === ']') {
        frames.pop();
        i++;
      } else {
        if (ch === '{') readKey();
        continue;
      }
    } else if (ch === '"') {
      const end = scanJsonString(text, i);
      i = typeof end === 'number' ? end : text.length;
    } else {
      while (i < text.length && !/[,\]}\s]/.test(text[i]!)) i++;
    }
    // After a value: commas and closers.
    while (true) {
      skipSpace();
      const next = text[i];
      const frame = frames[frames.length - 1];
      if (!frame || i >= text.length) return best;
      if (next === ',') {
        i++;
        frame.index++;
        if (frame.kind === '{') readKey();
        break;
      }
      frames.pop();
      i++;
    }
  }
  return best;

  function readKey(): void {
    skipSpace();
    const frame = frames[frames.length - 1]!;
    frame.keyOffset = i;
    const end = scanJsonString(text, i);
    const stop = typeof end === 'number' ? end : text.length;
    try {
      frame.key = JSON.parse(text.slice(i, stop)) as string;
    } catch {
      frame.key = '';
    }
    i = stop;
    skipSpace();
    if (text[i] === ':') i++;
  }
}

/** JSON nesting allowed: the spec's own structure is a few levels; values nest no deeper than the language allows. */
const MAX_JSON_NESTING = 100;

/** Offset of the bracket that nests deeper than `limit`, if any (strings skipped). */
function nestingBeyond(text: string, limit: number): number | undefined {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '"') {
      const end = scanJsonString(text, i);
      if (typeof end !== 'number') return undefined;
      i = end - 1;
    } else if (ch === '[' || ch === '{') {
      if (++depth > limit) return i;
    } else if (ch === ']' || ch === '}') depth--;
  }
  return undefined;
}

/** Length of the string, number or literal at `offset` (1 for the bracket of an object or array). */
function scalarLength(text: string, offset: number): number {
  if (text[offset] === '"') {
    const end = scanJsonString(text, offset);
    if (typeof end === 'number') return end - offset;
  }
  const literal = /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null/y;
  literal.lastIndex = offset;
  return literal.exec(text)?.[0].length ?? 1;
}

/** A schema error in words, located at the value it concerns (an unknown property at its own key). */
function describeSchemaError(error: ErrorObject): { pointer: string; reason: string; hint?: string } {
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'additionalProperties': {
      const property = String(params['additionalProperty']);
      const known = Object.keys(((error.parentSchema as { properties?: object } | undefined)?.properties ?? {}) as object);
      const hint = didYouMean(property, known) ?? (known.length > 0 ? `allowed: ${known.join(', ')}` : undefined);
      return { pointer: `${error.instancePath}/${property.replace(/~/g, '~0').replace(/\//g, '~1')}`, reason: `unknown property '${property}'`, ...(hint ? { hint } : {}) };
    }
    case 'const':
      return { pointer: error.instancePath, reason: `must be ${JSON.stringify(params['allowedValue'])}, found ${JSON.stringify(error.data)}` };
    case 'enum':
      return { pointer: error.instancePath, reason: `must be one of ${(params['allowedValues'] as unknown[]).map((v) => JSON.stringify(v)).join(', ')}` };
    case 'pattern':
      if (params['pattern'] === IDENTIFIER) return { pointer: error.instancePath, reason: `must be a name (a letter or '_', then letters, digits or '_'), found ${JSON.stringify(error.data)}` };
      return { pointer: error.instancePath, reason: error.message ?? 'is invalid' };
    default:
      return { pointer: error.instancePath, reason: error.message ?? 'is invalid' };
  }
}

/**
 * The first syntax error of a JSON text, found by a small iterative scanner (no recursion, so any nesting is
 * safe), or undefined when the text is valid JSON.
 */
export function findJsonSyntaxError(text: string): { offset: number; message: string; hint?: string } | undefined {
  type State = 'value' | 'valueOrClose' | 'key' | 'keyOrClose' | 'colon' | 'after';
  const stack: Array<'{' | '['> = [];
  let state: State = 'value';
  let i = 0;
  const describe = (ch: string) => (/\s/.test(ch) ? JSON.stringify(ch) : `'${ch}'`);
  const afterComma = () => {
    let j = i - 1;
    while (j >= 0 && /\s/.test(text[j]!)) j--;
    return text[j] === ',';
  };
  const trailingComma = { hint: 'JSON allows no comma after the last element' };
  while (true) {
    while (i < text.length && /[ \t\n\r]/.test(text[i]!)) i++;
    if (i >= text.length) {
      if (state === 'after' && stack.length === 0) return undefined;
      const open = stack.at(-1);
      return { offset: text.length, message: open ? `unexpected end of input: '${open}' is not closed` : 'unexpected end of input' };
    }
    const ch = text[i]!;
    const top = stack.at(-1);
    switch (state) {
      case 'value':
      case 'valueOrClose': {
        if (ch === ']' && state === 'valueOrClose') {
          stack.pop();
          i++;
          state = 'after';
          break;
        }
        if (ch === '{' || ch === '[') {
          stack.push(ch);
          i++;
          state = ch === '{' ? 'keyOrClose' : 'valueOrClose';
          break;
        }
        if (ch === '"') {
          const end = scanJsonString(text, i);
          if (typeof end !== 'number') return end;
          i = end;
          state = 'after';
          break;
        }
        const literal = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null/y;
        literal.lastIndex = i;
        const match = literal.exec(text);
        if (match && !/[A-Za-z0-9_]/.test(text[i + match[0].length] ?? '')) {
          i += match[0].length;
          state = 'after';
          break;
        }
        if ((ch === ']' || ch === '}') && afterComma()) return { offset: i, message: `unexpected ${describe(ch)} after ','`, ...trailingComma };
        return { offset: i, message: `expected a value but found ${describe(ch)}`, ...(ch === "'" ? { hint: 'JSON strings use double quotes' } : {}) };
      }
      case 'key':
      case 'keyOrClose': {
        if (ch === '}' && state === 'keyOrClose') {
          stack.pop();
          i++;
          state = 'after';
          break;
        }
        if (ch === '"') {
          const end = scanJsonString(text, i);
          if (typeof end !== 'number') return end;
          i = end;
          state = 'colon';
          break;
        }
        if (ch === '}' && afterComma()) return { offset: i, message: `unexpected '}' after ','`, ...trailingComma };
        return { offset: i, message: `expected a property name in double quotes but found ${describe(ch)}` };
      }
      case 'colon':
        if (ch !== ':') return { offset: i, message: `expected ':' but found ${describe(ch)}` };
        i++;
        state = 'value';
        break;
      case 'after': {
        if (!top) return { offset: i, message: `unexpected ${describe(ch)} after the end of the document` };
        const close = top === '{' ? '}' : ']';
        if (ch === ',') {
          i++;
          state = top === '{' ? 'key' : 'value';
          break;
        }
        if (ch === close) {
          stack.pop();
          i++;
          break;
        }
        return { offset: i, message: `expected ',' or '${close}' but found ${describe(ch)}` };
      }
    }
  }
}

/** The offset after a JSON string starting at `start`, or the error inside it. */
function scanJsonString(text: string, start: number): number | { offset: number; message: string } {
  for (let j = start + 1; j < text.length; j++) {
    const ch = text[j]!;
    if (ch === '"') return j + 1;
    if (ch === '\\') {
      const next = text[j + 1] ?? '';
      if (next === 'u' ? !/^[0-9a-fA-F]{4}$/.test(text.slice(j + 2, j + 6)) : !'"\\/bfnrt'.includes(next) || next === '') return { offset: j, message: 'invalid escape in string' };
      j += next === 'u' ? 5 : 1;
      continue;
    }
    if (ch.charCodeAt(0) < 0x20) return { offset: start, message: ch === '\n' ? 'unterminated string' : 'control character in string' };
  }
  return { offset: start, message: 'unterminated string' };
}

export function loadJsonSpec(file: string, options: ElaborateOptions = {}): ElaborateResult {
  const bag = new DiagnosticBag();
  let text: string;
  try {
    if (options.text !== undefined) text = options.text;
    else {
      const size = fs.statSync(file).size;
      if (size > MAX_FILE_BYTES) {
        bag.add('fileTooLarge', syntheticSpan(file), [size, MAX_FILE_BYTES]);
        return { graph: undefined, diagnostics: bag.items, sources: new Map(), asserts: [], topLevel: [], evaluator: undefined };
      }
      text = fs.readFileSync(file, 'utf8');
    }
  } catch (error) {
    bag.add('cannotReadFile', syntheticSpan(file), [file, (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message]);
    return { graph: undefined, diagnostics: bag.items, sources: new Map(), asserts: [], topLevel: [], evaluator: undefined };
  }
  const source = new SourceFile(file, text);
  const sources = new Map([[file, source]]);
  // The parser, the validator and the renderer recurse over the document: refuse pathological nesting first.
  const deep = nestingBeyond(text, MAX_JSON_NESTING);
  if (deep !== undefined) {
    bag.add('nestingTooDeep', source.span(deep, deep + 1), [MAX_JSON_NESTING]);
    return { graph: undefined, diagnostics: bag.items, sources, asserts: [], topLevel: [], evaluator: undefined };
  }
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    // JSON.parse's messages differ between Node versions and often lack a position: find the error ourselves.
    const found = findJsonSyntaxError(text) ?? { offset: 0, message: (error as Error).message.split('\n')[0]! };
    const end = Math.min(text.length, found.offset + 1);
    bag.add('invalidJson', source.span(found.offset, end), [found.message], found.hint);
    return { graph: undefined, diagnostics: bag.items, sources, asserts: [], topLevel: [], evaluator: undefined };
  }
  const { valid, errors } = validate(document);
  if (!valid) {
    const seen = new Set<string>();
    for (const error of errors) {
      // anyOf/oneOf produce one error per branch; report the first per location.
      const { pointer, reason, hint } = describeSchemaError(error);
      if (seen.has(pointer)) continue;
      seen.add(pointer);
      const offset = locatePointer(text, pointer, error.keyword === 'additionalProperties' ? 'key' : 'value');
      bag.add('jsonSchema', source.span(offset, offset + scalarLength(text, offset)), [pointer || '(root)', reason], hint);
    }
    return { graph: undefined, diagnostics: bag.items, sources, asserts: [], topLevel: [], evaluator: undefined };
  }
  // The JSON form means what its `.cnn` rendering means; diagnostics about the rendering are moved back to the
  // JSON values they came from (assert failures found later by `check` too, through the evaluator's bag).
  const rendered = renderJsonSpec(document as Record<string, Json>);
  const renderedName = `${file}.cnn`;
  const result = elaborate(renderedName, { ...options, text: rendered.toString() });
  const remap = (d: Diagnostic) => remapDiagnostic(d, rendered, renderedName, source);
  if (result.evaluator) result.evaluator.bag.transform = remap;
  const allSources = new Map(result.sources);
  allSources.set(file, source);
  return { ...result, diagnostics: result.diagnostics.map(remap), sources: allSources };
}

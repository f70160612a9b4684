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
import { Ajv, type ValidateFunction } from 'ajv';
import * as fs from 'node:fs';
import { DiagnosticBag } from '../diagnostics.js';
import { quote } from '../parser/index.js';
import { SourceFile } from '../source.js';
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
  if (!validator) validator = new Ajv({ allErrors: true, strict: false }).compile(SPEC_SCHEMA);
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

function renderLayer(layer: Record<string, Json>, indent: string): string {
  const body = layer['expr'] !== undefined ? (layer['expr'] as string) : [layer['from'] as string, ...(layer['ops'] as Json[]).map(renderOp)].join(' -> ');
  return `${indent}${layer['name']} = ${body}${layer['when'] !== undefined ? ` when ${layer['when']}` : ''}`;
}

function renderTarget(target: string): string {
  if (/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*(\.\.[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*)?$/.test(target)) return target;
  return quote(target);
}

/** Renders a validated JSON spec as `.cnn` text. */
export function jsonSpecToText(document: Record<string, Json>): string {
  const lines: string[] = [];
  for (const imported of (document['imports'] as string[] | undefined) ?? []) lines.push(`import ${quote(imported)}`);
  lines.push(`model ${document['model']} {`);
  for (const [name, input] of Object.entries(document['inputs'] as Record<string, Record<string, Json>>)) {
    lines.push(`  input ${name}: f32[${(input['shape'] as Json[]).map(String).join(', ')}]`);
  }
  for (const [name, param] of Object.entries((document['params'] as Record<string, Record<string, Json>> | undefined) ?? {})) {
    lines.push(`  param ${name}: ${param['type']} = ${renderValue(param['default']!)}`);
  }
  for (const [name, expression] of Object.entries((document['let'] as Record<string, string> | undefined) ?? {})) lines.push(`  let ${name} = ${expression}`);
  for (const [name, block] of Object.entries((document['blocks'] as Record<string, Record<string, Json>> | undefined) ?? {})) {
    const params = Object.entries((block['params'] as Record<string, Record<string, Json>> | undefined) ?? {}).map(
      ([p, spec]) => `${p}: ${spec['type']}${spec['default'] !== undefined ? ` = ${renderValue(spec['default'])}` : ''}`,
    );
    lines.push(`  block ${name}(${params.join(', ')}) (${(block['inputs'] as string[]).join(', ')}) {`);
    for (const layer of block['layers'] as Array<Record<string, Json>>) lines.push(renderLayer(layer, '    '));
    for (const assertion of (block['asserts'] as string[] | undefined) ?? []) lines.push(`    assert ${assertion}`);
    lines.push(`    return ${block['return']}`, '  }');
  }
  for (const layer of document['layers'] as Array<Record<string, Json>>) lines.push(renderLayer(layer, '  '));
  lines.push(`  output ${(document['outputs'] as string[]).join(', ')}`);
  const freeze = (document['freeze'] as string[] | undefined) ?? [];
  if (freeze.length > 0) lines.push(`  freeze ${freeze.map(renderTarget).join(', ')}`);
  for (const entry of (document['regularize'] as Array<Record<string, Json>> | undefined) ?? []) {
    const on = (entry['on'] as string[] | undefined) ?? [];
    const suffix = on.length > 0 ? ` on ${on.map(renderTarget).join(', ')}` : '';
    if (entry['l1'] !== undefined) lines.push(`  regularize l1(${renderValue(entry['l1'])})${suffix}`);
    if (entry['l2'] !== undefined) lines.push(`  regularize l2(${renderValue(entry['l2'])})${suffix}`);
    if (entry['max_norm'] !== undefined) lines.push(`  regularize max_norm(${renderValue(entry['max_norm'])})${suffix}`);
  }
  for (const assertion of (document['asserts'] as string[] | undefined) ?? []) lines.push(`  assert ${assertion}`);
  const train = document['train'] as Record<string, Json> | undefined;
  if (train) {
    lines.push('  train {');
    for (const [key, setting] of Object.entries(train)) {
      // Strings that read as a call or a bare word are written as such (`adam(lr: 1e-3)`, `cross_entropy`).
      const text = typeof setting === 'string' && /^[A-Za-z_][A-Za-z0-9_]*(\(.*\))?$/.test(setting) ? setting : renderValue(setting);
      lines.push(`    ${key}: ${text}`);
    }
    lines.push('  }');
  }
  lines.push('}');
  return `${lines.join('\n')}\n`;
}

/** Line and column of the value at a JSON pointer, found by walking the text (best effort). */
function locatePointer(text: string, pointer: string): number {
  const parts = pointer.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  let offset = 0;
  for (const part of parts) {
    const key = new RegExp(`"${part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}"\\s*:`, 'g');
    key.lastIndex = offset;
    const match = key.exec(text);
    if (match) {
      offset = match.index;
      continue;
    }
    if (/^\d+$/.test(part)) {
      // An array index: skip to the n-th element after the opening bracket.
      let index = Number(part);
      let depth = 0;
      let position = text.indexOf('[', offset);
      if (position < 0) return offset;
      position++;
      while (position < text.length && index > 0) {
        const ch = text[position]!;
        if (ch === '"') {
          position = text.indexOf('"', position + 1);
          while (position > 0 && text[position - 1] === '\\') position = text.indexOf('"', position + 1);
        } else if (ch === '[' || ch === '{') depth++;
        else if (ch === ']' || ch === '}') depth--;
        else if (ch === ',' && depth === 0) index--;
        position++;
      }
      while (/\s/.test(text[position] ?? '')) position++;
      offset = position;
    }
  }
  return offset;
}

export function loadJsonSpec(file: string, options: ElaborateOptions = {}): ElaborateResult {
  const bag = new DiagnosticBag();
  let text: string;
  try {
    if (options.text !== undefined) text = options.text;
    else {
      const size = fs.statSync(file).size;
      if (size > MAX_FILE_BYTES) {
        bag.add('fileTooLarge', undefined, [size, MAX_FILE_BYTES]);
        return { graph: undefined, diagnostics: bag.items, sources: new Map(), asserts: [], topLevel: [], evaluator: undefined };
      }
      text = fs.readFileSync(file, 'utf8');
    }
  } catch (error) {
    bag.add('cannotReadFile', undefined, [file, (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message]);
    return { graph: undefined, diagnostics: bag.items, sources: new Map(), asserts: [], topLevel: [], evaluator: undefined };
  }
  const source = new SourceFile(file, text);
  const sources = new Map([[file, source]]);
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    const message = (error as Error).message;
    const position = /position (\d+)/.exec(message);
    const offset = position ? Number(position[1]) : 0;
    bag.add('invalidJson', source.span(offset, offset + 1), [message.replace(/^JSON\.parse: /, '')]);
    return { graph: undefined, diagnostics: bag.items, sources, asserts: [], topLevel: [], evaluator: undefined };
  }
  const { valid, errors } = validate(document);
  if (!valid) {
    const seen = new Set<string>();
    for (const error of errors) {
      // anyOf/oneOf produce one error per branch; report the first per location.
      if (seen.has(error.instancePath)) continue;
      seen.add(error.instancePath);
      const offset = locatePointer(text, error.instancePath);
      const extra = error.params && 'additionalProperty' in error.params ? ` '${String(error.params['additionalProperty'])}'` : '';
      bag.add('jsonSchema', source.span(offset, offset + 1), [error.instancePath || '(root)', `${error.message ?? 'is invalid'}${extra}`]);
    }
    return { graph: undefined, diagnostics: bag.items, sources, asserts: [], topLevel: [], evaluator: undefined };
  }
  const rendered = jsonSpecToText(document as Record<string, Json>);
  const result = elaborate(`${file}.cnn`, { ...options, text: rendered });
  const allSources = new Map(result.sources);
  allSources.set(file, source);
  return { ...result, sources: allSources };
}

/**
 * Values of the elaborator: what an expression evaluates to while a spec is turned into IR.
 *
 * `none` is the value of a name whose `when` condition was false (only `??` may look past it); `error` is the
 * value of anything whose problem was already reported, and it silences every later use, so one mistake gives
 * one diagnostic rather than a cascade.
 */
import type { Poly } from '../ir/dims.js';
import { dimToString, shapeToString } from '../ir/dims.js';
import type { Shape } from '../ir/graph.js';

export type Value =
  | { readonly kind: 'number'; readonly value: number; readonly integer: boolean }
  | { readonly kind: 'bool'; readonly value: boolean }
  | { readonly kind: 'string'; readonly value: string }
  | { readonly kind: 'list'; readonly items: readonly Value[] }
  | { readonly kind: 'dim'; readonly dim: Poly }
  | { readonly kind: 'tensor'; readonly name: string; readonly shape: Shape }
  | { readonly kind: 'none'; readonly name: string }
  | { readonly kind: 'error' };

export const ERROR: Value = { kind: 'error' };

export function num(value: number, integer = Number.isInteger(value)): Value {
  return { kind: 'number', value, integer };
}

export function bool(value: boolean): Value {
  return { kind: 'bool', value };
}

export function str(value: string): Value {
  return { kind: 'string', value };
}

export function list(items: readonly Value[]): Value {
  return { kind: 'list', items };
}

export function describeValue(value: Value): string {
  switch (value.kind) {
    case 'number':
      return value.integer ? `int ${value.value}` : `float ${value.value}`;
    case 'bool':
      return `bool ${value.value}`;
    case 'string':
      return `string ${JSON.stringify(value.value)}`;
    case 'list':
      return `list ${renderValue(value)}`;
    case 'dim':
      return `symbolic size ${dimToString(value.dim)}`;
    case 'tensor':
      return `tensor ${shapeToString(value.shape)}`;
    case 'none':
      return `no value ('${value.name}' is disabled by its 'when')`;
    case 'error':
      return 'an erroneous value';
  }
}

export function renderValue(value: Value): string {
  switch (value.kind) {
    case 'number':
      return String(value.value);
    case 'bool':
      return String(value.value);
    case 'string':
      return JSON.stringify(value.value);
    case 'list':
      return `[${value.items.map(renderValue).join(', ')}]`;
    case 'dim':
      return dimToString(value.dim);
    case 'tensor':
      return `${value.name}${shapeToString(value.shape)}`;
    case 'none':
      return 'none';
    case 'error':
      return '<error>';
  }
}

/**
 * The canonical layout of `convspec fmt`, shown on one spec that has each case: spacing, a chain that keeps its
 * author's line breaks and the comments on its lines, `when` after a one-line and after a broken chain, a chain
 * too long for one line filled onto continuation lines, and chains inside expressions kept on one line.
 */
import { describe, expect, it } from 'vitest';
import { formatProgram } from '../../src/parser/format.js';
import { parse } from '../../src/parser/index.js';

function format(text: string): string {
  const parsed = parse(text, 'format.cnn');
  expect(parsed.diagnostics).toEqual([]);
  return formatProgram(parsed.program, text);
}

const MESSY = `// header

// about the model
model   M {
  input x:f32[N,3,32,32]
  // leading comment
  a = x -> conv(8, 3, pad: 1) -> bn -> relu   // first group
        -> conv(8, 3, pad: 1) -> bn            // second group
        // own line between groups
        -> relu
  b = a -> conv(8, 1) -> bn
     when channels(a) != 8
  c = a
    -> conv(8, 1)
    -> bn when channels(a) == 8


  d = x -> conv(64, 3, stride: 2, pad: 1, bias: false) -> bn -> relu -> conv(64, 3, pad: 1, bias: false) -> bn -> relu -> maxpool(2)
  e = (x -> relu) + (x
    -> sigmoid)
  block unit(c: int) (y) { return y -> conv(c, 1) }
  output a, b, c, d, e
}
`;

const CANONICAL = `// header

// about the model
model M {
  input x: f32[N, 3, 32, 32]
  // leading comment
  a = x -> conv(8, 3, pad: 1) -> bn -> relu // first group
      -> conv(8, 3, pad: 1) -> bn // second group
      // own line between groups
      -> relu
  b = a -> conv(8, 1) -> bn when channels(a) != 8
  c = a
      -> conv(8, 1)
      -> bn
      when channels(a) == 8

  d = x -> conv(64, 3, stride: 2, pad: 1, bias: false) -> bn -> relu
      -> conv(64, 3, pad: 1, bias: false) -> bn -> relu -> maxpool(2)
  e = (x -> relu) + (x -> sigmoid)
  block unit(c: int) (y) {
    return y -> conv(c, 1)
  }
  output a, b, c, d, e
}
`;

describe('fmt layout', () => {
  it('prints the canonical form', () => {
    expect(format(MESSY)).toBe(CANONICAL);
  });

  it('leaves the canonical form as it is', () => {
    expect(format(CANONICAL)).toBe(CANONICAL);
  });

  it('keeps lines within 100 columns where the steps allow it', () => {
    for (const line of format(MESSY).split('\n')) expect(line.length, line).toBeLessThanOrEqual(100);
  });
});

/**
 * The WebAssembly He-uniform kernel: the embedded bytes are the .wat's, and every range of every stream equals the
 * scalar Mulberry32 numbers, with and without per-row factors; DrawnWeight streams and folds what it would draw.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
// @ts-expect-error -- a plain Node script without type declarations
import { assembleHeUniform, embeddedModuleSource } from '../../scripts/build-wasm.mjs';
import { drawHeUniform, heUniformBytes, type HeUniformStream } from '../../src/ir/he-uniform.js';
import { HE_UNIFORM_WASM_BASE64 } from '../../src/ir/he-uniform-wasm.js';
import { DrawnWeight } from '../../src/ir/weights.js';
import { createMulberry32 } from '../../src/random.js';
import { readFileSync } from 'node:fs';

/** The scalar definition: skip `first` numbers, then fround((2u − 1)·bound), times the row's factor. */
function reference(stream: HeUniformStream, first: number, count: number): Float32Array {
  const random = createMulberry32(stream.seed);
  for (let i = 0; i < first; i++) random();
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    const value = Math.fround((2 * random() - 1) * stream.bound);
    out[i] = stream.rowScale ? value * stream.rowScale[Math.floor((first + i) / stream.rowSize!)]! : value;
  }
  return out;
}

/** The pieces joined, each copied as it comes (a piece is valid only until the next). */
function joined(pieces: Iterable<Uint8Array>): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const piece of pieces) parts.push(piece.slice());
  return new Uint8Array(Buffer.concat(parts));
}

const streamArbitrary = fc.record({
  seed: fc.integer({ min: 0, max: 0xffffffff }),
  bound: fc.double({ min: 1e-4, max: 4, noNaN: true }),
});

describe('he-uniform kernel', () => {
  it('embeds exactly the bytes he-uniform.wat assembles to', async () => {
    const bytes: Buffer = await assembleHeUniform();
    expect(Buffer.from(HE_UNIFORM_WASM_BASE64, 'base64').equals(bytes)).toBe(true);
    expect(readFileSync(new URL('../../src/ir/he-uniform-wasm.ts', import.meta.url), 'utf8')).toBe(embeddedModuleSource(bytes));
  });

  it('draws any range of any stream bit for bit as the scalar Mulberry32 loop (SIMD body and scalar tail)', () => {
    fc.assert(
      fc.property(streamArbitrary, fc.integer({ min: 0, max: 100 }), fc.integer({ min: 0, max: 70 }), (stream, first, count) => {
        const target = new Float32Array(count);
        drawHeUniform(target, stream, first);
        expect(target).toEqual(reference(stream, first, count));
      }),
      { numRuns: 300, seed: 20261207 },
    );
  });

  it('multiplies each row by its factor with one more float32 rounding, rows split across calls and chunks', () => {
    fc.assert(
      fc.property(
        streamArbitrary,
        fc.integer({ min: 1, max: 9 }),
        fc.array(fc.double({ min: -3, max: 3, noNaN: true }), { minLength: 1, maxLength: 8 }),
        fc.integer({ min: 0, max: 20 }),
        (stream, rowSize, factors, first) => {
          const scaled = { ...stream, rowSize, rowScale: Float64Array.from(factors) };
          const count = Math.max(0, rowSize * factors.length - first);
          const target = new Float32Array(count);
          drawHeUniform(target, scaled, first);
          expect(target).toEqual(reference(scaled, first, count));
        },
      ),
      { numRuns: 300, seed: 20261207 },
    );
  });

  it('crosses 1 MiB chunks without a seam, and streams the same bytes it draws', () => {
    const stream: HeUniformStream = { seed: 0xdeadbeef, bound: 0.05, rowSize: 100_003, rowScale: Float64Array.from([0.5, -1.25, 3]) };
    const length = 300_009;
    const drawn = new Float32Array(length);
    drawHeUniform(drawn, stream);
    expect(drawn).toEqual(reference(stream, 0, length));
    const streamed = joined(heUniformBytes(stream, length));
    expect(streamed.byteLength).toBe(length * 4);
    expect(Buffer.from(streamed).equals(Buffer.from(drawn.buffer))).toBe(true);
  });
});

describe('he-uniform streaming memory', () => {
  it('keeps a piece intact while the next is drawn, across streams and around drawHeUniform', () => {
    const a: HeUniformStream = { seed: 1, bound: 1 };
    const b: HeUniformStream = { seed: 2, bound: 1 };
    const pieces = heUniformBytes(a, 300_000)[Symbol.iterator]();
    pieces.next();
    const last = pieces.next().value as Uint8Array; // a's second (last) piece
    const copy = last.slice();
    const next = heUniformBytes(b, 10)[Symbol.iterator]().next().value as Uint8Array; // b's first piece
    drawHeUniform(new Float32Array(300_000), b);
    expect(Buffer.from(last).equals(Buffer.from(copy))).toBe(true);
    expect(next.buffer).toBe(last.buffer);
    expect(next.byteOffset).not.toBe(last.byteOffset);
  });
});

describe('DrawnWeight', () => {
  const stream: HeUniformStream = { seed: 42, bound: 0.3 };

  it('draws once on first read and keeps the array; after that, bytes and folds follow the array', () => {
    const weight = new DrawnWeight([3, 4], stream);
    expect(weight.unread).toBe(true);
    const data = weight.data;
    expect(weight.unread).toBe(false);
    expect(weight.data).toBe(data);
    expect(data).toEqual(reference(stream, 0, 12));
    data[0] = 123;
    expect(new Float32Array(joined(weight.bytes()).buffer)[0]).toBe(123);
    expect(weight.withRowScale(Float64Array.from([1, 2, 3]))).toBeUndefined();
  });

  it('spreads and serialises like a plain tensor: data is an own, enumerable property', () => {
    const weight = new DrawnWeight([2, 3], stream);
    const copy = { ...weight };
    expect(copy.shape).toEqual([2, 3]);
    expect(copy.data).toEqual(reference(stream, 0, 6));
    expect(Object.keys(weight)).toContain('data');
  });

  it('folds a per-row factor without reading, to what scaling the drawn array gives; only once', () => {
    const scale = Float64Array.from([0.999, -2, 1e-3]);
    const folded = new DrawnWeight([3, 2, 2], stream).withRowScale(scale)!;
    expect(folded.unread).toBe(true);
    const eager = new DrawnWeight([3, 2, 2], stream).data.map((v, i) => v * scale[Math.floor(i / 4)]!);
    expect(new Float32Array(joined(folded.bytes()).buffer)).toEqual(eager);
    expect(folded.data).toEqual(eager);
    expect(new DrawnWeight([3, 2, 2], stream).withRowScale(scale)!.withRowScale(scale)).toBeUndefined();
    expect(new DrawnWeight([3, 2, 2], stream).withRowScale(Float64Array.from([1, 2]))).toBeUndefined();
  });
});

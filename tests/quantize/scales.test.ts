/**
 * The quantization scale rules (src/passes/quantize.ts): asymmetric int8 activations with an exact zero,
 * per-channel symmetric int8 weights, int32 biases at s_x·s_c, QuantizeLinear's rounding, and clipping.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  activationParameters,
  dequantizeBias,
  dequantizeWeight,
  fakeQuantizeValue,
  INT8_MIN,
  quantizeBias,
  quantizeValue,
  quantizeWeightPerChannel,
  roundHalfToEven,
  sqnrDb,
} from '../../src/passes/quantize.js';
import { createMulberry32, normalSample } from '../../src/random.js';

const finite = (min: number, max: number) => fc.double({ min, max, noNaN: true, noDefaultInfinity: true });

describe('activation parameters (asymmetric int8)', () => {
  it('a ReLU range [0, hi] uses all 256 codes with zero point −128', () => {
    const p = activationParameters({ min: 0, max: 5.1 });
    expect(p.zeroPoint).toBe(INT8_MIN);
    expect(p.scale).toBeCloseTo(5.1 / 255, 7);
    expect(quantizeValue(0, p)).toBe(-128);
    expect(quantizeValue(5.1, p)).toBe(127);
    // negative values clamp to the code of 0: the quantizer is the ReLU
    expect(fakeQuantizeValue(-3, p)).toBe(0);
  });

  it('a range that excludes 0 is widened to contain it', () => {
    expect(activationParameters({ min: 2, max: 4 })).toEqual(activationParameters({ min: 0, max: 4 }));
    const negative = activationParameters({ min: -4, max: -2 });
    expect(negative.zeroPoint).toBe(127);
  });

  it('an empty range (all zeros) gives scale 1 and still represents 0', () => {
    const p = activationParameters({ min: 0, max: 0 });
    expect(p).toEqual({ scale: 1, zeroPoint: -128 });
    expect(fakeQuantizeValue(0, p)).toBe(0);
  });

  it('property: 0 is exact, values in range err ≤ s/2, values outside clip to the range ends', () => {
    fc.assert(
      fc.property(finite(-100, 0), finite(0, 100), finite(-1, 2), (lo, hi, t) => {
        fc.pre(hi - lo > 1e-3);
        const p = activationParameters({ min: lo, max: hi });
        expect(p.zeroPoint).toBeGreaterThanOrEqual(-128);
        expect(p.zeroPoint).toBeLessThanOrEqual(127);
        expect(fakeQuantizeValue(0, p)).toBe(0);
        const x = lo + t * (hi - lo);
        const y = fakeQuantizeValue(x, p);
        const low = (-128 - p.zeroPoint) * p.scale;
        const high = (127 - p.zeroPoint) * p.scale;
        if (x >= low && x <= high) expect(Math.abs(y - x)).toBeLessThanOrEqual(p.scale / 2 + 1e-6 * Math.abs(x) + 1e-9);
        else expect(y).toBeCloseTo(x < low ? low : high, 5);
        // the grid covers the calibrated range up to one step of rounding of the zero point
        expect(low).toBeLessThanOrEqual(lo + p.scale);
        expect(high).toBeGreaterThanOrEqual(hi - p.scale);
      }),
      { numRuns: 300 },
    );
  });
});

describe('rounding', () => {
  it('rounds half to even, as QuantizeLinear does', () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4, 2.6].map(roundHalfToEven)).toEqual([0, 2, 2, -0, -2, -2, 2, 3]);
  });
});

describe('per-channel symmetric weights', () => {
  it('each output channel gets s_c = max|W_c|/127, codes in [−127, 127], zero points 0', () => {
    const weight = { shape: [3, 2], data: Float32Array.from([1, -0.5, 0.011, 0.02, 0, 0]) };
    const q = quantizeWeightPerChannel(weight);
    expect(Array.from(q.scales)).toEqual([Math.fround(1 / 127), Math.fround(0.02 / 127), Math.fround(1 / 127)]);
    expect(Array.from(q.codes)).toEqual([127, -64, 70, 127, 0, 0]);
  });

  it('property: codes within ±127, each non-zero channel reaches ±127, error ≤ s_c/2', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 20 }), fc.integer({ min: 0, max: 1000 }), fc.double({ min: 1e-4, max: 100, noNaN: true }), (channels, per, seed, magnitude) => {
        const random = createMulberry32(seed);
        const data = Float32Array.from({ length: channels * per }, () => normalSample(random) * magnitude);
        const q = quantizeWeightPerChannel({ shape: [channels, per], data });
        const back = dequantizeWeight(q).data;
        for (let c = 0; c < channels; c++) {
          let maxCode = 0;
          for (let i = c * per; i < (c + 1) * per; i++) {
            expect(Math.abs(q.codes[i]!)).toBeLessThanOrEqual(127);
            maxCode = Math.max(maxCode, Math.abs(q.codes[i]!));
            expect(Math.abs(back[i]! - data[i]!)).toBeLessThanOrEqual(q.scales[c]! / 2 + 1e-6 * Math.abs(data[i]!));
          }
          expect(maxCode).toBe(127);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('a pruned (all-zero) channel stays exactly zero', () => {
    const q = quantizeWeightPerChannel({ shape: [2, 3], data: Float32Array.from([0, 0, 0, 1, 2, 3]) });
    expect(Array.from(dequantizeWeight(q).data.subarray(0, 3))).toEqual([0, 0, 0]);
    expect(q.scales[0]).toBeGreaterThan(0);
  });
});

describe('int32 bias', () => {
  it('uses scale s_x·s_c per channel and errs at most half of it', () => {
    const scales = Float32Array.from([0.01, 0.002]);
    const bias = { shape: [2], data: Float32Array.from([0.123, -4.56]) };
    const q = quantizeBias(bias, 0.05, scales);
    expect(Array.from(q.scales)).toEqual([Math.fround(0.05 * scales[0]!), Math.fround(0.05 * scales[1]!)]);
    const back = dequantizeBias(q).data;
    for (let c = 0; c < 2; c++) expect(Math.abs(back[c]! - bias.data[c]!)).toBeLessThanOrEqual(q.scales[c]! / 2 + 1e-9);
    expect(q.clamped).toBe(0);
  });

  it('clamps (and counts) values beyond int32', () => {
    const q = quantizeBias({ shape: [1], data: Float32Array.from([1e6]) }, 1e-5, Float32Array.from([1e-5]));
    expect(q.codes[0]).toBe(2147483647);
    expect(q.clamped).toBe(1);
  });
});

describe('SQNR', () => {
  it('is high for 8 bits: per-channel weights of a Gaussian layer are above 35 dB', () => {
    const random = createMulberry32(7);
    const data = Float32Array.from({ length: 64 * 288 }, () => normalSample(random) * 0.05);
    const back = dequantizeWeight(quantizeWeightPerChannel({ shape: [64, 288], data })).data;
    const db = sqnrDb(data, back);
    expect(db).toBeGreaterThan(35);
    expect(db).toBeLessThan(50);
  });

  it('is +∞ for an exact copy and about 6 dB per bit for a uniform quantizer', () => {
    const x = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i));
    expect(sqnrDb(x, x)).toBe(Number.POSITIVE_INFINITY);
    const p = activationParameters({ min: -1, max: 1 });
    const db = sqnrDb(x, x.map((v) => fakeQuantizeValue(v, p)));
    // full-scale sine: 6.02·8 + 1.76 ≈ 49.9 dB
    expect(db).toBeGreaterThan(47);
    expect(db).toBeLessThan(53);
  });
});

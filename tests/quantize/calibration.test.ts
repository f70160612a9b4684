/**
 * Calibration methods on synthetic distributions (src/passes/quantize-calibration.ts): MinMax is exact,
 * Percentile clips rare outliers, Entropy (KL) picks a threshold below the maximum for a heavy tail and keeps
 * (nearly) all of a distribution without one; the growable histogram loses no sample.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ActivationStatistics, calibrationRange, entropyThreshold, HISTOGRAM_BINS } from '../../src/passes/quantize-calibration.js';
import { createMulberry32, normalSample } from '../../src/random.js';

function gaussian(n: number, seed: number, sigma = 1): Float32Array {
  const random = createMulberry32(seed);
  return Float32Array.from({ length: n }, () => normalSample(random) * sigma);
}

function observeAll(batches: readonly Float32Array[]): ActivationStatistics {
  const stats = new ActivationStatistics();
  for (const b of batches) stats.observe(b);
  return stats;
}

function histogramTotal(stats: ActivationStatistics): number {
  let total = 0;
  for (let k = 0; k < HISTOGRAM_BINS; k++) total += stats.positive[k]! + stats.negative[k]!;
  return total;
}

describe('statistics', () => {
  it('property: min and max are exact over batches; the histogram keeps every value as its width doubles', () => {
    fc.assert(
      fc.property(fc.array(fc.array(fc.double({ min: -1e4, max: 1e4, noNaN: true }), { minLength: 1, maxLength: 50 }), { minLength: 1, maxLength: 6 }), (batches) => {
        const arrays = batches.map((b) => Float32Array.from(b));
        const stats = observeAll(arrays);
        const all = arrays.flatMap((a) => Array.from(a));
        expect(stats.min === Math.min(...all)).toBe(true);
        expect(stats.max === Math.max(...all)).toBe(true);
        expect(stats.count).toBe(all.length);
        expect(histogramTotal(stats)).toBe(all.length);
        const range = calibrationRange(stats, 'minmax');
        expect(range.min === stats.min && range.max === stats.max).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('doubling the width merges bins exactly (a value lands where a single pass would put it)', () => {
    const small = Float32Array.from([0.1, 0.2, 0.3]);
    const large = Float32Array.from([100]);
    const stats = observeAll([small, large]);
    // 100 fits below bins·w; every small value sits in bin ⌊x/w⌋ of the final width
    expect(stats.binWidth * HISTOGRAM_BINS).toBeGreaterThan(100);
    for (const x of small) expect(stats.positive[Math.floor(x / stats.binWidth)]).toBeGreaterThan(0);
  });

  it('refuses non-finite activations', () => {
    expect(() => new ActivationStatistics().observe([1, Number.NaN])).toThrow(/non-finite/);
  });
});

describe('MinMax', () => {
  it('is exactly the observed extremes, outliers included', () => {
    const data = gaussian(10000, 1);
    data[17] = 50;
    data[99] = -7;
    const range = calibrationRange(observeAll([data.subarray(0, 5000), data.subarray(5000)]), 'minmax');
    expect(range).toEqual({ min: -7, max: 50 });
  });
});

describe('Percentile', () => {
  it('clips rare outliers that MinMax keeps', () => {
    const data = gaussian(200000, 2);
    for (let i = 0; i < 10; i++) data[i * 1000] = 1000 + i;
    const stats = observeAll([data]);
    const range = calibrationRange(stats, 'percentile', { percentile: 99.99 });
    expect(stats.max).toBeGreaterThanOrEqual(1000);
    expect(range.max).toBeLessThan(20);
    expect(range.max).toBeGreaterThan(3);
    expect(range.min).toBeLessThan(-3);
    expect(range.min).toBeGreaterThan(-20);
  });

  it('keeps 0 as the lower end of a ReLU output', () => {
    const data = gaussian(50000, 3).map((v) => Math.max(v, 0));
    const range = calibrationRange(observeAll([data]), 'percentile', { percentile: 99.9 });
    expect(range.min).toBe(0);
    expect(range.max).toBeGreaterThan(2.5);
  });

  it('at 100 % equals MinMax up to one bin', () => {
    const stats = observeAll([gaussian(10000, 4)]);
    const range = calibrationRange(stats, 'percentile', { percentile: 100 });
    expect(range.max).toBeCloseTo(stats.max, 2);
    expect(range.min).toBeCloseTo(stats.min, 2);
  });
});

describe('Entropy (KL divergence)', () => {
  it('picks a threshold well below the maximum for a heavy tail', () => {
    // Laplace-like bulk with a sparse heavy tail reaching 100
    const random = createMulberry32(5);
    const data = Float32Array.from({ length: 200000 }, (_, i) => {
      const bulk = Math.log(random() + 1e-12) * (random() < 0.5 ? -1 : 1);
      return i % 2000 === 0 ? bulk * 20 + 60 : bulk;
    });
    const stats = observeAll([data]);
    const range = calibrationRange(stats, 'entropy');
    expect(range.max).toBeLessThan(0.5 * stats.max);
    expect(range.max).toBeGreaterThan(3);
  });

  it('keeps (nearly) the whole range of a uniform distribution', () => {
    const random = createMulberry32(6);
    const data = Float32Array.from({ length: 100000 }, () => random() * 4);
    const stats = observeAll([data]);
    const range = calibrationRange(stats, 'entropy');
    expect(range.min).toBe(stats.min);
    expect(range.max).toBeGreaterThan(0.9 * stats.max);
  });

  it('the spike of exact zeros in a ReLU output does not pull the threshold down', () => {
    const data = gaussian(100000, 8).map((v) => Math.max(v, 0));
    const stats = observeAll([data]);
    expect(stats.zeros).toBeGreaterThan(40000);
    const range = calibrationRange(stats, 'entropy');
    expect(range.min).toBe(0);
    expect(range.max).toBeGreaterThan(0.6 * stats.max);
  });

  it('threshold of a histogram with fewer bins in use than levels is its full extent', () => {
    const histogram = new Float64Array(HISTOGRAM_BINS);
    histogram[0] = 5;
    histogram[99] = 1;
    expect(entropyThreshold(histogram, 0.5, 128)).toBe(50);
  });
});

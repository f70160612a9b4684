/**
 * Small statistics for benchmark samples.
 *
 * The figure reported for a benchmark is the median of its repetitions: on a 2-core machine with other work
 * running, the mean is pulled by the occasional slow run, the median is not.
 *
 * Power-law fit: for t = a · nᵏ, log t = log a + k · log n, so k is the least-squares slope of (log n, log t).
 * k ≈ 1 means linear scaling, k ≈ 2 quadratic. r² says how well a single power law explains the points.
 */

/** Median of a non-empty list of numbers (mean of the middle two for an even count). */
export function median(values) {
  if (values.length === 0) throw new Error('median of no values');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Least-squares fit of log y = log a + k log x; returns { exponent: k, coefficient: a, r2 }. */
export function fitPowerLaw(xs, ys) {
  if (xs.length !== ys.length || xs.length < 2) throw new Error('fitPowerLaw needs two or more (x, y) pairs');
  const lx = xs.map(Math.log);
  const ly = ys.map(Math.log);
  const n = lx.length;
  const mx = lx.reduce((a, b) => a + b, 0) / n;
  const my = ly.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    sxy += (lx[i] - mx) * (ly[i] - my);
    sxx += (lx[i] - mx) ** 2;
    syy += (ly[i] - my) ** 2;
  }
  const exponent = sxy / sxx;
  const r2 = syy === 0 ? 1 : (sxy * sxy) / (sxx * syy);
  return { exponent, coefficient: Math.exp(my - exponent * mx), r2 };
}

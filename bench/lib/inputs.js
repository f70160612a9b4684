/**
 * Inputs for the inference benchmarks: the same values on every run and machine, without a data set.
 */

/** `size` pseudo-random floats in [-1, 1) from a 32-bit linear congruential generator started at `seed`. */
export function pseudoRandomInput(size, seed) {
  const data = new Float32Array(size);
  let state = seed >>> 0;
  for (let i = 0; i < size; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    data[i] = state / 2 ** 31 - 1;
  }
  return data;
}

/**
 * Small seeded pseudo-random number generators for reproducible shuffling, splitting and augmentation.
 *
 * `Math.random` cannot be seeded, so two runs would see different orders. We use two public-domain 32-bit
 * generators that are fast, tiny and good enough for shuffling (not for cryptography):
 *
 * - **mulberry32** (Tommy Ettinger, 2017): a 32-bit state advanced by the Weyl sequence `state += 0x6D2B79F5`, and
 *   an output mixed by two multiply–xorshift rounds. Period 2^32; every seed gives a distinct stream.
 * - **SplitMix32 finaliser** (the 32-bit "fmix" of MurmurHash3): used by `deriveSeed` to turn a tuple such as
 *   (seed, epoch, batch index) into an independent seed, so every epoch and batch has its own stream and the
 *   result does not depend on how many numbers an earlier batch consumed.
 *
 * Same seed → same sequence, on every platform: all arithmetic is 32-bit integer (`Math.imul`, `>>>`).
 */

/** A source of uniform numbers in [0, 1). */
export type RandomSource = () => number;

/** Creates a mulberry32 generator: returns uniform floats in [0, 1) with 32 bits of randomness each. */
export function createMulberry32(seed: number): RandomSource {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let mixed = state;
    mixed = Math.imul(mixed ^ (mixed >>> 15), mixed | 1);
    mixed ^= mixed + Math.imul(mixed ^ (mixed >>> 7), mixed | 61);
    return ((mixed ^ (mixed >>> 14)) >>> 0) / 4294967296;
  };
}

/** MurmurHash3's 32-bit finaliser: a bijective mix in which every input bit affects every output bit. */
function finalizeMix32(value: number): number {
  let mixed = value >>> 0;
  mixed ^= mixed >>> 16;
  mixed = Math.imul(mixed, 0x85ebca6b);
  mixed ^= mixed >>> 13;
  mixed = Math.imul(mixed, 0xc2b2ae35);
  mixed ^= mixed >>> 16;
  return mixed >>> 0;
}

/**
 * Combines integers (a base seed and, for example, an epoch and a batch index) into one 32-bit seed.
 * Order matters: `deriveSeed(1, 2) !== deriveSeed(2, 1)` in general.
 */
export function deriveSeed(...parts: number[]): number {
  let hash = 0x9e3779b9;
  for (const part of parts) {
    // Fold in the low and high 32 bits so seeds above 2^32 are not truncated silently.
    const low = part >>> 0;
    const high = Math.floor(part / 4294967296) >>> 0;
    hash = finalizeMix32(hash ^ finalizeMix32(low + 0x7f4a7c15));
    hash = finalizeMix32(hash ^ finalizeMix32(high + 0x165667b1));
  }
  return hash;
}

/** A uniform integer in [0, exclusiveMaximum). */
export function randomInteger(random: RandomSource, exclusiveMaximum: number): number {
  return Math.floor(random() * exclusiveMaximum);
}

/** Shuffles `values` in place with the Fisher–Yates algorithm and returns it. */
export function shuffleInPlace<T extends { length: number; [index: number]: unknown }>(
  values: T,
  random: RandomSource,
): T {
  for (let index = values.length - 1; index > 0; index--) {
    const other = randomInteger(random, index + 1);
    const held = values[index];
    values[index] = values[other];
    values[other] = held;
  }
  return values;
}

/** The integers 0..count-1 in an order fixed by `seed`. */
export function shuffledIndices(count: number, seed: number): Int32Array {
  const indices = new Int32Array(count);
  for (let index = 0; index < count; index++) indices[index] = index;
  return shuffleInPlace(indices, createMulberry32(seed));
}

/** A standard normal sample by the Box–Muller transform. */
export function normalSample(random: RandomSource): number {
  const u = 1 - random();
  const v = random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

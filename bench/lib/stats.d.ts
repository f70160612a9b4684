// Types of stats.js for the TypeScript tests.
export function median(values: readonly number[]): number;
export function fitPowerLaw(xs: readonly number[], ys: readonly number[]): { exponent: number; coefficient: number; r2: number };

/**
 * Bringing a feature-map-sized map back to input pixels, aligned by receptive fields.
 *
 * Unit u of a layer with effective stride S and unit-0 centre c₀ (../../passes/receptive-field.ts) looks at input
 * position c₀ + u·S. So input position x reads the map at t = (x − c₀)/S, by linear interpolation along each axis,
 * clamped to [0, n − 1]. Where the field is unknown or global (S = 0), the usual half-pixel resize
 * t = (x + ½)·n/L − ½ is used instead. With RF alignment a 1D model whose branches have kernels 3, 4 and 5 (maps of
 * different lengths and centres) puts each branch's heat over the words it read, which a plain resize shifts by
 * up to two positions.
 */
export interface AxisPlacement {
  /** Effective stride S (input samples per unit). */
  readonly stride: number;
  /** Input position of unit 0's centre. */
  readonly center: number;
}

function resampleAxis(data: Float32Array, dims: readonly number[], axis: number, length: number, placement: AxisPlacement | undefined): { data: Float32Array; dims: number[] } {
  const n = dims[axis]!;
  const outer = dims.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const out = new Float32Array(outer * length * inner);
  const aligned = placement !== undefined && placement.stride > 0 && Number.isFinite(placement.stride);
  for (let x = 0; x < length; x++) {
    let t = aligned ? (x - placement.center) / placement.stride : ((x + 0.5) * n) / length - 0.5;
    t = Math.min(n - 1, Math.max(0, t));
    const i0 = Math.floor(t);
    const i1 = Math.min(n - 1, i0 + 1);
    const f = t - i0;
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        out[(o * length + x) * inner + i] = (1 - f) * data[(o * n + i0) * inner + i]! + f * data[(o * n + i1) * inner + i]!;
      }
    }
  }
  const newDims = [...dims];
  newDims[axis] = length;
  return { data: out, dims: newDims };
}

/** Resamples a map over `dims` (spatial only) to `target` sizes, axis by axis. */
export function resampleToInput(data: Float32Array, dims: readonly number[], target: readonly number[], placements?: readonly (AxisPlacement | undefined)[]): Float32Array {
  let current = { data, dims: [...dims] };
  for (let axis = 0; axis < dims.length; axis++) current = resampleAxis(current.data, current.dims, axis, target[axis]!, placements?.[axis]);
  return current.data;
}

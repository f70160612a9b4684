/**
 * Colormaps as 256-entry lookup tables, built once by linear interpolation between anchor colours.
 *
 * - viridis and inferno: matplotlib's perceptually uniform maps (van der Walt & Smith, 2015), sampled at
 *   t = 0, 0.1, …, 1 (their published hex values). Between anchors the map is interpolated in sRGB; with 11
 *   anchors the result stays within a few units of the original and keeps what matters for reading heatmaps:
 *   lightness rises monotonically from 0 to 1, so the brightest pixel is the hottest one, also in greyscale print.
 * - diverging (cool–warm, Moreland 2009 end points): signed values, blue < 0 < red, a light grey at 0.
 * - gray.
 *
 * `colorAt(map, t)` clamps t to [0, 1]; NaN maps to 0.
 */
import type { Rgb } from './raster.js';

export type ColormapName = 'viridis' | 'inferno' | 'diverging' | 'gray';

export interface Colormap {
  readonly name: ColormapName;
  /** 256 × 3 bytes. */
  readonly table: Uint8Array;
}

const ANCHORS: Record<ColormapName, readonly string[]> = {
  viridis: ['440154', '482475', '414487', '355f8d', '2a788e', '21918c', '22a884', '44bf70', '7ad151', 'bddf26', 'fde725'],
  inferno: ['000004', '160b39', '420a68', '6a176e', '932667', 'bc3754', 'dd513a', 'f37819', 'fca50a', 'f6d746', 'fcffa4'],
  diverging: ['3b4cc0', '8db0fe', 'dddddd', 'f49a7b', 'b40426'],
  gray: ['000000', 'ffffff'],
};

function hex(value: string): [number, number, number] {
  return [parseInt(value.slice(0, 2), 16), parseInt(value.slice(2, 4), 16), parseInt(value.slice(4, 6), 16)];
}

function buildTable(anchors: readonly string[]): Uint8Array {
  const colors = anchors.map(hex);
  const table = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) {
    const position = (i / 255) * (colors.length - 1);
    const lower = Math.min(colors.length - 2, Math.floor(position));
    const fraction = position - lower;
    for (let c = 0; c < 3; c++) table[3 * i + c] = Math.round(colors[lower]![c]! * (1 - fraction) + colors[lower + 1]![c]! * fraction);
  }
  return table;
}

const cache = new Map<ColormapName, Colormap>();

export function colormap(name: ColormapName): Colormap {
  let map = cache.get(name);
  if (!map) cache.set(name, (map = { name, table: buildTable(ANCHORS[name]) }));
  return map;
}

export const colormapNames: readonly ColormapName[] = ['viridis', 'inferno', 'diverging', 'gray'];

/** The colour of t ∈ [0, 1]. */
export function colorAt(map: Colormap, t: number): Rgb {
  const i = Number.isFinite(t) ? Math.round(Math.min(1, Math.max(0, t)) * 255) : 0;
  return [map.table[3 * i]!, map.table[3 * i + 1]!, map.table[3 * i + 2]!];
}

/** Relative luminance-like lightness (Rec. 709 weights on sRGB bytes), for tests and legends. */
export function lightness(color: Rgb): number {
  return 0.2126 * color[0] + 0.7152 * color[1] + 0.0722 * color[2];
}

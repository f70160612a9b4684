/**
 * Raster line plots for 1D signals: kernels of conv1d layers, 1D inputs, and 1D heat (Grad-CAM, effective
 * receptive fields). The published visualisation tools stop at 2D images; a 1D model gets curves instead.
 *
 * A plot maps sample i of a length-L series to x = left + i·(plotWidth − 1)/(L − 1) and the value range
 * [lo, hi] to the plot's height (hi at the top). Optional layers, drawn in this order:
 *   - `heat` (one value in [0, 1] per position): the background of each column takes the heat's colour, and a
 *     strip under the plot repeats it at full strength;
 *   - `band` [start, end] (in sample positions): a translucent box, e.g. a theoretical receptive field;
 *   - the series as Bresenham polylines;
 *   - a zero line when 0 lies inside the range, and the range written at the left.
 */
import { colorAt, colormap, type Colormap } from './colormap.js';
import { blendPixel, createRaster, drawLine, drawText, fillRect, strokeRect, textWidth, type Raster, type Rgb } from './raster.js';

export interface Series {
  readonly values: ArrayLike<number>;
  readonly color: Rgb;
}

export interface LinePlotOptions {
  readonly width?: number;
  readonly height?: number;
  /** Value range; default the series' min and max. */
  readonly range?: readonly [number, number];
  /** One value in [0, 1] per position, drawn as the background colour. */
  readonly heat?: ArrayLike<number>;
  readonly heatMap?: Colormap;
  /** A highlighted interval of positions [start, end] (inclusive), clipped to the series. */
  readonly band?: readonly [number, number];
  readonly bandColor?: Rgb;
  /** Text in the top-left corner. */
  readonly label?: string;
  readonly lineWidth?: number;
}

/** Distinct colours for up to eight series (Okabe & Ito's colour-blind-safe palette, then repeats). */
export const SERIES_COLORS: readonly Rgb[] = [
  [86, 180, 233],
  [230, 159, 0],
  [0, 158, 115],
  [240, 228, 66],
  [204, 121, 167],
  [213, 94, 0],
  [0, 114, 178],
  [255, 255, 255],
];

const PLOT_BACKGROUND: Rgb = [24, 24, 30];
const FRAME: Rgb = [110, 110, 120];

function seriesRange(series: readonly Series[]): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const s of series) {
    for (let i = 0; i < s.values.length; i++) {
      const v = s.values[i]!;
      if (!Number.isFinite(v)) continue;
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
  }
  if (!Number.isFinite(lo)) return [0, 1];
  if (hi - lo < 1e-12) return [lo - 0.5, hi + 0.5];
  return [lo, hi];
}

export function linePlot(series: readonly Series[], options: LinePlotOptions = {}): Raster {
  const width = options.width ?? 240;
  const height = options.height ?? 90;
  const heatStrip = options.heat ? 8 : 0;
  const out = createRaster(width, height + heatStrip, PLOT_BACKGROUND);
  const length = Math.max(1, ...series.map((s) => s.values.length), options.heat?.length ?? 0);
  const [lo, hi] = options.range ?? seriesRange(series);
  const left = 2;
  const top = 2;
  const plotWidth = width - 4;
  const plotHeight = height - 4;
  const xOf = (i: number) => left + (length === 1 ? plotWidth / 2 : (i * (plotWidth - 1)) / (length - 1));
  const yOf = (v: number) => top + (plotHeight - 1) * (1 - (Math.min(hi, Math.max(lo, v)) - lo) / (hi - lo || 1));
  // the position a pixel column shows: the nearest sample
  const positionOf = (x: number) => Math.min(length - 1, Math.max(0, Math.round(length === 1 ? 0 : ((x - left) * (length - 1)) / Math.max(1, plotWidth - 1))));

  if (options.heat) {
    const map = options.heatMap ?? colormap('inferno');
    for (let x = 0; x < width; x++) {
      const color = colorAt(map, options.heat[positionOf(x)] ?? 0);
      for (let y = top; y < top + plotHeight; y++) blendPixel(out, x, y, color, 0.55);
      fillRect(out, x, height, 1, heatStrip, color);
    }
  }
  if (options.band) {
    const start = Math.max(0, Math.min(length - 1, options.band[0]));
    const end = Math.max(0, Math.min(length - 1, options.band[1]));
    const half = length > 1 ? (plotWidth - 1) / (length - 1) / 2 : plotWidth / 2;
    const x0 = Math.round(xOf(start) - half);
    const x1 = Math.round(xOf(end) + half);
    fillRect(out, x0, top, x1 - x0 + 1, plotHeight, options.bandColor ?? [0, 200, 255], 0.18);
    strokeRect(out, x0, top, x1 - x0 + 1, plotHeight, options.bandColor ?? [0, 200, 255], 1);
  }
  if (lo < 0 && hi > 0) {
    const y0 = Math.round(yOf(0));
    for (let x = left; x < left + plotWidth; x += 2) blendPixel(out, x, y0, FRAME, 0.8);
  }
  for (const s of series) {
    let previous: [number, number] | undefined;
    for (let i = 0; i < s.values.length; i++) {
      const v = s.values[i]!;
      if (!Number.isFinite(v)) {
        previous = undefined;
        continue;
      }
      const point: [number, number] = [xOf(i), yOf(v)];
      if (previous) drawLine(out, previous[0], previous[1], point[0], point[1], s.color, options.lineWidth ?? 1);
      else fillRect(out, Math.round(point[0]) - 1, Math.round(point[1]) - 1, 2, 2, s.color);
      previous = point;
    }
  }
  strokeRect(out, 0, 0, width, height, FRAME, 1);
  if (options.label) drawText(out, 4, 4, options.label, [230, 230, 230]);
  const rangeText = `${formatNumber(hi)} / ${formatNumber(lo)}`;
  if (width > textWidth(rangeText) + 8 && height >= 60) drawText(out, width - textWidth(rangeText) - 4, height - 9, rangeText, [160, 160, 170]);
  return out;
}

/** A compact number for plot labels: 3 significant digits, exponent form for very small or large values. */
export function formatNumber(value: number): string {
  if (value === 0 || !Number.isFinite(value)) return String(value);
  const magnitude = Math.abs(value);
  if (magnitude >= 1e4 || magnitude < 1e-3) return value.toExponential(1).replace('e', 'E');
  return String(Number(value.toPrecision(3)));
}

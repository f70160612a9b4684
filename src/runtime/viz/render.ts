/**
 * Pictures of tensors, by the number of spatial axes: the one place that decides how a 1D, 2D or 3D sample, a
 * heatmap over it, or both, become pixels.
 *
 *   spatial rank 2 [C, H, W]     C = 3: RGB; C = 1: grey; otherwise the mean over channels, in grey (the caller
 *                                says so). Upscaled by nearest neighbour to about `displaySize` pixels.
 *   spatial rank 1 [C, L]        C ≤ 4: one curve per channel; more channels (word embeddings…): a C × L image
 *                                with the diverging colormap (rows are channels, columns positions).
 *   spatial rank 3 [C, D, H, W]  one 2D picture per depth slice, in a row with captions d0, d1, …
 *
 * Heat (non-negative maps such as Grad-CAM or |gradients|, already at the sample's spatial size) is normalised to
 * [0, 1] by its maximum and drawn with a perceptual colormap (inferno by default); an overlay blends it into the
 * grey version of the sample, so the heat's colour is never confused with the image's own colours.
 */
import { colorAt, colormap, type Colormap } from './colormap.js';
import { linePlot, SERIES_COLORS, type Series } from './plot.js';
import { createRaster, grid, scaleNearest, strokeRect, upscaleFactor, type Raster, type Rgb } from './raster.js';

/** One sample without the batch axis, logical layout: dims [C, S1, …, Sk]. */
export interface Sample {
  readonly data: Float32Array;
  readonly dims: readonly number[];
}

export type ValueRange = readonly [number, number];

/** Min and max of the finite values (a unit range when constant). */
export function rangeOf(values: ArrayLike<number>, symmetric = false): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (!Number.isFinite(lo)) return [0, 1];
  if (symmetric) {
    const m = Math.max(Math.abs(lo), Math.abs(hi)) || 1;
    return [-m, m];
  }
  if (hi - lo < 1e-12) return [lo - 0.5, hi + 0.5];
  return [lo, hi];
}

function unit(value: number, range: ValueRange): number {
  const t = (value - range[0]) / (range[1] - range[0] || 1);
  return Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0));
}

/** Values in [0, 1] by the maximum (or by `scale`; negative values become 0); all-zero heat stays zero. */
export function normaliseHeat(heat: ArrayLike<number>, scale?: number): Float32Array {
  let max = 0;
  for (let i = 0; i < heat.length; i++) if (heat[i]! > max) max = heat[i]!;
  if (scale !== undefined && scale > 0) max = Math.max(scale, 1e-30);
  const out = new Float32Array(heat.length);
  if (max <= 0 || !Number.isFinite(max)) return out;
  for (let i = 0; i < heat.length; i++) out[i] = Math.min(1, Math.max(0, heat[i]!) / max);
  return out;
}

/** A height × width plane (row-major) drawn with a colormap over `range`. */
export function planeRaster(values: ArrayLike<number>, width: number, height: number, map: Colormap, range: ValueRange, offset = 0): Raster {
  const out = createRaster(width, height);
  for (let i = 0; i < width * height; i++) {
    const color = colorAt(map, unit(values[offset + i]!, range));
    out.data[3 * i] = color[0];
    out.data[3 * i + 1] = color[1];
    out.data[3 * i + 2] = color[2];
  }
  return out;
}

/** Three planes (R, G, B) starting at `offset`, each height × width, over `range`. */
export function rgbRaster(values: ArrayLike<number>, width: number, height: number, range: ValueRange, offset = 0, planeStride = width * height): Raster {
  const out = createRaster(width, height);
  for (let i = 0; i < width * height; i++) {
    for (let c = 0; c < 3; c++) out.data[3 * i + c] = Math.round(255 * unit(values[offset + c * planeStride + i]!, range));
  }
  return out;
}

/**
 * One 2D picture of channels [C, H, W] at `offset` in `data` (planes `planeStride` apart): RGB for 3 channels,
 * grey for 1, the channel mean otherwise.
 */
function imageOfChannels(data: Float32Array, channels: number, height: number, width: number, range: ValueRange, offset: number, planeStride: number): Raster {
  if (channels === 3) return rgbRaster(data, width, height, range, offset, planeStride);
  if (channels === 1) return planeRaster(data, width, height, colormap('gray'), range, offset);
  const mean = new Float32Array(width * height);
  for (let c = 0; c < channels; c++) for (let i = 0; i < width * height; i++) mean[i]! += data[offset + c * planeStride + i]! / channels;
  return planeRaster(mean, width, height, colormap('gray'), range);
}

export interface RenderOptions {
  /** Value range of the sample; default its min and max. */
  readonly range?: ValueRange;
  /** Upscale 2D pictures (and slices) to at least this many pixels on their shorter side. Default 112. */
  readonly displaySize?: number;
  /** Width of 1D plots. Default 320. */
  readonly plotWidth?: number;
}

/** How a sample's channels are shown, for notes ("mean of 64 channels"). */
export function channelNote(dims: readonly number[]): string | undefined {
  const channels = dims[0]!;
  if (dims.length === 3 || dims.length === 4) return channels === 1 || channels === 3 ? undefined : `pictures show the mean of ${channels} channels`;
  if (dims.length === 2 && channels > 4) return `rows are the ${channels} channels, columns the positions`;
  return undefined;
}

/** The sample as a picture (see the module header). */
export function renderSample(sample: Sample, options: RenderOptions = {}): Raster {
  const dims = sample.dims;
  const range = options.range ?? rangeOf(sample.data);
  const display = options.displaySize ?? 112;
  if (dims.length === 3) {
    const [channels, height, width] = dims as [number, number, number];
    const image = imageOfChannels(sample.data, channels, height, width, range, 0, height * width);
    return scaleNearest(image, upscaleFactor(Math.min(height, width), display));
  }
  if (dims.length === 2) {
    const [channels, length] = dims as [number, number];
    if (channels <= 4) {
      const series: Series[] = [];
      for (let c = 0; c < channels; c++) series.push({ values: sample.data.subarray(c * length, (c + 1) * length), color: SERIES_COLORS[c % SERIES_COLORS.length]! });
      return linePlot(series, { width: options.plotWidth ?? 320, height: 96, range: options.range ? [range[0], range[1]] : undefined, label: channels > 1 ? `${channels} channels` : undefined });
    }
    const image = planeRaster(sample.data, length, channels, colormap('diverging'), rangeOf(sample.data, true));
    return scaleNearest(image, upscaleFactor(length, options.plotWidth ?? 320, 16), upscaleFactor(channels, 96, 8));
  }
  if (dims.length === 4) {
    const [channels, depth, height, width] = dims as [number, number, number, number];
    const slices: Raster[] = [];
    const factor = upscaleFactor(Math.min(height, width), Math.min(display, 64));
    for (let d = 0; d < depth; d++) {
      slices.push(scaleNearest(imageOfChannels(sample.data, channels, height, width, range, d * height * width, depth * height * width), factor));
    }
    return grid(slices, { columns: Math.min(depth, 8), captions: slices.map((_, d) => `d${d}`) });
  }
  throw new Error(`internal: cannot draw a sample of rank ${dims.length}`);
}

/**
 * Heat over the spatial grid `spatial` (values ≥ 0; normalised by their maximum): a colormap picture (2D), a
 * curve with a heat background (1D), or slices (3D).
 */
export function renderHeat(heat: ArrayLike<number>, spatial: readonly number[], options: RenderOptions & { map?: Colormap; max?: number } = {}): Raster {
  const map = options.map ?? colormap('inferno');
  const t = normaliseHeat(heat, options.max);
  const display = options.displaySize ?? 112;
  if (spatial.length === 2) {
    const [height, width] = spatial as [number, number];
    return scaleNearest(planeRaster(t, width, height, map, [0, 1]), upscaleFactor(Math.min(height, width), display));
  }
  if (spatial.length === 1) {
    return linePlot([{ values: t, color: [255, 255, 255] }], { width: options.plotWidth ?? 320, height: 72, range: [0, 1], heat: t, heatMap: map });
  }
  if (spatial.length === 3) {
    const slices = heatSlices(t, spatial, map, display);
    return grid(slices, { columns: Math.min(spatial[0]!, 8), captions: slices.map((_, d) => `d${d}`) });
  }
  throw new Error(`internal: cannot draw heat over ${spatial.length} spatial axes`);
}

/** Upscale factor of 3D slices (smaller than 2D pictures: there are many of them). */
export function sliceFactor(height: number, width: number, displaySize = 112): number {
  return upscaleFactor(Math.min(height, width), Math.min(displaySize, 64));
}

/** One picture per depth slice of heat already in [0, 1] over [D, H, W], on one common scale. */
export function heatSlices(t: Float32Array, spatial: readonly number[], map: Colormap = colormap('inferno'), displaySize = 112): Raster[] {
  const [depth, height, width] = spatial as [number, number, number];
  const factor = sliceFactor(height, width, displaySize);
  const slices: Raster[] = [];
  for (let d = 0; d < depth; d++) slices.push(scaleNearest(planeRaster(t, width, height, map, [0, 1], d * height * width), factor));
  return slices;
}

/** Grey picture of a [C, H, W] block at `offset`, as 0–255 luminance per pixel. */
function greyOf(data: Float32Array, channels: number, height: number, width: number, range: ValueRange, offset: number, planeStride: number): Float32Array {
  const grey = new Float32Array(height * width);
  for (let i = 0; i < height * width; i++) {
    let v = 0;
    if (channels === 3) {
      v = 0.299 * unit(data[offset + i]!, range) + 0.587 * unit(data[offset + planeStride + i]!, range) + 0.114 * unit(data[offset + 2 * planeStride + i]!, range);
    } else {
      for (let c = 0; c < channels; c++) v += unit(data[offset + c * planeStride + i]!, range) / channels;
    }
    grey[i] = 255 * v;
  }
  return grey;
}

function blendPlane(grey: Float32Array, heat: Float32Array, width: number, height: number, map: Colormap, alpha: number, heatOffset = 0): Raster {
  const out = createRaster(width, height);
  for (let i = 0; i < width * height; i++) {
    const color = colorAt(map, heat[heatOffset + i]!);
    for (let c = 0; c < 3; c++) out.data[3 * i + c] = Math.round((1 - alpha) * grey[i]! + alpha * color[c]!);
  }
  return out;
}

/** The sample in grey with its heat blended in (2D, 3D slices), or its curves over a heat background (1D). */
export function renderOverlay(sample: Sample, heat: ArrayLike<number>, options: RenderOptions & { map?: Colormap; alpha?: number } = {}): Raster {
  const map = options.map ?? colormap('inferno');
  const alpha = options.alpha ?? 0.5;
  const t = normaliseHeat(heat);
  const dims = sample.dims;
  const range = options.range ?? rangeOf(sample.data);
  const display = options.displaySize ?? 112;
  if (dims.length === 3) {
    const [channels, height, width] = dims as [number, number, number];
    const grey = greyOf(sample.data, channels, height, width, range, 0, height * width);
    return scaleNearest(blendPlane(grey, t, width, height, map, alpha), upscaleFactor(Math.min(height, width), display));
  }
  if (dims.length === 2) {
    const [channels, length] = dims as [number, number];
    const series: Series[] = [];
    if (channels <= 4) {
      for (let c = 0; c < channels; c++) series.push({ values: sample.data.subarray(c * length, (c + 1) * length), color: channels === 1 ? [255, 255, 255] : SERIES_COLORS[c % SERIES_COLORS.length]! });
    } else {
      // many channels (embeddings): the per-position norm stands for the signal
      const norm = new Float32Array(length);
      for (let c = 0; c < channels; c++) for (let i = 0; i < length; i++) norm[i]! += sample.data[c * length + i]! ** 2;
      for (let i = 0; i < length; i++) norm[i] = Math.sqrt(norm[i]!);
      series.push({ values: norm, color: [255, 255, 255] });
    }
    return linePlot(series, { width: options.plotWidth ?? 320, height: 96, heat: t, heatMap: map, label: channels > 4 ? `L2 norm over ${channels} channels` : undefined });
  }
  if (dims.length === 4) {
    const [channels, depth, height, width] = dims as [number, number, number, number];
    const factor = upscaleFactor(Math.min(height, width), Math.min(display, 64));
    const slices: Raster[] = [];
    for (let d = 0; d < depth; d++) {
      const grey = greyOf(sample.data, channels, height, width, range, d * height * width, depth * height * width);
      slices.push(scaleNearest(blendPlane(grey, t, width, height, map, alpha, d * height * width), factor));
    }
    return grid(slices, { columns: Math.min(depth, 8), captions: slices.map((_, d) => `d${d}`) });
  }
  throw new Error(`internal: cannot draw a sample of rank ${dims.length}`);
}

/** Draws a box given in sample pixels [y0, y1] × [x0, x1] (inclusive) on a picture upscaled by `factor`. */
export function drawBox(raster: Raster, box: { y: readonly [number, number]; x: readonly [number, number] }, factor: number, color: Rgb, dashed = false): void {
  const x = box.x[0] * factor;
  const y = box.y[0] * factor;
  const width = (box.x[1] - box.x[0] + 1) * factor;
  const height = (box.y[1] - box.y[0] + 1) * factor;
  strokeRect(raster, x, y, width, height, color, Math.max(1, Math.round(factor / 4)), dashed);
}

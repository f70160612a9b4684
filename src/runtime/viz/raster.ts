/**
 * Small 8-bit RGB rasters: what every visualisation draws into before it becomes a PNG (pngjs).
 *
 * Pixels are row-major RGB bytes. Drawing is integer-only (Bresenham lines, filled and stroked rectangles, a 3×5
 * bitmap font scaled by an integer factor), so the same calls give the same bytes on every machine, and the PNG
 * encoder (zlib at a fixed level) gives the same file for the same raster.
 *
 * Upscaling is nearest-neighbour only: a 3×3 kernel shown 8× larger stays nine honest squares instead of a blur.
 */
import { PNG } from 'pngjs';

export type Rgb = readonly [number, number, number];

export interface Raster {
  readonly width: number;
  readonly height: number;
  /** width × height × 3 bytes, row-major RGB. */
  readonly data: Uint8Array;
}

export const WHITE: Rgb = [255, 255, 255];
export const BLACK: Rgb = [0, 0, 0];
/** Background of grids and plots: dark enough for grey tiles to stand out, light enough to see dark ones. */
export const GAP: Rgb = [48, 48, 56];

export function createRaster(width: number, height: number, fill: Rgb = BLACK): Raster {
  const w = Math.max(1, Math.round(width));
  const h = Math.max(1, Math.round(height));
  const data = new Uint8Array(w * h * 3);
  for (let i = 0; i < w * h; i++) {
    data[3 * i] = fill[0];
    data[3 * i + 1] = fill[1];
    data[3 * i + 2] = fill[2];
  }
  return { width: w, height: h, data };
}

export function setPixel(raster: Raster, x: number, y: number, color: Rgb): void {
  if (x < 0 || y < 0 || x >= raster.width || y >= raster.height) return;
  const at = 3 * (y * raster.width + x);
  raster.data[at] = color[0];
  raster.data[at + 1] = color[1];
  raster.data[at + 2] = color[2];
}

export function getPixel(raster: Raster, x: number, y: number): Rgb {
  const at = 3 * (y * raster.width + x);
  return [raster.data[at]!, raster.data[at + 1]!, raster.data[at + 2]!];
}

/** Mixes `color` into the pixel: out = (1 − alpha)·pixel + alpha·color. */
export function blendPixel(raster: Raster, x: number, y: number, color: Rgb, alpha: number): void {
  if (x < 0 || y < 0 || x >= raster.width || y >= raster.height) return;
  const at = 3 * (y * raster.width + x);
  for (let c = 0; c < 3; c++) raster.data[at + c] = Math.round((1 - alpha) * raster.data[at + c]! + alpha * color[c]!);
}

export function fillRect(raster: Raster, x: number, y: number, width: number, height: number, color: Rgb, alpha = 1): void {
  const x0 = Math.max(0, Math.round(x));
  const y0 = Math.max(0, Math.round(y));
  const x1 = Math.min(raster.width, Math.round(x + width));
  const y1 = Math.min(raster.height, Math.round(y + height));
  for (let yy = y0; yy < y1; yy++) {
    for (let xx = x0; xx < x1; xx++) {
      if (alpha >= 1) setPixel(raster, xx, yy, color);
      else blendPixel(raster, xx, yy, color, alpha);
    }
  }
}

/** A rectangle outline whose outer edge is (x, y, width, height), `thickness` pixels wide. */
export function strokeRect(raster: Raster, x: number, y: number, width: number, height: number, color: Rgb, thickness = 1, dashed = false): void {
  const t = Math.max(1, thickness);
  const dash = (i: number) => !dashed || Math.floor(i / (3 * t)) % 2 === 0;
  for (let i = 0; i < width; i++) {
    if (!dash(i)) continue;
    fillRect(raster, x + i, y, 1, t, color);
    fillRect(raster, x + i, y + height - t, 1, t, color);
  }
  for (let i = 0; i < height; i++) {
    if (!dash(i)) continue;
    fillRect(raster, x, y + i, t, 1, color);
    fillRect(raster, x + width - t, y + i, t, 1, color);
  }
}

/** Bresenham's line from (x0, y0) to (x1, y1), `thickness` pixels wide (a square brush). */
export function drawLine(raster: Raster, x0: number, y0: number, x1: number, y1: number, color: Rgb, thickness = 1): void {
  let x = Math.round(x0);
  let y = Math.round(y0);
  const xe = Math.round(x1);
  const ye = Math.round(y1);
  const dx = Math.abs(xe - x);
  const dy = -Math.abs(ye - y);
  const sx = x < xe ? 1 : -1;
  const sy = y < ye ? 1 : -1;
  let error = dx + dy;
  const half = Math.floor((thickness - 1) / 2);
  for (;;) {
    if (thickness <= 1) setPixel(raster, x, y, color);
    else fillRect(raster, x - half, y - half, thickness, thickness, color);
    if (x === xe && y === ye) break;
    const e2 = 2 * error;
    if (e2 >= dy) {
      error += dy;
      x += sx;
    }
    if (e2 <= dx) {
      error += dx;
      y += sy;
    }
  }
}

/** Copies `source` into `target` with its top-left corner at (x, y), clipped to the target. */
export function blit(target: Raster, source: Raster, x: number, y: number): void {
  for (let sy = 0; sy < source.height; sy++) {
    const ty = y + sy;
    if (ty < 0 || ty >= target.height) continue;
    for (let sx = 0; sx < source.width; sx++) {
      const tx = x + sx;
      if (tx < 0 || tx >= target.width) continue;
      const from = 3 * (sy * source.width + sx);
      const to = 3 * (ty * target.width + tx);
      target.data[to] = source.data[from]!;
      target.data[to + 1] = source.data[from + 1]!;
      target.data[to + 2] = source.data[from + 2]!;
    }
  }
}

/** Nearest-neighbour upscaling by integer factors. */
export function scaleNearest(source: Raster, factorX: number, factorY = factorX): Raster {
  const fx = Math.max(1, Math.round(factorX));
  const fy = Math.max(1, Math.round(factorY));
  if (fx === 1 && fy === 1) return source;
  const out = createRaster(source.width * fx, source.height * fy);
  for (let y = 0; y < out.height; y++) {
    const sy = Math.floor(y / fy);
    for (let x = 0; x < out.width; x++) {
      const from = 3 * (sy * source.width + Math.floor(x / fx));
      const to = 3 * (y * out.width + x);
      out.data[to] = source.data[from]!;
      out.data[to + 1] = source.data[from + 1]!;
      out.data[to + 2] = source.data[from + 2]!;
    }
  }
  return out;
}

/** The integer factor that makes `size` pixels at least `target` pixels (at most `limit`×). */
export function upscaleFactor(size: number, target: number, limit = 32): number {
  return Math.max(1, Math.min(limit, Math.ceil(target / Math.max(1, size))));
}

/** PNG bytes (8-bit RGB, no alpha). */
export function encodePng(raster: Raster): Buffer {
  const png = new PNG({ width: raster.width, height: raster.height });
  for (let i = 0; i < raster.width * raster.height; i++) {
    png.data[4 * i] = raster.data[3 * i]!;
    png.data[4 * i + 1] = raster.data[3 * i + 1]!;
    png.data[4 * i + 2] = raster.data[3 * i + 2]!;
    png.data[4 * i + 3] = 255;
  }
  return PNG.sync.write(png, { colorType: 2, deflateLevel: 9 });
}

/** Decodes PNG bytes into a raster (alpha dropped); for tests and for re-reading our own output. */
export function decodePngRaster(bytes: Uint8Array): Raster {
  const png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  const raster = createRaster(png.width, png.height);
  for (let i = 0; i < png.width * png.height; i++) {
    raster.data[3 * i] = png.data[4 * i]!;
    raster.data[3 * i + 1] = png.data[4 * i + 1]!;
    raster.data[3 * i + 2] = png.data[4 * i + 2]!;
  }
  return raster;
}

// ---------------------------------------------------------------------------------------------------------------
// Text: a 3×5 bitmap font (digits, capitals, a little punctuation); lower case is drawn as capitals.
// ---------------------------------------------------------------------------------------------------------------

const GLYPHS: Readonly<Record<string, string>> = {
  '0': '111101101101111', '1': '010110010010111', '2': '111001111100111', '3': '111001011001111',
  '4': '101101111001001', '5': '111100111001111', '6': '111100111101111', '7': '111001010010010',
  '8': '111101111101111', '9': '111101111001111',
  A: '010101111101101', B: '110101110101110', C: '011100100100011', D: '110101101101110', E: '111100110100111',
  F: '111100110100100', G: '011100101101011', H: '101101111101101', I: '111010010010111', J: '001001001101010',
  K: '101101110101101', L: '100100100100111', M: '101111111101101', N: '110101101101101', O: '010101101101010',
  P: '110101110100100', Q: '010101101110011', R: '110101110101101', S: '011100010001110', T: '111010010010010',
  U: '101101101101111', V: '101101101101010', W: '101101111111101', X: '101101010101101', Y: '101101010010010',
  Z: '111001010100111',
  ' ': '000000000000000', '.': '000000000000010', ',': '000000000010100', '-': '000000111000000',
  '+': '000010111010000', ':': '000010000010000', '/': '001001010100100', '=': '000111000111000',
  '(': '010100100100010', ')': '010001001001010', '%': '101001010100101', '×': '000101010101000',
  _: '000000000000111', '#': '101111101111101', '[': '110100100100110', ']': '011001001001011',
  '?': '111001010000010', '!': '010010010000010', '<': '001010100010001', '>': '100010001010100',
  "'": '010010000000000', '*': '000101010101000', '^': '010101000000000', '|': '010010010010010',
};

/** Width in pixels of `text` drawn at `scale` (glyphs are 3 wide with 1 column of spacing). */
export function textWidth(text: string, scale = 1): number {
  return text.length === 0 ? 0 : (4 * text.length - 1) * scale;
}

export const TEXT_HEIGHT = 5;

/** Draws `text` with its top-left corner at (x, y). */
export function drawText(raster: Raster, x: number, y: number, text: string, color: Rgb = WHITE, scale = 1): void {
  let cursor = x;
  for (const raw of text) {
    const glyph = GLYPHS[raw] ?? GLYPHS[raw.toUpperCase()] ?? GLYPHS['?']!;
    for (let row = 0; row < 5; row++) {
      for (let col = 0; col < 3; col++) {
        if (glyph[row * 3 + col] === '1') fillRect(raster, cursor + col * scale, y + row * scale, scale, scale, color);
      }
    }
    cursor += 4 * scale;
  }
}

/** `text` cut to at most `maxWidth` pixels at `scale`, with '..' marking the cut. */
export function fitText(text: string, maxWidth: number, scale = 1): string {
  if (textWidth(text, scale) <= maxWidth) return text;
  const chars = Math.max(0, Math.floor((maxWidth / scale + 1) / 4) - 2);
  return `${text.slice(0, chars)}..`;
}

// ---------------------------------------------------------------------------------------------------------------
// Layout
// ---------------------------------------------------------------------------------------------------------------

export interface GridOptions {
  /** Tiles per row. */
  readonly columns: number;
  /** Pixels between tiles and around the grid. */
  readonly gap?: number;
  readonly background?: Rgb;
  /** A caption under each tile (drawn in the gap below it, which grows to fit). */
  readonly captions?: readonly string[];
  readonly captionScale?: number;
}

/** Tiles laid out row by row; every cell is as large as the largest tile. */
export function grid(tiles: readonly Raster[], options: GridOptions): Raster {
  const gap = options.gap ?? 2;
  const columns = Math.max(1, Math.min(options.columns, tiles.length));
  const rows = Math.max(1, Math.ceil(tiles.length / columns));
  const cellWidth = Math.max(1, ...tiles.map((t) => t.width));
  const cellHeight = Math.max(1, ...tiles.map((t) => t.height));
  const captionScale = options.captionScale ?? 1;
  const captionHeight = options.captions ? TEXT_HEIGHT * captionScale + 2 : 0;
  const out = createRaster(columns * (cellWidth + gap) + gap, rows * (cellHeight + gap + captionHeight) + gap, options.background ?? GAP);
  tiles.forEach((tile, index) => {
    const x = gap + (index % columns) * (cellWidth + gap);
    const y = gap + Math.floor(index / columns) * (cellHeight + gap + captionHeight);
    blit(out, tile, x, y);
    const caption = options.captions?.[index];
    if (caption) drawText(out, x, y + cellHeight + 1, fitText(caption, cellWidth + gap - 1, captionScale), [220, 220, 220], captionScale);
  });
  return out;
}

/** `raster` with a title line above it. */
export function titled(raster: Raster, title: string, scale = 2, background: Rgb = GAP): Raster {
  const pad = 3;
  const width = Math.max(raster.width, textWidth(title, scale) + 2 * pad);
  const head = TEXT_HEIGHT * scale + 2 * pad;
  const out = createRaster(width, raster.height + head, background);
  drawText(out, pad, pad, title, WHITE, scale);
  blit(out, raster, 0, head);
  return out;
}

/** Rasters side by side (row) with `gap` pixels between them, top-aligned. */
export function besideEachOther(rasters: readonly Raster[], gap = 4, background: Rgb = GAP): Raster {
  const width = rasters.reduce((sum, r) => sum + r.width, 0) + gap * Math.max(0, rasters.length - 1);
  const height = Math.max(1, ...rasters.map((r) => r.height));
  const out = createRaster(width, height, background);
  let x = 0;
  for (const r of rasters) {
    blit(out, r, x, 0);
    x += r.width + gap;
  }
  return out;
}

/** Rasters stacked vertically, left-aligned. */
export function stacked(rasters: readonly Raster[], gap = 4, background: Rgb = GAP): Raster {
  const width = Math.max(1, ...rasters.map((r) => r.width));
  const height = rasters.reduce((sum, r) => sum + r.height, 0) + gap * Math.max(0, rasters.length - 1);
  const out = createRaster(width, height, background);
  let y = 0;
  for (const r of rasters) {
    blit(out, r, 0, y);
    y += r.height + gap;
  }
  return out;
}

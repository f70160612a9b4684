/**
 * Bar and line charts as PNG files, drawn pixel by pixel with pngjs (no canvas, no fonts to install).
 *
 *   renderBarChart({ title, unit, categories: [...], series: [{ name, values: [...] }], log?, width?, height? })
 *   renderLineChart({ title, xLabel, yLabel, series: [{ name, points: [[x, y], …] }], logX?, logY?, … })
 * each return a PNG Buffer; `writeChart(file, spec)` picks by `spec.type` ('bar' or 'line') and writes it.
 * Missing values (null) leave a gap labelled "n/a". Text uses the classic 5×7 bitmap font, ASCII only:
 * `asciiOnly` maps ×, ≤, µ … to ASCII first.
 *
 * Axis ticks: linear axes use 1-2-5 steps covering [0, max]; log axes put a tick on every power of ten and
 * scale bars from the smallest power of ten at or below the smallest value.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PNG } from 'pngjs';

// 5×7 font (Adafruit GFX "glcdfont"), ASCII 0x20–0x7E: five column bytes per glyph, bit 0 at the top.
const FONT_HEX =
  '0000000000' + '00005f0000' + '0007000700' + '147f147f14' + '242a7f2a12' + '2313086462' + '3649562050' + '0008070300' +
  '001c224100' + '0041221c00' + '2a1c7f1c2a' + '08083e0808' + '0080703000' + '0808080808' + '0000606000' + '2010080402' +
  '3e5149453e' + '00427f4000' + '7249494946' + '2141494d33' + '1814127f10' + '2745454539' + '3c4a494931' + '4121110907' +
  '3649494936' + '464949291e' + '0000140000' + '0040340000' + '0008142241' + '1414141414' + '0041221408' + '0201590906' +
  '3e415d594e' + '7c1211127c' + '7f49494936' + '3e41414122' + '7f4141413e' + '7f49494941' + '7f09090901' + '3e41415173' +
  '7f0808087f' + '00417f4100' + '2040413f01' + '7f08142241' + '7f40404040' + '7f021c027f' + '7f0408107f' + '3e4141413e' +
  '7f09090906' + '3e4151215e' + '7f09192946' + '2649494932' + '03017f0103' + '3f4040403f' + '1f2040201f' + '3f4038403f' +
  '6314081463' + '0304780403' + '6159494d43' + '007f414141' + '0204081020' + '004141417f' + '0402010204' + '4040404040' +
  '0003070800' + '2054547840' + '7f28444438' + '3844444428' + '384444287f' + '3854545418' + '00087e0902' + '18a4a49c78' +
  '7f08040478' + '00447d4000' + '2040403d00' + '7f10284400' + '00417f4000' + '7c04780478' + '7c08040478' + '3844444438' +
  'fc18242418' + '18242418fc' + '7c08040408' + '4854545424' + '04043f4424' + '3c4040207c' + '1c2040201c' + '3c4030403c' +
  '4428102844' + '4c9090907c' + '4464544c44' + '0008364100' + '0000770000' + '0041360800' + '0201020402';

const GLYPH_WIDTH = 6; // 5 columns and one of spacing
const GLYPH_HEIGHT = 8;

/** Replaces the non-ASCII characters benchmarks use with ASCII the bitmap font has. */
export function asciiOnly(text) {
  return String(text)
    .replace(/×/g, 'x')
    .replace(/≤/g, '<=')
    .replace(/≥/g, '>=')
    .replace(/µ/g, 'u')
    .replace(/[–—]/g, '-')
    .replace(/[’‘]/g, "'")
    .replace(/[“”]/g, '"')
    .replace(/`/g, '')
    .replace(/[^\x20-\x7e]/g, '?');
}

const PALETTE = [
  [31, 119, 180], // convspec: blue
  [255, 127, 14], // peer: orange
  [44, 160, 44],
  [214, 39, 40],
  [148, 103, 189],
  [140, 86, 75],
];

class Canvas {
  constructor(width, height) {
    this.png = new PNG({ width, height });
    this.width = width;
    this.height = height;
    this.png.data.fill(255);
  }

  pixel(x, y, [r, g, b]) {
    x = Math.round(x);
    y = Math.round(y);
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const i = (y * this.width + x) * 4;
    this.png.data[i] = r;
    this.png.data[i + 1] = g;
    this.png.data[i + 2] = b;
    this.png.data[i + 3] = 255;
  }

  rect(x0, y0, x1, y1, color) {
    const [ax, bx] = [Math.round(Math.min(x0, x1)), Math.round(Math.max(x0, x1))];
    const [ay, by] = [Math.round(Math.min(y0, y1)), Math.round(Math.max(y0, y1))];
    for (let y = ay; y <= by; y++) for (let x = ax; x <= bx; x++) this.pixel(x, y, color);
  }

  /** A line `thickness` pixels wide (Bresenham, thickened with a square brush). */
  line(x0, y0, x1, y1, color, thickness = 1) {
    x0 = Math.round(x0);
    y0 = Math.round(y0);
    x1 = Math.round(x1);
    y1 = Math.round(y1);
    const dx = Math.abs(x1 - x0);
    const dy = -Math.abs(y1 - y0);
    const sx = x0 < x1 ? 1 : -1;
    const sy = y0 < y1 ? 1 : -1;
    let err = dx + dy;
    const half = Math.floor((thickness - 1) / 2);
    for (;;) {
      this.rect(x0 - half, y0 - half, x0 - half + thickness - 1, y0 - half + thickness - 1, color);
      if (x0 === x1 && y0 === y1) break;
      const e2 = 2 * err;
      if (e2 >= dy) {
        err += dy;
        x0 += sx;
      }
      if (e2 <= dx) {
        err += dx;
        y0 += sy;
      }
    }
  }

  dashedHorizontal(x0, x1, y, color) {
    for (let x = Math.round(x0); x <= x1; x++) if (Math.floor(x / 4) % 2 === 0) this.pixel(x, y, color);
  }

  disc(cx, cy, radius, color) {
    for (let y = -radius; y <= radius; y++) for (let x = -radius; x <= radius; x++) if (x * x + y * y <= radius * radius + 1) this.pixel(cx + x, cy + y, color);
  }

  /** Text with its top-left corner at (x, y); `scale` 1 or 2; `align` left, center or right. */
  text(x, y, text, { color = [0, 0, 0], scale = 1, align = 'left' } = {}) {
    const s = asciiOnly(text);
    const width = textWidth(s, scale);
    let left = align === 'center' ? x - width / 2 : align === 'right' ? x - width : x;
    left = Math.round(left);
    for (let c = 0; c < s.length; c++) {
      const code = s.charCodeAt(c) - 0x20;
      for (let col = 0; col < 5; col++) {
        const bits = parseInt(FONT_HEX.substr((code * 5 + col) * 2, 2), 16);
        for (let row = 0; row < GLYPH_HEIGHT; row++) {
          if (bits & (1 << row)) this.rect(left + (c * GLYPH_WIDTH + col) * scale, y + row * scale, left + (c * GLYPH_WIDTH + col) * scale + scale - 1, y + row * scale + scale - 1, color);
        }
      }
    }
  }

  /** Text rotated 90° counter-clockwise, centred vertically on `cy`, its left column at x. */
  verticalText(x, cy, text, { color = [0, 0, 0] } = {}) {
    const s = asciiOnly(text);
    const top = Math.round(cy + textWidth(s, 1) / 2);
    for (let c = 0; c < s.length; c++) {
      const code = s.charCodeAt(c) - 0x20;
      for (let col = 0; col < 5; col++) {
        const bits = parseInt(FONT_HEX.substr((code * 5 + col) * 2, 2), 16);
        for (let row = 0; row < GLYPH_HEIGHT; row++) if (bits & (1 << row)) this.pixel(x + row, top - (c * GLYPH_WIDTH + col), color);
      }
    }
  }

  encode() {
    return PNG.sync.write(this.png);
  }
}

function textWidth(text, scale = 1) {
  return asciiOnly(text).length * GLYPH_WIDTH * scale - scale;
}

/** Short tick label: 1-2-5 numbers, with k/M suffixes for big ones. */
export function tickLabel(value) {
  if (value === 0) return '0';
  const abs = Math.abs(value);
  if (abs >= 1e6) return `${+(value / 1e6).toPrecision(3)}M`;
  if (abs >= 1e4 || (abs >= 1e3 && Number.isInteger(value / 100))) return `${+(value / 1e3).toPrecision(3)}k`;
  if (abs < 0.01) return value.toExponential(0);
  return String(+value.toPrecision(3));
}

/** Linear ticks 0 … ≥ max with a 1-2-5 step, about `count` of them. */
export function linearTicks(max, count = 5) {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? 10 * power;
  const ticks = [];
  for (let v = 0; v < max + step * 0.999; v += step) ticks.push(+v.toPrecision(12));
  return ticks;
}

/** Powers of ten covering [min, max]. */
export function logTicks(min, max) {
  const lo = Math.floor(Math.log10(min));
  const hi = Math.ceil(Math.log10(max));
  const ticks = [];
  for (let p = lo; p <= Math.max(hi, lo + 1); p++) ticks.push(10 ** p);
  return ticks;
}

function axisScale(values, log) {
  const finite = values.filter((v) => Number.isFinite(v) && (!log || v > 0));
  if (log && finite.length) {
    const ticks = logTicks(Math.min(...finite), Math.max(...finite));
    const lo = Math.log10(ticks[0]);
    const hi = Math.log10(ticks.at(-1));
    return { ticks, fraction: (v) => (Math.log10(v) - lo) / (hi - lo) };
  }
  const ticks = linearTicks(finite.length ? Math.max(...finite) : 1);
  const hi = ticks.at(-1) || 1;
  return { ticks, fraction: (v) => v / hi };
}

function drawFrame(canvas, { title, left, top, right, bottom }) {
  canvas.text(canvas.width / 2, 10, title ?? '', { scale: 2, align: 'center' });
  canvas.line(left, top, left, bottom, [0, 0, 0]);
  canvas.line(left, bottom, right, bottom, [0, 0, 0]);
}

function drawLegend(canvas, names, x, y) {
  let cx = x;
  names.forEach((name, i) => {
    canvas.rect(cx, y, cx + 9, y + 7, PALETTE[i % PALETTE.length]);
    canvas.text(cx + 14, y, name);
    cx += 14 + textWidth(name) + 18;
  });
}

/** Grouped bars: one group per category, one bar per series. */
export function renderBarChart(spec) {
  const { categories, series, unit = '', log = false } = spec;
  const width = spec.width ?? Math.max(640, 120 + categories.length * (series.length * 28 + 40));
  const height = spec.height ?? 420;
  const canvas = new Canvas(width, height);
  const frame = { title: spec.title, left: 80, top: 56, right: width - 20, bottom: height - 70 };
  drawFrame(canvas, frame);
  drawLegend(canvas, series.map((s) => s.name), frame.left, 34);
  const scale = axisScale(series.flatMap((s) => s.values), log);
  const plotHeight = frame.bottom - frame.top;
  for (const tick of scale.ticks) {
    const y = frame.bottom - scale.fraction(tick) * plotHeight;
    canvas.dashedHorizontal(frame.left + 1, frame.right, Math.round(y), [210, 210, 210]);
    canvas.text(frame.left - 6, Math.round(y) - 3, tickLabel(tick), { align: 'right' });
  }
  canvas.verticalText(8, (frame.top + frame.bottom) / 2, `${unit}${log ? ' (log scale)' : ''}`);
  const slot = (frame.right - frame.left) / categories.length;
  const barWidth = Math.max(6, Math.min(40, (slot - 24) / series.length));
  categories.forEach((category, c) => {
    const groupLeft = frame.left + c * slot + (slot - barWidth * series.length) / 2;
    series.forEach((s, k) => {
      const value = s.values[c];
      const x0 = groupLeft + k * barWidth;
      if (!Number.isFinite(value) || (log && value <= 0)) {
        canvas.text(x0 + barWidth / 2, frame.bottom - 12, 'n/a', { align: 'center', color: [120, 120, 120] });
        return;
      }
      const y = frame.bottom - Math.max(0, scale.fraction(value)) * plotHeight;
      canvas.rect(x0 + 1, y, x0 + barWidth - 2, frame.bottom - 1, PALETTE[k % PALETTE.length]);
      canvas.text(x0 + barWidth / 2, Math.round(y) - 10, tickLabel(value), { align: 'center' });
    });
    const label = asciiOnly(category);
    const maxChars = Math.max(4, Math.floor(slot / GLYPH_WIDTH) - 1);
    const lines = wrap(label, maxChars).slice(0, 3);
    lines.forEach((line, i) => canvas.text(frame.left + c * slot + slot / 2, frame.bottom + 8 + i * 11, line, { align: 'center' }));
  });
  return canvas.encode();
}

function wrap(text, maxChars) {
  const words = text.split(/\s+/);
  const lines = [];
  let current = '';
  for (const word of words) {
    if (!current) current = word;
    else if ((current + ' ' + word).length <= maxChars) current += ' ' + word;
    else {
      lines.push(current);
      current = word;
    }
  }
  if (current) lines.push(current);
  return lines.map((l) => (l.length > maxChars ? l.slice(0, maxChars - 1) + '~' : l));
}

/** Lines through (x, y) points, one per series, optionally on log axes; `reference` draws a dashed y = a·x^k. */
export function renderLineChart(spec) {
  const { series, logX = false, logY = false } = spec;
  const width = spec.width ?? 640;
  const height = spec.height ?? 420;
  const canvas = new Canvas(width, height);
  const frame = { title: spec.title, left: 80, top: 56, right: width - 30, bottom: height - 50 };
  drawFrame(canvas, frame);
  drawLegend(canvas, series.map((s) => s.name), frame.left, 34);
  const points = series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const xs = axisScaleRange(points.map((p) => p[0]), logX);
  const ys = axisScale(points.map((p) => p[1]), logY);
  const px = (x) => frame.left + xs.fraction(x) * (frame.right - frame.left);
  const py = (y) => frame.bottom - ys.fraction(y) * (frame.bottom - frame.top);
  for (const tick of ys.ticks) {
    canvas.dashedHorizontal(frame.left + 1, frame.right, Math.round(py(tick)), [210, 210, 210]);
    canvas.text(frame.left - 6, Math.round(py(tick)) - 3, tickLabel(tick), { align: 'right' });
  }
  for (const tick of xs.ticks) {
    canvas.line(px(tick), frame.bottom, px(tick), frame.bottom + 4, [0, 0, 0]);
    canvas.text(px(tick), frame.bottom + 8, tickLabel(tick), { align: 'center' });
  }
  canvas.text((frame.left + frame.right) / 2, frame.bottom + 22, spec.xLabel ?? '', { align: 'center' });
  canvas.verticalText(8, (frame.top + frame.bottom) / 2, spec.yLabel ?? '');
  series.forEach((s, k) => {
    const color = PALETTE[k % PALETTE.length];
    const valid = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    for (let i = 1; i < valid.length; i++) canvas.line(px(valid[i - 1][0]), py(valid[i - 1][1]), px(valid[i][0]), py(valid[i][1]), color, 2);
    for (const [x, y] of valid) canvas.disc(Math.round(px(x)), Math.round(py(y)), 3, color);
  });
  return canvas.encode();
}

/** x axis: linear from 0 (or log over powers of ten) with ticks at the data's own x values when few. */
function axisScaleRange(values, log) {
  const scale = axisScale(values, log);
  if (!log && values.length && values.length <= 8) return { ...scale, ticks: [0, ...[...new Set(values)].sort((a, b) => a - b)] };
  return scale;
}

/** Renders `spec` (type 'bar' or 'line') and writes the PNG to `file`, creating its folder. */
export function writeChart(file, spec) {
  const png = spec.type === 'line' ? renderLineChart(spec) : renderBarChart(spec);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, png);
  return file;
}

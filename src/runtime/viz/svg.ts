/**
 * Inline SVG line charts for the HTML report: per-layer receptive-field growth, channels and training curves.
 * Pure strings (no DOM, no script), so a report renders the same in any browser and never loads anything.
 *
 * Ticks are "nice" numbers (1, 2, 5 × 10ⁿ) on a linear axis, or powers of two on a log₂ axis when the values span
 * more than a factor of 32 (receptive fields grow from 1 pixel to hundreds).
 */

export interface ChartSeries {
  readonly name: string;
  /** One value per x position; null leaves a gap. */
  readonly values: readonly (number | null)[];
  readonly color: string;
  readonly dashed?: boolean;
}

export interface LineChartOptions {
  readonly title: string;
  readonly xLabels: readonly string[];
  readonly series: readonly ChartSeries[];
  readonly yLabel?: string;
  readonly xLabel?: string;
  readonly width?: number;
  readonly height?: number;
  /** 'auto' (default): log₂ when max/min > 32 and every value is positive. */
  readonly scale?: 'linear' | 'log2' | 'auto';
  /** Rotate x labels (long layer names). */
  readonly rotateLabels?: boolean;
  /** Fix the y range's lower end (e.g. 0 for accuracy). */
  readonly yMin?: number;
  readonly yMax?: number;
}

export function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

function niceStep(span: number, count: number): number {
  const raw = span / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  const fraction = raw / power;
  return (fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10) * power;
}

function formatTick(value: number): string {
  if (value === 0) return '0';
  const magnitude = Math.abs(value);
  if (magnitude >= 1e6) return `${Number((value / 1e6).toPrecision(3))}M`;
  if (magnitude >= 1e4) return `${Number((value / 1e3).toPrecision(3))}k`;
  return String(Number(value.toPrecision(4)));
}

export function lineChart(options: LineChartOptions): string {
  const width = options.width ?? 720;
  const height = options.height ?? 300;
  const labelSpace = options.rotateLabels ? Math.min(140, 8 + 5.5 * Math.max(0, ...options.xLabels.map((l) => l.length))) : 28;
  const margin = { left: 58, right: 16, top: 34, bottom: labelSpace + (options.xLabel ? 16 : 0) + 24 };
  const plotWidth = width - margin.left - margin.right;
  const plotHeight = height - margin.top - margin.bottom;
  const all = options.series.flatMap((s) => s.values.filter((v): v is number => v !== null && Number.isFinite(v)));
  let lo = Math.min(...all, options.yMin ?? Infinity);
  let hi = Math.max(...all, options.yMax ?? -Infinity);
  if (!Number.isFinite(lo)) [lo, hi] = [0, 1];
  if (options.yMin !== undefined) lo = options.yMin;
  if (options.yMax !== undefined) hi = options.yMax;
  const log = options.scale === 'log2' || (options.scale !== 'linear' && lo > 0 && hi / lo > 32);
  let ticks: number[];
  let yOf: (v: number) => number;
  if (log) {
    const l0 = Math.floor(Math.log2(lo));
    const l1 = Math.ceil(Math.log2(hi));
    const stride = Math.max(1, Math.ceil((l1 - l0) / 8));
    ticks = [];
    for (let e = l0; e <= l1; e += stride) ticks.push(2 ** e);
    yOf = (v) => margin.top + plotHeight * (1 - (Math.log2(v) - l0) / Math.max(1e-9, l1 - l0));
  } else {
    if (hi - lo < 1e-12) [lo, hi] = [lo - 1, hi + 1];
    const step = niceStep(hi - lo, 6);
    const t0 = Math.floor(lo / step) * step;
    const t1 = Math.ceil(hi / step) * step;
    ticks = [];
    for (let t = t0; t <= t1 + step / 2; t += step) ticks.push(Number(t.toPrecision(12)));
    lo = t0;
    hi = t1;
    yOf = (v) => margin.top + plotHeight * (1 - (v - lo) / (hi - lo || 1));
  }
  const n = options.xLabels.length;
  const xOf = (i: number) => margin.left + (n <= 1 ? plotWidth / 2 : (i * plotWidth) / (n - 1));
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escapeXml(options.title)}">`);
  parts.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`);
  parts.push(`<text x="${margin.left}" y="20" font-size="14" font-weight="600" fill="#222">${escapeXml(options.title)}</text>`);
  for (const t of ticks) {
    const y = yOf(t).toFixed(1);
    parts.push(`<line x1="${margin.left}" x2="${margin.left + plotWidth}" y1="${y}" y2="${y}" stroke="#e4e4e8"/>`);
    parts.push(`<text x="${margin.left - 6}" y="${y}" font-size="11" text-anchor="end" dominant-baseline="middle" fill="#555">${formatTick(t)}</text>`);
  }
  parts.push(`<rect x="${margin.left}" y="${margin.top}" width="${plotWidth}" height="${plotHeight}" fill="none" stroke="#999"/>`);
  const every = Math.max(1, Math.ceil(n / (options.rotateLabels ? 60 : 16)));
  options.xLabels.forEach((label, i) => {
    if (i % every !== 0 && i !== n - 1) return;
    const x = xOf(i).toFixed(1);
    const y = margin.top + plotHeight + 12;
    parts.push(`<line x1="${x}" x2="${x}" y1="${margin.top + plotHeight}" y2="${margin.top + plotHeight + 4}" stroke="#999"/>`);
    if (options.rotateLabels) parts.push(`<text transform="translate(${x},${y}) rotate(-55)" font-size="10" text-anchor="end" fill="#444">${escapeXml(label)}</text>`);
    else parts.push(`<text x="${x}" y="${y + 4}" font-size="11" text-anchor="middle" fill="#444">${escapeXml(label)}</text>`);
  });
  if (options.yLabel) parts.push(`<text transform="translate(14,${margin.top + plotHeight / 2}) rotate(-90)" font-size="11" text-anchor="middle" fill="#444">${escapeXml(options.yLabel)}${log ? ' (log scale)' : ''}</text>`);
  if (options.xLabel) parts.push(`<text x="${margin.left + plotWidth / 2}" y="${height - 6}" font-size="11" text-anchor="middle" fill="#444">${escapeXml(options.xLabel)}</text>`);
  for (const series of options.series) {
    let path = '';
    let pen = false;
    series.values.forEach((v, i) => {
      if (v === null || !Number.isFinite(v) || (log && v <= 0)) {
        pen = false;
        return;
      }
      path += `${pen ? 'L' : 'M'}${xOf(i).toFixed(1)},${yOf(v).toFixed(1)}`;
      pen = true;
    });
    if (path) parts.push(`<path d="${path}" fill="none" stroke="${series.color}" stroke-width="2"${series.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    series.values.forEach((v, i) => {
      if (v === null || !Number.isFinite(v) || (log && v <= 0)) return;
      parts.push(`<circle cx="${xOf(i).toFixed(1)}" cy="${yOf(v).toFixed(1)}" r="2.5" fill="${series.color}"><title>${escapeXml(`${series.name} @ ${options.xLabels[i] ?? i}: ${formatTick(v)}`)}</title></circle>`);
    });
  }
  // legend, top right
  let legendX = width - margin.right;
  for (const series of [...options.series].reverse()) {
    const textWidth = 6.5 * series.name.length;
    legendX -= textWidth + 28;
    parts.push(`<line x1="${legendX}" x2="${legendX + 18}" y1="16" y2="16" stroke="${series.color}" stroke-width="2"${series.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    parts.push(`<text x="${legendX + 22}" y="20" font-size="11" fill="#333">${escapeXml(series.name)}</text>`);
  }
  parts.push('</svg>');
  return parts.join('');
}

/**
 * One self-contained HTML page about a model: the summary table, receptive-field growth and shapes per layer
 * (inline SVG), the first layer's filters, Grad-CAMs on test samples, and training curves when a history exists.
 *
 * Self-contained means a single file that loads nothing: images are `data:` URIs, charts inline SVG, styles in one
 * <style> element, no script, no fonts or links to fetch — it opens from an e-mail attachment or an air-gapped
 * machine, and a headless browser renders it without console errors. The page holds no timestamps or absolute
 * paths, so the same inputs give the same bytes.
 */
import { escapeXml, lineChart, type ChartSeries } from './svg.js';

/** The per-layer summary (the JSON of `convspec summary --json`). */
export interface ReportSummary {
  readonly model: string;
  readonly inputs: readonly { readonly name: string; readonly shape: readonly (number | string)[] }[];
  readonly outputs: readonly { readonly name: string; readonly shape: readonly (number | string)[] }[];
  readonly layers: readonly {
    readonly name: string;
    readonly op: string;
    readonly shape: readonly (number | string)[];
    readonly params: number;
    readonly macs: number | string;
    readonly frozen?: boolean;
    readonly rf?: { readonly size: readonly number[]; readonly stride: readonly number[]; readonly padding: readonly number[]; readonly covers?: boolean };
  }[];
  readonly totals: { readonly params: number; readonly trainable: number; readonly macs: number | string; readonly flops: number | string };
}

/** history.json as `convspec train` writes it (only the fields the report reads). */
export interface ReportHistory {
  readonly epochs: readonly {
    readonly epoch: number;
    readonly loss: number;
    readonly accuracy: number;
    readonly validation?: { readonly loss: number; readonly accuracy: number };
  }[];
  readonly stopReason?: string;
}

export interface ReportImage {
  readonly png: Uint8Array;
  readonly caption: string;
  readonly alt: string;
}

export interface ReportInput {
  readonly summary: ReportSummary;
  /** Spec file name (no directories). */
  readonly spec: string;
  /** Weights file name, or undefined for initial weights. */
  readonly weights?: string;
  readonly filters?: { readonly image: ReportImage; readonly notes: readonly string[] };
  readonly gradcams?: { readonly images: readonly ReportImage[]; readonly notes: readonly string[] };
  readonly history?: ReportHistory;
  /** Test accuracy and sample count, when measured. */
  readonly evaluation?: { readonly accuracy: number; readonly count: number };
  /** Lines for the "notes" section (what was skipped and why). */
  readonly notes?: readonly string[];
}

const PALETTE = ['#0072b2', '#d55e00', '#009e73', '#cc79a7', '#e69f00', '#56b4e9'];

function dataUri(png: Uint8Array): string {
  return `data:image/png;base64,${Buffer.from(png.buffer, png.byteOffset, png.byteLength).toString('base64')}`;
}

function group(value: number | string): string {
  return typeof value === 'number' ? value.toLocaleString('en-US') : value;
}

function shapeText(shape: readonly (number | string)[]): string {
  return `[${shape.join(', ')}]`;
}

/** Width and height from a PNG's IHDR chunk (bytes 16–23, big-endian). */
function pngSize(png: Uint8Array): [number, number] {
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  return png.byteLength >= 24 ? [view.getUint32(16), view.getUint32(20)] : [0, 0];
}

function image(img: ReportImage): string {
  // small pictures (a grid of 3×3 kernels) are shown twice as large, still pixelated
  const [width, height] = pngSize(img.png);
  const scale = width > 0 && width < 240 && height < 600 ? 2 : 1;
  const size = width > 0 ? ` width="${width * scale}" height="${height * scale}"` : '';
  return `<figure><img src="${dataUri(img.png)}"${size} alt="${escapeXml(img.alt)}"><figcaption>${escapeXml(img.caption)}</figcaption></figure>`;
}

/** RF growth and feature-map size per layer (first spatial axis; all axes when they differ). */
function shapeCharts(summary: ReportSummary): string {
  // layers with a spatial map (the field of flatten/dense is the whole input, which the table already says)
  const inputRank = summary.inputs[0]?.shape.length ?? 0;
  const layers = summary.layers.filter((l) => l.rf !== undefined && l.shape.length === inputRank);
  if (layers.length === 0) return '<p class="note">No layer has a receptive field relative to a spatial input.</p>';
  const axes = Math.max(...layers.map((l) => l.rf!.size.length));
  const labels = layers.map((l) => l.name);
  const input = summary.inputs[0];
  const inputSpatial = input ? input.shape.slice(2) : [];
  const series: ChartSeries[] = [];
  const axisNames = axes === 1 ? ['L'] : axes === 2 ? ['H', 'W'] : ['D', 'H', 'W'];
  const distinctAxes = layers.some((l) => new Set(l.rf!.size).size > 1);
  const shown = distinctAxes ? axes : 1;
  for (let a = 0; a < shown; a++) {
    const suffix = shown > 1 ? ` (${axisNames[a]})` : '';
    series.push({ name: `RF size${suffix}`, values: layers.map((l) => l.rf!.size[a] ?? null), color: PALETTE[a % PALETTE.length]! });
    series.push({
      name: `map size${suffix}`,
      values: layers.map((l) => {
        const d = l.shape[2 + a];
        return typeof d === 'number' ? d : null;
      }),
      color: PALETTE[(a + 3) % PALETTE.length]!,
      dashed: true,
    });
  }
  const inputSize = inputSpatial[0];
  if (typeof inputSize === 'number') series.push({ name: 'input size', values: layers.map(() => inputSize), color: '#888888', dashed: true });
  const rfChart = lineChart({ title: 'Receptive field and feature-map size per layer', xLabels: labels, series, yLabel: 'pixels', rotateLabels: true, width: 860, height: 380 });
  const channels: ChartSeries[] = [
    {
      name: 'channels',
      values: summary.layers.map((l) => (typeof l.shape[1] === 'number' ? l.shape[1] : null)),
      color: PALETTE[2]!,
    },
  ];
  const channelChart = lineChart({ title: 'Channels (features) per layer', xLabels: summary.layers.map((l) => l.name), series: channels, yLabel: 'channels', rotateLabels: true, width: 860, height: 340 });
  return `<div class="chart">${rfChart}</div><div class="chart">${channelChart}</div>`;
}

function trainingCharts(history: ReportHistory): string {
  const epochs = history.epochs;
  const labels = epochs.map((e) => String(e.epoch));
  const hasValidation = epochs.some((e) => e.validation);
  const loss = lineChart({
    title: 'Loss per epoch',
    xLabels: labels,
    xLabel: 'epoch',
    yLabel: 'cross-entropy',
    scale: 'linear',
    series: [
      { name: 'train', values: epochs.map((e) => e.loss), color: PALETTE[0]! },
      ...(hasValidation ? [{ name: 'test', values: epochs.map((e) => e.validation?.loss ?? null), color: PALETTE[1]!, dashed: true }] : []),
    ],
  });
  const accuracy = lineChart({
    title: 'Accuracy per epoch',
    xLabels: labels,
    xLabel: 'epoch',
    yLabel: 'accuracy',
    scale: 'linear',
    yMax: 1,
    series: [
      { name: 'train', values: epochs.map((e) => e.accuracy), color: PALETTE[0]! },
      ...(hasValidation ? [{ name: 'test', values: epochs.map((e) => e.validation?.accuracy ?? null), color: PALETTE[1]!, dashed: true }] : []),
    ],
  });
  const last = epochs[epochs.length - 1];
  const line = last
    ? `<p>${epochs.length} epoch${epochs.length === 1 ? '' : 's'}${history.stopReason ? ` (${escapeXml(history.stopReason)})` : ''}; last: train loss ${last.loss.toFixed(4)}, accuracy ${(last.accuracy * 100).toFixed(2)}%${last.validation ? `; test loss ${last.validation.loss.toFixed(4)}, accuracy ${(last.validation.accuracy * 100).toFixed(2)}%` : ''}.</p>`
    : '';
  return `${line}<div class="chart">${loss}</div><div class="chart">${accuracy}</div>`;
}

function summaryTable(summary: ReportSummary): string {
  const rows = summary.layers.map((l) => {
    const rf = l.rf ? `${l.rf.size.join('×')} / ${l.rf.stride.join('×')}${l.rf.covers ? ' ✓' : ''}` : '';
    return `<tr><td class="name">${escapeXml(l.name)}${l.frozen ? ' ❄' : ''}</td><td>${escapeXml(l.op)}</td><td>${escapeXml(shapeText(l.shape))}</td><td class="num">${group(l.params)}</td><td class="num">${group(l.macs)}</td><td>${escapeXml(rf)}</td></tr>`;
  });
  return `<table><thead><tr><th>layer</th><th>op</th><th>output shape</th><th class="num">params</th><th class="num">MACs</th><th>RF size / stride</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

const STYLE = `
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d1d22; margin: 0; background: #f6f6f8; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 10px; border-bottom: 1px solid #d8d8de; padding-bottom: 4px; }
.meta { color: #555; margin: 0 0 12px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 12px 0; }
.card { background: #fff; border: 1px solid #dcdce2; border-radius: 6px; padding: 8px 14px; }
.card b { display: block; font-size: 18px; }
table { border-collapse: collapse; background: #fff; font-size: 12.5px; width: 100%; }
th, td { border-bottom: 1px solid #e6e6ea; padding: 3px 8px; text-align: left; white-space: nowrap; }
th { background: #ececf0; position: sticky; top: 0; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.name { font-family: ui-monospace, "DejaVu Sans Mono", monospace; }
.chart { background: #fff; border: 1px solid #dcdce2; border-radius: 6px; margin: 10px 0; overflow-x: auto; }
.chart svg { display: block; }
figure { display: inline-block; margin: 6px 10px 6px 0; vertical-align: top; }
figure img { image-rendering: pixelated; border: 1px solid #ccc; background: #303038; max-width: 100%; height: auto; }
figcaption { font-size: 12px; color: #444; max-width: 360px; }
.note { color: #5a5a66; font-size: 13px; }
ul.notes { color: #5a5a66; font-size: 13px; }
`;

export function renderReport(input: ReportInput): string {
  const s = input.summary;
  const title = `${s.model} — convspec report`;
  const cards = [
    ['inputs', s.inputs.map((i) => `${i.name} ${shapeText(i.shape)}`).join(', ')],
    ['outputs', s.outputs.map((o) => `${o.name} ${shapeText(o.shape)}`).join(', ')],
    ['params', group(s.totals.params)],
    ['MACs (batch 1)', group(s.totals.macs)],
    ['layers', String(s.layers.length)],
    ...(input.evaluation ? [[`test accuracy (${group(input.evaluation.count)} samples)`, `${(input.evaluation.accuracy * 100).toFixed(2)}%`]] : []),
  ];
  const sections: string[] = [];
  sections.push(`<h2>Layers</h2>${summaryTable(s)}`);
  sections.push(`<h2>Shapes and receptive fields</h2>${shapeCharts(s)}`);
  if (input.filters) {
    sections.push(`<h2>Filters</h2>${image(input.filters.image)}${input.filters.notes.map((n) => `<p class="note">${escapeXml(n)}</p>`).join('')}`);
  }
  if (input.gradcams) {
    sections.push(`<h2>Grad-CAM on test samples</h2><div>${input.gradcams.images.map(image).join('')}</div>${input.gradcams.notes.map((n) => `<p class="note">${escapeXml(n)}</p>`).join('')}`);
  }
  if (input.history && input.history.epochs.length > 0) sections.push(`<h2>Training</h2>${trainingCharts(input.history)}`);
  if (input.notes && input.notes.length > 0) sections.push(`<h2>Notes</h2><ul class="notes">${input.notes.map((n) => `<li>${escapeXml(n)}</li>`).join('')}</ul>`);
  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeXml(title)}</title>`,
    // a data: icon, so the browser does not ask for /favicon.ico (a console error on file:// pages)
    '<link rel="icon" href="data:,">',
    `<style>${STYLE}</style>`,
    '</head>',
    '<body><main>',
    `<h1>${escapeXml(s.model)}</h1>`,
    `<p class="meta">spec ${escapeXml(input.spec)} · weights ${escapeXml(input.weights ?? 'initial (untrained)')}</p>`,
    `<div class="cards">${cards.map(([k, v]) => `<div class="card">${escapeXml(k!)}<b>${escapeXml(v!)}</b></div>`).join('')}</div>`,
    ...sections,
    '</main></body>',
    '</html>',
    '',
  ].join('\n');
}

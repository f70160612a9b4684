/**
 * Pictures of convolution kernels (IR layout [F, C/g, k…]).
 *
 * First layer (a conv that reads the model input, through pads at most): its kernels live in input space, so
 * each filter is one picture — RGB for 3 input channels, grey for 1, one grey tile per channel otherwise — each
 * normalised on its own, w ↦ (w − min_f)/(max_f − min_f), as Krizhevsky et al. showed AlexNet's first layer.
 *
 * Deeper layers: a kernel slice W[f, c] weights feature map c of the previous layer, not pixels, so the picture is
 * a grid of F rows × C columns of slices in the diverging map, symmetric per filter (blue < 0 < red, grey = 0),
 * and the result carries a note saying these are not image-space patterns.
 *
 * 1D kernels [F, C, k]: up to 8 input channels, one small line plot per filter (a curve per channel over the k
 * taps); more channels (word embeddings), a C × k diverging image per filter. 3D kernels [F, C, kd, kh, kw]: each
 * filter (first layer) or filter–channel pair (deeper) is a row of kd depth slices.
 *
 * Everything is upscaled by nearest neighbour so a 3×3 kernel spans about 24 pixels.
 */
import type { Graph, Node } from '../../ir/graph.js';
import type { Weights } from '../../ir/weights.js';
import { colormap } from './colormap.js';
import { VizError, resolveLayer } from './network.js';
import { linePlot, SERIES_COLORS } from './plot.js';
import { blit, createRaster, drawText, GAP, grid, scaleNearest, textWidth, upscaleFactor, type Raster } from './raster.js';
import { planeRaster, rangeOf, rgbRaster } from './render.js';

export interface FilterOptions {
  /** Layer name (default: the first convolution). */
  readonly layer?: string;
  /** At most this many filters (default 64, 16 for deeper 3D layers). */
  readonly maxFilters?: number;
  /** At most this many input channels per filter in per-channel grids (default 32, 8 for 3D). */
  readonly maxChannels?: number;
  /** Upscale kernels to at least this many pixels (default 24). */
  readonly tileSize?: number;
}

export interface FilterPicture {
  readonly raster: Raster;
  readonly layer: string;
  /** Kernel shape [F, C/g, k…]. */
  readonly shape: readonly number[];
  readonly firstLayer: boolean;
  readonly filtersShown: number;
  readonly channelsShown: number;
  readonly notes: string[];
}

/** Conv (and transposed conv) nodes, in graph order. */
export function convolutionLayers(graph: Graph): Node[] {
  return graph.nodes.filter((n) => n.op === 'conv' || n.op === 'conv_transpose');
}

/** Whether a node reads a graph input directly or through pads only. */
export function readsModelInput(graph: Graph, node: Node): boolean {
  const nodes = new Map(graph.nodes.map((n) => [n.name, n]));
  let name = node.inputs[0];
  while (name !== undefined) {
    if (graph.inputs.some((i) => i.name === name)) return true;
    const previous = nodes.get(name);
    if (!previous || previous.op !== 'pad') return false;
    name = previous.inputs[0];
  }
  return false;
}

function pickLayer(graph: Graph, name: string | undefined): Node {
  const convs = convolutionLayers(graph);
  if (name === undefined) {
    if (convs.length === 0) throw new VizError(`${graph.name} has no convolution layers, so there are no filters to show`);
    return convs[0]!;
  }
  // a scope (`stage1`) names its last node; for filters, its first convolution is what the user means
  const inScope = convs.filter((n) => n.name.startsWith(`${name}.`));
  const node = convs.find((n) => n.name === name) ?? inScope[0] ?? resolveLayer(graph, name);
  if (node.op !== 'conv' && node.op !== 'conv_transpose') {
    throw new VizError(`'${node.name}' is a ${node.op} layer; filters exist for convolution layers`, `convolution layers: ${convs.map((n) => n.name).slice(0, 8).join(', ')}${convs.length > 8 ? ', …' : ''}`);
  }
  return node;
}

/** Columns for n tiles: between √n and 2√n (at most 16), leaving the fewest empty cells. */
function balancedColumns(n: number): number {
  const low = Math.max(1, Math.ceil(Math.sqrt(n)));
  let best = low;
  for (let c = low; c <= Math.min(16, 2 * low); c++) if (c * Math.ceil(n / c) - n < best * Math.ceil(n / best) - n) best = c;
  return Math.min(best, n);
}

/** A grid with row labels on the left and column labels on top (tiles all the same size). */
function labelledMatrix(tiles: Raster[][], rowLabels: readonly string[], columnLabels: readonly string[]): Raster {
  const gap = 1;
  const cellWidth = Math.max(1, ...tiles.flat().map((t) => t.width));
  const cellHeight = Math.max(1, ...tiles.flat().map((t) => t.height));
  const labelWidth = Math.max(...rowLabels.map((l) => textWidth(l))) + 4;
  const top = 8;
  const columns = Math.max(...tiles.map((row) => row.length));
  const out = createRaster(labelWidth + columns * (cellWidth + gap) + gap, top + tiles.length * (cellHeight + gap) + gap, GAP);
  tiles.forEach((row, r) => {
    const y = top + gap + r * (cellHeight + gap);
    drawText(out, 2, y + Math.max(0, Math.floor((cellHeight - 5) / 2)), rowLabels[r]!, [200, 200, 200]);
    row.forEach((tile, c) => blit(out, tile, labelWidth + gap + c * (cellWidth + gap), y));
  });
  columnLabels.forEach((label, c) => {
    if (textWidth(label) <= cellWidth + gap) drawText(out, labelWidth + gap + c * (cellWidth + gap), 1, label, [200, 200, 200]);
  });
  return out;
}

function rangeOfFilter(data: Float32Array, offset: number, size: number, symmetric: boolean): [number, number] {
  return rangeOf(data.subarray(offset, offset + size), symmetric);
}

export function renderFilters(graph: Graph, weights: Weights, options: FilterOptions = {}): FilterPicture {
  const node = pickLayer(graph, options.layer);
  if (node.op !== 'conv' && node.op !== 'conv_transpose') throw new Error('internal: not a convolution');
  const tensor = weights.get(`${node.name}.weight`);
  if (!tensor) throw new VizError(`the weights lack '${node.name}.weight'`);
  const shape = tensor.shape;
  const [filters, channels] = shape as [number, number];
  const kernel = shape.slice(2);
  const perFilter = channels * kernel.reduce((a, b) => a * b, 1);
  const rank = kernel.length;
  const firstLayer = node.op === 'conv' && readsModelInput(graph, node) && node.groups === 1;
  const notes: string[] = [];
  const tileTarget = options.tileSize ?? 24;
  const maxFilters = Math.min(filters, options.maxFilters ?? (rank === 3 && !firstLayer ? 16 : 64));
  const maxChannels = Math.min(channels, options.maxChannels ?? (rank === 3 ? 8 : 32));
  if (node.op === 'conv_transpose') notes.push('a transposed convolution: weights are [in, out/groups, k…], shown as rows of input channels');
  if (maxFilters < filters) notes.push(`showing ${maxFilters} of ${filters} filters (--max-filters)`);
  const data = tensor.data;
  let raster: Raster;
  let channelsShown = channels;

  if (rank === 2) {
    const [kh, kw] = kernel as [number, number];
    const factor = upscaleFactor(Math.max(kh, kw), tileTarget);
    if (firstLayer && (channels === 3 || channels === 1)) {
      const tiles: Raster[] = [];
      for (let f = 0; f < maxFilters; f++) {
        const offset = f * perFilter;
        const range = rangeOfFilter(data, offset, perFilter, false);
        const tile = channels === 3 ? rgbRaster(data, kw, kh, range, offset) : planeRaster(data, kw, kh, colormap('gray'), range, offset);
        tiles.push(scaleNearest(tile, factor));
      }
      raster = grid(tiles, { columns: balancedColumns(maxFilters), captions: tiles.map((_, f) => String(f)) });
      notes.push(`${channels === 3 ? 'RGB' : 'grey'}, each filter normalised to its own min–max`);
    } else {
      channelsShown = maxChannels;
      const rows: Raster[][] = [];
      for (let f = 0; f < maxFilters; f++) {
        const offset = f * perFilter;
        const range = rangeOfFilter(data, offset, perFilter, !firstLayer);
        const map = firstLayer ? colormap('gray') : colormap('diverging');
        const row: Raster[] = [];
        for (let c = 0; c < maxChannels; c++) row.push(scaleNearest(planeRaster(data, kw, kh, map, range, offset + c * kh * kw), factor));
        rows.push(row);
      }
      raster = labelledMatrix(rows, rows.map((_, f) => `F${f}`), Array.from({ length: maxChannels }, (_, c) => `C${c}`));
      if (maxChannels < channels) notes.push(`showing ${maxChannels} of ${channels} input channels (--max-channels)`);
      notes.push(
        firstLayer
          ? `one grey tile per input channel (the input has ${channels} channels), each filter normalised to its own min–max`
          : `these are not image-space patterns: row f, column c is the ${kh}×${kw} kernel slice by which filter f weights feature map c of the previous layer; blue < 0 < red, symmetric per filter`,
      );
    }
  } else if (rank === 1) {
    const [k] = kernel as [number];
    const tiles: Raster[] = [];
    if (channels <= 8) {
      for (let f = 0; f < maxFilters; f++) {
        const offset = f * perFilter;
        const range = rangeOfFilter(data, offset, perFilter, true);
        const series = Array.from({ length: channels }, (_, c) => ({ values: data.subarray(offset + c * k, offset + (c + 1) * k), color: SERIES_COLORS[c % SERIES_COLORS.length]! }));
        tiles.push(linePlot(series, { width: Math.max(48, 12 * k), height: 40, range }));
      }
      notes.push(`line plots of the ${k} taps, one curve per input channel (${channels}); each filter on its own symmetric scale`);
    } else {
      channelsShown = channels;
      const fy = upscaleFactor(channels, 48, 4);
      for (let f = 0; f < maxFilters; f++) {
        const offset = f * perFilter;
        const range = rangeOfFilter(data, offset, perFilter, true);
        tiles.push(scaleNearest(planeRaster(data, k, channels, colormap('diverging'), range, offset), upscaleFactor(k, tileTarget), fy));
      }
      notes.push(`each filter as a ${channels} × ${k} image: rows are input channels, columns the taps; blue < 0 < red`);
    }
    raster = grid(tiles, { columns: balancedColumns(maxFilters), captions: tiles.map((_, f) => String(f)) });
    if (!firstLayer) notes.push('these are not input-space patterns: the channels are feature maps of the previous layer');
  } else if (rank === 3) {
    const [kd, kh, kw] = kernel as [number, number, number];
    const factor = upscaleFactor(Math.max(kh, kw), tileTarget);
    const sliceSize = kh * kw;
    const rows: Raster[][] = [];
    const labels: string[] = [];
    if (firstLayer && (channels === 3 || channels === 1)) {
      for (let f = 0; f < maxFilters; f++) {
        const offset = f * perFilter;
        const range = rangeOfFilter(data, offset, perFilter, false);
        const row: Raster[] = [];
        for (let d = 0; d < kd; d++) {
          const tile = channels === 3 ? rgbRaster(data, kw, kh, range, offset + d * sliceSize, kd * sliceSize) : planeRaster(data, kw, kh, colormap('gray'), range, offset + d * sliceSize);
          row.push(scaleNearest(tile, factor));
        }
        rows.push(row);
        labels.push(`F${f}`);
      }
      notes.push(`each row is one filter's ${kd} depth slices (${channels === 3 ? 'RGB' : 'grey'}), normalised per filter`);
    } else {
      channelsShown = maxChannels;
      for (let f = 0; f < maxFilters; f++) {
        const offset = f * perFilter;
        const range = rangeOfFilter(data, offset, perFilter, true);
        for (let c = 0; c < maxChannels; c++) {
          const row: Raster[] = [];
          for (let d = 0; d < kd; d++) row.push(scaleNearest(planeRaster(data, kw, kh, colormap('diverging'), range, offset + (c * kd + d) * sliceSize), factor));
          rows.push(row);
          labels.push(`F${f}C${c}`);
        }
      }
      if (maxChannels < channels) notes.push(`showing ${maxChannels} of ${channels} input channels (--max-channels)`);
      notes.push(`each row is filter F, channel C: its ${kd} depth slices; blue < 0 < red, symmetric per filter`);
      if (!firstLayer) notes.push('these are not image-space patterns: the channels are feature maps of the previous layer');
    }
    raster = labelledMatrix(rows, labels, Array.from({ length: kd }, (_, d) => `d${d}`));
  } else {
    throw new VizError(`'${node.name}' has a ${rank}D kernel; filters are drawn for 1D, 2D and 3D convolutions`);
  }
  return { raster, layer: node.name, shape, firstLayer, filtersShown: maxFilters, channelsShown, notes };
}

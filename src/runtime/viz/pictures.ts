/**
 * The composed pictures each visualisation writes (PNG) and the report inlines: panels with titles, laid out the
 * same way for every model, with the 1D / 2D / 3D differences left to ./render.ts.
 */
import type { GradCamResult } from './gradcam.js';
import type { Inversion } from './invert.js';
import type { MaximizeResult } from './maximize.js';
import { linePlot } from './plot.js';
import { besideEachOther, createRaster, drawText, GAP, grid, stacked, titled, upscaleFactor, type Raster, type Rgb } from './raster.js';
import type { ReceptiveFieldMap } from './receptive.js';
import { drawBox, heatSlices, normaliseHeat, rangeOf, renderHeat, renderOverlay, renderSample, sliceFactor, type Sample, type ValueRange } from './render.js';

const THEORETICAL: Rgb = [0, 220, 255];
const EFFECTIVE: Rgb = [255, 230, 0];

export function maximizePicture(results: readonly MaximizeResult[], range: ValueRange | undefined): Raster {
  const tiles = results.map((r) => renderSample(r.sample, range ? { range } : {}));
  const captions = results.map((r) => {
    const match = /(channel|unit|class) (\d+)/.exec(r.target);
    const letter = { channel: 'c', unit: 'u', class: 'k' }[match?.[1] as 'channel' | 'unit' | 'class'];
    return match ? `${letter}${match[2]} ${r.end.toPrecision(3)}` : r.end.toPrecision(3);
  });
  const spatialRank = results[0]!.sample.dims.length - 1;
  if (spatialRank === 2) return grid(tiles, { columns: Math.min(8, tiles.length), captions, gap: 3 });
  return stacked(tiles.map((t, i) => titled(t, captions[i]!, 1)), 4);
}

export interface GradCamPictures {
  readonly heatmap: Raster;
  readonly overlay: Raster;
  /** Input, heatmap and overlay side by side with a title. */
  readonly panel: Raster;
}

export function gradCamPictures(sample: Sample, result: GradCamResult, title: string, range?: ValueRange): GradCamPictures {
  const options = range ? { range } : {};
  const heatmap = renderHeat(result.heat, result.spatial);
  const overlay = renderOverlay(sample, result.heat, options);
  const input = renderSample(sample, options);
  const spatialRank = result.spatial.length;
  // 1D inputs with many channels (embeddings) are shown by the overlay's norm curve alone: their C × L picture is tall
  const manyChannels = spatialRank === 1 && sample.dims[0]! > 4;
  const body = spatialRank === 2 ? besideEachOther([input, heatmap, overlay], 4) : stacked(manyChannels ? [overlay] : [input, overlay], 4);
  return { heatmap, overlay, panel: titled(body, title, 1) };
}

export function inversionPicture(sample: Sample, inversions: readonly Inversion[], range: ValueRange | undefined): Raster {
  const options = range ? { range } : {};
  const spatialRank = sample.dims.length - 1;
  const original = titled(renderSample(sample, options), 'input', 1);
  // what each layer dropped: |x − x₀| summed over channels, on one scale for all layers
  const channels = sample.dims[0]!;
  const count = sample.data.length / channels;
  const differences = inversions.map((inv) => {
    const difference = new Float32Array(count);
    for (let c = 0; c < channels; c++) for (let i = 0; i < count; i++) difference[i]! += Math.abs(inv.reconstruction.data[c * count + i]! - sample.data[c * count + i]!);
    return difference;
  });
  const [lo, hi] = range ?? rangeOf(sample.data);
  const scale = channels * (hi - lo);
  const columns = inversions.map((inv, i) => ({
    picture: titled(renderSample(inv.reconstruction, options), `${shortName(inv.layer)} err ${inv.relativeError.toFixed(2)}`, 1),
    heat: renderHeat(differences[i]!, sample.dims.slice(1), { max: scale }),
  }));
  if (spatialRank === 2) {
    const top = besideEachOther([original, ...columns.map((c) => c.picture)], 6);
    const label = createRaster(original.width, original.height, GAP);
    drawText(label, 4, Math.floor(original.height / 2) - 6, 'DROPPED:', [220, 220, 220]);
    drawText(label, 4, Math.floor(original.height / 2) + 2, '|X - X0|', [220, 220, 220]);
    const bottom = besideEachOther([label, ...columns.map((c) => titled(c.heat, ' ', 1))], 6);
    return stacked([top, bottom], 6);
  }
  return stacked([original, ...columns.flatMap((c) => [c.picture, titled(c.heat, 'dropped: |x - x0|', 1)])], 6);
}

/** The last two parts of a layer name (`conv_bn_relu2.relu1`), for captions. */
export function shortName(name: string): string {
  return name.split('.').slice(-2).join('.');
}

export function receptivePicture(sample: Sample | undefined, map: ReceptiveFieldMap, range?: ValueRange): Raster {
  const spatial = map.spatial;
  const clip = (box: { start: readonly number[]; end: readonly number[] }) => ({
    start: box.start.map((s, a) => Math.max(0, Math.min(spatial[a]! - 1, s))),
    end: box.end.map((e, a) => Math.max(0, Math.min(spatial[a]! - 1, e))),
  });
  const theoretical = clip(map.theoretical);
  const effective = map.effective;
  const caption = `${shortName(map.layer)} unit [${map.unit.join(',')}] rf ${map.size.join('x')}`;
  if (spatial.length === 2) {
    const factor = upscaleFactor(Math.min(spatial[0]!, spatial[1]!), 112);
    const heat = renderHeat(map.gradient, spatial);
    const boxOf = (b: { start: readonly number[]; end: readonly number[] }) => ({ y: [b.start[0]!, b.end[0]!] as const, x: [b.start[1]!, b.end[1]!] as const });
    const panels: Raster[] = [];
    if (sample) {
      const picture = renderSample(sample, range ? { range } : {});
      drawBox(picture, boxOf(theoretical), factor, THEORETICAL);
      if (effective) drawBox(picture, boxOf(effective), factor, EFFECTIVE, true);
      panels.push(titled(picture, 'input', 1));
    }
    drawBox(heat, boxOf(theoretical), factor, THEORETICAL);
    if (effective) drawBox(heat, boxOf(effective), factor, EFFECTIVE, true);
    panels.push(titled(heat, 'grad', 1));
    return titled(besideEachOther(panels, 6), caption, 1);
  }
  if (spatial.length === 1) {
    const [lo, hi] = rangeOf(map.gradient);
    const plot = linePlot([{ values: map.gradient, color: [255, 255, 255] }], { width: 360, height: 100, range: [Math.min(0, lo), hi], band: [theoretical.start[0]!, theoretical.end[0]!], bandColor: THEORETICAL, label: '|grad|' });
    const parts = sample ? [titled(renderSample(sample, range ? { range } : {}), 'input', 1), plot] : [plot];
    return titled(stacked(parts, 4), caption, 1);
  }
  // 3D: heat slices on one scale; slices inside the field's depth range get the box
  const [, height, width] = spatial as [number, number, number];
  const factor = sliceFactor(height, width);
  const slices = heatSlices(normaliseHeat(map.gradient), spatial);
  slices.forEach((slice, d) => {
    if (d >= theoretical.start[0]! && d <= theoretical.end[0]!) drawBox(slice, { y: [theoretical.start[1]!, theoretical.end[1]!], x: [theoretical.start[2]!, theoretical.end[2]!] }, factor, THEORETICAL);
  });
  return titled(grid(slices, { columns: Math.min(8, spatial[0]!), captions: slices.map((_, d) => `d${d}`) }), caption, 1);
}

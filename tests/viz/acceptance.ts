/**
 * The acceptance figures of the visualisation issue, measured on a Fashion-MNIST CNN: used by the suite on a
 * model trained briefly on the embedded subset, and by tests/viz/acceptance.test.ts on a properly trained one.
 *
 *   filters    the first layer's picture exists and differs from the untrained model's (mean |Δ| per byte);
 *   maximize   per channel of a late layer: activation at the starting noise and after gradient ascent;
 *   gradcam    per test sample, for the true class: the fraction of the map inside the bounding box of the
 *              object (pixels > 0.1), and inside the object's own pixels, against that mask's share of the image —
 *              for plain Grad-CAM (the default), Grad-CAM against a black reference, and Grad-CAM++ against it;
 *   invert     mean relative reconstruction error from an early and a late layer.
 */
import type { Graph } from '../../src/ir/graph.js';
import type { Weights } from '../../src/ir/weights.js';
import type { Dataset } from '../../src/runtime/data/dataset.js';
import type { TfjsEngine } from '../../src/runtime/tfjs/engine.js';
import { renderFilters } from '../../src/runtime/viz/filters.js';
import { foregroundBox, gradCam, heatFractionInside, type CamMethod } from '../../src/runtime/viz/gradcam.js';
import { invertFeatures } from '../../src/runtime/viz/invert.js';
import { maximizeActivation } from '../../src/runtime/viz/maximize.js';
import type { Sample } from '../../src/runtime/viz/render.js';

export interface AcceptanceOptions {
  readonly maximizeLayer: string;
  readonly maximizeChannels: readonly number[];
  readonly maximizeSteps?: number;
  readonly gradcamSamples: number;
  readonly earlyLayer: string;
  readonly lateLayer: string;
  readonly invertSamples: number;
  readonly invertSteps?: number;
}

export type CamVariant = 'gradcam' | 'gradcam, black reference' | 'gradcam++, black reference' | 'hirescam' | 'hirescam, black reference';

export interface CamFigures {
  readonly samples: number;
  /** Share of samples with more than half of the map inside the object's bounding box. */
  readonly mostlyInBox: number;
  readonly meanInBox: number;
  readonly meanInMask: number;
  readonly meanMaskArea: number;
  readonly meanBoxArea: number;
  readonly zeroMaps: number;
}

export const CAM_VARIANTS: readonly CamVariant[] = ['gradcam', 'gradcam, black reference', 'gradcam++, black reference', 'hirescam', 'hirescam, black reference'];

export interface AcceptanceFigures {
  readonly filters: { readonly layer: string; readonly width: number; readonly height: number; readonly meanAbsoluteDifference: number; readonly identical: boolean };
  readonly maximize: { readonly channel: number; readonly start: number; readonly end: number; readonly ratio: number }[];
  readonly maximizeAtLeast10x: number;
  readonly maximizeMedianRatio: number;
  readonly gradcam: Record<CamVariant, CamFigures>;
  readonly invert: { readonly early: number; readonly late: number; readonly earlyBetter: number };
}

export function sampleOf(dataset: Dataset, index: number): Sample {
  const size = dataset.shape.reduce((a, b) => a * b, 1);
  return { data: dataset.images.slice(index * size, (index + 1) * size), dims: [...dataset.shape] };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

export async function measureAcceptance(engine: TfjsEngine, graph: Graph, trained: Weights, untrained: Weights, test: Dataset, options: AcceptanceOptions): Promise<AcceptanceFigures> {
  const before = renderFilters(graph, untrained);
  const after = renderFilters(graph, trained);
  let difference = 0;
  const sameSize = before.raster.data.length === after.raster.data.length;
  if (sameSize) for (let i = 0; i < after.raster.data.length; i++) difference += Math.abs(after.raster.data[i]! - before.raster.data[i]!);
  const filters = {
    layer: after.layer,
    width: after.raster.width,
    height: after.raster.height,
    meanAbsoluteDifference: sameSize ? difference / after.raster.data.length : Infinity,
    identical: sameSize && difference === 0,
  };

  const maximize = [];
  for (const channel of options.maximizeChannels) {
    const result = await maximizeActivation(engine, { layer: options.maximizeLayer, channel, steps: options.maximizeSteps ?? 256, seed: 0 });
    maximize.push({ channel, start: result.start, end: result.end, ratio: result.start > 0 ? result.end / result.start : result.end > 0 ? Infinity : 0 });
  }

  const gradcam = {} as Record<CamVariant, CamFigures>;
  const spatial = test.shape.slice(1);
  const pixels = spatial.reduce((a, b) => a * b, 1);
  const black: Sample = { data: new Float32Array(test.shape.reduce((a, b) => a * b, 1)), dims: [...test.shape] };
  for (const variant of CAM_VARIANTS) {
    let mostlyInBox = 0;
    let inBox = 0;
    let inMask = 0;
    let maskArea = 0;
    let boxArea = 0;
    let zeroMaps = 0;
    for (let i = 0; i < options.gradcamSamples; i++) {
      const sample = sampleOf(test, i);
      const result = await gradCam(engine, sample, { classIndex: test.labels[i]!, method: variant.split(',')[0] as CamMethod, ...(variant.includes('black') ? { baseline: black } : {}) });
      const box = foregroundBox(sample, 0.1)!;
      const fraction = heatFractionInside(result.heat, result.spatial, box);
      if (result.heat.every((v) => v === 0)) zeroMaps++;
      if (fraction > 0.5) mostlyInBox++;
      inBox += fraction;
      boxArea += box.start.reduce((area, s, axis) => area * (box.end[axis]! - s + 1), 1) / pixels;
      let total = 0;
      let masked = 0;
      let maskCount = 0;
      for (let p = 0; p < pixels; p++) {
        total += result.heat[p]!;
        let on = false;
        for (let c = 0; c < test.shape[0]; c++) on ||= sample.data[c * pixels + p]! > 0.1;
        if (on) {
          masked += result.heat[p]!;
          maskCount++;
        }
      }
      inMask += total > 0 ? masked / total : 0;
      maskArea += maskCount / pixels;
    }
    const n = options.gradcamSamples;
    gradcam[variant] = { samples: n, mostlyInBox: mostlyInBox / n, meanInBox: inBox / n, meanInMask: inMask / n, meanMaskArea: maskArea / n, meanBoxArea: boxArea / n, zeroMaps };
  }

  let early = 0;
  let late = 0;
  let earlyBetter = 0;
  for (let i = 0; i < options.invertSamples; i++) {
    const [e, l] = await invertFeatures(engine, sampleOf(test, i), [options.earlyLayer, options.lateLayer], { steps: options.invertSteps ?? 300, range: [0, 1] });
    early += e!.relativeError / options.invertSamples;
    late += l!.relativeError / options.invertSamples;
    if (e!.relativeError < l!.relativeError) earlyBetter++;
  }

  const ratios = maximize.map((m) => m.ratio);
  return {
    filters,
    maximize,
    maximizeAtLeast10x: ratios.filter((r) => r >= 10).length / ratios.length,
    maximizeMedianRatio: median(ratios),
    gradcam,
    invert: { early, late, earlyBetter: earlyBetter / options.invertSamples },
  };
}

export function describeFigures(figures: AcceptanceFigures): string {
  const f = figures;
  return [
    `filters: ${f.filters.layer} ${f.filters.width}×${f.filters.height} px, mean |Δ| vs untrained ${f.filters.meanAbsoluteDifference.toFixed(1)} per byte`,
    `maximize: ${f.maximize.map((m) => `c${m.channel} ${m.start.toPrecision(3)}→${m.end.toPrecision(3)} (×${m.ratio.toPrecision(3)})`).join(', ')}; ≥10×: ${(f.maximizeAtLeast10x * 100).toFixed(0)}%, median ×${f.maximizeMedianRatio.toPrecision(3)}`,
    ...CAM_VARIANTS.map((variant) => {
      const g = f.gradcam[variant];
      return `${variant} (${g.samples} test samples, true class): most of the map inside the object's box for ${(g.mostlyInBox * 100).toFixed(1)}%; mean share in box ${(g.meanInBox * 100).toFixed(1)}% (box ${(g.meanBoxArea * 100).toFixed(1)}% of the image), on object pixels ${(g.meanInMask * 100).toFixed(1)}% (they are ${(g.meanMaskArea * 100).toFixed(1)}% of the image); all-zero maps ${g.zeroMaps}`;
    }),
    `invert: mean relative error early ${f.invert.early.toFixed(3)} vs late ${f.invert.late.toFixed(3)}; early better on ${(f.invert.earlyBetter * 100).toFixed(0)}% of samples`,
  ].join('\n');
}

/**
 * The pieces under every visualisation, checked against what is known exactly: PNG bytes round-trip and repeat,
 * colormaps get lighter monotonically, nearest-neighbour upscaling keeps kernels as blocks, the random warp is a
 * linear map whose custom gradient is its transpose, receptive-field alignment puts a unit's value at its field's
 * centre, and Grad-CAM of a global-average-pooling network equals CAM (Zhou et al. 2016) computed from the weights.
 */
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomWeights } from '../../src/ir/weights.js';
import { TfjsEngine } from '../../src/runtime/tfjs/engine.js';
import { colorAt, colormap, colormapNames, lightness } from '../../src/runtime/viz/colormap.js';
import { foregroundBox, gradCam, heatFractionInside } from '../../src/runtime/viz/gradcam.js';
import { classifierFeatureLayers, resolveLayer, runGraph, sampleToInternal, VizError } from '../../src/runtime/viz/network.js';
import { linePlot } from '../../src/runtime/viz/plot.js';
import { createRaster, decodePngRaster, drawText, encodePng, fillRect, getPixel, grid, scaleNearest, textWidth } from '../../src/runtime/viz/raster.js';
import { centralBox } from '../../src/runtime/viz/receptive.js';
import { resampleToInput } from '../../src/runtime/viz/resample.js';
import { renderHeat, renderOverlay, renderSample } from '../../src/runtime/viz/render.js';
import { escapeXml, lineChart } from '../../src/runtime/viz/svg.js';
import { applyWarp, gaussianBlur, totalVariation, warpTable } from '../../src/runtime/viz/transforms.js';
import { argmax as argmaxOf, compile } from './helpers.js';

beforeAll(async () => {
  await tf.setBackend('wasm');
});

describe('rasters and PNG', () => {
  it('round-trips through PNG and gives the same bytes twice', () => {
    const raster = createRaster(7, 5, [10, 20, 30]);
    fillRect(raster, 2, 1, 3, 2, [250, 0, 128]);
    drawText(raster, 0, 0, 'A1', [255, 255, 255]);
    const png = encodePng(raster);
    expect(encodePng(raster).equals(png)).toBe(true);
    const back = decodePngRaster(png);
    expect(back.width).toBe(7);
    expect(Buffer.from(back.data).equals(Buffer.from(raster.data))).toBe(true);
  });

  it('upscales by nearest neighbour: a 3×3 kernel becomes nine solid blocks', () => {
    const raster = createRaster(3, 3);
    for (let i = 0; i < 9; i++) fillRect(raster, i % 3, Math.floor(i / 3), 1, 1, [i * 20, 0, 0]);
    const big = scaleNearest(raster, 8);
    expect([big.width, big.height]).toEqual([24, 24]);
    for (let y = 0; y < 24; y++) for (let x = 0; x < 24; x++) expect(getPixel(big, x, y)[0]).toBe((Math.floor(y / 8) * 3 + Math.floor(x / 8)) * 20);
  });

  it('lays out grids and measures text', () => {
    const tiles = Array.from({ length: 5 }, () => createRaster(4, 6, [200, 200, 200]));
    const g = grid(tiles, { columns: 3, gap: 2 });
    expect([g.width, g.height]).toEqual([3 * 6 + 2, 2 * 8 + 2]);
    expect(textWidth('abc', 2)).toBe(22);
  });
});

describe('colormaps', () => {
  it('viridis, inferno and gray get lighter from 0 to 1; diverging is darkest at the ends', () => {
    for (const name of ['viridis', 'inferno', 'gray'] as const) {
      const map = colormap(name);
      let previous = -1;
      for (let i = 0; i <= 32; i++) {
        const l = lightness(colorAt(map, i / 32));
        expect(l, `${name} at ${i / 32}`).toBeGreaterThan(previous);
        previous = l;
      }
    }
    const diverging = colormap('diverging');
    expect(lightness(colorAt(diverging, 0.5))).toBeGreaterThan(lightness(colorAt(diverging, 0)));
    expect(lightness(colorAt(diverging, 0.5))).toBeGreaterThan(lightness(colorAt(diverging, 1)));
    expect(colorAt(colormap('viridis'), 0)).toEqual([0x44, 0x01, 0x54]);
    expect(colorAt(colormap('inferno'), 1)).toEqual([0xfc, 0xff, 0xa4]);
    expect(colorAt(colormap('viridis'), Number.NaN)).toEqual(colorAt(colormap('viridis'), 0));
    expect(colormapNames).toHaveLength(4);
  });
});

describe('pictures by spatial rank', () => {
  it('draws 1D samples as plots, 2D as images, 3D as slices', () => {
    const oneD = renderSample({ data: Float32Array.from({ length: 40 }, (_, i) => Math.sin(i / 3)), dims: [2, 20] });
    expect(oneD.width).toBe(320);
    const twoD = renderSample({ data: new Float32Array(3 * 8 * 8).fill(0.5), dims: [3, 8, 8] });
    expect(twoD.width).toBe(112);
    const threeD = renderSample({ data: new Float32Array(4 * 8 * 8), dims: [1, 4, 8, 8] });
    expect(threeD.width).toBeGreaterThan(4 * 8 * 4);
    expect(renderHeat(new Float32Array(20).fill(1), [20]).height).toBeGreaterThan(0);
    expect(renderOverlay({ data: new Float32Array(64), dims: [1, 8, 8] }, new Float32Array(64)).width).toBe(112);
    // many channels (embeddings): a channel × position image
    const text = renderSample({ data: Float32Array.from({ length: 300 * 10 }, (_, i) => Math.cos(i)), dims: [300, 10] });
    expect(text.height).toBeGreaterThanOrEqual(300);
    const plot = linePlot([{ values: [0, 1, 0], color: [255, 0, 0] }], { width: 50, height: 30, band: [1, 1], heat: [0, 1, 0] });
    expect([plot.width, plot.height]).toEqual([50, 38]);
  });
});

describe('random warps', () => {
  it('the identity warp copies the input', () => {
    const table = warpTable([5, 7], { shift: [0, 0], scale: 1, rotation: 0 });
    for (let p = 0; p < 35; p++) {
      const weights = Array.from(table.weights.subarray(4 * p, 4 * p + 4));
      const indices = Array.from(table.indices.subarray(4 * p, 4 * p + 4));
      expect(indices.reduce((sum, index, t) => (weights[t]! > 0 ? sum + index * weights[t]! : sum), 0)).toBeCloseTo(p, 5);
    }
  });

  it('is linear with the transpose as its gradient: ⟨M x, y⟩ = ⟨x, ∇ₓ⟨M x, y⟩⟩', () => {
    fc.assert(
      fc.property(
        fc.constantFrom([9], [6, 7], [3, 5, 4]),
        fc.integer({ min: -3, max: 3 }),
        fc.double({ min: 0.85, max: 1.15, noNaN: true }),
        fc.double({ min: -20, max: 20, noNaN: true }),
        fc.integer({ min: 0, max: 1000 }),
        (spatial, shift, scale, rotation, seed) => {
          const warp = { shift: spatial.map((_, a) => (a % 2 ? shift : -shift)), scale, rotation };
          const shape = [1, ...spatial, 2];
          const size = shape.reduce((a, b) => a * b, 1);
          const x = tf.tensor(Float32Array.from({ length: size }, (_, i) => Math.sin(i * 1.3 + seed)), shape);
          const y = tf.tensor(Float32Array.from({ length: size }, (_, i) => Math.cos(i * 0.7 + seed)), shape);
          const [forward, backward] = tf.tidy(() => {
            const inner = (v: tf.Tensor) => tf.sum(tf.mul(applyWarp(v, warp), y)) as tf.Scalar;
            const gradient = tf.grad(inner)(x);
            return [inner(x).dataSync()[0]!, tf.sum(tf.mul(x, gradient)).dataSync()[0]!];
          });
          tf.dispose([x, y]);
          expect(backward).toBeCloseTo(forward, 3);
          // each output is a convex combination of inputs
          const table = warpTable(spatial, warp);
          for (let p = 0; p < table.weights.length / table.taps; p++) {
            const sum = table.weights.subarray(p * table.taps, (p + 1) * table.taps).reduce((a, b) => a + b, 0);
            expect(sum).toBeCloseTo(1, 5);
          }
        },
      ),
      { numRuns: 12, seed: 7 },
    );
  });

  it('blur keeps the mean and lowers total variation', () => {
    const shape = [1, 8, 8, 1];
    const data = Float32Array.from({ length: 64 }, (_, i) => ((i * 37) % 11) / 10);
    const before = tf.tidy(() => totalVariation(tf.tensor(data, shape)).dataSync()[0]!);
    const mean = data.reduce((a, b) => a + b, 0) / 64;
    gaussianBlur(data, shape, 1);
    expect(data.reduce((a, b) => a + b, 0) / 64).toBeCloseTo(mean, 1);
    expect(tf.tidy(() => totalVariation(tf.tensor(data, shape)).dataSync()[0]!)).toBeLessThan(before / 2);
  });
});

describe('receptive-field alignment and boxes', () => {
  it('puts unit u at input position c₀ + u·S', () => {
    // a valid 5-tap conv over 16 samples: 12 units, unit u centred at 2 + u
    const map = new Float32Array(12);
    map[3] = 1;
    const aligned = resampleToInput(map, [12], [16], [{ stride: 1, center: 2 }]);
    expect(Array.from(aligned.subarray(4, 7))).toEqual([0, 1, 0]);
    // a plain resize spreads it over its neighbours and shifts it
    const plain = resampleToInput(map, [12], [16]);
    expect(plain[5]).toBeLessThan(1);
    expect(argmaxOf(plain)).toBe(4);
  });

  it('finds foreground boxes, heat shares and central mass boxes', () => {
    const data = new Float32Array(36);
    data[2 * 6 + 3] = 1;
    data[4 * 6 + 1] = 0.5;
    const box = foregroundBox({ data, dims: [1, 6, 6] }, 0.1)!;
    expect(box).toEqual({ start: [2, 1], end: [4, 3] });
    expect(heatFractionInside(data, [6, 6], box)).toBe(1);
    expect(heatFractionInside(new Float32Array(36).fill(1), [6, 6], box)).toBeCloseTo(9 / 36, 6);
    expect(foregroundBox({ data: new Float32Array(36), dims: [1, 6, 6] }, 0.1)).toBeUndefined();
    const spread = Float32Array.from({ length: 20 }, (_, i) => (i >= 5 && i <= 14 ? 1 : 0));
    expect(centralBox(spread, [20], 0.5)).toEqual({ start: [7], end: [12] });
    expect(centralBox(new Float32Array(5), [5])).toBeUndefined();
  });
});

describe('layers and Grad-CAM', () => {
  const text = `model G {
  input x: f32[N, 2, 6, 5]
  f = x -> conv(4, 3, pad: same) -> relu
  logits = f -> globalavgpool -> flatten -> dense(3)
  output logits
}`;
  let engine: TfjsEngine;
  const graph = compile(text);
  const weights = randomWeights(graph, 3);
  beforeAll(async () => {
    engine = await TfjsEngine.create(graph, weights, { backend: 'wasm' });
  });
  afterAll(() => engine.dispose());

  it('resolves layer names, output names and scopes, and suggests close names', () => {
    expect(resolveLayer(graph, 'f.relu1').name).toBe('f.relu1');
    expect(resolveLayer(graph, 'logits').name).toBe('logits.dense1');
    expect(resolveLayer(graph, 'f').name).toBe('f.relu1');
    expect(() => resolveLayer(graph, 'f.rleu1')).toThrow(VizError);
    try {
      resolveLayer(graph, 'f.rleu1');
    } catch (error) {
      expect((error as VizError).hint).toBe("did you mean 'f.relu1'?");
    }
    expect(classifierFeatureLayers(graph).map((n) => n.name)).toEqual(['f.relu1']);
  });

  it('equals CAM for a global-average-pooling network: relu(Σₖ w_ck Aₖ)/Z', async () => {
    const sample = { data: Float32Array.from({ length: 60 }, (_, i) => Math.sin(i * 1.7)), dims: [2, 6, 5] };
    const activations = tf.tidy(() => runGraph(engine, new Map([['x', sampleToInternal(sample)]]), { targets: ['f.relu1'] }).get('f.relu1')!.dataSync());
    const w = weights.get('logits.dense1.weight')!.data;
    for (const k of [0, 1, 2]) {
      const result = await gradCam(engine, sample, { classIndex: k });
      for (let p = 0; p < 30; p++) {
        let v = 0;
        for (let c = 0; c < 4; c++) v += w[k * 4 + c]! * activations[p * 4 + c]!;
        expect(result.layers[0]!.cam[p]).toBeCloseTo(Math.max(0, v) / 30, 6);
      }
      expect(result.probabilities.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    }
    await expect(gradCam(engine, sample, { classIndex: 3 })).rejects.toThrow(/outside 0\.\.2/);
    await expect(gradCam(engine, { data: new Float32Array(60), dims: [2, 5, 6] }, {})).rejects.toThrow(/takes \[2, 6, 5\]/);
  });
});

describe('HiResCAM', () => {
  const sample = { data: Float32Array.from({ length: 60 }, (_, i) => Math.cos(i * 0.9)), dims: [2, 6, 5] };
  const run = async (text: string, check: (engine: TfjsEngine, weights: ReturnType<typeof randomWeights>) => Promise<void>) => {
    const graph = compile(text);
    const weights = randomWeights(graph, 5);
    const engine = await TfjsEngine.create(graph, weights, { backend: 'wasm' });
    try {
      await check(engine, weights);
    } finally {
      engine.dispose();
    }
  };

  it('equals Grad-CAM under global average pooling (the gradient is the same at every position)', async () => {
    await run(
      `model G {\n  input x: f32[N, 2, 6, 5]\n  f = x -> conv(4, 3, pad: same) -> relu\n  logits = f -> globalavgpool -> flatten -> dense(3)\n  output logits\n}`,
      async (engine) => {
        for (const k of [0, 1, 2]) {
          const plain = await gradCam(engine, sample, { classIndex: k });
          expect(plain.method).toBe('gradcam'); // auto: Grad-CAM under global average pooling
          const hires = await gradCam(engine, sample, { classIndex: k, method: 'hirescam' });
          hires.layers[0]!.cam.forEach((v, p) => expect(v).toBeCloseTo(plain.layers[0]!.cam[p]!, 6));
        }
      },
    );
  });

  it('keeps position-specific weights of a flatten → dense head: Lᵢ = relu(Σₖ w_c,(k,i) Aᵏᵢ)', async () => {
    await run(
      `model H {\n  input x: f32[N, 2, 6, 5]\n  f = x -> conv(4, 3, pad: same) -> relu\n  logits = f -> flatten -> dense(3)\n  output logits\n}`,
      async (engine, weights) => {
        const activations = tf.tidy(() => runGraph(engine, new Map([['x', sampleToInternal(sample)]]), { targets: ['f.relu1'] }).get('f.relu1')!.dataSync());
        const w = weights.get('logits.dense1.weight')!; // [3, 4·6·5], flattened in NCHW order
        const features = w.shape[1]!;
        for (const k of [0, 1, 2]) {
          const result = await gradCam(engine, sample, { classIndex: k, method: 'hirescam' });
          const plain = await gradCam(engine, sample, { classIndex: k, method: 'gradcam' });
          // the default (auto) picks HiResCAM for a flatten → dense head
          expect((await gradCam(engine, sample, { classIndex: k })).method).toBe('hirescam');
          for (let p = 0; p < 30; p++) {
            let v = 0;
            for (let c = 0; c < 4; c++) v += w.data[k * features + c * 30 + p]! * activations[p * 4 + c]!;
            expect(result.layers[0]!.cam[p]).toBeCloseTo(Math.max(0, v), 5);
          }
          expect(result.method).toBe('hirescam');
          expect([...result.layers[0]!.cam]).not.toEqual([...plain.layers[0]!.cam]);
        }
      },
    );
  });
});

describe('SVG charts', () => {
  it('draws series with gaps, a legend and escaped text, on a log axis when values span decades', () => {
    const svg = lineChart({ title: 'RF <size>', yLabel: 'pixels', xLabels: ['a', 'b', 'c'], series: [{ name: 'rf', values: [1, null, 400], color: '#123456' }] });
    expect(svg).toContain('RF &lt;size&gt;');
    expect(svg).toContain('(log scale)');
    expect(svg.match(/<circle /g)).toHaveLength(2);
    expect(escapeXml(`"a" & 'b'`)).toBe('&quot;a&quot; &amp; &#39;b&#39;');
    const linear = lineChart({ title: 'loss', xLabels: ['1', '2'], series: [{ name: 'train', values: [0.9, 0.5], color: '#000' }] });
    expect(linear).not.toContain('log scale');
  });
});

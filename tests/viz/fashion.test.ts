/**
 * The visualisation acceptance on Fashion-MNIST with specs/fashion.cnn itself, trained by `convspec train` for one
 * epoch on the embedded subset inside the test (tests/viz/acceptance.test.ts repeats the figures on a properly
 * trained model): filters differ from the untrained model's, activation maximisation raises its target ≥ 10× over
 * the starting noise, Grad-CAM for the true class puts most of its mass inside the object's bounding box for ≥ 80%
 * of test samples, inversion from an early layer beats a late one. Then the CLI end to end, determinism for a fixed
 * seed, and the HTML report (with the training's history.json) opened in headless Chromium with no console errors;
 * its screenshot is written under out/viz-test/ (or $CONVSPEC_TEST_OUTPUT) and its path printed.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkSpec } from '../../src/check.js';
import type { Graph } from '../../src/ir/graph.js';
import { initializeWeights, type Weights } from '../../src/ir/weights.js';
import { loadFashionMnist, type Dataset } from '../../src/runtime/data/dataset.js';
import { TfjsEngine } from '../../src/runtime/tfjs/engine.js';
import { decodePngRaster } from '../../src/runtime/viz/raster.js';
import { loadWeightsFile } from '../../src/runtime/weights-file.js';
import { describeFigures, measureAcceptance, type AcceptanceFigures } from './acceptance.js';
import { findChromium, renderPage } from './chromium.js';
import { runCli, temporaryDirectory } from './helpers.js';

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const outputDirectory = process.env['CONVSPEC_TEST_OUTPUT'] ? path.resolve(process.env['CONVSPEC_TEST_OUTPUT']) : path.join(projectRoot, 'out', 'viz-test');
const specFile = path.join(projectRoot, 'specs', 'fashion.cnn');

const directory = temporaryDirectory('convspec-viz-fashion-');
afterAll(() => fs.rmSync(directory, { recursive: true, force: true }));

let graph: Graph;
let engine: TfjsEngine;
let trained: Weights;
let test: Dataset;
let weightsFile: string;
let historyFile: string;

beforeAll(async () => {
  const started = Date.now();
  const training = await runCli('train', specFile, '--data', 'fashion-mnist-subset', '--epochs', '2', '--batch', '32', '--lr', '3e-3', '--backend', 'wasm', '-o', directory);
  expect(training.code, training.stderr).toBe(0);
  console.log(`${training.stdout.split('\n')[0]} (trained in ${((Date.now() - started) / 1000).toFixed(1)} s)`);
  weightsFile = path.join(directory, 'FashionCNN.safetensors');
  historyFile = path.join(directory, 'history.json');
  graph = checkSpec(specFile).graph!;
  trained = loadWeightsFile(weightsFile, graph).weights!;
  engine = await TfjsEngine.create(graph, trained, { backend: 'wasm' });
  test = loadFashionMnist('test', { forceSubset: true });
});
afterAll(() => engine?.dispose());

describe('acceptance on a Fashion-MNIST CNN trained by convspec', () => {
  let figures: AcceptanceFigures;
  beforeAll(async () => {
    figures = await measureAcceptance(engine, graph, trained, initializeWeights(graph, 42), test, {
      maximizeLayer: 'stage2.conv_bn_relu2.relu1',
      maximizeChannels: [0, 1, 2, 3, 4, 5, 6, 7],
      maximizeSteps: 128,
      gradcamSamples: 100,
      earlyLayer: 'stage1.conv_bn_relu1.relu1',
      lateLayer: 'stage2.conv_bn_relu2.relu1',
      invertSamples: 2,
      invertSteps: 120,
    });
    console.log(describeFigures(figures));
  });

  it('draws filters that differ from the untrained model’s', () => {
    expect(figures.filters.layer).toBe('stage1.conv_bn_relu1.conv1');
    expect(figures.filters.width).toBeGreaterThan(150);
    expect(figures.filters.identical).toBe(false);
    expect(figures.filters.meanAbsoluteDifference).toBeGreaterThan(1);
  });

  it('raises the target activation at least 10× over the starting noise', () => {
    expect(figures.maximizeMedianRatio).toBeGreaterThanOrEqual(10);
    expect(figures.maximizeAtLeast10x).toBeGreaterThanOrEqual(0.5);
    for (const m of figures.maximize) expect(m.end).toBeGreaterThan(m.start);
  });

  // Plain Grad-CAM (--method gradcam) does not meet this on Fashion-MNIST: the CNN ends in flatten → dense, whose
  // weights differ per position, and Grad-CAM averages them per channel; with batch norm the black background is
  // also active in every map. HiResCAM keeps the per-position weights and meets it with no reference input; a black
  // reference (--baseline zeros) moves every variant's map towards the object. The figures of all five are printed.
  it('puts most of HiResCAM (the default method here) for the true class inside the object’s box for ≥ 80% of samples', () => {
    const cam = figures.gradcam.hirescam;
    expect(cam.mostlyInBox).toBeGreaterThanOrEqual(0.8);
    // more in the box than a uniform map would put there
    expect(cam.meanInBox).toBeGreaterThan(cam.meanBoxArea);
    expect(cam.meanInBox).toBeGreaterThan(figures.gradcam.gradcam.meanInBox);
  });

  it('a black reference moves Grad-CAM towards the object, and Grad-CAM++ with it passes 80% too', () => {
    expect(figures.gradcam['gradcam++, black reference'].mostlyInBox).toBeGreaterThanOrEqual(0.8);
    expect(figures.gradcam['gradcam, black reference'].meanInBox).toBeGreaterThan(figures.gradcam.gradcam.meanInBox);
  });

  it('reconstructs the input better from an early layer than from a late one', () => {
    expect(figures.invert.early).toBeLessThan(figures.invert.late);
    expect(figures.invert.earlyBetter).toBe(1);
  });
});

describe('the CLI on the trained model', () => {
  const out = () => path.join(directory, 'cli');

  it('writes every picture and its numbers', async () => {
    const common = [specFile, '--weights', weightsFile, '--backend', 'wasm', '-o', out()];
    const filters = await runCli('viz', 'filters', ...common);
    expect(filters.code, filters.stderr).toBe(0);
    expect(filters.stdout).toMatch(/stage1\.conv_bn_relu1\.conv1: kernels \[32, 1, 3, 3\] \(first layer\)/);
    const deeper = await runCli('viz', 'filters', ...common, '--layer', 'stage2');
    expect(deeper.code, deeper.stderr).toBe(0);
    expect(deeper.stderr).toMatch(/not image-space patterns/);

    const cam = await runCli('viz', 'gradcam', ...common, '--data', 'fashion-mnist-subset', '--count', '3');
    expect(cam.code, cam.stderr).toBe(0);
    expect(cam.stdout).toMatch(/#0 label Ankle boot: predicted/);
    // the default method is auto: HiResCAM for this flatten → dense head, and it says why
    expect(cam.stderr).toMatch(/note: method auto: HiResCAM, since stage2\.conv_bn_relu2\.relu1 reaches the classifier through a flatten/);
    expect(JSON.parse(fs.readFileSync(path.join(out(), 'gradcam.json'), 'utf8')).method).toBe('hirescam');
    const camJson = JSON.parse(fs.readFileSync(path.join(out(), 'gradcam.json'), 'utf8')) as { samples: { layers: { layer: string; alignedByReceptiveField: boolean }[]; heatInForegroundBox: number }[] };
    expect(camJson.samples).toHaveLength(3);
    expect(camJson.samples[0]!.layers).toEqual([{ layer: 'stage2.conv_bn_relu2.relu1', dims: [14, 14], alignedByReceptiveField: true }]);
    const overlay = decodePngRaster(fs.readFileSync(path.join(out(), 'gradcam-1-overlay.png')));
    expect([overlay.width, overlay.height]).toEqual([112, 112]);
    const referenced = await runCli('viz', 'gradcam', ...common, '--data', 'fashion-mnist-subset', '--index', '9', '--method', 'gradcam++', '--baseline', 'zeros', '--class', '7');
    expect(referenced.code, referenced.stderr).toBe(0);
    expect(referenced.stdout).toMatch(/#9 label .*map for Sneaker/);
    const plain = await runCli('viz', 'gradcam', ...common, '--data', 'fashion-mnist-subset', '--index', '9', '--method', 'gradcam');
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stderr).toMatch(/note: stage2\.conv_bn_relu2\.relu1 reaches the classifier through a flatten.*--method hirescam keeps them/);
    expect(JSON.parse(fs.readFileSync(path.join(out(), 'gradcam.json'), 'utf8')).method).toBe('gradcam');

    const maximize = await runCli('viz', 'maximize', ...common, '--class', '1,7', '--steps', '64');
    expect(maximize.code, maximize.stderr).toBe(0);
    expect(maximize.stdout).toMatch(/class 1 score of logits\.dense1: .* → /);

    const invert = await runCli('viz', 'invert', ...common, '--data', 'fashion-mnist-subset', '--index', '2', '--layer', 'stage1.conv_bn_relu1.relu1', '--layer', 'stage2', '--steps', '30');
    expect(invert.code, invert.stderr).toBe(0);
    expect(invert.stdout).toMatch(/stage2\.dropout1: relative error/);

    // stage2's second conv: r = 14, S = 2, P = 6, so unit (3, 4) reads rows 0..13 and columns 2..15
    const rf = await runCli('viz', 'rf', ...common, '--data', 'fashion-mnist-subset', '--index', '0', '--layer', 'stage2.conv_bn_relu2.relu1', '--unit', '3,4');
    expect(rf.code, rf.stderr).toBe(0);
    expect(rf.stdout).toMatch(/unit \[3, 4\] of \[14, 14\]: theoretical field 14×14 at \[0\.\.13, 2\.\.15\]/);
    expect(rf.stdout).toMatch(/100\.00% of the gradient inside the theoretical box/);
    for (const file of ['filters.png', 'gradcam.png', 'maximize.png', 'maximize.npy', 'invert.png', 'rf.png']) expect(fs.existsSync(path.join(out(), file)), file).toBe(true);
  });

  it('gives the same bytes for the same seed', async () => {
    const run = async (seed: string, where: string) => {
      const result = await runCli('viz', 'maximize', specFile, '--weights', weightsFile, '--backend', 'wasm', '--layer', 'stage2.conv_bn_relu2.relu1', '--channel', '2', '--steps', '12', '--seed', seed, '-o', path.join(directory, where));
      expect(result.code, result.stderr).toBe(0);
      return fs.readFileSync(path.join(directory, where, 'maximize.png'));
    };
    const first = await run('5', 'seed-a');
    expect((await run('5', 'seed-b')).equals(first)).toBe(true);
    expect((await run('6', 'seed-c')).equals(first)).toBe(false);
  });
});

describe('the HTML report', () => {
  it('is one self-contained file that headless Chromium opens without console errors', async () => {
    // the history is found next to the weights, where convspec train wrote it
    const result = await runCli('report', specFile, '--weights', weightsFile, '--data', 'fashion-mnist-subset', '--count', '4', '--method', 'gradcam++', '--baseline-zeros', '--backend', 'wasm', '-o', outputDirectory);
    expect(result.stderr).toContain(`training curves from ${historyFile}`);
    expect(result.code, result.stderr).toBe(0);
    const file = path.join(outputDirectory, 'report.html');
    const html = fs.readFileSync(file, 'utf8');
    // nothing to fetch: no scripts, no external URLs in src/href, images inline
    expect(html).not.toMatch(/<script/i);
    expect(html).not.toMatch(/(src|href)="(?!data:|#)/i);
    expect(html).not.toMatch(/url\(/i);
    expect(html.match(/<img src="data:image\/png;base64,/g)?.length).toBe(1 + 4);
    expect(html.match(/<svg /g)?.length).toBe(4);
    for (const section of ['Layers', 'Shapes and receptive fields', 'Filters', 'Grad-CAM on test samples', 'Training']) expect(html).toContain(`<h2>${section}</h2>`);
    expect(html).toContain('Grad-CAM++ against an all-zero reference input at stage2.conv_bn_relu2.relu1');

    if (!findChromium()) throw new Error('chromium is not installed: apt-get install -y chromium (CI installs it in .ci/run)');
    const page = await renderPage(file, { width: 1200 });
    const screenshot = path.join(outputDirectory, 'report.png');
    fs.writeFileSync(screenshot, page.screenshot);
    console.log(`report screenshot: ${screenshot} (${page.height} px tall)`);
    expect(page.errors).toEqual([]);
    const image = decodePngRaster(page.screenshot);
    expect(image.width).toBe(1200);
    expect(image.height).toBeGreaterThan(1500);
    // the page is not blank: many distinct colours
    const colours = new Set<number>();
    for (let i = 0; i < image.data.length; i += 3 * 97) colours.add((image.data[i]! << 16) | (image.data[i + 1]! << 8) | image.data[i + 2]!);
    expect(colours.size).toBeGreaterThan(50);
  });

  it('the browser check catches errors when there are some', async () => {
    if (!findChromium()) throw new Error('chromium is not installed');
    const bad = path.join(directory, 'bad.html');
    fs.writeFileSync(bad, '<!DOCTYPE html><html><head><title>x</title><link rel="icon" href="data:,"></head><body><img src="missing.png"><script>console.error("deliberate")</script></body></html>');
    const page = await renderPage(bad);
    expect(page.errors.some((e) => e.includes('deliberate'))).toBe(true);
    expect(page.errors.some((e) => e.includes('missing.png'))).toBe(true);
  });
});

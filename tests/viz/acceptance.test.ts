/**
 * The acceptance figures on a properly trained specs/fashion.cnn, when one is at hand:
 *
 *   node bin/convspec.js train specs/fashion.cnn --data fashion-mnist --epochs 2 -o DIR
 *   CONVSPEC_VIZ_WEIGHTS=DIR/FashionCNN.safetensors npx vitest run tests/viz/acceptance.test.ts
 *
 * Skipped otherwise (training takes tens of minutes on two cores); tests/viz/fashion.test.ts checks the same
 * criteria on a model it trains on the embedded subset. Uses the full test split when Debian's
 * dataset-fashion-mnist is installed.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { checkSpec } from '../../src/check.js';
import { initializeWeights } from '../../src/ir/weights.js';
import { loadFashionMnist } from '../../src/runtime/data/dataset.js';
import { TfjsEngine } from '../../src/runtime/tfjs/engine.js';
import { evaluate } from '../../src/runtime/tfjs/train.js';
import { loadWeightsFile } from '../../src/runtime/weights-file.js';
import { describeFigures, measureAcceptance } from './acceptance.js';

const weightsFile = process.env['CONVSPEC_VIZ_WEIGHTS'];
const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

describe.skipIf(!weightsFile)('acceptance on a trained specs/fashion.cnn ($CONVSPEC_VIZ_WEIGHTS)', () => {
  it('meets the visualisation criteria', { timeout: 1_200_000 }, async () => {
    const { graph } = checkSpec(path.join(projectRoot, 'specs/fashion.cnn'));
    const loaded = loadWeightsFile(weightsFile!, graph!);
    expect(loaded.weights, loaded.diagnostics.map((d) => d.message).join('\n')).toBeDefined();
    const test = loadFashionMnist('test');
    const engine = await TfjsEngine.create(graph!, loaded.weights, { backend: 'wasm' });
    const accuracy = await evaluate(engine, test, { batchSize: 500 });
    console.log(`FashionCNN from ${weightsFile}: test accuracy ${(accuracy.accuracy * 100).toFixed(2)}% on ${accuracy.count}`);
    const samples = Number(process.env['CONVSPEC_VIZ_SAMPLES'] ?? 500);
    const figures = await measureAcceptance(engine, graph!, loaded.weights!, initializeWeights(graph!, 42), test, {
      maximizeLayer: 'stage2.conv_bn_relu2.relu1',
      maximizeChannels: Array.from({ length: 16 }, (_, i) => i),
      gradcamSamples: samples,
      earlyLayer: 'stage1.conv_bn_relu1.relu1',
      lateLayer: 'stage2.conv_bn_relu2.relu1',
      invertSamples: 10,
    });
    const text = describeFigures(figures);
    console.log(text);
    if (process.env['CONVSPEC_TEST_OUTPUT']) fs.writeFileSync(path.join(process.env['CONVSPEC_TEST_OUTPUT'], 'acceptance.txt'), `${text}\n`);
    engine.dispose();
    expect(figures.filters.identical).toBe(false);
    expect(figures.maximizeMedianRatio).toBeGreaterThanOrEqual(10);
    expect(figures.gradcam.hirescam.mostlyInBox).toBeGreaterThanOrEqual(0.8);
    expect(figures.gradcam['gradcam++, black reference'].mostlyInBox).toBeGreaterThanOrEqual(0.8);
    expect(figures.invert.early).toBeLessThan(figures.invert.late);
  });
});

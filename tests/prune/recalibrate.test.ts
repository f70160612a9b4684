/**
 * Batch-norm recalibration (`recalibrateBatchNorm`): the running statistics become the population mean and
 * (biased) variance of each batch norm's input over the given samples, whatever they were before and whatever
 * the batch size; weights do not change; a pruned model's accuracy comes back from chance.
 */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import type { Dataset } from '../../src/runtime/data/dataset.js';
import { TfjsEngine, toInternal } from '../../src/runtime/tfjs/engine.js';
import { recalibrateBatchNorm } from '../../src/runtime/tfjs/train.js';
import { randomWeights } from '../../src/ir/weights.js';
import { compileSpec } from '../../src/testing.js';

const graph = compileSpec(`model R {
  input image: f32[N, 1, 6, 6]
  f = image -> conv(3, 3, pad: same) -> bn -> relu -> conv(2, 3) -> bn
  logits = f -> flatten -> dense(2)
  output logits
}`).graph!;

function dataset(count: number): Dataset {
  const images = Float32Array.from({ length: count * 36 }, (_, i) => Math.sin(i * 0.37) * 2 + 0.5);
  const labels = Int32Array.from({ length: count }, (_, i) => i % 2);
  return { images, labels, shape: [1, 6, 6], count };
}

/**
 * The statistics one training-mode forward pass over all the data in one batch reports: the population mean
 * and biased variance of each batch norm's input, by a different route than pooling over several batches.
 */
function oneBatchStatistics(engine: TfjsEngine, data: Dataset): Map<string, { mean: Float32Array; variance: Float32Array }> {
  const found = new Map<string, { mean: Float32Array; variance: Float32Array }>();
  tf.tidy(() => {
    const x = toInternal(tf.tensor(data.images, [data.count, 1, 6, 6]));
    engine.forward(new Map([['image', x]]), {
      training: true,
      onBatchStatistics: ({ node, mean, variance }) => found.set(node.name, { mean: mean.dataSync() as Float32Array, variance: variance.dataSync() as Float32Array }),
    });
  });
  return found;
}

describe('recalibrateBatchNorm', () => {
  it('sets each running mean and variance to the population statistics of its input, leaving the weights alone', async () => {
    const weights = randomWeights(graph, 3);
    const engine = await TfjsEngine.create(graph, weights, { backend: 'cpu' });
    try {
      const data = dataset(50);
      const before = engine.getWeightsSync();
      const layers = await recalibrateBatchNorm(engine, data, { batchSize: 16 });
      expect(layers).toEqual(['f.bn1', 'f.bn2']);
      const after = engine.getWeightsSync();
      for (const [name, tensor] of before) {
        if (/running_(mean|var)$/.test(name)) expect(after.get(name)!.data, name).not.toEqual(tensor.data);
        else expect(after.get(name)!.data, name).toEqual(tensor.data);
      }
      // bn1's input (conv1's output) depends on the weights only, so one batch of everything gives its exact
      // population statistics; bn2's input passes bn1, which normalises with each batch's own statistics in
      // training mode, so its figures depend a little on how the data is batched
      for (const [bn, expected] of oneBatchStatistics(engine, data)) {
        const digits = bn === 'f.bn1' ? 4 : 1;
        const mean = after.get(`${bn}.running_mean`)!.data;
        const variance = after.get(`${bn}.running_var`)!.data;
        expected.mean.forEach((m, i) => expect(mean[i], bn).toBeCloseTo(m, digits));
        expected.variance.forEach((v, i) => expect(variance[i], bn).toBeCloseTo(v, digits - 1));
      }
      // the batch size does not matter (pooled, not averaged per batch)
      const again = await TfjsEngine.create(graph, weights, { backend: 'cpu' });
      await recalibrateBatchNorm(again, data, { batchSize: 7 });
      const other = again.getWeightsSync();
      again.dispose();
      for (const name of ['f.bn1.running_mean', 'f.bn1.running_var']) {
        after.get(name)!.data.forEach((v, i) => expect(other.get(name)!.data[i]).toBeCloseTo(v, 4));
      }
    } finally {
      engine.dispose();
    }
  });
});

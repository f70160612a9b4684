/**
 * Feature inversion (Mahendran & Vedaldi, "Understanding Deep Image Representations by Inverting Them", 2015):
 * the input a layer's features describe, found by minimising over x
 *
 *   E(x) = ‖Φ(x) − Φ(x₀)‖² / ‖Φ(x₀)‖²  +  λ_tv·TV(x)  +  λ_l2·N(x)
 *
 * from low-contrast noise, with Adam and projection onto the data range, where Φ is the layer's output, TV the
 * total variation with β = 2 and N the L2 decay, both in mean form (./transforms.ts). One reconstruction per layer:
 * early layers keep almost everything (the reconstruction matches x₀ closely); deep layers keep what the task
 * needs and drop the rest (position, texture, exact intensities), so their reconstructions drift. The relative
 * error ‖x − x₀‖/‖x₀‖ measures what was dropped.
 */
import * as tf from '@tensorflow/tfjs';
import { createMulberry32, deriveSeed } from '../../random.js';
import type { TfjsEngine } from '../tfjs/engine.js';
import { checkSample, feedsOf, internalToSample, readScalar, resolveLayer, runGraph, sampleToInternal, variableName } from './network.js';
import type { Sample } from './render.js';
import { l2Decay, totalVariation } from './transforms.js';

export interface InvertOptions {
  /** Default 300. */
  readonly steps?: number;
  /** Default 0.05. */
  readonly learningRate?: number;
  /** Default 0.05. */
  readonly tv?: number;
  /** Default 1e-3. */
  readonly l2?: number;
  readonly seed?: number;
  /** Data range for the projection and the starting noise; default [0, 1]; null for none. */
  readonly range?: readonly [number, number] | null;
}

export interface Inversion {
  readonly layer: string;
  readonly reconstruction: Sample;
  /** ‖x − x₀‖ / ‖x₀‖. */
  readonly relativeError: number;
  /** ‖Φ(x) − Φ(x₀)‖² / ‖Φ(x₀)‖² at the end. */
  readonly featureLoss: number;
}

export async function invertFeatures(engine: TfjsEngine, sample: Sample, layerNames: readonly string[], options: InvertOptions = {}): Promise<Inversion[]> {
  const graph = engine.graph;
  checkSample(graph, sample);
  const layers = layerNames.map((name) => resolveLayer(graph, name));
  const steps = options.steps ?? 300;
  const seed = options.seed ?? 0;
  const range = options.range === undefined ? ([0, 1] as const) : options.range;
  const middle = range ? (range[0] + range[1]) / 2 : 0;
  const span = range ? range[1] - range[0] : 1;
  const tvWeight = options.tv ?? 0.05;
  const l2Weight = options.l2 ?? 1e-3;

  engine.activate();
  const original = sampleToInternal(sample);
  const results: Inversion[] = [];
  try {
    for (const [index, layer] of layers.entries()) {
      const target = tf.tidy(() => runGraph(engine, feedsOf(engine, original), { targets: [layer.name] }).get(layer.name)!);
      const targetNorm = tf.tidy(() => tf.maximum(tf.sum(tf.square(target)), 1e-12));
      const noise = createMulberry32(deriveSeed(seed, 3, index));
      const initial = new Float32Array(original.size);
      for (let i = 0; i < initial.length; i++) initial[i] = middle + 0.1 * span * (noise() - 0.5);
      const x = tf.variable(tf.tensor(initial, original.shape, 'float32'), true, variableName('invert'));
      const optimizer = tf.train.adam(options.learningRate ?? 0.05);
      const featureLoss = (value: tf.Tensor) => {
        const features = runGraph(engine, feedsOf(engine, value), { targets: [layer.name] }).get(layer.name)!;
        return tf.div(tf.sum(tf.square(tf.sub(features, target))), targetNorm) as tf.Scalar;
      };
      try {
        for (let step = 0; step < steps; step++) {
          tf.tidy(() => {
            optimizer.minimize(() => tf.add(featureLoss(x), tf.add(tf.mul(totalVariation(x), tvWeight), tf.mul(l2Decay(x, middle), l2Weight))) as tf.Scalar, false, [x]);
            if (range) x.assign(tf.clipByValue(x, range[0], range[1]));
          });
        }
        const finalLoss = await readScalar(tf.tidy(() => featureLoss(x)));
        const relativeError = await readScalar(tf.tidy(() => tf.div(tf.norm(tf.sub(x, original)), tf.maximum(tf.norm(original), 1e-12))));
        results.push({ layer: layer.name, reconstruction: await internalToSample(x), relativeError, featureLoss: finalLoss });
      } finally {
        x.dispose();
        optimizer.dispose();
        target.dispose();
        targetNorm.dispose();
      }
    }
  } finally {
    original.dispose();
  }
  return results;
}

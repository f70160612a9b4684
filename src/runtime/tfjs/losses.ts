/**
 * Losses and metrics for classification outputs [N, K] (logits, before any softmax or sigmoid).
 *
 * Targets are built from integer labels on the host (tfjs's OneHot kernel is wrong on the wasm backend, see
 * ./wasm-kernels.ts); label smoothing ε mixes them with the uniform distribution:
 *   cross_entropy          t = (1 − ε)·onehot(y) + ε/K;  L = mean_n −Σ_k t_k · log_softmax(z)_k
 *   binary_cross_entropy   per logit, t = onehot(y) (or y itself for a single output unit), t ← (1 − ε)·t + ε/2;
 *                          L = mean_{n,k} max(z, 0) − z·t + log(1 + e^−|z|)   (the stable form of BCE on sigmoid(z))
 *   mse                    t as for binary cross-entropy; L = mean_{n,k} (z − t)²
 * Accuracy: the arg-max logit (first on ties) equals the label; for a single output unit, z > 0 ⇔ label 1.
 * Top-k: the label's logit is among the k largest (ties counted in the label's favour only if strictly fewer
 * than k logits are larger).
 */
import * as tf from '@tensorflow/tfjs';

export const lossKinds = ['cross_entropy', 'binary_cross_entropy', 'mse'] as const;
export type LossKind = (typeof lossKinds)[number];

export interface LossOptions {
  readonly kind: LossKind;
  /** ε in [0, 1); default 0. */
  readonly labelSmoothing?: number;
}

/** Targets for a batch of labels, as a [N, K] float32 tensor. */
export function lossTargets(labels: Int32Array, classes: number, options: LossOptions): tf.Tensor2D {
  const smoothing = options.labelSmoothing ?? 0;
  const data = new Float32Array(labels.length * classes);
  const singleUnit = classes === 1 && options.kind !== 'cross_entropy';
  for (let n = 0; n < labels.length; n++) {
    const label = labels[n]!;
    if (singleUnit) data[n] = label;
    else data[n * classes + label] = 1;
  }
  if (smoothing > 0) {
    const uniform = options.kind === 'cross_entropy' ? 1 / classes : 0.5;
    for (let i = 0; i < data.length; i++) data[i] = (1 - smoothing) * data[i]! + smoothing * uniform;
  }
  return tf.tensor2d(data, [labels.length, classes]);
}

/** The mean loss of a batch (a scalar on the gradient tape when called inside one). */
export function computeLoss(logits: tf.Tensor2D, targets: tf.Tensor2D, options: LossOptions): tf.Scalar {
  switch (options.kind) {
    case 'cross_entropy':
      return tf.neg(tf.mean(tf.sum(tf.mul(targets, tf.logSoftmax(logits)), 1))) as tf.Scalar;
    case 'binary_cross_entropy':
      return tf.mean(tf.add(tf.sub(tf.relu(logits), tf.mul(logits, targets)), tf.log1p(tf.exp(tf.neg(tf.abs(logits)))))) as tf.Scalar;
    case 'mse':
      return tf.mean(tf.squaredDifference(logits, targets)) as tf.Scalar;
  }
}

/** Counts of correct predictions in a batch: top-1 and each requested top-k. */
export function countCorrect(logits: Float32Array, labels: Int32Array, classes: number, topK: readonly number[]): { top1: number; topK: number[] } {
  let top1 = 0;
  const hits = topK.map(() => 0);
  for (let n = 0; n < labels.length; n++) {
    const label = labels[n]!;
    if (classes === 1) {
      const predicted = logits[n]! > 0 ? 1 : 0;
      if (predicted === label) top1++;
      topK.forEach((_, i) => {
        if (predicted === label) hits[i]!++;
      });
      continue;
    }
    const row = logits.subarray(n * classes, (n + 1) * classes);
    let best = 0;
    for (let k = 1; k < classes; k++) if (row[k]! > row[best]!) best = k;
    if (best === label) top1++;
    const labelLogit = row[label]!;
    let larger = 0;
    for (let k = 0; k < classes; k++) if (row[k]! > labelLogit) larger++;
    topK.forEach((k, i) => {
      if (larger < k) hits[i]!++;
    });
  }
  return { top1, topK: hits };
}

/**
 * ResNet-18 written directly in TensorFlow.js ops (NHWC), the way a user would hand-write it: tf.conv2d with the
 * spec's explicit pads, tf.batchNorm with the running statistics, tf.relu, tf.add, tf.maxPool, tf.mean and
 * tf.matMul. The weights come from a convspec engine (IR layout: conv [O, I, kH, kW], dense [out, in]) and are
 * converted once, so both forwards compute the same function: bench/groups/engine.js times the engine against it.
 */
import * as tf from '@tensorflow/tfjs';

const STAGES = [
  { name: 'stage1', channels: 64, stride: 1 },
  { name: 'stage2', channels: 128, stride: 2 },
  { name: 'stage3', channels: 256, stride: 2 },
  { name: 'stage4', channels: 512, stride: 2 },
];

/** Converts IR-layout weights (a Map name → { shape, data }) to tfjs tensors; returns the forward function. */
export function handWrittenResnet18(weights) {
  const tensors = new Map();
  const get = (name) => {
    const w = weights.get(name);
    if (!w) throw new Error(`missing weight ${name}`);
    return w;
  };
  const conv = (name) => {
    if (!tensors.has(name)) {
      const w = get(`${name}.weight`);
      tensors.set(name, tf.tidy(() => tf.transpose(tf.tensor(w.data, w.shape), [2, 3, 1, 0])));
    }
    return tensors.get(name);
  };
  const bn = (name) => {
    if (!tensors.has(name)) {
      const vector = (role) => tf.tensor1d(get(`${name}.${role}`).data);
      tensors.set(name, { gamma: vector('weight'), beta: vector('bias'), mean: vector('running_mean'), variance: vector('running_var') });
    }
    return tensors.get(name);
  };
  const dense = tf.tidy(() => ({ weight: tf.transpose(tf.tensor(get('logits.dense1.weight').data, get('logits.dense1.weight').shape)), bias: tf.tensor1d(get('logits.dense1.bias').data) }));
  const pads = (p) => [[0, 0], [p, p], [p, p], [0, 0]];
  const convBn = (x, convName, bnName, stride, pad) => {
    const b = bn(bnName);
    return tf.batchNorm(tf.conv2d(x, conv(convName), stride, pads(pad)), b.mean, b.variance, b.beta, b.gamma, 1e-5);
  };
  // create every tensor once, outside any timing
  const names = [...weights.keys()];
  for (const name of names) {
    if (name.endsWith('.running_mean')) bn(name.slice(0, -'.running_mean'.length));
    else if (/conv\d+\.weight$/.test(name)) conv(name.slice(0, -'.weight'.length));
  }

  /** NHWC input [N, 224, 224, 3] → logits [N, 1000]. */
  function forward(image) {
    return tf.tidy(() => {
      let x = tf.relu(convBn(image, 'stem.conv1', 'stem.bn1', 2, 3));
      x = tf.maxPool(x, 3, 2, pads(1));
      let inChannels = 64;
      for (const stage of STAGES) {
        for (let block = 1; block <= 2; block++) {
          const prefix = `${stage.name}.basic${block}`;
          const stride = block === 1 ? stage.stride : 1;
          let y = tf.relu(convBn(x, `${prefix}.conv1`, `${prefix}.bn1`, stride, 1));
          y = convBn(y, `${prefix}.conv2`, `${prefix}.bn2`, 1, 1);
          const shortcut = block === 1 && (stride !== 1 || inChannels !== stage.channels) ? convBn(x, `${prefix}.conv3`, `${prefix}.bn3`, stride, 0) : x;
          x = tf.relu(tf.add(y, shortcut));
          inChannels = stage.channels;
        }
      }
      const pooled = tf.mean(x, [1, 2]);
      return tf.add(tf.matMul(pooled, dense.weight), dense.bias);
    });
  }
  return { forward, dispose: () => { for (const t of tensors.values()) tf.dispose(t instanceof tf.Tensor ? t : Object.values(t)); tf.dispose(Object.values(dense)); } };
}

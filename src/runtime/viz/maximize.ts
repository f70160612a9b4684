/**
 * Activation maximisation (Erhan et al. 2009; Olah et al., "Feature Visualization", Distill 2017): find an input
 * x that makes one unit, channel or class score large, by gradient ascent on x with priors that keep x natural.
 *
 * Objective a(x): the mean over positions of channel c of a feature map (lucid's `channel`), unit c of a dense
 * layer, or the pre-softmax score of class k. One step, with a random warp T drawn per step (jitter, scale,
 * rotation: lucid's transform robustness) and L2 decay and total variation as in tf-keras-vis's defaults:
 *
 *   g = ∇ₓ a(T(x)) / rms(∇ₓ a(T(x)))                    (normalised: one set of weights fits every layer)
 *   x ← Adam(x, −g + λ_tv·∇TV(x) + λ_l2·∇N(x))           (TV and N in their sum forms, see ./transforms.ts)
 *   x ← clip(x, lo, hi)                                   (the data range; optional)
 *   every k steps, optionally: x ← blur_σ(x)              (Yosinski et al. 2015)
 *
 * The start is uniform noise over the data range (tf-keras-vis's default; lucid's low-contrast grey is `init:
 * 'grey'), drawn from a seeded generator; warps
 * come from another seeded stream, so a fixed seed gives the same result bit for bit on one backend. The
 * activation a is reported at the start and the end, both without a warp.
 */
import * as tf from '@tensorflow/tfjs';
import type { Node } from '../../ir/graph.js';
import { createMulberry32, deriveSeed } from '../../random.js';
import type { TfjsEngine } from '../tfjs/engine.js';
import { classCount, feedsOf, internalToSample, modelInput, readScalar, resolveLayer, runGraph, scoreNode, variableName, VizError } from './network.js';
import type { Sample } from './render.js';
import { applyWarp, gaussianBlur, l2Decay, randomWarp, totalVariation, type WarpOptions } from './transforms.js';
import { concreteSampleDims } from './shapes.js';

export interface MaximizeOptions {
  /** Layer whose channel (or unit) to maximise; with `classIndex` and no layer, the class-score layer. */
  readonly layer?: string;
  readonly channel?: number;
  readonly classIndex?: number;
  /** Default 256. */
  readonly steps?: number;
  /** Adam step size, in input units. Default 0.05. */
  readonly learningRate?: number;
  /** Default 0. */
  readonly seed?: number;
  /** Total-variation weight (sum form, relative to the normalised objective gradient). Default 0.25. */
  readonly tv?: number;
  /** L2-decay weight. Default 0.05. */
  readonly l2?: number;
  /** Warps; default jitter ≈ 4% of the smallest side (at least 1), scale ±5%, rotation ±5° (not for 1D). */
  readonly warp?: Partial<WarpOptions>;
  /** Gaussian blur σ (input samples) applied every `blurEvery` steps; default none. */
  readonly blurSigma?: number;
  readonly blurEvery?: number;
  /** Clip to this range after each step (the data range); default [0, 1]; `null` for no clipping. */
  readonly range?: readonly [number, number] | null;
  /** Sample dims [C, …] when the model input has symbolic sizes. */
  readonly sampleDims?: readonly number[];
  /**
   * The starting noise: 'uniform' over the range (tf-keras-vis's default, default here) or 'grey', low-contrast
   * noise around the middle of the range (lucid's, after its sigmoid).
   */
  readonly init?: 'uniform' | 'grey';
}

export interface MaximizeResult {
  readonly sample: Sample;
  readonly layer: string;
  readonly target: string;
  /** a(x) at the starting noise and at the end. */
  readonly start: number;
  readonly end: number;
  /** a(x) every 16 steps. */
  readonly history: number[];
  readonly notes: string[];
}

interface Objective {
  readonly node: Node;
  readonly description: string;
  readonly value: (output: tf.Tensor) => tf.Scalar;
}

function objectiveOf(engine: TfjsEngine, options: MaximizeOptions): Objective {
  const graph = engine.graph;
  if (options.classIndex !== undefined) {
    const score = options.layer === undefined ? scoreNode(graph).node : resolveLayer(graph, options.layer);
    const classes = classCount(score);
    const k = options.classIndex;
    if (!Number.isInteger(k) || k < 0 || k >= classes) throw new VizError(`class ${k} is outside 0..${classes - 1} of ${score.name}`);
    return {
      node: score,
      description: `class ${k} score of ${score.name}`,
      value: (output) => tf.sum(tf.slice(tf.reshape(output, [1, classes]), [0, k], [1, 1])) as tf.Scalar,
    };
  }
  if (options.layer === undefined) throw new VizError('say which layer to maximise (--layer NAME) or which class (--class K)');
  const node = resolveLayer(graph, options.layer);
  const channels = node.shape[1];
  if (typeof channels !== 'number') throw new VizError(`${node.name} has a symbolic number of channels`);
  const c = options.channel ?? 0;
  if (!Number.isInteger(c) || c < 0 || c >= channels) throw new VizError(`channel ${c} is outside 0..${channels - 1} of ${node.name}`);
  if (node.shape.length <= 2) {
    return { node, description: `unit ${c} of ${node.name}`, value: (output) => tf.sum(tf.slice(tf.reshape(output, [1, channels]), [0, c], [1, 1])) as tf.Scalar };
  }
  return {
    node,
    description: `mean of channel ${c} of ${node.name}`,
    value: (output) => {
      const begin = new Array<number>(output.rank).fill(0);
      const size = [...output.shape];
      begin[output.rank - 1] = c;
      size[output.rank - 1] = 1;
      return tf.mean(tf.slice(output, begin, size)) as tf.Scalar;
    },
  };
}

export async function maximizeActivation(engine: TfjsEngine, options: MaximizeOptions): Promise<MaximizeResult> {
  const graph = engine.graph;
  const input = modelInput(graph);
  const dims = concreteSampleDims(graph, options.sampleDims);
  const objective = objectiveOf(engine, options);
  const spatial = dims.slice(1);
  const spatialRank = spatial.length;
  const steps = options.steps ?? 256;
  const seed = options.seed ?? 0;
  const range = options.range === undefined ? ([0, 1] as const) : options.range;
  const middle = range ? (range[0] + range[1]) / 2 : 0;
  const span = range ? range[1] - range[0] : 1;
  const smallest = Math.min(...spatial);
  const warpOptions: WarpOptions = {
    jitter: options.warp?.jitter ?? Math.max(1, Math.round(0.04 * smallest)),
    scale: options.warp?.scale ?? 0.05,
    rotation: spatialRank >= 2 ? (options.warp?.rotation ?? 5) : 0,
  };
  const tvWeight = options.tv ?? 0.25;
  const l2Weight = options.l2 ?? 0.05;
  const notes: string[] = [];

  // internal layout [1, S…, C]; low-contrast noise around the middle of the range
  const internal = [1, ...spatial, dims[0]!];
  const noise = createMulberry32(deriveSeed(seed, 1));
  const initial = new Float32Array(internal.reduce((a, b) => a * b, 1));
  const contrast = (options.init ?? 'uniform') === 'uniform' ? 1 : 0.1;
  for (let i = 0; i < initial.length; i++) initial[i] = middle + contrast * span * (noise() - 0.5);

  engine.activate();
  const x = tf.variable(tf.tensor(initial, internal, 'float32'), true, variableName('maximize'));
  const optimizer = tf.train.adam(options.learningRate ?? 0.05);
  const evaluate = (value: tf.Tensor) => objective.value(runGraph(engine, feedsOf(engine, value), { targets: [objective.node.name] }).get(objective.node.name)!);
  const history: number[] = [];
  try {
    const start = await readScalar(tf.tidy(() => evaluate(x)));
    const initialGradient = await readScalar(tf.tidy(() => tf.max(tf.abs(tf.grad((value: tf.Tensor) => evaluate(value))(x)))));
    if (initialGradient === 0) notes.push(`the gradient of the ${objective.description} is zero at the starting noise (an inactive unit): ascent cannot start; try another seed, channel or --range`);
    const warps = createMulberry32(deriveSeed(seed, 2));
    const blurEvery = options.blurEvery ?? 4;
    for (let step = 0; step < steps; step++) {
      const warp = randomWarp(warps, spatialRank, warpOptions);
      tf.tidy(() => {
        const gradient = tf.grad((value: tf.Tensor) => evaluate(applyWarp(value, warp)))(x);
        const rms = tf.add(tf.sqrt(tf.mean(tf.square(gradient))), 1e-12);
        const prior = tf.grad((value: tf.Tensor) => tf.add(tf.mul(totalVariation(value, false), tvWeight), tf.mul(l2Decay(value, middle, false), l2Weight)) as tf.Scalar)(x);
        const total = tf.sub(prior, tf.div(gradient, rms));
        optimizer.applyGradients([{ name: x.name, tensor: total }]);
        if (range) x.assign(tf.clipByValue(x, range[0], range[1]));
      });
      if (options.blurSigma && options.blurSigma > 0 && (step + 1) % blurEvery === 0) {
        const data = Float32Array.from((await x.data()) as Float32Array);
        gaussianBlur(data, internal, options.blurSigma);
        x.assign(tf.tensor(data, internal, 'float32'));
      }
      if (step % 16 === 15 || step === steps - 1) history.push(await readScalar(tf.tidy(() => evaluate(x))));
    }
    const end = steps > 0 ? history[history.length - 1]! : start;
    const sample = await internalToSample(x);
    if (start <= 0 && end > 0) notes.push(`the activation started at ${start.toPrecision(3)} (not positive), so no ratio end/start is meaningful`);
    return { sample, layer: objective.node.name, target: objective.description, start, end, history, notes: [...notes, `input '${input.name}' optimised in [${range ? range.join(', ') : '−∞, ∞'}]`] };
  } finally {
    x.dispose();
    optimizer.dispose();
  }
}

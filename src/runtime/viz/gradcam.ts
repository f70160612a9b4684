/**
 * Grad-CAM (Selvaraju et al. 2017) and Grad-CAM++ (Chattopadhyay et al. 2018) for 1D, 2D and 3D models.
 *
 * For class c with pre-softmax score yᶜ and a feature map A (channels k, positions i over any number of spatial
 * axes), with gᵏᵢ = ∂yᶜ/∂Aᵏᵢ:
 *   Grad-CAM     αᵏ = (1/Z) Σᵢ gᵏᵢ
 *   Grad-CAM++   αᵏ = Σᵢ aᵏᵢ·relu(gᵏᵢ),  aᵏᵢ = gᵏᵢ² / (2gᵏᵢ² + Σⱼ Aᵏⱼ·gᵏᵢ³)   (0 where the denominator is 0;
 *                the closed form for an exponential score, with first-order gradients, as the authors' code has it)
 *   map          L = relu(Σₖ αᵏ Aᵏ)
 *   HiResCAM     Lᵢ = relu(Σₖ gᵏᵢ Aᵏᵢ)   (Draelos & Carin 2020: no averaging of the gradient over positions, so
 *                with a flatten → dense head — position-specific weights, as in specs/fashion.cnn — the map is the
 *                score's exact first-order decomposition over positions; when the map feeds global average
 *                pooling directly the gradient is the same at every position and it equals Grad-CAM)
 * The default method, `auto`, is HiResCAM for a map that reaches the classifier through a flatten (the dense
 * layer's per-position weights are the model's evidence, and Grad-CAM's average discards them: 72 % of the maps
 * of the trained specs/fashion.cnn put most of their mass on the object against 99 % for HiResCAM) and Grad-CAM
 * otherwise, where the two are equal; the result names the method that ran and a note says why.
 * Nothing here assumes two spatial axes: the sums run over whatever positions the map has, which is what
 * pytorch-grad-cam (2D only; its 1D request #361, 3D only for plain Grad-CAM #583) lacks.
 *
 * Several layers (a model whose branches each end in a map, such as TextCNN's windows 3, 4 and 5) give one map
 * each; each is brought to input resolution with receptive-field alignment (./resample.ts) and the maps are
 * summed: to first order each branch adds Σₖ αᵏAᵏ to the score, so the sum is the model's, not one branch's.
 *
 * Gradients with respect to A come from `runGraph`'s `replace` hook (./network.ts): no second model is built.
 *
 * Optional reference input (`baseline`, not in the papers): L = relu(Σₖ αᵏ (Aᵏ − Aᵏ_ref)). Units that are just as
 * active for an empty input — background lit by batch-norm shifts and biases — then add nothing, so the map shows
 * what this input changed, in the spirit of DeepLIFT's reference. On Fashion-MNIST it moves the map onto the
 * object (see tests/viz/fashion.test.ts); without it, Grad-CAM also shows evidence of absence (the empty space
 * above a sneaker, which tells it from an ankle boot).
 */
import * as tf from '@tensorflow/tfjs';
import type { Node } from '../../ir/graph.js';
import { inferReceptiveFields } from '../../passes/receptive-field.js';
import type { TfjsEngine } from '../tfjs/engine.js';
import { checkSample, classCount, classifierFeatureLayers, feedsOf, feedsPositionSpecificHead, modelInput, resolveLayer, runGraph, sampleToInternal, scoreNode, VizError } from './network.js';
import type { Sample } from './render.js';
import { resampleToInput, type AxisPlacement } from './resample.js';

export type CamMethod = 'gradcam' | 'gradcam++' | 'hirescam';

/** A method, or `auto`: HiResCAM where a map reaches the classifier through a flatten, Grad-CAM elsewhere. */
export type CamMethodChoice = CamMethod | 'auto';

/** How a method is named in reports and captions. */
export const CAM_METHOD_NAMES: Readonly<Record<CamMethod, string>> = { gradcam: 'Grad-CAM', 'gradcam++': 'Grad-CAM++', hirescam: 'HiResCAM' };

export interface GradCamOptions {
  /** Feature-map layers; default the maps that feed the classifier (`classifierFeatureLayers`). */
  readonly layers?: readonly string[];
  /** Class to explain; default the predicted one. */
  readonly classIndex?: number;
  /** Default `auto` (see `CamMethodChoice`); the result says which method ran. */
  readonly method?: CamMethodChoice;
  /**
   * A reference input (an empty image): the map weighs A − A_ref instead of A, so activations the reference has
   * too (a background lit up by batch-norm shifts) do not count. Not part of Grad-CAM as published.
   */
  readonly baseline?: Sample;
}

export interface LayerCam {
  readonly layer: string;
  /** Spatial dims of the layer's map. */
  readonly dims: number[];
  /** The map at the layer's resolution (after ReLU). */
  readonly cam: Float32Array;
  /** αᵏ per channel (HiResCAM: the gradient's mean per channel, which it does not use). */
  readonly weights: Float32Array;
  /** Whether receptive fields placed the map (else a plain resize). */
  readonly aligned: boolean;
}

export interface GradCamResult {
  readonly method: CamMethod;
  readonly classIndex: number;
  readonly predicted: number;
  /** Pre-softmax scores and softmax probabilities of the sample. */
  readonly scores: Float32Array;
  readonly probabilities: Float32Array;
  /** The summed map at input resolution, over the input's spatial dims. */
  readonly heat: Float32Array;
  readonly spatial: number[];
  readonly layers: LayerCam[];
  readonly notes: string[];
}

function pickLayers(engine: TfjsEngine, names: readonly string[] | undefined): Node[] {
  const graph = engine.graph;
  const rank = modelInput(graph).shape.length;
  const nodes = names && names.length > 0 ? names.map((n) => resolveLayer(graph, n)) : classifierFeatureLayers(graph);
  if (nodes.length === 0) throw new VizError(`${graph.name} has no feature map that feeds a class score`, 'name a layer with spatial axes: --layer NAME');
  for (const node of nodes) {
    if (node.shape.length !== rank) throw new VizError(`'${node.name}' [${node.shape.length - 1} axes after the batch] has no spatial axes; Grad-CAM weighs the positions of a feature map`, 'pick a conv, activation or pooling layer before flatten / global pooling');
  }
  return nodes;
}

function softmax(scores: Float32Array): Float32Array {
  const max = Math.max(...scores);
  const exps = scores.map((s) => Math.exp(s - max));
  const total = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / total);
}

export async function gradCam(engine: TfjsEngine, sample: Sample, options: GradCamOptions = {}): Promise<GradCamResult> {
  const graph = engine.graph;
  checkSample(graph, sample);
  if (options.baseline) {
    checkSample(graph, options.baseline);
    if (options.baseline.dims.join() !== sample.dims.join()) throw new VizError(`the baseline is [${options.baseline.dims.join(', ')}] but the sample is [${sample.dims.join(', ')}]`);
  }
  const score = scoreNode(graph);
  const classes = classCount(score.node);
  const layers = pickLayers(engine, options.layers);
  const fields = inferReceptiveFields(graph).fields;
  const notes: string[] = score.note ? [score.note] : [];
  // Maps whose head weighs every position separately: Grad-CAM's per-channel average of the gradient discards
  // those weights, HiResCAM keeps them (and equals Grad-CAM under global average pooling).
  const flattened = layers.map((l) => l.name).filter((n) => feedsPositionSpecificHead(graph, n));
  const choice = options.method ?? 'auto';
  const method: CamMethod = choice === 'auto' ? (flattened.length > 0 ? 'hirescam' : 'gradcam') : choice;
  if (choice === 'auto' && method === 'hirescam')
    notes.push(`method auto: HiResCAM, since ${flattened.join(', ')} reaches the classifier through a flatten whose dense layer weighs every position separately (Grad-CAM would average those weights per channel; --method gradcam for it)`);
  else if (method !== 'hirescam' && flattened.length > 0)
    notes.push(`${flattened.join(', ')} reaches the classifier through a flatten, whose dense layer weighs every position separately; ${CAM_METHOD_NAMES[method]} averages those weights per channel, and --method hirescam keeps them`);
  const spatial = sample.dims.slice(1);

  engine.activate();
  const x = sampleToInternal(sample);
  try {
    const feeds = feedsOf(engine, x);
    const names = layers.map((l) => l.name);
    const forward = runGraph(engine, feeds, { targets: [...names, score.node.name] });
    const maps = names.map((n) => forward.get(n)!);
    const scores = Float32Array.from((await tf.reshape(forward.get(score.node.name)!, [classes]).data()) as Float32Array);
    const predicted = scores.indexOf(Math.max(...scores));
    const classIndex = options.classIndex ?? predicted;
    if (!Number.isInteger(classIndex) || classIndex < 0 || classIndex >= classes) throw new VizError(`class ${classIndex} is outside 0..${classes - 1}`);

    const target = (...values: tf.Tensor[]) => {
      const replace = new Map(names.map((n, i) => [n, values[i]!] as const));
      const out = runGraph(engine, feeds, { targets: [score.node.name], replace }).get(score.node.name)!;
      return tf.sum(tf.slice(tf.reshape(out, [1, classes]), [0, classIndex], [1, 1])) as tf.Scalar;
    };
    const gradients = tf.tidy(() => tf.grads(target)(maps));
    const references = options.baseline
      ? tf.tidy(() => {
          const reference = runGraph(engine, feedsOf(engine, sampleToInternal(options.baseline!)), { targets: names });
          return names.map((n) => reference.get(n)!);
        })
      : undefined;

    const layerCams: LayerCam[] = [];
    const heat = new Float32Array(spatial.reduce((a, b) => a * b, 1));
    for (let l = 0; l < layers.length; l++) {
      const map = maps[l]!;
      const gradient = gradients[l]!;
      const spatialAxes = Array.from({ length: map.rank - 2 }, (_, i) => i + 1);
      const [cam, weights] = tf.tidy(() => {
        const shown = references ? tf.sub(map, references[l]!) : map;
        if (method === 'hirescam') return [tf.relu(tf.sum(tf.mul(shown, gradient), -1)), tf.reshape(tf.mean(gradient, spatialAxes), [-1])];
        let alpha: tf.Tensor;
        if (method === 'gradcam') alpha = tf.mean(gradient, spatialAxes, true);
        else {
          const g2 = tf.square(gradient);
          const g3 = tf.mul(g2, gradient);
          const sumA = tf.sum(map, spatialAxes, true);
          const denominator = tf.add(tf.mul(g2, 2), tf.mul(sumA, g3));
          const safe = tf.where(tf.notEqual(denominator, 0), denominator, tf.onesLike(denominator));
          const a = tf.where(tf.notEqual(denominator, 0), tf.div(g2, safe), tf.zerosLike(denominator));
          alpha = tf.sum(tf.mul(a, tf.relu(gradient)), spatialAxes, true);
        }
        const weighted = tf.relu(tf.sum(tf.mul(shown, alpha), -1));
        return [weighted, tf.reshape(alpha, [-1])];
      });
      const camData = Float32Array.from((await cam.data()) as Float32Array);
      const weightData = Float32Array.from((await weights.data()) as Float32Array);
      const dims = map.shape.slice(1, -1);
      tf.dispose([cam, weights]);
      const field = fields.get(layers[l]!.name);
      const placements: (AxisPlacement | undefined)[] | undefined = field ? field.stride.map((s, i) => ({ stride: s, center: field.center[i]! })) : undefined;
      const aligned = placements !== undefined && placements.every((p) => p!.stride > 0);
      const upsampled = resampleToInput(camData, dims, spatial, aligned ? placements : undefined);
      for (let i = 0; i < heat.length; i++) heat[i]! += upsampled[i]!;
      layerCams.push({ layer: layers[l]!.name, dims, cam: camData, weights: weightData, aligned });
    }
    tf.dispose(gradients);
    if (references) tf.dispose(references);
    tf.dispose([...forward.values()]);
    if (heat.every((v) => v === 0)) notes.push(`the map is zero: no position of ${names.join(', ')} raises the score of class ${classIndex} to first order`);
    if (layers.length > 1) notes.push(`the maps of ${layers.length} layers (${names.join(', ')}) are summed at input resolution`);
    return { method, classIndex, predicted, scores, probabilities: softmax(scores), heat, spatial, layers: layerCams, notes };
  } finally {
    x.dispose();
  }
}

/** An axis-aligned box in sample positions: inclusive [start, end] per spatial axis. */
export interface Box {
  readonly start: readonly number[];
  readonly end: readonly number[];
}

/** The smallest box holding every position where some channel exceeds `threshold` (undefined if none does). */
export function foregroundBox(sample: Sample, threshold: number): Box | undefined {
  const channels = sample.dims[0]!;
  const spatial = sample.dims.slice(1);
  const count = spatial.reduce((a, b) => a * b, 1);
  const start = spatial.map(() => Infinity);
  const end = spatial.map(() => -Infinity);
  for (let p = 0; p < count; p++) {
    let on = false;
    for (let c = 0; c < channels && !on; c++) on = sample.data[c * count + p]! > threshold;
    if (!on) continue;
    let rest = p;
    for (let axis = spatial.length - 1; axis >= 0; axis--) {
      const position = rest % spatial[axis]!;
      rest = Math.floor(rest / spatial[axis]!);
      start[axis] = Math.min(start[axis]!, position);
      end[axis] = Math.max(end[axis]!, position);
    }
  }
  return Number.isFinite(start[0]!) ? { start, end } : undefined;
}

/** Fraction of the (non-negative) heat inside the box; 0 when the heat is all zero. */
export function heatFractionInside(heat: ArrayLike<number>, spatial: readonly number[], box: Box): number {
  let inside = 0;
  let total = 0;
  const count = spatial.reduce((a, b) => a * b, 1);
  for (let p = 0; p < count; p++) {
    const v = Math.max(0, heat[p]!);
    total += v;
    let rest = p;
    let within = true;
    for (let axis = spatial.length - 1; axis >= 0; axis--) {
      const position = rest % spatial[axis]!;
      rest = Math.floor(rest / spatial[axis]!);
      if (position < box.start[axis]! || position > box.end[axis]!) within = false;
    }
    if (within) inside += v;
  }
  return total > 0 ? inside / total : 0;
}

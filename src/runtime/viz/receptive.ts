/**
 * Theoretical and effective receptive fields of one unit.
 *
 * Theoretical (Araujo et al., Distill 2019; ../../passes/receptive-field.ts): unit u of a layer with field size r,
 * effective stride S and effective padding P reads input positions [−P + u·S, −P + u·S + r − 1] on each axis.
 *
 * Effective (Luo et al., "Understanding the Effective Receptive Field in Deep CNNs", 2016): how much each input
 * position actually moves the unit, |∂y/∂x| with y = Σ_channels A[u], summed over input channels — measured at the
 * given inputs, or averaged over seeded noise inputs when none is given (Luo et al.'s setting). Gradient mass outside
 * the theoretical field is exactly zero, which the result reports as a check of both computations. The effective
 * extent is the central interval holding 95% of the gradient mass on each axis (2.5% cut on either side); Luo et al.
 * found it grows like √depth while the theoretical field grows linearly.
 */
import * as tf from '@tensorflow/tfjs';
import { inferReceptiveFields } from '../../passes/receptive-field.js';
import { createMulberry32, deriveSeed } from '../../random.js';
import type { TfjsEngine } from '../tfjs/engine.js';
import type { Box } from './gradcam.js';
import { heatFractionInside } from './gradcam.js';
import { checkSample, feedsOf, modelInput, resolveLayer, runGraph, sampleToInternal, VizError } from './network.js';
import type { Sample } from './render.js';
import { concreteSampleDims } from './shapes.js';

export interface ReceptiveFieldOptions {
  readonly layer: string;
  /** Unit position per spatial axis of the layer; default its centre unit. */
  readonly unit?: readonly number[];
  /** Noise inputs to average over when no samples are given. Default 8. */
  readonly noiseSamples?: number;
  readonly seed?: number;
  /** Noise range; default [0, 1]. */
  readonly range?: readonly [number, number];
  readonly sampleDims?: readonly number[];
}

export interface ReceptiveFieldMap {
  readonly layer: string;
  /** Unit position on the layer's grid. */
  readonly unit: number[];
  /** The layer's spatial dims. */
  readonly layerDims: number[];
  /** Input spatial dims. */
  readonly spatial: number[];
  /** Mean |∂y/∂x| over the inputs, summed over input channels, per input position. */
  readonly gradient: Float32Array;
  /** Theoretical field (may extend past the input into the padding). */
  readonly theoretical: Box;
  /** Field size r, effective stride S per axis. */
  readonly size: number[];
  readonly stride: number[];
  /** Fraction of gradient mass inside the theoretical field (1 up to rounding). */
  readonly massInside: number;
  /** Central box with 95% of the mass per axis; undefined when the gradient is zero. */
  readonly effective: Box | undefined;
  readonly inputs: number;
  readonly notes: string[];
}

/** The central interval per axis holding `mass` of the total (marginal quantiles). */
export function centralBox(values: ArrayLike<number>, spatial: readonly number[], mass = 0.95): Box | undefined {
  const count = spatial.reduce((a, b) => a * b, 1);
  const marginals = spatial.map((n) => new Float64Array(n));
  let total = 0;
  for (let p = 0; p < count; p++) {
    const v = Math.abs(values[p]!);
    total += v;
    let rest = p;
    for (let axis = spatial.length - 1; axis >= 0; axis--) {
      marginals[axis]![rest % spatial[axis]!]! += v;
      rest = Math.floor(rest / spatial[axis]!);
    }
  }
  if (!(total > 0)) return undefined;
  const cut = ((1 - mass) / 2) * total;
  const start: number[] = [];
  const end: number[] = [];
  for (const marginal of marginals) {
    let acc = 0;
    let s = 0;
    while (s < marginal.length - 1 && acc + marginal[s]! <= cut) acc += marginal[s++]!;
    acc = 0;
    let e = marginal.length - 1;
    while (e > s && acc + marginal[e]! <= cut) acc += marginal[e--]!;
    start.push(s);
    end.push(e);
  }
  return { start, end };
}

export async function receptiveFieldMap(engine: TfjsEngine, samples: readonly Sample[], options: ReceptiveFieldOptions): Promise<ReceptiveFieldMap> {
  const graph = engine.graph;
  const input = modelInput(graph);
  const node = resolveLayer(graph, options.layer);
  const rank = input.shape.length;
  if (node.shape.length !== rank) throw new VizError(`'${node.name}' has no spatial axes: every one of its units sees the whole input`, 'pick a conv, activation or pooling layer before flatten / global pooling');
  const field = inferReceptiveFields(graph).fields.get(node.name);
  if (!field) throw new VizError(`'${node.name}' does not depend on input '${input.name}'`);
  const notes: string[] = [];
  let inputs: Sample[] = [...samples];
  for (const sample of inputs) checkSample(graph, sample);
  if (inputs.length === 0) {
    const dims = concreteSampleDims(graph, options.sampleDims);
    const [lo, hi] = options.range ?? [0, 1];
    const count = options.noiseSamples ?? 8;
    for (let n = 0; n < count; n++) {
      const random = createMulberry32(deriveSeed(options.seed ?? 0, 4, n));
      const data = new Float32Array(dims.reduce((a, b) => a * b, 1));
      for (let i = 0; i < data.length; i++) data[i] = lo + (hi - lo) * random();
      inputs.push({ data, dims });
    }
    notes.push(`no input given: the gradient is averaged over ${count} uniform-noise inputs in [${lo}, ${hi}]`);
  }
  const spatial = inputs[0]!.dims.slice(1);
  engine.activate();
  // the layer's concrete grid for this input size
  const probe = sampleToInternal(inputs[0]!);
  const layerShape = tf.tidy(() => runGraph(engine, feedsOf(engine, probe), { targets: [node.name] }).get(node.name)!.shape);
  probe.dispose();
  const layerDims = layerShape.slice(1, -1);
  const unit = options.unit ? [...options.unit] : layerDims.map((n) => Math.floor((n - 1) / 2));
  if (unit.length !== layerDims.length || unit.some((u, i) => !Number.isInteger(u) || u < 0 || u >= layerDims[i]!)) {
    throw new VizError(`unit [${unit.join(', ')}] is outside ${node.name}'s grid [${layerDims.join(', ')}]`, `--unit takes ${layerDims.length} indices, each in 0..size−1`);
  }
  const gradient = new Float32Array(spatial.reduce((a, b) => a * b, 1));
  for (const sample of inputs) {
    const x = sampleToInternal(sample);
    const g = tf.tidy(() => {
      const unitValue = (value: tf.Tensor) => {
        const out = runGraph(engine, feedsOf(engine, value), { targets: [node.name] }).get(node.name)!;
        return tf.sum(tf.slice(out, [0, ...unit, 0], [1, ...unit.map(() => 1), -1])) as tf.Scalar;
      };
      // |∂y/∂x| summed over the input channels (the last axis inside the engine)
      return tf.sum(tf.abs(tf.grad(unitValue)(x)), -1);
    });
    const data = (await g.data()) as Float32Array;
    for (let i = 0; i < gradient.length; i++) gradient[i]! += data[i]! / inputs.length;
    tf.dispose([g, x]);
  }
  const theoretical: Box = {
    start: field.size.map((_, a) => -field.padding[a]! + unit[a]! * field.stride[a]!),
    end: field.size.map((r, a) => -field.padding[a]! + unit[a]! * field.stride[a]! + r - 1),
  };
  const massInside = heatFractionInside(gradient, spatial, theoretical);
  const effective = centralBox(gradient, spatial);
  if (!effective) notes.push(`the unit is inactive for ${samples.length > 0 ? 'this input' : 'these inputs'}: its gradient is zero everywhere`);
  return { layer: node.name, unit, layerDims, spatial, gradient, theoretical, size: [...field.size], stride: [...field.stride], massInside, effective, inputs: inputs.length, notes };
}

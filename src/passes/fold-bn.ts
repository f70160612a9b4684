/**
 * fold-bn: folds inference batch norm into the weighted op next to it.
 *
 * At inference a batch norm is a per-channel affine map with fixed statistics:
 *   BN(x)_c = γ_c (x_c − μ_c)/√(σ²_c + ε) + β_c = s_c·x_c + t_c,   s_c = γ_c/√(σ²_c + ε),   t_c = β_c − μ_c·s_c.
 *
 * Into the producer (conv / transposed conv / dense → BN), per output channel o:
 *   W'[o] = W[o]·s_o        b'_o = (b_o − μ_o)·s_o + β_o = b_o·s_o + t_o     (b = 0 without a bias: one is created)
 * The output channel is axis 0 of conv [out, in/groups, k…] and dense [out, in] weights, so grouped and depthwise
 * convs need nothing special. A transposed conv's weight is [in, out/groups, k…]: element (i, j) feeds output
 * channel o = ⌊i/(in/groups)⌋·(out/groups) + j.
 *
 * Into the consumer (BN → conv / dense, or BN → flatten → dense), per input channel c of output o:
 *   W'[o, c] = W[o, c]·s_c       b'_o = b_o + Σ_{c,k} W[o, c, k]·t_c
 * For a grouped conv, output o of group g reads input channels g·(in/groups) + c. This is exact only when every
 * output position sums the whole kernel over real input positions: with zero padding of the conv, border outputs
 * would read padded zeros where the BN would have produced t_c, so the shift is no longer one bias per channel.
 * Hence the consumer fold needs a conv without padding (1×1 convs as written usually are). After flatten,
 * feature f comes from channel ⌊f / (spatial size)⌋. A transposed conv consumer is refused: the number of inputs
 * each output sums varies near the borders even without padding.
 *
 * Refused, with the reason, where folding would change the function or cannot be done:
 *   - the weighted op's output has a second consumer or is a graph output (they would see the folded values);
 *   - the BN output has a second consumer or is a graph output (consumer fold);
 *   - the neighbour is not a conv, transposed conv or dense;
 *   - with option `training: true` (the graph will still be trained): a BN that is not frozen normalises with
 *     batch statistics and is no affine map, and a frozen BN must not move into a trainable op;
 *   - the weight tensor shares storage with another parameter (tied weights would be untied);
 *   - the consumer recorded an input quantization scale measured after the BN.
 * Every BN is reported: folded (into which node) or refused (why). Statistics are combined in float64 and the
 * result stored as float32. Guarantee: outputs preserved within 1e-5 relative to the largest output — or, where the
 * folded sums cancel (a large BN shift, then a ReLU that leaves only small outputs), relative to the largest sum of
 * |weight| × |input| terms, since float32 rounding of the folded weights errs relative to the terms.
 */
import type { Graph, Node, NodeOf } from '../ir/graph.js';
import { DrawnWeight, type WeightTensor } from '../ir/weights.js';
import { GraphEditor, editorResult } from './graph-editor.js';
import type { Pass, PassContext, PassResult } from './manager.js';

type BatchNorm = NodeOf<'batchnorm'>;
type Weighted = NodeOf<'conv'> | NodeOf<'conv_transpose'> | NodeOf<'dense'>;

/** BN(x)_c = scale_c·x_c + shift_c. */
export interface ChannelAffine {
  readonly scale: Float64Array;
  readonly shift: Float64Array;
}

export function batchNormAffine(bn: BatchNorm, weight: (name: string) => WeightTensor): ChannelAffine {
  const gamma = weight(`${bn.name}.weight`).data;
  const beta = weight(`${bn.name}.bias`).data;
  const mean = weight(`${bn.name}.running_mean`).data;
  const variance = weight(`${bn.name}.running_var`).data;
  const scale = new Float64Array(bn.channels);
  const shift = new Float64Array(bn.channels);
  for (let c = 0; c < bn.channels; c++) {
    scale[c] = gamma[c]! / Math.sqrt(variance[c]! + bn.epsilon);
    shift[c] = beta[c]! - mean[c]! * scale[c]!;
  }
  return { scale, shift };
}

function kindOf(node: Node): string {
  return node.op === 'conv' ? 'conv' : node.op === 'conv_transpose' ? 'transposed conv' : node.op === 'dense' ? 'dense' : node.op;
}

function describe(node: Node): string {
  return node.op === 'activation' ? `${node.fn.kind}` : kindOf(node);
}

function isWeightedOp(node: Node | undefined): node is Weighted {
  return node !== undefined && (node.op === 'conv' || node.op === 'conv_transpose' || node.op === 'dense');
}

/** Output channels of a weighted node. */
function outChannels(node: Weighted): number {
  return node.op === 'dense' ? node.units : node.filters;
}

interface FoldContext {
  readonly editor: GraphEditor;
  readonly training: boolean;
  /** Another parameter whose storage overlaps this one's, if any. */
  readonly sharesStorage: (param: string) => string | undefined;
  /** Where a folded weight goes: the old array when the caller handed the weights over, else a new one. */
  readonly resultArray: (old: Float32Array) => Float32Array;
}

/** A fold the checks accepted: applying it edits the graph and says what it did. */
type Plan = { readonly apply: () => string } | { readonly refused: string };

interface BatchNormFoldRule {
  /** `before → after`. */
  readonly summary: string;
  plan(bn: BatchNorm, context: FoldContext): Plan;
}

function trainingProblem(bn: BatchNorm, target: Weighted, context: FoldContext): string | undefined {
  if (!context.training) return undefined;
  if (!bn.frozen) return 'the batch norm is trained (not frozen): in training it normalises with batch statistics, which is no fixed affine map (fold it for an inference export)';
  if (!target.frozen) return `the batch norm is frozen but '${target.name}' is trainable: training would change the frozen scale folded into it`;
  return undefined;
}

function storageProblem(target: Weighted, context: FoldContext): string | undefined {
  const other = context.sharesStorage(`${target.name}.weight`) ?? (target.bias ? context.sharesStorage(`${target.name}.bias`) : undefined);
  return other ? `'${target.name}' shares weight storage with '${other}': folding would untie them` : undefined;
}

function secondReader(editor: GraphEditor, tensor: string, except: string): string | undefined {
  const other = editor.readers(tensor).find((n) => n.name !== except);
  if (other) return `('${other.name}')`;
  const output = editor.outputsOf(tensor)[0];
  return output ? `(the graph output '${output.name}')` : undefined;
}

/** Float64 values (sums and products are formed in float64) stored as float32. */
function float32(shape: readonly number[], values: Float64Array | Float32Array): WeightTensor {
  // The typed-array constructor converts in one native pass; Float32Array.from iterates element by element.
  return { shape, data: values instanceof Float32Array ? values : new Float32Array(values) };
}

/** The weight times scale[o] on every element feeding output channel o, each product rounded once to float32. */
function scaleOutputChannels(producer: Weighted, w: Float32Array, scale: Float64Array, context: FoldContext): Float32Array {
  // Each element is one float64 product rounded once to float32: written straight into the result.
  const folded = context.resultArray(w);
  if (producer.op === 'conv_transpose') {
    // [in, out/groups, k…]: element (i, j, ·) feeds output channel ⌊i/(in/groups)⌋·(out/groups) + j.
    const inPerGroup = producer.inChannels / producer.groups;
    const outPerGroup = producer.filters / producer.groups;
    const kernelSize = w.length / (producer.inChannels * outPerGroup);
    for (let i = 0; i < producer.inChannels; i++) {
      for (let j = 0; j < outPerGroup; j++) {
        const o = Math.floor(i / inPerGroup) * outPerGroup + j;
        const base = (i * outPerGroup + j) * kernelSize;
        for (let r = 0; r < kernelSize; r++) folded[base + r] = w[base + r]! * scale[o]!;
      }
    }
  } else {
    const channels = outChannels(producer);
    const perChannel = w.length / channels;
    for (let o = 0; o < channels; o++) {
      const s = scale[o]!;
      const end = (o + 1) * perChannel;
      for (let i = o * perChannel; i < end; i++) folded[i] = w[i]! * s;
    }
  }
  return folded;
}

const INTO_PRODUCER: BatchNormFoldRule = {
  summary: 'conv|deconv|dense(x; W, b) -> bn   →   conv|deconv|dense(x; W·s, b·s + t)',
  plan(bn, context) {
    const { editor } = context;
    const producerName = bn.inputs[0]!;
    const producer = editor.node(producerName);
    if (!isWeightedOp(producer)) return { refused: producer ? `its producer '${producerName}' (${describe(producer)}) is not a conv, transposed conv or dense` : `its producer is the graph input '${producerName}'` };
    const other = secondReader(editor, producerName, bn.name);
    if (other) return { refused: `the ${kindOf(producer)} output '${producerName}' has a second consumer ${other}` };
    const problem = trainingProblem(bn, producer, context) ?? storageProblem(producer, context);
    if (problem) return { refused: problem };
    return {
      apply() {
        const { scale, shift } = batchNormAffine(bn, (n) => editor.requireWeight(n));
        const weight = editor.requireWeight(`${producer.name}.weight`);
        const channels = outChannels(producer);
        // A fresh weight nobody has read (compile without --weights) takes the factors along and is drawn, folded,
        // as the file is written. A conv or dense weight's output channel is its first axis.
        const deferred = weight instanceof DrawnWeight && producer.op !== 'conv_transpose' ? weight.withRowScale(scale) : undefined;
        editor.setWeight(`${producer.name}.weight`, deferred ?? float32(weight.shape, scaleOutputChannels(producer, weight.data, scale, context)));
        const bias = producer.bias ? editor.requireWeight(`${producer.name}.bias`).data : new Float32Array(channels);
        const newBias = new Float64Array(channels);
        for (let o = 0; o < channels; o++) newBias[o] = bias[o]! * scale[o]! + shift[o]!;
        editor.setWeight(`${producer.name}.bias`, float32([channels], newBias));
        editor.replace(producer.bias ? producer : { ...producer, bias: true });
        editor.remove(bn.name, producer.name);
        return `folded ${bn.name} into ${producer.name} (its producer${producer.bias ? '' : '; created its bias'})`;
      },
    };
  },
};

const INTO_CONSUMER: BatchNormFoldRule = {
  summary: 'bn -> conv(pads 0)|dense|flatten->dense (W, b)   →   conv|dense(W·s, b + Σ W·t)',
  plan(bn, context) {
    const { editor } = context;
    const readers = editor.readers(bn.name);
    const outputs = editor.outputsOf(bn.name);
    if (outputs.length > 0) return { refused: `its output is the graph output '${outputs[0]!.name}'` };
    if (readers.length !== 1) return { refused: readers.length === 0 ? 'nothing reads it' : `its output has ${readers.length} consumers` };
    let reader = readers[0]!;
    // Features per channel after a flatten (1 when the dense reads the BN directly).
    let block = 1;
    let flatten: Node | undefined;
    if (reader.op === 'flatten') {
      const next = editor.readers(reader.name);
      if (next.length !== 1 || next[0]!.op !== 'dense' || editor.outputsOf(reader.name).length > 0)
        return { refused: `the flatten '${reader.name}' after it does not feed exactly one dense` };
      flatten = reader;
      reader = next[0]!;
      const features = bn.shape.slice(2).reduce<number | undefined>((a, d) => (a !== undefined && typeof d === 'number' ? a * d : undefined), 1);
      if (features === undefined) return { refused: `the flatten '${flatten.name}' reads a symbolic spatial size` };
      block = features;
    }
    if (reader.op === 'conv_transpose')
      return { refused: `its consumer '${reader.name}' is a transposed conv, whose outputs sum a varying number of inputs near the borders, so the shift is no constant bias` };
    if (!isWeightedOp(reader)) return { refused: `its consumer '${reader.name}' (${describe(reader)}) is not a conv or dense` };
    const consumer = reader;
    if (consumer.op === 'conv') {
      if (consumer.padding === 'same-dynamic' || [...consumer.padding.begin, ...consumer.padding.end].some((p) => p !== 0))
        return {
          refused: `its consumer '${consumer.name}' pads with zeros, where the batch norm would have produced β − μ·γ/√(σ²+ε): the shift would differ at the borders, so it is no bias`,
        };
    }
    if (consumer.quantization) return { refused: `'${consumer.name}' recorded an input quantization scale measured after the batch norm` };
    const problem = trainingProblem(bn, consumer, context) ?? storageProblem(consumer, context);
    if (problem) return { refused: problem };
    return {
      apply() {
        const { scale, shift } = batchNormAffine(bn, (n) => editor.requireWeight(n));
        const weight = editor.requireWeight(`${consumer.name}.weight`);
        const w = weight.data;
        const outputs = outChannels(consumer);
        const inputs = consumer.op === 'dense' ? consumer.inFeatures : consumer.inChannels;
        const groups = consumer.op === 'conv' ? consumer.groups : 1;
        const inPerGroup = inputs / groups;
        const outPerGroup = outputs / groups;
        const kernelSize = w.length / (outputs * inPerGroup);
        const folded = context.resultArray(w);
        const bias = consumer.bias ? editor.requireWeight(`${consumer.name}.bias`).data : new Float32Array(outputs);
        const newBias = new Float64Array(outputs);
        for (let o = 0; o < outputs; o++) {
          const group = Math.floor(o / outPerGroup);
          let sum = bias[o]!;
          for (let ci = 0; ci < inPerGroup; ci++) {
            const channel = Math.floor((group * inPerGroup + ci) / block);
            const base = (o * inPerGroup + ci) * kernelSize;
            for (let r = 0; r < kernelSize; r++) {
              const value = w[base + r]!;
              folded[base + r] = value * scale[channel]!;
              sum += value * shift[channel]!;
            }
          }
          newBias[o] = sum;
        }
        editor.setWeight(`${consumer.name}.weight`, float32(weight.shape, folded));
        editor.setWeight(`${consumer.name}.bias`, float32([outputs], newBias));
        editor.replace(consumer.bias ? consumer : { ...consumer, bias: true });
        editor.remove(bn.name, bn.inputs[0]!);
        return `folded ${bn.name} into ${consumer.name} (its consumer${flatten ? `, through ${flatten.name}` : ''}${consumer.bias ? '' : '; created its bias'})`;
      },
    };
  },
};

/** Tried in order: the producer first (no padding condition), then the consumer. */
export const BATCH_NORM_FOLD_RULES: readonly BatchNormFoldRule[] = [INTO_PRODUCER, INTO_CONSUMER];

/** For each parameter, another one whose float32 storage overlaps it (tied weights). */
function storageSharing(context: PassContext): (param: string) => string | undefined {
  // An unread DrawnWeight has no storage yet (it draws into an array of its own): it shares nothing.
  const stored = [...(context.weights ?? new Map<string, WeightTensor>())].filter(([, t]) => !(t instanceof DrawnWeight && t.unread));
  const entries = stored.map(([name, t]) => ({ name, buffer: t.data.buffer, start: t.data.byteOffset, end: t.data.byteOffset + t.data.byteLength }));
  return (param) => {
    const self = entries.find((e) => e.name === param);
    if (!self || self.end === self.start) return undefined;
    return entries.find((e) => e.name !== param && e.buffer === self.buffer && e.start < self.end && self.start < e.end)?.name;
  };
}

export function foldBatchNorm(graph: Graph, context: PassContext): PassResult {
  const editor = new GraphEditor(graph, context.weights);
  const foldContext: FoldContext = {
    editor,
    training: context.options['training'] === true,
    sharesStorage: storageSharing(context),
    // Each element is read before it is written (w[i] → folded[i]), so folding in place gives the same values.
    resultArray: (old) => (context.overwriteWeights ? old : new Float32Array(old.length)),
  };
  const applied: string[] = [];
  let refused: string[] = [];
  // Sweeps until nothing folds: a fold can open another (bn -> bn -> conv folds the second BN, then the first).
  for (let folded = true; folded; ) {
    folded = false;
    refused = [];
    for (const name of editor.currentNodes.filter((n) => n.op === 'batchnorm').map((n) => n.name)) {
      // Earlier folds may have rewired it.
      const bn = editor.node(name) as BatchNorm;
      const reasons: string[] = [];
      let done = false;
      for (const rule of BATCH_NORM_FOLD_RULES) {
        const plan = rule.plan(bn, foldContext);
        if ('refused' in plan) {
          reasons.push(plan.refused);
          continue;
        }
        applied.push(plan.apply());
        done = folded = true;
        break;
      }
      if (!done) refused.push(`${bn.name}: ${[...new Set(reasons)].join('; and ')}`);
    }
  }
  return editorResult(editor, applied, refused);
}

export const foldBatchNormPass: Pass = {
  name: 'fold-bn',
  description: 'folds inference batch norm into the neighbouring conv, transposed conv or dense, reporting every fold and refusal',
  needsWeights: true,
  inferenceOnly: true,
  tolerance: 1e-5,
  run: foldBatchNorm,
};

/**
 * quantize: int8 post-training quantization in ONNX Runtime's QDQ form — decides which nodes run on int8 and the
 * int8 parameters of every tensor between them, and records them on the nodes (`Node.quantization`). The QDQ
 * ONNX file is written by `emitQdqOnnx` (../codegen/onnx-qdq.ts); the tfjs engine simulates the same arithmetic
 * (../runtime/tfjs/fake-quant.ts). The tfjs target gets no int8 arithmetic: TensorFlow.js has no int8 kernels,
 * and its converter's "quantization" only compresses stored weights (tfjs#6551).
 *
 * Format: ONNX Runtime's QDQ form with its quantizer's defaults for static quantization of CNNs (its docs: "S8S8
 * with QDQ is the default setting and balances performance and accuracy"; WeightSymmetric on, ActivationSymmetric
 * off). The parameters below are stated in int8 terms; the emitter writes activations as uint8 (the same grid
 * shifted by 128) because ORT's x86-64 fusions only take uint8 activations (../codegen/onnx-qdq.ts says why):
 *   - weights: int8, symmetric, per output channel c (axis 0 of conv [out, in/g, k…] and of the Gemm weight
 *     [out, in], i.e. QGemm's per-column B under transB = 1), codes in [−127, 127], zero point 0:
 *         s_c = max_i |W[c, i]| / 127       q = clamp(round(W / s_c), −127, 127)
 *     (an all-zero channel, e.g. a pruned filter, takes s_c = 1/127); the range is symmetric so that −128 never
 *     appears and the zero point is 0, which QLinearConv's per-channel path requires;
 *   - bias: int32, per channel, scale s_x·s_c (what QLinearConv and QGemm assume), zero point 0:
 *         q_b = clamp(round(b / (s_x·s_c)), −2³¹, 2³¹ − 1);
 *   - activations: int8, asymmetric, one scale and zero point per tensor from the calibrated range [lo, hi]
 *     widened to contain 0 (so that zero padding is exact):
 *         lo' = min(lo, 0)   hi' = max(hi, 0)   s = (hi' − lo')/255   z = clamp(round(−128 − lo'/s), −128, 127)
 *     (s = 1 when hi' = lo'). Asymmetric because after a ReLU lo' = 0 and z = −128: all 256 codes cover [0, hi],
 *     where a symmetric zero point would leave half of them unused, and the quantizer's clamp at −128 is then
 *     exactly the ReLU — Q(relu(x)) = Q(x) — so the ReLU disappears into its producer (DQ → Conv → Q) instead of
 *     running in float between two Q/DQ pairs.
 *   Rounding is half to even (QuantizeLinear's rule); scales are float32.
 *
 * Which nodes (ONNX Runtime's QDQ fusions, qdq_selector_action_transformer.cc):
 *   int8           conv (not transposed) → QLinearConv; dense → QGemm; add and mul of two inputs → QLinearAdd /
 *                  QLinearMul; concat → QLinearConcat; global and plain average pooling →
 *                  QLinearGlobalAveragePool / QLinearAveragePool; leaky ReLU and sigmoid → QLinearLeakyRelu /
 *                  QLinearSigmoid. Their inputs are quantized; so is their output, unless it is a graph output
 *                  (a float result; QGemm writes float directly).
 *   pass-through   max pool, flatten, reshape (and dropout, the identity): ORT drops the Q/DQ pair around them when both carry the same
 *                  parameters, so their output takes their input's parameters (max, reordering and copying are
 *                  exact on codes).
 *   folded         a ReLU or ReLU6 that is the only reader of an int8 node's output: its output is the quantized
 *                  tensor (z = −128, see above) and the emitter drops it.
 *   float          everything else (batch norm that was not folded, transposed conv, other activations, upsample,
 *                  pad, sums of three or more tensors…), each refusal with its reason, nodes matched by `exclude`,
 *                  and int8 ops that read the output of a float conv/dense whose input is int8 (ONNX Runtime would
 *                  otherwise quantize that layer itself: see `structure`). A float node reading an int8 tensor
 *                  reads its dequantized value.
 *
 * Options: `ranges` (Map or record: tensor name → { min, max } from calibration, see ./quantize-calibration.ts;
 * required: without it the pass refuses and changes nothing), `exclude` (names or globs, as the pruning passes).
 * Run it after fold-bn (a BN left in place stays float and splits int8 regions). The graph keeps its nodes; only
 * annotations change (fold-bn refuses to fold into an annotated node, since its recorded scale was measured after
 * the BN). Outputs of the annotated graph run in float are unchanged (tolerance 0); the int8 error is what the
 * quantize report measures.
 */
import { consumers, type Graph, type Node, type QuantizationInfo, type TensorQuantization } from '../ir/graph.js';
import type { WeightTensor } from '../ir/weights.js';
import { excludedBy } from './graph-editor.js';
import type { Pass, PassContext, PassResult } from './manager.js';
import type { CalibrationRange } from './quantize-calibration.js';

export const INT8_MIN = -128;
export const INT8_MAX = 127;
/** Symmetric weights use [−127, 127]. */
export const WEIGHT_CODE_MAX = 127;
const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;

// ---------------------------------------------------------------------------------------------------------------
// Scale rules

/** Round half to even, QuantizeLinear's rounding. */
export function roundHalfToEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Asymmetric int8 parameters of a calibrated range (module header). */
export function activationParameters(range: CalibrationRange): TensorQuantization {
  const lo = Math.min(range.min, 0);
  const hi = Math.max(range.max, 0);
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) throw new Error(`quantize: range [${range.min}, ${range.max}] is not finite`);
  if (hi - lo <= 0) return { scale: 1, zeroPoint: lo === 0 ? INT8_MIN : 0 };
  const scale = Math.fround((hi - lo) / (INT8_MAX - INT8_MIN));
  const zeroPoint = Math.min(INT8_MAX, Math.max(INT8_MIN, roundHalfToEven(INT8_MIN - lo / scale)));
  return { scale, zeroPoint };
}

/** q = clamp(round(x/s) + z, −128, 127). */
export function quantizeValue(x: number, p: TensorQuantization): number {
  return Math.min(INT8_MAX, Math.max(INT8_MIN, roundHalfToEven(x / p.scale) + p.zeroPoint));
}

/** DQ(Q(x)): the value an int8 tensor carries for x. */
export function fakeQuantizeValue(x: number, p: TensorQuantization): number {
  return Math.fround((quantizeValue(x, p) - p.zeroPoint) * p.scale);
}

/** Per-channel int8 weights: codes, one scale per channel of `axis` (always 0 here), zero points 0. */
export interface ChannelQuantizedWeight {
  readonly shape: readonly number[];
  readonly codes: Int8Array;
  readonly scales: Float32Array;
}

/** s_c = max|W[c]| / 127 per output channel (axis 0), codes round(W/s_c) clamped to ±127. */
export function quantizeWeightPerChannel(weight: WeightTensor): ChannelQuantizedWeight {
  const channels = weight.shape[0]!;
  const perChannel = weight.data.length / channels;
  const scales = new Float32Array(channels);
  const codes = new Int8Array(weight.data.length);
  for (let c = 0; c < channels; c++) {
    let max = 0;
    for (let i = c * perChannel; i < (c + 1) * perChannel; i++) max = Math.max(max, Math.abs(weight.data[i]!));
    const scale = Math.fround(max > 0 ? max / WEIGHT_CODE_MAX : 1 / WEIGHT_CODE_MAX);
    scales[c] = scale;
    for (let i = c * perChannel; i < (c + 1) * perChannel; i++) {
      codes[i] = Math.min(WEIGHT_CODE_MAX, Math.max(-WEIGHT_CODE_MAX, roundHalfToEven(weight.data[i]! / scale)));
    }
  }
  return { shape: weight.shape, codes, scales };
}

export interface QuantizedBias {
  readonly codes: Int32Array;
  readonly scales: Float32Array;
  /** Values that did not fit in int32 and were clamped (0 in any sensible model). */
  readonly clamped: number;
}

/** q_b = round(b / (s_x·s_c)) in int32 (module header). */
export function quantizeBias(bias: WeightTensor, inputScale: number, weightScales: Float32Array): QuantizedBias {
  const codes = new Int32Array(bias.data.length);
  const scales = new Float32Array(bias.data.length);
  let clamped = 0;
  for (let c = 0; c < bias.data.length; c++) {
    const scale = Math.fround(inputScale * weightScales[c]!);
    scales[c] = scale;
    const q = roundHalfToEven(bias.data[c]! / scale);
    if (q < INT32_MIN || q > INT32_MAX) clamped++;
    codes[c] = Math.min(INT32_MAX, Math.max(INT32_MIN, q));
  }
  return { codes, scales, clamped };
}

/** Dequantized per-channel weights (what the int8 kernel multiplies by), in the weight's layout. */
export function dequantizeWeight(q: ChannelQuantizedWeight): WeightTensor {
  const perChannel = q.codes.length / q.scales.length;
  const data = new Float32Array(q.codes.length);
  for (let i = 0; i < data.length; i++) data[i] = q.codes[i]! * q.scales[Math.floor(i / perChannel)]!;
  return { shape: q.shape, data };
}

/** Dequantized bias. */
export function dequantizeBias(q: QuantizedBias): WeightTensor {
  return { shape: [q.codes.length], data: Float32Array.from(q.codes, (v, c) => v * q.scales[c]!) };
}

/** SQNR in dB of an approximation: 10·log10(Σx² / Σ(x − x̂)²); +∞ when exact. */
export function sqnrDb(reference: ArrayLike<number>, approximation: ArrayLike<number>): number {
  let signal = 0;
  let noise = 0;
  for (let i = 0; i < reference.length; i++) {
    signal += reference[i]! * reference[i]!;
    const e = reference[i]! - approximation[i]!;
    noise += e * e;
  }
  if (noise === 0) return Number.POSITIVE_INFINITY;
  return 10 * Math.log10(signal / noise);
}

// ---------------------------------------------------------------------------------------------------------------
// Which nodes run on int8

type Decision = { readonly kind: 'int8' | 'pass-through' | 'relu' } | { readonly kind: 'float'; readonly reason: string };

/**
 * One rule per op: int8 (with the kernel ONNX Runtime fuses it into), pass-through, a foldable ReLU, or float
 * with the reason.
 */
function decide(node: Node): Decision {
  switch (node.op) {
    case 'conv':
      return { kind: 'int8' }; // DQ(x), DQ(W), DQ(b) → Conv → Q  ⇒  QLinearConv
    case 'dense':
      return { kind: 'int8' }; // DQ(x), DQ(W), DQ(b) → Gemm [→ Q]  ⇒  QGemm
    case 'add':
    case 'mul':
      return node.inputs.length === 2
        ? { kind: 'int8' } // DQ(a), DQ(b) → Add/Mul → Q  ⇒  QLinearAdd / QLinearMul
        : { kind: 'float', reason: `${node.op} of ${node.inputs.length} tensors is emitted as ${node.op === 'add' ? 'one Sum' : 'a chain of Mul'}, which ONNX Runtime does not fuse into an int8 kernel` };
    case 'concat':
      return { kind: 'int8' }; // DQ(x_i) → Concat → Q  ⇒  QLinearConcat
    case 'global_avgpool':
    case 'avgpool':
      return { kind: 'int8' }; // DQ → (Global)AveragePool → Q  ⇒  QLinear(Global)AveragePool
    case 'maxpool':
    case 'flatten':
    case 'reshape':
    case 'dropout': // the identity at inference; emitted as nothing
      return { kind: 'pass-through' }; // DQ → op → Q with equal parameters  ⇒  op on int8
    case 'activation':
      if (node.fn.kind === 'relu' || node.fn.kind === 'relu6') return { kind: 'relu' };
      if (node.fn.kind === 'leaky_relu' || node.fn.kind === 'sigmoid') return { kind: 'int8' }; // ⇒ QLinearLeakyRelu / QLinearSigmoid
      return { kind: 'float', reason: `${node.fn.kind} has no int8 kernel in ONNX Runtime` };
    case 'batchnorm':
      return { kind: 'float', reason: 'batch norm has no int8 kernel; fold it into its conv first (fold-bn)' };
    case 'conv_transpose':
      return { kind: 'float', reason: 'ONNX Runtime has no int8 ConvTranspose kernel on CPU' };
    case 'global_maxpool':
    case 'upsample':
    case 'pad':
      return { kind: 'float', reason: `${node.op} has no int8 fusion in ONNX Runtime's QDQ rules` };
  }
}

export interface QuantizationPlan {
  /** Node name → its annotation (quantized nodes only). */
  readonly annotations: ReadonlyMap<string, QuantizationInfo>;
  /** Every quantized tensor with its parameters. */
  readonly tensors: ReadonlyMap<string, TensorQuantization>;
  readonly applied: readonly string[];
  readonly refused: readonly string[];
}

export interface PlanOptions {
  readonly exclude?: string | readonly string[];
}

/** Tensors whose calibrated range the plan needs (graph inputs and node outputs), in graph order. */
export function quantizationTargets(graph: Graph, options: PlanOptions = {}): string[] {
  return [...structure(graph, options).calibrated];
}

interface Structure {
  /** Quantized nodes and how. */
  readonly roles: Map<string, 'int8' | 'pass-through' | 'folded-activation'>;
  /** Quantized tensors, in order, each with where its parameters come from. */
  readonly sources: Map<string, { readonly kind: 'calibrated' } | { readonly kind: 'shared'; readonly from: string }>;
  readonly calibrated: Set<string>;
  readonly refused: string[];
}

/** Ops that move data without changing it, through which ORT propagates Q/DQ nodes. */
const DATA_MOVEMENT = new Set<Node['op']>(['maxpool', 'flatten', 'reshape', 'dropout']);
/** Float ops whose weights ORT quantizes itself when they sit between a DQ and a Q (WeightBiasQuantization). */
const CONV_LIKE = new Set<Node['op']>(['conv', 'conv_transpose', 'dense']);

function isReluLike(node: Node): boolean {
  return node.op === 'activation' && (node.fn.kind === 'relu' || node.fn.kind === 'relu6');
}

/**
 * The plan's structure. One subtlety comes from ONNX Runtime: since 1.21 its WeightBiasQuantization rewrite
 * quantizes (per tensor) the float weights of a Conv, ConvTranspose or Gemm whose input comes from a
 * DequantizeLinear and whose output reaches a QuantizeLinear (through Relu/Clip only), so an excluded conv between
 * int8 neighbours would silently run on int8 after all — with other parameters than the ones reported. Such a
 * float layer's output (and the ReLUs and data-movement ops after it) is therefore never quantized, and the int8
 * nodes that read it stay float too, with that reason; the rule is applied until nothing changes.
 */
function structure(graph: Graph, options: PlanOptions): Structure {
  const excluded = excludedBy({ exclude: options.exclude });
  const readers = consumers(graph);
  const graphOutputs = new Set(graph.outputs.map((o) => o.value));
  const byName = new Map(graph.nodes.map((n) => [n.name, n]));
  const refused: string[] = [];
  const decisions = new Map<string, Decision>();
  for (const node of graph.nodes) {
    const decision = decide(node);
    if (decision.kind !== 'float' && excluded(node.name)) {
      decisions.set(node.name, { kind: 'float', reason: 'excluded by option' });
      refused.push(`${node.name}: stays float (excluded)`);
      continue;
    }
    decisions.set(node.name, decision);
    if (decision.kind === 'float') refused.push(`${node.name}: stays float (${decision.reason})`);
  }
  const demoted = new Map<string, string>();
  for (;;) {
    const roles = new Map<string, 'int8' | 'pass-through' | 'folded-activation'>();
    for (const node of graph.nodes) {
      const kind = decisions.get(node.name)!.kind;
      if ((kind === 'int8' || kind === 'pass-through') && !demoted.has(node.name)) roles.set(node.name, kind);
    }
    // A ReLU folds into an int8 producer whose only reader it is (and whose output is no graph output).
    const reluNotes: string[] = [];
    for (const node of graph.nodes) {
      if (decisions.get(node.name)!.kind !== 'relu') continue;
      const producer = node.inputs[0]!;
      const foldable = roles.get(producer) === 'int8' && (readers.get(producer) ?? []).length === 1 && !graphOutputs.has(producer) && !graphOutputs.has(node.name);
      if (foldable) roles.set(node.name, 'folded-activation');
      else reluNotes.push(`${node.name}: stays float (not folded: ${roles.get(producer) !== 'int8' ? `its input ${producer} does not come from an int8 node` : `${producer} has other readers or is a graph output`})`);
    }
    const sources: Structure['sources'] = new Map();
    const need = (tensor: string) => {
      if (sources.has(tensor)) return;
      const producer = byName.get(tensor);
      if (producer && roles.get(producer.name) === 'pass-through') sources.set(tensor, { kind: 'shared', from: producer.inputs[0]! });
      else sources.set(tensor, { kind: 'calibrated' });
    };
    for (const node of graph.nodes) {
      const role = roles.get(node.name);
      if (role === undefined) continue;
      if (role === 'int8' || role === 'pass-through') for (const input of node.inputs) need(input);
      // The output: quantized unless it is a graph output or an int8 node's output that a folded ReLU reads.
      if (graphOutputs.has(node.name)) continue;
      const reader = readers.get(node.name) ?? [];
      if (role === 'int8' && reader.length === 1 && roles.get(reader[0]!.name) === 'folded-activation') continue;
      need(node.name);
    }
    // Float conv-like layers that ORT would quantize itself, and the tensors after them that must stay float.
    const quantizedUpstream = (tensor: string): boolean => {
      for (let t: string | undefined = tensor; t !== undefined; ) {
        if (sources.has(t)) return true;
        const producer = byName.get(t);
        t = producer && DATA_MOVEMENT.has(producer.op) ? producer.inputs[0] : undefined;
      }
      return false;
    };
    const keptFloat = new Map<string, string>();
    for (const node of graph.nodes) {
      if (CONV_LIKE.has(node.op) && !roles.has(node.name) && quantizedUpstream(node.inputs[0]!)) keptFloat.set(node.name, node.name);
      else if ((isReluLike(node) || DATA_MOVEMENT.has(node.op)) && keptFloat.has(node.inputs[0]!)) keptFloat.set(node.name, keptFloat.get(node.inputs[0]!)!);
    }
    let changed = false;
    for (const node of graph.nodes) {
      const role = roles.get(node.name);
      if (role === undefined || demoted.has(node.name)) continue;
      const input = node.inputs.find((i) => keptFloat.has(i));
      if (input === undefined) continue;
      demoted.set(
        node.name,
        `${node.name}: stays float (it reads ${input} of the float layer ${keptFloat.get(input)}; an int8 input there would let ONNX Runtime quantize that layer itself)`,
      );
      changed = true;
    }
    if (changed) continue;

    // Order tensors as the graph defines them, so shared parameters resolve after their source.
    const order = [...graph.inputs.map((i) => i.name), ...graph.nodes.map((n) => n.name)];
    const ordered: Structure['sources'] = new Map();
    for (const name of order) {
      const source = sources.get(name);
      if (source) ordered.set(name, source);
    }
    const calibrated = new Set<string>();
    for (const [tensor, source] of ordered) {
      if (source.kind === 'calibrated') calibrated.add(tensor);
      else if (!ordered.has(source.from)) calibrated.add(source.from);
    }
    return { roles, sources: ordered, calibrated, refused: [...refused, ...reluNotes, ...demoted.values()] };
  }
}

function rangeOf(ranges: unknown, tensor: string): CalibrationRange | undefined {
  const value = ranges instanceof Map ? (ranges as Map<string, unknown>).get(tensor) : typeof ranges === 'object' && ranges !== null ? (ranges as Record<string, unknown>)[tensor] : undefined;
  if (typeof value !== 'object' || value === null) return undefined;
  const { min, max } = value as { min?: unknown; max?: unknown };
  return typeof min === 'number' && typeof max === 'number' && Number.isFinite(min) && Number.isFinite(max) && min <= max ? { min, max } : undefined;
}

function describe(p: TensorQuantization): string {
  return `scale ${p.scale.toPrecision(4)}, zero point ${p.zeroPoint}`;
}

/** The plan for a graph and calibrated ranges; `problems` lists tensors without a usable range. */
export function planQuantization(graph: Graph, ranges: unknown, options: PlanOptions = {}): QuantizationPlan | { readonly problems: string[] } {
  const { roles, sources, refused } = structure(graph, options);
  const nodes = new Map(graph.nodes.map((n) => [n.name, n]));
  const tensors = new Map<string, TensorQuantization>();
  const problems: string[] = [];
  for (const [tensor, source] of sources) {
    if (source.kind === 'shared') {
      const from = tensors.get(source.from) ?? (rangeOf(ranges, source.from) ? activationParameters(rangeOf(ranges, source.from)!) : undefined);
      if (from) tensors.set(tensor, from);
      else problems.push(`no calibrated range for '${source.from}'`);
      continue;
    }
    const range = rangeOf(ranges, tensor);
    // A folded ReLU's output is never negative: its range starts at 0, so its zero point is −128 and the
    // quantizer's clamp is the ReLU (a hand-made range below 0 cannot change that).
    const folded = roles.get(tensor) === 'folded-activation';
    const node = nodes.get(tensor);
    const cap = node?.op === 'activation' && node.fn.kind === 'relu6' ? 6 : Number.POSITIVE_INFINITY;
    if (range) tensors.set(tensor, activationParameters(folded ? { min: Math.max(range.min, 0), max: Math.min(Math.max(range.max, 0), cap) } : range));
    else problems.push(`no calibrated range for '${tensor}'`);
  }
  if (problems.length > 0) return { problems };
  const annotations = new Map<string, QuantizationInfo>();
  const applied: string[] = [];
  const readers = consumers(graph);
  const byName = new Map(graph.nodes.map((n) => [n.name, n]));
  for (const node of graph.nodes) {
    const role = roles.get(node.name);
    if (role === undefined) continue;
    const inputs = role === 'folded-activation' ? [null] : node.inputs.map((i) => tensors.get(i) ?? null);
    const output = tensors.get(node.name);
    const info: QuantizationInfo = {
      role,
      inputs,
      ...(output ? { output } : {}),
      ...(node.op === 'conv' || node.op === 'dense' ? { weights: 'per-channel-symmetric' as const } : {}),
    };
    annotations.set(node.name, info);
    if (role === 'folded-activation') applied.push(`${node.name}: folded into ${node.inputs[0]}'s output quantization (${describe(output!)})`);
    else if (role === 'pass-through') applied.push(`${node.name}: ${node.op} on int8, parameters of ${node.inputs[0]}`);
    else {
      const kernel = kernelName(byName.get(node.name)!);
      const folded = (readers.get(node.name) ?? []).find((r) => roles.get(r.name) === 'folded-activation');
      const out = output ? `output ${describe(output)}` : folded ? `output through ${folded.name}, folded` : 'float output';
      const ins = inputs.map((p) => (p ? describe(p) : 'float')).join(' | ');
      applied.push(`${node.name}: int8 ${kernel} (input ${ins}; ${out}${info.weights ? '; weights per-channel symmetric' : ''})`);
    }
  }
  return { annotations, tensors, applied, refused };
}

function kernelName(node: Node): string {
  switch (node.op) {
    case 'conv':
      return 'QLinearConv';
    case 'dense':
      return 'QGemm';
    case 'add':
      return 'QLinearAdd';
    case 'mul':
      return 'QLinearMul';
    case 'concat':
      return 'QLinearConcat';
    case 'global_avgpool':
      return 'QLinearGlobalAveragePool';
    case 'avgpool':
      return 'QLinearAveragePool';
    case 'activation':
      return node.fn.kind === 'sigmoid' ? 'QLinearSigmoid' : 'QLinearLeakyRelu';
    default:
      return node.op;
  }
}

/** Applies a plan: nodes get their annotation (and lose a stale one); the same graph when nothing changes. */
export function annotateGraph(graph: Graph, annotations: ReadonlyMap<string, QuantizationInfo>): Graph {
  let changed = false;
  const nodes = graph.nodes.map((node) => {
    const info = annotations.get(node.name);
    if (info === undefined && node.quantization === undefined) return node;
    if (info !== undefined && JSON.stringify(info) === JSON.stringify(node.quantization)) return node;
    changed = true;
    if (info === undefined) {
      const { quantization: _stale, ...rest } = node;
      return rest as Node;
    }
    return { ...node, quantization: info };
  });
  return changed ? { ...graph, nodes } : graph;
}

export function quantize(graph: Graph, context: PassContext): PassResult {
  const ranges = context.options['ranges'];
  if (ranges === undefined) {
    return { graph, applied: [], refused: ['needs calibrated activation ranges (option ranges); `convspec quantize --calib DATA` computes them'] };
  }
  const exclude = context.options['exclude'];
  const plan = planQuantization(graph, ranges, { exclude: typeof exclude === 'string' || Array.isArray(exclude) ? (exclude as string | string[]) : undefined });
  if ('problems' in plan) return { graph, applied: [], refused: plan.problems.map((p) => `cannot quantize: ${p}`) };
  return { graph: annotateGraph(graph, plan.annotations), applied: plan.applied, refused: plan.refused };
}

export const quantizePass: Pass = {
  name: 'quantize',
  description: 'int8 post-training quantization (QDQ S8S8, per-channel weights): annotates nodes with int8 parameters (options: ranges from calibration, exclude)',
  needsWeights: false,
  // Training ignores the annotations: only exports read them.
  inferenceOnly: false,
  // Annotations only: the float function is unchanged.
  tolerance: 0,
  run: quantize,
};

/** Quantized tensors and their parameters, read back from a graph's annotations (inputs and outputs). */
export function quantizedTensors(graph: Graph): Map<string, TensorQuantization> {
  const tensors = new Map<string, TensorQuantization>();
  const set = (tensor: string, p: TensorQuantization, where: string) => {
    const previous = tensors.get(tensor);
    if (previous && (previous.scale !== p.scale || previous.zeroPoint !== p.zeroPoint)) {
      throw new Error(`quantize: tensor '${tensor}' has two sets of int8 parameters (${where})`);
    }
    tensors.set(tensor, p);
  };
  for (const node of graph.nodes) {
    const info = node.quantization;
    if (!info) continue;
    info.inputs.forEach((p, i) => {
      if (p) set(node.inputs[i]!, p, `input of ${node.name}`);
    });
    if (info.output) set(node.name, info.output, `output of ${node.name}`);
  }
  return tensors;
}

/** Weights as the int8 graph computes with them: per-channel int8 weights and int32 biases, dequantized. */
export function fakeQuantizedWeights(graph: Graph, weights: ReadonlyMap<string, WeightTensor>): Map<string, WeightTensor> {
  const result = new Map(weights);
  for (const node of graph.nodes) {
    const info = node.quantization;
    if (!info || info.role !== 'int8' || !info.weights || (node.op !== 'conv' && node.op !== 'dense')) continue;
    const weight = weights.get(`${node.name}.weight`);
    if (!weight) throw new Error(`quantize: weight '${node.name}.weight' is missing`);
    const q = quantizeWeightPerChannel(weight);
    result.set(`${node.name}.weight`, dequantizeWeight(q));
    const bias = weights.get(`${node.name}.bias`);
    if (bias && info.inputs[0]) result.set(`${node.name}.bias`, dequantizeBias(quantizeBias(bias, info.inputs[0].scale, q.scales)));
  }
  return result;
}

/**
 * Exclusions written in a spec, one convention until the language has a `quantize` section: comment lines
 *     // quantize: exclude stem.conv, stage3.*
 * anywhere in the spec file (names or globs, comma or space separated). `convspec quantize` adds them to
 * `--exclude`. Comments survive `convspec fmt`, so the convention is stable.
 */
export function specQuantizeExclusions(text: string): string[] {
  const names: string[] = [];
  for (const line of text.split(/\r?\n/)) {
    const match = /^\s*\/\/\s*quantize:\s*exclude\s+(.+?)\s*$/.exec(line);
    if (match) names.push(...match[1]!.split(/[\s,]+/).filter((n) => n.length > 0));
  }
  return names;
}

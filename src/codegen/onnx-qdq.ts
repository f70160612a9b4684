/**
 * QDQ ONNX emitter: a graph annotated by the `quantize` pass (../passes/quantize.ts) and its float weights → an
 * 8-bit model in ONNX Runtime's QDQ form (QuantizeLinear / DequantizeLinear around float ops), which ORT rewrites
 * into its integer kernels (QLinearConv, QGemm, QLinearAdd, …) when it builds a session with graph optimisations.
 *
 * The float model comes from `emitOnnx` (same names, shapes, checks); this module only rewrites it, the way ORT's
 * own quantizer rewrites a float model:
 *   - every quantized tensor t (graph input or node output, parameters from the annotations):
 *         t → QuantizeLinear(t, t/scale, t/zp) → t/q → DequantizeLinear(t/q, t/scale, t/zp) → t/dq,
 *     and every former reader of t reads t/dq (one pair per tensor, shared by its readers, as ORT's quantizer
 *     writes it by default; ORT duplicates the DQ per reader itself before fusing);
 *   - a ReLU (Relu, or ReLU6's Clip) folded by the pass is dropped and its output's Q reads the producer's output:
 *     with zero point −128 (int8 terms) the quantizer's clamp is the ReLU (ReLU6: the calibrated maximum is ≤ 6):
 *         DQ → Conv → Relu → Q   becomes   DQ → Conv → Q   (exact), the pattern ORT fuses into QLinearConv;
 *   - the weight W of an int8 conv or dense becomes int8 codes `<node>.weight/q` with per-channel scales
 *     `<node>.weight/scale` behind a DequantizeLinear(axis 0), its bias int32 codes with scales s_x·s_c, likewise.
 *     The zero points of weights and biases are 0 and left out (DequantizeLinear's default), except for a Gemm
 *     weight (ORT fuses QGemm only with B's zero point given; QLinearConv fuses without). Gemm gets alpha = beta
 *     = 1 written out (ORT's QDQ Gemm rule reads beta).
 *
 * Activation element type. ORT documents S8S8 QDQ as its default, but on x86-64 its QDQ fusions refuse int8
 * activations (`QDQIsInt8Allowed()` is true only on ARM) and rely on a rewrite of each int8 Q → DQ pair into
 * uint8 (qdq_s8_to_u8.cc), which applies only where a Q has exactly one DQ reader. In a residual network a block's
 * input has two readers (the next conv and the skip connection): measured with onnxruntime-node 1.30 on
 * FashionResNet, int8 activations left 9 of 15 convs and all 6 adds in float, uint8 activations fused all of
 * them. So activations are uint8 by default — codes u = q + 128 with zero point z + 128: the same grid and the
 * same values as the int8 parameters the pass records, i.e. exactly what ORT would run after its own conversion
 * (U8S8; the machines with VNNI have no u8·s8 saturation issue). `activationType: 'int8'` writes S8S8 for ARM.
 *
 * Size. Weights shrink 4×; what stays is per-channel scales, int32 biases and the Q/DQ nodes. To keep that small,
 * the synthetic Q/DQ nodes are unnamed (their output tensors carry the names), intermediate value_info is left
 * out (shape inference recovers it) and the per-layer `convspec.quantization` metadata of `emitOnnx` is replaced
 * by the initializers themselves plus `convspec.quantization_format`.
 *
 * Per-axis DequantizeLinear needs opset ≥ 13, which every opset `emitOnnx` writes satisfies. Node order stays
 * topological: weight DQs first, a graph input's Q/DQ next, a node's output Q/DQ right after it.
 * Deterministic: same graph, weights and options → same bytes.
 */
import type { onnx as OnnxTypes } from 'onnx-proto';
import type { Diagnostic } from '../diagnostics.js';
import type { Graph, Node } from '../ir/graph.js';
import type { Weights } from '../ir/weights.js';
import { quantizeBias, quantizedTensors, quantizeWeightPerChannel } from '../passes/quantize.js';
import { emitOnnx, type EmitOnnxOptions } from './onnx.js';
import { decodeModel, encodeModel, onnx, ONNX_DATA_TYPE } from './onnx-model.js';

export const QUANTIZATION_FORMAT_U8S8 = 'QDQ U8S8: uint8 activations (per tensor, asymmetric), int8 weights (per output channel, symmetric), int32 biases';
export const QUANTIZATION_FORMAT_S8S8 = 'QDQ S8S8: int8 activations (per tensor, asymmetric), int8 weights (per output channel, symmetric), int32 biases';

export interface QdqSummary {
  /** Tensors with a QuantizeLinear/DequantizeLinear pair. */
  readonly quantizedTensors: number;
  /** conv/dense nodes with int8 weights. */
  readonly int8WeightNodes: number;
  /** ReLUs removed because the output quantization clamps at zero. */
  readonly foldedActivations: number;
  /** Bias values that overflowed int32 and were clamped (0 in any sensible model). */
  readonly clampedBiasValues: number;
}

export interface EmitQdqResult {
  /** The encoded model; empty when `diagnostics` has an error. */
  readonly bytes: Uint8Array;
  readonly diagnostics: Diagnostic[];
  readonly summary: QdqSummary;
}

function tensorProto(name: string, dims: readonly number[], data: Float32Array | Int8Array | Uint8Array | Int32Array): OnnxTypes.TensorProto {
  const bytes = new Uint8Array(data.byteLength);
  const view = new DataView(bytes.buffer);
  let dataType: number;
  if (data instanceof Float32Array) {
    dataType = ONNX_DATA_TYPE.float32;
    data.forEach((v, i) => view.setFloat32(4 * i, v, true));
  } else if (data instanceof Int32Array) {
    dataType = ONNX_DATA_TYPE.int32;
    data.forEach((v, i) => view.setInt32(4 * i, v, true));
  } else {
    dataType = data instanceof Uint8Array ? ONNX_DATA_TYPE.uint8 : ONNX_DATA_TYPE.int8;
    bytes.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }
  return onnx.TensorProto.create({ name, dims: [...dims], dataType, rawData: bytes });
}

function intAttribute(name: string, value: number): OnnxTypes.AttributeProto {
  return onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.INT, i: value });
}

function floatAttribute(name: string, value: number): OnnxTypes.AttributeProto {
  return onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.FLOAT, f: value });
}

const EMPTY_SUMMARY: QdqSummary = { quantizedTensors: 0, int8WeightNodes: 0, foldedActivations: 0, clampedBiasValues: 0 };

export interface EmitQdqOptions extends EmitOnnxOptions {
  /**
   * Element type of the activations: 'uint8' (default; codes u = q + 128 with zero point z + 128, the same grid)
   * or 'int8'. See the module header for why x86-64 wants uint8.
   */
  readonly activationType?: 'int8' | 'uint8';
}

export function emitQdqOnnx(graph: Graph, weights: Weights, options: EmitQdqOptions = {}): EmitQdqResult {
  const unsigned = (options.activationType ?? 'uint8') === 'uint8';
  const float = emitOnnx(graph, weights, { ...options, shareEqualInitializers: false });
  if (float.bytes.length === 0 || float.diagnostics.some((d) => d.severity === 'error')) return { ...float, summary: EMPTY_SUMMARY };
  const model = decodeModel(float.bytes);
  const onnxGraph = model.graph;
  const params = quantizedTensors(graph);
  const irNodes = new Map(graph.nodes.map((n) => [n.name, n]));
  const onnxNodes = new Map(onnxGraph.node.map((n) => [n.name ?? '', n]));
  const inputNames = new Set(graph.inputs.map((i) => i.name));

  /** ONNX tensor of an IR tensor: a graph input as it is, a node's main ONNX node's output, a dropout's source. */
  const onnxTensor = (name: string): string => {
    if (inputNames.has(name)) return name;
    const node = irNodes.get(name);
    if (node?.op === 'dropout') return onnxTensor(node.inputs[0]!);
    const emitted = onnxNodes.get(name);
    if (!emitted || !emitted.output?.[0]) throw new Error(`internal: no ONNX node writes '${name}'`);
    return emitted.output[0];
  };

  const initializers = new Map(onnxGraph.initializer.map((t) => [t.name ?? '', t]));
  const removedInitializers = new Set<string>();
  const newInitializers: OnnxTypes.TensorProto[] = [];
  const weightNodes: OnnxTypes.INodeProto[] = [];
  const inputNodes: OnnxTypes.INodeProto[] = [];
  /** Q/DQ nodes to place after the ONNX node that writes a tensor. */
  const after = new Map<string, OnnxTypes.INodeProto[]>();
  const removedNodes = new Set<string>();
  const renamed = new Map<string, string>();
  let folded = 0;
  let int8WeightNodes = 0;
  let clampedBiasValues = 0;

  // Activation Q/DQ pairs.
  const done = new Set<string>();
  for (const [irTensor, p] of params) {
    const t = onnxTensor(irTensor);
    if (done.has(t)) continue;
    done.add(t);
    let source = t;
    const node = irNodes.get(irTensor);
    if (node?.quantization?.role === 'folded-activation') {
      // DQ → Conv → Relu → Q  ⇒  DQ → Conv → Q: the zero point −128 clamps exactly where the ReLU did
      source = onnxTensor(node.inputs[0]!);
      removedNodes.add(node.name);
      if (node.op === 'activation' && node.fn.kind === 'relu6') for (const c of ['min', 'max']) removedInitializers.add(`${node.name}/${c}`);
      folded++;
    }
    const scale = `${t}/scale`;
    const zeroPoint = `${t}/zp`;
    newInitializers.push(tensorProto(scale, [], new Float32Array([p.scale])), tensorProto(zeroPoint, [], unsigned ? new Uint8Array([p.zeroPoint + 128]) : new Int8Array([p.zeroPoint])));
    const pair = qdqPair(t, source, scale, zeroPoint);
    renamed.set(t, `${t}/dq`);
    if (inputNames.has(source)) inputNodes.push(...pair);
    else after.set(source, [...(after.get(source) ?? []), ...pair]);
  }

  // Int8 weights and int32 biases.
  for (const node of graph.nodes) {
    const info = node.quantization;
    if (info?.role !== 'int8' || info.weights === undefined || (node.op !== 'conv' && node.op !== 'dense')) continue;
    const emitted = onnxNodes.get(node.name)!;
    const inputScale = info.inputs[0];
    if (!inputScale) throw new Error(`internal: int8 ${node.name} has a float input`);
    const weight = weights.get(`${node.name}.weight`)!;
    const q = quantizeWeightPerChannel(weight);
    const weightName = `${node.name}.weight`;
    const emittedInputs = emitted.input ?? [];
    // ORT fuses DQ → Gemm into QGemm only when B's zero point is given; QLinearConv takes it as optional.
    emittedInputs[1] = perChannel(weightName, q.shape, q.codes, q.scales, node.op === 'dense');
    removedInitializers.add(weightName);
    const bias = weights.get(`${node.name}.bias`);
    if (bias && node.bias) {
      const b = quantizeBias(bias, inputScale.scale, q.scales);
      clampedBiasValues += b.clamped;
      emittedInputs[2] = perChannel(`${node.name}.bias`, bias.shape, b.codes, b.scales);
      removedInitializers.add(`${node.name}.bias`);
    }
    emitted.input = emittedInputs;
    if (node.op === 'dense') emitted.attribute = [floatAttribute('alpha', 1), floatAttribute('beta', 1), ...(emitted.attribute ?? []).filter((a) => a.name !== 'alpha' && a.name !== 'beta')].sort((a, b) => (a.name! < b.name! ? -1 : 1));
    int8WeightNodes++;
  }

  /** Codes, per-channel scales and a DequantizeLinear on axis 0; zero points (all 0) only where asked. */
  function perChannel(name: string, dims: readonly number[], codes: Int8Array | Int32Array, scales: Float32Array, zeroPoint = false): string {
    newInitializers.push(tensorProto(`${name}/q`, dims, codes), tensorProto(`${name}/scale`, [scales.length], scales));
    if (zeroPoint) newInitializers.push(tensorProto(`${name}/zp`, [scales.length], new Int8Array(scales.length)));
    weightNodes.push(
      onnx.NodeProto.create({
        input: [`${name}/q`, `${name}/scale`, ...(zeroPoint ? [`${name}/zp`] : [])],
        output: [`${name}/dq`],
        opType: 'DequantizeLinear',
        attribute: [intAttribute('axis', 0)],
      }),
    );
    return `${name}/dq`;
  }

  function qdqPair(t: string, source: string, scale: string, zeroPoint: string): OnnxTypes.INodeProto[] {
    return [
      onnx.NodeProto.create({ input: [source, scale, zeroPoint], output: [`${t}/q`], opType: 'QuantizeLinear' }),
      onnx.NodeProto.create({ input: [`${t}/q`, scale, zeroPoint], output: [`${t}/dq`], opType: 'DequantizeLinear' }),
    ];
  }

  // Rebuild the node list in topological order, readers rewired to the dequantized tensors.
  const nodes: OnnxTypes.INodeProto[] = [...weightNodes, ...inputNodes];
  for (const n of onnxGraph.node) {
    if (removedNodes.has(n.name ?? '')) continue;
    n.input = (n.input ?? []).map((i) => renamed.get(i) ?? i);
    nodes.push(n);
    for (const output of n.output ?? []) nodes.push(...(after.get(output) ?? []));
  }
  onnxGraph.node = nodes;
  onnxGraph.initializer = [...onnxGraph.initializer.filter((t) => !removedInitializers.has(t.name ?? '')), ...newInitializers];
  // Intermediate shape declarations are left out: onnx's shape inference recovers them, and at this model size
  // they would be a visible part of the file (the float model keeps them).
  onnxGraph.valueInfo = [];
  for (const name of removedInitializers) if (!initializers.has(name)) throw new Error(`internal: no initializer '${name}' to replace`);

  const metadata = new Map((model.metadataProps ?? []).map((p) => [p.key ?? '', p.value ?? '']));
  metadata.set('convspec.quantization_format', JSON.stringify(unsigned ? QUANTIZATION_FORMAT_U8S8 : QUANTIZATION_FORMAT_S8S8));
  // The parameters are in the initializers, named after their tensors; a per-layer copy would cost more bytes
  // than the model's activation scales themselves.
  metadata.delete('convspec.quantization');
  model.metadataProps = [...metadata.keys()].sort().map((key) => onnx.StringStringEntryProto.create({ key, value: metadata.get(key)! }));

  return {
    bytes: encodeModel(model),
    diagnostics: float.diagnostics,
    summary: { quantizedTensors: done.size, int8WeightNodes, foldedActivations: folded, clampedBiasValues },
  };
}

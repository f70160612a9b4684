/**
 * TensorFlow.js emitter: an IR graph and its weights → a TF.js **graph model** (`model.json` + weight shards) that
 * `tf.loadGraphModel` loads and runs on any tfjs backend.
 *
 * Files: `model.json` = { format: 'graph-model', generatedBy, convertedBy, modelTopology: a TF GraphDef in TF's JSON
 * form (`node: [{ name, op, input, attr }]`, `versions`), weightsManifest (one group, shards of at most 4 MiB:
 * `group1-shard1of1.bin` …), signature (inputs and outputs by the spec's names), userDefinedMetadata.convspec }.
 * `writeTfjsModel(dir, result)` writes them into `dir/<Model>/`, each file atomically, model.json last.
 *
 * Layout. TF's convolutions and pools are channels-last, so the graph runs channels-last throughout:
 *   - Inputs and outputs of rank ≥ 3 are channels-last by default (`ioLayout: 'nhwc'`): NLC, NHWC, NDHWC — what
 *     tfjs users have (`tf.browser.fromPixels` gives HWC). The signature states those shapes, and
 *     userDefinedMetadata.convspec.layout gives each tensor's logical (NCHW) shape and the permutation. With
 *     `ioLayout: 'nchw'` inputs and outputs keep the IR's NCHW order and the graph transposes each input once at
 *     the start and each output once at the end.
 *   - Inside, a feature map of logical shape [N, C, S…] is stored [N, S…, C]; a 1D map [N, C, L] is stored
 *     [N, 1, L, C], so every 1D op is the 2D op on a unit height (no ExpandDims/Squeeze per layer).
 *   - Weights are permuted once at export: conv [O, I/g, k…] → [k…, I/g, O] (HWIO / DHWIO), depthwise
 *     [C·M, 1, k…] → [k…, C, M], transposed conv per group [I/g, O/g, k…] → [k…, O/g, I/g], dense [O, I] → [I, O].
 *   - No op gets a Transpose around it. A Transpose appears only where the IR's semantics need the NCHW element
 *     order itself: a reshape of a feature map (and a flatten that does not feed a dense layer), a tensor of rank
 *     ≥ 3 produced by a reshape and then convolved, broadcasting between tensors of different ranks, and ioLayout
 *     'nchw'. A flatten of an [N, S…, C] map gives the features in NHWC order; a dense layer (or batch norm,
 *     activation, dropout) reading it takes its weights permuted to that order instead, so classifier heads have
 *     no Transpose. Where something else needs the NCHW order the flat tensor is reordered by one GatherV2.
 *     When C = 1 or every spatial size is 1 the two orders coincide and a Reshape replaces the Transpose.
 *
 * Mapping rules, IR op → TF ops (only ops and attributes tfjs-converter 4.x implements):
 *   conv            1D/2D: Conv2D (HWIO filter) or, with a bias, _FusedConv2D [BiasAdd(, activation)]. groups = C:
 *                   DepthwiseConv2dNative / FusedDepthwiseConv2dNative (filter [k…, C, M]); 1 < groups < C: Split →
 *                   one conv per group → ConcatV2 → BiasAdd. Pads: all zero → VALID; equal to TF's SAME for the
 *                   known size → SAME; otherwise EXPLICIT `explicit_paddings`; 'same-dynamic' → SAME (the IR's SAME
 *                   rule is TF's). Stride and dilation together (tfjs refuses them): the kernel is written out
 *                   dilated (zeros between taps) at export and the conv runs with dilation 1.
 *                   3D of known sizes: Pad, then a sum over the kd depth taps of Conv2Ds on the depth-folded map
 *                   ([N·D, H, W, C]), each shifted by t·dilation planes (Slice) and added (AddN); a depth stride keeps
 *                   every s-th plane; groups (depthwise 3D included: tfjs has no 3D depthwise) by Split/ConcatV2;
 *                   bias AddV2. Everything stays rank ≤ 4 where the backends differ: tfjs-backend-webgpu's Conv3D
 *                   shader does not compile (tfjs 4.22), and Conv2D is tfjs's best-optimised kernel. 3D with
 *                   symbolic sizes: Conv3D (SAME, or a rank-5 Pad + VALID), which works on cpu and wasm only.
 *   conv_transpose  1D/2D: Conv2DBackpropInput(outputShape, filter [k…, O/g, I/g], x) with EXPLICIT pads; a dilated
 *                   kernel is written out with zeros (tfjs has no dilation there). outputShape is a constant, or
 *                   Shape → Slice → ConcatV2 for a symbolic batch (tiny int32 ops tfjs keeps on the CPU). Output
 *                   padding past the computed region is a Pad of zeros (those outputs get only the bias, as in
 *                   ONNX). 3D (tfjs-converter has no Conv3DBackpropInput): s − 1 zeros inserted after every input
 *                   element (Reshape, Pad, one axis at a time in rank 4), Pad/Slice to k' − 1 − pads, then the 3D
 *                   conv lowering above with the flipped kernel. Groups: Split/ConcatV2. Bias: BiasAdd / AddV2.
 *   maxpool/avgpool MaxPool / AvgPool / AvgPool3D at VALID after a Pad (max pools pad with −∞ via PadV2, average
 *                   pools with 0), or SAME where the pads are TF's SAME pads and SAME gives the same divisors.
 *                   Ceil mode: the end pad grows to cover the last window; a window the IR drops (it would start in
 *                   the end padding) is cut by a Slice. Average divisors that differ from ∏k (windows clipped by
 *                   count_include_pad = false, or by ceil mode) are fixed by one Mul with a constant [1, O…, 1] of
 *                   ∏k / count (ONNX Runtime's and PyTorch's divisors). 3D max pools of known sizes are two 2D
 *                   MaxPools, (H, W) then (D, 1) on folded views (max is separable; tfjs-backend-wasm's MaxPool3D
 *                   returns wrong maxima for windows of negative values). 'same-dynamic' → SAME (max; average with
 *                   count_include_pad = false). 3D maps of known sizes are padded by two rank-4 Pads (webgpu's Pad
 *                   shader cannot index rank 5).
 *   global pools    Mean / Max over the spatial axes, keep_dims.
 *   batchnorm       folded at export into Mul(x, γ/√(σ² + ε)) then AddV2(β − μ·γ/√(σ² + ε)), constants per channel.
 *   activations     Relu, Relu6, LeakyRelu(alpha), Elu (alpha ≠ 1: Relu(x) + α·Minimum(Elu(x), 0)), Sigmoid, Tanh,
 *                   hard_sigmoid = ClipByValue(α·x + β, 0, 1), swish = x·Sigmoid(x), hard_swish = x·Relu6(x + 3)/6,
 *                   gelu = x·½·(1 + Erf(x/√2)) (exact form). Relu / Relu6 / LeakyRelu / Sigmoid / Elu(1) right after
 *                   a biased conv or dense that nothing else reads are fused into _FusedConv2D / _FusedMatMul.
 *                   Softmax: the axis is mapped to the stored layout; over the last stored axis (the channel axis
 *                   of a feature map, the features of a flat tensor) it is one Softmax, otherwise
 *                   exp(x − max)/Σ with Max, Sub, Exp, Sum, RealDiv on that axis (no Transpose).
 *   dropout         nothing (inference export); the rate stays in the metadata.
 *   add / mul       AddV2 / Mul chains (AddN for three or more inputs of one shape), broadcasting as in the IR:
 *                   equal ranks broadcast the same way channels-last ([N, 1, 1, C] gates [N, H, W, C]).
 *   concat          ConcatV2 on the mapped axis.
 *   upsample        nearest (asymmetric, floor: out[i] = x[⌊i/s⌋]): per axis Reshape [A, L, 1, B] → Tile [1, 1, s, 1],
 *                   then Reshape: exact on every backend (ResizeNearestNeighbor computes ⌊i·(in/out)⌋ in floating
 *                   point, which can round down), and rank 4 (webgpu runs Tile of rank ≥ 5 through a synchronous
 *                   GPU read); linear (half_pixel): ResizeBilinear(half_pixel_centers = true, align_corners =
 *                   false); 3D: the (H, W) pass with depth folded into the batch, then a (D, H·W) pass.
 *   flatten         Reshape (see Layout for the feature order).
 *   reshape         Reshape of the NCHW-ordered tensor to [N, …shape] (−1 for the one unknown size).
 *   dense           MatMul (weights [I, O]) / _FusedMatMul with BiasAdd.
 *   pad             Pad / PadV2 (constant), MirrorPad REFLECT (reflect), edge: MirrorPad SYMMETRIC by 1, repeated
 *                   (a symmetric pad of 1 repeats the edge element).
 *
 * Weight compression (`quantizeBytes: 1 | 2`): TF.js "quantization" is weight compression only. Kernels, biases and
 * folded batch-norm constants are stored as uint8 / uint16 with a per-tensor affine map in the manifest
 * (`quantization: { dtype, min, scale }`, zero exactly representable); tfjs dequantizes them to float32 when the
 * model loads, so files shrink 4× / 2× and inference is exactly as fast as with float32 weights (tfjs#6551). The
 * result carries a note saying so. Real int8 inference is the ONNX target's job.
 *
 * Backends. The emitted models were checked against a float64 reference on tfjs 4.22's cpu and wasm backends (the
 * tests) and on the webgpu backend (Dawn over Vulkan on an NVIDIA H100): every lowering above agrees to ~1e-7
 * relative, except 3D convs and max pools of symbolic sizes on webgpu (Conv3D) and wasm (MaxPool3D), where those
 * tfjs kernels are wrong; declaring the sizes avoids both.
 *
 * Metadata (userDefinedMetadata.convspec): producer, source, spec hash, layout (per input/output: stored shape,
 * logical shape, permutation), frozen layers, regularisers, dropout rates, batch-norm momentum/epsilon, the train
 * settings, IR quantization parameters, the weight compression used, and for every stored constant the IR
 * parameter it came from and how it was transformed. Nothing from the spec's training metadata is lost.
 *
 * Diagnostics instead of broken files (CNN7001): sizes TF's static shapes need but the spec leaves symbolic
 * (upsample, transposed conv, ceil-mode pools, average pools whose divisors depend on the size, reshapes with
 * several unknown sizes), average pooling with count_include_pad under 'same-dynamic', invalid options. Also
 * missing or mis-shaped weights (CNN8002/CNN8003/CNN8004). With an error, `files` is empty.
 *
 * Deterministic: node order, attribute order, JSON key order and weight bytes depend only on the graph, the
 * weights and the options.
 */
import { packageVersion, PRODUCER_NAME } from '../version.js';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { diagnostic, type Diagnostic } from '../diagnostics.js';
import { dimToJson, dimToString, type Dim } from '../ir/dims.js';
import { consumers, effectiveKernel, type Activation, type Graph, type Node, type NodeOf, type SettingValue, type Shape } from '../ir/graph.js';
import { graphParameters, type ParamRole } from '../ir/params.js';
import type { Weights } from '../ir/weights.js';
import { weightDiagnostics } from './weight-diagnostics.js';
import { writeFileAtomic } from '../runtime/data/atomic-write.js';
import { GraphDefBuilder, packWeights, SHARD_BYTES, tfAttr, tensorShape, type TfAttrValue, type WeightsManifestGroup } from './tfjs-graphdef.js';
import { dilateKernel, flipSpatial, gatherColumns, gatherVector, kernelAxesFirst, permute, reshape, sliceAxis0, unitAxis, type HostTensor } from './tfjs-weights.js';

export { quantizeAffine, SHARD_BYTES } from './tfjs-graphdef.js';

export interface EmitTfjsOptions {
  /** Store weights as uint8 (1) or uint16 (2): smaller files, same speed (dequantized at load). */
  readonly quantizeBytes?: 1 | 2;
  /** Order of graph inputs/outputs of rank ≥ 3: channels-last 'nhwc' (default) or the IR's 'nchw'. */
  readonly ioLayout?: 'nhwc' | 'nchw';
  /** Version written as generatedBy; defaults to convspec's package version. */
  readonly producerVersion?: string;
  /** Hash of the spec the graph came from, stored in the metadata. */
  readonly specHash?: string;
  /** Largest shard in bytes (default 4 MiB, tensorflowjs_converter's). */
  readonly shardBytes?: number;
}

export interface EmitTfjsResult {
  /** The model's name: `writeTfjsModel` writes into `dir/<name>/`. */
  readonly name: string;
  /** 'model.json' and the weight shards; empty when `diagnostics` has an error. */
  readonly files: Map<string, Uint8Array>;
  readonly diagnostics: Diagnostic[];
}

/** GraphDef versions of TensorFlow 2.15's graphs (what tfjs-converter reads into `GraphModel.modelVersion`). */
const GRAPH_DEF_VERSIONS = { producer: 1645, minConsumer: 12 } as const;


// ---------------------------------------------------------------------------------------------------------------
// Entry points

export function emitTfjs(graph: Graph, weights: Weights, options: EmitTfjsOptions = {}): EmitTfjsResult {
  const diagnostics: Diagnostic[] = [];
  const fail = (): EmitTfjsResult => ({ name: graph.name, files: new Map(), diagnostics });
  const quantizeBytes = options.quantizeBytes;
  if (quantizeBytes !== undefined && quantizeBytes !== 1 && quantizeBytes !== 2) {
    diagnostics.push(diagnostic('notExpressibleInOpset', undefined, [`TF.js weight quantization stores 1 or 2 bytes per weight, not ${String(quantizeBytes)}`], 'use quantizeBytes 1 (uint8) or 2 (uint16)'));
  }
  const ioLayout = options.ioLayout ?? 'nhwc';
  if (ioLayout !== 'nhwc' && ioLayout !== 'nchw') {
    diagnostics.push(diagnostic('notExpressibleInOpset', undefined, [`unknown TF.js input/output layout '${String(ioLayout)}'`], "use 'nhwc' or 'nchw'"));
  }
  const shardBytes = options.shardBytes ?? SHARD_BYTES;
  if (!Number.isInteger(shardBytes) || shardBytes < 4) {
    diagnostics.push(diagnostic('notExpressibleInOpset', undefined, [`shard size ${shardBytes} is not a positive number of bytes`], `use ${SHARD_BYTES}`));
  }
  if (!/^[A-Za-z0-9_.-]+$/.test(graph.name) || graph.name === '.' || graph.name === '..') {
    diagnostics.push(diagnostic('notExpressibleInOpset', undefined, [`model name '${graph.name}' cannot name a folder`]));
  }
  diagnostics.push(...weightDiagnostics(graph, weights));
  diagnostics.push(...expressibilityProblems(graph));
  if (diagnostics.some((d) => d.severity === 'error')) return fail();

  const emitter = new TfjsEmitter(graph, weights, ioLayout);
  emitter.emitAll();

  const packed = packWeights(emitter.builder.constants, quantizeBytes, shardBytes);
  const version = options.producerVersion ?? packageVersion();
  const compression =
    quantizeBytes === undefined
      ? null
      : {
          bytes: quantizeBytes,
          dtype: quantizeBytes === 1 ? 'uint8' : 'uint16',
          tensors: packed.quantizedTensors,
          note: 'weight compression only: tfjs dequantizes to float32 at load; inference runs in float32 at unchanged speed',
        };
  if (quantizeBytes !== undefined) {
    const ratio = packed.totalBytes / Math.max(1, packed.unquantizedBytes);
    diagnostics.push(
      diagnostic('passApplied', undefined, [
        'tfjs weight quantization',
        `${packed.quantizedTensors} weight tensors stored as ${quantizeBytes === 1 ? 'uint8' : 'uint16'} (${packed.totalBytes} of ${packed.unquantizedBytes} bytes, ${(100 * ratio).toFixed(0)}%); ` +
          'TF.js quantization is weight compression only: weights are dequantized to float32 when the model loads, so inference is not faster and runs in float32',
      ], 'for int8 inference export ONNX with the quantization pass'),
    );
  }

  const modelJson = {
    format: 'graph-model',
    generatedBy: `${PRODUCER_NAME} ${version}`,
    convertedBy: `${PRODUCER_NAME} ${version}`,
    modelTopology: { node: emitter.builder.nodes, library: {}, versions: GRAPH_DEF_VERSIONS },
    weightsManifest: packed.manifest,
    signature: emitter.signature(),
    userDefinedMetadata: {
      convspec: {
        producer: { name: PRODUCER_NAME, version },
        source: graph.source,
        ...(options.specHash !== undefined ? { specHash: options.specHash } : {}),
        layout: emitter.layoutMetadata(),
        ...trainingMetadata(graph),
        weightCompression: compression,
        weights: Object.fromEntries(emitter.weightNotes),
      },
    },
  };
  const files = new Map<string, Uint8Array>();
  files.set('model.json', new TextEncoder().encode(JSON.stringify(modelJson)));
  for (const shard of packed.shards) files.set(shard.path, shard.bytes);
  return { name: graph.name, files, diagnostics };
}

/**
 * Writes an export into `dir/<name>/` (the model's name, or the one given): the shards first, then model.json, each
 * atomically (temporary file + rename), then removes shards an earlier export left there. Returns the model's folder.
 */
export function writeTfjsModel(dir: string, result: EmitTfjsResult): string;
export function writeTfjsModel(dir: string, name: string, result: Pick<EmitTfjsResult, 'files' | 'diagnostics'>): string;
export function writeTfjsModel(dir: string, second: string | EmitTfjsResult, third?: Pick<EmitTfjsResult, 'files' | 'diagnostics'>): string {
  const name = typeof second === 'string' ? second : second.name;
  const result = typeof second === 'string' ? third : second;
  if (!result) throw new TypeError('writeTfjsModel needs the result of emitTfjs');
  if (!/^[A-Za-z0-9_.-]+$/.test(name) || name === '.' || name === '..') throw new Error(`'${name}' cannot name a model folder`);
  if (result.diagnostics.some((d) => d.severity === 'error') || !result.files.has('model.json')) {
    throw new Error(`the TF.js export of '${name}' has errors; nothing was written`);
  }
  const folder = join(dir, name);
  mkdirSync(folder, { recursive: true });
  const names = [...result.files.keys()].filter((n) => n !== 'model.json').sort();
  for (const file of names) writeFileAtomic(join(folder, file), result.files.get(file)!);
  writeFileAtomic(join(folder, 'model.json'), result.files.get('model.json')!);
  for (const entry of readdirSync(folder)) {
    if (/^group\d+-shard\d+of\d+\.bin$/.test(entry) && !result.files.has(entry)) rmSync(join(folder, entry), { force: true });
  }
  return folder;
}

/** model.json's contents as `tf.io.fromMemory` / an IOHandler returns them (ModelArtifacts), weights concatenated. */
export interface TfjsModelArtifacts {
  readonly format: string;
  readonly generatedBy: string;
  readonly convertedBy: string;
  readonly modelTopology: unknown;
  readonly weightSpecs: WeightsManifestGroup['weights'][number][];
  readonly weightData: ArrayBuffer;
  readonly signature: unknown;
  readonly userDefinedMetadata: Record<string, unknown>;
}

/**
 * Reads an export's files back as model artifacts, so Node code can run it without a file:// handler:
 * `tf.loadGraphModel(tf.io.fromMemory(tfjsModelArtifacts(result.files)))`.
 */
export function tfjsModelArtifacts(files: ReadonlyMap<string, Uint8Array>): TfjsModelArtifacts {
  const json = files.get('model.json');
  if (!json) throw new Error('the files hold no model.json');
  const model = JSON.parse(new TextDecoder().decode(json)) as {
    format: string;
    generatedBy: string;
    convertedBy: string;
    modelTopology: unknown;
    weightsManifest: WeightsManifestGroup[];
    signature: unknown;
    userDefinedMetadata: Record<string, unknown>;
  };
  const weightSpecs: TfjsModelArtifacts['weightSpecs'] = [];
  const parts: Uint8Array[] = [];
  for (const group of model.weightsManifest) {
    weightSpecs.push(...group.weights);
    for (const path of group.paths) {
      const bytes = files.get(path);
      if (!bytes) throw new Error(`the files lack weight shard '${path}'`);
      parts.push(bytes);
    }
  }
  const total = parts.reduce((n, p) => n + p.length, 0);
  const weightData = new ArrayBuffer(total);
  const view = new Uint8Array(weightData);
  let offset = 0;
  for (const part of parts) {
    view.set(part, offset);
    offset += part.length;
  }
  return {
    format: model.format,
    generatedBy: model.generatedBy,
    convertedBy: model.convertedBy,
    modelTopology: model.modelTopology,
    weightSpecs,
    weightData,
    signature: model.signature,
    userDefinedMetadata: model.userDefinedMetadata,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Checks before anything is built

const known = (d: Dim | undefined): d is number => typeof d === 'number';

function expressibilityProblems(graph: Graph): Diagnostic[] {
  const shapes = new Map<string, Shape>(graph.inputs.map((i) => [i.name, i.shape]));
  const problems: Diagnostic[] = [];
  const report = (node: Node, reason: string, hint: string) => problems.push(diagnostic('notExpressibleInOpset', node.span, [reason], hint));
  const sizesHint = 'declare the spatial sizes of the input (a symbolic batch is fine)';
  for (const node of graph.nodes) {
    const input = shapes.get(node.inputs[0] ?? '') ?? [];
    shapes.set(node.name, node.shape);
    const spatialKnown = input.slice(2).every(known);
    const describe = `[${input.map(dimToString).join(', ')}]`;
    switch (node.op) {
      case 'upsample':
        if (!spatialKnown) report(node, `upsample of ${describe} needs its spatial sizes in a TF.js graph model (Reshape/Tile and ResizeBilinear take constant sizes)`, sizesHint);
        break;
      case 'conv_transpose':
        if (!spatialKnown) report(node, `transposed conv of ${describe} needs its spatial sizes in a TF.js graph model (Conv2DBackpropInput takes the output shape)`, sizesHint);
        break;
      case 'maxpool':
      case 'avgpool':
        if (node.padding === 'same-dynamic') {
          if (node.op === 'avgpool' && node.countIncludePad)
            report(node, "average pooling with SAME padding on a symbolic size and count_include_pad has no TF.js form (TF's SAME average excludes the padding)", 'use count_include_pad: false or declare the spatial sizes');
        } else if (!spatialKnown) {
          const padded = node.padding.begin.some((b) => b > 0) || node.padding.end.some((e) => e > 0);
          if (node.ceilMode) report(node, `${node.op} in ceil mode on ${describe} needs its spatial sizes in a TF.js graph model (the extra window depends on them)`, sizesHint);
          else if (node.op === 'avgpool' && !node.countIncludePad && padded)
            report(node, `average pooling with padding and count_include_pad: false on ${describe} needs its spatial sizes in a TF.js graph model (its divisors depend on them)`, sizesHint);
        }
        break;
      case 'flatten':
        if (input.length >= 3 && !known(input[0]) && !input.slice(1).every(known))
          report(node, `flatten of ${describe} has two unknown sizes; a TF Reshape infers one`, sizesHint);
        break;
      case 'reshape': {
        const target = [node.shape[0]!, ...node.shape.slice(1)];
        if (target.filter((d) => !known(d)).length > 1)
          report(node, `reshape to [${node.shape.map(dimToString).join(', ')}] has more than one unknown size; a TF Reshape infers one`, 'give the input fixed sizes');
        break;
      }
      default:
        break;
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------------------------
// Layouts

type Layout = { readonly kind: 'logical' } | { readonly kind: 'channels-last' } | { readonly kind: 'flat'; readonly perm: readonly number[] };

const LOGICAL: Layout = { kind: 'logical' };
const CHANNELS_LAST: Layout = { kind: 'channels-last' };

interface Value {
  readonly tensor: string;
  readonly layout: Layout;
}

/** Stored shape of a channels-last feature map: [N, S…, C]; 1D as [N, 1, L, C]. */
function channelsLastShape(shape: Shape): Dim[] {
  const [n, c, ...spatial] = shape as [Dim, Dim, ...Dim[]];
  return shape.length === 3 ? [n, 1, spatial[0]!, c] : [n, ...spatial, c];
}

/** Rank of the stored tensor. */
function storedRank(rank: number, layout: Layout): number {
  return layout.kind === 'channels-last' && rank === 3 ? 4 : rank;
}

/** The stored axis that holds logical axis `axis` of a rank-`rank` tensor. */
function storedAxis(axis: number, rank: number, layout: Layout): number {
  const a = axis < 0 ? axis + rank : axis;
  if (layout.kind !== 'channels-last') return a;
  if (a === 0) return 0;
  if (a === 1) return storedRank(rank, layout) - 1;
  return rank === 3 ? a : a - 1;
}

/** Logical [N, C, S…] and stored [N, S…, C] have the same element order when C = 1 or every spatial size is 1. */
function sameElementOrder(shape: Shape): boolean {
  return shape[1] === 1 || shape.slice(2).every((d) => d === 1);
}

/** A Reshape target for `dims`: −1 for the one unknown size (the batch when it is symbolic), or undefined. */
function reshapeTarget(dims: readonly Dim[]): number[] | undefined {
  const unknown = dims.filter((d) => !known(d)).length;
  if (unknown > 1) return undefined;
  return dims.map((d) => (known(d) ? d : -1));
}

/** Per-axis values of a window op on the stored spatial axes (1D gains the unit height axis). */
function storedSpatial(values: readonly number[], fill: number): number[] {
  return values.length === 1 ? [fill, values[0]!] : [...values];
}

/** TF's SAME pads (extra at the end) for size L, kernel extent k, stride s. */
function tfSamePads(size: number, kernel: number, stride: number): [number, number] {
  const out = Math.ceil(size / stride);
  const total = Math.max((out - 1) * stride + kernel - size, 0);
  return [Math.floor(total / 2), total - Math.floor(total / 2)];
}

const FUSIBLE: ReadonlyMap<Activation['kind'], string> = new Map([
  ['relu', 'Relu'],
  ['relu6', 'Relu6'],
  ['leaky_relu', 'LeakyRelu'],
  ['sigmoid', 'Sigmoid'],
  ['elu', 'Elu'],
]);

function fusedActivationName(fn: Activation): string | undefined {
  if (fn.kind === 'elu' && fn.alpha !== 1) return undefined;
  return FUSIBLE.get(fn.kind);
}

// ---------------------------------------------------------------------------------------------------------------
// The emitter

interface WeightNote {
  readonly parameter: string;
  readonly transform: string;
}

class TfjsEmitter {
  readonly builder = new GraphDefBuilder();
  readonly weightNotes: Array<[string, WeightNote]> = [];
  private readonly shapes = new Map<string, Shape>();
  private readonly values = new Map<string, Value>();
  private readonly aliases = new Map<string, string>();
  private readonly conversions = new Map<string, string>();
  /** Biased conv/dense node → the activation fused into it. */
  private readonly fusions = new Map<string, NodeOf<'activation'>>();
  private readonly absorbed = new Set<string>();
  private readonly outputTensors = new Map<string, { tensor: string; shape: Dim[] }>();
  private readonly inputShapes = new Map<string, Dim[]>();

  constructor(
    readonly graph: Graph,
    readonly weights: Weights,
    readonly ioLayout: 'nhwc' | 'nchw',
  ) {
    this.planFusions();
  }

  // -- planning -------------------------------------------------------------------------------------------------

  private planFusions(): void {
    const readers = consumers(this.graph);
    const outputValues = new Set(this.graph.outputs.map((o) => o.value));
    for (const node of this.graph.nodes) {
      const fusibleProducer =
        (node.op === 'conv' && node.bias && node.kernel.length <= 2 && (node.groups === 1 || node.groups === node.inChannels)) || (node.op === 'dense' && node.bias);
      if (!fusibleProducer || outputValues.has(node.name)) continue;
      const list = readers.get(node.name) ?? [];
      const reader = list[0];
      if (list.length !== 1 || reader?.op !== 'activation' || reader.inputs.length !== 1) continue;
      if (fusedActivationName(reader.fn) === undefined) continue;
      this.fusions.set(node.name, reader);
      this.absorbed.add(reader.name);
    }
  }

  // -- values and layouts ---------------------------------------------------------------------------------------

  private canonical(name: string): string {
    let current = name;
    for (let next = this.aliases.get(current); next !== undefined; next = this.aliases.get(current)) current = next;
    return current;
  }

  shapeOf(name: string): Shape {
    const shape = this.shapes.get(this.canonical(name));
    if (!shape) throw new Error(`internal: no shape for '${name}'`);
    return shape;
  }

  private valueOf(name: string): Value {
    const value = this.values.get(this.canonical(name));
    if (!value) throw new Error(`internal: tensor '${name}' was not emitted`);
    return value;
  }

  private define(name: string, shape: Shape, tensor: string, layout: Layout): void {
    this.shapes.set(name, shape);
    this.values.set(name, { tensor, layout });
  }

  private alias(name: string, of: string): void {
    this.aliases.set(name, this.canonical(of));
  }

  /** The tensor in channels-last order (feature maps only). */
  channelsLast(name: string): string {
    const key = this.canonical(name);
    const value = this.valueOf(key);
    if (value.layout.kind === 'channels-last') return value.tensor;
    const shape = this.shapeOf(key);
    if (shape.length < 3) throw new Error(`internal: '${name}' of rank ${shape.length} has no channels-last form`);
    const cached = this.conversions.get(`${key}|cl`);
    if (cached) return cached;
    const logical = this.logical(key);
    const out = `${key}/to_channels_last`;
    const target = sameElementOrder(shape) ? reshapeTarget(channelsLastShape(shape)) : undefined;
    let tensor: string;
    if (target) {
      tensor = this.reshapeNode(out, logical, target);
    } else {
      const rank = shape.length;
      const perm = [0, ...range(2, rank), 1];
      if (rank === 3) {
        const transposed = this.transposeNode(`${out}/transpose`, logical, perm);
        tensor = this.builder.add(out, 'ExpandDims', [transposed, this.i32(`${out}/axis`, [1], [])]);
      } else {
        tensor = this.transposeNode(out, logical, perm);
      }
    }
    this.conversions.set(`${key}|cl`, tensor);
    return tensor;
  }

  /** The tensor in the IR's logical (NCHW) element order. */
  logical(name: string): string {
    const key = this.canonical(name);
    const value = this.valueOf(key);
    if (value.layout.kind === 'logical') return value.tensor;
    const cached = this.conversions.get(`${key}|logical`);
    if (cached) return cached;
    const shape = this.shapeOf(key);
    const out = `${key}/to_nchw`;
    let tensor: string;
    if (value.layout.kind === 'flat') {
      const inverse = new Array<number>(value.layout.perm.length);
      value.layout.perm.forEach((logicalIndex, stored) => (inverse[logicalIndex] = stored));
      tensor = this.builder.add(out, 'GatherV2', [value.tensor, this.i32(`${out}/indices`, inverse), this.i32(`${out}/axis`, [1], [])], { batch_dims: tfAttr.int(0) });
    } else {
      const target = sameElementOrder(shape) ? reshapeTarget(shape) : undefined;
      const rank = shape.length;
      if (target) {
        tensor = this.reshapeNode(out, value.tensor, target);
      } else if (rank === 3) {
        const squeezed = this.builder.add(`${out}/squeeze`, 'Squeeze', [value.tensor], { squeeze_dims: tfAttr.ints([1]) });
        tensor = this.transposeNode(out, squeezed, [0, 2, 1]);
      } else {
        tensor = this.transposeNode(out, value.tensor, [0, rank - 1, ...range(1, rank - 1)]);
      }
    }
    this.conversions.set(`${key}|logical`, tensor);
    return tensor;
  }

  /** A rank-2 tensor in logical or permuted-feature order. */
  private flatValue(name: string): Value {
    const value = this.valueOf(name);
    if (value.layout.kind === 'channels-last') throw new Error(`internal: '${name}' is not flat`);
    return value;
  }

  // -- node and constant helpers --------------------------------------------------------------------------------

  i32(name: string, values: readonly number[], shape: readonly number[] = [values.length]): string {
    return this.builder.constant(name, 'int32', shape, Int32Array.from(values));
  }

  f32(name: string, shape: readonly number[], data: Float32Array): string {
    return this.builder.constant(name, 'float32', shape, data);
  }

  scalar(name: string, value: number): string {
    return this.f32(name, [], new Float32Array([value]));
  }

  /** A constant holding (a transform of) IR parameters: stored quantizable, described in the metadata. */
  weightConstant(name: string, tensor: HostTensor, parameter: string, transform: string): string {
    this.weightNotes.push([name, { parameter, transform }]);
    return this.builder.constant(name, 'float32', tensor.shape, tensor.data, true);
  }

  param(node: Node, role: ParamRole): HostTensor {
    const name = `${node.name}.${role}`;
    const tensor = this.weights.get(name);
    if (!tensor) throw new Error(`internal: weight '${name}' vanished after checking`);
    return { shape: tensor.shape, data: tensor.data };
  }

  reshapeNode(name: string, x: string, target: readonly number[]): string {
    return this.builder.add(name, 'Reshape', [x, this.i32(`${name}/shape`, target)]);
  }

  transposeNode(name: string, x: string, perm: readonly number[]): string {
    return this.builder.add(name, 'Transpose', [x, this.i32(`${name}/perm`, perm)]);
  }

  // -- graph ----------------------------------------------------------------------------------------------------

  emitAll(): void {
    for (const input of this.graph.inputs) this.emitInput(input.name, input.shape);
    for (const node of this.graph.nodes) {
      if (this.absorbed.has(node.name)) continue;
      this.emitNode(node);
    }
    this.emitOutputs();
  }

  private emitInput(name: string, shape: Shape): void {
    const rank = shape.length;
    const dims = (list: readonly Dim[]) => list.map((d) => (known(d) ? d : -1));
    if (rank < 3 || this.ioLayout === 'nchw') {
      this.builder.add(name, 'Placeholder', [], { dtype: tfAttr.dtype('DT_FLOAT'), shape: tfAttr.shape(dims(shape)) });
      this.inputShapes.set(name, [...shape]);
      this.define(name, shape, name, LOGICAL);
      return;
    }
    const stored = channelsLastShape(shape);
    const fed = rank === 3 ? [stored[0]!, stored[2]!, stored[3]!] : stored;
    this.builder.add(name, 'Placeholder', [], { dtype: tfAttr.dtype('DT_FLOAT'), shape: tfAttr.shape(dims(fed)) });
    this.inputShapes.set(name, fed);
    const tensor = rank === 3 ? this.builder.add(`${name}/expand`, 'ExpandDims', [name, this.i32(`${name}/expand/axis`, [1], [])]) : name;
    this.define(name, shape, tensor, CHANNELS_LAST);
  }

  private emitOutputs(): void {
    const used = new Set<string>();
    const placeholders = new Set(this.graph.inputs.map((i) => i.name));
    for (const output of this.graph.outputs) {
      const key = this.canonical(output.value);
      const shape = this.shapeOf(key);
      let tensor: string;
      let stored: Dim[];
      if (shape.length >= 3 && this.ioLayout === 'nhwc') {
        const cl = this.channelsLast(key);
        stored = channelsLastShape(shape);
        if (shape.length === 3) {
          const cachedName = `${key}|nlc`;
          tensor = this.conversions.get(cachedName) ?? this.builder.add(`${key}/to_nlc`, 'Squeeze', [cl], { squeeze_dims: tfAttr.ints([1]) });
          this.conversions.set(cachedName, tensor);
          stored = [stored[0]!, stored[2]!, stored[3]!];
        } else {
          tensor = cl;
        }
      } else {
        tensor = this.logical(key);
        stored = [...shape];
      }
      if (used.has(tensor) || placeholders.has(tensor)) tensor = this.builder.add(`${output.name}/output`, 'Identity', [tensor]);
      used.add(tensor);
      this.outputTensors.set(output.name, { tensor, shape: stored });
    }
  }

  signature(): Record<string, unknown> {
    const entry = (tensor: string, dims: readonly Dim[]) => ({ name: `${tensor}:0`, dtype: 'DT_FLOAT', tensorShape: tensorShape(dims.map((d) => (known(d) ? d : -1))) });
    const inputs: Record<string, unknown> = {};
    for (const input of this.graph.inputs) inputs[input.name] = entry(input.name, this.inputShapes.get(input.name)!);
    const outputs: Record<string, unknown> = {};
    for (const output of this.graph.outputs) {
      const { tensor, shape } = this.outputTensors.get(output.name)!;
      outputs[output.name] = entry(tensor, shape);
    }
    return { inputs, outputs };
  }

  layoutMetadata(): Record<string, unknown> {
    const describe = (logical: Shape, stored: readonly Dim[]) => {
      const rank = logical.length;
      const channelsLast = rank >= 3 && this.ioLayout === 'nhwc';
      const perm = channelsLast ? [0, ...range(2, rank), 1] : range(0, rank);
      return {
        shape: stored.map(dimToJson),
        logicalShape: logical.map(dimToJson),
        order: rank < 3 ? 'NF' : channelsLast ? ['NLC', 'NHWC', 'NDHWC'][rank - 3] : ['NCL', 'NCHW', 'NCDHW'][rank - 3],
        /** stored axis i holds logical axis perm[i] */
        perm,
      };
    };
    const inputs: Record<string, unknown> = {};
    for (const input of this.graph.inputs) inputs[input.name] = describe(input.shape, this.inputShapes.get(input.name)!);
    const outputs: Record<string, unknown> = {};
    for (const output of this.graph.outputs) outputs[output.name] = describe(this.shapeOf(output.value), this.outputTensors.get(output.name)!.shape);
    return {
      io: this.ioLayout,
      internal: 'channels-last (NLC stored as [N, 1, L, C], NHWC, NDHWC)',
      inputs,
      outputs,
    };
  }

  // -- dispatch -------------------------------------------------------------------------------------------------

  private emitNode(node: Node): void {
    switch (node.op) {
      case 'conv':
        if (node.kernel.length === 3) this.emitConv3d(node);
        else this.emitConv2d(node);
        return;
      case 'conv_transpose':
        if (node.kernel.length === 3) this.emitConvTranspose3d(node);
        else this.emitConvTranspose2d(node);
        return;
      case 'maxpool':
      case 'avgpool':
        this.emitPool(node);
        return;
      case 'global_avgpool':
      case 'global_maxpool': {
        const x = this.channelsLast(node.inputs[0]!);
        const rank = storedRank(node.shape.length, CHANNELS_LAST);
        const axes = this.i32(`${node.name}/axes`, range(1, rank - 1));
        const tensor = this.builder.add(node.name, node.op === 'global_avgpool' ? 'Mean' : 'Max', [x, axes], { keep_dims: tfAttr.bool(true) });
        this.define(node.name, node.shape, tensor, CHANNELS_LAST);
        return;
      }
      case 'batchnorm':
        this.emitBatchNorm(node);
        return;
      case 'activation':
        this.emitActivationNode(node);
        return;
      case 'dropout':
        this.alias(node.name, node.inputs[0]!);
        return;
      case 'add':
      case 'mul':
        this.emitElementwise(node);
        return;
      case 'concat':
        this.emitConcat(node);
        return;
      case 'upsample':
        this.emitUpsample(node);
        return;
      case 'flatten':
        this.emitFlatten(node);
        return;
      case 'reshape': {
        const x = this.logical(node.inputs[0]!);
        const target = reshapeTarget(node.shape);
        if (!target) throw new Error(`internal: reshape '${node.name}' passed the expressibility check`);
        this.define(node.name, node.shape, this.reshapeNode(node.name, x, target), LOGICAL);
        return;
      }
      case 'dense':
        this.emitDense(node);
        return;
      case 'pad':
        this.emitPad(node);
        return;
    }
  }

  // -- convolutions ---------------------------------------------------------------------------------------------

  /** 1D and 2D convs on stored [N, H, W, C] ([N, 1, L, C] for 1D). */
  private emitConv2d(node: NodeOf<'conv'>): void {
    const x = this.channelsLast(node.inputs[0]!);
    const inShape = channelsLastShape(this.shapeOf(node.inputs[0]!));
    const oneD = node.kernel.length === 1;
    const strides = storedSpatial(node.stride, 1);
    let weight = this.param(node, 'weight');
    let dilation = [...node.dilation];
    let transform = '';
    if (dilation.some((d) => d > 1) && node.stride.some((s) => s > 1)) {
      weight = dilateKernel(weight, dilation);
      dilation = dilation.map(() => 1);
      transform = 'dilated (zeros between taps), ';
    }
    const dilations = storedSpatial(dilation, 1);
    const kernelExtent = storedSpatial(weight.shape.slice(2).map((k, i) => effectiveKernel(k, dilation[i]!)), 1);
    const padding = this.convPadding(node.padding, inShape.slice(1, -1), kernelExtent, strides);
    const fusion = this.fusions.get(node.name);
    const outName = fusion?.name ?? node.name;
    const windowAttrs: Record<string, TfAttrValue> = {
      strides: tfAttr.ints([1, ...strides, 1]),
      dilations: tfAttr.ints([1, ...dilations, 1]),
      data_format: tfAttr.string('NHWC'),
      ...padding,
    };
    const toFilter = (w: HostTensor) => (oneD ? unitAxis(kernelAxesFirst(w), 0) : kernelAxesFirst(w));
    const layoutName = oneD ? '[1, k, I/g, O]' : '[kh, kw, I/g, O]';
    const g = node.groups;
    if (g === 1 || g === node.inChannels) {
      const depthwise = g !== 1;
      let filter: HostTensor;
      if (depthwise) {
        const hwio = toFilter(weight); // [k…, 1, C·M]
        const multiplier = node.filters / node.inChannels;
        filter = reshape(hwio, [...hwio.shape.slice(0, -2), node.inChannels, multiplier]);
      } else {
        filter = toFilter(weight);
      }
      const filterName = this.weightConstant(`${node.name}.weight`, filter, `${node.name}.weight`, `${transform}${depthwise ? 'depthwise [k…, C, M] (output channel c·M + m)' : `conv ${layoutName}`}`);
      const inputs = [x, filterName];
      let tensor: string;
      if (node.bias) {
        inputs.push(this.weightConstant(`${node.name}.bias`, this.param(node, 'bias'), `${node.name}.bias`, 'unchanged'));
        const fusedOps = ['BiasAdd'];
        const extra: Record<string, TfAttrValue> = {};
        if (fusion) {
          fusedOps.push(fusedActivationName(fusion.fn)!);
          if (fusion.fn.kind === 'leaky_relu') extra['leakyrelu_alpha'] = tfAttr.float(fusion.fn.alpha);
        }
        tensor = this.builder.add(outName, depthwise ? 'FusedDepthwiseConv2dNative' : '_FusedConv2D', inputs, {
          ...windowAttrs,
          ...extra,
          fused_ops: tfAttr.strings(fusedOps),
          num_args: tfAttr.int(1),
        });
      } else {
        tensor = this.builder.add(outName, depthwise ? 'DepthwiseConv2dNative' : 'Conv2D', inputs, windowAttrs);
      }
      this.define(outName, fusion ? fusion.shape : node.shape, tensor, CHANNELS_LAST);
      return;
    }
    // 1 < groups < C: split the channels, one conv per group, concatenate
    const groupOut = node.filters / g;
    const split = this.splitChannels(node.name, x, g, 4);
    const parts: string[] = [];
    for (let gi = 0; gi < g; gi++) {
      const filter = toFilter(sliceAxis0(weight, gi * groupOut, groupOut));
      const filterName = this.weightConstant(`${node.name}.weight/group${gi}`, filter, `${node.name}.weight`, `${transform}output channels ${gi * groupOut}..${(gi + 1) * groupOut - 1}, conv ${layoutName}`);
      parts.push(this.builder.add(`${node.name}/group${gi}`, 'Conv2D', [split[gi]!, filterName], windowAttrs));
    }
    this.finishGroups(node, parts, 4);
  }

  /**
   * Adds a conv's bias, named after the node: BiasAdd on rank 4; on rank 5 an AddV2 with the bias viewed as
   * [1, 1, 1, 1, C] (tfjs-backend-webgpu's broadcasting shader cannot index rank-5 coordinates against rank 1).
   */
  private addBias(node: NodeOf<'conv'> | NodeOf<'conv_transpose'>, x: string, rank: number): string {
    const bias = this.param(node, 'bias');
    if (rank !== 5) return this.builder.add(node.name, 'BiasAdd', [x, this.weightConstant(`${node.name}.bias`, bias, `${node.name}.bias`, 'unchanged')], { data_format: tfAttr.string('NHWC') });
    const view = reshape(bias, [1, 1, 1, 1, bias.shape[0]!]);
    return this.builder.add(node.name, 'AddV2', [x, this.weightConstant(`${node.name}.bias`, view, `${node.name}.bias`, 'viewed as [1, 1, 1, 1, C]')]);
  }

  /** Split → (per-group tensors); ConcatV2 → BiasAdd are shared by every grouped lowering. */
  private splitChannels(name: string, x: string, groups: number, rank: number): string[] {
    const split = this.builder.add(`${name}/split`, 'Split', [this.i32(`${name}/split/axis`, [rank - 1], []), x], { num_split: tfAttr.int(groups) });
    return range(0, groups).map((gi) => (gi === 0 ? split : `${split}:${gi}`));
  }

  private finishGroups(node: NodeOf<'conv'> | NodeOf<'conv_transpose'>, parts: readonly string[], rank: number, after?: (x: string, last: boolean) => string): void {
    const bias = node.bias;
    const tail = after !== undefined;
    const concatName = bias || tail ? `${node.name}/concat` : node.name;
    let tensor = this.builder.add(concatName, 'ConcatV2', [...parts, this.i32(`${node.name}/concat/axis`, [rank - 1], [])], { N: tfAttr.int(parts.length) });
    if (after) tensor = after(tensor, !bias);
    if (bias) tensor = this.addBias(node, tensor, rank);
    this.define(node.name, node.shape, tensor, CHANNELS_LAST);
  }

  /** Padding attributes of a 2D conv: VALID, SAME, or EXPLICIT with explicit_paddings. */
  private convPadding(padding: NodeOf<'conv'>['padding'], sizes: readonly Dim[], kernel: readonly number[], strides: readonly number[]): Record<string, TfAttrValue> {
    if (padding === 'same-dynamic') return { padding: tfAttr.string('SAME') };
    const begin = storedSpatial(padding.begin, 0);
    const end = storedSpatial(padding.end, 0);
    if (begin.every((b) => b === 0) && end.every((e) => e === 0)) return { padding: tfAttr.string('VALID') };
    const same = sizes.every((size, i) => known(size) && tfSamePads(size, kernel[i]!, strides[i]!).every((p, j) => p === (j === 0 ? begin[i] : end[i])));
    if (same) return { padding: tfAttr.string('SAME') };
    const explicit = [0, 0, ...begin.flatMap((b, i) => [b, end[i]!]), 0, 0];
    return { padding: tfAttr.string('EXPLICIT'), explicit_paddings: tfAttr.ints(explicit) };
  }

  /**
   * Pad (with `value`) of the stored spatial axes of a tensor of stored shape `stored`; returns x when every pad is
   * 0. A 3D map of known sizes is padded as two rank-4 Pads ((H, W) with the depth folded into the batch, then D
   * over [N, D, H·W, C]): tfjs-backend-webgpu's Pad shader cannot index rank-5 coordinates.
   */
  private padSpatial(name: string, x: string, stored: readonly Dim[], begin: readonly number[], end: readonly number[], value = 0): string {
    if (begin.every((b) => b === 0) && end.every((e) => e === 0)) return x;
    const rank = stored.length;
    const pad = (padName: string, input: string, padRank: number, b: readonly number[], e: readonly number[]): string => {
      const pairs = [0, 0, ...b.flatMap((v, i) => [v, e[i]!]), 0, 0];
      const paddings = this.i32(`${padName}/paddings`, pairs, [padRank, 2]);
      if (value === 0) return this.builder.add(padName, 'Pad', [input, paddings]);
      return this.builder.add(padName, 'PadV2', [input, paddings, this.scalar(`${padName}/value`, value)]);
    };
    if (rank !== 5 || !stored.slice(1).every(known)) return pad(name, x, rank, begin, end);
    const [d, h, w, c] = stored.slice(1) as [number, number, number, number];
    const [bd, bh, bw] = begin as [number, number, number];
    const [ed, eh, ew] = end as [number, number, number];
    let t = x;
    if (bh > 0 || eh > 0 || bw > 0 || ew > 0) {
      t = pad(`${name}/pad_hw`, this.reshapeNode(`${name}/fold_depth`, t, [-1, h, w, c]), 4, [bh, bw], [eh, ew]);
    }
    const [ph, pw] = [h + bh + eh, w + bw + ew];
    if (bd > 0 || ed > 0) {
      t = pad(`${name}/pad_d`, this.reshapeNode(`${name}/fold_planes`, t, [-1, d, ph * pw, c]), 4, [bd, 0], [ed, 0]);
    }
    return this.reshapeNode(name, t, [-1, d + bd + ed, ph, pw, c]);
  }

  private emitConv3d(node: NodeOf<'conv'>): void {
    let x = this.channelsLast(node.inputs[0]!);
    const inShape = channelsLastShape(this.shapeOf(node.inputs[0]!));
    let weight = this.param(node, 'weight');
    const g = node.groups;
    const groupOut = node.filters / g;
    const groupIn = node.inChannels / g;
    if (node.padding !== 'same-dynamic' && inShape.slice(1).every(known)) {
      // known sizes: rank-4 pads, then each group as a sum of 2D convs over the depth taps
      const { begin, end } = node.padding;
      x = this.padSpatial(`${node.name}/pad`, x, inShape, begin, end);
      const padded = (inShape.slice(1, -1) as number[]).map((size, i) => size + begin[i]! + end[i]!) as [number, number, number];
      let dilation = [...node.dilation];
      let transform = '';
      if ((dilation[1]! > 1 || dilation[2]! > 1) && (node.stride[1]! > 1 || node.stride[2]! > 1)) {
        weight = dilateKernel(weight, [1, dilation[1]!, dilation[2]!]);
        dilation = [dilation[0]!, 1, 1];
        transform = 'height and width dilated (zeros between taps), ';
      }
      const conv = (name: string, input: string, w: HostTensor, constName: string, note: string) =>
        this.conv3dAsConv2d(name, input, padded, groupIn, w, node.stride, dilation, constName, `${node.name}.weight`, note);
      if (g === 1) {
        const last = !node.bias;
        let tensor = conv(last ? node.name : `${node.name}/conv`, x, weight, `${node.name}.weight`, `${transform}depth tap t of conv [kh, kw, I, O]`);
        if (node.bias) tensor = this.addBias(node, tensor, 5);
        this.define(node.name, node.shape, tensor, CHANNELS_LAST);
        return;
      }
      const split = this.splitChannels(node.name, x, g, 5);
      const parts = range(0, g).map((gi) =>
        conv(`${node.name}/group${gi}`, split[gi]!, sliceAxis0(weight, gi * groupOut, groupOut), `${node.name}.weight/group${gi}`, `${transform}output channels ${gi * groupOut}..${(gi + 1) * groupOut - 1}, depth tap t of conv [kh, kw, I/g, O/g]`),
      );
      this.finishGroups(node, parts, 5);
      return;
    }
    // symbolic sizes: Conv3D (SAME for 'same-dynamic')
    let dilations = [...node.dilation];
    let transform = '';
    if (dilations.some((d) => d > 1) && node.stride.some((s) => s > 1)) {
      weight = dilateKernel(weight, node.dilation);
      dilations = dilations.map(() => 1);
      transform = 'dilated (zeros between taps), ';
    }
    let paddingName = 'VALID';
    if (node.padding === 'same-dynamic') paddingName = 'SAME';
    else x = this.padSpatial(`${node.name}/pad`, x, inShape, node.padding.begin, node.padding.end);
    const attrs: Record<string, TfAttrValue> = {
      strides: tfAttr.ints([1, ...node.stride, 1]),
      dilations: tfAttr.ints([1, ...dilations, 1]),
      padding: tfAttr.string(paddingName),
      data_format: tfAttr.string('NDHWC'),
    };
    if (g === 1) {
      const filter = this.weightConstant(`${node.name}.weight`, kernelAxesFirst(weight), `${node.name}.weight`, `${transform}conv [kd, kh, kw, I, O]`);
      if (!node.bias) {
        this.define(node.name, node.shape, this.builder.add(node.name, 'Conv3D', [x, filter], attrs), CHANNELS_LAST);
        return;
      }
      const conv = this.builder.add(`${node.name}/conv`, 'Conv3D', [x, filter], attrs);
      this.define(node.name, node.shape, this.addBias(node, conv, 5), CHANNELS_LAST);
      return;
    }
    const split = this.splitChannels(node.name, x, g, 5);
    const parts: string[] = [];
    for (let gi = 0; gi < g; gi++) {
      const filter = kernelAxesFirst(sliceAxis0(weight, gi * groupOut, groupOut));
      const filterName = this.weightConstant(`${node.name}.weight/group${gi}`, filter, `${node.name}.weight`, `${transform}output channels ${gi * groupOut}..${(gi + 1) * groupOut - 1}, conv [kd, kh, kw, I/g, O/g]`);
      parts.push(this.builder.add(`${node.name}/group${gi}`, 'Conv3D', [split[gi]!, filterName], attrs));
    }
    this.finishGroups(node, parts, 5);
  }

  /**
   * A VALID 3D conv of a padded [N, D, H, W, C] map of known sizes with an IR-layout kernel [O, C, kd, kh, kw], as
   * 2D convs: the depth is folded into the batch, tap t's [kh, kw, C, O] slice convolves every plane (Conv2D), the
   * results are shifted by t·dilation planes (Slice) and summed (AddN); a depth stride keeps every s-th plane.
   * Taps whose weights are all zero are skipped. Everything stays rank ≤ 4 (tfjs-backend-webgpu's Conv3D shader
   * does not compile: it indexes a rank-5 coordinate struct), and Conv2D is tfjs's best-optimised kernel.
   */
  private conv3dAsConv2d(name: string, x: string, sizes: readonly [number, number, number], channels: number, weight: HostTensor, stride: readonly number[], dilation: readonly number[], constName: string, parameter: string, note: string): string {
    const [d, h, w] = sizes;
    const [outChannels, , kd, kh, kw] = weight.shape as [number, number, number, number, number];
    const extent = (k: number, dl: number) => dl * (k - 1) + 1;
    const od = Math.floor((d - extent(kd, dilation[0]!)) / stride[0]!) + 1;
    const oh = Math.floor((h - extent(kh, dilation[1]!)) / stride[1]!) + 1;
    const ow = Math.floor((w - extent(kw, dilation[2]!)) / stride[2]!) + 1;
    const planeSize = oh * ow * outChannels;
    const span = (od - 1) * stride[0]! + 1;
    const folded = this.reshapeNode(`${name}/fold_depth`, x, [-1, h, w, channels]);
    const byTap = permute(weight, [2, 0, 1, 3, 4]); // [kd, O, C, kh, kw]
    const taps: string[] = [];
    for (let t = 0; t < kd; t++) {
      const slice = reshape(sliceAxis0(byTap, t, 1), [outChannels, channels, kh, kw]);
      if (t > 0 && slice.data.every((v) => v === 0)) continue;
      const filter = this.weightConstant(`${constName}/tap${t}`, kernelAxesFirst(slice), parameter, note.replace('depth tap t', `depth tap ${t}`));
      const conv = this.builder.add(`${name}/tap${t}`, 'Conv2D', [folded, filter], {
        strides: tfAttr.ints([1, stride[1]!, stride[2]!, 1]),
        dilations: tfAttr.ints([1, dilation[1]!, dilation[2]!, 1]),
        padding: tfAttr.string('VALID'),
        data_format: tfAttr.string('NHWC'),
      });
      const offset = t * dilation[0]!;
      const planes = this.reshapeNode(`${name}/tap${t}/planes`, conv, [-1, d, planeSize]);
      taps.push(offset === 0 && span === d ? planes : this.builder.add(`${name}/tap${t}/shift`, 'Slice', [planes, this.i32(`${name}/tap${t}/shift/begin`, [0, offset, 0]), this.i32(`${name}/tap${t}/shift/size`, [-1, span, -1])]));
    }
    let sum = taps.length === 1 ? taps[0]! : this.builder.add(`${name}/sum`, 'AddN', taps, { N: tfAttr.int(taps.length) });
    if (stride[0]! > 1) {
      // planes 0, s, 2s, …: pad to od·s planes, view as [N, od, s, F], keep index 0 of the s axis
      const padded = this.builder.add(`${name}/stride_pad`, 'Pad', [sum, this.i32(`${name}/stride_pad/paddings`, [0, 0, 0, od * stride[0]! - span, 0, 0], [3, 2])]);
      const grouped = this.reshapeNode(`${name}/stride_view`, padded, [-1, od, stride[0]!, planeSize]);
      sum = this.builder.add(`${name}/stride_pick`, 'Slice', [grouped, this.i32(`${name}/stride_pick/begin`, [0, 0, 0, 0]), this.i32(`${name}/stride_pick/size`, [-1, -1, 1, -1])]);
    }
    return this.reshapeNode(name, sum, [-1, od, oh, ow, outChannels]);
  }

  /** Transposed conv, 1D/2D: Conv2DBackpropInput with explicit pads (see the module header). */
  private emitConvTranspose2d(node: NodeOf<'conv_transpose'>): void {
    const input = node.inputs[0]!;
    const x = this.channelsLast(input);
    const inStored = channelsLastShape(this.shapeOf(input));
    const outStored = channelsLastShape(node.shape);
    const oneD = node.kernel.length === 1;
    const weight = dilateKernel(this.param(node, 'weight'), node.dilation);
    const transform = node.dilation.some((d) => d > 1) ? 'dilated (zeros between taps), ' : '';
    const kernel = storedSpatial(weight.shape.slice(2), 1);
    const strides = storedSpatial(node.stride, 1);
    const begin = storedSpatial(node.padding.begin, 0);
    const end = storedSpatial(node.padding.end, 0);
    const outputPadding = storedSpatial(node.outputPadding, 0);
    const inSizes = inStored.slice(1, -1) as number[];
    const outSizes = outStored.slice(1, -1) as number[];
    // TF computes out'[o] = full[o + b'] with b' ≤ k − 1; the IR wants out[o] = full[o + b].
    const tfBegin = begin.map((b, i) => Math.min(b, kernel[i]! - 1));
    const crop = begin.map((b, i) => b - tfBegin[i]!);
    const tfEnd = end.map((e, i) => Math.max(e - outputPadding[i]!, 0));
    const extend = end.map((e, i) => Math.max(outputPadding[i]! - e, 0));
    const tfSizes = inSizes.map((size, i) => (size - 1) * strides[i]! + kernel[i]! - tfBegin[i]! - tfEnd[i]!);
    const g = node.groups;
    const groupIn = node.inChannels / g;
    const groupOut = node.filters / g;
    const outputShape = this.batchShape(`${node.name}/output_shape`, input, [...tfSizes, groupOut]);
    const explicit = tfBegin.some((b) => b > 0) || tfEnd.some((e) => e > 0);
    const attrs: Record<string, TfAttrValue> = {
      strides: tfAttr.ints([1, ...strides, 1]),
      data_format: tfAttr.string('NHWC'),
      padding: tfAttr.string(explicit ? 'EXPLICIT' : 'VALID'),
      ...(explicit ? { explicit_paddings: tfAttr.ints([0, 0, ...tfBegin.flatMap((b, i) => [b, tfEnd[i]!]), 0, 0]) } : {}),
    };
    const toFilter = (w: HostTensor) => (oneD ? unitAxis(kernelAxesFirst(w), 0) : kernelAxesFirst(w));
    const needsCrop = crop.some((c) => c > 0);
    const needsExtend = extend.some((e) => e > 0);
    const tail = (t: string, last: boolean): string => {
      let tensor = t;
      if (needsCrop) {
        const name = last && !needsExtend ? node.name : `${node.name}/crop`;
        const sizes = outSizes.map((o, i) => o - extend[i]!);
        tensor = this.builder.add(name, 'Slice', [tensor, this.i32(`${name}/begin`, [0, ...crop, 0]), this.i32(`${name}/size`, [-1, ...sizes, -1])]);
      }
      if (needsExtend) tensor = this.padSpatial(last ? node.name : `${node.name}/extend`, tensor, [-1, ...outSizes.map((o, i) => o - extend[i]!), node.filters], extend.map(() => 0), extend);
      return tensor;
    };
    const hasTail = needsCrop || needsExtend;
    if (g === 1) {
      const filter = this.weightConstant(`${node.name}.weight`, toFilter(weight), `${node.name}.weight`, `${transform}transposed conv ${oneD ? '[1, k, O, I]' : '[kh, kw, O, I]'}`);
      const last = !node.bias && !hasTail;
      let tensor = this.builder.add(last ? node.name : `${node.name}/conv`, 'Conv2DBackpropInput', [outputShape, filter, x], attrs);
      tensor = tail(tensor, !node.bias);
      if (node.bias) tensor = this.addBias(node, tensor, 4);
      this.define(node.name, node.shape, tensor, CHANNELS_LAST);
      return;
    }
    const split = this.splitChannels(node.name, x, g, 4);
    const parts: string[] = [];
    for (let gi = 0; gi < g; gi++) {
      const filter = toFilter(sliceAxis0(weight, gi * groupIn, groupIn));
      const filterName = this.weightConstant(`${node.name}.weight/group${gi}`, filter, `${node.name}.weight`, `${transform}input channels ${gi * groupIn}..${(gi + 1) * groupIn - 1}, transposed conv [kh, kw, O/g, I/g]`);
      parts.push(this.builder.add(`${node.name}/group${gi}`, 'Conv2DBackpropInput', [outputShape, filterName, split[gi]!], attrs));
    }
    this.finishGroups(node, parts, 4, hasTail ? tail : undefined);
  }

  /** [batch of `like`, …rest] as an int32 tensor: a constant, or Shape → Slice → ConcatV2 for a symbolic batch. */
  private batchShape(name: string, like: string, rest: readonly number[]): string {
    const batch = this.shapeOf(like)[0]!;
    if (known(batch)) return this.i32(name, [batch, ...rest]);
    const shape = this.builder.add(`${name}/input_shape`, 'Shape', [this.channelsLast(like)], { out_type: tfAttr.dtype('DT_INT32') });
    const first = this.builder.add(`${name}/batch`, 'Slice', [shape, this.i32(`${name}/batch/begin`, [0]), this.i32(`${name}/batch/size`, [1])]);
    return this.builder.add(name, 'ConcatV2', [first, this.i32(`${name}/rest`, rest), this.i32(`${name}/axis`, [0], [])], { N: tfAttr.int(2) });
  }

  /** Transposed conv, 3D: zero insertion, pad to k' − 1 − pads, Conv3D with the flipped kernel. */
  private emitConvTranspose3d(node: NodeOf<'conv_transpose'>): void {
    const input = node.inputs[0]!;
    let x = this.channelsLast(input);
    const stored = channelsLastShape(this.shapeOf(input));
    const sizes = stored.slice(1, -1) as number[];
    const channels = stored[4] as number;
    const weight = dilateKernel(this.param(node, 'weight'), node.dilation);
    const kernel = weight.shape.slice(2);
    const s = node.stride;
    if (s.some((v) => v > 1)) {
      // s − 1 zeros after every element, one axis at a time in rank 4 ([A, L, 1, B] padded to [A, L, s, B]: XNNPACK,
      // behind the wasm backend's Pad, takes at most 6 dimensions)
      const current = [...sizes];
      sizes.forEach((size, i) => {
        if (s[i]! === 1) return;
        const after = current.slice(i + 1).reduce((a, b) => a * b, channels);
        const spread = this.reshapeNode(`${node.name}/spread${i}`, x, [-1, size, 1, after]);
        x = this.builder.add(`${node.name}/zeros${i}`, 'Pad', [spread, this.i32(`${node.name}/zeros${i}/paddings`, [0, 0, 0, 0, 0, s[i]! - 1, 0, 0], [4, 2])]);
        current[i] = size * s[i]!;
      });
      x = this.reshapeNode(`${node.name}/upsampled`, x, [-1, ...current, channels]);
    }
    // z has (L − 1)s + 1 + (s − 1) elements per axis; the conv input needs k' − 1 − b before and k' − 1 − e + op after.
    const before = kernel.map((k, i) => k - 1 - node.padding.begin[i]!);
    const after = kernel.map((k, i) => k - 1 - node.padding.end[i]! + node.outputPadding[i]! - (s[i]! - 1));
    let lengths = sizes.map((size, i) => size * s[i]!);
    if (before.some((v) => v < 0) || after.some((v) => v < 0)) {
      const begin = before.map((v) => Math.max(-v, 0));
      lengths = lengths.map((length, i) => length - begin[i]! - Math.max(-after[i]!, 0));
      x = this.builder.add(`${node.name}/crop`, 'Slice', [x, this.i32(`${node.name}/crop/begin`, [0, ...begin, 0]), this.i32(`${node.name}/crop/size`, [-1, ...lengths, -1])]);
    }
    const before0 = before.map((v) => Math.max(v, 0));
    const after0 = after.map((v) => Math.max(v, 0));
    x = this.padSpatial(`${node.name}/pad`, x, [-1, ...lengths, channels], before0, after0);
    const padded = lengths.map((length, i) => length + before0[i]! + after0[i]!) as [number, number, number];
    const transform = `${node.dilation.some((d) => d > 1) ? 'dilated (zeros between taps), ' : ''}flipped, depth tap t of the forward conv [kh, kw, I/g, O/g]`;
    // forward kernel [O/g, I/g, k…]: Wf[o, i, f] = W[i, o, k − 1 − f]
    const forward = (w: HostTensor) => permute(flipSpatial(w), [1, 0, 2, 3, 4]);
    const g = node.groups;
    const groupIn = node.inChannels / g;
    const ones = [1, 1, 1];
    if (g === 1) {
      const conv = this.conv3dAsConv2d(node.bias ? `${node.name}/conv` : node.name, x, padded, groupIn, forward(weight), ones, ones, `${node.name}.weight`, `${node.name}.weight`, transform);
      const tensor = node.bias
        ? this.addBias(node, conv, 5)
        : conv;
      this.define(node.name, node.shape, tensor, CHANNELS_LAST);
      return;
    }
    const split = this.splitChannels(node.name, x, g, 5);
    const parts = range(0, g).map((gi) =>
      this.conv3dAsConv2d(`${node.name}/group${gi}`, split[gi]!, padded, groupIn, forward(sliceAxis0(weight, gi * groupIn, groupIn)), ones, ones, `${node.name}.weight/group${gi}`, `${node.name}.weight`, `input channels ${gi * groupIn}..${(gi + 1) * groupIn - 1}, ${transform}`),
    );
    this.finishGroups(node, parts, 5);
  }

  // -- pooling --------------------------------------------------------------------------------------------------

  private emitPool(node: NodeOf<'maxpool' | 'avgpool'>): void {
    const input = node.inputs[0]!;
    const x = this.channelsLast(input);
    const rank = storedRank(node.shape.length, CHANNELS_LAST);
    const threeD = node.kernel.length === 3;
    const isMax = node.op === 'maxpool';
    const opName = isMax ? (threeD ? 'MaxPool3D' : 'MaxPool') : threeD ? 'AvgPool3D' : 'AvgPool';
    const kernel = storedSpatial(node.kernel, 1);
    const strides = storedSpatial(node.stride, 1);
    const windowAttrs = (padding: string): Record<string, TfAttrValue> => ({
      ksize: tfAttr.ints([1, ...kernel, 1]),
      strides: tfAttr.ints([1, ...strides, 1]),
      padding: tfAttr.string(padding),
      ...(threeD ? {} : { data_format: tfAttr.string('NHWC') }),
    });
    const storedIn = channelsLastShape(this.shapeOf(input));
    const channels = storedIn[storedIn.length - 1]!;
    /** One pool op; a 3D max pool of known sizes is two 2D max pools (see `separableMaxPool3d`). */
    const poolOp = (name: string, source: string, padding: 'SAME' | 'VALID', paddedSizes: readonly Dim[]): string => {
      if (threeD && isMax && known(channels) && paddedSizes.every(known)) return this.separableMaxPool3d(name, source, padding, paddedSizes as number[], channels, kernel, strides);
      return this.builder.add(name, opName, [source], windowAttrs(padding));
    };
    if (node.padding === 'same-dynamic') {
      this.define(node.name, node.shape, poolOp(node.name, x, 'SAME', storedIn.slice(1, -1)), CHANNELS_LAST);
      return;
    }
    const sizes = storedIn.slice(1, -1);
    const outs = channelsLastShape(node.shape).slice(1, -1);
    const begin = storedSpatial(node.padding.begin, 0);
    const end = storedSpatial(node.padding.end, 0);
    const allKnown = sizes.every(known) && outs.every(known);
    const L = sizes as number[];
    const O = outs as number[];
    const extra = allKnown ? O.map((o, i) => Math.max(0, (o - 1) * strides[i]! + kernel[i]! - (L[i]! + begin[i]! + end[i]!))) : kernel.map(() => 0);
    const zeroPads = begin.every((b) => b === 0) && end.every((e) => e === 0) && extra.every((e) => e === 0);
    const tfSame =
      allKnown &&
      L.every((size, i) => {
        const [b, e] = tfSamePads(size, kernel[i]!, strides[i]!);
        return b === begin[i] && e === end[i] && Math.ceil(size / strides[i]!) === O[i];
      });
    // Where SAME's divisors are the IR's: max always (padding never wins); average without count_include_pad.
    const useSame = !zeroPads && tfSame && (isMax || !node.countIncludePad);
    const validCounts = allKnown ? L.map((size, i) => Math.floor((size + begin[i]! + end[i]! + extra[i]! - kernel[i]!) / strides[i]!) + 1) : [];
    const needsCrop = !useSame && allKnown && validCounts.some((c, i) => c > O[i]!);
    const correction = !isMax && !useSame && !zeroPads ? this.averageCorrection(node, L, O, begin, end, kernel, strides) : undefined;
    const needsCorrection = correction !== undefined;
    let tensor: string;
    const poolName = needsCrop || needsCorrection ? `${node.name}/pool` : node.name;
    if (useSame || zeroPads) {
      tensor = poolOp(poolName, x, useSame ? 'SAME' : 'VALID', sizes);
    } else {
      const endPads = end.map((e, i) => e + extra[i]!);
      const padded = this.padSpatial(`${node.name}/pad`, x, storedIn, begin, endPads, isMax ? Number.NEGATIVE_INFINITY : 0);
      tensor = poolOp(poolName, padded, 'VALID', allKnown ? L.map((size, i) => size + begin[i]! + endPads[i]!) : sizes);
    }
    if (needsCrop) {
      const name = needsCorrection ? `${node.name}/crop` : node.name;
      tensor = this.builder.add(name, 'Slice', [tensor, this.i32(`${name}/begin`, new Array<number>(rank).fill(0)), this.i32(`${name}/size`, [-1, ...O, -1])]);
    }
    if (correction) tensor = this.builder.add(node.name, 'Mul', [tensor, this.f32(`${node.name}/divisor_correction`, [1, ...O, 1], correction)]);
    this.define(node.name, node.shape, tensor, CHANNELS_LAST);
  }

  /**
   * A 3D max pool as two 2D max pools, (H, W) with the depth folded into the batch, then (D, 1) over [N, D, H'·W', C]:
   * max is separable and every padding involved is −∞ or TF's SAME (per axis). Also fewer comparisons, and it
   * avoids tfjs-backend-wasm's MaxPool3D, which returns wrong maxima for windows of negative values (tfjs 4.22).
   */
  private separableMaxPool3d(name: string, x: string, padding: 'SAME' | 'VALID', sizes: readonly number[], channels: number, kernel: readonly number[], strides: readonly number[]): string {
    const [d, h, w] = sizes as [number, number, number];
    const out = sizes.map((size, i) => (padding === 'SAME' ? Math.ceil(size / strides[i]!) : Math.floor((size - kernel[i]!) / strides[i]!) + 1));
    const [od, oh, ow] = out as [number, number, number];
    const pool2d = (step: string, source: string, k: readonly number[], st: readonly number[]) =>
      this.builder.add(`${name}/${step}`, 'MaxPool', [source], {
        ksize: tfAttr.ints([1, ...k, 1]),
        strides: tfAttr.ints([1, ...st, 1]),
        padding: tfAttr.string(padding),
        data_format: tfAttr.string('NHWC'),
      });
    let t = x;
    if (kernel[1]! > 1 || kernel[2]! > 1 || strides[1]! > 1 || strides[2]! > 1) {
      t = pool2d('pool_hw', this.reshapeNode(`${name}/fold_depth`, t, [-1, h, w, channels]), kernel.slice(1), strides.slice(1));
    }
    if (kernel[0]! > 1 || strides[0]! > 1) {
      t = pool2d('pool_d', this.reshapeNode(`${name}/fold_planes`, t, [-1, d, oh * ow, channels]), [kernel[0]!, 1], [strides[0]!, 1]);
    }
    return this.reshapeNode(name, t, [-1, od, oh, ow, channels]);
  }

  /**
   * ∏k / count for every output window of an average pool after zero padding, or undefined when every window
   * counts ∏k. count = ∏ |[o·s − b, o·s − b + k) ∩ [lo, hi)|, [lo, hi) = [−b, L + e) with count_include_pad (the
   * explicit pads count, the ceil-mode extension does not), [0, L) without.
   */
  private averageCorrection(node: NodeOf<'avgpool' | 'maxpool'>, L: number[], O: number[], begin: number[], end: number[], kernel: number[], strides: number[]): Float32Array | undefined {
    if (!L.every(known)) return undefined;
    const perAxis = O.map((count, i) => {
      const low = node.countIncludePad ? -begin[i]! : 0;
      const high = node.countIncludePad ? L[i]! + end[i]! : L[i]!;
      return range(0, count).map((o) => {
        const start = o * strides[i]! - begin[i]!;
        return Math.max(0, Math.min(start + kernel[i]!, high) - Math.max(start, low));
      });
    });
    if (perAxis.every((counts, i) => counts.every((c) => c === kernel[i]))) return undefined;
    const windowSize = kernel.reduce((a, b) => a * b, 1);
    const total = O.reduce((a, b) => a * b, 1);
    const factors = new Float32Array(total);
    const index = new Array<number>(O.length).fill(0);
    for (let flat = 0; flat < total; flat++) {
      let count = 1;
      for (let i = 0; i < O.length; i++) count *= perAxis[i]![index[i]!]!;
      factors[flat] = count === 0 ? 0 : windowSize / count;
      for (let i = O.length - 1; i >= 0; i--) {
        index[i]!++;
        if (index[i]! < O[i]!) break;
        index[i] = 0;
      }
    }
    return factors;
  }

  // -- normalisation and activations ----------------------------------------------------------------------------

  private emitBatchNorm(node: NodeOf<'batchnorm'>): void {
    const input = node.inputs[0]!;
    const value = this.valueOf(input);
    const gamma = this.param(node, 'weight').data;
    const beta = this.param(node, 'bias').data;
    const mean = this.param(node, 'running_mean').data;
    const variance = this.param(node, 'running_var').data;
    const channels = node.channels;
    let scale: Float32Array = new Float32Array(channels);
    let offset: Float32Array = new Float32Array(channels);
    for (let c = 0; c < channels; c++) {
      const s = gamma[c]! / Math.sqrt(variance[c]! + node.epsilon);
      scale[c] = s;
      offset[c] = beta[c]! - mean[c]! * s;
    }
    const rank = node.shape.length;
    let shape = [channels];
    let order = 'per channel';
    if (value.layout.kind === 'flat') {
      scale = gatherVector(scale, value.layout.perm);
      offset = gatherVector(offset, value.layout.perm);
      order = 'per feature in NHWC flatten order';
    } else if (value.layout.kind === 'logical' && rank >= 3) {
      shape = [channels, ...new Array<number>(rank - 2).fill(1)];
    } else if (value.layout.kind === 'channels-last' && rank === 5) {
      shape = [1, 1, 1, 1, channels]; // rank 5 against rank 5: see addBias
    }
    const note = (what: string) => `batch norm folded: ${what}, ${order}`;
    const scaled = this.builder.add(`${node.name}/scale`, 'Mul', [value.tensor, this.weightConstant(`${node.name}/scale/value`, { shape, data: scale }, `${node.name}.weight`, note('γ/√(running_var + ε) from weight and running_var'))]);
    const tensor = this.builder.add(node.name, 'AddV2', [scaled, this.weightConstant(`${node.name}/offset/value`, { shape, data: offset }, `${node.name}.bias`, note('β − running_mean·γ/√(running_var + ε) from bias, running_mean, weight and running_var'))]);
    this.define(node.name, node.shape, tensor, value.layout);
  }

  private emitActivationNode(node: NodeOf<'activation'>): void {
    const value = this.valueOf(node.inputs[0]!);
    const rank = node.shape.length;
    const tensor = this.activation(node, node.fn, value.tensor, rank, value.layout);
    this.define(node.name, node.shape, tensor, value.layout);
  }

  /** Emits `fn` applied to x; the last node is named after the IR node. */
  private activation(node: Node, fn: Activation, x: string, rank: number, layout: Layout): string {
    const b = this.builder;
    const name = node.name;
    const step = (s: string) => `${name}/${s}`;
    const constant = (what: string, value: number) => this.scalar(step(what), value);
    switch (fn.kind) {
      case 'relu':
        return b.add(name, 'Relu', [x]);
      case 'relu6':
        return b.add(name, 'Relu6', [x]);
      case 'leaky_relu':
        return b.add(name, 'LeakyRelu', [x], { alpha: tfAttr.float(fn.alpha) });
      case 'elu': {
        if (fn.alpha === 1) return b.add(name, 'Elu', [x]);
        // relu(x) + α·min(elu(x), 0)
        const elu = b.add(step('elu'), 'Elu', [x]);
        const negative = b.add(step('negative'), 'Minimum', [elu, constant('zero', 0)]);
        const scaled = b.add(step('scaled'), 'Mul', [negative, constant('alpha', fn.alpha)]);
        const positive = b.add(step('positive'), 'Relu', [x]);
        return b.add(name, 'AddV2', [positive, scaled]);
      }
      case 'sigmoid':
        return b.add(name, 'Sigmoid', [x]);
      case 'tanh':
        return b.add(name, 'Tanh', [x]);
      case 'hard_sigmoid': {
        const scaled = b.add(step('scaled'), 'Mul', [x, constant('alpha', fn.alpha)]);
        const shifted = b.add(step('shifted'), 'AddV2', [scaled, constant('beta', fn.beta)]);
        return b.add(name, 'ClipByValue', [shifted, constant('min', 0), constant('max', 1)]);
      }
      case 'swish': {
        const gate = b.add(step('sigmoid'), 'Sigmoid', [x]);
        return b.add(name, 'Mul', [x, gate]);
      }
      case 'hard_swish': {
        // x · relu6(x + 3) / 6
        const shifted = b.add(step('shifted'), 'AddV2', [x, constant('three', 3)]);
        const clipped = b.add(step('relu6'), 'Relu6', [shifted]);
        const gate = b.add(step('gate'), 'Mul', [clipped, constant('sixth', 1 / 6)]);
        return b.add(name, 'Mul', [x, gate]);
      }
      case 'gelu': {
        // x · ½ · (1 + erf(x/√2))
        const scaled = b.add(step('scaled'), 'Mul', [x, constant('rsqrt2', Math.SQRT1_2)]);
        const erf = b.add(step('erf'), 'Erf', [scaled]);
        const shifted = b.add(step('shifted'), 'AddV2', [erf, constant('one', 1)]);
        const product = b.add(step('product'), 'Mul', [x, shifted]);
        return b.add(name, 'Mul', [product, constant('half', 0.5)]);
      }
      case 'softmax': {
        const stored = storedRank(rank, layout);
        const axis = storedAxis(fn.axis, rank, layout);
        if (axis === stored - 1) return b.add(name, 'Softmax', [x]);
        // exp(x − max) / Σ exp(x − max) along a stored axis that is not the last one
        const axes = this.i32(step('axis'), [axis]);
        const max = b.add(step('max'), 'Max', [x, axes], { keep_dims: tfAttr.bool(true) });
        const shifted = b.add(step('shifted'), 'Sub', [x, max]);
        const exp = b.add(step('exp'), 'Exp', [shifted]);
        const sum = b.add(step('sum'), 'Sum', [exp, axes], { keep_dims: tfAttr.bool(true) });
        return b.add(name, 'RealDiv', [exp, sum]);
      }
    }
  }

  // -- element-wise, concat -------------------------------------------------------------------------------------

  /** Brings the inputs of an element-wise or concat node to one layout; returns their tensors and that layout. */
  private commonLayout(inputs: readonly string[]): { tensors: string[]; layout: Layout } {
    const ranks = inputs.map((i) => this.shapeOf(i).length);
    const rank = ranks[0]!;
    if (ranks.every((r) => r === rank) && rank >= 3) return { tensors: inputs.map((i) => this.channelsLast(i)), layout: CHANNELS_LAST };
    if (ranks.every((r) => r === rank) && rank === 2) {
      const values = inputs.map((i) => this.valueOf(i));
      const first = values[0]!.layout;
      const samePerm = values.every((v) => v.layout.kind === first.kind && (first.kind !== 'flat' || (v.layout.kind === 'flat' && equalArrays(v.layout.perm, first.perm))));
      if (samePerm) return { tensors: values.map((v) => v.tensor), layout: first };
    }
    return { tensors: inputs.map((i) => this.logical(i)), layout: LOGICAL };
  }

  private emitElementwise(node: NodeOf<'add' | 'mul'>): void {
    const { tensors, layout } = this.commonLayout(node.inputs);
    const opName = node.op === 'add' ? 'AddV2' : 'Mul';
    let tensor: string;
    const shapes = node.inputs.map((i) => this.shapeOf(i));
    const sameShapes = shapes.every((s) => s.length === shapes[0]!.length && s.every((d, i) => dimToString(d) === dimToString(shapes[0]![i]!)));
    if (tensors.length === 1) {
      tensor = this.builder.add(node.name, 'Identity', tensors);
    } else if (tensors.length > 2 && node.op === 'add' && sameShapes) {
      tensor = this.builder.add(node.name, 'AddN', tensors, { N: tfAttr.int(tensors.length) });
    } else {
      let partial = tensors[0]!;
      for (let i = 1; i < tensors.length; i++) {
        partial = this.builder.add(i === tensors.length - 1 ? node.name : `${node.name}/${node.op}${i}`, opName, [partial, tensors[i]!]);
      }
      tensor = partial;
    }
    this.define(node.name, node.shape, tensor, layout);
  }

  private emitConcat(node: NodeOf<'concat'>): void {
    const { tensors, layout } = this.commonLayout(node.inputs);
    const rank = node.shape.length;
    if (tensors.length === 1) {
      this.define(node.name, node.shape, this.builder.add(node.name, 'Identity', tensors), layout);
      return;
    }
    // Features of flat tensors concatenate in logical order only: commonLayout kept a shared permutation only for
    // equal layouts, which concat along the features would break.
    let parts = tensors;
    let resultLayout = layout;
    if (layout.kind === 'flat') {
      parts = node.inputs.map((i) => this.logical(i));
      resultLayout = LOGICAL;
    }
    const axis = storedAxis(node.axis, rank, resultLayout);
    const tensor = this.builder.add(node.name, 'ConcatV2', [...parts, this.i32(`${node.name}/axis`, [axis], [])], { N: tfAttr.int(parts.length) });
    this.define(node.name, node.shape, tensor, resultLayout);
  }

  // -- resampling and shape ops ---------------------------------------------------------------------------------

  private emitUpsample(node: NodeOf<'upsample'>): void {
    const input = node.inputs[0]!;
    const x = this.channelsLast(input);
    const stored = channelsLastShape(this.shapeOf(input));
    const sizes = stored.slice(1, -1) as number[];
    const channels = stored[stored.length - 1] as number;
    const scales = storedSpatial(node.scale, 1);
    if (scales.every((s) => s === 1)) {
      this.define(node.name, node.shape, this.builder.add(node.name, 'Identity', [x]), CHANNELS_LAST);
      return;
    }
    const outSizes = sizes.map((size, i) => size * scales[i]!);
    let tensor: string;
    if (node.mode === 'nearest') {
      // every element repeated s times, one axis at a time: [A, L, 1, B] tiled by [1, 1, s, 1]. Rank 4 keeps Tile
      // on the GPU (tfjs-backend-webgpu runs Tile of rank ≥ 5 on the CPU through a synchronous read, which
      // fails in Node)
      const current = [...sizes];
      let t = x;
      sizes.forEach((size, i) => {
        if (scales[i]! === 1) return;
        const after = current.slice(i + 1).reduce((a, b) => a * b, channels);
        const spread = this.reshapeNode(`${node.name}/spread${i}`, t, [-1, size, 1, after]);
        t = this.builder.add(`${node.name}/tile${i}`, 'Tile', [spread, this.i32(`${node.name}/tile${i}/multiples`, [1, 1, scales[i]!, 1])]);
        current[i] = size * scales[i]!;
      });
      tensor = this.reshapeNode(node.name, t, [-1, ...outSizes, channels]);
    } else {
      const resize = (name: string, images: string, size: readonly number[]) =>
        this.builder.add(name, 'ResizeBilinear', [images, this.i32(`${name}/size`, size)], { align_corners: tfAttr.bool(false), half_pixel_centers: tfAttr.bool(true) });
      if (sizes.length === 2) {
        tensor = resize(node.name, x, outSizes);
      } else {
        // 3D: (H, W) with the depth folded into the batch, then (D, H·W) with H·W kept
        const [d, h, w] = sizes as [number, number, number];
        const [od, oh, ow] = outSizes as [number, number, number];
        let t = x;
        if (oh !== h || ow !== w) {
          const folded = this.reshapeNode(`${node.name}/fold_depth`, t, [-1, h, w, channels]);
          t = resize(`${node.name}/resize_hw`, folded, [oh, ow]);
        }
        if (od !== d) {
          const planes = this.reshapeNode(`${node.name}/fold_planes`, t, [-1, d, oh * ow, channels]);
          t = resize(`${node.name}/resize_d`, planes, [od, oh * ow]);
        }
        tensor = this.reshapeNode(node.name, t, [-1, od, oh, ow, channels]);
      }
    }
    this.define(node.name, node.shape, tensor, CHANNELS_LAST);
  }

  private emitFlatten(node: NodeOf<'flatten'>): void {
    const input = node.inputs[0]!;
    const shape = this.shapeOf(input);
    if (shape.length <= 2) {
      this.alias(node.name, input);
      return;
    }
    const value = this.valueOf(input);
    const target = reshapeTarget(node.shape);
    if (!target) throw new Error(`internal: flatten '${node.name}' passed the expressibility check`);
    if (value.layout.kind !== 'channels-last') {
      this.define(node.name, node.shape, this.reshapeNode(node.name, this.logical(input), target), LOGICAL);
      return;
    }
    const channels = shape[1];
    const spatial = shape.slice(2);
    if (sameElementOrder(shape)) {
      this.define(node.name, node.shape, this.reshapeNode(node.name, value.tensor, target), LOGICAL);
      return;
    }
    if (!known(channels) || !spatial.every(known)) {
      // the feature permutation needs the sizes: flatten the NCHW-ordered tensor instead
      this.define(node.name, node.shape, this.reshapeNode(node.name, this.logical(input), target), LOGICAL);
      return;
    }
    const tensor = this.reshapeNode(node.name, value.tensor, target);
    // stored feature j = s·C + c holds logical feature c·S + s
    const positions = (spatial as number[]).reduce((a, b) => a * b, 1);
    const perm = new Array<number>(positions * channels);
    for (let s = 0; s < positions; s++) for (let c = 0; c < channels; c++) perm[s * channels + c] = c * positions + s;
    this.define(node.name, node.shape, tensor, { kind: 'flat', perm });
  }

  private emitDense(node: NodeOf<'dense'>): void {
    const value = this.flatValue(node.inputs[0]!);
    let weight = this.param(node, 'weight'); // [O, I]
    let transform = 'dense [I, O]';
    if (value.layout.kind === 'flat') {
      weight = gatherColumns(weight, value.layout.perm);
      transform = 'dense [I, O], rows in the NHWC flatten order of its input';
    }
    const matrix = this.weightConstant(`${node.name}.weight`, permute(weight, [1, 0]), `${node.name}.weight`, transform);
    const fusion = this.fusions.get(node.name);
    const outName = fusion?.name ?? node.name;
    let tensor: string;
    if (node.bias) {
      const fusedOps = ['BiasAdd'];
      const extra: Record<string, TfAttrValue> = {};
      if (fusion) {
        fusedOps.push(fusedActivationName(fusion.fn)!);
        if (fusion.fn.kind === 'leaky_relu') extra['leakyrelu_alpha'] = tfAttr.float(fusion.fn.alpha);
      }
      const bias = this.weightConstant(`${node.name}.bias`, this.param(node, 'bias'), `${node.name}.bias`, 'unchanged');
      tensor = this.builder.add(outName, '_FusedMatMul', [value.tensor, matrix, bias], {
        ...extra,
        fused_ops: tfAttr.strings(fusedOps),
        num_args: tfAttr.int(1),
        transpose_a: tfAttr.bool(false),
        transpose_b: tfAttr.bool(false),
      });
    } else {
      tensor = this.builder.add(outName, 'MatMul', [value.tensor, matrix], { transpose_a: tfAttr.bool(false), transpose_b: tfAttr.bool(false) });
    }
    this.define(outName, fusion ? fusion.shape : node.shape, tensor, LOGICAL);
  }

  private emitPad(node: NodeOf<'pad'>): void {
    const x = this.channelsLast(node.inputs[0]!);
    const rank = storedRank(node.shape.length, CHANNELS_LAST);
    const begin = storedSpatial(node.padding.begin, 0);
    const end = storedSpatial(node.padding.end, 0);
    const pairs = (b: readonly number[], e: readonly number[]) => [0, 0, ...b.flatMap((v, i) => [v, e[i]!]), 0, 0];
    let tensor: string;
    if (begin.every((b) => b === 0) && end.every((e) => e === 0)) {
      tensor = this.builder.add(node.name, 'Identity', [x]);
    } else if (node.mode === 'constant') {
      const paddings = this.i32(`${node.name}/paddings`, pairs(begin, end), [rank, 2]);
      tensor =
        node.value === 0
          ? this.builder.add(node.name, 'Pad', [x, paddings])
          : this.builder.add(node.name, 'PadV2', [x, paddings, this.scalar(`${node.name}/value`, node.value)]);
    } else if (node.mode === 'reflect') {
      tensor = this.builder.add(node.name, 'MirrorPad', [x, this.i32(`${node.name}/paddings`, pairs(begin, end), [rank, 2])], { mode: tfAttr.string('REFLECT') });
    } else {
      // edge: a SYMMETRIC mirror pad of 1 repeats the edge element; repeat it up to the largest pad
      const steps = Math.max(...begin, ...end);
      tensor = x;
      for (let i = 0; i < steps; i++) {
        const name = i === steps - 1 ? node.name : `${node.name}/edge${i}`;
        const b = begin.map((v) => (v > i ? 1 : 0));
        const e = end.map((v) => (v > i ? 1 : 0));
        tensor = this.builder.add(name, 'MirrorPad', [tensor, this.i32(`${name}/paddings`, pairs(b, e), [rank, 2])], { mode: tfAttr.string('SYMMETRIC') });
      }
    }
    this.define(node.name, node.shape, tensor, CHANNELS_LAST);
  }
}

function range(start: number, end: number): number[] {
  const values: number[] = [];
  for (let i = start; i < end; i++) values.push(i);
  return values;
}

function equalArrays(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

// ---------------------------------------------------------------------------------------------------------------
// Metadata

/** Per-layer objects keep node order (the graph's topological order), which is deterministic. */
function perLayer<T>(graph: Graph, pick: (node: Node) => T | undefined): Record<string, T> {
  const result: Record<string, T> = {};
  for (const node of graph.nodes) {
    const value = pick(node);
    if (value !== undefined) result[node.name] = value;
  }
  return result;
}

/** A copy with object keys sorted, so the JSON text depends only on the values. */
function sortedKeys(value: SettingValue | unknown): unknown {
  if (Array.isArray(value)) return value.map(sortedKeys);
  if (value !== null && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    return Object.fromEntries(
      Object.keys(record)
        .sort()
        .map((key) => [key, sortedKeys(record[key])]),
    );
  }
  return value;
}

function trainingMetadata(graph: Graph): Record<string, unknown> {
  const metadata: Record<string, unknown> = {
    frozen: graph.nodes.filter((n) => n.frozen).map((n) => n.name),
    regularizers: perLayer(graph, (n) => (n.regularizers.length > 0 ? n.regularizers : undefined)),
    dropout: perLayer(graph, (n) => (n.op === 'dropout' ? { rate: n.rate, spatial: n.spatial } : undefined)),
    batchnorm: perLayer(graph, (n) => (n.op === 'batchnorm' ? { momentum: n.momentum, epsilon: n.epsilon } : undefined)),
    training: sortedKeys(graph.training),
  };
  if (graph.nodes.some((n) => n.quantization !== undefined)) metadata['quantization'] = perLayer(graph, (n) => n.quantization);
  return metadata;
}


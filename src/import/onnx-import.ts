/**
 * ONNX → IR: the front end behind `convspec import`.
 *
 * Every ONNX op with a convspec equivalent becomes an IR node; the weights come from the initializers (and
 * Constant nodes). Supported: Conv, ConvTranspose, BatchNormalization (inference form), MaxPool, AveragePool,
 * GlobalAveragePool, GlobalMaxPool, Relu, Clip (0..6 → relu6, 0..∞ → relu), LeakyRelu, Elu, Sigmoid, HardSigmoid,
 * Tanh, HardSwish, Gelu, Softmax, Add, Mul, Sum, Concat, Flatten, Reshape (constant shape), Gemm, MatMul (+ Add of
 * a bias), Dropout and Identity (dropped: the identity at inference), Pad, Resize/Upsample (integer scales),
 * ReduceMean over all spatial axes (→ global average pooling). Three patterns exporters write for one activation
 * are recognised first: x·Sigmoid(x) → swish, x·HardSigmoid(x; ⅙, ½) → hard_swish, and the exact erf form of GELU
 * x·½·(1 + erf(x/√2)) (Div, Erf, Add, Mul, Mul as torch.onnx writes it) → gelu.
 *
 * Every node whose op has no equivalent is reported before anything is converted: one CNN8006 per op type, naming
 * its nodes, so one run lists all of them. Attributes the language cannot express (SAME_LOWER on a symbolic size,
 * pooling dilations, a computed weight…) are CNN8006 at the node.
 *
 * Names: a layer with weights takes its name from the weight initializer (`layer1.0.conv1.weight` →
 * `layer1.0.conv1`). Otherwise from the ONNX node name: a plain dotted path (`stage1.basic1.relu1`, as convspec
 * writes them) is kept; a torch.onnx scope path (`/layer2/layer2.0/downsample/downsample.0/Conv`) gives the
 * PyTorch module path (`layer2.0.downsample.0`, see `modulePath`), followed by the op kind (`layer1.0.add`) when
 * the op runs in a module's own forward rather than being the whole of a leaf module. Failing both, the op kind
 * numbered (`flatten1`). So the weights keep PyTorch's names (`<layer>.weight`, `.bias`, `.running_mean`,
 * `.running_var`), and a torch checkpoint's names line up — also for BN folded into convs by torch's exporter,
 * whose fused weights get the conv module's name.
 *
 * Nodes that no graph output depends on are dropped with their weights.
 */
import { DiagnosticBag, type Diagnostic } from '../diagnostics.js';
import { symbol, type Dim } from '../ir/dims.js';
import type { Activation, Graph, GraphInput, GraphOutput, Node, OpAttributes, Padding, Shape } from '../ir/graph.js';
import { inferShape, resolvePadding } from '../ir/shapes.js';
import type { WeightTensor } from '../ir/weights.js';
import { decodeModel, int64ToNumber, OnnxFormatError, tensorProtoToArray, valueInfoShape, type DecodedModelProto } from '../codegen/onnx-model.js';
import { KEYWORDS } from '../parser/tokens.js';
import { syntheticSpan, type Span } from '../source.js';

export interface ImportResult {
  readonly graph: Graph | undefined;
  readonly weights: Map<string, WeightTensor>;
  readonly diagnostics: Diagnostic[];
  /** What wrote the file (`pytorch 1.13.0`) and the default-domain opset, when the file says. */
  readonly producer?: string;
  readonly opset?: number;
}

export interface ImportOptions {
  /** The file, for messages. */
  readonly path?: string;
  /** The model's name; default the ONNX graph's name unless it is an exporter's generic one (`torch_jit`). */
  readonly modelName?: string;
  /** The name when neither `modelName` nor the graph gives one; default 'Imported'. */
  readonly defaultName?: string;
}

interface Constant {
  readonly dims: number[];
  readonly data: Float32Array;
  readonly integers?: number[];
}

type AttributeValue = number | number[] | string | Constant | undefined;

/** One ONNX node with its attributes decoded; fused patterns become nodes of the `convspec.*` op types. */
interface SourceNode {
  readonly opType: string;
  readonly name: string;
  readonly inputs: string[];
  readonly outputs: string[];
  readonly attributes: Map<string, AttributeValue>;
}

/** Op types the converter handles (the patterns' `convspec.*` types included). */
const SUPPORTED = new Set([
  'Constant', 'Identity', 'Dropout', 'Conv', 'ConvTranspose', 'BatchNormalization', 'MaxPool', 'AveragePool', 'GlobalAveragePool', 'GlobalMaxPool', 'ReduceMean',
  'Relu', 'Sigmoid', 'Tanh', 'LeakyRelu', 'Elu', 'HardSigmoid', 'HardSwish', 'Gelu', 'Softmax', 'Clip', 'Add', 'Mul', 'Sum', 'Concat', 'Flatten', 'Reshape', 'Gemm',
  'MatMul', 'Pad', 'Resize', 'Upsample', 'convspec.Swish', 'convspec.HardSwish', 'convspec.Gelu',
]);

/** Names exporters give graphs that say nothing about the model. */
const GENERIC_GRAPH_NAMES = new Set(['torch_jit', 'torch-jit-export', 'main_graph', 'graph', 'model', 'tf2onnx', '']);

/** A readable identifier for an ONNX name: `input.1` → `input_1`; keywords get a `_` (`input` → `input_`). */
export function sanitizeIdentifier(name: string): string {
  let text = name.replace(/[^A-Za-z0-9_]/g, '_');
  if (!/^[A-Za-z_]/.test(text)) text = `t_${text}`;
  return KEYWORDS.has(text) ? `${text}_` : text;
}

const DOTTED_PATH = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$/;

/**
 * The PyTorch module path in the scope segments of a torch.onnx node name. A segment names a module relative to
 * the nearest enclosing module that is not a container, so a container's child repeats the container's segment as
 * its prefix: `layer2 / layer2.0 / downsample / downsample.0`. A segment that extends the previous one replaces it;
 * any other descends into it → `layer2.0.downsample.0`.
 */
export function modulePath(segments: readonly string[]): string | undefined {
  let anchor = '';
  let full = '';
  let previous = '';
  for (const segment of segments) {
    if (previous !== '' && segment.startsWith(`${previous}.`)) full = anchor === '' ? segment : `${anchor}.${segment}`;
    else {
      anchor = full;
      full = anchor === '' ? segment : `${anchor}.${segment}`;
    }
    previous = segment;
  }
  return full === '' || !DOTTED_PATH.test(full) ? undefined : full;
}

/** `/layer1/layer1.0/relu/Relu` → the scope `layer1/layer1.0/relu`; undefined for names without a scope. */
function scopeOf(nodeName: string): string | undefined {
  if (!nodeName.includes('/')) return undefined;
  const segments = nodeName.split('/').filter((s) => s.length > 0);
  return segments.length < 2 ? undefined : segments.slice(0, -1).join('/');
}

function decodeAttributes(node: DecodedModelProto['graph']['node'][number], path: string | undefined): Map<string, AttributeValue> {
  const attributes = new Map<string, AttributeValue>();
  for (const attribute of node.attribute ?? []) {
    const name = attribute.name ?? '';
    if (attribute.ints && attribute.ints.length > 0) attributes.set(name, attribute.ints.map((v) => int64ToNumber(v)));
    else if (attribute.floats && attribute.floats.length > 0) attributes.set(name, [...attribute.floats]);
    else if (attribute.s && attribute.s.length > 0) attributes.set(name, Buffer.from(attribute.s).toString('utf8'));
    else if (attribute.t) {
      const array = tensorProtoToArray(attribute.t, path);
      const values = Array.from(array.data as ArrayLike<number | bigint>, (v) => Number(v));
      attributes.set(name, { dims: array.dims.map(Number), data: Float32Array.from(values), integers: values });
    } else if (attribute.type === 1) attributes.set(name, attribute.f ?? 0);
    else if (attribute.type === 2) attributes.set(name, int64ToNumber(attribute.i ?? 0));
    else if (attribute.f !== undefined && attribute.f !== null && attribute.f !== 0) attributes.set(name, attribute.f);
    else if (attribute.i !== undefined && attribute.i !== null) attributes.set(name, int64ToNumber(attribute.i));
  }
  return attributes;
}

/** SAME_LOWER as explicit pads: TF's SAME with the odd pixel at the beginning; undefined on symbolic sizes. */
function sameLowerPadding(spatial: readonly Dim[], kernel: readonly number[], stride: readonly number[], dilation: readonly number[]): Padding | undefined {
  if (spatial.some((d) => typeof d !== 'number')) return undefined;
  const upper = resolvePadding('same', undefined, spatial, kernel, stride, dilation);
  if (upper === 'same-dynamic') return undefined;
  return { begin: [...upper.end], end: [...upper.begin] };
}

// ---------------------------------------------------------------------------------------------------------------
// Patterns: several ONNX nodes that are one activation

/**
 * Replaces x·Sigmoid(x), x·HardSigmoid(x; ⅙, ½) and x·½·(1 + erf(x/√2)) by one node each (`convspec.Swish`,
 * `convspec.HardSwish`, `convspec.Gelu`) named after the pattern's last node. A pattern is only taken when its
 * inner tensors are read by nothing else.
 */
function fusePatterns(nodes: readonly SourceNode[], constants: ReadonlyMap<string, Constant>, graphOutputs: ReadonlySet<string>): SourceNode[] {
  const producer = new Map<string, SourceNode>();
  const readers = new Map<string, number>();
  for (const node of nodes) {
    for (const output of node.outputs) producer.set(output, node);
    for (const input of node.inputs) readers.set(input, (readers.get(input) ?? 0) + 1);
  }
  const internal = (tensor: string) => readers.get(tensor) === 1 && !graphOutputs.has(tensor);
  const scalar = (tensor: string, value: number, tolerance = 1e-6) => {
    const c = constants.get(tensor);
    return c !== undefined && c.data.length === 1 && Math.abs(c.data[0]! - value) <= tolerance * Math.max(1, Math.abs(value));
  };
  const absorbed = new Set<SourceNode>();
  const replacement = new Map<SourceNode, SourceNode>();
  const fused = (last: SourceNode, opType: string, input: string, parts: SourceNode[]): void => {
    for (const part of parts) absorbed.add(part);
    replacement.set(last, { opType, name: last.name, inputs: [input], outputs: [last.outputs[0]!], attributes: new Map() });
  };

  for (const node of nodes) {
    if (node.opType !== 'Mul' || node.inputs.length !== 2 || absorbed.has(node)) continue;
    const [a, b] = node.inputs as [string, string];
    // x · Sigmoid(x), x · HardSigmoid(x; 1/6, 1/2)
    let matched = false;
    for (const [x, gate] of [
      [a, b],
      [b, a],
    ] as const) {
      const g = producer.get(gate);
      if (!g || !internal(gate) || g.inputs[0] !== x) continue;
      if (g.opType === 'Sigmoid') {
        fused(node, 'convspec.Swish', x, [g]);
        matched = true;
        break;
      }
      const alpha = g.attributes.get('alpha') ?? 0.2;
      const beta = g.attributes.get('beta') ?? 0.5;
      if (g.opType === 'HardSigmoid' && typeof alpha === 'number' && typeof beta === 'number' && Math.abs(alpha - 1 / 6) < 1e-6 && Math.abs(beta - 0.5) < 1e-6) {
        fused(node, 'convspec.HardSwish', x, [g]);
        matched = true;
        break;
      }
    }
    if (matched) continue;
    // GELU: the factors of a product tree of Muls are x, 0.5 and Add(Erf(Div(x, √2)), 1).
    const factors: string[] = [];
    const muls: SourceNode[] = [];
    const expand = (tensor: string, root: boolean): void => {
      const p = producer.get(tensor);
      if (p && p.opType === 'Mul' && p.inputs.length === 2 && (root || internal(tensor)) && muls.length < 3) {
        muls.push(p);
        for (const input of p.inputs) expand(input, false);
      } else factors.push(tensor);
    };
    expand(node.outputs[0]!, true);
    if (factors.length !== 3 || muls.length !== 2) continue;
    const half = factors.findIndex((f) => scalar(f, 0.5));
    const add = factors.findIndex((f) => producer.get(f)?.opType === 'Add' && internal(f));
    if (half < 0 || add < 0 || half === add) continue;
    const x = factors[3 - half - add]!;
    const addNode = producer.get(factors[add]!)!;
    const erfOutput = addNode.inputs.find((i) => producer.get(i)?.opType === 'Erf');
    const one = addNode.inputs.find((i) => i !== erfOutput);
    if (!erfOutput || !one || !scalar(one, 1) || !internal(erfOutput)) continue;
    const erf = producer.get(erfOutput)!;
    const div = producer.get(erf.inputs[0] ?? '');
    if (!div || div.opType !== 'Div' || !internal(erf.inputs[0]!) || div.inputs[0] !== x || !scalar(div.inputs[1] ?? '', Math.SQRT2, 1e-5)) continue;
    fused(node, 'convspec.Gelu', x, [...muls.filter((m) => m !== node), addNode, erf, div]);
  }
  return nodes.filter((n) => !absorbed.has(n)).map((n) => replacement.get(n) ?? n);
}

// ---------------------------------------------------------------------------------------------------------------

export function importOnnx(bytes: Uint8Array, options: ImportOptions = {}): ImportResult {
  const bag = new DiagnosticBag();
  const file = options.path ?? '<onnx>';
  const span: Span = syntheticSpan(file);
  const weights = new Map<string, WeightTensor>();
  const fail = (): ImportResult => ({ graph: undefined, weights, diagnostics: bag.items });
  let model: DecodedModelProto;
  try {
    model = decodeModel(bytes, options.path);
  } catch (error) {
    const reason = error instanceof OnnxFormatError ? error.message.replace(`${file}: `, '') : String(error);
    bag.add('cannotReadFile', undefined, [file, reason]);
    return fail();
  }
  const graphProto = model.graph;

  // Constants: initializers, then Constant nodes.
  const constants = new Map<string, Constant>();
  const toConstant = (tensor: Parameters<typeof tensorProtoToArray>[0]): Constant => {
    const array = tensorProtoToArray(tensor, options.path);
    const dims = array.dims.map(Number);
    // Weights stay typed arrays (tens of millions of values); integer tensors (shapes, pads, axes) are short.
    if (array.data instanceof Float32Array) return { dims, data: array.data };
    if (array.data instanceof Float64Array) return { dims, data: Float32Array.from(array.data) };
    const values = Array.from(array.data as ArrayLike<number | bigint>, (v) => Number(v));
    return { dims, data: Float32Array.from(values), integers: values };
  };
  for (const initializer of graphProto.initializer ?? []) {
    try {
      constants.set(initializer.name ?? '', toConstant(initializer));
    } catch (error) {
      bag.add('weightsUnreadable', undefined, [file, `initializer '${initializer.name ?? ''}': ${(error as Error).message.replace(`${file}: `, '')}`]);
    }
  }
  let sourceNodes: SourceNode[] = [];
  for (const [index, node] of (graphProto.node ?? []).entries()) {
    let attributes: Map<string, AttributeValue>;
    try {
      attributes = decodeAttributes(node, options.path);
    } catch (error) {
      bag.add('weightsUnreadable', undefined, [file, `node '${node.name || index}': ${(error as Error).message.replace(`${file}: `, '')}`]);
      continue;
    }
    const source: SourceNode = { opType: node.domain && node.domain !== 'ai.onnx' ? `${node.domain}.${node.opType ?? ''}` : (node.opType ?? ''), name: node.name ?? '', inputs: node.input ?? [], outputs: node.output ?? [], attributes };
    if (source.opType === 'Constant' && source.outputs[0]) {
      const value = attributes.get('value');
      if (value && typeof value === 'object' && !Array.isArray(value)) constants.set(source.outputs[0], value);
      else if (typeof attributes.get('value_float') === 'number') constants.set(source.outputs[0], { dims: [], data: Float32Array.of(attributes.get('value_float') as number) });
      else if (typeof attributes.get('value_int') === 'number') {
        const v = attributes.get('value_int') as number;
        constants.set(source.outputs[0], { dims: [], data: Float32Array.of(v), integers: [v] });
      } else if (Array.isArray(attributes.get('value_ints'))) {
        const ints = attributes.get('value_ints') as number[];
        constants.set(source.outputs[0], { dims: [ints.length], data: Float32Array.from(ints), integers: ints });
      } else if (Array.isArray(attributes.get('value_floats'))) {
        const floats = attributes.get('value_floats') as number[];
        constants.set(source.outputs[0], { dims: [floats.length], data: Float32Array.from(floats) });
      }
      continue;
    }
    sourceNodes.push(source);
  }
  if (bag.hasErrors) return fail();
  const graphOutputNames = new Set((graphProto.output ?? []).map((o) => o.name ?? ''));
  sourceNodes = fusePatterns(sourceNodes, constants, graphOutputNames);

  // Every unsupported op, before converting anything: one diagnostic per op type, naming its nodes.
  const unsupported = new Map<string, string[]>();
  for (const node of sourceNodes) {
    if (SUPPORTED.has(node.opType)) continue;
    unsupported.set(node.opType, [...(unsupported.get(node.opType) ?? []), node.name || node.outputs[0] || '?']);
  }
  for (const [opType, names] of unsupported) {
    const others = names.slice(1);
    const hint = others.length === 0 ? undefined : `${others.length} more node${others.length === 1 ? ' uses' : 's use'} it: '${others.slice(0, 5).join("', '")}'${others.length > 5 ? ', …' : ''}`;
    bag.add('unsupportedOnnxOp', undefined, [opType, names[0]!], hint);
  }
  if (unsupported.size > 0) return fail();

  // Scopes: how many nodes each torch.onnx scope holds, and which scopes have sub-scopes (not leaf modules).
  const scopeCounts = new Map<string, number>();
  for (const node of sourceNodes) {
    const scope = scopeOf(node.name);
    if (scope && node.opType !== 'Identity' && node.opType !== 'Dropout') scopeCounts.set(scope, (scopeCounts.get(scope) ?? 0) + 1);
  }
  const parentScopes = new Set<string>();
  for (const scope of scopeCounts.keys()) {
    const parts = scope.split('/');
    for (let i = 1; i < parts.length; i++) parentScopes.add(parts.slice(0, i).join('/'));
  }
  const preferredName = (nodeName: string, kind: string): string | undefined => {
    if (nodeName === '') return undefined;
    const scope = scopeOf(nodeName);
    if (!scope) return !nodeName.includes('/') && DOTTED_PATH.test(nodeName) ? nodeName : undefined;
    const path = modulePath(scope.split('/'));
    if (!path) return undefined;
    const leaf = scopeCounts.get(scope) === 1 && !parentScopes.has(scope);
    return leaf ? path : `${path}.${kind}`;
  };

  const inputs: GraphInput[] = [];
  const irName = new Map<string, string>(); // ONNX tensor → IR tensor
  const shapes = new Map<string, Shape>();
  for (const input of graphProto.input ?? []) {
    const name = input.name ?? '';
    if (constants.has(name)) continue;
    const shape = valueInfoShape(input, options.path);
    if (shape.elemType !== undefined && shape.elemType !== 'float32') {
      bag.add('unsupportedOnnxOp', undefined, [`an input of type ${shape.elemType}`, name], 'convspec models take float32 inputs');
      continue;
    }
    if (shape.dims === undefined || shape.dims.length < 2) {
      bag.add('unsupportedOnnxOp', undefined, [`an input of ${shape.dims === undefined ? 'unknown rank' : `rank ${shape.dims.length}`}`, name], 'convspec inputs are [N, C, …]');
      continue;
    }
    const dims: Dim[] = shape.dims.map((d: number | string | null, index: number) =>
      typeof d === 'number' && d > 0 ? d : symbol(typeof d === 'string' && /^[A-Za-z_][A-Za-z0-9_]*$/.test(d) ? d : index === 0 ? 'N' : `d${index}`),
    );
    const id = sanitizeIdentifier(name);
    inputs.push({ name: id, dtype: 'f32', shape: dims, span });
    irName.set(name, id);
    shapes.set(id, dims);
  }
  if (bag.hasErrors) return fail();

  let nodes: Node[] = [];
  const used = new Set<string>(inputs.map((i) => i.name));
  const counters = new Map<string, number>();
  const uniqueName = (preferred: string | undefined, kind: string): string => {
    let base = preferred;
    if (!base) {
      const count = (counters.get(kind) ?? 0) + 1;
      counters.set(kind, count);
      base = `${kind}${count}`;
    }
    let candidate = base;
    for (let i = 2; used.has(candidate); i++) candidate = `${base}_${i}`;
    used.add(candidate);
    return candidate;
  };
  let failed = false;
  const refuse = (what: string, node: SourceNode): void => {
    bag.add('unsupportedOnnxOp', undefined, [what, node.name || node.outputs[0] || '?']);
    failed = true;
  };

  for (const node of sourceNodes) {
    const opType = node.opType;
    const nodeInputs = node.inputs.filter((i) => i !== '');
    const output = node.outputs[0] ?? '';
    const attributes = node.attributes;
    const numberAttribute = (key: string, fallback: number) => (typeof attributes.get(key) === 'number' ? (attributes.get(key) as number) : fallback);
    const listAttribute = (key: string): number[] | undefined => (Array.isArray(attributes.get(key)) ? (attributes.get(key) as number[]) : undefined);
    const stringAttribute = (key: string, fallback: string) => (typeof attributes.get(key) === 'string' ? (attributes.get(key) as string) : fallback);

    // Aliases: ops that are the identity at inference.
    if (opType === 'Identity' || opType === 'Dropout') {
      const source = irName.get(nodeInputs[0] ?? '');
      if (source) irName.set(output, source);
      else if (constants.has(nodeInputs[0] ?? '')) constants.set(output, constants.get(nodeInputs[0]!)!);
      continue;
    }

    const tensorInputs = nodeInputs.filter((i) => !constants.has(i)).map((i) => irName.get(i));
    if (tensorInputs.some((i) => i === undefined)) {
      // An input failed earlier (and was reported there), or names no tensor at all.
      if (!failed) refuse(`${opType} reading '${nodeInputs.find((i) => !constants.has(i) && !irName.has(i))}', which no node produces`, node);
      failed = true;
      continue;
    }
    const x = tensorInputs as string[];
    const firstShape = shapes.get(x[0] ?? '');
    // By position in the node's inputs, where '' marks an omitted optional one (Resize's roi).
    const constant = (index: number) => constants.get(node.inputs[index] ?? '');
    const name = (kind: string) => uniqueName(preferredName(node.name, kind), kind);
    /** Layers with weights: named after their weight initializer when it is `<layer>.weight`. */
    const weightedName = (kind: string, weightIndex = 1) => {
      const weight = node.inputs[weightIndex];
      if (weight && constants.has(weight) && /\.weight$/.test(weight) && DOTTED_PATH.test(weight)) return uniqueName(weight.replace(/\.weight$/, ''), kind);
      return name(kind);
    };
    const addNode = (attributesOf: OpAttributes, inputNames: string[], nodeName: string): boolean => {
      const inputShapes = inputNames.map((i) => shapes.get(i));
      if (inputShapes.some((s) => s === undefined)) {
        failed = true;
        return false;
      }
      const result = inferShape(attributesOf, inputShapes as Shape[]);
      if (!result.ok) {
        bag.add('runtimeFailure', undefined, [`ONNX node '${node.name || nodeName}' (${opType}) does not fit its inputs: ${JSON.stringify(result.problem)}`]);
        failed = true;
        return false;
      }
      nodes.push({ ...attributesOf, name: nodeName, inputs: inputNames, shape: result.shape, span, frozen: false, regularizers: [] } as Node);
      shapes.set(nodeName, result.shape);
      irName.set(output, nodeName);
      return true;
    };
    const activation = (fn: Activation) => addNode({ op: 'activation', fn }, [x[0]!], name(fn.kind));
    if (!firstShape) {
      refuse(`${opType} without a tensor input`, node);
      continue;
    }

    switch (opType) {
      case 'Conv':
      case 'ConvTranspose': {
        const w = constant(1);
        if (!w || w.dims.length < 3) {
          refuse(`${opType} with computed weights`, node);
          break;
        }
        const rank = w.dims.length - 2;
        const kernel = listAttribute('kernel_shape') ?? w.dims.slice(2);
        const stride = listAttribute('strides') ?? new Array<number>(rank).fill(1);
        const dilation = listAttribute('dilations') ?? new Array<number>(rank).fill(1);
        const groups = numberAttribute('group', 1);
        const autoPad = stringAttribute('auto_pad', 'NOTSET');
        const pads = listAttribute('pads') ?? new Array<number>(rank * 2).fill(0);
        const explicit: Padding = { begin: pads.slice(0, rank), end: pads.slice(rank) };
        const layer = weightedName(opType === 'Conv' ? 'conv' : 'deconv');
        const bias = constant(2);
        const inChannels = firstShape[1];
        if (typeof inChannels !== 'number') {
          refuse(`${opType} on a symbolic number of channels`, node);
          break;
        }
        if (opType === 'Conv') {
          let padding: Padding | 'same-dynamic';
          let mode: 'same' | 'valid' | 'explicit' = autoPad === 'SAME_UPPER' ? 'same' : autoPad === 'VALID' ? 'valid' : 'explicit';
          if (autoPad === 'SAME_LOWER') {
            const lower = sameLowerPadding(firstShape.slice(2), kernel, stride, dilation);
            if (!lower) {
              refuse('Conv with auto_pad SAME_LOWER on a symbolic size', node);
              break;
            }
            padding = lower;
            mode = 'explicit';
          } else padding = resolvePadding(mode, explicit, firstShape.slice(2), kernel, stride, dilation);
          if (!addNode({ op: 'conv', inChannels, filters: w.dims[0]!, kernel, stride, dilation, groups, padding, padMode: mode, bias: Boolean(bias) }, [x[0]!], layer)) break;
        } else {
          let outputPadding = listAttribute('output_padding') ?? new Array<number>(rank).fill(0);
          let padding: Padding = explicit;
          // An output size (given, or SAME's input × stride) fixes the pads, as ONNX defines them:
          // total = s·(in − 1) + output_padding + α(k − 1) + 1 − out; SAME_UPPER puts the odd pixel at the end.
          const requested = listAttribute('output_shape') ?? (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER' ? firstShape.slice(2).map((d, i) => (typeof d === 'number' ? d * stride[i]! : Number.NaN)) : undefined);
          if (requested) {
            const spatial = firstShape.slice(2);
            const totals = requested.slice(-rank).map((out, i) => (typeof spatial[i] === 'number' ? stride[i]! * ((spatial[i] as number) - 1) + outputPadding[i]! + dilation[i]! * (kernel[i]! - 1) + 1 - out : Number.NaN));
            if (totals.some((t) => !Number.isInteger(t))) {
              refuse(`ConvTranspose with ${listAttribute('output_shape') ? 'output_shape' : `auto_pad ${autoPad}`} on a symbolic size`, node);
              break;
            }
            // A negative total asks for more output than the kernel covers: that is output padding at the end.
            const upper = autoPad === 'SAME_UPPER';
            outputPadding = outputPadding.map((p, i) => p + Math.max(0, -totals[i]!));
            const pads = totals.map((t) => Math.max(0, t));
            padding = { begin: pads.map((t) => (upper ? Math.floor(t / 2) : t - Math.floor(t / 2))), end: pads.map((t) => (upper ? t - Math.floor(t / 2) : Math.floor(t / 2))) };
          } else if (autoPad !== 'NOTSET' && autoPad !== 'VALID') {
            refuse(`ConvTranspose with auto_pad ${autoPad}`, node);
            break;
          }
          if (!addNode({ op: 'conv_transpose', inChannels, filters: w.dims[1]! * groups, kernel, stride, dilation, groups, padding, outputPadding, padMode: 'explicit', bias: Boolean(bias) }, [x[0]!], layer)) break;
        }
        weights.set(`${layer}.weight`, { shape: w.dims, data: w.data });
        if (bias) weights.set(`${layer}.bias`, { shape: bias.dims, data: bias.data });
        break;
      }
      case 'BatchNormalization': {
        const [scale, shift, mean, variance] = [constant(1), constant(2), constant(3), constant(4)];
        if (!scale || !shift || !mean || !variance) {
          refuse('BatchNormalization with computed statistics', node);
          break;
        }
        if (numberAttribute('training_mode', 0) === 1 || node.outputs.filter((o) => o !== '').length > 1) {
          refuse('BatchNormalization in training mode (export the model in eval mode)', node);
          break;
        }
        const layer = weightedName('bn');
        if (!addNode({ op: 'batchnorm', channels: scale.dims[0] ?? scale.data.length, epsilon: numberAttribute('epsilon', 1e-5), momentum: numberAttribute('momentum', 0.9) }, [x[0]!], layer)) break;
        weights.set(`${layer}.weight`, { shape: scale.dims, data: scale.data });
        weights.set(`${layer}.bias`, { shape: shift.dims, data: shift.data });
        weights.set(`${layer}.running_mean`, { shape: mean.dims, data: mean.data });
        weights.set(`${layer}.running_var`, { shape: variance.dims, data: variance.data });
        break;
      }
      case 'MaxPool':
      case 'AveragePool': {
        if (node.outputs.filter((o) => o !== '').length > 1) {
          refuse('MaxPool with an Indices output', node);
          break;
        }
        const kernel = listAttribute('kernel_shape');
        if (!kernel) {
          refuse(`${opType} without kernel_shape`, node);
          break;
        }
        const rank = kernel.length;
        const stride = listAttribute('strides') ?? new Array<number>(rank).fill(1);
        const dilation = listAttribute('dilations');
        if (dilation && dilation.some((d) => d !== 1)) {
          refuse(`${opType} with dilations`, node);
          break;
        }
        const autoPad = stringAttribute('auto_pad', 'NOTSET');
        const pads = listAttribute('pads') ?? new Array<number>(rank * 2).fill(0);
        let mode: 'same' | 'valid' | 'explicit' = autoPad === 'SAME_UPPER' ? 'same' : autoPad === 'VALID' ? 'valid' : 'explicit';
        let padding: Padding | 'same-dynamic';
        const ones = kernel.map(() => 1);
        if (autoPad === 'SAME_LOWER') {
          const lower = sameLowerPadding(firstShape.slice(2), kernel, stride, ones);
          if (!lower) {
            refuse(`${opType} with auto_pad SAME_LOWER on a symbolic size`, node);
            break;
          }
          padding = lower;
          mode = 'explicit';
        } else padding = resolvePadding(mode, { begin: pads.slice(0, rank), end: pads.slice(rank) }, firstShape.slice(2), kernel, stride, ones);
        const op = opType === 'MaxPool' ? 'maxpool' : 'avgpool';
        addNode({ op, kernel, stride, padding, padMode: mode, ceilMode: numberAttribute('ceil_mode', 0) === 1, countIncludePad: numberAttribute('count_include_pad', 0) === 1 }, [x[0]!], name(op));
        break;
      }
      case 'GlobalAveragePool':
        addNode({ op: 'global_avgpool' }, [x[0]!], name('globalavgpool'));
        break;
      case 'GlobalMaxPool':
        addNode({ op: 'global_maxpool' }, [x[0]!], name('globalmaxpool'));
        break;
      case 'ReduceMean': {
        const axes = listAttribute('axes') ?? constant(1)?.integers;
        const rank = firstShape.length;
        const spatial = Array.from({ length: Math.max(0, rank - 2) }, (_, i) => i + 2);
        const normalized = (axes ?? []).map((a) => (a < 0 ? a + rank : a)).sort((p, q) => p - q);
        if (numberAttribute('keepdims', 1) === 1 && normalized.length === spatial.length && normalized.every((a, i) => a === spatial[i])) addNode({ op: 'global_avgpool' }, [x[0]!], name('globalavgpool'));
        else refuse('ReduceMean (other than over all spatial axes with keepdims)', node);
        break;
      }
      case 'convspec.Swish':
        activation({ kind: 'swish' });
        break;
      case 'convspec.HardSwish':
        activation({ kind: 'hard_swish' });
        break;
      case 'convspec.Gelu':
        activation({ kind: 'gelu' });
        break;
      case 'Relu':
        activation({ kind: 'relu' });
        break;
      case 'Sigmoid':
        activation({ kind: 'sigmoid' });
        break;
      case 'Tanh':
        activation({ kind: 'tanh' });
        break;
      case 'LeakyRelu':
        activation({ kind: 'leaky_relu', alpha: numberAttribute('alpha', 0.01) });
        break;
      case 'Elu':
        activation({ kind: 'elu', alpha: numberAttribute('alpha', 1) });
        break;
      case 'HardSigmoid':
        activation({ kind: 'hard_sigmoid', alpha: numberAttribute('alpha', 0.2), beta: numberAttribute('beta', 0.5) });
        break;
      case 'HardSwish':
        activation({ kind: 'hard_swish' });
        break;
      case 'Gelu':
        if (stringAttribute('approximate', 'none') === 'none') activation({ kind: 'gelu' });
        else refuse(`Gelu with approximate '${stringAttribute('approximate', 'none')}'`, node);
        break;
      case 'Softmax': {
        const rank = firstShape.length;
        const axis = numberAttribute('axis', -1);
        activation({ kind: 'softmax', axis: axis < 0 ? axis : axis === rank - 1 ? -1 : axis });
        break;
      }
      case 'Clip': {
        const low = constant(1)?.data[0] ?? numberAttribute('min', -Infinity);
        const high = constant(2)?.data[0] ?? numberAttribute('max', Infinity);
        if (low === 0 && high === 6) activation({ kind: 'relu6' });
        else if (low === 0 && high === Infinity) activation({ kind: 'relu' });
        else refuse(`Clip to [${low}, ${high}] (only relu and relu6 clips are layers)`, node);
        break;
      }
      case 'Add':
      case 'Mul':
      case 'Sum': {
        const op = opType === 'Mul' ? 'mul' : 'add';
        if (x.length >= 2 && x.length === nodeInputs.length) {
          addNode({ op }, x, name(op));
          break;
        }
        // Add of a constant bias right after a bias-free MatMul → the dense layer's bias.
        const bias = nodeInputs.map((i) => constants.get(i)).find((c) => c !== undefined);
        const previous = nodes[nodes.length - 1];
        if (opType === 'Add' && bias && x.length === 1 && previous?.op === 'dense' && !previous.bias && previous.name === x[0] && bias.data.length === previous.units) {
          nodes[nodes.length - 1] = { ...previous, bias: true };
          weights.set(`${previous.name}.bias`, { shape: [previous.units], data: bias.data });
          irName.set(output, previous.name);
          break;
        }
        refuse(`${opType} with a constant operand`, node);
        break;
      }
      case 'Concat': {
        const rank = firstShape.length;
        const axis = numberAttribute('axis', 1);
        if (x.length !== nodeInputs.length) refuse('Concat with a constant operand', node);
        else addNode({ op: 'concat', axis: axis < 0 ? axis + rank : axis }, x, name('concat'));
        break;
      }
      case 'Flatten':
        if (numberAttribute('axis', 1) !== 1) refuse('Flatten with axis other than 1', node);
        else addNode({ op: 'flatten' }, [x[0]!], name('flatten'));
        break;
      case 'Reshape': {
        const target = constant(1)?.integers;
        if (!target) {
          refuse('Reshape with a computed shape', node);
          break;
        }
        const rest = target.slice(1).map((d, i) => (d === 0 ? firstShape[i + 1]! : d));
        if (target[0] !== 0 && target[0] !== -1 && target[0] !== firstShape[0]) refuse('Reshape that changes the batch dimension', node);
        else if (rest.length === 1 && rest[0] === -1) addNode({ op: 'flatten' }, [x[0]!], name('flatten'));
        else addNode({ op: 'reshape', target: rest }, [x[0]!], name('reshape'));
        break;
      }
      case 'Gemm':
      case 'MatMul': {
        const w = constant(1);
        if (!w || w.dims.length !== 2 || firstShape.length !== 2) {
          refuse(`${opType} other than a dense layer on [N, features]`, node);
          break;
        }
        const transposed = opType === 'Gemm' ? numberAttribute('transB', 0) === 1 : false;
        if (opType === 'Gemm' && (numberAttribute('transA', 0) !== 0 || numberAttribute('alpha', 1) !== 1 || numberAttribute('beta', 1) !== 1)) {
          refuse('Gemm with transA, alpha or beta other than the defaults', node);
          break;
        }
        const [rows, cols] = w.dims as [number, number];
        const units = transposed ? rows : cols;
        const inFeatures = transposed ? cols : rows;
        // Dense weights are [out, in]: transpose a [in, out] MatMul/Gemm weight.
        let data = w.data;
        if (!transposed) {
          data = new Float32Array(rows * cols);
          for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) data[c * rows + r] = w.data[r * cols + c]!;
        }
        const layer = weightedName('dense');
        const bias = opType === 'Gemm' ? constant(2) : undefined;
        if (bias && bias.data.length !== units && bias.data.length !== 1) {
          refuse('Gemm with a bias that is not per unit', node);
          break;
        }
        if (!addNode({ op: 'dense', inFeatures, units, bias: Boolean(bias) }, [x[0]!], layer)) break;
        weights.set(`${layer}.weight`, { shape: [units, inFeatures], data });
        if (bias) weights.set(`${layer}.bias`, { shape: [units], data: bias.data.length === units ? bias.data : new Float32Array(units).fill(bias.data[0] ?? 0) });
        break;
      }
      case 'Pad': {
        const pads = constant(1)?.integers ?? listAttribute('pads');
        const rank = firstShape.length - 2;
        if (!pads || pads.length !== (rank + 2) * 2 || pads[0] !== 0 || pads[1] !== 0 || pads[rank + 2] !== 0 || pads[rank + 3] !== 0 || pads.some((p) => p < 0)) {
          refuse('Pad of the batch or channel axes, negative or computed pads', node);
          break;
        }
        const mode = stringAttribute('mode', 'constant');
        if (mode !== 'constant' && mode !== 'reflect' && mode !== 'edge') {
          refuse(`Pad with mode '${mode}'`, node);
          break;
        }
        addNode({ op: 'pad', padding: { begin: pads.slice(2, rank + 2), end: pads.slice(rank + 4) }, mode, value: constant(2)?.data[0] ?? numberAttribute('value', 0) }, [x[0]!], name('pad'));
        break;
      }
      case 'Resize':
      case 'Upsample': {
        const given = opType === 'Upsample' ? (constant(1)?.data ?? listAttribute('scales')) : constant(2)?.data;
        let scales: readonly number[] | undefined = given ? [...given] : undefined;
        const sizes = opType === 'Resize' ? constant(3)?.integers : undefined;
        if ((!scales || scales.length === 0) && sizes && sizes.length === firstShape.length && firstShape.every((d) => typeof d === 'number')) scales = sizes.map((size, axis) => size / (firstShape[axis] as number));
        const rank = firstShape.length - 2;
        if (!scales || scales.length !== rank + 2 || scales[0] !== 1 || scales[1] !== 1 || ![...scales].every((f) => Number.isInteger(f) && f >= 1)) {
          refuse(`${opType} without integer scales`, node);
          break;
        }
        // The sampling convspec's upsample does (./src/codegen/onnx.ts): nearest out[i] = in[⌊i/s⌋], which
        // half_pixel with any rounding also gives for integer s; linear with half-pixel centres.
        const mode = stringAttribute('mode', 'nearest');
        const transform = opType === 'Upsample' ? 'asymmetric' : stringAttribute('coordinate_transformation_mode', 'half_pixel');
        const rounding = stringAttribute('nearest_mode', opType === 'Upsample' ? 'floor' : 'round_prefer_floor');
        const nearest = mode === 'nearest' && ((transform === 'asymmetric' && rounding === 'floor') || transform === 'half_pixel' || transform === 'pytorch_half_pixel');
        const linear = mode === 'linear' && (transform === 'half_pixel' || transform === 'pytorch_half_pixel');
        if (!nearest && !linear) {
          refuse(`${opType} with mode '${mode}', coordinate_transformation_mode '${transform}'${mode === 'nearest' ? ` and nearest_mode '${rounding}'` : ''}`, node);
          break;
        }
        addNode({ op: 'upsample', scale: [...scales.slice(2)], mode: nearest ? 'nearest' : 'linear' }, [x[0]!], name('upsample'));
        break;
      }
      default:
        refuse(opType, node);
    }
  }

  const outputs: GraphOutput[] = [];
  const outputIds = new Set<string>();
  for (const output of graphProto.output ?? []) {
    const value = irName.get(output.name ?? '');
    if (!value) {
      if (!failed) bag.add('unsupportedOnnxOp', undefined, ['a graph output that is not a tensor the model computes', output.name ?? '?']);
      failed = true;
      continue;
    }
    let id = sanitizeIdentifier(output.name ?? 'output');
    for (let i = 2; outputIds.has(id); i++) id = `${sanitizeIdentifier(output.name ?? 'output')}_${i}`;
    outputIds.add(id);
    outputs.push({ name: id, value, span });
  }
  if (failed || bag.hasErrors) return fail();

  // Nodes no output depends on go, with their weights.
  const needed = new Set(outputs.map((o) => o.value));
  for (let i = nodes.length - 1; i >= 0; i--) if (needed.has(nodes[i]!.name)) for (const input of nodes[i]!.inputs) needed.add(input);
  const dead = nodes.filter((n) => !needed.has(n.name));
  if (dead.length > 0) {
    nodes = nodes.filter((n) => needed.has(n.name));
    for (const node of dead) for (const role of ['weight', 'bias', 'running_mean', 'running_var']) weights.delete(`${node.name}.${role}`);
  }
  const graphName = graphProto.name ?? '';
  const modelName = sanitizeIdentifier(options.modelName ?? (GENERIC_GRAPH_NAMES.has(graphName) ? (options.defaultName ?? 'Imported') : graphName));
  const producer = [model.producerName, model.producerVersion].filter((p) => p).join(' ');
  const opsetImport = (model.opsetImport ?? []).find((o) => !o.domain || o.domain === 'ai.onnx');
  return {
    graph: { name: modelName, inputs, nodes, outputs, training: {}, source: file },
    weights,
    diagnostics: bag.items,
    ...(producer ? { producer } : {}),
    ...(opsetImport ? { opset: int64ToNumber(opsetImport.version ?? 0) } : {}),
  };
}

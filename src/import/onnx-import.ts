/**
 * ONNX → IR: the front end behind `convspec import`.
 *
 * Every ONNX op with a convspec equivalent becomes an IR node; the weights come from the initializers.
 * Supported: Conv, ConvTranspose, BatchNormalization, MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool,
 * Relu, Clip (0..6 → relu6), LeakyRelu, Elu, Sigmoid, HardSigmoid, Tanh, HardSwish, Gelu, Softmax, x·Sigmoid(x)
 * (→ swish), Add, Mul, Concat, Flatten, Reshape (constant shape), Gemm, MatMul (+ Add of a bias), Dropout and
 * Identity (dropped: they are the identity at inference), Pad, Resize/Upsample (integer scales), ReduceMean over
 * all spatial axes (→ global average pooling). Anything else is a CNN8006 diagnostic naming the op and node;
 * every unsupported node is reported in one run.
 *
 * Names: a layer with weights takes its name from the weight initializer (`layer1.0.conv1.weight` →
 * `layer1.0.conv1`, as torch.onnx names them); other layers from the ONNX node name's module path
 * (`/layer1/layer1.0/relu/Relu` → `layer1.0.relu`), or the op kind numbered. Weights keep PyTorch's names
 * (`<layer>.weight`, `.bias`, `.running_mean`, `.running_var`), so a torch checkpoint's names line up.
 */
import { DiagnosticBag, type Diagnostic } from '../diagnostics.js';
import { symbol, type Dim } from '../ir/dims.js';
import type { Activation, Graph, GraphInput, GraphOutput, Node, OpAttributes, Padding, Shape } from '../ir/graph.js';
import { inferShape, resolvePadding } from '../ir/shapes.js';
import type { WeightTensor } from '../ir/weights.js';
import { decodeModel, int64ToNumber, OnnxFormatError, tensorProtoToArray, valueInfoShape, type DecodedModelProto } from '../codegen/onnx-model.js';
import { syntheticSpan, type Span } from '../source.js';

export interface ImportResult {
  readonly graph: Graph | undefined;
  readonly weights: Map<string, WeightTensor>;
  readonly diagnostics: Diagnostic[];
}

interface Constant {
  readonly dims: number[];
  readonly data: Float32Array;
  readonly integers?: number[];
}

type AttributeValue = number | number[] | string | Constant | undefined;

/** A readable identifier for an ONNX name: `input.1` → `input_1`. */
export function sanitizeIdentifier(name: string): string {
  let text = name.replace(/[^A-Za-z0-9_]/g, '_');
  if (!/^[A-Za-z_]/.test(text)) text = `t_${text}`;
  return text;
}

/**
 * The module path in a torch.onnx node name: `/layer1/layer1.0/relu/Relu` → `layer1.0.relu`; an op applied in a
 * container's own forward (`/layer1/layer1.0/Add`) → `layer1.0.add`; no path → undefined.
 */
function moduleName(nodeName: string, kind: string): string | undefined {
  const segments = nodeName.split('/').filter((s) => s.length > 0);
  if (segments.length < 2) return undefined;
  const modules = segments.slice(0, -1);
  const deepest = modules[modules.length - 1]!;
  const parent = modules.length > 1 ? modules[modules.length - 2]! : undefined;
  if (parent && deepest.startsWith(`${parent}.`)) return `${deepest}.${kind}`;
  if (parent && !deepest.includes('.')) return `${parent}.${deepest}`;
  return deepest;
}

export function importOnnx(bytes: Uint8Array, options: { path?: string; modelName?: string } = {}): ImportResult {
  const bag = new DiagnosticBag();
  const span: Span = syntheticSpan(options.path ?? '<onnx>');
  const weights = new Map<string, WeightTensor>();
  let model: DecodedModelProto;
  try {
    model = decodeModel(bytes, options.path);
  } catch (error) {
    const reason = error instanceof OnnxFormatError ? error.message : String(error);
    bag.add('weightsUnreadable', undefined, [options.path ?? '<onnx>', `not an ONNX model (${reason})`]);
    return { graph: undefined, weights, diagnostics: bag.items };
  }
  const graphProto = model.graph;

  const constants = new Map<string, Constant>();
  const readConstant = (tensor: Parameters<typeof tensorProtoToArray>[0], name: string) => {
    try {
      const array = tensorProtoToArray(tensor, options.path);
      const values = Array.from(array.data as ArrayLike<number | bigint>, (v) => Number(v));
      constants.set(name, { dims: array.dims.map(Number), data: Float32Array.from(values), integers: values });
    } catch (error) {
      bag.add('weightsUnreadable', undefined, [options.path ?? '<onnx>', `initializer '${name}': ${(error as Error).message}`]);
    }
  };
  for (const initializer of graphProto.initializer ?? []) readConstant(initializer, initializer.name ?? '');

  const inputs: GraphInput[] = [];
  const irName = new Map<string, string>(); // ONNX tensor → IR tensor
  const shapes = new Map<string, Shape>();
  for (const input of graphProto.input ?? []) {
    const name = input.name ?? '';
    if (constants.has(name)) continue;
    const shape = valueInfoShape(input, options.path);
    const dims: Dim[] = (shape.dims ?? []).map((d: number | string | null, index: number) =>
      typeof d === 'number' && d > 0 ? d : symbol(typeof d === 'string' && /^[A-Za-z_][A-Za-z0-9_]*$/.test(d) ? d : index === 0 ? 'N' : `d${index}`),
    );
    const id = sanitizeIdentifier(name);
    inputs.push({ name: id, dtype: 'f32', shape: dims, span });
    irName.set(name, id);
    shapes.set(id, dims);
  }

  const nodes: Node[] = [];
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

  const addNode = (onnxNode: { name?: string | null; output?: string[] | null }, attributes: OpAttributes, inputNames: string[], name: string): void => {
    const inputShapes = inputNames.map((i) => shapes.get(i));
    if (inputShapes.some((s) => s === undefined)) {
      failed = true;
      return;
    }
    const result = inferShape(attributes, inputShapes as Shape[]);
    if (!result.ok) {
      bag.add('runtimeFailure', undefined, [`ONNX node '${onnxNode.name ?? name}' (${attributes.op}) does not fit its inputs: ${JSON.stringify(result.problem)}`]);
      failed = true;
      return;
    }
    nodes.push({ ...attributes, name, inputs: inputNames, shape: result.shape, span, frozen: false, regularizers: [] } as Node);
    shapes.set(name, result.shape);
    irName.set(onnxNode.output?.[0] ?? name, name);
  };

  const producers = new Map<string, { opType: string; inputs: string[] }>();
  for (const node of graphProto.node ?? []) for (const output of node.output ?? []) producers.set(output, { opType: node.opType ?? '', inputs: node.input ?? [] });

  for (const node of graphProto.node ?? []) {
    const opType = node.opType ?? '';
    const nodeInputs = (node.input ?? []).filter((i) => i !== '');
    const attributes = new Map<string, AttributeValue>();
    for (const attribute of node.attribute ?? []) {
      const name = attribute.name ?? '';
      if (attribute.ints && attribute.ints.length > 0) attributes.set(name, attribute.ints.map((v) => int64ToNumber(v)));
      else if (attribute.floats && attribute.floats.length > 0) attributes.set(name, [...attribute.floats]);
      else if (attribute.s && attribute.s.length > 0) attributes.set(name, Buffer.from(attribute.s).toString('utf8'));
      else if (attribute.t) {
        const array = tensorProtoToArray(attribute.t, options.path);
        const values = Array.from(array.data as ArrayLike<number | bigint>, (v) => Number(v));
        attributes.set(name, { dims: array.dims.map(Number), data: Float32Array.from(values), integers: values });
      } else if (attribute.type === 1) attributes.set(name, attribute.f ?? 0);
      else if (attribute.type === 2) attributes.set(name, int64ToNumber(attribute.i ?? 0));
      else if (attribute.f !== undefined && attribute.f !== null && attribute.f !== 0) attributes.set(name, attribute.f);
      else if (attribute.i !== undefined && attribute.i !== null) attributes.set(name, int64ToNumber(attribute.i));
    }
    const numberAttribute = (key: string, fallback: number) => (typeof attributes.get(key) === 'number' ? (attributes.get(key) as number) : fallback);
    const listAttribute = (key: string): number[] | undefined => (Array.isArray(attributes.get(key)) ? (attributes.get(key) as number[]) : undefined);
    const stringAttribute = (key: string, fallback: string) => (typeof attributes.get(key) === 'string' ? (attributes.get(key) as string) : fallback);

    if (opType === 'Constant') {
      const value = attributes.get('value');
      if (value && typeof value === 'object' && !Array.isArray(value)) constants.set(node.output![0]!, value);
      else if (typeof attributes.get('value_float') === 'number') constants.set(node.output![0]!, { dims: [], data: Float32Array.of(attributes.get('value_float') as number) });
      else if (listAttribute('value_ints')) {
        const ints = listAttribute('value_ints')!;
        constants.set(node.output![0]!, { dims: [ints.length], data: Float32Array.from(ints), integers: ints });
      }
      continue;
    }

    // Aliases: ops that are the identity at inference.
    if (opType === 'Identity' || opType === 'Dropout') {
      const source = irName.get(nodeInputs[0]!);
      if (source) irName.set(node.output![0]!, source);
      else if (constants.has(nodeInputs[0]!)) constants.set(node.output![0]!, constants.get(nodeInputs[0]!)!);
      continue;
    }

    const tensorInputs = nodeInputs.filter((i) => !constants.has(i)).map((i) => irName.get(i));
    if (tensorInputs.some((i) => i === undefined)) {
      failed = true;
      continue;
    }
    const x = tensorInputs as string[];
    const firstShape = shapes.get(x[0] ?? '');
    const weightName = (index: number) => nodeInputs[index];
    const layerName = (kind: string) => {
      const weight = weightName(1);
      if (weight && constants.has(weight) && /\.weight$/.test(weight)) return uniqueName(weight.replace(/\.weight$/, ''), kind);
      return uniqueName(node.name ? moduleName(node.name, kind) : undefined, kind);
    };
    const constant = (index: number) => constants.get(nodeInputs[index] ?? '');

    switch (opType) {
      case 'Conv':
      case 'ConvTranspose': {
        const w = constant(1);
        if (!w || !firstShape) {
          bag.add('unsupportedOnnxOp', undefined, [`${opType} with computed weights`, node.name ?? '']);
          failed = true;
          break;
        }
        const rank = w.dims.length - 2;
        const kernel = listAttribute('kernel_shape') ?? w.dims.slice(2);
        const stride = listAttribute('strides') ?? new Array(rank).fill(1);
        const dilation = listAttribute('dilations') ?? new Array(rank).fill(1);
        const groups = numberAttribute('group', 1);
        const autoPad = stringAttribute('auto_pad', 'NOTSET');
        const pads = listAttribute('pads') ?? new Array(rank * 2).fill(0);
        const explicit: Padding = { begin: pads.slice(0, rank), end: pads.slice(rank) };
        const name = layerName(opType === 'Conv' ? 'conv' : 'deconv');
        const bias = constant(2);
        const inChannels = firstShape[1] as number;
        if (opType === 'Conv') {
          const mode = autoPad === 'SAME_UPPER' ? 'same' : autoPad === 'VALID' ? 'valid' : 'explicit';
          if (autoPad === 'SAME_LOWER') {
            bag.add('unsupportedOnnxOp', undefined, ['Conv with auto_pad SAME_LOWER', node.name ?? name]);
            failed = true;
            break;
          }
          const padding = resolvePadding(mode, explicit, firstShape.slice(2), kernel, stride, dilation);
          addNode(node, { op: 'conv', inChannels, filters: w.dims[0]!, kernel, stride, dilation, groups, padding, padMode: mode, bias: Boolean(bias) }, [x[0]!], name);
        } else {
          const outputPadding = listAttribute('output_padding') ?? new Array(rank).fill(0);
          if (autoPad !== 'NOTSET' && autoPad !== 'VALID') {
            bag.add('unsupportedOnnxOp', undefined, [`ConvTranspose with auto_pad ${autoPad}`, node.name ?? name]);
            failed = true;
            break;
          }
          addNode(node, { op: 'conv_transpose', inChannels, filters: w.dims[1]! * groups, kernel, stride, dilation, groups, padding: explicit, outputPadding, padMode: 'explicit', bias: Boolean(bias) }, [x[0]!], name);
        }
        weights.set(`${name}.weight`, { shape: w.dims, data: w.data });
        if (bias) weights.set(`${name}.bias`, { shape: bias.dims, data: bias.data });
        break;
      }
      case 'BatchNormalization': {
        const [scale, shift, mean, variance] = [constant(1), constant(2), constant(3), constant(4)];
        if (!scale || !shift || !mean || !variance || !firstShape) {
          bag.add('unsupportedOnnxOp', undefined, ['BatchNormalization with computed statistics', node.name ?? '']);
          failed = true;
          break;
        }
        const fromWeights = weightName(1)?.replace(/\.weight$/, '');
        const name = uniqueName(fromWeights && fromWeights !== weightName(1) ? fromWeights : node.name ? moduleName(node.name, 'bn') : undefined, 'bn');
        addNode(node, { op: 'batchnorm', channels: scale.dims[0]!, epsilon: numberAttribute('epsilon', 1e-5), momentum: numberAttribute('momentum', 0.9) }, [x[0]!], name);
        weights.set(`${name}.weight`, { shape: scale.dims, data: scale.data });
        weights.set(`${name}.bias`, { shape: shift.dims, data: shift.data });
        weights.set(`${name}.running_mean`, { shape: mean.dims, data: mean.data });
        weights.set(`${name}.running_var`, { shape: variance.dims, data: variance.data });
        break;
      }
      case 'MaxPool':
      case 'AveragePool': {
        if (!firstShape) break;
        if ((node.output?.length ?? 1) > 1 && node.output![1]) {
          bag.add('unsupportedOnnxOp', undefined, ['MaxPool with an Indices output', node.name ?? '']);
          failed = true;
          break;
        }
        const kernel = listAttribute('kernel_shape')!;
        const rank = kernel.length;
        const stride = listAttribute('strides') ?? new Array(rank).fill(1);
        const dilation = listAttribute('dilations');
        if (dilation && dilation.some((d) => d !== 1)) {
          bag.add('unsupportedOnnxOp', undefined, [`${opType} with dilations`, node.name ?? '']);
          failed = true;
          break;
        }
        const autoPad = stringAttribute('auto_pad', 'NOTSET');
        const pads = listAttribute('pads') ?? new Array(rank * 2).fill(0);
        const mode = autoPad === 'SAME_UPPER' ? 'same' : autoPad === 'VALID' ? 'valid' : 'explicit';
        const padding = resolvePadding(mode, { begin: pads.slice(0, rank), end: pads.slice(rank) }, firstShape.slice(2), kernel, stride, kernel.map(() => 1));
        const op = opType === 'MaxPool' ? 'maxpool' : 'avgpool';
        addNode(node, { op, kernel, stride, padding, padMode: mode, ceilMode: numberAttribute('ceil_mode', 0) === 1, countIncludePad: numberAttribute('count_include_pad', 0) === 1 }, [x[0]!], uniqueName(node.name ? moduleName(node.name, op) : undefined, op));
        break;
      }
      case 'GlobalAveragePool':
      case 'GlobalMaxPool':
        addNode(node, { op: opType === 'GlobalAveragePool' ? 'global_avgpool' : 'global_maxpool' }, [x[0]!], uniqueName(node.name ? moduleName(node.name, opType === 'GlobalAveragePool' ? 'globalavgpool' : 'globalmaxpool') : undefined, opType === 'GlobalAveragePool' ? 'globalavgpool' : 'globalmaxpool'));
        break;
      case 'ReduceMean': {
        const axes = listAttribute('axes') ?? constant(1)?.integers;
        const rank = firstShape?.length ?? 0;
        const spatial = Array.from({ length: Math.max(0, rank - 2) }, (_, i) => i + 2);
        const normalized = (axes ?? []).map((a) => (a < 0 ? a + rank : a)).sort();
        if (numberAttribute('keepdims', 1) === 1 && normalized.length === spatial.length && normalized.every((a, i) => a === spatial[i])) {
          addNode(node, { op: 'global_avgpool' }, [x[0]!], uniqueName(node.name ? moduleName(node.name, 'globalavgpool') : undefined, 'globalavgpool'));
        } else {
          bag.add('unsupportedOnnxOp', undefined, ['ReduceMean (other than over all spatial axes with keepdims)', node.name ?? '']);
          failed = true;
        }
        break;
      }
      case 'Relu':
      case 'Sigmoid':
      case 'Tanh':
      case 'LeakyRelu':
      case 'Elu':
      case 'HardSigmoid':
      case 'HardSwish':
      case 'Gelu':
      case 'Softmax':
      case 'Clip': {
        let fn: Activation | undefined;
        switch (opType) {
          case 'Relu':
            fn = { kind: 'relu' };
            break;
          case 'Sigmoid':
            fn = { kind: 'sigmoid' };
            break;
          case 'Tanh':
            fn = { kind: 'tanh' };
            break;
          case 'LeakyRelu':
            fn = { kind: 'leaky_relu', alpha: numberAttribute('alpha', 0.01) };
            break;
          case 'Elu':
            fn = { kind: 'elu', alpha: numberAttribute('alpha', 1) };
            break;
          case 'HardSigmoid':
            fn = { kind: 'hard_sigmoid', alpha: numberAttribute('alpha', 0.2), beta: numberAttribute('beta', 0.5) };
            break;
          case 'HardSwish':
            fn = { kind: 'hard_swish' };
            break;
          case 'Gelu':
            fn = stringAttribute('approximate', 'none') === 'none' ? { kind: 'gelu' } : undefined;
            break;
          case 'Softmax': {
            const rank = firstShape?.length ?? 2;
            const axis = numberAttribute('axis', -1);
            fn = { kind: 'softmax', axis: axis < 0 ? axis : axis === rank - 1 ? -1 : axis };
            break;
          }
          case 'Clip': {
            const low = constant(1)?.data[0] ?? numberAttribute('min', -Infinity);
            const high = constant(2)?.data[0] ?? numberAttribute('max', Infinity);
            if (low === 0 && high === 6) fn = { kind: 'relu6' };
            else if (low === 0 && high === Infinity) fn = { kind: 'relu' };
            break;
          }
        }
        if (!fn) {
          bag.add('unsupportedOnnxOp', undefined, [`${opType} with these attributes`, node.name ?? '']);
          failed = true;
          break;
        }
        addNode(node, { op: 'activation', fn }, [x[0]!], uniqueName(node.name ? moduleName(node.name, fn.kind) : undefined, fn.kind));
        break;
      }
      case 'Add':
      case 'Mul': {
        if (x.length === 2) {
          // x · Sigmoid(x) is swish.
          const sigmoidInput = (candidate: string) => {
            const producer = [...producers.entries()].find(([output]) => irName.get(output) === candidate)?.[1];
            return producer?.opType === 'Sigmoid' ? irName.get(producer.inputs[0]!) : undefined;
          };
          if (opType === 'Mul' && (sigmoidInput(x[1]!) === x[0] || sigmoidInput(x[0]!) === x[1])) {
            addNode(node, { op: 'activation', fn: { kind: 'swish' } }, [sigmoidInput(x[1]!) === x[0] ? x[0]! : x[1]!], uniqueName(node.name ? moduleName(node.name, 'swish') : undefined, 'swish'));
            break;
          }
          addNode(node, { op: opType === 'Add' ? 'add' : 'mul' }, x, uniqueName(node.name ? moduleName(node.name, opType === 'Add' ? 'add' : 'mul') : undefined, opType === 'Add' ? 'add' : 'mul'));
          break;
        }
        // Add of a constant bias right after a bias-free MatMul → the dense layer's bias.
        const bias = nodeInputs.map((i) => constants.get(i)).find((c) => c !== undefined);
        const previous = nodes[nodes.length - 1];
        if (opType === 'Add' && bias && x.length === 1 && previous?.op === 'dense' && !previous.bias && previous.name === x[0] && bias.data.length === previous.units) {
          nodes[nodes.length - 1] = { ...previous, bias: true };
          weights.set(`${previous.name}.bias`, { shape: [previous.units], data: bias.data });
          irName.set(node.output![0]!, previous.name);
          break;
        }
        bag.add('unsupportedOnnxOp', undefined, [`${opType} with a constant operand`, node.name ?? '']);
        failed = true;
        break;
      }
      case 'Concat': {
        const rank = firstShape?.length ?? 4;
        const axis = numberAttribute('axis', 1);
        addNode(node, { op: 'concat', axis: axis < 0 ? axis + rank : axis }, x, uniqueName(node.name ? moduleName(node.name, 'concat') : undefined, 'concat'));
        break;
      }
      case 'Flatten':
        if (numberAttribute('axis', 1) !== 1) {
          bag.add('unsupportedOnnxOp', undefined, ['Flatten with axis other than 1', node.name ?? '']);
          failed = true;
          break;
        }
        addNode(node, { op: 'flatten' }, [x[0]!], uniqueName(node.name ? moduleName(node.name, 'flatten') : undefined, 'flatten'));
        break;
      case 'Reshape': {
        const target = constant(1)?.integers;
        if (!target || !firstShape) {
          bag.add('unsupportedOnnxOp', undefined, ['Reshape with a computed shape', node.name ?? '']);
          failed = true;
          break;
        }
        const rest = target.slice(1).map((d, i) => (d === 0 ? firstShape[i + 1]! : d));
        if (rest.length === 1 && rest[0] === -1) addNode(node, { op: 'flatten' }, [x[0]!], uniqueName(node.name ? moduleName(node.name, 'flatten') : undefined, 'flatten'));
        else addNode(node, { op: 'reshape', target: rest }, [x[0]!], uniqueName(node.name ? moduleName(node.name, 'reshape') : undefined, 'reshape'));
        break;
      }
      case 'Gemm':
      case 'MatMul': {
        const w = constant(1);
        if (!w || w.dims.length !== 2 || !firstShape || firstShape.length !== 2) {
          bag.add('unsupportedOnnxOp', undefined, [`${opType} other than a dense layer on [N, features]`, node.name ?? '']);
          failed = true;
          break;
        }
        const transposed = opType === 'Gemm' ? numberAttribute('transB', 0) === 1 : false;
        if (opType === 'Gemm' && (numberAttribute('transA', 0) !== 0 || numberAttribute('alpha', 1) !== 1 || numberAttribute('beta', 1) !== 1)) {
          bag.add('unsupportedOnnxOp', undefined, ['Gemm with transA, alpha or beta other than the defaults', node.name ?? '']);
          failed = true;
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
        const name = layerName('dense');
        const bias = opType === 'Gemm' ? constant(2) : undefined;
        addNode(node, { op: 'dense', inFeatures, units, bias: Boolean(bias) }, [x[0]!], name);
        weights.set(`${name}.weight`, { shape: [units, inFeatures], data });
        if (bias) weights.set(`${name}.bias`, { shape: [units], data: bias.data.length === units ? bias.data : new Float32Array(units).fill(bias.data[0] ?? 0) });
        break;
      }
      case 'Pad': {
        const pads = constant(1)?.integers ?? listAttribute('pads');
        const rank = (firstShape?.length ?? 4) - 2;
        if (!pads || pads.length !== (rank + 2) * 2 || pads[0] !== 0 || pads[1] !== 0 || pads[rank + 2] !== 0 || pads[rank + 3] !== 0) {
          bag.add('unsupportedOnnxOp', undefined, ['Pad of the batch or channel axes, or with computed pads', node.name ?? '']);
          failed = true;
          break;
        }
        const mode = stringAttribute('mode', 'constant') as 'constant' | 'reflect' | 'edge';
        addNode(node, { op: 'pad', padding: { begin: pads.slice(2, rank + 2), end: pads.slice(rank + 4) }, mode, value: constant(2)?.data[0] ?? 0 }, [x[0]!], uniqueName(node.name ? moduleName(node.name, 'pad') : undefined, 'pad'));
        break;
      }
      case 'Resize':
      case 'Upsample': {
        const scales = (opType === 'Upsample' ? constant(1) : constant(2))?.data;
        const rank = (firstShape?.length ?? 4) - 2;
        if (!scales || scales.length !== rank + 2 || scales[0] !== 1 || scales[1] !== 1 || ![...scales].every((s) => Number.isInteger(s))) {
          bag.add('unsupportedOnnxOp', undefined, [`${opType} without integer scales`, node.name ?? '']);
          failed = true;
          break;
        }
        const mode = stringAttribute('mode', 'nearest') === 'nearest' ? 'nearest' : 'linear';
        addNode(node, { op: 'upsample', scale: [...scales.slice(2)], mode }, [x[0]!], uniqueName(node.name ? moduleName(node.name, 'upsample') : undefined, 'upsample'));
        break;
      }
      default:
        bag.add('unsupportedOnnxOp', undefined, [opType, node.name || node.output?.[0] || '?']);
        failed = true;
    }
  }

  const outputs: GraphOutput[] = [];
  for (const output of graphProto.output ?? []) {
    const value = irName.get(output.name ?? '');
    if (!value) {
      failed = true;
      continue;
    }
    outputs.push({ name: sanitizeIdentifier(output.name ?? 'output'), value, span });
  }
  if (failed || bag.hasErrors) return { graph: undefined, weights, diagnostics: bag.items };
  const name = sanitizeIdentifier(options.modelName ?? (graphProto.name || 'Imported'));
  return { graph: { name, inputs, nodes, outputs, training: {}, source: options.path ?? '<onnx>' }, weights, diagnostics: bag.items };
}

/**
 * Receptive fields, per spatial axis, relative to the model input (Araujo, Norris & Sim, Distill 2019).
 *
 * Computed forwards from the input in one topological sweep. For a window op with kernel extent
 * k' = α(k − 1) + 1 (dilation α), stride s and begin padding p, from input field (r, S, P) where r is the size,
 * S the effective stride (jump) and P the effective padding:
 *   r' = r + (k' − 1)·S        S' = S·s        P' = P + p·S
 * so output unit u sees input pixels [−P' + u·S', −P' + u·S' + r' − 1], centred at −P' + u·S' + (r' − 1)/2.
 * This is the paper's backward recurrence r_{l−1} = s_l·r_l + (k_l − s_l) run in the other direction.
 *
 * - Batch norm, activations, dropout and other element-wise ops leave the field unchanged.
 * - A transposed conv (stride s) refines the grid: S' = S/s; each output combines up to ⌈k'/s⌉ inputs, so
 *   r' = r + (⌈k'/s⌉ − 1)·S and P' = P + (k' − 1 − p)·S'. Upsampling by s: S' = S/s, r unchanged (nearest) or
 *   r + S (linear).
 * - Global pooling, flatten and dense see the whole feature map: r' = r + (n − 1)·S for a map of n units.
 * - Several inputs (add, mul, concat): the largest field wins; inputs whose effective stride or centre offset
 *   (−P + (r − 1)/2) differ are reported as misaligned, except size-1 maps broadcast over space (SE gates).
 *
 * `covers` says whether one unit's field spans the whole input on every axis.
 */
import { DiagnosticBag, type Diagnostic } from '../diagnostics.js';
import { effectiveKernel, type Graph, type GraphInput, type Node } from '../ir/graph.js';

export interface ReceptiveField {
  /** r₀ per spatial axis of the model input. */
  readonly size: number[];
  /** S₀: distance in input pixels between neighbouring units. */
  readonly stride: number[];
  /** P₀: how far the field of unit 0 starts before the input. */
  readonly padding: number[];
  /** Centre of unit 0's field: −P₀ + (r₀ − 1)/2. */
  readonly center: number[];
  /** True when every axis's field spans the whole input (false if the input size is symbolic). */
  readonly covers: boolean;
}

export interface ReceptiveFieldResult {
  /** Field of every tensor that depends on the reference input, by tensor name. */
  readonly fields: ReadonlyMap<string, ReceptiveField>;
  /** The model input the fields are relative to. */
  readonly input: GraphInput | undefined;
  readonly diagnostics: Diagnostic[];
}

interface Field {
  size: number[];
  stride: number[];
  padding: number[];
}

function finish(field: Field, inputSpatial: readonly (number | undefined)[]): ReceptiveField {
  const center = field.size.map((r, i) => -field.padding[i]! + (r - 1) / 2);
  const covers = inputSpatial.every((n, i) => n !== undefined && field.size[i]! >= n);
  return { size: field.size, stride: field.stride, padding: field.padding, center, covers };
}

/** Extends a field to the whole current feature map (global pooling, flatten, dense). */
function wholeMap(field: Field, spatial: readonly (number | undefined)[]): Field {
  return {
    size: field.size.map((r, i) => r + Math.max(0, (spatial[i] ?? 1) - 1) * field.stride[i]!),
    stride: field.stride.map(() => 0),
    padding: field.padding,
  };
}

function numeric(dims: readonly unknown[]): (number | undefined)[] {
  return dims.map((d) => (typeof d === 'number' ? d : undefined));
}

export function inferReceptiveFields(graph: Graph): ReceptiveFieldResult {
  const bag = new DiagnosticBag();
  const input = graph.inputs.find((i) => i.shape.length >= 3);
  const fields = new Map<string, Field>();
  const spatialOf = new Map<string, (number | undefined)[]>();
  if (!input) return { fields: new Map(), input: undefined, diagnostics: [] };
  const axes = input.shape.length - 2;
  const inputSpatial = numeric(input.shape.slice(2));
  fields.set(input.name, { size: new Array(axes).fill(1), stride: new Array(axes).fill(1), padding: new Array(axes).fill(0) });
  spatialOf.set(input.name, inputSpatial);

  for (const node of graph.nodes) {
    spatialOf.set(node.name, node.shape.length >= 3 ? numeric(node.shape.slice(2)) : []);
    const inputsWithField = node.inputs.filter((i) => fields.has(i));
    if (inputsWithField.length === 0) continue;
    const first = fields.get(inputsWithField[0]!)!;
    const firstSpatial = spatialOf.get(inputsWithField[0]!) ?? [];
    const result = propagate(node, first, firstSpatial, inputsWithField, fields, spatialOf, bag);
    if (result) fields.set(node.name, result);
  }

  const finished = new Map<string, ReceptiveField>();
  for (const [name, field] of fields) finished.set(name, finish(field, inputSpatial));
  return { fields: finished, input, diagnostics: bag.items };
}

function propagate(
  node: Node,
  field: Field,
  spatial: readonly (number | undefined)[],
  inputs: readonly string[],
  fields: ReadonlyMap<string, Field>,
  spatialOf: ReadonlyMap<string, (number | undefined)[]>,
  bag: DiagnosticBag,
): Field | undefined {
  // A tensor whose spatial axes are gone (after flatten) keeps its field; only window ops need matching axes.
  const windowed = (kernel: readonly number[], stride: readonly number[], dilation: readonly number[], begin: readonly number[]): Field => {
    if (kernel.length !== field.size.length) return field;
    return {
      size: field.size.map((r, i) => r + (effectiveKernel(kernel[i]!, dilation[i]!) - 1) * field.stride[i]!),
      stride: field.stride.map((S, i) => S * stride[i]!),
      padding: field.padding.map((P, i) => P + begin[i]! * field.stride[i]!),
    };
  };
  switch (node.op) {
    case 'conv': {
      // 'same-dynamic' pads are chosen at run time; the begin pad is at most ⌊(k' − 1)/2⌋.
      const begin = node.padding === 'same-dynamic' ? node.kernel.map((k, i) => Math.floor((effectiveKernel(k, node.dilation[i]!) - 1) / 2)) : node.padding.begin;
      return windowed(node.kernel, node.stride, node.dilation, begin);
    }
    case 'maxpool':
    case 'avgpool': {
      const ones = node.kernel.map(() => 1);
      const begin = node.padding === 'same-dynamic' ? node.kernel.map((k) => Math.floor((k - 1) / 2)) : node.padding.begin;
      return windowed(node.kernel, node.stride, ones, begin);
    }
    case 'pad':
      if (node.padding.begin.length !== field.size.length) return field;
      return { ...field, padding: field.padding.map((P, i) => P + node.padding.begin[i]! * field.stride[i]!) };
    case 'conv_transpose': {
      if (node.kernel.length !== field.size.length) return field;
      const fine = field.stride.map((S, i) => S / node.stride[i]!);
      return {
        size: field.size.map((r, i) => r + (Math.ceil(effectiveKernel(node.kernel[i]!, node.dilation[i]!) / node.stride[i]!) - 1) * field.stride[i]!),
        stride: fine,
        padding: field.padding.map((P, i) => P + (effectiveKernel(node.kernel[i]!, node.dilation[i]!) - 1 - node.padding.begin[i]!) * fine[i]!),
      };
    }
    case 'upsample': {
      if (node.scale.length !== field.size.length) return field;
      return {
        size: field.size.map((r, i) => (node.mode === 'linear' ? r + field.stride[i]! : r)),
        stride: field.stride.map((S, i) => S / node.scale[i]!),
        padding: field.padding,
      };
    }
    case 'global_avgpool':
    case 'global_maxpool':
    case 'flatten':
      return wholeMap(field, spatial);
    case 'dense':
    case 'reshape':
      return wholeMap(field, spatial);
    case 'add':
    case 'mul':
    case 'concat':
      return merge(node, inputs, fields, spatialOf, bag);
    case 'batchnorm':
    case 'activation':
    case 'dropout':
      return field;
  }
}

function merge(node: Node, inputs: readonly string[], fields: ReadonlyMap<string, Field>, spatialOf: ReadonlyMap<string, (number | undefined)[]>, bag: DiagnosticBag): Field {
  const candidates = inputs.map((name) => ({ name, field: fields.get(name)!, spatial: spatialOf.get(name) ?? [] }));
  let best = candidates[0]!;
  for (const candidate of candidates) if (candidate.field.size.reduce((a, b) => a + b, 0) > best.field.size.reduce((a, b) => a + b, 0)) best = candidate;
  // Maps broadcast over space (size 1 everywhere, e.g. an SE gate) carry a global field; alignment is moot.
  const spatialInputs = candidates.filter((c) => c.spatial.length > 0 && !c.spatial.every((d) => d === 1));
  const reference = spatialInputs[0];
  if (reference) {
    for (const other of spatialInputs.slice(1)) {
      const strideDiffers = other.field.stride.some((S, i) => S !== reference.field.stride[i]);
      const centreOf = (f: Field) => f.size.map((r, i) => -f.padding[i]! + (r - 1) / 2);
      const a = centreOf(reference.field);
      const b = centreOf(other.field);
      const centreDiffers = a.some((c, i) => Math.abs(c - b[i]!) > 1e-9);
      if (strideDiffers || centreDiffers) {
        const detail = strideDiffers
          ? `effective stride ${fmt(reference.field.stride)} (${reference.name}) vs ${fmt(other.field.stride)} (${other.name})`
          : `centre offset ${fmt(a)} (${reference.name}) vs ${fmt(b)} (${other.name})`;
        bag.add('misalignedPaths', node.span, [node.name, detail], 'the inputs sample the image on shifted grids; check strides and padding');
        break;
      }
    }
  }
  return best.field;
}

function fmt(values: readonly number[]): string {
  return `[${values.map((v) => Number(v.toFixed(3))).join(', ')}]`;
}

/**
 * The ops of the language: their argument signatures and how each call becomes IR attributes.
 *
 * A call's tensor-valued positional arguments are its inputs; the rest fill the signature in order, or by name.
 * In a chain (`x -> conv(64, 3)`) the incoming tensor is the first input. Per-axis arguments (kernel, stride,
 * dilation, pads) take one number for every spatial axis or a list with one entry per axis; the spatial rank
 * comes from the input, so `conv` serves 1D, 2D and 3D (`conv1d`/`conv2d`/`conv3d` also check the rank).
 *
 * Padding: `same` (TF rule, extra at the end), `valid`, `causal` (1D), a number (symmetric on every axis), a list
 * of numbers (symmetric per axis) or a list of [begin, end] pairs (asymmetric per axis).
 */
import type { Activation, OpAttributes, Padding, PadMode } from '../ir/graph.js';
import { resolvePadding, resolveTransposePadding } from '../ir/shapes.js';
import type { Dim } from '../ir/dims.js';
import { describeValue, type Value } from './values.js';

export type ArgType =
  | { readonly kind: 'int'; readonly min?: number }
  | { readonly kind: 'float'; readonly min?: number; readonly max?: number; readonly maxExclusive?: boolean }
  | { readonly kind: 'bool' }
  | { readonly kind: 'perAxis'; readonly min: number }
  | { readonly kind: 'padding' }
  | { readonly kind: 'enum'; readonly values: readonly string[] }
  | { readonly kind: 'dims' }
  | { readonly kind: 'string' };

export interface ArgSpec {
  readonly name: string;
  readonly type: ArgType;
  /** A default, or `undefined` for a required argument. A function computes it from the other arguments. */
  readonly default?: Value | ((args: ReadonlyMap<string, Value>) => Value);
}

export interface TensorInfo {
  readonly name: string;
  readonly shape: readonly Dim[];
}

/** One IR node an op call produces; `suffix` names sub-nodes of a multi-node op (`sepconv1.depthwise`). */
export interface NodeRequest {
  readonly suffix?: string;
  readonly attributes: OpAttributes;
  /** Inputs: tensor names, or the index of an earlier request of the same call whose output feeds in. */
  readonly inputs: ReadonlyArray<string | { readonly request: number }>;
}

export type BuildResult = { ok: true; nodes: NodeRequest[] } | { ok: false; argument?: string; message: string; kind?: 'rank' | 'channels' };

export interface OpSpec {
  readonly name: string;
  /** How many tensor inputs: exact count, or at least `min`. */
  readonly inputs: { readonly min: number; readonly max: number };
  readonly args: readonly ArgSpec[];
  readonly summary: string;
  build(args: ReadonlyMap<string, Value>, inputs: readonly TensorInfo[]): BuildResult;
}

const int = (min?: number): ArgType => (min === undefined ? { kind: 'int' } : { kind: 'int', min });
const float = (min?: number, max?: number, maxExclusive?: boolean): ArgType => ({ kind: 'float', min, max, maxExclusive });
const perAxis = (min: number): ArgType => ({ kind: 'perAxis', min });
const BOOL: ArgType = { kind: 'bool' };
const PADDING: ArgType = { kind: 'padding' };
const n = (value: number): Value => ({ kind: 'number', value, integer: Number.isInteger(value) });
const b = (value: boolean): Value => ({ kind: 'bool', value });
const s = (value: string): Value => ({ kind: 'string', value });

// ---------------------------------------------------------------------------------------------------------------
// Argument access after type checking (the elaborator has already validated types against the spec).

function numberArg(args: ReadonlyMap<string, Value>, name: string): number {
  const value = args.get(name);
  if (value?.kind === 'number') return value.value;
  throw new Error(`internal: argument ${name} is ${value ? describeValue(value) : 'missing'}`);
}

function boolArg(args: ReadonlyMap<string, Value>, name: string): boolean {
  const value = args.get(name);
  if (value?.kind === 'bool') return value.value;
  throw new Error(`internal: argument ${name} is not a bool`);
}

function stringArg(args: ReadonlyMap<string, Value>, name: string): string {
  const value = args.get(name);
  if (value?.kind === 'string') return value.value;
  throw new Error(`internal: argument ${name} is not a string`);
}

/** Expands a per-axis argument to `rank` entries, or reports a length mismatch. */
function axes(args: ReadonlyMap<string, Value>, name: string, rank: number): number[] | string {
  const value = args.get(name)!;
  if (value.kind === 'number') return new Array(rank).fill(value.value);
  if (value.kind === 'list') {
    if (value.items.length !== rank) return `has ${value.items.length} entries but the input has ${rank} spatial axes`;
    return value.items.map((item) => (item as { value: number }).value);
  }
  throw new Error(`internal: argument ${name} is ${describeValue(value)}`);
}

type PaddingRequest = { mode: PadMode; explicit?: Padding };

function paddingArg(args: ReadonlyMap<string, Value>, rank: number): PaddingRequest | string {
  const value = args.get('pad')!;
  if (value.kind === 'string') {
    if (value.value === 'causal' && rank !== 1) return `cannot be causal on a ${rank}D input: causal padding is for 1D convolutions`;
    return { mode: value.value as PadMode };
  }
  if (value.kind === 'number') {
    const p = value.value;
    return { mode: 'explicit', explicit: { begin: new Array(rank).fill(p), end: new Array(rank).fill(p) } };
  }
  if (value.kind === 'list') {
    if (value.items.length !== rank) return `has ${value.items.length} entries but the input has ${rank} spatial axes`;
    const begin: number[] = [];
    const end: number[] = [];
    for (const item of value.items) {
      if (item.kind === 'number') {
        begin.push(item.value);
        end.push(item.value);
      } else if (item.kind === 'list' && item.items.length === 2) {
        begin.push((item.items[0] as { value: number }).value);
        end.push((item.items[1] as { value: number }).value);
      } else return 'must be same, valid, causal, a number, a list of numbers or a list of [begin, end] pairs';
    }
    return { mode: 'explicit', explicit: { begin, end } };
  }
  return 'must be same, valid, causal, a number, a list of numbers or a list of [begin, end] pairs';
}

function spatialRankOf(input: TensorInfo): number {
  return input.shape.length - 2;
}

function channelsOf(input: TensorInfo): number | undefined {
  const c = input.shape[1];
  return typeof c === 'number' ? c : undefined;
}

const CONV_RANK_REQUIREMENT = 'a feature map [N, C, …spatial] with 1 to 3 spatial axes';

interface WindowArgs {
  rank: number;
  kernel: number[];
  stride: number[];
  dilation: number[];
  padding: Padding | 'same-dynamic';
  padMode: PadMode;
}

/** Common reading of kernel/stride/dilation/pad for windowed ops. */
function windowArgs(args: ReadonlyMap<string, Value>, input: TensorInfo, fixedRank?: number): WindowArgs | { argument?: string; message: string; kind?: 'rank' } {
  const rank = spatialRankOf(input);
  if (rank < 1 || rank > 3 || (fixedRank !== undefined && rank !== fixedRank)) {
    const wanted = fixedRank === undefined ? CONV_RANK_REQUIREMENT : `a ${fixedRank}D feature map`;
    return { message: `expects ${wanted}, found rank ${input.shape.length}`, kind: 'rank' };
  }
  const kernel = axes(args, 'kernel', rank);
  if (typeof kernel === 'string') return { argument: 'kernel', message: kernel };
  const stride = axes(args, 'stride', rank);
  if (typeof stride === 'string') return { argument: 'stride', message: stride };
  const dilation = args.has('dilation') ? axes(args, 'dilation', rank) : new Array<number>(rank).fill(1);
  if (typeof dilation === 'string') return { argument: 'dilation', message: dilation };
  const pad = paddingArg(args, rank);
  if (typeof pad === 'string') return { argument: 'pad', message: pad };
  const padding = resolvePadding(pad.mode, pad.explicit, input.shape.slice(2), kernel, stride, dilation);
  return { rank, kernel, stride, dilation, padding, padMode: pad.mode };
}

function isProblem<T extends object>(value: T | { message: string }): value is { message: string; argument?: string; kind?: 'rank' } {
  return 'message' in value;
}

function requireChannels(input: TensorInfo): number | BuildResult {
  const channels = channelsOf(input);
  if (channels === undefined) return { ok: false, message: `needs a known channel count, found ${String(input.shape[1])}` };
  return channels;
}

// ---------------------------------------------------------------------------------------------------------------
// Convolutions

const convArgs: ArgSpec[] = [
  { name: 'filters', type: int(1) },
  { name: 'kernel', type: perAxis(1) },
  { name: 'stride', type: perAxis(1), default: n(1) },
  { name: 'pad', type: PADDING, default: s('valid') },
  { name: 'dilation', type: perAxis(1), default: n(1) },
  { name: 'groups', type: int(1), default: n(1) },
  { name: 'bias', type: BOOL, default: b(true) },
];

function convSpec(name: string, fixedRank?: number): OpSpec {
  return {
    name,
    inputs: { min: 1, max: 1 },
    args: convArgs,
    summary: fixedRank ? `${fixedRank}D convolution` : 'convolution over 1, 2 or 3 spatial axes (rank from the input)',
    build(args, inputs) {
      const input = inputs[0]!;
      const window = windowArgs(args, input, fixedRank);
      if (isProblem(window)) return { ok: false, ...window };
      const inChannels = requireChannels(input);
      if (typeof inChannels !== 'number') return inChannels;
      return {
        ok: true,
        nodes: [
          {
            attributes: {
              op: 'conv',
              inChannels,
              filters: numberArg(args, 'filters'),
              kernel: window.kernel,
              stride: window.stride,
              dilation: window.dilation,
              groups: numberArg(args, 'groups'),
              padding: window.padding,
              padMode: window.padMode,
              bias: boolArg(args, 'bias'),
            },
            inputs: [input.name],
          },
        ],
      };
    },
  };
}

const depthwiseArgs: ArgSpec[] = [
  { name: 'kernel', type: perAxis(1) },
  { name: 'stride', type: perAxis(1), default: n(1) },
  { name: 'pad', type: PADDING, default: s('valid') },
  { name: 'dilation', type: perAxis(1), default: n(1) },
  { name: 'multiplier', type: int(1), default: n(1) },
  { name: 'bias', type: BOOL, default: b(true) },
];

function depthwiseAttributes(args: ReadonlyMap<string, Value>, input: TensorInfo, bias: boolean): OpAttributes | { ok: false; argument?: string; message: string; kind?: 'rank' } {
  const window = windowArgs(args, input);
  if (isProblem(window)) return { ok: false, ...window };
  const channels = channelsOf(input);
  if (channels === undefined) return { ok: false, message: `needs a known channel count, found ${String(input.shape[1])}` };
  return {
    op: 'conv',
    inChannels: channels,
    filters: channels * numberArg(args, 'multiplier'),
    kernel: window.kernel,
    stride: window.stride,
    dilation: window.dilation,
    groups: channels,
    padding: window.padding,
    padMode: window.padMode,
    bias,
  };
}

const dwconv: OpSpec = {
  name: 'dwconv',
  inputs: { min: 1, max: 1 },
  args: depthwiseArgs,
  summary: 'depthwise convolution (groups = channels, optional channel multiplier)',
  build(args, inputs) {
    const attributes = depthwiseAttributes(args, inputs[0]!, boolArg(args, 'bias'));
    if ('ok' in attributes) return attributes;
    return { ok: true, nodes: [{ attributes, inputs: [inputs[0]!.name] }] };
  },
};

const sepconv: OpSpec = {
  name: 'sepconv',
  inputs: { min: 1, max: 1 },
  args: [{ name: 'filters', type: int(1) }, ...depthwiseArgs],
  summary: 'depthwise-separable convolution: a depthwise conv (no bias) then a 1×1 pointwise conv',
  build(args, inputs) {
    const input = inputs[0]!;
    const depthwise = depthwiseAttributes(args, input, false);
    if ('ok' in depthwise) return depthwise;
    if (depthwise.op !== 'conv') throw new Error('internal: depthwise is a conv');
    const rank = depthwise.kernel.length;
    const ones = new Array<number>(rank).fill(1);
    const zeros = new Array<number>(rank).fill(0);
    return {
      ok: true,
      nodes: [
        { suffix: 'depthwise', attributes: depthwise, inputs: [input.name] },
        {
          suffix: 'pointwise',
          attributes: {
            op: 'conv',
            inChannels: depthwise.filters,
            filters: numberArg(args, 'filters'),
            kernel: ones,
            stride: ones,
            dilation: ones,
            groups: 1,
            padding: { begin: zeros, end: zeros },
            padMode: 'valid',
            bias: boolArg(args, 'bias'),
          },
          inputs: [{ request: 0 }],
        },
      ],
    };
  },
};

const deconv: OpSpec = {
  name: 'deconv',
  inputs: { min: 1, max: 1 },
  args: [...convArgs.slice(0, 5), { name: 'output_padding', type: perAxis(0), default: n(0) }, ...convArgs.slice(5)],
  summary: 'transposed convolution (ONNX ConvTranspose)',
  build(args, inputs) {
    const input = inputs[0]!;
    const rank = spatialRankOf(input);
    if (rank < 1 || rank > 3) return { ok: false, message: `expects ${CONV_RANK_REQUIREMENT}, found rank ${input.shape.length}`, kind: 'rank' };
    const kernel = axes(args, 'kernel', rank);
    const stride = axes(args, 'stride', rank);
    const dilation = axes(args, 'dilation', rank);
    const outputPadding = axes(args, 'output_padding', rank);
    for (const [argument, value] of [['kernel', kernel], ['stride', stride], ['dilation', dilation], ['output_padding', outputPadding]] as const) {
      if (typeof value === 'string') return { ok: false, argument, message: value };
    }
    const [k, st, dl, op] = [kernel, stride, dilation, outputPadding] as number[][];
    const pad = paddingArg(args, rank);
    if (typeof pad === 'string') return { ok: false, argument: 'pad', message: pad };
    let padding: Padding;
    let extra = op!;
    if (pad.mode === 'same') {
      const resolved = resolveTransposePadding(k!, st!, dl!);
      padding = resolved.padding;
      extra = resolved.outputPadding.map((v, i) => v + op![i]!);
    } else if (pad.mode === 'causal') {
      return { ok: false, argument: 'pad', message: 'cannot be causal: causal padding is for 1D convolutions, not transposed ones' };
    } else {
      padding = pad.explicit ?? { begin: new Array(rank).fill(0), end: new Array(rank).fill(0) };
    }
    for (let i = 0; i < rank; i++) {
      if (extra[i]! >= Math.max(st![i]!, dl![i]!)) return { ok: false, argument: 'output_padding', message: 'must be smaller than the stride or the dilation' };
    }
    const inChannels = requireChannels(input);
    if (typeof inChannels !== 'number') return inChannels;
    return {
      ok: true,
      nodes: [
        {
          attributes: {
            op: 'conv_transpose',
            inChannels,
            filters: numberArg(args, 'filters'),
            kernel: k!,
            stride: st!,
            dilation: dl!,
            groups: numberArg(args, 'groups'),
            padding,
            outputPadding: extra,
            padMode: pad.mode,
            bias: boolArg(args, 'bias'),
          },
          inputs: [input.name],
        },
      ],
    };
  },
};

// ---------------------------------------------------------------------------------------------------------------
// Pooling

function poolSpec(op: 'maxpool' | 'avgpool'): OpSpec {
  const args: ArgSpec[] = [
    { name: 'kernel', type: perAxis(1) },
    { name: 'stride', type: perAxis(1), default: (a) => a.get('kernel')! },
    { name: 'pad', type: PADDING, default: s('valid') },
    { name: 'ceil', type: BOOL, default: b(false) },
  ];
  if (op === 'avgpool') args.push({ name: 'count_include_pad', type: BOOL, default: b(false) });
  return {
    name: op,
    inputs: { min: 1, max: 1 },
    args,
    summary: op === 'maxpool' ? 'max pooling (floor or ceil mode)' : 'average pooling (floor or ceil mode, count_include_pad)',
    build(values, inputs) {
      const input = inputs[0]!;
      const window = windowArgs(values, input);
      if (isProblem(window)) return { ok: false, ...window };
      if (window.padMode === 'causal') return { ok: false, argument: 'pad', message: 'cannot be causal: causal padding is for 1D convolutions, not pooling' };
      // In ceil mode the last window is dropped when it would start in the end padding; whether that happens
      // depends on the size modulo the stride, which a symbolic size does not tell (it cannot when end + stride ≤ kernel).
      if (boolArg(values, 'ceil') && window.padding !== 'same-dynamic') {
        const padding = window.padding;
        const unsure = window.kernel.some((k, i) => typeof input.shape[2 + i] !== 'number' && padding.end[i]! + window.stride[i]! > k);
        if (unsure) return { ok: false, argument: 'ceil', message: 'cannot be true on a symbolic size when end padding + stride exceeds the kernel: the output size would depend on the size modulo the stride; give the input size or use floor mode' };
      }
      if (window.padding !== 'same-dynamic') {
        for (let i = 0; i < window.rank; i++) {
          if (window.padding.begin[i]! >= window.kernel[i]! || window.padding.end[i]! >= window.kernel[i]!)
            return { ok: false, argument: 'pad', message: `must be smaller than the kernel (${window.kernel[i]}) on every axis` };
        }
      }
      return {
        ok: true,
        nodes: [
          {
            attributes: {
              op,
              kernel: window.kernel,
              stride: window.stride,
              padding: window.padding,
              padMode: window.padMode,
              ceilMode: boolArg(values, 'ceil'),
              countIncludePad: op === 'avgpool' ? boolArg(values, 'count_include_pad') : false,
            },
            inputs: [input.name],
          },
        ],
      };
    },
  };
}

function simple(name: string, summary: string, attributes: OpAttributes, args: ArgSpec[] = [], make?: (args: ReadonlyMap<string, Value>, input: TensorInfo) => OpAttributes | BuildResult): OpSpec {
  return {
    name,
    inputs: { min: 1, max: 1 },
    args,
    summary,
    build(values, inputs) {
      const built = make ? make(values, inputs[0]!) : attributes;
      if ('ok' in built) return built;
      return { ok: true, nodes: [{ attributes: built, inputs: [inputs[0]!.name] }] };
    },
  };
}

function activation(name: string, summary: string, fn: Activation, args: ArgSpec[] = [], make?: (args: ReadonlyMap<string, Value>) => Activation): OpSpec {
  return simple(name, summary, { op: 'activation', fn }, args, make ? (values) => ({ op: 'activation', fn: make(values) }) : undefined);
}

export const ACTIVATION_NAMES = ['relu', 'relu6', 'leaky_relu', 'elu', 'sigmoid', 'hard_sigmoid', 'tanh', 'swish', 'silu', 'hard_swish', 'gelu', 'softmax'] as const;

function activationByName(name: string, args: ReadonlyMap<string, Value>): Activation | undefined {
  switch (name) {
    case 'relu':
    case 'relu6':
    case 'sigmoid':
    case 'tanh':
    case 'swish':
    case 'hard_swish':
    case 'gelu':
      return { kind: name };
    case 'silu':
      return { kind: 'swish' };
    case 'leaky_relu':
      return { kind: 'leaky_relu', alpha: args.get('alpha')?.kind === 'number' ? numberArg(args, 'alpha') : 0.01 };
    case 'elu':
      return { kind: 'elu', alpha: args.get('alpha')?.kind === 'number' ? numberArg(args, 'alpha') : 1 };
    case 'hard_sigmoid':
      return { kind: 'hard_sigmoid', alpha: 0.2, beta: 0.5 };
    case 'softmax':
      return { kind: 'softmax', axis: -1 };
    default:
      return undefined;
  }
}

function elementwise(op: 'add' | 'mul', summary: string): OpSpec {
  return {
    name: op,
    inputs: { min: 2, max: Infinity },
    args: [],
    summary,
    build(_args, inputs) {
      return { ok: true, nodes: [{ attributes: { op }, inputs: inputs.map((i) => i.name) }] };
    },
  };
}

const specs: OpSpec[] = [
  convSpec('conv'),
  convSpec('conv1d', 1),
  convSpec('conv2d', 2),
  convSpec('conv3d', 3),
  dwconv,
  sepconv,
  deconv,
  poolSpec('maxpool'),
  poolSpec('avgpool'),
  simple('globalavgpool', 'global average pooling (keeps spatial axes of size 1)', { op: 'global_avgpool' }),
  simple('globalmaxpool', 'global max pooling (keeps spatial axes of size 1)', { op: 'global_maxpool' }),
  simple(
    'bn',
    'batch normalisation over channels (momentum weights the running statistics, as in Keras and ONNX)',
    { op: 'batchnorm', channels: 0, epsilon: 1e-5, momentum: 0.9 },
    [
      { name: 'momentum', type: float(0, 1), default: n(0.9) },
      { name: 'eps', type: float(0), default: n(1e-5) },
    ],
    (args, input) => {
      const channels = requireChannels(input);
      if (typeof channels !== 'number') return channels;
      if (input.shape.length < 2) return { ok: false, message: `expects at least [N, C], found rank ${input.shape.length}`, kind: 'rank' };
      return { op: 'batchnorm', channels, momentum: numberArg(args, 'momentum'), epsilon: numberArg(args, 'eps') };
    },
  ),
  simple('dropout', 'dropout (training only)', { op: 'dropout', rate: 0.5, spatial: false }, [{ name: 'rate', type: float(0, 1, true) }], (args) => ({
    op: 'dropout',
    rate: numberArg(args, 'rate'),
    spatial: false,
  })),
  simple('spatial_dropout', 'spatial dropout: drops whole channels (training only)', { op: 'dropout', rate: 0.5, spatial: true }, [{ name: 'rate', type: float(0, 1, true) }], (args) => ({
    op: 'dropout',
    rate: numberArg(args, 'rate'),
    spatial: true,
  })),
  activation('relu', 'max(x, 0)', { kind: 'relu' }),
  activation('relu6', 'min(max(x, 0), 6)', { kind: 'relu6' }),
  activation('leaky_relu', 'x if x > 0 else alpha·x', { kind: 'leaky_relu', alpha: 0.01 }, [{ name: 'alpha', type: float(0), default: n(0.01) }], (a) => ({ kind: 'leaky_relu', alpha: numberArg(a, 'alpha') })),
  activation('elu', 'x if x > 0 else alpha·(eˣ − 1)', { kind: 'elu', alpha: 1 }, [{ name: 'alpha', type: float(0), default: n(1) }], (a) => ({ kind: 'elu', alpha: numberArg(a, 'alpha') })),
  activation('sigmoid', '1/(1 + e⁻ˣ)', { kind: 'sigmoid' }),
  activation(
    'hard_sigmoid',
    'max(0, min(1, alpha·x + beta)) (ONNX HardSigmoid)',
    { kind: 'hard_sigmoid', alpha: 0.2, beta: 0.5 },
    [
      { name: 'alpha', type: float(), default: n(0.2) },
      { name: 'beta', type: float(), default: n(0.5) },
    ],
    (a) => ({ kind: 'hard_sigmoid', alpha: numberArg(a, 'alpha'), beta: numberArg(a, 'beta') }),
  ),
  activation('tanh', 'hyperbolic tangent', { kind: 'tanh' }),
  activation('swish', 'x·sigmoid(x)', { kind: 'swish' }),
  activation('silu', 'x·sigmoid(x) (same as swish)', { kind: 'swish' }),
  activation('hard_swish', 'x·relu6(x + 3)/6', { kind: 'hard_swish' }),
  activation('gelu', 'x·Φ(x) (exact, erf form)', { kind: 'gelu' }),
  activation('softmax', 'softmax along an axis (default: last)', { kind: 'softmax', axis: -1 }, [{ name: 'axis', type: int(), default: n(-1) }], (a) => ({
    kind: 'softmax',
    axis: numberArg(a, 'axis'),
  })),
  {
    name: 'activation',
    inputs: { min: 1, max: 1 },
    args: [
      { name: 'name', type: { kind: 'enum', values: ACTIVATION_NAMES } },
      { name: 'alpha', type: float(), default: n(Number.NaN) },
    ],
    summary: 'an activation chosen by name (for blocks that take the activation as a parameter)',
    build(args, inputs) {
      const fn = activationByName(stringArg(args, 'name'), new Map([...args].filter(([, v]) => !(v.kind === 'number' && Number.isNaN(v.value)))));
      if (!fn) return { ok: false, argument: 'name', message: 'is not an activation' };
      return { ok: true, nodes: [{ attributes: { op: 'activation', fn }, inputs: [inputs[0]!.name] }] };
    },
  },
  elementwise('add', 'element-wise sum with broadcasting (residual connections)'),
  elementwise('mul', 'element-wise product with broadcasting (squeeze-and-excitation gates)'),
  {
    name: 'concat',
    inputs: { min: 1, max: Infinity },
    args: [{ name: 'axis', type: int(), default: n(1) }],
    summary: 'concatenation along an axis (default: channels)',
    build(args, inputs) {
      return { ok: true, nodes: [{ attributes: { op: 'concat', axis: numberArg(args, 'axis') }, inputs: inputs.map((i) => i.name) }] };
    },
  },
  simple(
    'upsample',
    'upsampling by an integer factor per spatial axis (nearest or linear)',
    { op: 'upsample', scale: [2, 2], mode: 'nearest' },
    [
      { name: 'scale', type: perAxis(1), default: n(2) },
      { name: 'mode', type: { kind: 'enum', values: ['nearest', 'linear'] }, default: s('nearest') },
    ],
    (args, input) => {
      const rank = spatialRankOf(input);
      if (rank < 1 || rank > 3) return { ok: false, message: `expects ${CONV_RANK_REQUIREMENT}, found rank ${input.shape.length}`, kind: 'rank' };
      const scale = axes(args, 'scale', rank);
      if (typeof scale === 'string') return { ok: false, argument: 'scale', message: scale };
      return { op: 'upsample', scale, mode: stringArg(args, 'mode') as 'nearest' | 'linear' };
    },
  ),
  simple('flatten', 'flattens all axes after the batch axis', { op: 'flatten' }),
  simple('reshape', 'reshapes the axes after the batch axis (one entry may be -1)', { op: 'reshape', target: [] }, [{ name: 'shape', type: { kind: 'dims' } }], (args) => {
    const value = args.get('shape')!;
    const dims = value.kind === 'list' ? value.items.map((i) => (i.kind === 'number' ? i.value : i.kind === 'dim' ? i.dim : Number.NaN)) : [];
    return { op: 'reshape', target: dims };
  }),
  simple('dense', 'fully connected layer on [N, features]', { op: 'dense', inFeatures: 0, units: 1, bias: true }, [
    { name: 'units', type: int(1) },
    { name: 'bias', type: BOOL, default: b(true) },
  ], (args, input) => {
    if (input.shape.length !== 2) return { ok: false, message: `expects a flat input [N, features], found rank ${input.shape.length} (add flatten before dense)`, kind: 'rank' };
    const features = input.shape[1];
    if (typeof features !== 'number') return { ok: false, message: `needs a known feature count, found ${String(features)}` };
    return { op: 'dense', inFeatures: features, units: numberArg(args, 'units'), bias: boolArg(args, 'bias') };
  }),
  simple(
    'pad',
    'explicit padding of the spatial axes (constant, reflect or edge)',
    { op: 'pad', padding: { begin: [], end: [] }, mode: 'constant', value: 0 },
    [
      { name: 'pad', type: PADDING },
      { name: 'mode', type: { kind: 'enum', values: ['constant', 'reflect', 'edge'] }, default: s('constant') },
      { name: 'value', type: float(), default: n(0) },
    ],
    (args, input) => {
      const rank = spatialRankOf(input);
      if (rank < 1 || rank > 3) return { ok: false, message: `expects ${CONV_RANK_REQUIREMENT}, found rank ${input.shape.length}`, kind: 'rank' };
      const pad = paddingArg(args, rank);
      if (typeof pad === 'string') return { ok: false, argument: 'pad', message: pad };
      if (pad.mode !== 'explicit') return { ok: false, argument: 'pad', message: 'must give explicit amounts for the pad op' };
      return { op: 'pad', padding: pad.explicit!, mode: stringArg(args, 'mode') as 'constant' | 'reflect' | 'edge', value: numberArg(args, 'value') };
    },
  ),
];

export const OPS: ReadonlyMap<string, OpSpec> = new Map([
  ...specs.map((spec) => [spec.name, spec] as const),
  // accepted spellings of the same ops
  ['conv_transpose', deconv],
  ['global_avgpool', specs.find((o) => o.name === 'globalavgpool')!],
  ['global_maxpool', specs.find((o) => o.name === 'globalmaxpool')!],
  ['batchnorm', specs.find((o) => o.name === 'bn')!],
  ['separable_conv', sepconv],
  ['depthwise_conv', dwconv],
]);

/** Kinds a regularize/freeze target may name instead of a layer: `regularize l2(1e-4) on conv, dense`. */
export const OP_KIND_TARGETS: ReadonlyMap<string, (attributes: OpAttributes) => boolean> = new Map([
  ['conv', (a: OpAttributes) => a.op === 'conv' || a.op === 'conv_transpose'],
  ['dwconv', (a: OpAttributes) => a.op === 'conv' && a.groups === a.inChannels && a.groups > 1],
  ['deconv', (a: OpAttributes) => a.op === 'conv_transpose'],
  ['dense', (a: OpAttributes) => a.op === 'dense'],
  ['bn', (a: OpAttributes) => a.op === 'batchnorm'],
  ['batchnorm', (a: OpAttributes) => a.op === 'batchnorm'],
]);

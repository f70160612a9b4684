/**
 * Random small specs for property tests: fast-check draws a list of layer choices, and a builder turns them into
 * spec text, tracking channels and spatial sizes so every layer fits (a choice that would not fit is skipped or
 * replaced by a 1×1 conv). Shapes stay tiny (≤ 6 channels, ≤ 12 pixels per axis) so the float64 reference is fast.
 */
import fc from 'fast-check';

type Pad = { readonly kind: 'same' } | { readonly kind: 'valid' } | { readonly kind: 'explicit'; readonly begin: number; readonly end: number };

export type Layer =
  | { kind: 'conv'; filters: number; kernel: number; stride: number; pad: Pad; dilation: number; groups: number; bias: boolean }
  | { kind: 'dwconv'; kernel: number; multiplier: number; pad: Pad; bias: boolean }
  | { kind: 'deconv'; filters: number; kernel: number; stride: number; pad: number; groups: number; bias: boolean }
  | { kind: 'bn'; epsilon: number }
  | { kind: 'bn_pointwise'; filters: number; bias: boolean }
  | { kind: 'activation'; name: string }
  | { kind: 'dropout'; spatial: boolean; rate: number }
  | { kind: 'pool'; max: boolean; kernel: number; stride: number; pad: number; ceil: boolean; countIncludePad: boolean }
  | { kind: 'pad'; begin: number; end: number; mode: 'constant' | 'reflect' | 'edge'; value: number; then: 'conv' | 'maxpool' | 'avgpool' | 'none' }
  | { kind: 'residual'; mul: boolean }
  | { kind: 'concat'; filters: number }
  | { kind: 'gate' }
  | { kind: 'upsample' }
  | { kind: 'dead'; filters: number };

export type Head = 'gap_dense' | 'gap_dense_bn' | 'flatten_dense' | 'map' | 'two';

export interface SpecChoice {
  readonly rank: 1 | 2;
  readonly channels: number;
  readonly size: number;
  readonly layers: readonly Layer[];
  readonly head: Head;
}

const padArbitrary: fc.Arbitrary<Pad> = fc.oneof(
  fc.constant<Pad>({ kind: 'same' }),
  fc.constant<Pad>({ kind: 'valid' }),
  fc.record({ kind: fc.constant('explicit' as const), begin: fc.integer({ min: 0, max: 2 }), end: fc.integer({ min: 0, max: 2 }) }),
);

const ACTIVATIONS = ['relu', 'relu6', 'leaky_relu', 'sigmoid', 'tanh', 'elu', 'swish', 'hard_swish', 'hard_sigmoid', 'gelu'];

export const layerArbitrary: fc.Arbitrary<Layer> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('conv' as const), filters: fc.integer({ min: 1, max: 6 }), kernel: fc.integer({ min: 1, max: 3 }), stride: fc.integer({ min: 1, max: 2 }), pad: padArbitrary, dilation: fc.integer({ min: 1, max: 2 }), groups: fc.integer({ min: 1, max: 3 }), bias: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('dwconv' as const), kernel: fc.integer({ min: 1, max: 3 }), multiplier: fc.integer({ min: 1, max: 2 }), pad: padArbitrary, bias: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('deconv' as const), filters: fc.integer({ min: 1, max: 4 }), kernel: fc.integer({ min: 1, max: 3 }), stride: fc.integer({ min: 1, max: 2 }), pad: fc.integer({ min: 0, max: 1 }), groups: fc.integer({ min: 1, max: 2 }), bias: fc.boolean() }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('bn' as const), epsilon: fc.constantFrom(1e-5, 1e-3, 0.1) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('bn_pointwise' as const), filters: fc.integer({ min: 1, max: 6 }), bias: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('activation' as const), name: fc.constantFrom(...ACTIVATIONS) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('dropout' as const), spatial: fc.boolean(), rate: fc.constantFrom(0.1, 0.5) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('pool' as const), max: fc.boolean(), kernel: fc.integer({ min: 2, max: 3 }), stride: fc.integer({ min: 1, max: 2 }), pad: fc.integer({ min: 0, max: 1 }), ceil: fc.boolean(), countIncludePad: fc.boolean() }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('pad' as const),
      begin: fc.integer({ min: 0, max: 2 }),
      end: fc.integer({ min: 0, max: 2 }),
      mode: fc.constantFrom('constant' as const, 'constant' as const, 'reflect' as const, 'edge' as const),
      value: fc.constantFrom(0, 0, -1e30, 0.5),
      then: fc.constantFrom('conv' as const, 'maxpool' as const, 'avgpool' as const, 'none' as const),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('residual' as const), mul: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('concat' as const), filters: fc.integer({ min: 1, max: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('gate' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('upsample' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('dead' as const), filters: fc.integer({ min: 1, max: 3 }) }) },
);

export const specChoiceArbitrary: fc.Arbitrary<SpecChoice> = fc.record({
  rank: fc.constantFrom(1 as const, 2 as const, 2 as const),
  channels: fc.integer({ min: 1, max: 4 }),
  size: fc.integer({ min: 4, max: 8 }),
  layers: fc.array(layerArbitrary, { minLength: 1, maxLength: 7 }),
  head: fc.constantFrom<Head>('gap_dense', 'gap_dense_bn', 'flatten_dense', 'map', 'two'),
});

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

function divisorsOf(n: number): number[] {
  return [...Array(n).keys()].map((i) => i + 1).filter((d) => n % d === 0);
}

function windowOut(n: number, extent: number, stride: number, begin: number, end: number, ceil = false): number {
  const span = n + begin + end - extent;
  if (span < 0) return 0;
  let out = (ceil ? Math.ceil(span / stride) : Math.floor(span / stride)) + 1;
  if (ceil && (out - 1) * stride >= n + begin) out -= 1;
  return out;
}

const MAX_SIZE = 12;
const MAX_CHANNELS = 6;

export interface BuildOptions {
  /**
   * Only layers that map a zero channel to a zero channel (no biases, no batch norm, activations with f(0) = 0,
   * pads of 0): then removing a channel equals zeroing the filters that produce it, which pruning tests use.
   */
  readonly plain?: boolean;
}

const PLAIN_ACTIVATIONS = new Set(['relu', 'relu6', 'leaky_relu', 'tanh', 'elu', 'swish', 'hard_swish', 'gelu']);

/** Spec text for a choice. */
export function buildSpec(choice: SpecChoice, options: BuildOptions = {}): string {
  const plain = options.plain === true;
  const bias = (wanted: boolean) => wanted && !plain;
  const bn = plain ? '' : ' -> bn';
  const lines: string[] = [];
  let counter = 0;
  const fresh = () => `t${++counter}`;
  let current = 'image';
  let channels = choice.channels;
  let size = choice.size;
  const rank = choice.rank;
  const padText = (begin: number, end: number) => `[${new Array(rank).fill(`[${begin}, ${end}]`).join(', ')}]`;
  const emit = (expression: string, newChannels = channels, newSize = size) => {
    const name = fresh();
    lines.push(`  ${name} = ${expression}`);
    current = name;
    channels = newChannels;
    size = newSize;
  };

  const convOut = (pad: Pad, kernel: number, stride: number, dilation: number) => {
    const extent = dilation * (kernel - 1) + 1;
    if (pad.kind === 'same') return Math.ceil(size / stride);
    if (pad.kind === 'valid') return windowOut(size, extent, stride, 0, 0);
    return windowOut(size, extent, stride, pad.begin, pad.end);
  };
  const padArg = (pad: Pad) => (pad.kind === 'explicit' ? padText(pad.begin, pad.end) : pad.kind);

  for (const layer of choice.layers) {
    switch (layer.kind) {
      case 'conv': {
        const out = convOut(layer.pad, layer.kernel, layer.stride, layer.dilation);
        const common = divisorsOf(gcd(channels, layer.filters));
        const groups = common[Math.min(layer.groups, common.length) - 1]!;
        if (out < 1) emit(`${current} -> conv(${layer.filters}, 1, bias: ${bias(layer.bias)})`, layer.filters);
        else emit(`${current} -> conv(${layer.filters}, ${layer.kernel}, stride: ${layer.stride}, pad: ${padArg(layer.pad)}, dilation: ${layer.dilation}, groups: ${groups}, bias: ${bias(layer.bias)})`, layer.filters, out);
        break;
      }
      case 'dwconv': {
        const out = convOut(layer.pad, layer.kernel, 1, 1);
        const filters = channels * layer.multiplier;
        if (out < 1 || filters > MAX_CHANNELS) break;
        emit(`${current} -> dwconv(${layer.kernel}, multiplier: ${layer.multiplier}, pad: ${padArg(layer.pad)}, bias: ${bias(layer.bias)})`, filters, out);
        break;
      }
      case 'deconv': {
        const out = (size - 1) * layer.stride - 2 * layer.pad + layer.kernel;
        const common = divisorsOf(gcd(channels, layer.filters));
        const groups = common[Math.min(layer.groups, common.length) - 1]!;
        if (out < 1 || out > MAX_SIZE) break;
        emit(`${current} -> deconv(${layer.filters}, ${layer.kernel}, stride: ${layer.stride}, pad: ${layer.pad}, groups: ${groups}, bias: ${bias(layer.bias)})`, layer.filters, out);
        break;
      }
      case 'bn':
        if (!plain) emit(`${current} -> bn(eps: ${layer.epsilon})`);
        break;
      case 'bn_pointwise':
        emit(`${current}${bn} -> conv(${layer.filters}, 1, bias: ${bias(layer.bias)})`, layer.filters);
        break;
      case 'activation':
        if (!plain || PLAIN_ACTIVATIONS.has(layer.name)) emit(`${current} -> ${layer.name}`);
        break;
      case 'dropout':
        emit(`${current} -> ${layer.spatial ? 'spatial_dropout' : 'dropout'}(${layer.rate})`);
        break;
      case 'pool': {
        const pad = Math.min(layer.pad, Math.floor(layer.kernel / 2));
        const out = windowOut(size, layer.kernel, layer.stride, pad, pad, layer.ceil);
        if (out < 1) break;
        const op = layer.max ? 'maxpool' : 'avgpool';
        const extra = layer.max ? '' : `, count_include_pad: ${layer.countIncludePad}`;
        emit(`${current} -> ${op}(${layer.kernel}, stride: ${layer.stride}, pad: ${pad}, ceil: ${layer.ceil}${extra})`, channels, out);
        break;
      }
      case 'pad': {
        const reflect = layer.mode === 'reflect';
        const begin = reflect ? Math.min(layer.begin, size - 1) : layer.begin;
        const end = reflect ? Math.min(layer.end, size - 1) : layer.end;
        if (plain && layer.value !== 0) break;
        const padded = size + begin + end;
        if (padded > MAX_SIZE) break;
        emit(`${current} -> pad(${padText(begin, end)}, mode: ${layer.mode}, value: ${layer.value})`, channels, padded);
        if (layer.then === 'conv' && size >= 2) emit(`${current} -> conv(${Math.min(MAX_CHANNELS, channels + 1)}, 2, pad: 1, bias: ${bias(true)})`, Math.min(MAX_CHANNELS, channels + 1), size + 1);
        else if (layer.then === 'maxpool' && size >= 2) emit(`${current} -> maxpool(2, stride: 1)`, channels, size - 1);
        else if (layer.then === 'avgpool' && size >= 2) emit(`${current} -> avgpool(2, stride: 1, count_include_pad: true)`, channels, size - 1);
        break;
      }
      case 'residual': {
        const input = current;
        const branch = fresh();
        lines.push(`  ${branch} = ${input} -> conv(${channels}, 3, pad: same, bias: ${bias(true)})${bn}`);
        emit(`${input} ${layer.mul ? '*' : '+'} ${branch}`);
        break;
      }
      case 'concat': {
        if (channels + layer.filters > MAX_CHANNELS) break;
        const input = current;
        const branch = fresh();
        lines.push(`  ${branch} = ${input} -> conv(${layer.filters}, 1, bias: false)${bn} -> relu`);
        emit(`concat(${input}, ${branch})`, channels + layer.filters);
        break;
      }
      case 'gate': {
        const input = current;
        const gate = fresh();
        lines.push(`  ${gate} = ${input} -> globalavgpool -> conv(${channels}, 1, bias: ${bias(true)}) -> sigmoid`);
        emit(`${input} * ${gate}`);
        break;
      }
      case 'upsample':
        if (size * 2 > MAX_SIZE) break;
        emit(`${current} -> upsample(scale: 2)`, channels, size * 2);
        break;
      case 'dead': {
        const dead = fresh();
        lines.push(`  ${dead} = ${current} -> conv(${layer.filters}, 1) -> relu`);
        break;
      }
    }
  }
  const outputs: string[] = [];
  const head = (kind: Head) => {
    const name = fresh();
    switch (kind) {
      case 'gap_dense':
        lines.push(`  ${name} = ${current} -> globalavgpool -> flatten -> dense(3, bias: ${bias(true)})`);
        break;
      case 'gap_dense_bn':
        lines.push(`  ${name} = ${current} -> globalavgpool -> flatten -> dense(3, bias: ${bias(true)})${bn}`);
        break;
      case 'flatten_dense':
        lines.push(`  ${name} = ${current} -> flatten -> dense(4, bias: ${bias(true)})`);
        break;
      default:
        lines.push(`  ${name} = ${current} -> relu`);
    }
    outputs.push(name);
  };
  if (choice.head === 'two') {
    head('gap_dense');
    head('map');
  } else head(choice.head);
  const shape = rank === 1 ? `${choice.size}` : `${choice.size}, ${choice.size}`;
  return `model Random {\n  input image: f32[N, ${choice.channels}, ${shape}]\n${lines.join('\n')}\n  output ${outputs.join(', ')}\n}\n`;
}

export const specArbitrary: fc.Arbitrary<string> = specChoiceArbitrary.map((choice) => buildSpec(choice));

/** Specs in which a removed channel and a zeroed one give the same outputs (see `BuildOptions.plain`). */
export const plainSpecArbitrary: fc.Arbitrary<string> = specChoiceArbitrary.map((choice) => buildSpec(choice, { plain: true }));

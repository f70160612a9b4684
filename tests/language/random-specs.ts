/**
 * Random VALID specs for the property tests: chains of convolutions, pooling, batch norm, activations and dropout,
 * residual adds with matching shapes, concat branches, gates, blocks with parameters and defaults (blocks calling
 * blocks), `repeat` (with and without an index), `when` / `??`, `let` and `param`, 1D/2D/3D inputs, symbolic batch
 * and sometimes symbolic spatial sizes, asserts, freeze, regularize and train sections — written with random
 * layout (comments, blank lines, spacing, chains broken over lines) so the printer has something to normalise.
 *
 * Valid by construction: the generator tracks every tensor's channels and spatial sizes (a number, or `sym` for a
 * symbolic size) with the shape rules of LANGUAGE.md, and only emits a step whose output is non-empty. Branches
 * that are added or concatenated use shape-preserving steps only, so their shapes agree even when symbolic.
 */
import fc from 'fast-check';

export interface Random {
  int(min: number, max: number): number;
  chance(percent: number): boolean;
  pick<T>(items: readonly T[]): T;
}

/** Draws from fast-check's `fc.gen()`, so failures shrink and replay by seed. */
export function randomFrom(g: fc.GeneratorValue): Random {
  return {
    int: (min, max) => g(fc.integer, { min, max }),
    chance: (percent) => g(fc.integer, { min: 0, max: 99 }) < percent,
    pick: <T>(items: readonly T[]) => items[g(fc.integer, { min: 0, max: items.length - 1 })]!,
  };
}

type Size = number | 'sym';

interface Tensor {
  /** How the spec refers to it: a name, or a parenthesised expression. */
  readonly ref: string;
  readonly channels: number;
  readonly spatial: readonly Size[];
}

interface Step {
  readonly text: string;
  readonly out: Tensor;
}

const ACTIVATIONS = ['relu', 'relu6', 'leaky_relu', 'leaky_relu(0.2)', 'elu', 'elu(alpha: 0.5)', 'sigmoid', 'hard_sigmoid', 'tanh', 'swish', 'silu', 'hard_swish', 'gelu', 'softmax', 'softmax(axis: 1)'];
const ACTIVATION_NAMES = ['relu', 'relu6', 'leaky_relu', 'elu', 'sigmoid', 'hard_sigmoid', 'tanh', 'swish', 'silu', 'hard_swish', 'gelu'];

function windowOut(size: Size, kernelExtent: number, stride: number, padTotal: number, ceil = false, padBegin = 0): number | 'sym' | undefined {
  if (size === 'sym') return 'sym';
  const span = size + padTotal - kernelExtent;
  if (span < 0) return undefined;
  let out = (ceil ? Math.ceil(span / stride) : Math.floor(span / stride)) + 1;
  if (ceil && (out - 1) * stride >= size + padBegin) out -= 1;
  return out >= 1 ? out : undefined;
}

function axesText(value: number, rank: number, r: Random): string {
  return r.chance(25) ? `[${new Array(rank).fill(value).join(', ')}]` : String(value);
}

function divisors(n: number): number[] {
  const result: number[] = [];
  for (let d = 1; d <= n; d++) if (n % d === 0) result.push(d);
  return result;
}

export class SpecGenerator {
  private readonly lines: string[] = [];
  private counter = 0;
  private readonly blocks = new Set<string>();
  /** Top-level names that made layers (targets for freeze). */
  private readonly layerScopes: string[] = [];
  private hasConv = false;

  constructor(private readonly r: Random) {}

  private fresh(prefix: string): string {
    return `${prefix}${++this.counter}`;
  }

  private emit(line: string): void {
    const r = this.r;
    if (r.chance(8)) this.lines.push('');
    if (r.chance(8)) this.lines.push(`  // note ${this.counter}`);
    this.lines.push(r.chance(6) ? `${line}   // why ${this.counter}` : line);
  }

  /** `a -> b -> c`, sometimes broken before each `->` as users write long chains. */
  private chain(head: string, steps: readonly string[]): string {
    if (steps.length === 0) return head;
    return this.r.chance(20) ? [head, ...steps].join('\n      -> ') : [head, ...steps].join(' -> ');
  }

  private assignment(name: string, value: string): string {
    return this.r.chance(10) ? `  ${name}   =  ${value}` : `  ${name} = ${value}`;
  }

  // ----------------------------------------------------------------------------------------------------------
  // Steps

  /** A step that keeps the spatial sizes and, unless `channels` is given, may change the channel count. */
  private preservingStep(t: Tensor, channels?: number): Step {
    const r = this.r;
    const rank = t.spatial.length;
    const choice = channels !== undefined && channels !== t.channels ? 0 : r.int(0, 5);
    switch (choice) {
      case 0: {
        const c = channels ?? r.int(1, 12);
        const k = r.pick([1, 3, 5]);
        const dilation = k > 1 && r.chance(20) ? 2 : 1;
        const pad = r.chance(30) ? 'same' : String((dilation * (k - 1)) / 2);
        const groups = r.pick(divisors(gcd(t.channels, c)).slice(0, 3));
        this.hasConv = true;
        const args = [String(c), axesText(k, rank, r), `pad: ${pad}`];
        if (dilation > 1) args.push(`dilation: ${dilation}`);
        if (groups > 1) args.push(`groups: ${groups}`);
        if (r.chance(30)) args.push('bias: false');
        return { text: `conv(${args.join(', ')})`, out: { ...t, channels: c, ref: '' } };
      }
      case 1:
        return { text: r.pick(['bn', 'bn(momentum: 0.99)', 'bn(eps: 0.001)', 'batchnorm']), out: t };
      case 2:
        return { text: r.pick(ACTIVATIONS), out: t };
      case 3:
        return { text: r.pick(['dropout(0.1)', 'dropout(rate: 0.5)', 'spatial_dropout(0.2)']), out: t };
      case 4:
        this.hasConv = true;
        return { text: `dwconv(3, pad: 1${r.chance(30) ? ', bias: false' : ''})`, out: t };
      default: {
        const c = channels ?? r.int(1, 12);
        this.hasConv = true;
        return { text: `sepconv(${c}, 3, pad: same)`, out: { ...t, channels: c } };
      }
    }
  }

  /** Any step valid on `t`: may change channels and sizes. */
  private anyStep(t: Tensor): Step {
    const r = this.r;
    const rank = t.spatial.length;
    const kind = r.int(0, 9);
    if (kind <= 3) return this.preservingStep(t);
    if (kind <= 5) {
      // A convolution with stride, padding and dilation chosen freely, kept only if every axis is non-empty.
      const c = r.int(1, 12);
      const k = r.pick([1, 2, 3, 5]);
      const stride = r.pick([1, 1, 2]);
      const dilation = k > 1 && r.chance(15) ? 2 : 1;
      const extent = dilation * (k - 1) + 1;
      const padKind = r.int(0, rank === 1 ? 4 : 3);
      let padText: string;
      let pads: Array<[number, number]>;
      switch (padKind) {
        case 0:
          padText = 'valid';
          pads = t.spatial.map(() => [0, 0]);
          break;
        case 1: {
          const p = r.int(0, k - 1);
          padText = axesText(p, rank, r);
          pads = t.spatial.map(() => [p, p]);
          break;
        }
        case 2:
          pads = t.spatial.map(() => [r.int(0, k - 1), r.int(0, k - 1)]);
          padText = `[${pads.map(([a, b]) => `[${a}, ${b}]`).join(', ')}]`;
          break;
        case 3:
          padText = 'same';
          pads = [];
          break;
        default:
          padText = 'causal';
          pads = [[extent - 1, 0]];
          break;
      }
      const spatial = t.spatial.map((s, i) => {
        if (padText === 'same') return s === 'sym' ? 'sym' : Math.ceil(s / stride);
        return windowOut(s, extent, stride, pads[i]![0] + pads[i]![1]);
      });
      // SAME with a stride on a symbolic size is a warning; the properties want error-free and warning-light specs.
      if (spatial.some((s) => s === undefined) || (padText === 'same' && stride > 1 && t.spatial.includes('sym'))) return this.preservingStep(t);
      this.hasConv = true;
      const name = r.chance(20) ? `conv${rank}d` : 'conv';
      const args = [String(c), axesText(k, rank, r)];
      if (stride !== 1) args.push(r.chance(50) ? `stride: ${axesText(stride, rank, r)}` : `stride: ${stride}`);
      args.push(`pad: ${padText}`);
      if (dilation > 1) args.push(`dilation: ${dilation}`);
      return { text: `${name}(${args.join(', ')})`, out: { ref: '', channels: c, spatial: spatial as Size[] } };
    }
    if (kind <= 7) {
      const op = r.pick(['maxpool', 'avgpool']);
      const k = r.pick([2, 3]);
      const stride = r.pick([undefined, 1, 2]);
      const pad = r.int(0, k - 1);
      // On a symbolic size ceil mode is only valid where the last window can never start in the end padding.
      const ceil = r.chance(25) && (t.spatial.every((s) => s !== 'sym') || pad + (stride ?? k) <= k);
      const spatial = t.spatial.map((s) => windowOut(s, k, stride ?? k, 2 * pad, ceil, pad));
      if (spatial.some((s) => s === undefined)) return this.preservingStep(t);
      const args = [String(k)];
      if (stride !== undefined) args.push(`stride: ${stride}`);
      if (pad > 0) args.push(`pad: ${pad}`);
      if (ceil) args.push('ceil: true');
      if (op === 'avgpool' && r.chance(30)) args.push('count_include_pad: true');
      return { text: `${op}(${args.join(', ')})`, out: { ref: '', channels: t.channels, spatial: spatial as Size[] } };
    }
    if (kind === 8 && t.spatial.every((s) => s === 'sym' || s <= 16)) {
      const grow = (s: Size): Size => (s === 'sym' ? 'sym' : 2 * s);
      const c = r.int(1, 8);
      const text = r.pick([`upsample(2)`, `upsample(2, mode: linear)`, `deconv(${c}, 2, stride: 2)`]);
      if (text.startsWith('deconv')) this.hasConv = true;
      return { text, out: { ref: '', channels: text.startsWith('deconv') ? c : t.channels, spatial: t.spatial.map(grow) } };
    }
    if (kind === 9) {
      const p = r.int(1, 2);
      return { text: `pad(${p}${r.chance(30) ? ', mode: edge' : ''})`, out: { ...t, spatial: t.spatial.map((s) => (s === 'sym' ? 'sym' : s + 2 * p)) } };
    }
    return this.preservingStep(t);
  }

  // ----------------------------------------------------------------------------------------------------------
  // Blocks

  private declareBlocks(): void {
    const r = this.r;
    const wanted = ['unit', 'down', 'gate', 'stack', 'pair'].filter(() => r.chance(50));
    if (wanted.includes('stack') && !wanted.includes('unit')) wanted.push('unit');
    for (const name of wanted) {
      this.blocks.add(name);
      this.lines.push('');
      switch (name) {
        case 'unit':
          this.lines.push(
            `  block unit(c: int, k: int = ${r.pick([1, 3, 5])}, act: string = "${r.pick(ACTIVATION_NAMES)}") (x) {`,
            '    y = x -> conv(c, k, pad: (k - 1) / 2, bias: false) -> bn -> activation(act)',
            '    s = x -> conv(c, 1, bias: false) -> bn when channels(x) != c',
            '    return y + (s ?? x)',
            '  }',
          );
          break;
        case 'down':
          this.lines.push(`  block down(c: int, stride: int = 2) (x) {`, '    return x -> conv(c, 3, stride: stride, pad: 1) -> relu', '  }');
          break;
        case 'gate':
          this.lines.push(
            `  block gate(r: int = ${r.pick([1, 2, 4])}) (x) {`,
            '    let squeezed = max(floor(channels(x) / r), 1)',
            '    g = x -> globalavgpool -> conv(squeezed, 1) -> relu -> conv(channels(x), 1) -> sigmoid',
            '    return x * g',
            '  }',
          );
          break;
        case 'stack':
          this.lines.push(`  block stack(c: int, n: int = ${r.int(1, 3)}) (x) {`, '    return x -> repeat n unit(c)', '  }');
          break;
        case 'pair':
          this.lines.push('  block pair(c: int) (a, b) {', '    return concat(a -> conv(c, 1), b -> conv(c, 1))', '  }');
          break;
      }
    }
    if (wanted.length > 0) this.hasConv = true;
  }

  /** A call of a declared block on `t` (undefined when none applies). */
  private blockStep(t: Tensor, partner?: Tensor): Step | undefined {
    const r = this.r;
    const options = [...this.blocks].filter((b) => b !== 'pair' || partner !== undefined);
    if (options.length === 0) return undefined;
    const block = r.pick(options);
    const c = r.int(1, 10);
    switch (block) {
      case 'unit': {
        const n = r.int(0, 3);
        const k = r.pick([1, 3, 5]);
        const args = r.pick([`${c}`, `${c}, ${k}`, `${c}, k: ${k}`, `c: ${c}, act: "${r.pick(ACTIVATION_NAMES)}"`]);
        if (r.chance(30)) return { text: `repeat ${n} unit(${args})`, out: n === 0 ? t : { ...t, channels: c } };
        if (r.chance(20)) {
          const last = c + 2 * (n - 1);
          return { text: `repeat ${n} as i unit(${c} + 2 * i)`, out: n === 0 ? t : { ...t, channels: last } };
        }
        return { text: `unit(${args})`, out: { ...t, channels: c } };
      }
      case 'down': {
        const stride = r.pick([1, 2]);
        const spatial = t.spatial.map((s) => windowOut(s, 3, stride, 2));
        return { text: stride === 2 && r.chance(50) ? `down(${c})` : `down(${c}, stride: ${stride})`, out: { ref: '', channels: c, spatial: spatial as Size[] } };
      }
      case 'gate':
        return { text: r.chance(50) ? 'gate' : `gate(r: ${r.pick([1, 2])})`, out: t };
      case 'stack': {
        const n = r.int(1, 2);
        return { text: r.chance(50) ? `stack(${c})` : `stack(${c}, n: ${n})`, out: { ...t, channels: c } };
      }
      default:
        return { text: `pair(${c}, ${partner!.ref})`, out: { ...t, channels: 2 * c } };
    }
  }

  // ----------------------------------------------------------------------------------------------------------
  // Statements

  generate(): string {
    const r = this.r;
    const rank = r.int(1, 3);
    const symbolicSpatial = r.chance(25);
    const batch = r.chance(80) ? 'N' : String(r.int(1, 4));
    const names = rank === 1 ? ['L'] : rank === 2 ? ['H', 'W'] : ['D', 'H', 'W'];
    const sizes = rank === 1 ? [r.int(16, 48)] : rank === 2 ? [r.int(8, 32), r.int(8, 32)] : [r.int(4, 8), r.int(6, 12), r.int(6, 12)];
    const channels = r.int(1, 6);
    const spatial: Size[] = symbolicSpatial ? names.map(() => 'sym') : sizes;
    const dims = symbolicSpatial ? names : sizes.map(String);

    this.lines.push(`model Random${r.int(0, 999)} {`);
    this.lines.push(`  input x: f32[${batch}, ${channels}, ${dims.join(', ')}]`);
    const width = r.int(2, 8);
    const useLet = r.chance(50);
    if (useLet) this.emit(`  let width = ${width}`);
    const flag = r.chance(50);
    const useParam = r.chance(50);
    if (useParam) this.emit(`  param use_branch: bool = ${flag}`);
    this.declareBlocks();
    this.lines.push('');

    let tensors: Tensor[] = [{ ref: 'x', channels, spatial }];
    const statements = r.int(1, 6);
    for (let i = 0; i < statements; i++) {
      const source = r.pick(tensors);
      const kind = r.int(0, 8);
      const name = this.fresh('t');
      let made: Tensor;
      if (kind <= 2) {
        // A chain of random steps, sometimes with named layers.
        const steps: string[] = [];
        let current = source;
        let scoped = true;
        for (let s = r.int(1, 4); s > 0; s--) {
          const step = this.blocks.size > 0 && r.chance(25) ? (this.blockStep(current) ?? this.anyStep(current)) : this.anyStep(current);
          // A quoted alias names the layer absolutely, outside this statement's scope.
          const absolute = r.chance(5);
          const alias = absolute ? ` as "abs.layer${++this.counter}"` : r.chance(5) ? ` as layer${++this.counter}` : '';
          if (step.text.startsWith('repeat')) steps.push(step.text);
          else {
            steps.push(`${step.text}${alias}`);
            if (absolute) scoped = false;
          }
          current = step.out;
        }
        this.emit(this.assignment(name, this.chain(source.ref, steps)));
        made = { ...current, ref: name };
        if (scoped && !steps.every((s) => s.startsWith('repeat 0'))) this.layerScopes.push(name);
      } else if (kind === 3) {
        // Residual: a shape-preserving branch with the source's channels, added back.
        const steps = [this.preservingStep(source, source.channels).text, ...Array.from({ length: r.int(0, 2) }, () => this.preservingStep(source, source.channels).text)];
        const branch = this.chain(source.ref, steps);
        const form = r.int(0, 2);
        if (form === 0) {
          const inner = this.fresh('b');
          this.emit(this.assignment(inner, branch));
          this.emit(this.assignment(name, r.chance(50) ? `relu(${inner} + ${source.ref})` : `${inner} + ${source.ref} -> relu`));
        } else if (form === 1) {
          this.emit(this.assignment(name, `(${branch.replace(/\n\s*/g, ' ')}) + ${source.ref}`));
        } else {
          this.emit(this.assignment(name, `add(${source.ref}, ${source.ref} -> ${steps.join(' -> ')})`));
        }
        made = { ...source, ref: name };
        this.layerScopes.push(name);
      } else if (kind === 4) {
        // Concat of two shape-preserving branches.
        const a = this.preservingStep(source, r.int(1, 6));
        const b = this.preservingStep(source, r.int(1, 6));
        const axis = r.chance(20) ? ', axis: 1' : '';
        this.emit(this.assignment(name, `concat(${source.ref} -> ${a.text}, ${source.ref} -> ${b.text}${axis})`));
        made = { ...source, ref: name, channels: a.out.channels + b.out.channels };
        this.layerScopes.push(name);
      } else if (kind === 5 && useParam) {
        // A branch that exists only when the parameter holds, and `??` to fall back.
        const branch = this.fresh('maybe');
        const condition = r.pick(['use_branch', `use_branch and channels(${source.ref}) > 0`, `not use_branch == false`]);
        this.emit(this.assignment(branch, `${source.ref} -> conv(${source.channels}, 1) -> bn when ${condition}`));
        this.emit(this.assignment(name, `${branch} ?? ${source.ref}`));
        made = { ...source, ref: name };
        if (flag) this.layerScopes.push(branch);
      } else if (kind === 6) {
        // Filters computed from lets, params and conditionals.
        const filters = useLet ? r.pick(['width', 'width * 2', 'max(width - 1, 1)', useParam ? 'use_branch ? width : 3' : 'width + 1']) : r.pick(['2 + 2', 'floor(7 / 2)', 'int(7.9)']);
        const value = useLet ? evaluateFilters(filters, width, flag) : evaluateFilters(filters, 0, flag);
        this.hasConv = true;
        this.emit(this.assignment(name, `${source.ref} -> conv(${filters}, 1)`));
        made = { ...source, ref: name, channels: value };
        this.layerScopes.push(name);
      } else if (kind === 7 && this.blocks.size > 0) {
        const partnerStep = this.preservingStep(source);
        const partner = this.fresh('p');
        this.emit(this.assignment(partner, `${source.ref} -> ${partnerStep.text}`));
        const step = this.blockStep(source, { ...partnerStep.out, ref: partner })!;
        this.emit(this.assignment(name, `${source.ref} -> ${step.text}`));
        made = { ...step.out, ref: name };
        this.layerScopes.push(name);
      } else {
        // A gate: the tensor times a per-channel sigmoid of its global average.
        this.hasConv = true;
        this.emit(this.assignment(name, `${source.ref} * (${source.ref} -> globalavgpool -> conv(${source.channels}, 1) -> sigmoid)`));
        made = { ...source, ref: name };
        this.layerScopes.push(name);
      }
      tensors = [...tensors, made];
    }

    const last = tensors[tensors.length - 1]!;
    let output = last;
    if (r.chance(50)) {
      const head = this.fresh('head');
      this.emit(this.assignment(head, this.chain(last.ref, ['globalavgpool', 'flatten', `dense(${r.int(1, 10)})`])));
      this.layerScopes.push(head);
      output = { ref: head, channels: 0, spatial: [] };
    }
    const outputs = [output.ref, ...(r.chance(25) && tensors.length > 2 ? [tensors[1]!.ref] : [])];
    this.emit(`  output ${[...new Set(outputs)].join(', ')}`);

    if (last.ref !== 'x' && r.chance(50)) this.emit(`  assert channels(${last.ref}) == ${last.channels}`);
    if (r.chance(40)) this.emit(`  assert rank(${last.ref}) == ${last.spatial.length + 2}, "rank of ${last.ref}"`);
    if (r.chance(30)) this.emit(`  assert shape(${last.ref})[1] == ${last.channels}`);
    if (this.layerScopes.length > 0 && r.chance(30)) this.emit(`  freeze ${r.pick(this.layerScopes)}`);
    if (this.hasConv && r.chance(40)) this.emit(`  regularize l2(1e-4) on conv`);
    if (r.chance(20)) this.emit('  regularize l1(1e-5)');
    if (r.chance(25)) this.emit(`  train {\n    epochs: ${r.int(1, 5)}\n    batch: ${r.pick([8, 16, 32])}\n    optimizer: adam(lr: 1e-3)\n  }`);
    this.lines.push('}');
    return `${this.lines.join('\n')}\n`;
  }
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/** The value of the filter expressions the generator writes. */
function evaluateFilters(text: string, width: number, flag: boolean): number {
  switch (text) {
    case 'width':
      return width;
    case 'width * 2':
      return width * 2;
    case 'max(width - 1, 1)':
      return Math.max(width - 1, 1);
    case 'use_branch ? width : 3':
      return flag ? width : 3;
    case 'width + 1':
      return width + 1;
    case '2 + 2':
      return 4;
    case 'floor(7 / 2)':
      return 3;
    default:
      return 7;
  }
}

/** An arbitrary of valid spec texts. */
export function validSpec(): fc.Arbitrary<string> {
  return fc.gen().map((g) => new SpecGenerator(randomFrom(g)).generate());
}

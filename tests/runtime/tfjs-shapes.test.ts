/**
 * Property: for random small specs (chains of windowed ops over 1, 2 or 3 spatial axes with every padding mode,
 * ceil mode, groups, stride with dilation, transposed convs, resizing and padding), the tfjs engine runs and
 * produces exactly the shapes the IR infers — for every node (the engine checks each one as it runs, with the
 * symbols bound from the input) and for the outputs it returns. Inputs with symbolic spatial sizes exercise
 * 'same-dynamic' padding (SAME resolved at run time).
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { evaluateDim } from '../../src/ir/dims.js';
import { elaborate } from '../../src/elaborate/elaborate.js';
import { TfjsEngine } from '../../src/runtime/tfjs/engine.js';

const perAxis = <T,>(rank: number, arbitrary: fc.Arbitrary<T>) => fc.array(arbitrary, { minLength: rank, maxLength: rank });
const list = (values: readonly number[]) => `[${values.join(', ')}]`;

/** One op call text for a feature map of `rank` spatial axes and `channels` channels. */
function layer(rank: number, channels: number): fc.Arbitrary<string> {
  const kernel = perAxis(rank, fc.integer({ min: 1, max: 3 }));
  const stride = perAxis(rank, fc.integer({ min: 1, max: 3 }));
  const dilation = perAxis(rank, fc.integer({ min: 1, max: 2 }));
  const pad = fc.oneof(
    fc.constant('same'),
    fc.constant('valid'),
    fc.nat(2).map(String),
    perAxis(rank, fc.tuple(fc.nat(2), fc.nat(2))).map((pairs) => `[${pairs.map(([b, e]) => `[${b}, ${e}]`).join(', ')}]`),
    ...(rank === 1 ? [fc.constant('causal')] : []),
  );
  const groups = fc.constantFrom(...[1, 2, 3, channels].filter((g) => channels % g === 0));
  const conv = fc
    .record({ filters: fc.integer({ min: 1, max: 3 }), kernel, stride, dilation, pad, groups })
    .map((a) => `conv(${a.filters * a.groups}, ${list(a.kernel)}, stride: ${list(a.stride)}, dilation: ${list(a.dilation)}, pad: ${a.pad}, groups: ${a.groups})`);
  const deconv = fc
    .record({ filters: fc.integer({ min: 1, max: 3 }), kernel, stride, dilation, pads: perAxis(rank, fc.tuple(fc.nat(1), fc.nat(1))), groups, extra: fc.boolean() })
    .map((a) => {
      const outputPadding = a.stride.map((s, i) => (a.extra && Math.max(s, a.dilation[i]!) > 1 ? 1 : 0));
      return `deconv(${a.filters * a.groups}, ${list(a.kernel)}, stride: ${list(a.stride)}, dilation: ${list(a.dilation)}, pad: [${a.pads.map(([b, e]) => `[${b}, ${e}]`).join(', ')}], groups: ${a.groups}, output_padding: ${list(outputPadding)})`;
    });
  const pool = fc
    .record({ op: fc.constantFrom('maxpool', 'avgpool'), kernel: perAxis(rank, fc.integer({ min: 2, max: 3 })), stride, pad: fc.constantFrom('same', 'valid', '1'), ceil: fc.boolean(), include: fc.boolean() })
    .map((a) => `${a.op}(${list(a.kernel)}, stride: ${list(a.stride)}, pad: ${a.pad}, ceil: ${a.ceil}${a.op === 'avgpool' ? `, count_include_pad: ${a.include}` : ''})`);
  const other = fc.oneof(
    fc.constantFrom('bn', 'relu', 'gelu', 'softmax(axis: 1)', 'spatial_dropout(0.2)'),
    fc.record({ scale: perAxis(rank, fc.integer({ min: 1, max: 2 })), mode: fc.constantFrom('nearest', 'linear') }).map((a) => `upsample(${list(a.scale)}, mode: ${a.mode})`),
    fc.record({ pads: perAxis(rank, fc.tuple(fc.nat(2), fc.nat(2))), mode: fc.constantFrom('constant', 'edge') }).map((a) => `pad([${a.pads.map(([b, e]) => `[${b}, ${e}]`).join(', ')}], mode: ${a.mode})`),
  );
  return fc.oneof({ arbitrary: conv, weight: 3 }, { arbitrary: deconv, weight: 2 }, { arbitrary: pool, weight: 2 }, { arbitrary: other, weight: 1 });
}

const specArbitrary = fc
  .record({ rank: fc.integer({ min: 1, max: 3 }), channels: fc.constantFrom(2, 3, 4), symbolic: fc.boolean() })
  .chain(({ rank, channels, symbolic }) =>
    fc.record({
      rank: fc.constant(rank),
      channels: fc.constant(channels),
      symbolic: fc.constant(symbolic),
      sizes: perAxis(rank, fc.integer({ min: rank === 3 ? 4 : 5, max: rank === 3 ? 7 : 12 })),
      // the first layer sees `channels`; later ones take whatever came out, so only channel-agnostic choices there
      first: layer(rank, channels),
      rest: fc.array(layer(rank, 1), { maxLength: 2 }),
    }),
  );

describe('engine output shapes equal the IR shapes', () => {
  beforeAll(async () => {
    (await TfjsEngine.create(elaborate('w.cnn', { text: 'model W {\n  input x: f32[N, 1, 2]\n  y = x -> relu\n  output y\n}' }).graph!, undefined, { backend: 'wasm' })).dispose();
  });

  it('for random 1D/2D/3D specs with every padding mode, ceil mode, groups, dilation and transposed convs', async () => {
    let ran = 0;
    await fc.assert(
      fc.asyncProperty(specArbitrary, async (s) => {
        const names = ['D', 'H', 'W'].slice(3 - s.rank);
        const declared = s.symbolic ? names : s.sizes.map(String);
        const chain = [s.first, ...s.rest].join(' -> ');
        const text = `model P {\n  input x: f32[N, ${s.channels}, ${declared.join(', ')}]\n  y = x -> ${chain}\n  output y\n}`;
        const { graph, diagnostics } = elaborate('p.cnn', { text });
        if (!graph || diagnostics.some((d) => d.severity === 'error')) return; // e.g. an empty output
        // with symbolic sizes, the expected shape is the IR's for the concrete input (the same spec elaborated
        // with the sizes filled in), which must exist (no empty output at these sizes)
        const concrete = s.symbolic ? elaborate('p.cnn', { text, inputShapes: { x: [2, s.channels, ...s.sizes] } }) : { graph, diagnostics };
        if (!concrete.graph || concrete.diagnostics.some((d) => d.severity === 'error')) return;
        const bindings = new Map<string, number>([['N', 2]]);
        const expected = concrete.graph.nodes.find((n) => n.name === concrete.graph!.outputs[0]!.value)!.shape.map((d) => evaluateDim(d, bindings));
        const engine = await TfjsEngine.create(graph, undefined, { backend: 'wasm' });
        try {
          const dims = [2, s.channels, ...s.sizes];
          const data = new Float32Array(dims.reduce((a, b) => a * b, 1)).map((_, i) => Math.sin(i));
          for (const training of [false, true]) {
            const out = engine.predictSync({ x: { data, dims } }, { training })['y']!;
            expect(out.dims, text).toEqual(expected);
            expect(out.data.every(Number.isFinite), text).toBe(true);
          }
          ran++;
        } finally {
          engine.dispose();
        }
      }),
      { numRuns: 120, seed: 424242 },
    );
    expect(ran).toBeGreaterThan(60);
  });
});

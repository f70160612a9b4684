/**
 * Acceptance property (STYLE.md §10): random conv stacks — 1D, 2D and 3D; convolutions with random kernel, stride,
 * dilation, groups and padding (valid, SAME, causal, symmetric and asymmetric explicit pads), transposed convs
 * (output padding, groups, dilation), max and average pools (ceil mode, count_include_pad, SAME), with batch norm
 * and activations between — with random weights
 *   - export to ONNX (`emitOnnx`), which the official checker accepts (one batched Python call after the property)
 *     and ONNX Runtime runs with outputs equal to the tfjs engine's (wasm) within 1e-4 of max |output|;
 *   - run in both engines with exactly the shapes the IR infers: every layer of a stack is a graph output, so
 *     each intermediate shape is compared too, in ONNX Runtime and in the tfjs engine.
 * Inputs with symbolic spatial sizes (a third of the cases) exercise SAME resolved at run time; the shapes are
 * then compared with the IR's symbolic shapes evaluated at the run's sizes and with the IR of the same spec
 * elaborated at those sizes.
 *
 * An export refused with CNN7001 (what no opset lets ONNX Runtime run, documented in src/codegen/onnx.ts) is not a
 * failure, but refusals must stay rare. CONVSPEC_STACK_RUNS / CONVSPEC_STACK_SEED change the number of runs and
 * the seed.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkManyOnnx, findPythonWithOnnx } from '../../src/codegen/onnx-checker.js';
import { emitOnnx } from '../../src/codegen/onnx.js';
import { elaborate } from '../../src/elaborate/elaborate.js';
import { evaluateDim } from '../../src/ir/dims.js';
import type { Graph } from '../../src/ir/graph.js';
import { randomWeights } from '../../src/ir/weights.js';
import { OrtEngine } from '../../src/runtime/ort/engine.js';
import { createEngine } from '../../src/runtime/tfjs/index.js';
import { describeMismatch, normalTensor, relativeError, temporaryDirectory } from './helpers.js';

const TOLERANCE = 1e-4;
const RUNS = Number(process.env['CONVSPEC_STACK_RUNS'] ?? 150);
const SEED = Number(process.env['CONVSPEC_STACK_SEED'] ?? 31337);
const python = await findPythonWithOnnx();
const work = temporaryDirectory('random-stacks');
afterAll(() => work.remove());

const perAxis = <T,>(rank: number, arbitrary: fc.Arbitrary<T>) => fc.array(arbitrary, { minLength: rank, maxLength: rank });
const list = (values: readonly number[]) => `[${values.join(', ')}]`;
const pairs = (values: ReadonlyArray<readonly [number, number]>) => `[${values.map(([b, e]) => `[${b}, ${e}]`).join(', ')}]`;

/** One layer for a feature map of `rank` spatial axes whose channel count is a multiple of `channels`. */
function layer(rank: number, channels: number): fc.Arbitrary<string> {
  const kernel = perAxis(rank, fc.integer({ min: 1, max: 4 }));
  const stride = perAxis(rank, fc.integer({ min: 1, max: 3 }));
  const dilation = perAxis(rank, fc.integer({ min: 1, max: 3 }));
  const groups = fc.constantFrom(...[1, 2, channels].filter((g, i, all) => channels % g === 0 && all.indexOf(g) === i));
  const pad = fc.oneof(
    fc.constantFrom('same', 'valid'),
    fc.nat(2).map(String),
    perAxis(rank, fc.tuple(fc.nat(3), fc.nat(3))).map(pairs),
    ...(rank === 1 ? [fc.constant('causal')] : []),
  );
  const conv = fc
    .record({ filters: fc.integer({ min: 1, max: 3 }), kernel, stride, dilation, pad, groups, bias: fc.boolean() })
    .map((a) => `conv(${a.filters * a.groups}, ${list(a.kernel)}, stride: ${list(a.stride)}, dilation: ${list(a.dilation)}, pad: ${a.pad}, groups: ${a.groups}, bias: ${a.bias})`);
  const deconv = fc
    .record({ filters: fc.integer({ min: 1, max: 3 }), kernel, stride, dilation, pads: perAxis(rank, fc.tuple(fc.nat(2), fc.nat(2))), same: fc.boolean(), groups, extra: fc.boolean() })
    .map((a) => {
      // below the stride: ONNX Runtime refuses output padding ≥ stride even where the dilation would allow it (CNN7001)
      const outputPadding = a.stride.map((s) => (a.extra && s > 1 ? 1 : 0));
      const padText = a.same ? 'same' : pairs(a.pads);
      return `deconv(${a.filters * a.groups}, ${list(a.kernel)}, stride: ${list(a.stride)}, dilation: ${list(a.dilation)}, pad: ${padText}, groups: ${a.groups}, output_padding: ${list(outputPadding)})`;
    });
  const pool = fc
    .record({
      op: fc.constantFrom('maxpool', 'avgpool'),
      kernel: perAxis(rank, fc.integer({ min: 1, max: 4 })),
      stride,
      pad: fc.oneof(fc.constantFrom('same', 'valid'), perAxis(rank, fc.tuple(fc.nat(1), fc.nat(1)))),
      ceil: fc.boolean(),
      include: fc.boolean(),
    })
    .map((a) => {
      // explicit pool pads must stay below the kernel: clamped to k − 1 per axis
      const padText = typeof a.pad === 'string' ? a.pad : pairs(a.pad.map(([b, e], i): [number, number] => [Math.min(b, a.kernel[i]! - 1), Math.min(e, a.kernel[i]! - 1)]));
      return `${a.op}(${list(a.kernel)}, stride: ${list(a.stride)}, pad: ${padText}, ceil: ${a.ceil}${a.op === 'avgpool' ? `, count_include_pad: ${a.include}` : ''})`;
    });
  const between = fc.constantFrom('bn', 'relu', 'leaky_relu', 'sigmoid', 'bn -> relu6');
  return fc.oneof({ arbitrary: conv, weight: 4 }, { arbitrary: deconv, weight: 2 }, { arbitrary: pool, weight: 3 }, { arbitrary: between, weight: 1 });
}

interface StackCase {
  readonly rank: number;
  readonly channels: number;
  readonly symbolic: boolean;
  readonly sizes: number[];
  readonly layers: string[];
}

const stackArbitrary: fc.Arbitrary<StackCase> = fc
  .record({ rank: fc.integer({ min: 1, max: 3 }), channels: fc.constantFrom(2, 3, 4), symbolic: fc.integer({ min: 0, max: 2 }).map((v) => v === 0) })
  .chain(({ rank, channels, symbolic }) =>
    fc.record({
      rank: fc.constant(rank),
      channels: fc.constant(channels),
      symbolic: fc.constant(symbolic),
      sizes: perAxis(rank, fc.integer({ min: rank === 3 ? 4 : 6, max: rank === 3 ? 8 : 14 })),
      // the first layer sees `channels`; later ones get whatever came before, so only channel-agnostic choices
      layers: fc.tuple(layer(rank, channels), fc.array(layer(rank, 1), { minLength: 1, maxLength: 3 })).map(([first, rest]) => [first, ...rest]),
    }),
  );

function specText(stack: StackCase): string {
  const names = ['D', 'H', 'W'].slice(3 - stack.rank);
  const declared = stack.symbolic ? names : stack.sizes.map(String);
  const lines = stack.layers.map((layerText, i) => `  y${i + 1} = ${i === 0 ? 'x' : `y${i}`} -> ${layerText}`);
  return `model Stack {\n  input x: f32[N, ${stack.channels}, ${declared.join(', ')}]\n${lines.join('\n')}\n  output ${stack.layers.map((_, i) => `y${i + 1}`).join(', ')}\n}\n`;
}

function outputShapes(graph: Graph): Map<string, Graph['nodes'][number]['shape']> {
  const byName = new Map(graph.nodes.map((n) => [n.name, n.shape]));
  return new Map(graph.outputs.map((o) => [o.name, byName.get(o.value)!]));
}

describe('property: random conv stacks — ONNX export (checker, ONNX Runtime) equals the tfjs engine; shapes equal the IR', () => {
  const files: Array<{ path: string; text: string }> = [];
  let compared = 0;
  let refused = 0;
  let symbolicCompared = 0;

  beforeAll(async () => {
    const warm = await createEngine(elaborate('w.cnn', { text: 'model W {\n  input x: f32[N, 1, 2]\n  y = x -> relu\n  output y\n}' }).graph!, undefined, { backend: 'wasm' });
    warm.dispose();
  });

  it(`${RUNS} random stacks (1D/2D/3D)`, async () => {
    await fc.assert(
      fc.asyncProperty(stackArbitrary, fc.integer({ min: 1, max: 1_000_000 }), async (stack, seed) => {
        const text = specText(stack);
        const batch = 2;
        const { graph, diagnostics } = elaborate('stack.cnn', { text });
        if (!graph || diagnostics.some((d) => d.severity === 'error')) return; // e.g. an empty feature map
        // the IR of the same spec at the run's sizes (it must exist: nothing is empty at these sizes)
        const concrete = stack.symbolic ? elaborate('stack.cnn', { text, inputShapes: { x: [batch, stack.channels, ...stack.sizes] } }) : undefined;
        if (concrete && (!concrete.graph || concrete.diagnostics.some((d) => d.severity === 'error'))) return;

        const weights = randomWeights(graph, seed);
        const emitted = emitOnnx(graph, weights, { valueInfo: true });
        const errors = emitted.diagnostics.filter((d) => d.severity === 'error');
        if (errors.length > 0) {
          expect(errors.map((d) => d.code), `${text}${errors.map((d) => d.message).join('\n')}`).toEqual(errors.map(() => 'CNN7001'));
          refused++;
          return;
        }
        const file = path.join(work.dir, `stack-${files.length}.onnx`);
        fs.writeFileSync(file, emitted.bytes);
        files.push({ path: file, text });

        const dims = [batch, stack.channels, ...stack.sizes];
        const input = normalTensor(dims, seed + 1);
        const bindings = new Map<string, number>([['N', batch], ...(stack.symbolic ? ['D', 'H', 'W'].slice(3 - stack.rank).map((name, i) => [name, stack.sizes[i]!] as [string, number]) : [])]);
        const evaluatedShapes = new Map([...outputShapes(graph)].map(([name, shape]) => [name, shape.map((d) => evaluateDim(d, bindings))]));
        const expectedShapes = concrete ? outputShapes(concrete.graph!) : evaluatedShapes;
        // Symbolic ceil-mode pools the elaborator accepts have exact formulas (see the next test).
        const symbolicShapesExact = stack.symbolic;

        const engine = await createEngine(graph, weights, { backend: 'wasm' });
        let reference: Record<string, { data: Float32Array; dims: number[] }>;
        try {
          reference = engine.predictSync({ x: input });
        } finally {
          engine.dispose();
        }
        const ort = await OrtEngine.create(emitted.bytes, { intraOpThreads: 1, logSeverity: 'error', label: 'stack' });
        let results: Record<string, { data: Float32Array; dims: number[] }>;
        try {
          results = await ort.run({ x: input });
        } finally {
          await ort.dispose();
        }
        for (const [name, expected] of expectedShapes) {
          const where = `${name} of\n${text}`;
          expect(reference[name]!.dims, `tfjs engine shape, ${where}`).toEqual(expected);
          expect(results[name]!.dims, `ONNX Runtime shape, ${where}`).toEqual(expected);
          if (symbolicShapesExact) expect(evaluatedShapes.get(name), `symbolic IR shape at the run's sizes, ${where}`).toEqual(expected);
          const { error } = relativeError(results[name]!.data, reference[name]!.data);
          expect(error, describeMismatch(`ONNX Runtime vs tfjs engine, ${where}`, results[name]!.data, reference[name]!.data)).toBeLessThan(TOLERANCE);
        }
        compared++;
        if (stack.symbolic) symbolicCompared++;
      }),
      { numRuns: RUNS, seed: SEED },
    );
    expect(compared).toBeGreaterThan(RUNS * 0.5);
    expect(symbolicCompared).toBeGreaterThan(RUNS * 0.1);
    expect(refused).toBeLessThan(RUNS * 0.1);
  });

  // A ceil-mode pool on a symbolic size is exact when end padding + stride ≤ kernel (the last window can never
  // start in the end padding); otherwise the size depends on the size modulo the stride, and the elaborator
  // refuses it instead of inferring a shape one too large. With the size given, the IR and both engines agree.
  it('ceil-mode pools: symbolic sizes are refused where the size formula is ambiguous, concrete ones match the engines', async () => {
    const symbolic = 'model P {\n  input x: f32[N, 3, H, W]\n  y = x -> maxpool(1, stride: 2, ceil: true)\n  output y\n}\n';
    const refused = elaborate('p.cnn', { text: symbolic });
    expect(refused.diagnostics.map((d) => `${d.code} ${d.message}`)).toEqual([expect.stringMatching(/^CNN3016 argument 'ceil' of 'maxpool' cannot be true on a symbolic size/)]);
    const concrete = 'model P {\n  input x: f32[N, 3, 4, 4]\n  y = x -> maxpool(1, stride: 2, ceil: true)\n  output y\n}\n';
    const { graph } = elaborate('p.cnn', { text: concrete });
    const inferred = outputShapes(graph!).get('y')!.map((d) => evaluateDim(d, new Map([['N', 1]])));
    const engine = await createEngine(graph!, undefined, { backend: 'wasm' });
    try {
      const produced = engine.predictSync({ x: normalTensor([1, 3, 4, 4], 1) })['y']!.dims;
      expect(produced).toEqual([1, 3, 2, 2]);
      expect(inferred).toEqual(produced);
    } finally {
      engine.dispose();
    }
  });

  const checkerTitle = 'the official checker accepts every exported stack (one batched call)';
  it.skipIf(python === null && process.env['CI'] === undefined)(python === null ? `${checkerTitle} (skipped: no Python with onnx)` : checkerTitle, async () => {
    expect(python, 'CI must provide python3-onnx').not.toBeNull();
    expect(files.length).toBeGreaterThan(RUNS * 0.5);
    const verdicts = await checkManyOnnx(files.map((f) => f.path));
    const rejected = verdicts.map((v, i) => ({ ...v, spec: files[i]!.text })).filter((v) => v.ok !== true);
    expect(rejected).toEqual([]);
  });
});

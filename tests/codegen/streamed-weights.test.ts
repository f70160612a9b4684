/**
 * Fresh weights streamed into the file. `initializeWeights` gives DrawnWeights that `compile` never reads: fold-bn
 * carries its per-channel factors along, the ONNX builder leaves their raw_data out of the message and the writer
 * draws them piece by piece. The file must be, byte for byte, the one the same weights give when held in memory —
 * equal-initializer sharing included — and nothing may be drawn before the write.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { concatenateSegments, decodeModel, OnnxGraphBuilder, type OnnxBuildOptions } from '../../src/codegen/onnx-model.js';
import { emitOnnx } from '../../src/codegen/onnx.js';
import { DrawnWeight, initializeWeights, type WeightTensor, type Weights } from '../../src/ir/weights.js';
import { resolvePassList, runPasses } from '../../src/passes/manager.js';
import '../../src/passes/index.js';
import { writeFileAtomicAsync } from '../../src/runtime/data/atomic-write.js';
import { createMulberry32 } from '../../src/random.js';
import { compileSpec } from '../../src/testing.js';

const graph = compileSpec(`model Fresh {
  input image: f32[N, 3, 16, 16]
  a = image -> conv(64, 3, pad: 1, bias: false) -> bn -> relu
  b = a -> conv(128, 3, pad: 1, groups: 2) -> bn -> relu
  up = b -> conv_transpose(32, 2, stride: 2) -> bn -> relu
  c = up -> bn -> conv(64, 1) -> relu
  logits = c -> globalavgpool -> flatten -> dense(300) -> bn -> relu -> dense(10)
  output logits
}`).graph!;
const passes = resolvePassList('eliminate-dropout,fold-pad,fold-bn').passes;

/** The same weights, every array drawn now and held. */
function held(weights: Weights): Map<string, WeightTensor> {
  return new Map([...weights].map(([name, t]) => [name, { shape: t.shape, data: t.data.slice() }]));
}

describe('fresh weights, drawn as the file is written', () => {
  it('fold-bn carries the factors of conv and dense producers along without drawing; other folds draw', () => {
    const fresh = runPasses(graph, initializeWeights(graph, 5), passes, {});
    const eager = runPasses(graph, held(initializeWeights(graph, 5)), passes, {});
    expect(fresh.diagnostics).toEqual(eager.diagnostics);
    const unread = [...fresh.weights!].filter(([, t]) => t instanceof DrawnWeight && t.unread).map(([name]) => name);
    // the producers' weights (conv, grouped conv, dense) stay unread; the transposed conv and the consumer fold
    // (bn -> conv) need the values; the last dense had no BN: unread and unscaled
    expect(unread.sort()).toEqual(['a.conv1.weight', 'b.conv1.weight', 'logits.dense1.weight', 'logits.dense2.weight']);
    for (const [name, tensor] of eager.weights!) expect(fresh.weights!.get(name)!.data, name).toEqual(tensor.data);
  });

  it('emits and writes the same bytes as the weights held in memory, drawing only small tensors before writing', async () => {
    const fresh = runPasses(graph, initializeWeights(graph, 5), passes, {});
    const eager = runPasses(graph, held(initializeWeights(graph, 5)), passes, {});
    const expected = emitOnnx(eager.graph, eager.weights!).bytes;
    const emitted = emitOnnx(fresh.graph, fresh.weights!);
    // below 64 KiB a tensor is encoded with its message (drawn at emit); b.conv1 and logits.dense1 are larger
    const drawnEarly = [...fresh.weights!].filter(([, t]) => t instanceof DrawnWeight && !t.unread).map(([name]) => name);
    expect(drawnEarly.sort()).toEqual(['a.conv1.weight', 'logits.dense2.weight']);
    const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'convspec-streamed-'));
    try {
      const file = path.join(folder, 'model.onnx');
      await writeFileAtomicAsync(file, emitted.encoded.segments);
      expect(Buffer.from(fs.readFileSync(file)).equals(Buffer.from(expected))).toBe(true);
      expect(Buffer.from(concatenateSegments(emitted.encoded)).equals(Buffer.from(expected))).toBe(true);
    } finally {
      fs.rmSync(folder, { recursive: true, force: true });
    }
  });
});

describe('property: random wide conv stacks', () => {
  // channels wide enough that most weights pass 64 KiB and stream; BN after a conv or dense folds into it (the
  // factors carried along), before one folds into its consumer (drawn), after a transposed conv into it (drawn)
  const itemArbitrary = fc.record({
    op: fc.constantFrom('conv', 'conv', 'deconv'),
    filters: fc.integer({ min: 40, max: 160 }),
    kernel: fc.constantFrom(1, 3),
    groups: fc.constantFrom(1, 2, 4),
    bias: fc.boolean(),
    bnAfter: fc.boolean(),
    bnBefore: fc.boolean(),
  });

  it('streamed fresh weights write the file the same weights held in memory give, byte for byte', async () => {
    const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'convspec-streamed-'));
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(itemArbitrary, { minLength: 1, maxLength: 4 }), fc.boolean(), fc.integer({ min: 0, max: 1000 }), async (items, denseBn, seed) => {
          let channels = 32;
          const chain = items.map((item) => {
            const filters = item.filters - (item.filters % item.groups);
            const groups = channels % item.groups === 0 ? item.groups : 1;
            const op = item.op === 'conv' ? `conv(${filters}, ${item.kernel}, pad: same, groups: ${groups}, bias: ${item.bias})` : `deconv(${filters}, 1, groups: ${groups}, bias: ${item.bias})`;
            channels = filters;
            return `${item.bnBefore ? 'bn -> ' : ''}${op}${item.bnAfter ? ' -> bn' : ''} -> relu`;
          });
          const text = `model R {\n  input x: f32[N, 32, 6, 6]\n  y = x -> ${chain.join(' -> ')} -> globalavgpool -> flatten -> dense(200)${denseBn ? ' -> bn' : ''}\n  output y\n}\n`;
          const g = compileSpec(text).graph!;
          // fresh conv and dense weights; batch norms with statistics of their own, so each channel's factor differs
          const withStatistics = (weights: Map<string, WeightTensor>) => {
            const random = createMulberry32(seed + 1);
            for (const [name, t] of weights) if (/\.bn\d+\./.test(name)) weights.set(name, { shape: t.shape, data: t.data.map(() => (name.endsWith('running_var') ? 0.5 : -1) + 2 * random()) });
            return weights;
          };
          const fresh = runPasses(g, withStatistics(initializeWeights(g, seed)), passes, {});
          const eager = runPasses(g, withStatistics(held(initializeWeights(g, seed))), passes, {});
          const expected = Buffer.from(emitOnnx(eager.graph, eager.weights!).bytes);
          const file = path.join(folder, 'r.onnx');
          await writeFileAtomicAsync(file, emitOnnx(fresh.graph, fresh.weights!).encoded.segments);
          expect(Buffer.from(fs.readFileSync(file)).equals(expected), text).toBe(true);
          expect(Buffer.from(emitOnnx(fresh.graph, fresh.weights!).bytes).equals(expected), text).toBe(true);
        }),
        { numRuns: 30, seed: 20261207 },
      );
    } finally {
      fs.rmSync(folder, { recursive: true, force: true });
    }
  });
});

describe('several models written at once', () => {
  it('each file, and each model joined in memory meanwhile, is the one its held weights give', async () => {
    const other = compileSpec(`model Other {
  input image: f32[N, 8, 12, 12]
  y = image -> conv(128, 3, pad: 1) -> bn -> relu -> conv(96, 3) -> flatten -> dense(4)
  output y
}`).graph!;
    const models = [graph, other, graph].map((g, i) => {
      const fresh = runPasses(g, initializeWeights(g, 11 + i), passes, {});
      const held = runPasses(g, new Map([...initializeWeights(g, 11 + i)].map(([n, t]) => [n, { shape: t.shape, data: t.data.slice() }])), passes, {});
      return { fresh, expected: emitOnnx(held.graph, held.weights!).bytes };
    });
    const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'convspec-streamed-'));
    try {
      // emitted one after the other (emitting draws the heads of large tensors to compare them), written together
      const files = models.map((m, i) => ({ file: path.join(folder, `m${i}.onnx`), segments: emitOnnx(m.fresh.graph, m.fresh.weights!).encoded.segments }));
      // and, while they are written, a model joined in memory (emitOnnx's `bytes`) between their writes
      const joinedMeanwhile = (async () => {
        const joined: Uint8Array[] = [];
        for (const m of models) {
          await new Promise((resolve) => setImmediate(resolve));
          joined.push(emitOnnx(m.fresh.graph, m.fresh.weights!).bytes);
        }
        return joined;
      })();
      await Promise.all(files.map(({ file, segments }) => writeFileAtomicAsync(file, segments)));
      files.forEach(({ file }, i) => expect(Buffer.from(fs.readFileSync(file)).equals(Buffer.from(models[i]!.expected)), file).toBe(true));
      (await joinedMeanwhile).forEach((bytes, i) => expect(Buffer.from(bytes).equals(Buffer.from(models[i]!.expected)), `joined ${i}`).toBe(true));
    } finally {
      fs.rmSync(folder, { recursive: true, force: true });
    }
  });
});

describe('equal initializers among streamed ones', () => {
  const BUILD: OnnxBuildOptions = { irVersion: 8, opset: 17, producerName: 'convspec-tests', producerVersion: '0', graphName: 'g', shareEqualInitializers: true };
  const shape = [64, 32];
  const stream = { seed: 9, bound: 0.1 };

  function stored(tensors: readonly (DrawnWeight | Float32Array)[]): string[] {
    const builder = new OnnxGraphBuilder().addInput('x', 'float32', [1]);
    tensors.forEach((t, i) => builder.addInitializer(`w${i}`, shape, t));
    builder.addNode('Identity', ['x'], ['y'], 'id').addOutput('y', 'float32', [1]);
    return decodeModel(builder.build(BUILD)).graph.initializer.map((t) => t.name!);
  }

  it('shares a streamed tensor with an equal one, streamed or held, and never with one that differs', () => {
    const drawn = () => new DrawnWeight(shape, stream);
    const values = drawn().data;
    expect(stored([drawn(), drawn()])).toEqual(['w0']);
    expect(stored([values.slice(), drawn()])).toEqual(['w0']);
    const lastDiffers = values.slice();
    lastDiffers[lastDiffers.length - 1] = 0;
    // the same first bytes: compared in full
    expect(stored([drawn(), lastDiffers])).toEqual(['w0', 'w1']);
    expect(stored([drawn(), new DrawnWeight(shape, { seed: 10, bound: 0.1 })])).toEqual(['w0', 'w1']);
    const scaled = drawn().withRowScale(new Float64Array(64).fill(1))!;
    expect(stored([drawn(), scaled])).toEqual(['w0']);
  });
});

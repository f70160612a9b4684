/**
 * `--weights FILE` as users meet it through the CLI (`compile`, `eval`, `train`): a bad file — missing, empty,
 * truncated, the wrong dtype or shapes, not ONNX or safetensors at all, random bytes — is exit 1 with a CNN800x
 * diagnostic naming the problem, never a crash (exit 3) or a stack trace. Name mapping (`--map`, `--map-file`)
 * and the diagnostics of partial loading (`train`) are checked here too.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { emitOnnx } from '../../src/codegen/onnx.js';
import { initializeWeights, type WeightTensor } from '../../src/ir/weights.js';
import { encodeSafetensors } from '../../src/runtime/checkpoint.js';
import { compileSpec } from '../../src/testing.js';

const SPEC = `model Small {
  input image: f32[N, 1, 28, 28]
  features = image -> conv(4, 3, bias: false) -> bn -> relu -> globalavgpool -> flatten
  logits = features -> dense(10)
  output logits
}
`;

interface Run {
  readonly code: number;
  readonly output: string;
}

async function cli(...args: string[]): Promise<Run> {
  const lines: string[] = [];
  const code = await main(['node', 'convspec', ...args], { out: (t) => lines.push(t), err: (t) => lines.push(t) });
  return { code, output: lines.join('\n') };
}

function expectNoCrash(run: Run): void {
  expect(run.code).not.toBe(3);
  expect(run.output).not.toMatch(/internal error/);
  expect(run.output).not.toMatch(/\n\s+at .+:\d+:\d+/);
}

/** Deterministic pseudo-random bytes. */
function randomBytes(count: number, seed: number, first?: number[]): Uint8Array {
  const bytes = new Uint8Array(count);
  let state = seed >>> 0;
  for (let i = 0; i < count; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    bytes[i] = state >>> 24;
  }
  first?.forEach((b, i) => (bytes[i] = b));
  return bytes;
}

describe('bad weights files through the CLI: exit 1 and a CNN800x diagnostic, never a crash', () => {
  let dir: string;
  let spec: string;
  const file = (name: string) => path.join(dir, name);
  let weights: Map<string, WeightTensor>;

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'convspec-weights-'));
    spec = file('small.cnn');
    fs.writeFileSync(spec, SPEC);
    const graph = compileSpec(SPEC).graph!;
    weights = initializeWeights(graph, 1);
    const good = encodeSafetensors(weights);
    fs.writeFileSync(file('good.safetensors'), good);
    fs.writeFileSync(file('empty.safetensors'), new Uint8Array(0));
    fs.writeFileSync(file('text.bin'), 'these are not weights, just a line of text\n');
    fs.writeFileSync(file('truncated.safetensors'), good.subarray(0, Math.floor(good.length * 0.6)));
    fs.writeFileSync(file('truncated-header.safetensors'), good.subarray(0, 40));
    const header = new TextDecoder().decode(good.subarray(8, 8 + Number(new DataView(good.buffer, good.byteOffset).getBigUint64(0, true))));
    const f16 = new TextEncoder().encode(header.replace('"F32"', '"F16"'));
    fs.writeFileSync(file('f16.safetensors'), Buffer.concat([good.subarray(0, 8), f16, good.subarray(8 + f16.length)]));
    const misshapen = new Map(weights);
    misshapen.set('features.conv1.weight', { shape: [4, 1, 5, 5], data: new Float32Array(100) });
    fs.writeFileSync(file('misshapen.safetensors'), encodeSafetensors(misshapen));
    const onnx = emitOnnx(graph, weights).bytes;
    fs.writeFileSync(file('good.onnx'), onnx);
    fs.writeFileSync(file('truncated.onnx'), onnx.subarray(0, Math.floor(onnx.length / 2)));
    for (const [i, size] of [1, 9, 100, 4096].entries()) fs.writeFileSync(file(`random-${size}.bin`), randomBytes(size, 7 + i));
    // random bytes that look like a safetensors start: a small header length, then '{'
    fs.writeFileSync(file('random-header.bin'), randomBytes(512, 99, [40, 0, 0, 0, 0, 0, 0, 0, 0x7b]));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const cases: Array<[string, string, RegExp]> = [
    ['a missing file', 'missing.safetensors', /error CNN8001: cannot read weights '.*missing\.safetensors': no such file/],
    ['an empty file', 'empty.safetensors', /error CNN8001: .*the file is empty/],
    ['a text file (neither safetensors nor ONNX)', 'text.bin', /error CNN8001: .*neither a safetensors\/convspec checkpoint nor an ONNX model/],
    ['a truncated safetensors file', 'truncated.safetensors', /error CNN8001: .*truncated/],
    ['a safetensors file cut inside its header', 'truncated-header.safetensors', /error CNN8001: .*truncated/],
    ['a truncated ONNX file', 'truncated.onnx', /error CNN8001: .*(neither|not an ONNX)/],
    ['float16 tensors', 'f16.safetensors', /error CNN8001: .*F16; convspec reads F32 tensors only/],
    ['a tensor of the wrong shape', 'misshapen.safetensors', /error CNN8003: weight 'features\.conv1\.weight' has shape \[4, 1, 5, 5\], expected \[4, 1, 3, 3\]/],
    ['1 random byte', 'random-1.bin', /error CNN8001/],
    ['9 random bytes', 'random-9.bin', /error CNN8001/],
    ['100 random bytes', 'random-100.bin', /error CNN8001/],
    ['4 KiB of random bytes', 'random-4096.bin', /error CNN8001/],
    ['random bytes behind a safetensors-like start', 'random-header.bin', /error CNN8001/],
  ];

  for (const [what, name, message] of cases) {
    it(`${what}: compile, eval and train --weights exit 1 with ${/CNN\d+/.exec(message.source)![0]}`, async () => {
      const runs = [
        await cli('compile', spec, '-o', file('out-compile'), '--weights', file(name)),
        await cli('eval', spec, '--weights', file(name), '--data', 'fashion-mnist-subset'),
        await cli('train', spec, '-o', file('out-train'), '--weights', file(name), '--data', 'fashion-mnist-subset', '--epochs', '1'),
      ];
      for (const run of runs) {
        expectNoCrash(run);
        expect(run.output).toMatch(message);
        expect(run.code).toBe(1);
      }
      expect(fs.existsSync(file('out-train/Small.safetensors'))).toBe(false);
    });
  }

  it('good files work: safetensors and ONNX initializers', async () => {
    for (const name of ['good.safetensors', 'good.onnx']) {
      const run = await cli('compile', spec, '-o', file('out-good'), '--weights', file(name));
      expectNoCrash(run);
      expect(run.code).toBe(0);
    }
  });

  it('compile and eval need every tensor (CNN8002 names it and its shape); extra tensors are CNN8004 warnings', async () => {
    const partial = new Map(weights);
    partial.delete('logits.dense1.bias');
    partial.set('extra.weight', { shape: [2, 2], data: new Float32Array(4) });
    fs.writeFileSync(file('partial.safetensors'), encodeSafetensors(partial));
    for (const run of [await cli('compile', spec, '-o', file('out-partial'), '--weights', file('partial.safetensors')), await cli('eval', spec, '--weights', file('partial.safetensors'), '--data', 'fashion-mnist-subset')]) {
      expectNoCrash(run);
      expect(run.code).toBe(1);
      expect(run.output).toMatch(/error CNN8002: weights lack 'logits\.dense1\.bias' \(expected shape \[10\]\)/);
      expect(run.output).toMatch(/warning CNN8004: weight 'extra\.weight' \[2, 2\] matches no parameter/);
    }
  });

  it('train loads partially: missing tensors are CNN8002 notes, and a file none of whose tensors fits is CNN8001', async () => {
    const run = await cli('train', spec, '-o', file('out-train-partial'), '--weights', file('partial.safetensors'), '--data', 'fashion-mnist-subset', '--epochs', '1', '--batch', '256');
    expectNoCrash(run);
    expect(run.output).toMatch(/note CNN8002: weights lack 'logits\.dense1\.bias'/);
    expect(run.output).toMatch(/loaded 6 tensors/);
    expect(run.code).toBe(0);
    const unrelated = new Map([['encoder.layer.weight', { shape: [3], data: new Float32Array(3) }]]);
    fs.writeFileSync(file('unrelated.safetensors'), encodeSafetensors(unrelated));
    const none = await cli('train', spec, '-o', file('out-train-none'), '--weights', file('unrelated.safetensors'), '--data', 'fashion-mnist-subset', '--epochs', '1');
    expectNoCrash(none);
    expect(none.code).toBe(1);
    expect(none.output).toMatch(/error CNN8001: .*none of its 1 tensors fits a parameter of Small/);
    expect(none.output).toMatch(/hint: map the names with --map/);
  });

  it('--map and --map-file rename: exact names, prefixes, an added prefix; bad mappings are errors', async () => {
    // The file names every tensor 'model.<our name>', and the dense layer 'classifier'.
    const renamed = new Map([...weights].map(([name, tensor]) => [`model.${name.replace(/^logits\.dense1/, 'classifier')}`, tensor]));
    fs.writeFileSync(file('renamed.safetensors'), encodeSafetensors(renamed));
    const plain = await cli('compile', spec, '-o', file('out-map'), '--weights', file('renamed.safetensors'));
    expect(plain.code).toBe(1);
    expect(plain.output).toMatch(/error CNN8002: weights lack 'features\.conv1\.weight'/);

    const mapped = await cli('compile', spec, '-o', file('out-map'), '--weights', file('renamed.safetensors'), '--map', '=model.', '--map', 'logits.dense1.=model.classifier.');
    expectNoCrash(mapped);
    expect(mapped.output).not.toMatch(/CNN800/);
    expect(mapped.code).toBe(0);

    fs.writeFileSync(file('map.json'), JSON.stringify({ '': 'model.', 'logits.dense1.weight': 'model.classifier.weight', 'logits.dense1.bias': 'model.classifier.bias' }));
    const fromFile = await cli('eval', spec, '--weights', file('renamed.safetensors'), '--map-file', file('map.json'), '--data', 'fashion-mnist-subset');
    expectNoCrash(fromFile);
    expect(fromFile.code).toBe(0);

    // a wrong mapping says where it looked
    const wrong = await cli('compile', spec, '-o', file('out-map'), '--weights', file('renamed.safetensors'), '--map', '=model.');
    expect(wrong.code).toBe(1);
    expect(wrong.output).toMatch(/error CNN8002: weights lack 'logits\.dense1\.weight' \(expected shape \[10, 4\]\)\n\s*hint: looked for 'model\.logits\.dense1\.weight'/);

    fs.writeFileSync(file('bad-map.json'), '{ "a": 3 }');
    const badFile = await cli('compile', spec, '-o', file('out-map'), '--weights', file('renamed.safetensors'), '--map-file', file('bad-map.json'));
    expectNoCrash(badFile);
    expect(badFile.code).toBe(1);
    expect(badFile.output).toMatch(/error CNN1006: cannot read '.*bad-map\.json': the weights name mapping: the value of 'a' is not a string/);
    const missingFile = await cli('train', spec, '-o', file('out-map'), '--weights', file('renamed.safetensors'), '--map-file', file('nope.json'), '--data', 'fashion-mnist-subset');
    expect(missingFile.code).toBe(1);
    expect(missingFile.output).toMatch(/error CNN1006: .*nope\.json.*no such file/);
    const usage = await cli('compile', spec, '-o', file('out-map'), '--weights', file('renamed.safetensors'), '--map', 'no-equals-sign');
    expect(usage.code).toBe(2);
  });
});

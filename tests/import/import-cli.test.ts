/**
 * `convspec import MODEL.onnx -o DIR` as users run it:
 *   - networks exported by `torch.onnx.export` (Debian's python3-torch; tests/import/torch_models.py defines a
 *     torchvision-style ResNet-18, a small MobileNet-style net with depthwise convs and ReLU6, and a net of the
 *     activations torch writes as several nodes — SiLU, Hardswish, exact GELU — with an upsample): the import
 *     writes DIR/<Model>.cnn and DIR/<Model>.safetensors with PyTorch's names; `check` and `summary` accept the
 *     spec; the tfjs engine, running the spec with the weights file, gives ONNX Runtime's outputs on the
 *     original file (1e-4 of the largest output);
 *   - repeated residual blocks become a `block`, checked to reproduce the graph; `--flat` keeps one statement
 *     per layer;
 *   - unsupported ops: one CNN8006 per op type, all in one run, exit 1, no files; files that are not ONNX models:
 *     exit 1, no files.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkSpec } from '../../src/check.js';
import { main } from '../../src/cli/main.js';
import { decodeModel, OnnxGraphBuilder, tensorProtoToArray } from '../../src/codegen/onnx-model.js';
import { OrtEngine } from '../../src/runtime/ort/engine.js';
import { createEngine } from '../../src/runtime/tfjs/index.js';
import { loadWeightsFile } from '../../src/runtime/weights-file.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const PYTHON = '/usr/bin/python3';

function torchAvailable(): boolean {
  if (!fs.existsSync(PYTHON)) return false;
  return spawnSync(PYTHON, ['-c', 'import torch, onnx'], { stdio: 'ignore', timeout: 60_000 }).status === 0;
}

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

async function cli(...args: string[]): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(['node', 'convspec', ...args], { out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, stdout: out.join('\n'), stderr: err.join('\n') };
}

function expectNoCrash(run: Run): void {
  expect(run.code).not.toBe(3);
  expect(`${run.stdout}\n${run.stderr}`).not.toMatch(/internal error|\n\s+at .+:\d+:\d+/);
}

/** Learnable parameters of an ONNX file: its float initializers (torch folds BN into the convs). */
function initializerCount(file: string): number {
  return decodeModel(fs.readFileSync(file)).graph.initializer.reduce((sum, t) => sum + tensorProtoToArray(t).data.length, 0);
}

describe('convspec import', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'convspec-import-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  describe.skipIf(!torchAvailable())('networks exported by torch.onnx.export', () => {
    beforeAll(() => {
      const result = spawnSync(PYTHON, [path.join(here, 'torch_models.py'), dir], { encoding: 'utf8', timeout: 240_000 });
      if (result.status !== 0) throw new Error(`torch export failed: ${result.stderr}`);
    }, 240_000);

    const models = [
      { file: 'resnet18.onnx', model: 'Resnet18', size: 64, classes: 1000, io: ['image', 'logits'], names: ['conv1.weight', 'layer2.0.downsample.0.weight', 'layer4.1.conv2.bias', 'fc.weight'], text: /block residual\(c: int\) \(x\) \{/ },
      { file: 'mobilenet.onnx', model: 'Mobilenet', size: 32, classes: 10, io: ['image', 'logits'], names: ['features.0.0.weight', 'features.1.conv.1.0.weight', 'classifier.1.weight'], text: /relu6 as "features\.1\.conv\.0\.2"/ },
      // `input` and `output` are keywords: the spec calls them input_ and output_.
      { file: 'activations.onnx', model: 'Activations', size: 16, classes: 4, io: ['input_', 'output_'], names: ['conv.weight', 'head.weight'], text: /silu = conv -> swish as "silu"\n.*hardswish = silu -> hard_swish as "hardswish"\n.*gelu = hardswish -> gelu as "gelu"\n.*upsample\(scale: \[2, 2\], mode: nearest\)/ },
    ];

    for (const { file, model, size, classes, io, names, text: expectedText } of models) {
      it(`${file}: import, check, summary, and the tfjs engine gives ONNX Runtime's outputs`, async () => {
        const onnxFile = path.join(dir, file);
        const out = path.join(dir, `${model}-import`);
        const run = await cli('import', onnxFile, '-o', out);
        expectNoCrash(run);
        expect(run.stderr).toBe('');
        expect(run.code).toBe(0);
        const spec = path.join(out, `${model}.cnn`);
        const weightsFile = path.join(out, `${model}.safetensors`);
        expect(run.stdout).toContain(`wrote ${spec} and ${weightsFile}`);
        const text = fs.readFileSync(spec, 'utf8');
        expect(text).toMatch(new RegExp(`^// ${model}, imported by 'convspec import' from ${file} \\(written by pytorch`));
        expect(text).toMatch(expectedText);

        const check = await cli('check', spec);
        expectNoCrash(check);
        expect(check.code).toBe(0);
        const summary = await cli('summary', spec, '--json');
        expect(summary.code).toBe(0);
        const table = JSON.parse(summary.stdout) as { totals: { params: number }; outputs: { name: string; shape: unknown[] }[] };
        expect(table.totals.params).toBe(initializerCount(onnxFile));
        expect(table.outputs).toEqual([{ name: io[1], shape: ['N', classes] }]);

        // The spec and the weights file, as `--weights` reads them: complete, under PyTorch's names.
        const graph = checkSpec(spec).graph!;
        const loaded = loadWeightsFile(weightsFile, graph);
        expect(loaded.diagnostics).toEqual([]);
        for (const name of names) expect(loaded.loaded).toContain(name);

        const dims = [2, 3, size, size];
        const data = new Float32Array(dims.reduce((a, b) => a * b, 1));
        let state = 5;
        for (let i = 0; i < data.length; i++) {
          state = (Math.imul(state, 1103515245) + 12345) >>> 0;
          data[i] = (state / 4294967296) * 2 - 1;
        }
        const ort = await OrtEngine.create(onnxFile);
        const onnxIo = io.map((name) => name.replace(/_$/, ''));
        const expected = (await ort.run({ [onnxIo[0]!]: { data, dims } }))[onnxIo[1]!]!;
        await ort.dispose();
        const engine = await createEngine(graph, loaded.weights!);
        const found = (await engine.predict({ [io[0]!]: { data, dims } }))[io[1]!]!;
        engine.dispose();
        expect(found.dims).toEqual(expected.dims);
        let scale = 0;
        let difference = 0;
        for (let i = 0; i < expected.data.length; i++) {
          scale = Math.max(scale, Math.abs(expected.data[i]!));
          difference = Math.max(difference, Math.abs(expected.data[i]! - found.data[i]!));
        }
        expect(scale).toBeGreaterThan(0);
        expect(difference).toBeLessThanOrEqual(1e-4 * scale);
      });
    }

    it('--flat writes one statement per layer; --name names the model and the files', async () => {
      const run = await cli('import', path.join(dir, 'resnet18.onnx'), '-o', path.join(dir, 'flat'), '--flat', '--name', 'TorchResNet');
      expect(run.code).toBe(0);
      const text = fs.readFileSync(path.join(dir, 'flat', 'TorchResNet.cnn'), 'utf8');
      expect(text).not.toMatch(/^block /m);
      expect(text).toMatch(/^model TorchResNet \{/m);
      expect(text).toContain('layer1_0_conv1 = maxpool -> conv(64, [3, 3], stride: [1, 1], pad: [[1, 1], [1, 1]], dilation: [1, 1], groups: 1, bias: true) as "layer1.0.conv1"');
      expect(fs.existsSync(path.join(dir, 'flat', 'TorchResNet.safetensors'))).toBe(true);
      expect((await cli('import', path.join(dir, 'resnet18.onnx'), '-o', path.join(dir, 'flat'), '--name', 'not a name')).code).toBe(2);
    });
  });

  it('reports every unsupported op in one run (one CNN8006 per op type), exits 1 and writes nothing', async () => {
    const builder = new OnnxGraphBuilder();
    builder.addInput('x', 'float32', ['N', 4, 8, 8]);
    builder.addInitializer('w', [4, 4, 3, 3], new Float32Array(144).fill(0.01));
    builder.addNode('Conv', ['x', 'w'], ['c'], 'conv', { pads: [1, 1, 1, 1] });
    builder.addNode('Erf', ['c'], ['e'], 'erf');
    builder.addNode('Relu', ['e'], ['r'], 'relu');
    builder.addNode('LpNormalization', ['r'], ['n1'], 'norm1');
    builder.addNode('LpNormalization', ['n1'], ['n2'], 'norm2');
    builder.addNode('Einsum', ['n2'], ['y'], 'einsum', { equation: 'nchw->nchw' });
    builder.addOutput('y', 'float32', ['N', 4, 8, 8]);
    const file = path.join(dir, 'unsupported.onnx');
    fs.writeFileSync(file, builder.build({ opset: 17, producerName: 'test', producerVersion: '1', graphName: 'unsupported' }));
    const out = path.join(dir, 'unsupported-out');
    const run = await cli('import', file, '-o', out);
    expectNoCrash(run);
    expect(run.code).toBe(1);
    const errors = run.stderr.split('\n').filter((l) => /^error CNN8006/.test(l));
    expect(errors).toEqual([
      "error CNN8006: ONNX op 'Erf' (node 'erf') has no convspec equivalent",
      "error CNN8006: ONNX op 'LpNormalization' (node 'norm1') has no convspec equivalent",
      "error CNN8006: ONNX op 'Einsum' (node 'einsum') has no convspec equivalent",
    ]);
    expect(run.stderr).toContain("hint: 1 more node uses it: 'norm2'");
    expect(run.stderr).toMatch(/3 errors, 0 warnings; nothing written/);
    expect(fs.existsSync(out)).toBe(false);
  });

  it('files that are not ONNX models: exit 1, no files', async () => {
    const cases: Array<[string, Uint8Array | string, RegExp]> = [
      ['text.onnx', 'not a model\n', /error CNN1006: cannot read '.*text\.onnx': not an ONNX model/],
      ['empty.onnx', '', /error CNN1006: cannot read '.*empty\.onnx': the file is empty/],
      ['random.onnx', Uint8Array.from({ length: 300 }, (_, i) => (i * 7919 + 13) % 251), /error CNN1006/],
    ];
    for (const [name, contents, message] of cases) {
      fs.writeFileSync(path.join(dir, name), contents);
      const run = await cli('import', path.join(dir, name), '-o', path.join(dir, 'bad-out'));
      expectNoCrash(run);
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(message);
    }
    const missing = await cli('import', path.join(dir, 'missing.onnx'), '-o', path.join(dir, 'bad-out'));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/error CNN1006: cannot read '.*missing\.onnx': no such file/);
    expect(fs.existsSync(path.join(dir, 'bad-out'))).toBe(false);
  });
});

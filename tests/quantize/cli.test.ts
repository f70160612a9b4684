/**
 * `convspec quantize` end to end on a tiny Fashion-MNIST spec with the embedded subset: the files, the report's
 * fields (per-layer SQNR, accuracy float vs int8 in ORT, size, kernels, checker), the methods, exclusions from
 * the flag and from the spec comment, and usage errors.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkSpec } from '../../src/check.js';
import { initializeWeights } from '../../src/ir/weights.js';
import { writeWeightsFile } from '../../src/runtime/checkpoint.js';
import { runCli, temporaryDirectory, TINY_SPEC } from './helpers.js';


const dir = temporaryDirectory('quantize-cli');
const spec = path.join(dir, 'tiny.cnn');
const weights = path.join(dir, 'tiny.safetensors');

beforeAll(() => {
  fs.writeFileSync(spec, TINY_SPEC);
  const checked = checkSpec(spec);
  writeWeightsFile(weights, initializeWeights(checked.graph!, 1));
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

interface Report {
  layers: Array<{ name: string; role: string; outputSqnrDb?: number; weightSqnrDb?: number }>;
  accuracy: { samples: number; floatOrt: number; int8Ort: number; deltaPoints: number; int8FakeQuant: { accuracy: number; int8OrtSameSamples: number } };
  size: { floatBytes: number; int8Bytes: number; ratio: number };
  ortKernels: { int8: Record<string, number>; unfusedFloatOps: number };
  checker: Record<string, string>;
  exclude: string[];
  float: string[];
  method: string;
  notes: string[];
}

function readReport(out: string): Report {
  return JSON.parse(fs.readFileSync(path.join(out, 'Tiny.quantize.json'), 'utf8')) as Report;
}

const common = ['--weights', weights, '--calib', 'fashion-mnist-subset', '--batches', '2', '--eval-samples', '200', '--no-latency', '--backend', 'wasm'];

describe('convspec quantize', () => {
  it('writes the int8 and float files and a report with sane figures', async () => {
    const out = path.join(dir, 'minmax');
    const run = await runCli(['quantize', spec, ...common, '-o', out]);
    expect(run.code, run.stderr).toBe(0);
    expect(fs.existsSync(path.join(out, 'Tiny.int8.onnx'))).toBe(true);
    expect(fs.existsSync(path.join(out, 'Tiny.onnx'))).toBe(true);
    const report = readReport(out);
    expect(report.method).toBe('minmax');
    expect(report.layers.filter((l) => l.role === 'int8').map((l) => l.name)).toEqual(['stem.conv1', 'b.conv1', 's.add1', 'logits.conv1', 'logits.globalavgpool1', 'logits.dense1']);
    for (const layer of report.layers) {
      if (layer.weightSqnrDb !== undefined) expect(layer.weightSqnrDb, layer.name).toBeGreaterThan(30);
      expect(layer.outputSqnrDb, layer.name).toBeGreaterThan(15);
    }
    expect(report.accuracy.samples).toBe(200);
    expect(Math.abs(report.accuracy.deltaPoints)).toBeLessThan(10);
    // the fake-quant engine and ORT's int8 kernels agree on the same samples
    expect(Math.abs(report.accuracy.int8FakeQuant.accuracy - report.accuracy.int8FakeQuant.int8OrtSameSamples)).toBeLessThan(0.02);
    expect(report.size.int8Bytes).toBeLessThan(report.size.floatBytes);
    expect(report.ortKernels.int8['com.microsoft.QLinearConv']).toBe(3);
    expect(report.ortKernels.unfusedFloatOps).toBe(0);
    for (const verdict of Object.values(report.checker)) expect(verdict).toMatch(/^(valid|not checked)/);
    expect(report.notes.join(' ')).toMatch(/tfjs target gets no int8 arithmetic/);
    expect(run.stdout).toMatch(/accuracy \(ONNX Runtime, 200 test samples\)/);
    expect(run.stdout).toMatch(/W SQNR dB/);
  });

  it('entropy and percentile calibrate too; exclusions come from the flag and from the spec', async () => {
    const out = path.join(dir, 'entropy');
    const commented = path.join(dir, 'commented.cnn');
    fs.writeFileSync(commented, `// quantize: exclude logits.dense1\n${TINY_SPEC}`);
    const run = await runCli(['quantize', commented, ...common, '--weights', weights, '--method', 'entropy', '--exclude', 'stem.*', '-o', out]);
    expect(run.code, run.stderr).toBe(0);
    const report = readReport(out);
    expect(report.method).toBe('entropy');
    expect(report.exclude).toEqual(['stem.*', 'logits.dense1']);
    const names = report.layers.map((l) => l.name);
    expect(names).not.toContain('stem.conv1');
    expect(names).not.toContain('logits.dense1');
    expect(report.float).toContain('stem.conv1: stays float (excluded)');
    const percentile = await runCli(['quantize', spec, ...common, '--method', 'percentile', '--percentile', '99.9', '-o', path.join(dir, 'percentile')]);
    expect(percentile.code, percentile.stderr).toBe(0);
  });

  it('usage errors exit 2 without a stack trace', async () => {
    const bad = await runCli(['quantize', spec, ...common, '--method', 'kl', '-o', path.join(dir, 'bad')]);
    expect(bad.code).toBe(2);
    const missing = await runCli(['quantize', spec, '--weights', weights, '-o', path.join(dir, 'bad')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).not.toMatch(/\n\s+at /);
  });
});

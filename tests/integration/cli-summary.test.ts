/**
 * Acceptance: `convspec summary --json` for the ResNets in specs/ reports the contract of CLI.md — output
 * ["N", 1000], 11,689,512 / 25,557,032 parameters and 1,814,073,344 / 4,089,184,256 MACs (torchvision's figures) —
 * with the JSON fields CLI.md names, per-layer rows that add up to the totals, and the stem's row as CLI.md shows it.
 */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { convspec, SPECS_DIR } from './helpers.js';

interface SummaryJson {
  model: string;
  inputs: Array<{ name: string; shape: Array<number | string> }>;
  outputs: Array<{ name: string; shape: Array<number | string> }>;
  layers: Array<{
    name: string;
    op: string;
    shape: Array<number | string>;
    params: number;
    macs: number;
    flops: number;
    rf?: { size: number[]; stride: number[]; padding: number[] };
  }>;
  totals: { params: number; trainable: number; macs: number; flops: number };
}

const cases = [
  { file: 'resnet18.cnn', model: 'ResNet18', params: 11_689_512, macs: 1_814_073_344 },
  { file: 'resnet50.cnn', model: 'ResNet50', params: 25_557_032, macs: 4_089_184_256 },
];

describe('convspec summary --json (CLI.md contract)', () => {
  for (const expected of cases) {
    it(`${expected.file}: output [N, 1000], ${expected.params} params, ${expected.macs} MACs`, async () => {
      const run = await convspec('summary', path.join(SPECS_DIR, expected.file), '--json');
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      const summary = JSON.parse(run.stdout) as SummaryJson;

      expect(Object.keys(summary)).toEqual(expect.arrayContaining(['model', 'inputs', 'outputs', 'layers', 'totals']));
      expect(summary.model).toBe(expected.model);
      expect(summary.inputs).toEqual([{ name: 'image', shape: ['N', 3, 224, 224] }]);
      expect(summary.outputs).toEqual([{ name: 'logits', shape: ['N', 1000] }]);
      expect(summary.totals).toMatchObject({ params: expected.params, trainable: expected.params, macs: expected.macs });
      expect(summary.totals.flops).toBeGreaterThanOrEqual(2 * expected.macs); // 2 × MACs for conv/dense, plus element-wise work

      // every row has the fields CLI.md names, with numbers where numbers belong, and the rows add up
      for (const layer of summary.layers) {
        expect(Object.keys(layer), layer.name).toEqual(expect.arrayContaining(['name', 'op', 'shape', 'params', 'macs', 'flops']));
        expect(layer.shape[0], layer.name).toBe('N');
        for (const key of ['params', 'macs', 'flops'] as const) expect(Number.isInteger(layer[key]) && layer[key] >= 0, `${layer.name}.${key}`).toBe(true);
        if (layer.macs > 0) expect(layer.flops, layer.name).toBe(2 * layer.macs);
      }
      expect(summary.layers.reduce((sum, l) => sum + l.params, 0)).toBe(expected.params);
      expect(summary.layers.reduce((sum, l) => sum + l.macs, 0)).toBe(expected.macs);
      expect(new Set(summary.layers.map((l) => l.name)).size).toBe(summary.layers.length);

      // the stem conv: CLI.md's example row (7×7/2 conv, 3 → 64, 112×112)
      const stem = summary.layers[0]!;
      expect(stem).toMatchObject({
        op: 'conv2d',
        shape: ['N', 64, 112, 112],
        params: 9408,
        macs: 118_013_952,
        flops: 236_027_904,
        rf: { size: [7, 7], stride: [2, 2], padding: [3, 3] },
      });
      expect(stem.name).toMatch(/^stem\.conv/);
      const last = summary.layers.at(-1)!;
      expect(last).toMatchObject({ op: 'dense', shape: ['N', 1000], params: 1000 * (expected.file === 'resnet18.cnn' ? 512 : 2048) + 1000 });
    });
  }
});

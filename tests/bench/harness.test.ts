/**
 * The benchmark harness (bench/): the report says met / unmet / not measured for each target with the ratio in
 * plain words, never invents a missing figure, and a whole run on a trivial group writes BENCHMARKS.md and a
 * PNG chart where it is told to.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

import { afterAll, describe, expect, it } from 'vitest';

import { renderBarChart, renderLineChart } from '../../bench/chart.js';
import { evaluateTarget, formatValue, renderGpu, renderMarkdown, statusCell, type Results, type Row } from '../../bench/lib/render.js';
import { fitPowerLaw, median } from '../../bench/lib/stats.js';

const root = path.resolve(import.meta.dirname, '..', '..');
const scratch = mkdtempSync(path.join(os.tmpdir(), 'convspec-bench-test-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

const machine: Results['machine'] = {
  cpu: 'Test CPU', cores: 2, memoryGiB: 4, os: 'TestOS', arch: 'x64', node: 'v20.0.0', onnxruntime: '1.30.0',
  tfjs: '4.22.0', torch: '1.13.0', onnx: '1.12.0', torchvision: 'not installed', date: '2026-01-01T00:00:00Z',
};

describe('targets', () => {
  const faster: Row = { name: 'compile', unit: 's', convspec: 0.5, peer: 10, target: { on: 'ratio', op: '<=', value: 0.1 } };
  const slower: Row = { name: 'compile', unit: 's', convspec: 5, peer: 2, target: { on: 'ratio', op: '<=', value: 0.1 } };
  const absolute: Row = { name: 'check', unit: 's', convspec: 0.62, peer: null, target: { on: 'convspec', op: '<', value: 0.5 } };
  const missing: Row = { name: 'train', unit: 'img/s', convspec: null, peer: 300, unavailable: { convspec: 'no train command' }, target: { on: 'ratio', op: '>=', value: 0.5 } };

  it('compares the ratio convspec ÷ peer, or convspec’s own figure, with the target', () => {
    expect(evaluateTarget(faster)).toMatchObject({ status: 'met', measured: 0.05 });
    expect(evaluateTarget(slower)).toMatchObject({ status: 'unmet', measured: 2.5 });
    expect(evaluateTarget(absolute)).toMatchObject({ status: 'unmet', measured: 0.62 });
    expect(evaluateTarget(missing)).toMatchObject({ status: 'not measured', measured: null });
  });

  it('says "unmet: ratio x" plainly, and near 1 with enough digits to tell 1.02 from 1.002', () => {
    expect(statusCell(faster)).toBe('✅ met');
    expect(statusCell(slower)).toBe('❌ unmet: ratio 2.50');
    expect(statusCell(absolute)).toBe('❌ unmet: 620 ms');
    expect(statusCell(missing)).toBe('⚪ not measured');
    expect(statusCell({ name: 'x', convspec: 1.0242, peer: 1, target: { on: 'ratio', op: '<=', value: 1.02 } })).toBe('❌ unmet: ratio 1.024');
  });

  it('formats the units the groups use', () => {
    expect(formatValue(0.3123, 's')).toBe('312 ms');
    expect(formatValue(6.87, 's')).toBe('6.87 s');
    expect(formatValue(102_507_294, 'bytes')).toBe('102.5 MB');
    expect(formatValue(575.2, 'img/s')).toBe('575 img/s');
    expect(formatValue(null, 's')).toBe('n/a');
  });

  it('renders a table per family, the unmet targets first, and the reason for each missing figure', () => {
    const markdown = renderMarkdown({
      machine,
      seconds: 12,
      groups: [
        { name: 'compile', title: 'Compile speed', peer: 'PyTorch', rows: [faster, slower, absolute], charts: [{ title: 'c', link: 'bench/charts/compile.png' }] },
        { name: 'training', title: 'Training throughput', peer: 'PyTorch', rows: [missing] },
        { name: 'broken', title: 'Broken', rows: [], error: 'boom' },
      ],
    });
    expect(markdown).toContain('| CPU | Test CPU |');
    expect(markdown).toContain('1 met, 2 unmet, 1 not measured.');
    expect(markdown).toContain('- ❌ compile / compile: unmet: ratio 2.50 (target ratio ≤ 0.1)');
    expect(markdown).toContain('| compile | 500 ms | 10.0 s | 0.0500× | ratio ≤ 0.1 | ✅ met |');
    expect(markdown).toContain('| train | not available | 300 img/s | n/a |');
    expect(markdown).toContain('- train, convspec: no train command');
    expect(markdown).toContain('![c](bench/charts/compile.png)');
    expect(markdown).toContain('**The group failed**: boom');
  });
});

describe('GPU section', () => {
  it('shows each tfjs backend next to PyTorch on CUDA, with the reason for every missing figure', () => {
    const lines = renderGpu({
      gpu: 'Test GPU',
      date: '2026-01-01',
      convspec: {
        tensorflow: { backend: 'tensorflow', available: false, reason: 'tfjs-node-gpu is not installed' },
        webgpu: { backend: 'webgpu', selected: 'webgpu', backendConv: { gflops: 1234.5 }, inference: { available: false, reason: 'no createEngine' }, training: { available: true, imagesPerSecond: 5000 } },
      },
      pytorch: { available: true, torch: '2.1', inference_ms: { resnet18_b1: 2.5 }, training: { images_per_s: 20000 } },
    });
    expect(lines).toContain('| workload | convspec (tfjs tensorflow) | convspec (tfjs webgpu) | PyTorch 2.1 CUDA |');
    expect(lines).toContain('| ResNet-18, batch 1, latency | n/a | n/a | 2.50 ms |');
    expect(lines).toContain('| Fashion-MNIST CNN training, batch 64 | n/a | 5,000 img/s | 20,000 img/s |');
    expect(lines).toContain('- convspec on tfjs tensorflow: tfjs-node-gpu is not installed');
    expect(lines).toContain('- convspec on tfjs webgpu, inference: no createEngine');
  });
});

describe('statistics and charts', () => {
  it('takes the median and fits the exponent of a power law', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 2, 3])).toBe(2.5);
    const ns = [1000, 2000, 5000, 10000];
    expect(fitPowerLaw(ns, ns.map((n) => 3e-4 * n)).exponent).toBeCloseTo(1, 10);
    expect(fitPowerLaw(ns, ns.map((n) => 1e-8 * n * n)).exponent).toBeCloseTo(2, 10);
  });

  it('draws PNG bar and line charts, leaving gaps for missing values', () => {
    const bar = renderBarChart({ title: 'latency ×', unit: 'ms', categories: ['a', 'b'], series: [{ name: 'convspec', values: [1, null] }, { name: 'peer', values: [2, 3] }], log: true });
    const line = renderLineChart({ type: 'line', title: 'scaling', series: [{ name: 'check', points: [[1000, 0.4], [10000, 2]] }] });
    expect(bar.subarray(0, 8).equals(PNG_SIGNATURE)).toBe(true);
    expect(line.subarray(0, 8).equals(PNG_SIGNATURE)).toBe(true);
  });
});

describe('bench/run.js', () => {
  it('runs a trivial group in quick mode and writes the report and its chart where it is told to', async () => {
    const groups = path.join(scratch, 'groups');
    const out = path.join(scratch, 'report', 'BENCHMARKS.md');
    const charts = path.join(scratch, 'report', 'bench', 'charts');
    await import('node:fs').then((fs) => fs.mkdirSync(groups, { recursive: true }));
    writeFileSync(
      path.join(groups, 'trivial.js'),
      `export const name = 'trivial';
export const title = 'Trivial family';
export const peer = 'Peer';
export async function run(ctx) {
  let n = 0;
  const measured = await ctx.sideBySide({ convspec: async () => 1 + (n++ % 2), peer: async () => 4 }, { reps: ctx.reps(5) });
  const missing = await ctx.sideBySide({ convspec: async () => ctx.unavailable('no such engine here'), peer: async () => 10 }, { reps: 1 });
  return [
    ctx.row('halved', 's', measured, { target: { on: 'ratio', op: '<=', value: 0.5 } }),
    ctx.row('absent', 's', missing, { target: { on: 'ratio', op: '<=', value: 1.02 } }),
  ];
}
`,
    );
    const { stderr } = await promisify(execFile)(process.execPath, [path.join(root, 'bench', 'run.js'), '--quick', '--no-peers', '--groups-dir', groups, '--out', out, '--charts-dir', charts], { cwd: root, timeout: 60_000 });
    expect(stderr).toContain('wrote');
    const markdown = readFileSync(out, 'utf8');
    // quick mode: ctx.reps(5) = 2 repetitions, samples 1 and 2 → median 1.5 s against 4 s → ratio 0.375
    expect(markdown).toContain('| halved | 1.50 s | 4.00 s | 0.375× | ratio ≤ 0.5 | ✅ met |');
    expect(markdown).toContain('| absent | not available | 10.0 s | n/a | ratio ≤ 1.02 | ⚪ not measured |');
    expect(markdown).toContain('- absent, convspec: no such engine here');
    expect(markdown).toContain('PyTorch | unavailable (peers disabled (--no-peers))');
    expect(markdown).toContain('![Trivial family](bench/charts/trivial.png)');
    expect(readFileSync(path.join(charts, 'trivial.png')).subarray(0, 8).equals(PNG_SIGNATURE)).toBe(true);
    expect(existsSync(path.join(scratch, 'report', 'BENCHMARKS.json'))).toBe(true);
  }, 30_000);
});

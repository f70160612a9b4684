/**
 * Backend selection: 'auto' picks the best backend that works here and says why better ones were
 * skipped; explicit preferences either work or throw with the reason; selection is quiet.
 * (On the development machine neither tfjs-node nor a GPU adapter exists, so 'auto' gives wasm.)
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import * as tf from '@tensorflow/tfjs';
import { afterEach, describe, expect, it, vi } from 'vitest';

import { selectBackend, type BackendPreference } from '../../src/runtime/tfjs/backend.js';

const requireFromHere = createRequire(import.meta.url);

function isInstalled(packageName: string): boolean {
  try {
    requireFromHere.resolve(packageName);
    return true;
  } catch {
    return false;
  }
}

const tensorflowInstalled = isInstalled('@tensorflow/tfjs-node-gpu') || isInstalled('@tensorflow/tfjs-node');

afterEach(() => {
  vi.restoreAllMocks();
});

describe('selectBackend', () => {
  it("'auto' runs on the best available backend and gives one reason per better backend skipped", async () => {
    const consoleCalls = (['log', 'info', 'warn', 'error', 'debug'] as const).map(
      (method) => vi.spyOn(console, method).mockImplementation(() => undefined));
    const selection = await selectBackend('auto');
    expect(tf.getBackend()).toBe(selection.name);
    const order = ['tensorflow', 'webgpu', 'wasm', 'cpu'];
    const skipped = order.slice(0, order.indexOf(selection.name));
    expect(selection.reasons).toHaveLength(skipped.length);
    selection.reasons.forEach((reason, index) => {
      expect(reason.startsWith(`${skipped[index]}: `)).toBe(true);
      expect(reason).not.toContain('\n');
    });
    if (!tensorflowInstalled) {
      expect(selection.reasons[0]).toBe(
        'tensorflow: @tensorflow/tfjs-node-gpu is not installed; @tensorflow/tfjs-node is not installed');
    }
    for (const spy of consoleCalls) {
      expect(spy).not.toHaveBeenCalled();
    }
    // A tf op runs on the selected backend and gives the right answer.
    const sum = tf.tidy(() => tf.sum(tf.tensor1d([1, 2, 3])).dataSync()[0]);
    expect(sum).toBe(6);
  });

  it.runIf(!tensorflowInstalled)("resolves to wasm on a machine without tfjs-node or a GPU adapter", async () => {
    const selection = await selectBackend('auto');
    if (selection.name === 'webgpu') {
      return; // This machine has a GPU adapter: nothing more to check here.
    }
    expect(selection.name).toBe('wasm');
    expect(selection.reasons[1]).toMatch(/^webgpu: /);
  });

  it("an explicit 'cpu' works and reports nothing skipped", async () => {
    await expect(selectBackend('cpu')).resolves.toEqual({ name: 'cpu', reasons: [] });
    expect(tf.getBackend()).toBe('cpu');
  });

  it("an explicit 'wasm' works, with the composed gradient kernels registered", async () => {
    await expect(selectBackend('wasm')).resolves.toEqual({ name: 'wasm', reasons: [] });
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeDefined();
    // Selecting again (already initialised) works too.
    await expect(selectBackend('wasm')).resolves.toEqual({ name: 'wasm', reasons: [] });
  });

  it.runIf(!tensorflowInstalled)("an explicit 'tensorflow' that is not installed throws with the reason", async () => {
    await expect(selectBackend('tensorflow')).rejects.toThrow(
      "backend 'tensorflow' is unavailable: @tensorflow/tfjs-node-gpu is not installed; " +
      '@tensorflow/tfjs-node is not installed');
  });

  it("an explicit 'webgpu' either runs or throws with a clear reason", async () => {
    try {
      const selection = await selectBackend('webgpu');
      expect(selection).toEqual({ name: 'webgpu', reasons: [] });
    } catch (error) {
      expect((error as Error).message).toMatch(/^backend 'webgpu' is unavailable: \S/);
    }
    await selectBackend('cpu');
  });

  it('an unknown preference throws, naming the valid ones', async () => {
    await expect(selectBackend('tpu' as BackendPreference)).rejects.toThrow(
      "unknown backend 'tpu': expected one of auto, tensorflow, webgpu, wasm, cpu");
  });
});

// The thread count is fixed when the wasm backend first initialises, so the threaded build runs in a child
// process (on the compiled library in dist/, which `npm test` builds first).
const backendModule = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../dist/runtime/tfjs/backend.js');

describe('wasm threads', () => {
  it.runIf(existsSync(backendModule))('2 threads start in Node, compute what 1 thread computes, and let the process exit', async () => {
    const script = [
      "import * as tf from '@tensorflow/tfjs';",
      `const { selectBackend, wasmThreads } = await import(${JSON.stringify(pathToFileURL(backendModule).href)});`,
      "const selection = await selectBackend('wasm', { threads: 2 });",
      'const x = tf.tensor4d(Array.from({ length: 2 * 9 * 9 * 3 }, (_, i) => Math.sin(i)), [2, 9, 9, 3]);',
      'const w = tf.tensor4d(Array.from({ length: 3 * 3 * 3 * 4 }, (_, i) => Math.cos(i)), [3, 3, 3, 4]);',
      "const y = tf.conv2d(x, w, 1, 'same');",
      'process.stdout.write(JSON.stringify({ selection, threads: wasmThreads(), y: Array.from(y.dataSync()) }));',
    ].join('\n');
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, ['--input-type=module', '--eval', script], { cwd: path.dirname(backendModule), timeout: 60_000 }, (error, out, err) => {
        if (error) reject(new Error(`${error.message}\n${err}`));
        else resolve(out);
      });
    });
    const report = JSON.parse(stdout) as { selection: { name: string; reasons: string[] }; threads: number; y: number[] };
    expect(report.selection).toEqual({ name: 'wasm', reasons: [] });
    expect(report.threads).toBe(2);
    await selectBackend('wasm');
    const x = tf.tensor4d(Array.from({ length: 2 * 9 * 9 * 3 }, (_, i) => Math.sin(i)), [2, 9, 9, 3]);
    const w = tf.tensor4d(Array.from({ length: 3 * 3 * 3 * 4 }, (_, i) => Math.cos(i)), [3, 3, 3, 4]);
    const expected = tf.tidy(() => Array.from(tf.conv2d(x, w, 1, 'same').dataSync()));
    tf.dispose([x, w]);
    expect(report.y).toHaveLength(expected.length);
    report.y.forEach((value, i) => expect(value).toBeCloseTo(expected[i]!, 4));
  }, 90_000);
});

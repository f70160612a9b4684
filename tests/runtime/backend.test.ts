/**
 * Backend selection: 'auto' picks the best backend that works here and says why better ones were
 * skipped; explicit preferences either work or throw with the reason; selection is quiet.
 * (On the development machine neither tfjs-node nor a GPU adapter exists, so 'auto' gives wasm.)
 */
import { createRequire } from 'node:module';

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

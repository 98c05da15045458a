// Backend selection: a missing tfjs-node is a BackendError with an install hint; cpu works and is chosen once per
// process. selectBackend keeps module state, so these tests live in their own file (vitest forks per file) and run
// in order: the failed 'tensorflow' request must come before any successful choice.
import * as tf from '@tensorflow/tfjs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { BACKENDS, currentBackend, selectBackend } from '../../src/backend/index.js';
import { BackendError } from '../../src/util/errors.js';
import { resolveRunConfig } from '../../src/config/run.js';

function resolves(pkg: string): boolean {
  try {
    createRequire(import.meta.url).resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

const hasTfNode = resolves('@tensorflow/tfjs-node') || resolves('@tensorflow/tfjs-node-gpu');

describe('selectBackend', () => {
  it('--backend accepts exactly the backends selectBackend knows, and nothing is chosen before a call', () => {
    for (const b of BACKENDS) expect(resolveRunConfig({ backend: b }).backend).toBe(b);
    expect(() => resolveRunConfig({ backend: 'gpu' })).toThrow(/^--backend: "gpu" \(expected one of auto\|tensorflow\|wasm\|cpu\|webgpu\)/);
    expect(currentBackend()).toBeNull();
  });

  it.skipIf(hasTfNode)("'tensorflow' without tfjs-node is a BackendError saying how to install it", async () => {
    const err = await selectBackend('tensorflow').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
    const msg = (err as Error).message;
    expect(msg).toMatch(/^--backend tensorflow: /);
    expect(msg).toContain('npm install @tensorflow/tfjs-node');
    expect(msg).toContain('--backend wasm|cpu');
    expect(currentBackend()).toBeNull(); // a failed request chooses nothing
  });

  it("'cpu' works, logs the backend and its kernels, and computes", async () => {
    const lines: string[] = [];
    const info = await selectBackend('cpu', (l) => lines.push(l));
    expect(info).toEqual({ name: 'cpu', package: '@tensorflow/tfjs-backend-cpu', gpu: false });
    expect(tf.getBackend()).toBe('cpu');
    expect(lines[0]).toBe('backend: cpu (@tensorflow/tfjs-backend-cpu), GPU not used');
    expect(lines[1]).toMatch(/^kernels: BatchMatMul=(blas|stock) /);
    const y = tf.tidy(() => tf.matMul(tf.tensor2d([[1, 2]]), tf.tensor2d([[3], [4]])).dataSync()[0]);
    expect(y).toBe(11);
  });

  it('is chosen once: auto and the same name return the first choice, another name is refused', async () => {
    const first = currentBackend();
    expect(await selectBackend('auto')).toBe(first);
    expect(await selectBackend('cpu')).toBe(first);
    await expect(selectBackend('wasm')).rejects.toThrow(BackendError);
    await expect(selectBackend('wasm')).rejects.toThrow(/--backend: wasm requested after cpu was chosen/);
    expect(tf.getBackend()).toBe('cpu');
  });
});

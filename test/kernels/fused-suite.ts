// The set-up of the fused-kernel tests: the wasm backend (its .wasm files from the package) with the addon's fused
// kernels switched on for wasm and cpu during the file, and off again, back on cpu, after it; and the helpers they
// share (seeded normal data, the largest difference, bit-for-bit equality).
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll } from 'vitest';
import { useFusedKernels } from '../../src/backend/kernels.js';
import type { Rng } from '../../src/util/rng.js';

const require = createRequire(import.meta.url);

export function withFusedKernelsOnWasm(): void {
  beforeAll(async () => {
    tf.env().set('PROD', true);
    setWasmPaths(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm')) + '/');
    await tf.setBackend('wasm');
    await tf.ready();
    useFusedKernels('wasm', true);
    useFusedKernels('cpu', true);
  });

  afterAll(async () => {
    useFusedKernels('wasm', false);
    useFusedKernels('cpu', false);
    await tf.setBackend('cpu');
  });
}

/** n draws of N(0, sd). */
export const normal = (rng: Rng, n: number, sd = 1): Float32Array => Float32Array.from({ length: n }, () => rng.normal(0, sd));

/** The largest |a[i] - b[i]|. */
export function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** The same float32 bits (NaN payloads and signed zeros included). */
export const sameBits = (a: Float32Array, b: Float32Array): boolean =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

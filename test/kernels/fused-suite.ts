// The set-up of the fused-kernel tests: the wasm backend (its .wasm files from the package) with the addon's fused
// kernels switched on for wasm and cpu during the file, and off again, back on cpu, after it.
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll } from 'vitest';
import { useFusedKernels } from '../../src/backend/kernels.js';

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

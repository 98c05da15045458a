// Picks the tfjs backend once: tensorflow (tfjs-node-gpu, then tfjs-node) > wasm > cpu; webgpu only when asked for.
// Nothing else in the code branches on the backend; a requested backend that is missing is a clear error.
// `auto` never picks webgpu: tfjs-node-gpu stays the default GPU backend, and a software adapter is slower than wasm.
import * as tf from '@tensorflow/tfjs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { BackendError, describe } from '../util/errors.js';
import { registerFastKernels } from './kernels.js';
import { checkWeightsFit, registerWebGpu, releaseWebGpu, webgpuAdapter } from './webgpu.js';

export type BackendName = 'auto' | 'tensorflow' | 'wasm' | 'cpu' | 'webgpu';
export const BACKENDS: readonly BackendName[] = ['auto', 'tensorflow', 'wasm', 'cpu', 'webgpu'];

export interface BackendInfo {
  name: 'tensorflow' | 'wasm' | 'cpu' | 'webgpu';
  /** Which package provided it, e.g. `@tensorflow/tfjs-node-gpu`. */
  package: string;
  /** True when tfjs-node-gpu loaded and TensorFlow reports a GPU device, or webgpu runs on a hardware adapter. */
  gpu: boolean;
}

const require = createRequire(import.meta.url);
let chosen: BackendInfo | null = null;

async function tryTensorflow(pkg: string): Promise<boolean> {
  try {
    await import(pkg);
  } catch {
    return false;
  }
  return tf.findBackend('tensorflow') !== null && (await tf.setBackend('tensorflow'));
}

async function tryWasm(): Promise<boolean> {
  try {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    // Node has no fetch path to the .wasm files; point tfjs at the installed package (never a CDN).
    const dist = dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'));
    wasm.setWasmPaths(dist + '/');
    return await tf.setBackend('wasm');
  } catch {
    return false;
  }
}

/**
 * webgpu on Dawn. A failed setBackend leaves tfjs' engine pointing at webgpu, so the engine is put back on cpu
 * explicitly and Dawn released before the error is thrown.
 */
async function tryWebGpu(): Promise<BackendInfo> {
  const adapter = await registerWebGpu();
  let why = 'setBackend returned false';
  try {
    if (await tf.setBackend('webgpu')) return { name: 'webgpu', package: '@tensorflow/tfjs-backend-webgpu', gpu: !adapter.fallback };
  } catch (e) {
    why = (e as Error).message.split('\n')[0];
  }
  await tf.setBackend('cpu');
  try {
    tf.removeBackend('webgpu');
  } catch {
    // already gone
  }
  releaseWebGpu();
  throw new BackendError(describe('--backend webgpu', `tfjs could not start on ${adapter.description} (${why})`, 'a working WebGPU device',
    'Run `node train.js doctor --backend webgpu`, or use --backend tensorflow|wasm|cpu.'));
}

function gpuPresent(): boolean {
  // tfjs-node-gpu exposes no device list; its backend reports CUDA through the TF build info when linked.
  const backend = tf.backend() as unknown as { binding?: { isUsingGpuDevice?: () => boolean } };
  try {
    return Boolean(backend.binding?.isUsingGpuDevice?.());
  } catch {
    return false;
  }
}

/**
 * Selects the backend once per process. Later calls return the first choice and refuse a different one.
 * `log` receives one line saying what was chosen.
 */
export async function selectBackend(requested: BackendName = 'auto', log: (line: string) => void = () => {}): Promise<BackendInfo> {
  if (chosen) {
    if (requested !== 'auto' && requested !== chosen.name) {
      throw new BackendError(describe('--backend', `${requested} requested after ${chosen.name} was chosen`, 'one backend per process'));
    }
    return chosen;
  }
  // PROD silences tfjs' "install the node backend" banner; we log the choice ourselves.
  tf.env().set('PROD', true);
  let info: BackendInfo | null = null;
  if (requested === 'webgpu') info = await tryWebGpu();
  if (requested === 'auto' || requested === 'tensorflow') {
    for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
      if (await tryTensorflow(pkg)) {
        info = { name: 'tensorflow', package: pkg, gpu: pkg.endsWith('-gpu') && gpuPresent() };
        break;
      }
    }
    if (!info && requested === 'tensorflow') {
      throw new BackendError(describe('--backend tensorflow', 'neither @tensorflow/tfjs-node-gpu nor @tensorflow/tfjs-node could be loaded', 'an installed libtensorflow binding',
        'Install it on a machine with internet access: `npm install @tensorflow/tfjs-node-gpu` (CUDA 11.2 + cuDNN 8.1) or `npm install @tensorflow/tfjs-node` (CPU). Or use --backend wasm|cpu.'));
    }
  }
  if (!info && (requested === 'auto' || requested === 'wasm')) {
    if (await tryWasm()) info = { name: 'wasm', package: '@tensorflow/tfjs-backend-wasm', gpu: false };
    else if (requested === 'wasm') {
      throw new BackendError(describe('--backend wasm', '@tensorflow/tfjs-backend-wasm could not be loaded', 'the package installed', 'Run `npm install` or use --backend cpu.'));
    }
  }
  if (!info) {
    await tf.setBackend('cpu');
    info = { name: 'cpu', package: '@tensorflow/tfjs-backend-cpu', gpu: false };
  }
  await tf.ready();
  chosen = info;
  log(`backend: ${info.name} (${info.package}), GPU ${info.gpu ? 'present' : 'not used'}`);
  const adapter = info.name === 'webgpu' ? webgpuAdapter() : null;
  if (adapter) {
    log(`webgpu: ${adapter.description} (${adapter.vendor}, ${adapter.architecture}${adapter.fallback ? ', fallback adapter' : ''}), ` +
      `maxStorageBufferBindingSize ${adapter.limits.maxStorageBufferBindingSize}, maxBufferSize ${adapter.limits.maxBufferSize}`);
  }
  log(registerFastKernels(info.name));
  return info;
}

/** The backend chosen so far, or null before selectBackend. */
export function currentBackend(): BackendInfo | null {
  return chosen;
}

/**
 * Refuses, before any is read, a weight the chosen backend cannot hold (webgpu: above the adapter's
 * maxStorageBufferBindingSize, which Dawn would silently skip). Shapes by HF key; a no-op on the other backends.
 */
export function assertWeightsFit(shapes: Record<string, readonly number[]>): void {
  const adapter = chosen?.name === 'webgpu' ? webgpuAdapter() : null;
  if (adapter) checkWeightsFit(shapes, adapter.limits.maxStorageBufferBindingSize);
}

/**
 * Ends the backend at the end of a command: webgpu's device is destroyed and navigator.gpu dropped (Node would not
 * exit while Dawn is referenced), and the engine goes back to cpu so a later selectBackend may choose again.
 */
export async function closeBackend(): Promise<void> {
  if (chosen?.name !== 'webgpu') return;
  chosen = null;
  await tf.setBackend('cpu');
  try {
    tf.removeBackend('webgpu');
  } catch {
    // already gone
  }
  releaseWebGpu();
}

// Picks the tfjs backend once: tensorflow (tfjs-node-gpu, then tfjs-node) > wasm > cpu; webgpu only when asked for.
// Nothing else in the code branches on the backend; a requested backend that is missing is a clear error.
// `auto` never picks webgpu: tfjs-node-gpu stays the default GPU backend, and a software adapter is slower than wasm.
// Given the model (BackendNeed), `auto` never picks wasm past its 4 GiB heap (plan/ceilings.ts) and says so, and an
// explicit `--backend wasm` whose weights cannot fit is refused before anything loads, instead of wasm's Aborted().
import * as tf from '@tensorflow/tfjs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { BackendError, describe } from '../util/errors.js';
import type { LlamaConfig } from '../config/llama.js';
import { LOGPROB_CHUNK } from '../dpo/logprobs.js';
import { planMemory, type PlanSettings } from '../plan/memory.js';
import { ceiling, gib, machineCeilings, WASM_HEAP_BYTES, wasmVerdict, type Ceilings } from '../plan/ceilings.js';
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

/**
 * What the run will hold, for sizing the backend: the model's config (its float32 weights) and, when the command
 * knows them, the step's settings (then the whole plan's peak counts). `ceilings` replaces this machine's (tests).
 */
export interface BackendNeed {
  cfg: LlamaConfig;
  /** The model folder or name, for messages. */
  source?: string;
  settings?: Pick<PlanSettings, 'maxLength' | 'batchSize' | 'gradientCheckpointing' | 'loraR' | 'loraTargets'>;
  ceilings?: Partial<Ceilings>;
}

const require = createRequire(import.meta.url);
let chosen: BackendInfo | null = null;
/** The wasm heap the chosen backend was sized against (a test's smaller one stays in force for assertWeightsFit). */
let wasmHeap = WASM_HEAP_BYTES;

/** The wasm heap's verdict on `need`: weights alone, and the step's peak when its settings are known. */
function wasmFit(need: BackendNeed): ReturnType<typeof wasmVerdict> {
  const c = machineCeilings(need.ceilings);
  const plan = need.settings
    ? planMemory(need.cfg, { ...need.settings, logprobChunk: LOGPROB_CHUNK, gpu: false, deviceBytes: null })
    : null;
  return wasmVerdict(need.cfg, plan, c);
}

function wasmRefusal(need: BackendNeed, why: string): BackendError {
  return new BackendError(describe(`--backend wasm${need.source ? ` with ${need.source}` : ''}`, why,
    `a model whose float32 weights fit the ${ceiling(machineCeilings(need.ceilings).wasmHeapBytes)} wasm32 heap`,
    'Use --backend cpu (JS memory, bounded by the machine\'s RAM), or --backend auto, which picks it; `node train.js plan --model M` shows each backend\'s ceiling.'));
}

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
export async function selectBackend(requested: BackendName = 'auto', log: (line: string) => void = () => {}, need?: BackendNeed): Promise<BackendInfo> {
  const wasm = need ? wasmFit(need) : null;
  if (chosen) {
    if (requested !== 'auto' && requested !== chosen.name) {
      throw new BackendError(describe('--backend', `${requested} requested after ${chosen.name} was chosen`, 'one backend per process'));
    }
    if (need && chosen.name === 'wasm' && wasm?.weightsExceed) throw wasmRefusal(need, wasm.why);
    return chosen;
  }
  if (need && requested === 'wasm' && wasm?.weightsExceed) throw wasmRefusal(need, wasm.why);
  if (need) wasmHeap = machineCeilings(need.ceilings).wasmHeapBytes;
  /** Why auto chose what it chose (only for auto). */
  let auto = '';
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
  if (!info && requested === 'auto' && wasm?.fits === false) auto = wasm.why; // never wasm past its heap: cpu below
  else if (!info && (requested === 'auto' || requested === 'wasm')) {
    if (requested === 'wasm' && wasm?.fits === false) log(`warning: ${wasm.why} at --max-length ${need?.settings?.maxLength} (the plan's upper bound); a batch that long would abort wasm`);
    if (await tryWasm()) {
      info = { name: 'wasm', package: '@tensorflow/tfjs-backend-wasm', gpu: false };
      if (requested === 'auto') auto = `no tfjs-node${wasm ? `, and ${wasm.why}` : ''}`;
    } else if (requested === 'auto') auto = 'neither tfjs-node nor wasm loaded';
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
  log(`backend: ${info.name} (${auto ? `auto: ${auto}; ` : ''}${info.package}), GPU ${info.gpu ? 'present' : 'not used'}`);
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
  if (chosen?.name === 'wasm') {
    // A backend chosen without the model (eval, doctor): the weights are checked here, still before any is read.
    const bytes = 4 * Object.values(shapes).reduce((n, s) => n + s.reduce((a, b) => a * b, 1), 0);
    if (bytes > wasmHeap) {
      throw new BackendError(describe('backend wasm', `the model's ${gib(bytes)} of float32 weights exceed wasm's ${ceiling(wasmHeap)} heap`,
        'weights that fit the wasm32 heap', 'Use --backend cpu, or --backend auto with the model (train, score, pairs pick cpu for it).'));
    }
  }
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

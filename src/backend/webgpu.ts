// The webgpu backend on Node: Dawn's binding (npm `webgpu`, a prebuilt dawn.node) as navigator.gpu, under
// @tensorflow/tfjs-backend-webgpu 4.22, on a device that asks for the adapter's own limits. Both are optional dependencies.
// Dawn skips, with only a printed message, any dispatch that binds a buffer above maxStorageBufferBindingSize, so
// every weight and upload is checked against it here (the embedding and lm_head are split by rows instead) and a
// device error throws. Leaves out textures, canvas and timestamps.
import * as tf from '@tensorflow/tfjs';
import { BackendError, describe } from '../util/errors.js';
import { env } from '../config/env.js';

/** What the adapter reports: doctor prints it, and the size checks use the limits. */
export interface WebGpuAdapter {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** A software adapter (lavapipe, SwiftShader): correct but slower than wasm. */
  fallback: boolean;
  limits: { maxStorageBufferBindingSize: number; maxBufferSize: number; maxComputeWorkgroupStorageSize: number; maxComputeWorkgroupsPerDimension: number };
}

/** Why no adapter was found, with the packages' load error or Dawn's answer. */
export type WebGpuProbe = { ok: true; adapter: WebGpuAdapter } | { ok: false; reason: string };

/* The few WebGPU types used, kept local: the webgpu package's typings would redeclare the DOM's. */
interface GpuLimits { [k: string]: number }
interface GpuDevice { limits: GpuLimits; destroy(): void; addEventListener(type: 'uncapturederror', f: (ev: { error: { message: string } }) => void): void }
interface GpuAdapter {
  limits: GpuLimits;
  features: Set<string>;
  info: { vendor: string; architecture: string; device: string; description: string; isFallbackAdapter?: boolean };
  requestDevice(d: { requiredLimits: Record<string, number>; requiredFeatures: string[] }): Promise<GpuDevice>;
}
interface Gpu { requestAdapter(o?: { powerPreference?: string }): Promise<GpuAdapter | null> }
interface DawnModule { create(flags: string[]): Gpu; globals: Record<string, unknown> }

/**
 * The limits tfjs-backend-webgpu's own factory asks for, plus maxStorageBuffersPerShaderStage (the default 8 makes
 * an AddN of 8+ tensors an invalid pipeline); all at the adapter's values.
 */
const LIMITS = ['maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupStorageSize', 'maxComputeWorkgroupsPerDimension',
  'maxComputeWorkgroupSizeX', 'maxComputeInvocationsPerWorkgroup', 'maxStorageBuffersPerShaderStage'] as const;

interface Session { gpu: Gpu; device: GpuDevice | null; adapter: WebGpuAdapter | null; hadNavigator: boolean }
let session: Session | null = null;

const MiB = 1024 * 1024;
export function formatBytes(n: number): string {
  return n >= 1024 * MiB ? `${(n / (1024 * MiB)).toFixed(2)} GiB` : `${(n / MiB).toFixed(1)} MiB`;
}

async function loadDawn(): Promise<DawnModule> {
  try {
    return (await import('webgpu')) as unknown as DawnModule;
  } catch (e) {
    throw new BackendError(describe('--backend webgpu', `the optional package \`webgpu\` could not be loaded (${(e as Error).message.split('\n')[0]})`,
      'Dawn\'s Node binding installed', 'Run `npm install webgpu @tensorflow/tfjs-backend-webgpu@4.22` (prebuilt dawn.node for linux-x64/arm64, macOS, Windows).'));
  }
}

function describeAdapter(a: GpuAdapter): WebGpuAdapter {
  const i = a.info;
  return {
    vendor: i.vendor || '?', architecture: i.architecture || '?', device: i.device || '?', description: i.description || '?',
    fallback: i.isFallbackAdapter ?? /llvmpipe|swiftshader|software/i.test(`${i.architecture} ${i.description}`),
    limits: {
      maxStorageBufferBindingSize: a.limits.maxStorageBufferBindingSize, maxBufferSize: a.limits.maxBufferSize,
      maxComputeWorkgroupStorageSize: a.limits.maxComputeWorkgroupStorageSize, maxComputeWorkgroupsPerDimension: a.limits.maxComputeWorkgroupsPerDimension,
    },
  };
}

function noAdapterHint(): string {
  return 'No Vulkan (Linux), Metal (macOS) or D3D12 (Windows) adapter answered. On Linux check `vulkaninfo --summary`: ' +
    'an NVIDIA server needs the driver\'s Vulkan ICD (nvidia_icd.json; in containers NVIDIA_DRIVER_CAPABILITIES must include graphics); ' +
    'a CPU-only machine can use Mesa 25\'s lavapipe (`apt-get install -t bookworm-backports mesa-vulkan-drivers`). `node train.js doctor` shows what was found.';
}

/** Sets navigator.gpu (Node 20 has no navigator; 21+ has one without gpu) and Dawn's GPU* globals tfjs-backend-webgpu reads. */
function installNavigator(dawn: DawnModule): Session {
  Object.assign(globalThis, dawn.globals);
  const gpu = dawn.create([]);
  const g = globalThis as { navigator?: object };
  const hadNavigator = g.navigator !== undefined;
  if (hadNavigator) Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true, writable: true });
  else Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
  return { gpu, device: null, adapter: null, hadNavigator };
}

/** Drops every reference to Dawn (Node does not exit while navigator.gpu holds it) after destroying the device. */
export function releaseWebGpu(): void {
  if (!session) return;
  const s = session;
  session = null;
  try {
    s.device?.destroy();
  } catch {
    // a lost device is already gone
  }
  const g = globalThis as { navigator?: { gpu?: unknown } };
  if (s.hadNavigator && g.navigator) delete g.navigator.gpu;
  else delete g.navigator;
}

/** Asks Dawn for an adapter without starting tfjs on it (doctor, the tests' skip check); releases it after. */
export async function probeWebGpu(): Promise<WebGpuProbe> {
  let dawn: DawnModule;
  try {
    dawn = await loadDawn();
  } catch (e) {
    return { ok: false, reason: (e as Error).message };
  }
  if (session) return session.adapter ? { ok: true, adapter: session.adapter } : { ok: false, reason: 'webgpu is starting' };
  const gpu = dawn.create([]);
  try {
    const a = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    return a ? { ok: true, adapter: describeAdapter(a) } : { ok: false, reason: `Dawn found no WebGPU adapter. ${noAdapterHint()}` };
  } catch (e) {
    return { ok: false, reason: `Dawn's requestAdapter failed: ${(e as Error).message.split('\n')[0]}. ${noAdapterHint()}` };
  }
}

/** Bytes a tensor takes on the device (bool and int32 are 4 bytes there, complex64 8). */
export function deviceBytes(shape: readonly number[], dtype: string): number {
  return shape.reduce((n, d) => n * d, 1) * (dtype === 'complex64' ? 8 : 4);
}

/**
 * The weights the loader may keep as row blocks when one tensor would not fit (model/row-blocks.ts: the embedding
 * lookup and the head's logits and log-probs work block by block). Every other weight must fit whole.
 */
export const ROW_SPLIT_KEYS: readonly string[] = ['model.embed_tokens.weight', 'lm_head.weight'];

/** The BackendError for a tensor the device cannot bind; `name` is a weight key, or null for an intermediate. */
export function tooLargeError(name: string | null, shape: readonly number[], dtype: string, limit: number): BackendError {
  const fix = name ? 'Use a GPU with larger limits or --backend tensorflow.' : 'Lower --batch-size or --max-length, use a GPU with larger limits, or --backend tensorflow.';
  const what = name && ROW_SPLIT_KEYS.includes(name) ? ' (split by rows, and one row alone is above the limit)' : '';
  return new BackendError(describe(`--backend webgpu: ${name ?? 'an intermediate tensor'}`, `${dtype} [${shape.join(', ')}] is ${formatBytes(deviceBytes(shape, dtype))}${what}`,
    `at most maxStorageBufferBindingSize = ${formatBytes(limit)} (${limit} bytes) of this adapter`,
    `Dawn would skip every kernel that reads it and return zeros. ${fix}`));
}

/**
 * Every weight against the binding limit, before any is read: the first that does not fit is refused by name. The
 * embedding and lm_head pass when one row fits, since the loader then keeps them as row blocks under the limit.
 */
export function checkWeightsFit(shapes: Record<string, readonly number[]>, limit: number, dtype = 'float32'): void {
  for (const [name, shape] of Object.entries(shapes)) {
    if (deviceBytes(shape, dtype) <= limit) continue;
    if (ROW_SPLIT_KEYS.includes(name) && shape.length === 2 && deviceBytes(shape.slice(1), dtype) <= limit) continue;
    throw tooLargeError(name, shape, dtype, limit);
  }
}

/**
 * The most bytes one weight block may take, or null for no split: the running webgpu device's
 * maxStorageBufferBindingSize, capped on any backend by DPO_MAX_BINDING_BYTES (which forces the split for checks;
 * the refusals above keep the adapter's own limit).
 */
export function rowSplitLimit(): number | null {
  const forced = env().maxBindingBytes;
  const device = session?.adapter?.limits.maxStorageBufferBindingSize ?? null;
  if (forced === null) return device;
  return device === null ? forced : Math.min(forced, device);
}

/** The uploads of tensors the device cannot bind throw, instead of Dawn's skipped dispatch and silent zeros. */
function guardUploads(backend: tf.KernelBackend, limit: number): void {
  const b = backend as unknown as { uploadToGPU(id: object): void; tensorMap: { get(id: object): { shape: number[]; dtype: string; resource?: unknown } } };
  const upload = b.uploadToGPU.bind(b);
  b.uploadToGPU = (dataId: object) => {
    const d = b.tensorMap.get(dataId);
    if (d && d.resource == null && deviceBytes(d.shape, d.dtype) > limit) throw tooLargeError(null, d.shape, d.dtype, limit);
    upload(dataId);
  };
}

/** The first stack frame outside tfjs and this file, as `path:line`, so a refused synchronous read names its caller. */
function callerFrame(): string {
  for (const line of (new Error().stack ?? '').split('\n').slice(1)) {
    const m = /\(?(?:file:\/\/)?([^()\s]+):(\d+):\d+\)?$/.exec(line.trim());
    if (m && !m[1].includes('node_modules') && !m[1].includes('/backend/webgpu.') && !m[1].startsWith('node:')) {
      return `${m[1].startsWith(process.cwd() + '/') ? m[1].slice(process.cwd().length + 1) : m[1]}:${m[2]}`;
    }
  }
  return 'a synchronous read';
}

/**
 * A synchronous read of a GPU-resident tensor (dataSync, arraySync, bufferSync) needs an OffscreenCanvas, which Node
 * lacks: tfjs fails with "OffscreenCanvas is not defined". This names the caller instead. Host-resident values (not
 * yet uploaded, or CPU-forwarded small ops) still read synchronously.
 */
function guardReadSync(backend: tf.KernelBackend): void {
  const b = backend as unknown as { readSync(id: object): unknown; tensorMap: { get(id: object): { values?: unknown; dtype: string } | undefined } };
  const read = b.readSync.bind(b);
  b.readSync = (dataId: object) => {
    const d = b.tensorMap.get(dataId);
    if (!d || d.values != null || d.dtype === 'string' || d.dtype === 'complex64') return read(dataId);
    throw new BackendError(describe(`--backend webgpu: ${callerFrame()}`, 'a synchronous read (dataSync/arraySync) of a tensor on the GPU',
      'await data() or await array()', 'Node has no OffscreenCanvas, which tfjs-backend-webgpu needs for it; this code path is not webgpu-ready yet.'));
  };
}

/**
 * tfjs-backend-webgpu's AddN binds every input at once (Concat splits, AddN does not), so a sum of more tensors than
 * maxStorageBuffersPerShaderStage - 1 (globalNorm over hundreds of LoRA gradients) is an invalid pipeline. This sums
 * in groups that fit, then sums the partial sums; the gradient is AddN's own (registered by kernel name).
 */
function chunkAddN(): void {
  const stock = tf.getKernel('AddN', 'webgpu');
  if (!stock || (stock.kernelFunc as { chunked?: boolean }).chunked) return;
  const kernelFunc = ((args: { inputs: tf.TensorInfo[]; backend: { device: GpuDevice; disposeData(id: object): void }; attrs?: object }) => {
    const max = Math.max(2, args.backend.device.limits.maxStorageBuffersPerShaderStage - 1);
    let xs = [...args.inputs];
    const temps: tf.TensorInfo[] = [];
    while (xs.length > max) {
      const next: tf.TensorInfo[] = [];
      for (let i = 0; i < xs.length; i += max) {
        const part = xs.slice(i, i + max);
        if (part.length === 1) next.push(part[0]);
        else {
          const sum = stock.kernelFunc({ ...args, inputs: part } as unknown as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
          temps.push(sum);
          next.push(sum);
        }
      }
      xs = next;
    }
    const out = stock.kernelFunc({ ...args, inputs: xs } as unknown as Parameters<tf.KernelFunc>[0]);
    for (const t of temps) args.backend.disposeData(t.dataId);
    return out;
  }) as unknown as tf.KernelFunc & { chunked?: boolean };
  kernelFunc.chunked = true;
  tf.unregisterKernel('AddN', 'webgpu');
  tf.registerKernel({ ...stock, kernelFunc });
}

/**
 * Makes 'webgpu' registrable: loads Dawn and the tfjs backend (navigator.gpu first: the package checks it at import),
 * then replaces the package's factory by one that requests the adapter's limits, makes a device error throw, guards
 * uploads and keeps the device so releaseWebGpu can destroy it. Throws a BackendError when no adapter exists.
 */
export async function registerWebGpu(): Promise<WebGpuAdapter> {
  if (session?.adapter) return session.adapter;
  const dawn = await loadDawn();
  const s = installNavigator(dawn);
  session = s;
  try {
    let wg: { WebGPUBackend: new (device: GpuDevice, info: unknown) => tf.KernelBackend };
    try {
      wg = (await import('@tensorflow/tfjs-backend-webgpu')) as unknown as typeof wg;
    } catch (e) {
      throw new BackendError(describe('--backend webgpu', `@tensorflow/tfjs-backend-webgpu could not be loaded (${(e as Error).message.split('\n')[0]})`,
        'the optional package installed', 'Run `npm install @tensorflow/tfjs-backend-webgpu@4.22`.'));
    }
    chunkAddN();
    const a = await s.gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (!a) throw new BackendError(describe('--backend webgpu', 'Dawn found no WebGPU adapter', 'a GPU adapter', noAdapterHint()));
    s.adapter = describeAdapter(a);
    const requiredLimits: Record<string, number> = {};
    for (const k of LIMITS) requiredLimits[k] = a.limits[k];
    const requiredFeatures = ['timestamp-query', 'bgra8unorm-storage'].filter((f) => a.features.has(f));
    const limit = s.adapter.limits.maxStorageBufferBindingSize;
    try {
      tf.removeBackend('webgpu'); // the package's own factory, registered at import
    } catch {
      // not registered: the package saw no navigator.gpu
    }
    tf.registerBackend('webgpu', async () => {
      const device = await a.requestDevice({ requiredLimits, requiredFeatures });
      s.device = device;
      device.addEventListener('uncapturederror', (ev) => {
        // Thrown from the event: Node reports it as uncaught and exits 1, rather than train on skipped kernels.
        throw new BackendError(describe('--backend webgpu', `the device reported: ${ev.error.message.split('\n')[0]}`, 'no device error',
          'Dawn skipped that work, so the results would be wrong. Run `node train.js doctor --backend webgpu` and report the message.'));
      });
      const backend = new wg.WebGPUBackend(device, a.info);
      guardUploads(backend, limit);
      guardReadSync(backend);
      return backend;
    }, 3);
    return s.adapter;
  } catch (e) {
    releaseWebGpu();
    throw e;
  }
}

/** The adapter of the running webgpu session, or null. */
export function webgpuAdapter(): WebGpuAdapter | null {
  return session?.adapter ?? null;
}

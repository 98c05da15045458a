// The memory ceilings of each backend and whether a model's step fits under them: what `plan` prints per backend,
// and what `--backend auto` reads so that it never picks wasm for a model the wasm heap cannot hold.
//
// Where each backend keeps tensors (tfjs 4.22):
// - wasm: every tensor lives in one WebAssembly.Memory, a wasm32 heap that grows to emscripten's getHeapMax()
//   (4294901760 bytes in tf-backend-wasm.node.js: 4 GiB less one 64 KiB page). Past it malloc fails and the module
//   calls abort(): `RuntimeError: Aborted()`, which kills the process's backend. Weights are held as float32 there
//   whatever the checkpoint's dtype (io/hf-model.ts converts BF16/F16), with the activations and the optimizer.
// - cpu: one Float32Array per tensor, outside V8's JS heap: bounded by the machine's RAM (and 2^32 - 1 elements a tensor).
// - tensorflow: libtensorflow's own allocator: RAM for tfjs-node, the GPU's memory for tfjs-node-gpu.
// - webgpu: one storage buffer per tensor, each at most the adapter's maxStorageBufferBindingSize, which only the
//   adapter reports at run time (`doctor --backend webgpu`); the spec's default is 128 MiB.
import { freemem, totalmem } from 'node:os';
import type { LlamaConfig } from '../config/llama.js';
import { expectedWeightShapes } from '../model/llama.js';
import { ROW_SPLIT_KEYS } from '../model/row-blocks.js';
import type { MemoryPlan } from './memory.js';

const GiB = 1024 ** 3;

/** tfjs-backend-wasm 4.22's heap limit (emscripten getHeapMax of its wasm32 build). */
export const WASM_HEAP_BYTES = 4294901760;
/**
 * The cpu backend's budget for the log-prob kernel's kept [B*c, V] chunks (kernels/logprob.ts; wasm keeps its 64 MiB):
 * on a RAM-bound backend one head matmul per chunk less in the backward is worth 2 * 255 * 128256 floats (262 MB, the
 * 1b preset), about 10% of its step.
 */
export const CPU_LOGPROB_KEEP_BYTES = 512 * 1024 ** 2;

/** Bytes the cpu backend keeps for the log-prob backward at these settings (0 when over its budget: it recomputes). */
export function cpuKeptLogitsBytes(cfg: LlamaConfig, plan: MemoryPlan): number {
  const b = 2 * plan.settings.batchSize * (plan.settings.maxLength - 1) * cfg.vocabSize * 4;
  return b <= CPU_LOGPROB_KEEP_BYTES ? b : 0;
}

/** WebGPU's default maxStorageBufferBindingSize (the spec's limits table); every adapter supports at least this. */
export const WEBGPU_DEFAULT_BINDING_BYTES = 128 * 1024 ** 2;

export interface Ceilings {
  /** The wasm backend's heap: every tensor of a run on wasm. */
  wasmHeapBytes: number;
  /** The machine's RAM (os.totalmem()): the cpu backend's and tfjs-node's bound. */
  hostBytes: number;
  /** RAM free now (os.freemem()), printed beside hostBytes; other processes change it. */
  hostFreeBytes: number;
}

/** The ceilings of this machine; tests pass smaller ones so a tiny model can exceed them. */
export function machineCeilings(over: Partial<Ceilings> = {}): Ceilings {
  return { wasmHeapBytes: WASM_HEAP_BYTES, hostBytes: totalmem(), hostFreeBytes: freemem(), ...over };
}

export type PlanBackend = 'wasm' | 'cpu' | 'tensorflow' | 'webgpu';

export interface BackendVerdict {
  backend: PlanBackend;
  /** null: only known at run time (webgpu's binding limit). */
  fits: boolean | null;
  why: string;
}

/** Bytes as GiB (two decimals), or MiB / bytes below them (a test's tiny ceilings). */
export function gib(bytes: number): string {
  if (bytes >= GiB / 10) return `${(bytes / GiB).toFixed(2)} GiB`;
  return bytes >= 10 * 1024 ? `${(bytes / 1024 ** 2).toFixed(2)} MiB` : `${bytes} bytes`;
}

/** A ceiling as people say it: `4 GiB` for the wasm heap (4 GiB less 64 KiB), else two decimals. */
export function ceiling(bytes: number): string {
  return Math.abs(bytes - 4 * GiB) <= 65536 ? '4 GiB' : gib(bytes);
}

/**
 * Parameters and float32 bytes of the frozen weights, and the largest single weight (leaving out the names in `skip`,
 * e.g. the weights webgpu splits by rows).
 */
export function weightSizes(cfg: LlamaConfig, skip: readonly string[] = []): { params: number; bytes: number; largest: { name: string; shape: number[]; bytes: number } } {
  let params = 0;
  let largest = { name: '', shape: [] as number[], bytes: 0 };
  for (const [name, shape] of Object.entries(expectedWeightShapes(cfg))) {
    const n = shape.reduce((a, b) => a * b, 1);
    params += n;
    if (4 * n > largest.bytes && !skip.includes(name)) largest = { name, shape: [...shape], bytes: 4 * n };
  }
  return { params, bytes: 4 * params, largest };
}

function term(plan: MemoryPlan, name: string): number {
  return plan.terms.find((t) => t.name === name)?.bytes ?? 0;
}

/**
 * The wasm heap against a model: its float32 weights alone (known from config.json) and, given a plan, the step's
 * peak. `weightsExceed` is the certain failure (loading alone would abort); a peak over the heap is the plan's
 * prediction at --max-length, an upper bound when the pairs are shorter.
 */
export function wasmVerdict(cfg: LlamaConfig, plan: MemoryPlan | null, c: Ceilings): BackendVerdict & { weightsExceed: boolean } {
  const w = weightSizes(cfg);
  const heap = ceiling(c.wasmHeapBytes);
  const params = w.params >= 1e8 ? `${(w.params / 1e9).toFixed(3)} B params` : `${(w.params / 1e6).toFixed(3)} M params`;
  if (w.bytes > c.wasmHeapBytes) {
    return { backend: 'wasm', fits: false, weightsExceed: true, why: `the model's ${gib(w.bytes)} of float32 weights (${params}) exceed wasm's ${heap} heap` };
  }
  if (plan && plan.peakBytes > c.wasmHeapBytes) {
    return {
      backend: 'wasm', fits: false, weightsExceed: false,
      why: `the step's peak of ${gib(plan.peakBytes)} (weights ${gib(w.bytes)}, activations ${gib(term(plan, 'activations') + term(plan, 'recompute'))}) exceeds wasm's ${heap} heap`,
    };
  }
  const what = plan ? `the step's peak of ${gib(plan.peakBytes)}` : `the model's ${gib(w.bytes)} of float32 weights`;
  return { backend: 'wasm', fits: true, weightsExceed: false, why: `${what} fits wasm's ${heap} heap (all tensors live in it)` };
}

/**
 * Per backend: whether the step of `plan` (a CPU plan: no GPU runtime terms) fits, and why. The plan's peak counts
 * tensors only; the process adds its code, tfjs' caches and the loader's transient buffers on top.
 */
export function backendVerdicts(cfg: LlamaConfig, plan: MemoryPlan, c: Ceilings): BackendVerdict[] {
  const peak = plan.peakBytes;
  const ram = `machine RAM (${gib(c.hostBytes)}, ${gib(c.hostFreeBytes)} free now)`;
  const kept = cpuKeptLogitsBytes(cfg, plan);
  const inRam = peak <= c.hostBytes;
  const cpuPeak = peak + kept;
  const v = wasmVerdict(cfg, plan, c);
  // webgpu holds the embedding and lm_head as row blocks under the adapter's limit (model/row-blocks.ts): the bound is
  // the largest of the other weights.
  const L = weightSizes(cfg, ROW_SPLIT_KEYS).largest;
  const biggest = `the largest tensor not split by rows, ${L.name} [${L.shape.join(', ')}], is ${gib(L.bytes)}`;
  const webgpu: BackendVerdict = L.bytes <= WEBGPU_DEFAULT_BINDING_BYTES
    ? { backend: 'webgpu', fits: true, why: `${biggest}: within WebGPU's default 128 MiB maxStorageBufferBindingSize, so any adapter binds it; the peak must fit the GPU's memory` }
    : {
        backend: 'webgpu', fits: null,
        why: `${biggest}, over WebGPU's default 128 MiB: it fits only if the adapter's maxStorageBufferBindingSize is at least that, known at run time (\`doctor --backend webgpu\` prints it)`,
      };
  return [
    { backend: 'wasm', fits: v.fits, why: v.why },
    {
      backend: 'cpu', fits: cpuPeak <= c.hostBytes,
      why: `JS typed arrays outside V8's heap, bounded by ${ram}: peak ${gib(cpuPeak)}${kept ? ` (with ${gib(kept)} of log-prob chunks kept for the backward)` : ''} ${cpuPeak <= c.hostBytes ? 'fits' : 'does not fit'}`,
    },
    { backend: 'tensorflow', fits: inRam, why: `tfjs-node: libtensorflow's memory, bounded by ${ram} (peak ${gib(peak)}); tfjs-node-gpu: the GPU's, see the gpu plan (--device gpu --device-memory N)` },
    webgpu,
  ];
}

/** The verdicts as text lines under the plan. */
export function formatVerdicts(vs: BackendVerdict[]): string {
  const word = (f: boolean | null) => (f === null ? 'at run time' : f ? 'yes' : 'no');
  return ['  backends (where the tensors live, and whether the step fits there):',
    ...vs.map((v) => `    ${v.backend.padEnd(10)} ${word(v.fits).padEnd(11)} ${v.why}`)].join('\n');
}

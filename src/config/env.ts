// Every environment switch the trainer reads (DPO_* and CI), parsed once, on first use at start-up, into one typed
// object; nothing else reads process.env for them. A bad value is an error naming the variable.
import { InputError, describe } from '../util/errors.js';

/** `reference`: stock tfjs kernels and the plain log-prob path. `xnnpack`: never the addon. `blas`: the addon or stock. */
export const KERNEL_MODES = ['auto', 'blas', 'xnnpack', 'reference'] as const;
export type KernelMode = (typeof KERNEL_MODES)[number];

export interface Env {
  /** DPO_KERNELS: which fused/native kernels run (default auto). */
  kernels: KernelMode;
  /** DPO_BLAS_ADDON: path of the CBLAS addon, instead of native/build/blas.node. */
  blasAddon: string | null;
  /** DPO_ALLOW_CPU_FALLBACK=1: train although `--backend tensorflow` found no GPU. */
  allowCpuFallback: boolean;
  /** CI=true: no TTY progress lines. */
  ci: boolean;
  /** DPO_THREADS: threads of the addon's fused kernels and matmuls (default: the idle cores, see backend/kernels.ts). */
  threads: number | null;
  /** DPO_MAX_BINDING_BYTES: caps the bytes one tensor may bind, on any backend, so the row split of the embedding and lm_head (model/row-blocks.ts) can be forced and checked. */
  maxBindingBytes: number | null;
}

/** Parses the switches from an environment (process.env, or a test's object). */
export function readEnv(e: Record<string, string | undefined> = process.env): Env {
  const kernels = (e.DPO_KERNELS ?? 'auto').toLowerCase();
  if (!(KERNEL_MODES as readonly string[]).includes(kernels)) {
    throw new InputError(describe('DPO_KERNELS', JSON.stringify(e.DPO_KERNELS), `one of ${KERNEL_MODES.join(', ')}`));
  }
  const threads = e.DPO_THREADS ? Number(e.DPO_THREADS) : null;
  if (threads !== null && !(Number.isInteger(threads) && threads >= 1 && threads <= 64)) {
    throw new InputError(describe('DPO_THREADS', JSON.stringify(e.DPO_THREADS), 'an integer from 1 to 64'));
  }
  const maxBindingBytes = e.DPO_MAX_BINDING_BYTES ? Number(e.DPO_MAX_BINDING_BYTES) : null;
  if (maxBindingBytes !== null && !(Number.isSafeInteger(maxBindingBytes) && maxBindingBytes >= 4)) {
    throw new InputError(describe('DPO_MAX_BINDING_BYTES', JSON.stringify(e.DPO_MAX_BINDING_BYTES), 'an integer number of bytes >= 4'));
  }
  return { kernels: kernels as KernelMode, blasAddon: e.DPO_BLAS_ADDON || null, allowCpuFallback: e.DPO_ALLOW_CPU_FALLBACK === '1', ci: e.CI === 'true', threads, maxBindingBytes };
}

let current: Env | null = null;

/** The process's switches, read on the first call and fixed after it. */
export function env(): Env {
  return (current ??= readEnv());
}

// Registers the fast matmul kernels of kernels/ for the chosen backend, once, and says which are active.
// wasm: CBLAS addon > XNNPACK override > stock; cpu: CBLAS addon > stock; tensorflow and webgpu: untouched. DPO_KERNELS overrides.
// With the addon, the fused kernels of kernels/ (RMSNorm, RoPE, SiLU*up, masked softmax, the attention core, log-softmax + gather) and, on wasm, a zero-copy
// Identity are registered too, and their threads are chosen (DPO_THREADS, else the idle cores). On cpu, Transpose and Slice are
// strided copies (kernels/layout-cpu.ts) with or without the addon.
import * as tf from '@tensorflow/tfjs';
import { availableParallelism, loadavg } from 'node:os';
import { blasBatchMatMulConfig, loadBlasAddon } from '../../kernels/matmul-blas.js';
import { xnnpackBatchMatMulConfig } from '../../kernels/matmul-wasm.js';
import { selectBatchMatMulConfig } from '../../kernels/matmul-select.js';
import { asFusedAddon, nativeKernelConfig, type NativeOp } from '../../kernels/native.js';
import { rmsNormOps } from '../../kernels/rmsnorm.js';
import { ropeOps } from '../../kernels/rope.js';
import { swigluOps } from '../../kernels/swiglu.js';
import { maskedSoftmaxOps } from '../../kernels/attention-softmax.js';
import { sharedIdentityConfig } from '../../kernels/identity-wasm.js';
import { elementwiseConfigs } from '../../kernels/elementwise.js';
import { layoutCpuConfigs } from '../../kernels/layout-cpu.js';
import { KEEP_BYTES, logprobOps, setLogprobKeepBytes } from '../../kernels/logprob.js';
import { CPU_LOGPROB_KEEP_BYTES } from '../plan/ceilings.js';
import { useSegmentSum } from '../../kernels/segment-sum.js';
import { hasLoraLinear, linearOps, loraLinearOps } from '../../kernels/lora-linear.js';
import { attentionCoreOps, hasAttentionCore } from '../../kernels/attention-core.js';
import { hasRopeTables, ropeTablesOps } from '../../kernels/rope-tables.js';
import { attnHalfOps, hasDecoderLayer, mlpHalfOps } from '../../kernels/decoder-layer.js';
import { ADAMW_KERNELS, adamwConfigs, hasAdamw } from '../../kernels/adamw.js';
import { env, type KernelMode } from '../config/env.js';

export type { KernelMode };

export type MatMulImpl = 'blas' | 'xnnpack' | 'stock';

/** The stock kernel of each backend, saved before the first override so it can be restored. */
const stock = new Map<string, tf.KernelConfig>();
const active = new Map<string, MatMulImpl>();

function stockKernel(backend: string): tf.KernelConfig | null {
  const saved = stock.get(backend);
  if (saved) return saved;
  const k = tf.getKernel('BatchMatMul', backend);
  if (!k) return null;
  stock.set(backend, k);
  return k;
}

function install(config: tf.KernelConfig): void {
  if (tf.getKernel(config.kernelName, config.backendName)) tf.unregisterKernel(config.kernelName, config.backendName);
  tf.registerKernel(config);
}

/** The BatchMatMul implementation now registered for `backend` ('stock' before any override). */
export function activeMatMul(backend: string): MatMulImpl {
  return active.get(backend) ?? 'stock';
}

/**
 * Registers `impl` as BatchMatMul for 'wasm' or 'cpu' (tests switch between them). Throws when `impl` cannot run here
 * (the addon is not built, or XNNPACK asked for outside wasm).
 */
export function useMatMul(backend: 'wasm' | 'cpu', impl: MatMulImpl): void {
  const base = stockKernel(backend);
  if (!base) throw new Error(`BatchMatMul: backend ${backend} is not registered`);
  if (impl === 'stock') install(base);
  else if (impl === 'blas') {
    const { addon, reason } = loadBlasAddon(env().blasAddon);
    if (!addon) throw new Error(`BatchMatMul blas: ${reason}`);
    const blas = blasBatchMatMulConfig(addon, backend, base);
    const transpose = backend === 'wasm' ? tf.getKernel('Transpose', 'wasm') : undefined;
    // On wasm, products below the measured BLAS_MIN_WORK go to XNNPACK (kernels/matmul-select.ts; 0 on the machine measured).
    install(transpose ? selectBatchMatMulConfig(blas, xnnpackBatchMatMulConfig(transpose, base)) : blas);
  } else {
    if (backend !== 'wasm') throw new Error(`BatchMatMul xnnpack: only for the wasm backend, not ${backend}`);
    const transpose = tf.getKernel('Transpose', 'wasm');
    if (!transpose) throw new Error('BatchMatMul xnnpack: the wasm backend has no Transpose kernel');
    install(xnnpackBatchMatMulConfig(transpose, base));
  }
  active.set(backend, impl);
}

/** Every fused op of kernels/ (each file's forward and backward kernels). */
export const FUSED_OPS: readonly NativeOp[] = [...rmsNormOps, ...ropeOps, ...swigluOps, ...maskedSoftmaxOps, ...logprobOps];

/** Stock kernels replaced by useFusedKernels (Identity on wasm, Add, GatherV2), by `name/backend`. */
const stockOverridden = new Map<string, tf.KernelConfig>();

/**
 * Registers (on = true) or removes the fused kernels for 'wasm' or 'cpu'; without them every op of kernels/ takes its
 * reference path. Returns false when the addon (or its fused exports) is missing. It also swaps Add and GatherV2
 * (kernels/elementwise.ts) and, on wasm, Identity (kernels/identity-wasm.ts), restoring the stock ones when off.
 */
export function useFusedKernels(backend: 'wasm' | 'cpu', on: boolean): boolean {
  const addon = on ? asFusedAddon(loadBlasAddon(env().blasAddon).addon) : null;
  for (const op of FUSED_OPS) {
    if (tf.getKernel(op.kernelName, backend)) tf.unregisterKernel(op.kernelName, backend);
    if (addon) tf.registerKernel(nativeKernelConfig(addon, op, backend));
  }
  // The LoRA linear and AdamW kernels (kernels/lora-linear.ts, adamw.ts), where the addon is new enough to have them.
  for (const op of [...loraLinearOps, ...linearOps]) {
    if (tf.getKernel(op.kernelName, backend)) tf.unregisterKernel(op.kernelName, backend);
    if (addon && hasLoraLinear(addon)) tf.registerKernel(nativeKernelConfig(addon, op, backend));
  }
  // The attention core and the RoPE tables (kernels/attention-core.ts, rope-tables.ts), likewise.
  for (const op of attentionCoreOps) {
    if (tf.getKernel(op.kernelName, backend)) tf.unregisterKernel(op.kernelName, backend);
    if (addon && hasAttentionCore(addon)) tf.registerKernel(nativeKernelConfig(addon, op, backend));
  }
  for (const op of ropeTablesOps) {
    if (tf.getKernel(op.kernelName, backend)) tf.unregisterKernel(op.kernelName, backend);
    if (addon && hasRopeTables(addon)) tf.registerKernel(nativeKernelConfig(addon, op, backend));
  }
  // The fused MLP and attention halves of a decoder layer (kernels/decoder-layer.ts), likewise.
  for (const op of [...mlpHalfOps, ...attnHalfOps]) {
    if (tf.getKernel(op.kernelName, backend)) tf.unregisterKernel(op.kernelName, backend);
    if (addon && hasDecoderLayer(addon)) tf.registerKernel(nativeKernelConfig(addon, op, backend));
  }
  for (const name of ADAMW_KERNELS) if (tf.getKernel(name, backend)) tf.unregisterKernel(name, backend);
  if (addon && hasAdamw(addon)) for (const k of adamwConfigs(addon, backend)) tf.registerKernel(k);
  const stockOf = (name: string): tf.KernelConfig => {
    const key = `${name}/${backend}`;
    const k = stockOverridden.get(key) ?? tf.getKernel(name, backend);
    if (!k) throw new Error(`${name}: backend ${backend} has no kernel`);
    stockOverridden.set(key, k);
    return k;
  };
  if (backend === 'wasm') install(addon ? sharedIdentityConfig(stockOf('Identity')) : stockOf('Identity'));
  if (addon) for (const k of elementwiseConfigs(addon, backend, stockOf)) install(k);
  else for (const name of ['Add', 'GatherV2']) install(stockOf(name));
  return addon !== null;
}

/**
 * Registers (on) or removes the cpu backend's strided-copy Transpose and Slice (kernels/layout-cpu.ts: plain JS, no
 * addon needed); off restores the stock kernels, which are their reference.
 */
export function useLayoutKernels(on: boolean): void {
  const stockOf = (name: string): tf.KernelConfig => {
    const key = `${name}/cpu`;
    const k = stockOverridden.get(key) ?? tf.getKernel(name, 'cpu');
    if (!k) throw new Error(`${name}: backend cpu has no kernel`);
    stockOverridden.set(key, k);
    return k;
  };
  for (const k of on ? layoutCpuConfigs(stockOf) : ['Transpose', 'Slice'].map(stockOf)) install(k);
}

/**
 * Threads for the addon's fused kernels and matmuls: `requested` (DPO_THREADS) when set, else the cores that are idle now
 * (cores minus the 1-minute load average, rounded, at least 1): 2 on an idle 2-core machine, 1 on a busy one.
 */
export function chooseThreads(requested: number | null, cores = availableParallelism(), load = loadavg()[0]): { threads: number; why: string } {
  if (requested !== null) return { threads: requested, why: 'DPO_THREADS' };
  const idle = Math.max(1, Math.min(cores, Math.round(cores - load)));
  return { threads: idle, why: `${cores} cores, load ${load.toFixed(1)}` };
}

/** Sets the addon's thread count (its pool, for fused kernels and matmuls); returns it, or null without the addon. */
export function setKernelThreads(n: number): number | null {
  const addon = asFusedAddon(loadBlasAddon(env().blasAddon).addon);
  return addon ? addon.setThreads(n) : null;
}

/**
 * Called once by selectBackend after the backend is chosen. Returns the line it logs, e.g.
 * `kernels: BatchMatMul=blas (cblas via ...)`; the tensorflow backend keeps its own kernels.
 */
export function registerFastKernels(backend: 'tensorflow' | 'wasm' | 'cpu' | 'webgpu', mode: KernelMode = env().kernels): string {
  if (backend === 'tensorflow' || backend === 'webgpu') return `kernels: ${backend} built-ins`;
  // The embedding's gradient (full-weight SFT): wasm has no UnsortedSegmentSum and cpu's is O(segments x size).
  useSegmentSum(backend, mode !== 'reference' || backend === 'wasm');
  if (backend === 'cpu') {
    useLayoutKernels(mode !== 'reference');
    setLogprobKeepBytes(CPU_LOGPROB_KEEP_BYTES); // RAM-bound: keep the 1b preset's 262 MB of chunks, no head recompute
  } else setLogprobKeepBytes(KEEP_BYTES);
  if (mode === 'reference') {
    useMatMul(backend, 'stock');
    useFusedKernels(backend, false);
    return 'kernels: BatchMatMul=stock, fused=reference (DPO_KERNELS=reference)';
  }
  const blas = loadBlasAddon(env().blasAddon);
  if (blas.addon && mode !== 'xnnpack') {
    useMatMul(backend, 'blas');
    let fused = 'fused=reference (the addon predates the fused kernels: npm run build:native)';
    if (useFusedKernels(backend, true)) {
      const t = chooseThreads(env().threads);
      fused = `fused=native, ${setKernelThreads(t.threads)} thread(s) (${t.why})`;
    }
    return `kernels: BatchMatMul=blas (${blas.reason}); ${fused}`;
  }
  const why = mode === 'xnnpack' ? 'DPO_KERNELS=xnnpack' : blas.reason;
  if (backend === 'wasm') {
    useMatMul(backend, 'xnnpack');
    return `kernels: BatchMatMul=xnnpack (blas: ${why})`;
  }
  useMatMul(backend, 'stock');
  return `kernels: BatchMatMul=stock (blas: ${why})`;
}

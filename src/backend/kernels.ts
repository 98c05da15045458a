// Registers the fast matmul kernels of kernels/ for the chosen backend, once, and says which are active.
// wasm: CBLAS addon > XNNPACK override > stock; cpu: CBLAS addon > stock; tensorflow and webgpu: untouched. DPO_KERNELS overrides.
import * as tf from '@tensorflow/tfjs';
import { blasBatchMatMulConfig, loadBlasAddon } from '../../kernels/matmul-blas.js';
import { xnnpackBatchMatMulConfig } from '../../kernels/matmul-wasm.js';
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
    install(blasBatchMatMulConfig(addon, backend, base));
  } else {
    if (backend !== 'wasm') throw new Error(`BatchMatMul xnnpack: only for the wasm backend, not ${backend}`);
    const transpose = tf.getKernel('Transpose', 'wasm');
    if (!transpose) throw new Error('BatchMatMul xnnpack: the wasm backend has no Transpose kernel');
    install(xnnpackBatchMatMulConfig(transpose, base));
  }
  active.set(backend, impl);
}

/**
 * Called once by selectBackend after the backend is chosen. Returns the line it logs, e.g.
 * `kernels: BatchMatMul=blas (cblas via ...)`; the tensorflow backend keeps its own kernels.
 */
export function registerFastKernels(backend: 'tensorflow' | 'wasm' | 'cpu' | 'webgpu', mode: KernelMode = env().kernels): string {
  if (backend === 'tensorflow' || backend === 'webgpu') return `kernels: ${backend} built-ins`;
  if (mode === 'reference') {
    useMatMul(backend, 'stock');
    return 'kernels: BatchMatMul=stock (DPO_KERNELS=reference)';
  }
  const blas = loadBlasAddon(env().blasAddon);
  if (blas.addon && mode !== 'xnnpack') {
    useMatMul(backend, 'blas');
    return `kernels: BatchMatMul=blas (${blas.reason})`;
  }
  const why = mode === 'xnnpack' ? 'DPO_KERNELS=xnnpack' : blas.reason;
  if (backend === 'wasm') {
    useMatMul(backend, 'xnnpack');
    return `kernels: BatchMatMul=xnnpack (blas: ${why})`;
  }
  useMatMul(backend, 'stock');
  return `kernels: BatchMatMul=stock (blas: ${why})`;
}

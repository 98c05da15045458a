// `BatchMatMul` for the tfjs wasm and cpu backends through the optional CBLAS addon (native/blas, built by
// scripts/build-native.mjs). Reads operands in place (wasm heap or cpu buffers); exact tfjs semantics via planMatMul.
import * as tf from '@tensorflow/tfjs';
import type { CpuBuffersBackend, WasmHeapBackend } from './backend-shapes.js';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { planMatMul } from './matmul.js';
import { chooseCore } from './blas-core.js';

/** The addon's one entry point; see native/blas/sgemm.cc for the argument contract. */
export interface BlasAddon {
  sgemm(transA: boolean, transB: boolean, M: number, N: number, K: number, a: Float32Array, aOff: number, strideA: number,
    b: Float32Array, bOff: number, strideB: number, c: Float32Array, cOff: number, batch: number): void;
  library: string;
  /** The kernels the library runs (OpenBLAS's corename), or the library's name. */
  core: string;
}

const require = createRequire(import.meta.url);
let loaded: { addon: BlasAddon | null; reason: string; core?: string } | null = null;

/** Where the addon may be: `override` (DPO_BLAS_ADDON, read in config/env.ts), else native/build/blas.node above this file. */
function candidates(override: string | null): string[] {
  const here = dirname(fileURLToPath(import.meta.url));
  if (override) return [resolve(override)];
  return [join(here, '..', 'native', 'build', 'blas.node'), join(here, '..', '..', 'native', 'build', 'blas.node')];
}

/** The addon, or null with the reason it is unavailable (not built, or failed to load). Loaded once. */
export function loadBlasAddon(override: string | null = null): { addon: BlasAddon | null; reason: string; core?: string } {
  if (loaded) return loaded;
  const path = candidates(override).find((p) => existsSync(p));
  if (!path) {
    loaded = { addon: null, reason: 'addon not built (npm run build:native needs a C++ compiler and a CBLAS)' };
    return loaded;
  }
  try {
    // OpenBLAS reads OPENBLAS_CORETYPE once, when it loads with the addon: decide it first (blas-core.ts).
    const choice = process.platform === 'linux' ? chooseCore(path) : undefined;
    if (choice?.coretype) process.env.OPENBLAS_CORETYPE = choice.coretype;
    const addon = require(path) as BlasAddon;
    if (typeof addon.sgemm !== 'function') throw new Error('no sgemm export');
    loaded = { addon, reason: `${addon.library} (${addon.core ?? 'core unknown'}) via ${path}`, core: choice?.line };
  } catch (e) {
    loaded = { addon: null, reason: `addon at ${path} failed to load: ${(e as Error).message}` };
  }
  return loaded;
}

type Info = tf.TensorInfo;
interface Attrs { transposeA: boolean; transposeB: boolean }

/** Runs the plan with the addon: one strided call when the broadcast allows it, else one call per output matrix. */
function runPlan(addon: BlasAddon, aShape: number[], bShape: number[], ta: boolean, tb: boolean,
  heapA: Float32Array, aOff: number, heapB: Float32Array, bOff: number, heapC: Float32Array, cOff: number): void {
  const p = planMatMul(aShape, bShape, ta, tb);
  const { M, N, K } = p;
  if (p.batch === 0) return;
  if (p.bStride === 0 && p.aStride === M * K && !ta && p.batch > 1) {
    // A batch of row blocks times one matrix is a single taller GEMM: [batch*M, K] x [K, N].
    addon.sgemm(false, tb, p.batch * M, N, K, heapA, aOff, 0, heapB, bOff, 0, heapC, cOff, 1);
  } else if (p.aStride !== null && p.bStride !== null) {
    addon.sgemm(ta, tb, M, N, K, heapA, aOff, p.aStride, heapB, bOff, p.bStride, heapC, cOff, p.batch);
  } else {
    for (let i = 0; i < p.batch; i++) {
      addon.sgemm(ta, tb, M, N, K, heapA, aOff + p.aIndex[i] * M * K, 0, heapB, bOff + p.bIndex[i] * K * N, 0, heapC, cOff + i * M * N, 1);
    }
  }
}

/** A BatchMatMul kernel config for `backendName` ('wasm' or 'cpu'); float32 only, other dtypes go to `fallback`. */
export function blasBatchMatMulConfig(addon: BlasAddon, backendName: 'wasm' | 'cpu', fallback: tf.KernelConfig): tf.KernelConfig {
  const kernelFunc = (args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): Info => {
    const { a, b } = args.inputs as { a: Info; b: Info };
    const { transposeA: ta, transposeB: tb } = args.attrs as unknown as Attrs;
    if (a.dtype !== 'float32' || b.dtype !== 'float32') return fallback.kernelFunc(args as never) as Info;
    const p = planMatMul(a.shape, b.shape, ta, tb);
    if (backendName === 'wasm') {
      const be = args.backend as WasmHeapBackend;
      const out = be.makeOutput(p.outShape, 'float32');
      // Offsets are read after makeOutput: its malloc may grow the heap and replace the buffer.
      const heap = new Float32Array(be.wasm.HEAPU8.buffer);
      const off = (t: Info) => be.dataIdMap.get(t.dataId).memoryOffset / 4;
      runPlan(addon, a.shape, b.shape, ta, tb, heap, off(a), heap, off(b), heap, off(out));
      return out;
    }
    const be = args.backend as CpuBuffersBackend;
    const av = be.data.get(a.dataId).values;
    const bv = be.data.get(b.dataId).values;
    if (!(av instanceof Float32Array) || !(bv instanceof Float32Array)) return fallback.kernelFunc(args as never) as Info;
    const c = new Float32Array(p.batch * p.M * p.N);
    runPlan(addon, a.shape, b.shape, ta, tb, av, 0, bv, 0, c, 0);
    return be.makeTensorInfo(p.outShape, 'float32', c);
  };
  return { kernelName: 'BatchMatMul', backendName, kernelFunc: kernelFunc as tf.KernelFunc };
}

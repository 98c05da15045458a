// `BatchMatMul` for the wasm backend that picks, per call, XNNPACK (matmul-wasm.ts) for products below a measured
// size and the BLAS addon (matmul-blas.ts) from it on. The size is the work M*N*K*batch of the call.
//
// The threshold is measured with scripts/bench-matmul-threshold.ts (median us per call, step shapes of the tiny and
// small presets; 2-core AMD EPYC, OpenBLAS 0.3.21 Haswell kernels, 1 BLAS thread, load average ~11, 2026-12-01):
//
//   shape                          M*N*K*batch   xnnpack      blas
//   square 16                             4096       9.9       5.8
//   M256 H64 x A^T (LoRA down)          131072      20.7      10.8
//   M256 H64 dy^T x (LoRA dA)           131072      53.5      10.7
//   M256 H64 x W^T (q/o)               1048576     146.1      26.3
//   M256 H64 q k^T (attn)              1048576     155.8      32.5
//   M256 H64 x W^T (gate/up)           2883584     176.1      59.0
//   M1024 H512 x A^T (LoRA down)       8388608     420.8     175.4
//   M1024 H512 q k^T (attn)          134217728   49183.5   10562.8
//   M1024 H512 x W^T (gate/up)       738197504  259769.7   80726.7
//
// BLAS is faster at every size, down to 16 x 16 (the addon call costs ~5 us, XNNPACK's path through tfjs ~10 us), so
// the threshold is 0: XNNPACK only where there is no addon. With 2 BLAS threads on a busy machine, OpenBLAS's own
// threading of mid-size products (96^3 .. 256^3) stalled to 5-13 ms a call; the addon now spreads blocks of a product
// over its own pool instead (native/blas/gemm.h), and backend/kernels.ts gives 2 threads only when 2 cores are idle. Re-measure on another machine and set BLAS_MIN_WORK from the script's last line.
import type * as tf from '@tensorflow/tfjs';
import { planMatMul } from './matmul.js';

/** Products with M*N*K*batch below this go to XNNPACK on wasm (measured above). */
export const BLAS_MIN_WORK = 0;

/** BatchMatMul for 'wasm': `xnnpack` below `minWork`, `blas` from it on. */
export function selectBatchMatMulConfig(blas: tf.KernelConfig, xnnpack: tf.KernelConfig, minWork = BLAS_MIN_WORK): tf.KernelConfig {
  if (minWork <= 0) return blas;
  const kernelFunc = (args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
    const p = planMatMul(a.shape, b.shape, transposeA, transposeB);
    return (p.M * p.N * p.K * p.batch < minWork ? xnnpack : blas).kernelFunc(args as never);
  };
  return { kernelName: 'BatchMatMul', backendName: 'wasm', kernelFunc: kernelFunc as tf.KernelFunc };
}

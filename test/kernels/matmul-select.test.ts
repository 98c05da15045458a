// kernels/matmul-select.ts: BatchMatMul calls below the work threshold go to XNNPACK, the rest to BLAS; with the
// measured threshold (0) the BLAS kernel is used as it is.
import type * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { BLAS_MIN_WORK, selectBatchMatMulConfig } from '../../kernels/matmul-select.js';

const fake = (name: string): tf.KernelConfig => ({ kernelName: 'BatchMatMul', backendName: 'wasm', kernelFunc: (() => name) as unknown as tf.KernelFunc });
const call = (cfg: tf.KernelConfig, a: number[], b: number[], transposeA = false, transposeB = false) =>
  cfg.kernelFunc({ inputs: { a: { shape: a, dtype: 'float32', dataId: {} }, b: { shape: b, dtype: 'float32', dataId: {} } }, backend: null as never, attrs: { transposeA, transposeB } });

describe('selectBatchMatMulConfig', () => {
  it('routes by M*N*K*batch: below the threshold to XNNPACK, at and above it to BLAS', () => {
    const cfg = selectBatchMatMulConfig(fake('blas'), fake('xnnpack'), 1000);
    expect(call(cfg, [10, 9], [9, 11])).toBe('xnnpack'); // 990
    expect(call(cfg, [10, 10], [10, 10])).toBe('blas'); // 1000
    expect(call(cfg, [2, 4, 10], [10, 10])).toBe('xnnpack'); // batch 2 x 400
    expect(call(cfg, [3, 5, 10], [10, 10])).toBe('blas'); // 1500
    expect(call(cfg, [9, 10], [11, 9], true, true)).toBe('xnnpack'); // op(a) [10, 9], op(b) [9, 11]
  });

  it('with the measured threshold (BLAS at every size) the BLAS config is returned unchanged', () => {
    expect(BLAS_MIN_WORK).toBe(0);
    const blas = fake('blas');
    expect(selectBatchMatMulConfig(blas, fake('xnnpack'))).toBe(blas);
  });
});

// The fused RoPE tables (kernels/rope-tables.ts: positions from the key mask, then cos/sin, in one addon call) on the
// cpu and wasm backends: the plain-ops reference and a float64 computation of HF's positions give the same tables, for
// right and left padding and for the last T of S slots (a KV-cache step), llama3-scaled frequencies included;
// DPO_KERNELS=reference switches to the reference; bad operands name their shapes; no tensor leaks under a tape.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { hasRopeTables, positionsFromMask, ropeTables, ropeTablesFused, ropeTablesReference } from '../../kernels/rope-tables.js';
import { asFusedAddon, fusedActive } from '../../kernels/native.js';
import { loadBlasAddon } from '../../kernels/matmul-blas.js';
import { registerFastKernels } from '../../src/backend/kernels.js';
import { ropeInvFreq } from '../../src/model/rope.js';
import { maxDiff, withFusedKernelsOnWasm } from './fused-suite.js';

const BACKENDS = ['cpu', 'wasm'] as const;
const has = hasRopeTables(asFusedAddon(loadBlasAddon().addon));

withFusedKernelsOnWasm();


// Row 0 right-padded, row 1 left-padded, row 2 with a pad inside.
const MASK = [[1, 1, 1, 1, 0, 0, 0], [0, 0, 1, 1, 1, 1, 1], [1, 1, 0, 1, 1, 1, 1]];
const D = 8;
const INV = ropeInvFreq(D, 500000, { ropeType: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 });

/** cos and sin [B, T, D] in float64 from HF's positions (cumsum(mask) - 1, 1 at a pad) of the last T slots. */
function tables64(mask: number[][], T: number): [Float64Array, Float64Array] {
  const S = mask[0].length;
  const cos = new Float64Array(mask.length * T * D);
  const sin = new Float64Array(mask.length * T * D);
  mask.forEach((row, b) => {
    let seen = 0;
    row.forEach((m, j) => {
      seen += m;
      if (j < S - T) return;
      const pos = m ? seen - 1 : 1;
      for (let i = 0; i < D; i++) {
        const a = Math.fround(pos * INV[i % (D / 2)]);
        cos[(b * T + j - (S - T)) * D + i] = Math.cos(a);
        sin[(b * T + j - (S - T)) * D + i] = Math.sin(a);
      }
    });
  });
  return [cos, sin];
}

describe.each(BACKENDS)('fused RoPE tables on %s', (backend) => {
  beforeAll(async () => {
    await tf.setBackend(backend);
  });

  it.skipIf(!has).each([7, 3, 1])('T = %i of S = 7 slots: fused = reference = float64 positions', (T) => {
    expect(fusedActive('DpoRopeTables')).toBe(true);
    const before = tf.memory().numTensors;
    const [fused, ref, pos] = tf.tidy(() => {
      const m = tf.tensor2d(MASK);
      const f = ropeTablesFused(m, INV, T);
      const r = ropeTablesReference(m, INV, T);
      return [[f.cos, f.sin], [r.cos, r.sin], [positionsFromMask(m, T)]].map((ts) => ts.map((t) => t.dataSync() as Float32Array));
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(Array.from(pos[0]).slice(0, T)).toEqual([0, 1, 2, 3, 1, 1, 1].slice(7 - T));
    const want = tables64(MASK, T);
    for (let k = 0; k < 2; k++) {
      expect(maxDiff(fused[k], ref[k]), `${k ? 'sin' : 'cos'} vs reference`).toBeLessThan(2e-7);
      expect(maxDiff(fused[k], want[k]), `${k ? 'sin' : 'cos'} vs float64`).toBeLessThan(1e-7);
    }
  });

  it.skipIf(!has)('under a gradient tape the tables are data: no gradient reaches them, nothing leaks', () => {
    const v = tf.variable(tf.ones([3, 7, D]));
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => {
        const { cos } = ropeTables(tf.tensor2d(MASK), INV, 7);
        return tf.sum(tf.mul(v, cos)) as tf.Scalar;
      }, [v]);
      const want = tf.tidy(() => ropeTablesReference(tf.tensor2d(MASK), INV, 7).cos);
      expect(maxDiff(grads[v.name].dataSync(), want.dataSync())).toBeLessThan(2e-7);
      expect(Number.isFinite(value.dataSync()[0])).toBe(true);
    });
    expect(tf.memory().numTensors).toBe(before);
    v.dispose();
  });

  it.skipIf(!has)('DPO_KERNELS=reference switches to the reference; auto switches back', () => {
    registerFastKernels(backend, 'reference');
    try {
      expect(fusedActive('DpoRopeTables')).toBe(false);
      const [a, b] = tf.tidy(() => [ropeTables(tf.tensor2d(MASK), INV, 5), ropeTablesReference(tf.tensor2d(MASK), INV, 5)].map((t) => t.sin.dataSync()));
      expect(maxDiff(a, b)).toBe(0);
    } finally {
      registerFastKernels(backend, 'auto');
    }
    expect(fusedActive('DpoRopeTables')).toBe(true);
  });

  it.skipIf(!has)('a mask cast from int32 (the cpu backend keeps its Int32Array) gives the same tables', () => {
    const [a, b] = tf.tidy(() => [tf.cast(tf.tensor2d(MASK, undefined, 'int32'), 'float32'), tf.tensor2d(MASK)]
      .map((m) => ropeTablesFused(m as tf.Tensor2D, INV, 7).cos.dataSync()));
    expect(maxDiff(a, b)).toBe(0);
  });

  it.skipIf(!has)('operands that do not fit name their shapes', () => {
    tf.tidy(() => {
      expect(() => ropeTablesFused(tf.ones([2, 3]) as tf.Tensor2D, INV, 4)).toThrow(/DpoRopeTables: keyMask float32 \[2,3\], invFreq \[4\], T 4/);
    });
  });
});

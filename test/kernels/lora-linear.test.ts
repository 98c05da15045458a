// The fused LoRA linear (kernels/lora-linear.ts: one addon call forward, one per input backward) on the cpu and wasm
// backends: values and the gradients for x, A, B and W against the plain-ops reference (autograd) and float64 central
// differences; model/lora.ts' loraLinear takes it only without bias or dropout; with 1 and 2 threads it gives the same
// bits on shapes whose products native/blas/gemm.h cuts into blocks, and equals the plain ops;
// DPO_KERNELS=reference switches back to the reference; no tensor leaks. Skips when the addon is not built.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { asFusedAddon, fusedActive } from '../../kernels/native.js';
import { hasLoraLinear, linearFused, linearReference, loraLinearFused, loraLinearReference } from '../../kernels/lora-linear.js';
import { loadBlasAddon } from '../../kernels/matmul-blas.js';
import { registerFastKernels, setKernelThreads } from '../../src/backend/kernels.js';
import { loraLinear } from '../../src/model/lora.js';
import { Rng } from '../../src/util/rng.js';
import { maxDiff, normal, sameBits, withFusedKernelsOnWasm } from './fused-suite.js';

const has = hasLoraLinear(asFusedAddon(loadBlasAddon().addon));

withFusedKernelsOnWasm();


type Dims = { lead: number[]; I: number; O: number; r: number };
type Data = { x: Float32Array; w: Float32Array; A: Float32Array; B: Float32Array; up: Float32Array };

function data(d: Dims, seed: number): Data {
  const rng = new Rng(seed);
  const M = d.lead.reduce((a, b) => a * b, 1);
  return { x: normal(rng, M * d.I), w: normal(rng, d.O * d.I, 0.5), A: normal(rng, d.r * d.I, 0.5), B: normal(rng, d.O * d.r, 0.5), up: normal(rng, M * d.O) };
}

type F = (x: tf.Tensor, w: tf.Tensor, A: tf.Tensor, B: tf.Tensor, scale: number) => tf.Tensor;

/** y and the gradients of sum(y * up) for x, W, A, B. */
function valueAndGrads(f: F, d: Dims, v: Data, scale: number): Float32Array[] {
  return tf.tidy(() => {
    const x = tf.tensor(v.x, [...d.lead, d.I]);
    const w = tf.tensor2d(v.w, [d.O, d.I]);
    const A = tf.tensor2d(v.A, [d.r, d.I]);
    const B = tf.tensor2d(v.B, [d.O, d.r]);
    const up = tf.tensor(v.up, [...d.lead, d.O]);
    const y = f(x, w, A, B, scale);
    expect(y.shape).toEqual([...d.lead, d.O]);
    const g = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor, e: tf.Tensor) => tf.sum(tf.mul(f(a, b, c, e, scale), up)))([x, w, A, B]);
    return [y, ...g].map((t) => t.dataSync() as Float32Array);
  });
}

/** sum(y * up) in float64, y = x W^T + scale (x A^T) B^T. */
function loss64(d: Dims, x: Float64Array, w: Float64Array, A: Float64Array, B: Float64Array, up: Float32Array, scale: number): number {
  const M = x.length / d.I;
  let total = 0;
  for (let m = 0; m < M; m++) {
    const down = Array.from({ length: d.r }, (_, k) => { let s = 0; for (let i = 0; i < d.I; i++) s += x[m * d.I + i] * A[k * d.I + i]; return s * scale; });
    for (let o = 0; o < d.O; o++) {
      let y = 0;
      for (let i = 0; i < d.I; i++) y += x[m * d.I + i] * w[o * d.I + i];
      for (let k = 0; k < d.r; k++) y += down[k] * B[o * d.r + k];
      total += y * up[m * d.O + o];
    }
  }
  return total;
}

describe.each(['cpu', 'wasm'] as const)('fused LoRA linear on %s', (backend) => {
  beforeAll(async () => {
    await tf.setBackend(backend);
  });

  it.skipIf(!has)('value and dx, dW, dA, dB = the reference (autograd) = float64 central differences; no leaks', () => {
    const d: Dims = { lead: [2, 3], I: 7, O: 5, r: 2 };
    const scale = 1.5;
    const v = data(d, 4);
    const before = tf.memory().numTensors;
    const fused = valueAndGrads(loraLinearFused, d, v, scale);
    expect(tf.memory().numTensors).toBe(before);
    const ref = valueAndGrads(loraLinearReference, d, v, scale);
    fused.forEach((a, i) => expect(maxDiff(a, ref[i]), `output ${i}`).toBeLessThan(2e-6));
    const ins = [v.x, v.w, v.A, v.B].map((a) => Float64Array.from(a));
    const L = () => loss64(d, ins[0], ins[1], ins[2], ins[3], v.up, scale);
    // The value, then each input's gradient by central differences in every coordinate.
    const M = v.x.length / d.I;
    const y64 = new Float64Array(M * d.O);
    for (let m = 0; m < M; m++) for (let o = 0; o < d.O; o++) {
      const saved = v.up.slice();
      v.up.fill(0);
      v.up[m * d.O + o] = 1;
      y64[m * d.O + o] = L();
      v.up.set(saved);
    }
    expect(maxDiff(fused[0], y64)).toBeLessThan(2e-6);
    ins.forEach((x64, k) => {
      const h = 1e-4;
      const fd = Float64Array.from(x64, (x0, i) => {
        x64[i] = x0 + h; const p = L();
        x64[i] = x0 - h; const m = L();
        x64[i] = x0;
        return (p - m) / (2 * h);
      });
      const e = maxDiff(fused[1 + k], fd);
      expect(e, `gradient of input ${k} vs central differences: ${e}`).toBeLessThan(1e-4);
    });
  });

  it.skipIf(!has)('the frozen linear without adapter (DpoLinear): value, dx and dW = the reference = float64 central differences', () => {
    const d: Dims = { lead: [2, 3], I: 7, O: 5, r: 1 };
    const v = data(d, 6);
    // The adapter terms with B = 0 vanish: the float64 loss of the LoRA case is the plain linear's.
    const zeroB = new Float64Array(d.O * d.r);
    const run = (f: (x: tf.Tensor, w: tf.Tensor) => tf.Tensor) => tf.tidy(() => {
      const x = tf.tensor(v.x, [...d.lead, d.I]);
      const w = tf.tensor2d(v.w, [d.O, d.I]);
      const up = tf.tensor(v.up, [...d.lead, d.O]);
      const g = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(f(a, b), up)))([x, w]);
      return [f(x, w), ...g].map((t) => t.dataSync() as Float32Array);
    });
    const before = tf.memory().numTensors;
    const fused = run(linearFused);
    expect(tf.memory().numTensors).toBe(before);
    const ref = run(linearReference);
    for (const i of [0, 1, 2]) expect(maxDiff(fused[i], ref[i]), `output ${i}`).toBeLessThan(2e-6);
    const ins = [v.x, v.w].map((a) => Float64Array.from(a));
    const A64 = Float64Array.from(v.A);
    const L = () => loss64(d, ins[0], ins[1], A64, zeroB, v.up, 1);
    ins.forEach((x64, k) => {
      const fd = Float64Array.from(x64, (x0, i) => {
        x64[i] = x0 + 1e-4; const p = L();
        x64[i] = x0 - 1e-4; const m = L();
        x64[i] = x0;
        return (p - m) / 2e-4;
      });
      expect(maxDiff(fused[1 + k], fd), `gradient of input ${k}`).toBeLessThan(1e-4);
    });
  });

  it.skipIf(!has)('model/lora.ts loraLinear takes the fused kernel without bias or dropout, the reference otherwise (same values)', async () => {
    const d: Dims = { lead: [3, 4], I: 6, O: 5, r: 3 };
    const v = data(d, 9);
    const x = tf.tensor(v.x, [...d.lead, d.I]);
    const w = tf.tensor2d(v.w, [d.O, d.I]);
    const adapter = { A: tf.variable(tf.tensor2d(v.A, [d.r, d.I])), B: tf.variable(tf.tensor2d(v.B, [d.O, d.r])) };
    const bias = tf.tensor1d([1, 2, 3, 4, 5]);
    const kernels = async (f: () => tf.Tensor) => (await tf.profile(() => { f().dispose(); })).kernels.map((k) => k.name);
    const want = tf.tidy(() => loraLinearReference(x, w, adapter.A, adapter.B, 0.5).dataSync());
    expect(maxDiff(tf.tidy(() => loraLinear(x, w, null, adapter, 0.5).dataSync()), want)).toBeLessThan(2e-6);
    expect(await kernels(() => loraLinear(x, w, null, adapter, 0.5))).toEqual(['DpoLoraLinear']);
    const withBias = tf.tidy(() => loraLinear(x, w, bias, adapter, 0.5).dataSync());
    expect(maxDiff(withBias, Float32Array.from(want, (y, i) => y + (i % 5) + 1))).toBeLessThan(5e-6);
    expect(await kernels(() => loraLinear(x, w, bias, adapter, 0.5))).not.toContain('DpoLoraLinear');
    expect(await kernels(() => loraLinear(x, w, null, undefined, 0))).toEqual(['DpoLinear']);
    expect(maxDiff(tf.tidy(() => loraLinear(x, w, null, undefined, 0).dataSync()), tf.tidy(() => linearReference(x, w).dataSync()))).toBeLessThan(2e-6);
    const rng = new Rng(1);
    expect(await kernels(() => loraLinear(x, w, null, adapter, 0.5, { rate: 0.1, rng }))).not.toContain('DpoLoraLinear');
    tf.dispose([x, w, bias, adapter.A, adapter.B]);
  });

  // OpenBLAS's own threads gave other bits with 2 threads on some shapes (0.3.21: [384, 256] x [256, 16] moved by 3e-5);
  // gemm.h keeps OpenBLAS at one thread and cuts a product into blocks fixed by its shape. Here x W^T is
  // [384, 256] x [256, 768] (cut into 3 blocks of columns) and dy W is [384, 768] x [768, 256] (2 blocks of rows).
  it.skipIf(!has)('with 1 and with 2 threads: the same bits, and = the reference to float32 rounding', () => {
    const d: Dims = { lead: [4, 96], I: 256, O: 768, r: 16 };
    const v = data(d, 2);
    const runs = [1, 2].map((n) => {
      setKernelThreads(n);
      return valueAndGrads(loraLinearFused, d, v, 2);
    });
    setKernelThreads(1);
    const ref = valueAndGrads(loraLinearReference, d, v, 2);
    runs[0].forEach((a, i) => {
      const b = runs[1][i];
      expect(sameBits(a, b), `output ${i}`).toBe(true);
      // Two summation orders of up to 768 float32 terms (the reference's kernels are the machine's own, XNNPACK's
      // AVX-512 or AVX2 ones): about sqrt(768) x 2^-24 = 1.7e-6 of the largest value apart. 1e-6 held on Intel and
      // failed on an AMD EPYC at 1.009e-6 (output 1).
      const scale = ref[i].reduce((m, x) => Math.max(m, Math.abs(x)), 0);
      expect(maxDiff(a, ref[i]) / scale, `output ${i}`).toBeLessThan(4e-6);
    });
  });

  it.skipIf(!has)('DPO_KERNELS=reference unregisters it; loraLinear is then the plain ops, bit for bit', () => {
    const d: Dims = { lead: [2, 5], I: 8, O: 6, r: 2 };
    const v = data(d, 3);
    registerFastKernels(backend, 'reference');
    try {
      expect(fusedActive('DpoLoraLinear')).toBe(false);
      expect(fusedActive('DpoLinear')).toBe(false);
      const [a, b] = tf.tidy(() => {
        const x = tf.tensor(v.x, [...d.lead, d.I]);
        const w = tf.tensor2d(v.w, [d.O, d.I]);
        const A = tf.variable(tf.tensor2d(v.A, [d.r, d.I]));
        const B = tf.variable(tf.tensor2d(v.B, [d.O, d.r]));
        const out = [loraLinear(x, w, null, { A, B }, 2).dataSync(), loraLinearReference(x, w, A, B, 2).dataSync()];
        A.dispose();
        B.dispose();
        return out;
      });
      expect(maxDiff(a, b)).toBe(0);
    } finally {
      registerFastKernels(backend, 'auto');
    }
    expect(fusedActive('DpoLoraLinear')).toBe(true);
  });
});

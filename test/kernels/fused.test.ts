// The fused native kernels (kernels/rmsnorm.ts, rope.ts, swiglu.ts, attention-softmax.ts) on the cpu and wasm
// backends against their plain-ops references (values, autograd gradients) and float64 central differences; 1 and 2
// threads give bit-identical results; DPO_KERNELS=reference (registerFastKernels) switches every op to its reference;
// wasm's zero-copy Identity shares data and leaks nothing. Addon cases skip when the addon is not built.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { rmsNorm, rmsNormFused, rmsNormReference } from '../../kernels/rmsnorm.js';
import { swiglu, swigluFused, swigluReference } from '../../kernels/swiglu.js';
import { ropeHeadsFirst, ropeHeadsFirstFused, ropeHeadsFirstReference } from '../../kernels/rope.js';
import { maskedSoftmax, maskedSoftmaxFused, maskedSoftmaxReference } from '../../kernels/attention-softmax.js';
import { asFusedAddon, fusedActive } from '../../kernels/native.js';
import { completionStats, completionStatsReference, setLogprobKeepBytes } from '../../kernels/logprob.js';
import { loadBlasAddon } from '../../kernels/matmul-blas.js';
import { registerFastKernels, setKernelThreads } from '../../src/backend/kernels.js';
import { Rng } from '../../src/util/rng.js';
import { withFusedKernelsOnWasm } from './fused-suite.js';

const BACKENDS = ['cpu', 'wasm'] as const;
const hasFused = asFusedAddon(loadBlasAddon().addon) !== null;

withFusedKernelsOnWasm();

/** One op: its inputs (data and shapes), which of them are differentiated, the three versions, a float64 forward. */
interface Case {
  name: string;
  shapes: number[][];
  data: (rng: Rng) => Float32Array[];
  /** Indices of the inputs whose gradient is checked (the rest are constants: tables, masks). */
  wrt: number[];
  fused: (...x: tf.Tensor[]) => tf.Tensor;
  reference: (...x: tf.Tensor[]) => tf.Tensor;
  dispatch: (...x: tf.Tensor[]) => tf.Tensor;
  kernel: string;
  /** The op in float64 JS on flat row-major inputs; returns the flat output (same order as the tfjs output). */
  f64: (x: Float64Array[]) => Float64Array;
}

const normal = (rng: Rng, n: number, mean = 0, sd = 1) => Float32Array.from({ length: n }, () => rng.normal(mean, sd));

function rmsCase(R: number, H: number): Case {
  const eps = 1e-5;
  return {
    name: `rmsNorm [${R}, ${H}]`, shapes: [[R, H], [H]], wrt: [0, 1], kernel: 'DpoRmsNorm',
    data: (rng) => [normal(rng, R * H), normal(rng, H, 1, 0.2)],
    fused: (x, w) => rmsNormFused(x, w, eps), reference: (x, w) => rmsNormReference(x, w, eps), dispatch: (x, w) => rmsNorm(x, w, eps),
    f64: ([x, w]) => {
      const y = new Float64Array(R * H);
      for (let r = 0; r < R; r++) {
        let ss = 0;
        for (let i = 0; i < H; i++) ss += x[r * H + i] ** 2;
        const ri = 1 / Math.sqrt(ss / H + eps);
        for (let i = 0; i < H; i++) y[r * H + i] = x[r * H + i] * ri * w[i];
      }
      return y;
    },
  };
}

function swigluCase(n: number): Case {
  return {
    name: `swiglu [${n}]`, shapes: [[n], [n]], wrt: [0, 1], kernel: 'DpoSwiglu',
    data: (rng) => [normal(rng, n, 0, 3), normal(rng, n)],
    fused: swigluFused, reference: swigluReference, dispatch: swiglu,
    f64: ([g, u]) => Float64Array.from(g, (gi, i) => (gi / (1 + Math.exp(-gi))) * u[i]),
  };
}

function ropeCase(B: number, T: number, N: number, D: number): Case {
  const h = D / 2;
  return {
    name: `rope [${B}, ${T}, ${N}, ${D}]`, shapes: [[B, T, N, D], [B, T, D], [B, T, D]], wrt: [0], kernel: 'DpoRope',
    data: (rng) => {
      // Real tables: cos/sin of position * frequency, the two halves equal.
      const c = new Float32Array(B * T * D);
      const s = new Float32Array(B * T * D);
      for (let bt = 0; bt < B * T; bt++) {
        for (let i = 0; i < h; i++) {
          const a = ((bt % T) + 1) * 10000 ** (-i / h) + rng.normal(0, 0.1);
          c[bt * D + i] = c[bt * D + i + h] = Math.cos(a);
          s[bt * D + i] = s[bt * D + i + h] = Math.sin(a);
        }
      }
      return [normal(rng, B * T * N * D), c, s];
    },
    fused: (x, c, s) => ropeHeadsFirstFused(x as tf.Tensor4D, c as tf.Tensor3D, s as tf.Tensor3D),
    reference: (x, c, s) => ropeHeadsFirstReference(x as tf.Tensor4D, c as tf.Tensor3D, s as tf.Tensor3D),
    dispatch: (x, c, s) => ropeHeadsFirst(x as tf.Tensor4D, c as tf.Tensor3D, s as tf.Tensor3D),
    f64: ([x, c, s]) => {
      const y = new Float64Array(B * N * T * D);
      for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let n = 0; n < N; n++) for (let i = 0; i < D; i++) {
        const xi = x[((b * T + t) * N + n) * D + i];
        const rot = i < h ? -x[((b * T + t) * N + n) * D + i + h] : x[((b * T + t) * N + n) * D + i - h];
        y[((b * N + n) * T + t) * D + i] = xi * c[(b * T + t) * D + i] + rot * s[(b * T + t) * D + i];
      }
      return y;
    },
  };
}

function softmaxCase(B: number, N: number, T: number, S: number): Case {
  const scale = 1 / Math.sqrt(8);
  return {
    name: `maskedSoftmax [${B}, ${N}, ${T}, ${S}]`, shapes: [[B, N, T, S], [B, 1, T, S]], wrt: [0], kernel: 'DpoMaskedSoftmax',
    data: (rng) => {
      // Causal + padding as attentionBias builds it: key j visible to query t when j <= t + (S - T) and j is a token;
      // batch row 1 has a left pad, so its first query sees only masked keys (a uniform row, never NaN).
      const bias = new Float32Array(B * T * S);
      for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let j = 0; j < S; j++) {
        const ok = j <= t + (S - T) && !(b === 1 && j === 0);
        bias[(b * T + t) * S + j] = ok ? 0 : -1e9;
      }
      return [normal(rng, B * N * T * S, 0, 3), bias];
    },
    fused: (x, b) => maskedSoftmaxFused(x as tf.Tensor4D, b as tf.Tensor4D, scale),
    reference: (x, b) => maskedSoftmaxReference(x as tf.Tensor4D, b as tf.Tensor4D, scale),
    dispatch: (x, b) => maskedSoftmax(x as tf.Tensor4D, b as tf.Tensor4D, scale),
    f64: ([x, bias]) => {
      const p = new Float64Array(B * N * T * S);
      for (let r = 0; r < B * N * T; r++) {
        const b = Math.floor(r / (N * T));
        const t = r % T;
        const z = Array.from({ length: S }, (_, j) => x[r * S + j] * scale + bias[(b * T + t) * S + j]);
        const m = Math.max(...z);
        const e = z.map((v) => Math.exp(v - m));
        const sum = e.reduce((a, v) => a + v, 0);
        for (let j = 0; j < S; j++) p[r * S + j] = e[j] / sum;
      }
      return p;
    },
  };
}

/** The log-prob chunk pass as a Case (for the thread test): hidden -> completion log-probs, chunks of 16 positions. */
function logprobCase(B: number, T: number, H: number, V: number): Case {
  const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 7919) % V);
  const mask = Float32Array.from({ length: B * T }, (_, i) => (i % T > 3 ? 1 : 0));
  const f = (x: tf.Tensor, w: tf.Tensor) => tf.tidy(() => {
    const s = completionStats(x as tf.Tensor3D, w as tf.Tensor2D, tf.tensor2d(ids, [B, T], 'int32'), tf.tensor2d(mask, [B, T]), 16);
    return tf.stack([s.logps, s.logitSums, s.correct]);
  });
  return {
    name: `completionStats [${B}, ${T}, ${H}] V ${V}`, shapes: [[B, T, H], [V, H]], wrt: [0], kernel: 'DpoLogSoftmaxPick',
    data: (rng) => [normal(rng, B * T * H), normal(rng, V * H, 0, 0.5)],
    fused: f, reference: f, dispatch: f, f64: () => new Float64Array(3 * B),
  };
}

const CASES: Case[] = [rmsCase(6, 40), swigluCase(300), ropeCase(2, 3, 3, 8), softmaxCase(2, 2, 4, 5)];

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

/** The op's value and the gradients of sum(y * up) for its differentiated inputs, as plain arrays. */
function valueAndGrads(c: Case, f: (...x: tf.Tensor[]) => tf.Tensor, data: Float32Array[], up: Float32Array): { y: Float32Array; g: Float32Array[] } {
  return tf.tidy(() => {
    const xs = data.map((d, i) => tf.tensor(d, c.shapes[i]));
    const y = f(...xs);
    const upT = tf.tensor(up, y.shape);
    const grads = tf.grads((...w: tf.Tensor[]) => {
      const all = xs.slice();
      c.wrt.forEach((k, i) => { all[k] = w[i]; });
      return tf.sum(tf.mul(f(...all), upT));
    })(c.wrt.map((k) => xs[k]));
    return { y: y.dataSync() as Float32Array, g: grads.map((g) => g.dataSync() as Float32Array) };
  });
}

describe.each(BACKENDS)('fused kernels on %s', (backend) => {
  beforeAll(async () => {
    await tf.setBackend(backend);
  });

  for (const c of CASES) {
    it.skipIf(!hasFused)(`${c.name}: fused = reference, gradients = autograd of the reference = float64 central differences`, () => {
      const rng = new Rng(11);
      const data = c.data(rng);
      const y64 = c.f64(data.map((d) => Float64Array.from(d)));
      const up = normal(rng, y64.length);
      const before = tf.memory().numTensors;
      const fused = valueAndGrads(c, c.fused, data, up);
      const ref = valueAndGrads(c, c.reference, data, up);
      expect(tf.memory().numTensors).toBe(before);
      const yErr = maxDiff(fused.y, ref.y);
      expect(yErr, `value max diff ${yErr}`).toBeLessThan(2e-6);
      expect(maxDiff(fused.y, y64)).toBeLessThan(2e-6);
      // Central differences of sum(y * up) in float64, for every coordinate of every differentiated input.
      c.wrt.forEach((k, gi) => {
        const gErr = maxDiff(fused.g[gi], ref.g[gi]);
        expect(gErr, `gradient ${k} vs reference: max diff ${gErr}`).toBeLessThan(2e-5);
        const x64 = data.map((d) => Float64Array.from(d));
        const h = 1e-4;
        const fd = new Float64Array(data[k].length);
        for (let i = 0; i < fd.length; i++) {
          const x0 = x64[k][i];
          x64[k][i] = x0 + h;
          const p = c.f64(x64).reduce((a, v, j) => a + v * up[j], 0);
          x64[k][i] = x0 - h;
          const m = c.f64(x64).reduce((a, v, j) => a + v * up[j], 0);
          x64[k][i] = x0;
          fd[i] = (p - m) / (2 * h);
        }
        const fdErr = maxDiff(fused.g[gi], fd);
        expect(fdErr, `gradient ${k} vs central differences: max diff ${fdErr}`).toBeLessThan(1e-4);
      });
    });
  }

  it.skipIf(!hasFused)('1 and 2 threads give bit-identical values and gradients (shapes of many tasks)', () => {
    const big = [rmsCase(300, 512), swigluCase(100_000), ropeCase(2, 128, 8, 64), softmaxCase(2, 4, 64, 128), logprobCase(2, 40, 16, 1000)];
    for (const c of big) {
      const rng = new Rng(5);
      const data = c.data(rng);
      const up = normal(rng, c.f64(data.map((d) => Float64Array.from(d))).length);
      setKernelThreads(1);
      const one = valueAndGrads(c, c.fused, data, up);
      setKernelThreads(2);
      const two = valueAndGrads(c, c.fused, data, up);
      setKernelThreads(1);
      const same = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
      expect(same(one.y, two.y), c.name).toBe(true);
      one.g.forEach((g, i) => expect(same(g, two.g[i]), `${c.name} gradient ${i}`).toBe(true));
    }
  });

  it.skipIf(!hasFused)('DPO_KERNELS=reference switches every op to its plain-ops reference; auto switches back', () => {
    const rng = new Rng(3);
    registerFastKernels(backend, 'reference');
    try {
      for (const c of CASES) {
        expect(fusedActive(c.kernel)).toBe(false);
        const data = c.data(rng);
        const [a, b] = tf.tidy(() => {
          const xs = data.map((d, i) => tf.tensor(d, c.shapes[i]));
          return [c.dispatch(...xs).dataSync(), c.reference(...xs).dataSync()];
        });
        expect(maxDiff(a, b)).toBe(0);
      }
    } finally {
      registerFastKernels(backend, 'auto');
    }
    for (const c of CASES) expect(fusedActive(c.kernel)).toBe(true);
  });
});

describe.each(BACKENDS)('fused log-softmax + gather (kernels/logprob.ts) on %s', (backend) => {
  it.skipIf(!hasFused).each([['kept', 64 * 2 ** 20], ['recomputed', 0]])('log-probs, mean-logit and argmax sums = the reference; dHidden (%s softmax) = autograd of the reference = float64 differences', async (_, bytes) => {
    await tf.setBackend(backend);
    const prevBytes = setLogprobKeepBytes(bytes as number);
    expect(fusedActive('DpoLogSoftmaxPick')).toBe(true);
    const [B, T, H, V, chunk] = [2, 7, 6, 37, 3];
    const rng = new Rng(21);
    const h = normal(rng, B * T * H);
    const w = normal(rng, V * H, 0, 0.7);
    const ids = Int32Array.from({ length: B * T }, () => rng.int(V));
    ids[3] = 0; // a label at the edge of the row
    const mask = Float32Array.from({ length: B * T }, (_, i) => (i % T >= 2 && i !== B * T - 1 ? 1 : 0));
    const up = normal(rng, B);
    const run = (f: typeof completionStats) => tf.tidy(() => {
      const hid = tf.tensor3d(h, [B, T, H]);
      const args = [tf.tensor2d(w, [V, H]), tf.tensor2d(ids, [B, T], 'int32'), tf.tensor2d(mask, [B, T])] as const;
      const s = f(hid, ...args, chunk);
      const g = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(f(x as tf.Tensor3D, ...args, chunk).logps, tf.tensor1d(up))))(hid);
      return [s.logps, s.logitSums, s.correct, g].map((t) => t.dataSync() as Float32Array);
    });
    const before = tf.memory().numTensors;
    const fused = run(completionStats);
    expect(tf.memory().numTensors).toBe(before); // the kept chunks are freed with the tape
    const ref = run(completionStatsReference);
    for (let k = 0; k < 3; k++) expect(maxDiff(fused[k], ref[k]), `output ${k}`).toBeLessThan(5e-5);
    expect(maxDiff(fused[3], ref[3])).toBeLessThan(2e-5);
    // float64: sum_b up_b * sum_t mask[t+1] * (z_t[id_{t+1}] - lse z_t), central differences in every coordinate of h.
    const loss = (x: Float64Array) => {
      let total = 0;
      for (let b = 0; b < B; b++) for (let t = 0; t < T - 1; t++) {
        if (!mask[b * T + t + 1]) continue;
        const z = Array.from({ length: V }, (_, v) => { let a = 0; for (let k = 0; k < H; k++) a += x[(b * T + t) * H + k] * w[v * H + k]; return a; });
        const m = Math.max(...z);
        total += up[b] * (z[ids[b * T + t + 1]] - m - Math.log(z.reduce((a, v) => a + Math.exp(v - m), 0)));
      }
      return total;
    };
    const x64 = Float64Array.from(h);
    const fd = Float64Array.from(x64, (x0, i) => {
      x64[i] = x0 + 1e-5; const p = loss(x64);
      x64[i] = x0 - 1e-5; const m = loss(x64);
      x64[i] = x0;
      return (p - m) / 2e-5;
    });
    expect(maxDiff(fused[3], fd)).toBeLessThan(1e-4);
    setLogprobKeepBytes(prevBytes);
  });
});

describe.each(BACKENDS)('addon Add and GatherV2 (kernels/elementwise.ts) on %s', (backend) => {
  it.skipIf(!hasFused)('same-shape adds and row gathers are exact; broadcasts and other axes go to the stock kernels', async () => {
    await tf.setBackend(backend);
    const rng = new Rng(8);
    const a = normal(rng, 3 * 70_000);
    const b = normal(rng, 3 * 70_000);
    const table = normal(rng, 50 * 6);
    const ids = Int32Array.from({ length: 40 }, () => rng.int(50));
    tf.tidy(() => {
      const sum = tf.add(tf.tensor(a, [3, 70_000]), tf.tensor(b, [3, 70_000])).dataSync();
      expect(maxDiff(sum, Float32Array.from(a, (x, i) => x + b[i]))).toBe(0);
      expect(tf.add(tf.tensor([1, 2]), tf.tensor([[10], [20]])).arraySync()).toEqual([[11, 12], [21, 22]]);
      const rows = tf.gather(tf.tensor2d(table, [50, 6]), tf.tensor2d(ids, [5, 8], 'int32'));
      expect(rows.shape).toEqual([5, 8, 6]);
      const want = new Float32Array(40 * 6);
      ids.forEach((id, r) => want.set(table.subarray(id * 6, id * 6 + 6), r * 6));
      expect(maxDiff(rows.dataSync(), want)).toBe(0);
      expect(tf.gather(tf.tensor2d([[1, 2], [3, 4]]), tf.tensor1d([1], 'int32'), 1).arraySync()).toEqual([[2], [4]]);
      expect(() => tf.gather(tf.tensor2d(table, [50, 6]), tf.tensor1d([50], 'int32')).dataSync()).toThrow(/outside/);
    });
  });
});

describe('zero-copy Identity on wasm', () => {
  it.skipIf(!hasFused)('a clone shares the data, survives the original and frees the buffer with the last reference', async () => {
    await tf.setBackend('wasm');
    const x = tf.tensor([1, 2, 3]);
    const before = tf.memory();
    const y = tf.clone(x);
    expect(tf.memory().numDataBuffers).toBe(before.numDataBuffers); // no new buffer
    x.dispose();
    expect(Array.from(y.dataSync())).toEqual([1, 2, 3]);
    y.dispose();
    expect(tf.memory().numTensors).toBe(before.numTensors - 1);
    expect(tf.memory().numDataBuffers).toBe(before.numDataBuffers - 1);
  });
});

// kernels/logprob.ts against its plain reference and a float64 JS computation: values, gradients to the hidden
// states (autograd of the reference, float64 central differences), chunk sizes, no leaks, and bounded peak memory.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { completionLogprobs, completionLogprobsReference } from '../../kernels/logprob.js';
import { measurePeak } from '../../src/plan/peak.js';
import { Rng } from '../../src/util/rng.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

interface Case {
  B: number;
  T: number;
  H: number;
  V: number;
  h: Float32Array;
  w: Float32Array;
  ids: Int32Array;
  mask: Float32Array;
}

function makeCase(B: number, T: number, H: number, V: number, seed: number): Case {
  const rng = new Rng(seed);
  const h = Float32Array.from({ length: B * T * H }, () => rng.normal(0, 1));
  const w = Float32Array.from({ length: V * H }, () => rng.normal(0, 0.5));
  const ids = Int32Array.from({ length: B * T }, () => rng.int(V));
  // A prompt of 1..3 tokens, then completion tokens, then right padding on row 1.
  const mask = new Float32Array(B * T);
  for (let b = 0; b < B; b++) {
    const start = 1 + (b % 3);
    const end = b === 1 ? T - 2 : T;
    for (let t = start; t < end; t++) mask[b * T + t] = 1;
  }
  return { B, T, H, V, h, w, ids, mask };
}

function tensors(c: Case) {
  return {
    h: tf.tensor3d(c.h, [c.B, c.T, c.H]),
    w: tf.tensor2d(c.w, [c.V, c.H]),
    ids: tf.tensor2d(c.ids, [c.B, c.T], 'int32'),
    mask: tf.tensor2d(c.mask, [c.B, c.T]),
  };
}

/** Float64 JS: sum over t of mask[t+1] * (z_t[id_{t+1}] - lse(z_t)), z = h W^T, for a given h. */
function logprobs64(c: Case, h: Float64Array): number[] {
  const out: number[] = [];
  for (let b = 0; b < c.B; b++) {
    let total = 0;
    for (let t = 0; t < c.T - 1; t++) {
      const m = c.mask[b * c.T + t + 1];
      if (m === 0) continue;
      const z = new Float64Array(c.V);
      for (let v = 0; v < c.V; v++) {
        let s = 0;
        for (let k = 0; k < c.H; k++) s += h[(b * c.T + t) * c.H + k] * c.w[v * c.H + k];
        z[v] = s;
      }
      const mx = Math.max(...z);
      const lse = mx + Math.log(z.reduce((a, x) => a + Math.exp(x - mx), 0));
      total += m * (z[c.ids[b * c.T + t + 1]] - lse);
    }
    out.push(total);
  }
  return out;
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('completionLogprobs (chunked, custom gradient)', () => {
  it('matches the reference and float64 values for chunk sizes that do and do not divide T-1', () => {
    const c = makeCase(3, 11, 8, 37, 1);
    const t = tensors(c);
    const want = logprobs64(c, Float64Array.from(c.h));
    for (const chunk of [1, 3, 4, 10, 64]) {
      const got = completionLogprobs(t.h, t.w, t.ids, t.mask, chunk);
      const ref = completionLogprobsReference(t.h, t.w, t.ids, t.mask, chunk);
      const d64 = maxDiff(got.dataSync(), want);
      const dRef = maxDiff(got.dataSync(), ref.dataSync());
      if (d64 > 1e-4 || dRef > 1e-4) console.log(`chunk ${chunk}: max diff vs float64 ${d64}, vs reference ${dRef}`);
      expect(d64).toBeLessThan(1e-4);
      expect(dRef).toBeLessThan(1e-4);
      tf.dispose([got, ref]);
    }
    tf.dispose(Object.values(t));
  });

  it('handles T = 1 (nothing to score) with a zero gradient', () => {
    const c = makeCase(2, 1, 4, 5, 2);
    const t = tensors(c);
    const g = tf.grad((h: tf.Tensor) => tf.sum(completionLogprobs(h as tf.Tensor3D, t.w, t.ids, t.mask, 4)))(t.h);
    expect(g.shape).toEqual([2, 1, 4]);
    expect(maxDiff(g.dataSync(), new Float32Array(8))).toBe(0);
    tf.dispose([g, ...Object.values(t)]);
  });

  it('gives the reference gradient to the hidden states, for a non-uniform upstream dy', () => {
    const c = makeCase(3, 13, 8, 29, 3);
    const t = tensors(c);
    const dyw = tf.tensor1d([0.7, -1.3, 2.1]);
    for (const chunk of [2, 5, 16]) {
      const loss = (f: typeof completionLogprobs) => (h: tf.Tensor) => tf.sum(tf.mul(f(h as tf.Tensor3D, t.w, t.ids, t.mask, chunk), dyw));
      const got = tf.grad(loss(completionLogprobs))(t.h);
      const ref = tf.grad(loss(completionLogprobsReference))(t.h);
      const d = maxDiff(got.dataSync(), ref.dataSync());
      if (d > 1e-5) console.log(`chunk ${chunk}: max grad diff vs reference ${d}`);
      expect(d).toBeLessThan(1e-5);
      tf.dispose([got, ref]);
    }
    tf.dispose([dyw, ...Object.values(t)]);
  });

  it('matches float64 central finite differences', () => {
    const c = makeCase(2, 6, 5, 11, 4);
    const t = tensors(c);
    const dy = [0.5, -2];
    const g = tf.grad((h: tf.Tensor) => tf.sum(tf.mul(completionLogprobs(h as tf.Tensor3D, t.w, t.ids, t.mask, 2), tf.tensor1d(dy))))(t.h);
    const got = g.dataSync();
    const base = Float64Array.from(c.h);
    const eps = 1e-5;
    let worst = 0;
    for (let i = 0; i < base.length; i++) {
      const plus = Float64Array.from(base);
      const minus = Float64Array.from(base);
      plus[i] += eps;
      minus[i] -= eps;
      const fp = logprobs64(c, plus).reduce((a, v, b) => a + v * dy[b], 0);
      const fm = logprobs64(c, minus).reduce((a, v, b) => a + v * dy[b], 0);
      const fd = (fp - fm) / (2 * eps);
      worst = Math.max(worst, Math.abs(fd - got[i]) / (1e-3 + Math.abs(fd)));
    }
    if (worst > 1e-4) console.log(`finite differences: worst relative diff ${worst}`);
    expect(worst).toBeLessThan(1e-4);
    tf.dispose([g, ...Object.values(t)]);
  });

  it('leaks no tensors across forward + backward', () => {
    const c = makeCase(2, 9, 6, 13, 5);
    const t = tensors(c);
    const run = () => {
      const g = tf.grad((h: tf.Tensor) => tf.sum(completionLogprobs(h as tf.Tensor3D, t.w, t.ids, t.mask, 3)))(t.h);
      g.dispose();
    };
    run();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) run();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose(Object.values(t));
  });

  it('never holds the full [B, T, V] logits during the backward (the reference holds several)', () => {
    const c = makeCase(2, 65, 16, 2048, 6);
    const t = tensors(c);
    const BTV = c.B * c.T * c.V * 4;
    const peakOf = (f: typeof completionLogprobs) => {
      const { result, peakBytes, startBytes } = measurePeak(() => tf.grad((h: tf.Tensor) => tf.sum(f(h as tf.Tensor3D, t.w, t.ids, t.mask, 8)))(t.h));
      result.dispose();
      return peakBytes - startBytes;
    };
    const kernel = peakOf(completionLogprobs);
    const reference = peakOf(completionLogprobsReference);
    // One chunk is B*8*V floats; a handful of them are live in the backward of a chunk.
    expect(kernel).toBeLessThan(BTV / 2);
    expect(reference).toBeGreaterThan(2 * BTV);
    tf.dispose(Object.values(t));
  });
});

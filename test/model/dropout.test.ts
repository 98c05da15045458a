// LoRA dropout masks hashed on the device (model/dropout.ts): exact bits against an independent numpy port of the
// construction, Bernoulli(1 - p) statistics (mean, independence of adjacent positions and of successive calls), the
// replay that resume needs (same seed, same mask), and that no random values are drawn on the host.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { deviceKeepMask, dropoutKeepMask, hostKeepMask, tableBits } from '../../src/model/dropout.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Pearson correlation of two equal-length 0/1 samples. */
function corr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  let sa = 0, sb = 0, sab = 0, saa = 0, sbb = 0;
  for (let i = 0; i < n; i++) {
    sa += a[i]; sb += b[i]; sab += a[i] * b[i]; saa += a[i] * a[i]; sbb += b[i] * b[i];
  }
  const cov = sab / n - (sa / n) * (sb / n);
  return cov / Math.sqrt((saa / n - (sa / n) ** 2) * (sbb / n - (sb / n) ** 2));
}

describe('dropoutKeepMask', () => {
  it('gives the bits of the numpy port (seed 12345, [5, 7], p = 0.3), on every call', () => {
    // From an independent numpy (int64) transcription of the construction in model/dropout.ts
    // (fmix32 keys, 4-round Feistel permutations, table lookup), run once to get these bits.
    const want = [0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 1, 1, 1];
    for (let k = 0; k < 2; k++) {
      const m = dropoutKeepMask(5, 7, 0.3, 12345);
      expect(Array.from(m.dataSync())).toEqual(want);
      m.dispose();
    }
    const d = deviceKeepMask(5, 7, 0.3, 12345);
    expect(Array.from(d.dataSync())).toEqual(want);
    d.dispose();
  });

  it('the host path (cpu and wasm) and the device path give the same bits', () => {
    for (const [M, I, p, seed] of [[5, 7, 0.3, 12345], [300, 64, 0.1, 7], [1024, 512, 0.05, 99], [3, 4096, 0.5, 2 ** 32 - 1],
      [257, 1, 0.05, 0]]) {
      const d = deviceKeepMask(M!, I!, p!, seed!);
      const h = hostKeepMask(M!, I!, p!, seed!);
      const dv = d.dataSync();
      let diff = 0;
      for (let i = 0; i < h.length; i++) if (h[i] !== dv[i]) diff++;
      expect(diff, `[${M}, ${I}] p ${p} seed ${seed}`).toBe(0);
      expect(h.length).toBe(M! * I!);
      d.dispose();
    }
  });

  it('has the statistics of Bernoulli(1 - p): mean, adjacent positions and successive calls uncorrelated', () => {
    const p = 0.05;
    const [M, I] = [1024, 512];
    const n = M * I;
    // The grid reuses each of the N table slots about n / N times, so the effective sample size is min(n, N), not n;
    // tolerances are 5 standard errors of that size: sd(mean) = sqrt(p (1 - p) / n_eff), sd(corr) = 1 / sqrt(n_eff).
    const N = 4 ** tableBits(M, I);
    const nEff = Math.min(n, N);
    const tolMean = 5 * Math.sqrt((p * (1 - p)) / nEff);
    const tolCorr = 5 / Math.sqrt(nEff);
    for (const seed of [1, 2, 3]) {
      const m = dropoutKeepMask(M, I, p, seed);
      const v = m.dataSync();
      const mean = v.reduce((s, x) => s + x, 0) / n;
      expect(Math.abs(mean - (1 - p)), `seed ${seed} mean ${mean}`).toBeLessThan(tolMean);
      const right = [[], []] as number[][];
      const below = [[], []] as number[][];
      for (let r = 0; r < M; r++) {
        for (let c = 0; c < I; c++) {
          if (c + 1 < I) { right[0].push(v[r * I + c]); right[1].push(v[r * I + c + 1]); }
          if (r + 1 < M) { below[0].push(v[r * I + c]); below[1].push(v[(r + 1) * I + c]); }
        }
      }
      expect(Math.abs(corr(right[0], right[1])), `seed ${seed} along a row`).toBeLessThan(tolCorr);
      expect(Math.abs(corr(below[0], below[1])), `seed ${seed} along a column`).toBeLessThan(tolCorr);
      const next = dropoutKeepMask(M, I, p, seed + 1);
      expect(Math.abs(corr(v, next.dataSync())), `seeds ${seed}, ${seed + 1}`).toBeLessThan(tolCorr);
      tf.dispose([m, next]);
    }
  });

  it('the device path draws nothing on the host: no randomUniform kernel runs and one small vector is uploaded', () => {
    const engine = tf.engine() as unknown as { makeTensor: (...a: unknown[]) => tf.Tensor };
    const orig = engine.makeTensor;
    const uploads: number[] = [];
    engine.makeTensor = function (this: unknown, ...a: unknown[]) {
      uploads.push((a[0] as ArrayLike<number>).length);
      return orig.apply(this, a);
    };
    const kernels: string[] = [];
    const prof = tf.profile(() => deviceKeepMask(300, 64, 0.1, 7).dispose());
    engine.makeTensor = orig;
    return prof.then((info) => {
      for (const k of info.kernels) kernels.push(k.name);
      expect(kernels.some((k) => /Random|Multinomial/.test(k))).toBe(false);
      // 36 round keys + 3 constants + the counter 0 .. L-1 (L = 2^b, here 2^5 = 32), in one upload.
      expect(uploads).toEqual([36 + 3 + 2 ** tableBits(300, 64)]);
    });
  });
});

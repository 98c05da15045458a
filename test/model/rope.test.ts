// RoPE: inverse frequencies in all three llama3 bands (float64 reference and closed forms), cos/sin tables, rotation.
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseLlamaConfig } from '../../src/config/llama.js';
import { applyRope, ropeCosSin, ropeInvFreq } from '../../src/model/rope.js';
import { maxAbsDiff, readFixture } from './fixture.js';
import type { ModelFixture } from './fixture.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number): void {
  const d = maxAbsDiff(got, want);
  if (d >= tol) console.log(`max abs diff ${d} (tol ${tol})\n got  ${Array.from(got)}\n want ${Array.from(want)}`);
  expect(d).toBeLessThan(tol);
}

/** HF's inv_freq, transcribed from `_compute_default_rope_parameters` + `_compute_llama3_parameters` into numpy float32. */
const HF_INV_FREQ_PY = `
import json, math, sys
import numpy as np
d, theta, sc = json.loads(sys.argv[1])
inv = 1.0 / (np.float32(theta) ** (np.arange(0, d, 2, dtype=np.int64).astype(np.float32) / d))
if sc:
    factor, low, high, old = sc['factor'], sc['lowFreqFactor'], sc['highFreqFactor'], sc['originalMaxPositionEmbeddings']
    low_wl, high_wl = old / low, old / high
    wavelen = 2 * math.pi / inv
    inv_l = np.where(wavelen > low_wl, inv / factor, inv)
    smooth = (old / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
    med = ~(wavelen < high_wl) & ~(wavelen > low_wl)
    inv = np.where(med, smoothed, inv_l)
assert inv.dtype == np.float32, inv.dtype
print(json.dumps([float(x) for x in inv]))
`;

function hfInvFreq(d: number, theta: number, sc: object | null): number[] | null {
  const r = spawnSync('python3', ['-c', HF_INV_FREQ_PY, JSON.stringify([d, theta, sc])], { encoding: 'utf8' });
  return r.status === 0 ? (JSON.parse(r.stdout) as number[]) : null;
}

describe('ropeInvFreq', () => {
  // powf differs by an ulp between libms (glibc, numpy, Sleef in torch), and 1 / x can double it: 2^-22 relative.
  it("equals HF's float32 inv_freq to float32 rounding (numpy float32 transcription of transformers' code)", (ctx) => {
    const llama31 = { ropeType: 'llama3' as const, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 };
    const cases: [number, number, typeof llama31 | null][] = [[128, 500000, llama31], [64, 10000, null], [8, 16, { ...llama31, highFreqFactor: 2, originalMaxPositionEmbeddings: 16 }]];
    const want = cases.map(([d, t, sc]) => hfInvFreq(d, t, sc));
    if (want.some((w) => w === null)) {
      if (process.env.DPO_REQUIRE_NUMPY === '1') throw new Error('DPO_REQUIRE_NUMPY=1 but python3 with numpy is not available');
      return ctx.skip('python3 with numpy is not installed: the float32 HF check needs it (CI installs it with DPO_REQUIRE_NUMPY=1)');
    }
    cases.forEach(([d, t, sc], i) => {
      const got = Array.from(ropeInvFreq(d, t, sc));
      const bad = got.map((g, j) => [j, g, want[i]![j]] as const).filter(([, g, w]) => Math.abs(g - w) > 2 ** -22 * Math.abs(w));
      expect(bad, `d ${d} theta ${t}: ${bad.length} of ${got.length} differ by more than 2^-22 relative, e.g. ${JSON.stringify(bad.slice(0, 3))}`).toEqual([]);
    });
  });

  it('matches the float64 reference (llama3 scaling and none)', () => {
    for (const name of ['base.json', 'tied.json']) {
      const fx = readFixture<ModelFixture>(name);
      const cfg = parseLlamaConfig(fx.config);
      expectClose(ropeInvFreq(cfg.headDim, cfg.ropeTheta, cfg.ropeScaling), fx.expected_inv_freq, 1e-7);
    }
  });

  it('matches hand-derived values: one kept, one interpolated, two divided frequencies', () => {
    // theta 16, d 8: f = 1, 1/2, 1/4, 1/8 with wavelengths 2pi, 4pi, 8pi, 16pi; old ctx 16, high 2, low 1, factor 8
    // -> kept below 16/2 = 8, divided above 16/1 = 16, and 4pi interpolated with s = 16 / 4pi - 1 = 4/pi - 1.
    const s = 4 / Math.PI - 1;
    const want = [1, ((1 - s) * 0.5) / 8 + s * 0.5, 0.25 / 8, 0.125 / 8];
    const got = ropeInvFreq(8, 16, { ropeType: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 2, originalMaxPositionEmbeddings: 16 });
    expectClose(got, want, 1e-7);
  });

  it('leaves unscaled frequencies at theta^(-2i/d)', () => {
    const got = ropeInvFreq(4, 10000, null);
    expectClose(got, [1, 1 / 100], 1e-9);
  });

  it('scales the Llama 3.1 8B frequencies band by band', () => {
    const sc = { ropeType: 'llama3' as const, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 };
    const got = ropeInvFreq(128, 500000, sc);
    const plain = ropeInvFreq(128, 500000, null);
    let kept = 0, divided = 0, between = 0;
    for (let i = 0; i < 64; i++) {
      const wl = (2 * Math.PI) / (plain[i] as number);
      const ratio = (got[i] as number) / (plain[i] as number);
      if (wl < 2048) { expect(ratio).toBeCloseTo(1, 6); kept++; }
      else if (wl > 8192) { expect(ratio).toBeCloseTo(1 / 8, 6); divided++; }
      else { expect(ratio > 1 / 8 - 1e-6 && ratio < 1 + 1e-6).toBe(true); between++; }
    }
    expect(kept > 0 && divided > 0 && between > 0).toBe(true);
  });
});

describe('ropeCosSin / applyRope', () => {
  it('builds cat(freqs, freqs) tables for the given positions', () => {
    const inv = ropeInvFreq(4, 100, null); // [1, 0.1]
    const { cos, sin } = ropeCosSin(inv, tf.tensor2d([[0, 1, 5]], undefined, 'int32'));
    expect(cos.shape).toEqual([1, 3, 4]);
    const c = cos.dataSync();
    const s = sin.dataSync();
    const want = (p: number) => [p, p * 0.1, p, p * 0.1];
    expectClose(c, [0, 1, 5].flatMap((p) => want(p).map(Math.cos)), 1e-6);
    expectClose(s, [0, 1, 5].flatMap((p) => want(p).map(Math.sin)), 1e-6);
    cos.dispose();
    sin.dispose();
  });

  it('rotates pairs (i, i + D/2): q·k depends only on the position difference', () => {
    const inv = ropeInvFreq(8, 10000, null);
    const q = tf.randomNormal([1, 1, 1, 8], 0, 1, 'float32', 1) as tf.Tensor4D;
    const k = tf.randomNormal([1, 1, 1, 8], 0, 1, 'float32', 2) as tf.Tensor4D;
    const dot = (m: number, n: number) =>
      tf.tidy(() => {
        const a = ropeCosSin(inv, tf.tensor2d([[m]]));
        const b = ropeCosSin(inv, tf.tensor2d([[n]]));
        return tf.sum(tf.mul(applyRope(q, a.cos, a.sin), applyRope(k, b.cos, b.sin))).dataSync()[0] as number;
      });
    expect(dot(3, 1)).toBeCloseTo(dot(10, 8), 4);
    expect(dot(0, 0)).toBeCloseTo(tf.sum(tf.mul(q, k)).dataSync()[0] as number, 5);
    const norm = tf.tidy(() => {
      const a = ropeCosSin(inv, tf.tensor2d([[7]]));
      return tf.sum(tf.square(applyRope(q, a.cos, a.sin))).dataSync()[0] as number;
    });
    expect(norm).toBeCloseTo(tf.sum(tf.square(q)).dataSync()[0] as number, 4);
  });
});

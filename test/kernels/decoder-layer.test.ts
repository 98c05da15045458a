// The fused MLP and attention halves of a decoder layer (kernels/decoder-layer.ts, native/blas/layer.cc) on the cpu and wasm backends:
// value and dx1 against the plain-ops reference (autograd) and a float64 forward with central differences; 1 and 2
// threads give the same bits; no tensor leaks; a trainable weight is refused; model/llama.ts takes it only for a layer
// whose MLP has no adapter and whose weights are frozen (and the attention half, LoRA on any of q/k/v/o, likewise), with the same logits and adapter gradients as the op-by-op
// path; DPO_KERNELS=reference switches it off. Skips when the addon is not built.
import * as tf from '@tensorflow/tfjs';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { beforeAll, describe, expect, it } from 'vitest';
import { asFusedAddon, fusedActive } from '../../kernels/native.js';
import {
  attnHalfFused, attnHalfReference, hasDecoderLayer, mlpHalfFused, mlpHalfReference, type AttnAdapters, type AttnContext, type AttnWeights, type MlpWeights,
} from '../../kernels/decoder-layer.js';
import { loadBlasAddon } from '../../kernels/matmul-blas.js';
import { registerFastKernels, setKernelThreads, useFusedKernels } from '../../src/backend/kernels.js';
import { forwardHidden } from '../../src/model/llama.js';
import { createLora, disposeLora, loraTensors } from '../../src/model/lora.js';
import { Rng } from '../../src/util/rng.js';
import { env } from '../../src/config/env.js';
import { batchOf, disposeWeights, loadModel, readFixture, type ModelFixture } from '../model/fixture.js';
import { maxDiff, normal, sameBits, withFusedKernelsOnWasm } from './fused-suite.js';

const has = hasDecoderLayer(asFusedAddon(loadBlasAddon(env().blasAddon).addon));

withFusedKernelsOnWasm();


type Dims = { lead: number[]; H: number; I: number };
type Data = { x: Float32Array; norm: Float32Array; gate: Float32Array; up: Float32Array; down: Float32Array; probe: Float32Array };

function data(d: Dims, seed: number): Data {
  const rng = new Rng(seed);
  const M = d.lead.reduce((a, b) => a * b, 1);
  return {
    x: normal(rng, M * d.H), norm: Float32Array.from(normal(rng, d.H, 0.3), (v) => 1 + v), gate: normal(rng, d.I * d.H, 0.5),
    up: normal(rng, d.I * d.H, 0.5), down: normal(rng, d.H * d.I, 0.5), probe: normal(rng, M * d.H),
  };
}

type F = (x: tf.Tensor, w: MlpWeights, eps: number) => tf.Tensor;
const EPS = 1e-5;

/** y and d sum(y * probe) / dx1, as Float32Arrays. */
function valueAndGrad(f: F, d: Dims, v: Data): Float32Array[] {
  return tf.tidy(() => {
    const x = tf.tensor(v.x, [...d.lead, d.H]);
    const w: MlpWeights = {
      norm: tf.tensor1d(v.norm), gate: tf.tensor2d(v.gate, [d.I, d.H]), up: tf.tensor2d(v.up, [d.I, d.H]), down: tf.tensor2d(v.down, [d.H, d.I]),
    };
    const probe = tf.tensor(v.probe, [...d.lead, d.H]);
    const y = f(x, w, EPS);
    expect(y.shape).toEqual([...d.lead, d.H]);
    const [g] = tf.grads((a: tf.Tensor) => tf.sum(tf.mul(f(a, w, EPS), probe)))([x]);
    return [y, g].map((t) => t.dataSync() as Float32Array);
  });
}

/** The MLP half in float64: y = x + down(silu(gate(h)) * up(h)), h = rmsnorm(x). */
function forward64(d: Dims, x: Float64Array, v: Data): Float64Array {
  const { H, I } = d;
  const M = x.length / H;
  const y = new Float64Array(M * H);
  for (let m = 0; m < M; m++) {
    let ss = 0;
    for (let i = 0; i < H; i++) ss += x[m * H + i] ** 2;
    const r = 1 / Math.sqrt(ss / H + EPS);
    const h = Array.from({ length: H }, (_, i) => x[m * H + i] * r * v.norm[i]);
    const act = Array.from({ length: I }, (_, j) => {
      let g = 0, u = 0;
      for (let i = 0; i < H; i++) { g += h[i] * v.gate[j * H + i]; u += h[i] * v.up[j * H + i]; }
      return (g / (1 + Math.exp(-g))) * u;
    });
    for (let o = 0; o < H; o++) {
      let s = 0;
      for (let j = 0; j < I; j++) s += act[j] * v.down[o * I + j];
      y[m * H + o] = x[m * H + o] + s;
    }
  }
  return y;
}

describe.each(['cpu', 'wasm'] as const)('fused MLP half on %s', (backend) => {
  beforeAll(async () => {
    await tf.setBackend(backend);
  });

  it.skipIf(!has)('value and dx1 = the reference (autograd) = float64 forward and central differences; no leaks', () => {
    // H = 20: rows longer than one 16-lane block, with a tail.
    const d: Dims = { lead: [2, 3], H: 20, I: 7 };
    const v = data(d, 4);
    const before = tf.memory().numTensors;
    const fused = valueAndGrad(mlpHalfFused, d, v);
    expect(tf.memory().numTensors).toBe(before);
    const ref = valueAndGrad(mlpHalfReference, d, v);
    expect(maxDiff(fused[0], ref[0])).toBeLessThan(1e-5);
    expect(maxDiff(fused[1], ref[1])).toBeLessThan(1e-5);
    const x64 = Float64Array.from(v.x);
    expect(maxDiff(fused[0], forward64(d, x64, v))).toBeLessThan(1e-5);
    const L = () => forward64(d, x64, v).reduce((s, y, i) => s + y * v.probe[i], 0);
    const h = 1e-4;
    const fd = Float64Array.from(x64, (x0, i) => {
      x64[i] = x0 + h; const p = L();
      x64[i] = x0 - h; const m = L();
      x64[i] = x0;
      return (p - m) / (2 * h);
    });
    const e = maxDiff(fused[1], fd);
    expect(e, `dx1 vs central differences: ${e}`).toBeLessThan(1e-4);
  });

  it.skipIf(!has)('no tensor is left behind without a tape either, and a trainable weight is refused', () => {
    const d: Dims = { lead: [3], H: 8, I: 5 };
    const v = data(d, 5);
    const x = tf.tensor2d(v.x, [3, 8]);
    const w: MlpWeights = { norm: tf.tensor1d(v.norm), gate: tf.tensor2d(v.gate, [5, 8]), up: tf.tensor2d(v.up, [5, 8]), down: tf.tensor2d(v.down, [8, 5]) };
    const before = tf.memory().numTensors;
    mlpHalfFused(x, w, EPS).dispose();
    expect(tf.memory().numTensors).toBe(before);
    const trainable = tf.variable(w.gate.clone());
    expect(() => mlpHalfFused(x, { ...w, gate: trainable }, EPS)).toThrow(/trainable variable/);
    tf.dispose([x, w.norm, w.gate, w.up, w.down, trainable]);
  });

  // Products of gemm.h cut into blocks ([384, 256] x [256, 768] and back) and elementwise work over several tasks.
  it.skipIf(!has)('with 1 and with 2 threads: the same bits, and = the reference to float32 rounding', () => {
    const d: Dims = { lead: [4, 96], H: 256, I: 768 };
    const v = data(d, 2);
    for (const a of [v.gate, v.up, v.down]) for (let i = 0; i < a.length; i++) a[i] *= 0.1;
    const runs = [1, 2].map((n) => {
      setKernelThreads(n);
      return valueAndGrad(mlpHalfFused, d, v);
    });
    setKernelThreads(1);
    const ref = valueAndGrad(mlpHalfReference, d, v);
    runs[0].forEach((a, i) => {
      expect(sameBits(a, runs[1][i]), `output ${i}`).toBe(true);
      const scale = ref[i].reduce((m, x) => Math.max(m, Math.abs(x)), 0);
      expect(maxDiff(a, ref[i]) / scale, `output ${i}`).toBeLessThan(2e-6);
    });
  });

  it.skipIf(!has)('forwardHidden takes it for layers whose MLP has no adapter: same hidden states and adapter gradients; DPO_KERNELS=reference switches it off', async () => {
    const { cfg, w } = loadModel(readFixture<ModelFixture>('base.json'));
    const { ids, mask } = batchOf(readFixture<ModelFixture>('base.json'));
    const kernelsOf = async (f: () => tf.Tensor) => (await tf.profile(() => { f().dispose(); })).kernels.map((k) => k.name);
    const attnOnly = createLora(cfg, { r: 2, alpha: 4, dropout: 0, targets: ['q_proj', 'v_proj'], useRslora: false }, 3);
    const withMlp = createLora(cfg, { r: 2, alpha: 4, dropout: 0, targets: ['q_proj', 'up_proj'], useRslora: false }, 3);
    // B = 0 at init; give the adapters values so their gradients depend on the MLP's backward.
    for (const l of [attnOnly, withMlp]) for (const ad of l.layers.values()) ad.B.assign(tf.fill(ad.B.shape, 0.05));
    // The hidden states, then the loss and adapter gradients without and with gradient checkpointing.
    const run = (lora: typeof attnOnly) => tf.tidy(() => {
      const vars = Object.values(loraTensors(lora));
      const out: Float32Array[] = [forwardHidden(cfg, w, ids, mask, { lora }).dataSync() as Float32Array];
      for (const gradientCheckpointing of [false, true]) {
        const f = () => tf.sum(tf.square(forwardHidden(cfg, w, ids, mask, { lora, training: true, gradientCheckpointing }))) as tf.Scalar;
        const { value, grads } = tf.variableGrads(f, vars);
        out.push(value.dataSync() as Float32Array, ...vars.map((v) => grads[v.name].dataSync() as Float32Array));
      }
      return out;
    });
    try {
      expect(fusedActive('DpoMlpHalf')).toBe(true);
      const names = await kernelsOf(() => forwardHidden(cfg, w, ids, mask, { lora: attnOnly }));
      expect(names.filter((n) => n === 'DpoMlpHalf').length).toBe(cfg.numLayers);
      expect(names.filter((n) => n === 'DpoAttnHalf').length).toBe(cfg.numLayers);
      expect(await kernelsOf(() => forwardHidden(cfg, w, ids, mask, { lora: withMlp }))).not.toContain('DpoMlpHalf');
      const before = tf.memory().numTensors;
      const fused = run(attnOnly);
      expect(tf.memory().numTensors).toBe(before);
      useFusedKernels(backend, true);
      // The op-by-op path with every other fused kernel.
      for (const k of ['DpoMlpHalf', 'DpoAttnHalf']) tf.unregisterKernel(k, backend);
      const plain = run(attnOnly);
      fused.forEach((a, i) => {
        const scale = plain[i].reduce((m, x) => Math.max(m, Math.abs(x)), 0);
        expect(maxDiff(a, plain[i]) / scale, `output ${i}`).toBeLessThan(1e-5);
      });
      registerFastKernels(backend, 'reference');
      expect(fusedActive('DpoMlpHalf')).toBe(false);
      expect(await kernelsOf(() => forwardHidden(cfg, w, ids, mask, { lora: attnOnly }))).not.toContain('DpoMlpHalf');
      expect(await kernelsOf(() => forwardHidden(cfg, w, ids, mask, { lora: attnOnly }))).not.toContain('DpoAttnHalf');
      const reference = run(attnOnly);
      fused.forEach((a, i) => {
        const scale = reference[i].reduce((m, x) => Math.max(m, Math.abs(x)), 0);
        expect(maxDiff(a, reference[i]) / scale, `output ${i} vs DPO_KERNELS=reference`).toBeLessThan(1e-5);
      });
    } finally {
      registerFastKernels(backend, 'auto');
      useFusedKernels(backend, true);
      disposeLora(attnOnly);
      disposeLora(withMlp);
      disposeWeights(w);
      tf.dispose([ids, mask]);
    }
  });
});

// ---- the attention half ----

type ADims = { B: number; T: number; H: number; N: number; K: number; D: number; r: number };
const PROJ = ['q', 'k', 'v', 'o'] as const;
type AData = { x: Float32Array; norm: Float32Array; W: Record<string, Float32Array>; A: Record<string, Float32Array>; Bm: Record<string, Float32Array>;
  cos: Float32Array; sin: Float32Array; mask: Float32Array; probe: Float32Array };

const outIn = (d: ADims, p: string): [number, number] => (p === 'q' ? [d.N * d.D, d.H] : p === 'o' ? [d.H, d.N * d.D] : [d.K * d.D, d.H]);

function adata(d: ADims, seed: number, pad: boolean): AData {
  const rng = new Rng(seed);
  const M = d.B * d.T;
  const W: Record<string, Float32Array> = {}, A: Record<string, Float32Array> = {}, Bm: Record<string, Float32Array> = {};
  for (const p of PROJ) {
    const [o, i] = outIn(d, p);
    W[p] = normal(rng, o * i, 0.4); A[p] = normal(rng, d.r * i, 0.4); Bm[p] = normal(rng, o * d.r, 0.4);
  }
  const cos = new Float32Array(M * d.D), sin = new Float32Array(M * d.D);
  for (let b = 0; b < d.B; b++) for (let t = 0; t < d.T; t++) for (let i = 0; i < d.D; i++) {
    const ang = (t + b) / 10000 ** ((2 * (i % (d.D / 2))) / d.D);
    cos[(b * d.T + t) * d.D + i] = Math.cos(ang); sin[(b * d.T + t) * d.D + i] = Math.sin(ang);
  }
  // Right padding in the last row: its last key is masked (every query still sees a token).
  const mask = Float32Array.from({ length: M }, (_, i) => (pad && i === M - 1 ? 0 : 1));
  return { x: normal(rng, M * d.H), norm: Float32Array.from(normal(rng, d.H, 0.3), (v) => 1 + v), W, A, Bm, cos, sin, mask, probe: normal(rng, M * d.H) };
}

/** The attention half in float64 (rotate-half RoPE, GQA as repeat_kv, causal + key-mask softmax); `adapted` lists the adapters. */
function attn64(d: ADims, v: AData, x: Float64Array, A: Record<string, Float64Array>, Bm: Record<string, Float64Array>, adapted: readonly string[], scale: number): Float64Array {
  const { B, T, H, N, K, D } = d;
  const M = B * T;
  const proj = (p: string, inp: Float64Array): Float64Array => {
    const [o, i] = outIn(d, p);
    const y = new Float64Array(M * o);
    for (let m = 0; m < M; m++) {
      const down = adapted.includes(p) ? Array.from({ length: d.r }, (_, k) => { let s = 0; for (let j = 0; j < i; j++) s += inp[m * i + j] * A[p][k * i + j]; return s * scale; }) : [];
      for (let u = 0; u < o; u++) {
        let s = 0;
        for (let j = 0; j < i; j++) s += inp[m * i + j] * v.W[p][u * i + j];
        for (let k = 0; k < down.length; k++) s += down[k] * Bm[p][u * d.r + k];
        y[m * o + u] = s;
      }
    }
    return y;
  };
  const h = new Float64Array(M * H);
  for (let m = 0; m < M; m++) {
    let ss = 0;
    for (let i = 0; i < H; i++) ss += x[m * H + i] ** 2;
    const r = 1 / Math.sqrt(ss / H + EPS);
    for (let i = 0; i < H; i++) h[m * H + i] = x[m * H + i] * r * v.norm[i];
  }
  const q = proj('q', h), k = proj('k', h), vv = proj('v', h);
  const rope = (a: Float64Array, heads: number) => {
    const out = new Float64Array(a.length), h2 = D / 2;
    for (let m = 0; m < M; m++) for (let n = 0; n < heads; n++) for (let i = 0; i < h2; i++) {
      const base = (m * heads + n) * D, c = m * D;
      out[base + i] = a[base + i] * v.cos[c + i] - a[base + i + h2] * v.sin[c + i];
      out[base + i + h2] = a[base + i + h2] * v.cos[c + i + h2] + a[base + i] * v.sin[c + i + h2];
    }
    return out;
  };
  const qr = rope(q, N), kr = rope(k, K);
  const att = new Float64Array(M * N * D);
  for (let b = 0; b < B; b++) for (let n = 0; n < N; n++) {
    const kh = Math.floor(n / (N / K));
    for (let t = 0; t < T; t++) {
      const sc = Array.from({ length: T }, (_, j) => {
        let s = 0;
        for (let i = 0; i < D; i++) s += qr[((b * T + t) * N + n) * D + i] * kr[((b * T + j) * K + kh) * D + i];
        return s / Math.sqrt(D) + (j <= t && v.mask[b * T + j] === 1 ? 0 : -1e9);
      });
      const mx = Math.max(...sc);
      const e = sc.map((s) => Math.exp(s - mx));
      const z = e.reduce((a2, b2) => a2 + b2, 0);
      for (let i = 0; i < D; i++) {
        let s = 0;
        for (let j = 0; j < T; j++) s += (e[j] / z) * vv[((b * T + j) * K + kh) * D + i];
        att[((b * T + t) * N + n) * D + i] = s;
      }
    }
  }
  const o = proj('o', att);
  return Float64Array.from(o, (y, i) => y + x[i]);
}

type AF = (x: tf.Tensor3D, w: AttnWeights, ad: AttnAdapters, c: AttnContext) => tf.Tensor3D;

/** y, dx and the dA, dB of each adapted projection (in `adapted` order) of sum(y * probe). */
function attnValueAndGrads(f: AF, d: ADims, v: AData, adapted: readonly (typeof PROJ)[number][], scale: number): Float32Array[] {
  return tf.tidy(() => {
    const x = tf.tensor3d(v.x, [d.B, d.T, d.H]);
    const w = { norm: tf.tensor1d(v.norm) } as AttnWeights;
    for (const p of PROJ) w[p] = tf.tensor2d(v.W[p], outIn(d, p));
    const c: AttnContext = {
      cos: tf.tensor3d(v.cos, [d.B, d.T, d.D]), sin: tf.tensor3d(v.sin, [d.B, d.T, d.D]), keyMask: tf.tensor2d(v.mask, [d.B, d.T]),
      heads: { numHeads: d.N, numKvHeads: d.K, headDim: d.D }, eps: EPS, loraScale: scale,
    };
    const probe = tf.tensor3d(v.probe, [d.B, d.T, d.H]);
    const ab = adapted.flatMap((p) => { const [o, i] = outIn(d, p); return [tf.tensor2d(v.A[p], [d.r, i]), tf.tensor2d(v.Bm[p], [o, d.r])]; });
    const call = (xi: tf.Tensor, ...t: tf.Tensor[]) => {
      const ad: AttnAdapters = {};
      adapted.forEach((p, j) => { ad[p] = { A: t[2 * j], B: t[2 * j + 1] }; });
      return f(xi as tf.Tensor3D, w, ad, c);
    };
    const y = call(x, ...ab);
    const g = tf.grads((...t: tf.Tensor[]) => tf.sum(tf.mul(call(t[0], ...t.slice(1)), probe)))([x, ...ab]);
    return [y, ...g].map((t) => t.dataSync() as Float32Array);
  });
}

describe.each(['cpu', 'wasm'] as const)('fused attention half on %s', (backend) => {
  beforeAll(async () => {
    await tf.setBackend(backend);
  });

  it.skipIf(!has)('value, dx and each adapter\'s dA, dB = the reference (autograd) = float64 forward and central differences; no leaks', () => {
    const d: ADims = { B: 2, T: 3, H: 8, N: 4, K: 2, D: 4, r: 2 };
    const v = adata(d, 7, true);
    const adapted = ['q', 'v', 'o'] as const; // k without an adapter: the plain projection
    const scale = 1.5;
    const before = tf.memory().numTensors;
    const fused = attnValueAndGrads(attnHalfFused, d, v, adapted, scale);
    expect(tf.memory().numTensors).toBe(before);
    const ref = attnValueAndGrads(attnHalfReference, d, v, adapted, scale);
    fused.forEach((a, i) => expect(maxDiff(a, ref[i]), `output ${i}`).toBeLessThan(1e-5));
    const x64 = Float64Array.from(v.x);
    const A64: Record<string, Float64Array> = {}, B64: Record<string, Float64Array> = {};
    for (const p of PROJ) { A64[p] = Float64Array.from(v.A[p]); B64[p] = Float64Array.from(v.Bm[p]); }
    const L = () => attn64(d, v, x64, A64, B64, adapted, scale).reduce((s, y, i) => s + y * v.probe[i], 0);
    expect(maxDiff(fused[0], attn64(d, v, x64, A64, B64, adapted, scale))).toBeLessThan(1e-5);
    const params = [x64, ...adapted.flatMap((p) => [A64[p], B64[p]])];
    params.forEach((a, k) => {
      const fd = Float64Array.from(a, (a0, i) => {
        a[i] = a0 + 1e-5; const p = L();
        a[i] = a0 - 1e-5; const m = L();
        a[i] = a0;
        return (p - m) / 2e-5;
      });
      const e = maxDiff(fused[1 + k], fd);
      expect(e, `gradient ${k} vs central differences: ${e}`).toBeLessThan(1e-4);
    });
  });

  it.skipIf(!has)('without any adapter, and with 1 and with 2 threads: the same bits, and = the reference to float32 rounding', () => {
    const d: ADims = { B: 4, T: 96, H: 256, N: 4, K: 2, D: 64, r: 8 };
    const v = adata(d, 3, true);
    for (const p of PROJ) for (const a of [v.W[p], v.A[p], v.Bm[p]]) for (let i = 0; i < a.length; i++) a[i] *= 0.1;
    const none = attnValueAndGrads(attnHalfFused, d, v, [], 2);
    const noneRef = attnValueAndGrads(attnHalfReference, d, v, [], 2);
    none.forEach((a, i) => {
      const scale = noneRef[i].reduce((m, x) => Math.max(m, Math.abs(x)), 0);
      expect(maxDiff(a, noneRef[i]) / scale, `no adapter, output ${i}`).toBeLessThan(2e-6);
    });
    const runs = [1, 2].map((n) => {
      setKernelThreads(n);
      return attnValueAndGrads(attnHalfFused, d, v, PROJ, 2);
    });
    setKernelThreads(1);
    const ref = attnValueAndGrads(attnHalfReference, d, v, PROJ, 2);
    runs[0].forEach((a, i) => {
      expect(sameBits(a, runs[1][i]), `output ${i}`).toBe(true);
      const scale = ref[i].reduce((m, x) => Math.max(m, Math.abs(x)), 0);
      expect(maxDiff(a, ref[i]) / scale, `output ${i}`).toBeLessThan(1e-5);
    });
  });
});

// The attention half calls attention.cc's core through the exports of the env that loaded the addon: after a Node
// worker loads it too, both threads still reach their own (one shared reference failed the main thread's calls).
const ADDON = fileURLToPath(new URL('../../native/build/blas.node', import.meta.url));
const ATTN_CALL = `(m) => {
  const B = 1, T = 2, N = 2, K = 1, D = 2, H = 4, M = B * T, Nd = N * D, Kd = K * D;
  const f = (n) => Float32Array.from({ length: n }, (_, i) => 0.1 * ((i % 5) - 2));
  const z = () => new Float32Array(0);
  const y = new Float32Array(M * H);
  const stash = new Float32Array(M * H + M + 2 * M * Nd + 2 * M * Kd + 2 * M * D + M);
  m.attnForward(f(M * H).map((v) => 10 * v), new Float32Array(H).fill(1), f(Nd * H), f(Kd * H), f(Kd * H), f(H * Nd), z(), z(), z(), z(), z(), z(), z(), z(),
    new Float32Array(M * D).fill(1), new Float32Array(M * D), new Float32Array(M).fill(1), y, stash, B, T, N, K, D, H, 0, 0, 0, 0, 1, 1e-5);
  return Array.from(y);
}`;

describe('the attention half with the addon loaded in a worker too', () => {
  it.skipIf(!has || !existsSync(ADDON))('the main thread and the worker both run it, with the same values', async () => {
    const call = (0, eval)(ATTN_CALL) as (m: unknown) => number[];
    const addon = (await import('node:module')).createRequire(import.meta.url)(ADDON);
    const before = call(addon);
    const inWorker = await new Promise<number[]>((resolve, reject) => {
      const w = new Worker(`const { parentPort } = require('node:worker_threads'); parentPort.postMessage((${ATTN_CALL})(require(${JSON.stringify(ADDON)})));`, { eval: true });
      w.once('message', (v: number[]) => { void w.terminate(); resolve(v); });
      w.once('error', reject);
    });
    expect(inWorker).toEqual(before);
    expect(call(addon)).toEqual(before);
    expect(before.some((v) => v !== 0)).toBe(true);
  });
});

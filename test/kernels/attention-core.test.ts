// The fused attention core (kernels/attention-core.ts, native/blas/attention.cc) on the cpu and wasm backends: values
// and the gradients for q, k and v against the plain-ops reference (autograd) and a float64 forward with central
// differences, with grouped-query heads (G = 1, 2, 3), left and right padding and a fully padded row (finite, uniform
// over the keys); 1 and 2 threads give the same bits; DPO_KERNELS=reference switches it off; bad shapes name the
// operands; no tensor leaks. In the model: the forward and LoRA gradients with the core equal the op chain, with and
// without gradient checkpointing, and the core runs once per layer; a KV-cache step (the op chain) continues a fused
// forward. Skips when the addon is not built.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  attentionCore, attentionCoreActive, attentionCoreFused, attentionCoreReference, hasAttentionCore, type AttentionHeads,
} from '../../kernels/attention-core.js';
import { asFusedAddon } from '../../kernels/native.js';
import { loadBlasAddon } from '../../kernels/matmul-blas.js';
import { registerFastKernels, setKernelThreads, useFusedKernels } from '../../src/backend/kernels.js';
import type { LlamaConfig } from '../../src/config/llama.js';
import { expectedWeightShapes, forwardHidden } from '../../src/model/llama.js';
import { createKVCache } from '../../src/model/kvcache.js';
import { ATTN_TARGETS, createLora, disposeLora, loraTensors } from '../../src/model/lora.js';
import { Rng } from '../../src/util/rng.js';
import { maxDiff, normal, sameBits, withFusedKernelsOnWasm } from './fused-suite.js';

const BACKENDS = ['cpu', 'wasm'] as const;
const has = hasAttentionCore(asFusedAddon(loadBlasAddon().addon));

withFusedKernelsOnWasm();


interface Case {
  B: number; T: number; heads: AttentionHeads;
  /** [B, T], 1 = token. */
  mask: number[][];
}

interface Data { q: Float32Array; k: Float32Array; v: Float32Array; cos: Float32Array; sin: Float32Array; mask: Float32Array; up: Float32Array }

/** Whether query t of row b sees a key (some j <= t is a token); a query that sees none is a pad whose output is unused. */
const sees = (c: Case, b: number, t: number) => c.mask[b].slice(0, t + 1).some((m) => m === 1);

/**
 * Random q, k, v and an upstream gradient (0 on the rows of queries that see no key unless `everyRow`); cos/sin of the
 * positions HF derives from the mask (cumsum - 1, 1 at pads).
 */
function data(c: Case, seed: number, everyRow = false): Data {
  const { B, T } = c;
  const { numHeads: N, numKvHeads: K, headDim: D } = c.heads;
  const rng = new Rng(seed);
  const cos = new Float32Array(B * T * D);
  const sin = new Float32Array(B * T * D);
  for (let b = 0; b < B; b++) {
    let seen = 0;
    for (let t = 0; t < T; t++) {
      seen += c.mask[b][t];
      const pos = c.mask[b][t] ? seen - 1 : 1;
      for (let i = 0; i < D / 2; i++) {
        const a = Math.fround(pos * 10000 ** (-i / (D / 2)));
        cos[(b * T + t) * D + i] = cos[(b * T + t) * D + i + D / 2] = Math.cos(a);
        sin[(b * T + t) * D + i] = sin[(b * T + t) * D + i + D / 2] = Math.sin(a);
      }
    }
  }
  return {
    q: normal(rng, B * T * N * D), k: normal(rng, B * T * K * D), v: normal(rng, B * T * K * D), cos, sin,
    mask: Float32Array.from(c.mask.flat()),
    up: normal(rng, B * T * N * D).map((u, i) => (everyRow || sees(c, Math.floor(i / (T * N * D)), Math.floor(i / (N * D)) % T) ? u : 0)),
  };
}

/**
 * The core in float64: out [B, T, N*D] for flat q, k, v (HF eager attention, repeat_kv, additive bias of -1e9). A query
 * that sees no key differs from float32 (where -1e9 absorbs the scores and the row is uniform): tests skip those rows.
 */
function core64(c: Case, q: Float64Array, k: Float64Array, v: Float64Array, d: Data): Float64Array {
  const { B, T } = c;
  const { numHeads: N, numKvHeads: K, headDim: D } = c.heads;
  const G = N / K;
  const h = D / 2;
  const rope = (x: Float64Array, base: number, bt: number) => Float64Array.from({ length: D }, (_, i) =>
    x[base + i] * d.cos[bt * D + i] + (i < h ? -x[base + i + h] : x[base + i - h]) * d.sin[bt * D + i]);
  const out = new Float64Array(B * T * N * D);
  for (let b = 0; b < B; b++) for (let n = 0; n < N; n++) {
    const kh = Math.floor(n / G);
    const kr = Array.from({ length: T }, (_, j) => rope(k, (b * T + j) * K * D + kh * D, b * T + j));
    for (let t = 0; t < T; t++) {
      const qr = rope(q, (b * T + t) * N * D + n * D, b * T + t);
      const z = kr.map((kj, j) => {
        let s = 0;
        for (let i = 0; i < D; i++) s += qr[i] * kj[i];
        return s / Math.sqrt(D) + (j <= t && d.mask[b * T + j] ? 0 : -1e9);
      });
      const m = Math.max(...z);
      const e = z.map((x) => Math.exp(x - m));
      const sum = e.reduce((a, x) => a + x, 0);
      for (let i = 0; i < D; i++) {
        let acc = 0;
        for (let j = 0; j < T; j++) acc += (e[j] / sum) * v[(b * T + j) * K * D + kh * D + i];
        out[(b * T + t) * N * D + n * D + i] = acc;
      }
    }
  }
  return out;
}

type CoreFn = typeof attentionCoreReference;

/** The output and the gradients of sum(out * up) for q, k, v. */
function valueAndGrads(f: CoreFn, c: Case, d: Data): { y: Float32Array; g: Float32Array[] } {
  return tf.tidy(() => {
    const { B, T, heads } = c;
    const D = heads.headDim;
    const q = tf.tensor3d(d.q, [B, T, heads.numHeads * D]);
    const k = tf.tensor3d(d.k, [B, T, heads.numKvHeads * D]);
    const v = tf.tensor3d(d.v, [B, T, heads.numKvHeads * D]);
    const cos = tf.tensor3d(d.cos, [B, T, D]);
    const sin = tf.tensor3d(d.sin, [B, T, D]);
    const mask = tf.tensor2d(d.mask, [B, T]);
    const up = tf.tensor3d(d.up, q.shape);
    const y = f(q, k, v, cos, sin, mask, heads);
    const g = tf.grads((a: tf.Tensor, b: tf.Tensor, e: tf.Tensor) =>
      tf.sum(tf.mul(f(a as tf.Tensor3D, b as tf.Tensor3D, e as tf.Tensor3D, cos, sin, mask, heads), up)))([q, k, v]);
    return { y: y.dataSync() as Float32Array, g: g.map((t) => t.dataSync() as Float32Array) };
  });
}

// Row 0 right-padded, row 1 left-padded (its first query sees only masked keys), row 2 all tokens.
const CASES: Case[] = [
  { B: 3, T: 5, heads: { numHeads: 4, numKvHeads: 2, headDim: 8 }, mask: [[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1]] },
  { B: 2, T: 4, heads: { numHeads: 3, numKvHeads: 1, headDim: 4 }, mask: [[0, 1, 1, 1], [1, 1, 1, 0]] },
  { B: 1, T: 6, heads: { numHeads: 2, numKvHeads: 2, headDim: 6 }, mask: [[1, 1, 1, 1, 1, 1]] },
];
const name = (c: Case) => `B ${c.B} T ${c.T}, ${c.heads.numHeads}/${c.heads.numKvHeads} heads of ${c.heads.headDim}`;

describe.each(BACKENDS)('fused attention core on %s', (backend) => {
  beforeAll(async () => {
    await tf.setBackend(backend);
  });

  for (const c of CASES) {
    it.skipIf(!has)(`${name(c)}: fused = reference = float64; dq, dk, dv = autograd of the reference = central differences`, () => {
      const d = data(c, 7);
      const before = tf.memory().numTensors;
      const fused = valueAndGrads(attentionCoreFused, c, d);
      const ref = valueAndGrads(attentionCoreReference, c, d);
      expect(tf.memory().numTensors).toBe(before);
      const y64 = core64(c, Float64Array.from(d.q), Float64Array.from(d.k), Float64Array.from(d.v), d);
      const yErr = maxDiff(fused.y, ref.y);
      expect(yErr, `value vs reference: max diff ${yErr}`).toBeLessThan(2e-6);
      const width = c.heads.numHeads * c.heads.headDim;
      const seen = (y: ArrayLike<number>) => Array.from(y).filter((_, i) => sees(c, Math.floor(i / (c.T * width)), Math.floor(i / width) % c.T));
      expect(maxDiff(seen(fused.y), seen(y64)), 'value vs float64').toBeLessThan(2e-6);
      const xs = [d.q, d.k, d.v].map((x) => Float64Array.from(x));
      xs.forEach((x, gi) => {
        const gErr = maxDiff(fused.g[gi], ref.g[gi]);
        expect(gErr, `gradient ${'qkv'[gi]} vs reference: max diff ${gErr}`).toBeLessThan(2e-5);
        const loss = () => core64(c, xs[0], xs[1], xs[2], d).reduce((a, y, j) => a + y * d.up[j], 0);
        const fd = Float64Array.from(x, (x0, i) => {
          x[i] = x0 + 1e-4;
          const p = loss();
          x[i] = x0 - 1e-4;
          const m = loss();
          x[i] = x0;
          return (p - m) / 2e-4;
        });
        const fdErr = maxDiff(fused.g[gi], fd);
        expect(fdErr, `gradient ${'qkv'[gi]} vs central differences: max diff ${fdErr}`).toBeLessThan(1e-4);
      });
    });
  }

  it.skipIf(!has)('a fully padded row is finite: each query averages v over all keys, as the reference', () => {
    const c: Case = { B: 2, T: 4, heads: { numHeads: 2, numKvHeads: 1, headDim: 4 }, mask: [[0, 0, 0, 0], [1, 1, 0, 0]] };
    const d = data(c, 3, true);
    const fused = valueAndGrads(attentionCoreFused, c, d);
    const ref = valueAndGrads(attentionCoreReference, c, d);
    expect([fused.y, ...fused.g].every((a) => a.every(Number.isFinite))).toBe(true);
    expect(maxDiff(fused.y, ref.y)).toBeLessThan(2e-6);
    fused.g.forEach((g, i) => expect(maxDiff(g, ref.g[i])).toBeLessThan(2e-5));
    const D = 4;
    for (let t = 0; t < 4; t++) for (let n = 0; n < 2; n++) for (let i = 0; i < D; i++) {
      const mean = [0, 1, 2, 3].reduce((a, j) => a + d.v[j * D + i], 0) / 4;
      expect(Math.abs(fused.y[t * 2 * D + n * D + i] - mean)).toBeLessThan(1e-6);
    }
  });

  it.skipIf(!has)('1 and 2 threads give bit-identical values and gradients', () => {
    const T = 48;
    const c: Case = { B: 3, T, heads: { numHeads: 8, numKvHeads: 2, headDim: 16 },
      mask: [Array(T).fill(1), [...Array(9).fill(0), ...Array(T - 9).fill(1)], [...Array(T - 5).fill(1), ...Array(5).fill(0)]] };
    const d = data(c, 5);
    setKernelThreads(1);
    const one = valueAndGrads(attentionCoreFused, c, d);
    setKernelThreads(2);
    const two = valueAndGrads(attentionCoreFused, c, d);
    setKernelThreads(1);
    expect(sameBits(one.y, two.y)).toBe(true);
    one.g.forEach((g, i) => expect(sameBits(g, two.g[i]), `gradient ${'qkv'[i]}`).toBe(true));
  });

  it.skipIf(!has)('DPO_KERNELS=reference switches to the reference; auto switches back', () => {
    const c = CASES[0];
    const d = data(c, 9);
    registerFastKernels(backend, 'reference');
    try {
      expect(attentionCoreActive()).toBe(false);
      const [a, b] = [attentionCore, attentionCoreReference].map((f) => valueAndGrads(f, c, d));
      expect(maxDiff(a.y, b.y)).toBe(0);
    } finally {
      registerFastKernels(backend, 'auto');
    }
    expect(attentionCoreActive()).toBe(true);
  });

  it.skipIf(!has)('operands that do not fit name their shapes', () => {
    tf.tidy(() => {
      const heads = { numHeads: 4, numKvHeads: 2, headDim: 8 };
      const t = (...s: number[]) => tf.zeros(s);
      expect(() => attentionCoreFused(t(1, 3, 32) as tf.Tensor3D, t(1, 3, 8) as tf.Tensor3D, t(1, 3, 16) as tf.Tensor3D, t(1, 3, 8) as tf.Tensor3D,
        t(1, 3, 8) as tf.Tensor3D, t(1, 3) as tf.Tensor2D, heads)).toThrow(/DpoAttentionCore: q \[1,3,32\] k \[1,3,8\] v \[1,3,16\]/);
    });
  });
});

describe.each(BACKENDS)('the attention core in the model on %s', (backend) => {
  const cfg: LlamaConfig = {
    vocabSize: 40, hiddenSize: 24, intermediateSize: 40, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 6,
    rmsNormEps: 1e-5, ropeTheta: 10000, ropeScaling: null, maxPositionEmbeddings: 64, tieWordEmbeddings: false,
    attentionBias: false, mlpBias: false, bosTokenId: 0, eosTokenIds: [1], torchDtype: 'float32',
  };

  it.skipIf(!has).each([false, true])('hidden states and LoRA gradients equal the op chain (checkpointing %s); one core call per layer', async (ckpt) => {
    await tf.setBackend(backend);
    const w: Record<string, tf.Tensor> = {};
    let seed = 1;
    for (const [key, shape] of Object.entries(expectedWeightShapes(cfg))) {
      w[key] = key.endsWith('norm.weight') ? tf.ones(shape) : tf.randomNormal(shape, 0, 0.3, 'float32', seed++);
    }
    const lora = createLora(cfg, { r: 2, alpha: 4, dropout: 0, targets: [...ATTN_TARGETS], useRslora: false }, 0);
    const vars = Object.values(loraTensors(lora)) as tf.Variable[];
    for (const v of vars) v.assign(tf.randomNormal(v.shape, 0, 0.3, 'float32', seed++));
    const ids = tf.tensor2d([[5, 6, 7, 8, 9, 0], [0, 0, 3, 4, 5, 6]], undefined, 'int32');
    const mask = tf.tensor2d([[1, 1, 1, 1, 1, 0], [0, 0, 1, 1, 1, 1]], undefined, 'int32'); // cast inside (cpu keeps an Int32Array)
    const up = tf.randomNormal([2, 6, cfg.hiddenSize], 0, 1, 'float32', 99);
    const run = () => tf.tidy(() => {
      const f = () => tf.sum(tf.mul(forwardHidden(cfg, w, ids, mask, { lora, gradientCheckpointing: ckpt }), up)) as tf.Scalar;
      const { value, grads } = tf.variableGrads(f, vars);
      return [value, ...vars.map((v) => grads[v.name])].map((t) => t.dataSync() as Float32Array);
    });
    // The core as its own kernel: the fused attention half (kernels/decoder-layer.ts) would call it inside its own.
    tf.unregisterKernel('DpoAttnHalf', backend);
    const before = tf.memory().numTensors;
    const profile = await tf.profile(() => { run(); });
    expect(profile.kernels.filter((k) => k.name === 'DpoAttentionCore').length).toBe(cfg.numLayers * (ckpt ? 2 : 1));
    expect(profile.kernels.filter((k) => k.name === 'DpoAttentionCoreGrad').length).toBe(cfg.numLayers);
    const fused = run();
    tf.unregisterKernel('DpoAttentionCore', backend);
    let chain: Float32Array[];
    try {
      expect(attentionCoreActive()).toBe(false);
      chain = run();
    } finally {
      useFusedKernels(backend, true);
    }
    expect(tf.memory().numTensors).toBe(before);
    fused.forEach((a, i) => {
      const scale = Math.max(1, ...Array.from(chain[i], Math.abs));
      expect(maxDiff(a, chain[i]) / scale, `output ${i}`).toBeLessThan(1e-5);
    });
    tf.dispose([ids, mask, up, ...Object.values(w)]);
    disposeLora(lora);
  });

  it.skipIf(!has)('a KV-cache step (the op chain) continues the fused forward: prefill + one token = the whole forward', async () => {
    await tf.setBackend(backend);
    const w: Record<string, tf.Tensor> = {};
    let seed = 11;
    for (const [key, shape] of Object.entries(expectedWeightShapes(cfg))) {
      w[key] = key.endsWith('norm.weight') ? tf.ones(shape) : tf.randomNormal(shape, 0, 0.3, 'float32', seed++);
    }
    const rows = [[0, 0, 3, 4, 5, 6], [5, 6, 7, 8, 9, 10]];
    const masks = [[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]];
    const cache = createKVCache(cfg, 2, 8);
    const [whole, last] = tf.tidy(() => {
      const full = forwardHidden(cfg, w, tf.tensor2d(rows, undefined, 'int32'), tf.tensor2d(masks, undefined, 'int32'));
      forwardHidden(cfg, w, tf.tensor2d(rows.map((r) => r.slice(0, 5)), undefined, 'int32'), tf.tensor2d(masks.map((m) => m.slice(0, 5)), undefined, 'int32'), { cache });
      const step = forwardHidden(cfg, w, tf.tensor2d(rows.map((r) => r.slice(5)), undefined, 'int32'), tf.ones([2, 1], 'int32') as tf.Tensor2D, { cache });
      return [tf.slice(full, [0, 5, 0], [2, 1, cfg.hiddenSize]).dataSync(), step.dataSync()];
    });
    cache.dispose();
    expect(maxDiff(whole, last)).toBeLessThan(2e-5);
    tf.dispose(Object.values(w));
  });
});

// LoRA: init (PEFT Kaiming-uniform A, zero B, seeded), the float64 reference with non-zero B, off = base exactly,
// merge/unmerge, strict loading, dropout only in training, gradients only for A and B.
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LlamaConfig } from '../../src/config/llama.js';
import { forwardLogits } from '../../src/model/llama.js';
import type { Weights } from '../../src/model/llama.js';
import {
  ALL_LINEAR, ATTN_TARGETS, createLora, disposeLora, disposeMerged, loraFromTensors, loraLinear, loraScale, loraTensors,
  mergeLora,
} from '../../src/model/lora.js';
import type { Lora, LoraConfig } from '../../src/model/lora.js';
import { Rng } from '../../src/util/rng.js';
import { batchOf, completionLogp, disposeWeights, loadModel, maxAbsDiff, readFixture, unpack } from './fixture.js';
import type { LoraFixture, ModelFixture } from './fixture.js';

let cfg: LlamaConfig;
let w: Weights;
let base: ModelFixture;
let lfx: LoraFixture;
let lc: LoraConfig;
let fixtureLora: Lora;

beforeAll(async () => {
  await tf.setBackend('cpu');
  base = readFixture<ModelFixture>('base.json');
  lfx = readFixture<LoraFixture>('lora.json');
  ({ cfg, w } = loadModel(base));
  const l = lfx.lora;
  lc = { r: l.r, alpha: l.lora_alpha, dropout: l.lora_dropout, targets: l.target_modules, useRslora: l.use_rslora };
  fixtureLora = loraFromTensors(cfg, lc, Object.fromEntries(Object.entries(l.tensors).map(([k, p]) => [k, unpack(p)])));
});

afterAll(() => {
  disposeLora(fixtureLora);
  disposeWeights(w);
});

function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string): void {
  const d = maxAbsDiff(got, want);
  if (!(d < tol)) console.log(`${what}: max abs diff ${d} (tol ${tol})`);
  expect(d).toBeLessThan(tol);
}

const logits = (weights: Weights, lora: Lora | null) =>
  tf.tidy(() => {
    const { ids, mask } = batchOf(base);
    return forwardLogits(cfg, weights, ids, mask, { lora }).dataSync();
  });

describe('LoRA', () => {
  it('scale is alpha/r, or alpha/sqrt(r) with rslora', () => {
    expect(loraScale({ r: 16, alpha: 32, dropout: 0, targets: ATTN_TARGETS, useRslora: false })).toBe(2);
    expect(loraScale({ r: 16, alpha: 32, dropout: 0, targets: ATTN_TARGETS, useRslora: true })).toBe(8);
    expect(fixtureLora.scale).toBe(lfx.lora.scale);
  });

  it('matches the float64 reference with non-zero B on every linear', () => {
    const got = logits(w, fixtureLora);
    expectClose(got, lfx.expected_logits.flat(2), 1e-4, 'lora logits');
    const l3 = Array.from({ length: 3 }, (_, b) =>
      Array.from({ length: 10 }, (_, t) => Array.from(got.subarray((b * 10 + t) * 96, (b * 10 + t + 1) * 96))));
    expectClose(completionLogp(l3, lfx), lfx.expected_completion_logp, 1e-3, 'lora completion logp');
    expect(maxAbsDiff(got, base.expected_logits.flat(2))).toBeGreaterThan(0.1); // the adapter does something
  });

  it('off (null or disabled) gives the base model exactly', () => {
    const plain = logits(w, null);
    fixtureLora.enabled = false;
    const off = logits(w, fixtureLora);
    fixtureLora.enabled = true;
    expect(maxAbsDiff(off, plain)).toBe(0);
  });

  it('initializes A in U(-1/sqrt(in), 1/sqrt(in)) and B = 0, seeded, so a fresh adapter is the base exactly', () => {
    const a = createLora(cfg, { r: 4, alpha: 8, dropout: 0, targets: ['v_proj', 'q_proj', 'down_proj'], useRslora: false }, 7);
    const b = createLora(cfg, { r: 4, alpha: 8, dropout: 0, targets: ['q_proj', 'down_proj', 'v_proj'], useRslora: false }, 7);
    const c = createLora(cfg, { r: 4, alpha: 8, dropout: 0, targets: ['q_proj', 'down_proj', 'v_proj'], useRslora: false }, 8);
    try {
      expect([...a.layers.keys()]).toEqual([
        'model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.v_proj', 'model.layers.0.mlp.down_proj',
        'model.layers.1.self_attn.q_proj', 'model.layers.1.self_attn.v_proj', 'model.layers.1.mlp.down_proj',
      ]);
      const down = a.layers.get('model.layers.0.mlp.down_proj')!;
      expect(down.A.shape).toEqual([4, cfg.intermediateSize]);
      expect(down.B.shape).toEqual([cfg.hiddenSize, 4]);
      const av = down.A.dataSync();
      const bound = 1 / Math.sqrt(cfg.intermediateSize);
      expect(av.every((x) => Math.abs(x) <= bound)).toBe(true);
      expect(Math.max(...av.map(Math.abs))).toBeGreaterThan(0.8 * bound);
      expect(down.B.dataSync().every((x) => x === 0)).toBe(true);
      expect(down.A.trainable).toBe(true);
      // Same seed and target set in another order: same values; another seed: different.
      expect(maxAbsDiff(av, b.layers.get('model.layers.0.mlp.down_proj')!.A.dataSync())).toBe(0);
      expect(maxAbsDiff(av, c.layers.get('model.layers.0.mlp.down_proj')!.A.dataSync())).toBeGreaterThan(0);
      expect(maxAbsDiff(logits(w, a), logits(w, null))).toBe(0);
    } finally {
      [a, b, c].forEach(disposeLora);
    }
  });

  it('merged weights give the adapted logits and equal W + scale B A (float64); others are shared; nothing leaks', () => {
    const before = tf.memory().numTensors;
    const merged = mergeLora(w, fixtureLora);
    expect(merged['model.norm.weight']).toBe(w['model.norm.weight']);
    expect(merged['model.layers.0.self_attn.q_proj.weight']).not.toBe(w['model.layers.0.self_attn.q_proj.weight']);
    expectClose(logits(merged, null), logits(w, fixtureLora), 1e-4, 'merged vs adapter');
    for (const [path, { A, B }] of fixtureLora.layers) {
      const [out, r] = B.shape;
      const inp = A.shape[1];
      const [a, b, base] = [A.dataSync(), B.dataSync(), w[`${path}.weight`]!.dataSync()];
      const want = new Float64Array(out * inp);
      for (let o = 0; o < out; o++) for (let i = 0; i < inp; i++) {
        let s = 0;
        for (let k = 0; k < r; k++) s += b[o * r + k] * a[k * inp + i];
        want[o * inp + i] = base[o * inp + i] + fixtureLora.scale * s;
      }
      expectClose(merged[`${path}.weight`]!.dataSync(), want, 1e-6, `merged ${path}`);
    }
    for (const k of Object.keys(w)) if (!k.endsWith('_proj.weight')) expect(merged[k]).toBe(w[k]);
    disposeMerged(merged, w);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('loads strictly: missing, misshapen and unexpected tensors are named', () => {
    const all = loraTensors(fixtureLora);
    const small = { ...lc, targets: ['q_proj'] };
    const only = Object.fromEntries(Object.entries(all).filter(([k]) => k.includes('q_proj')));
    const ok = loraFromTensors(cfg, small, only);
    expect(ok.layers.size).toBe(2);
    disposeLora(ok);
    const before = tf.memory().numTensors;
    const missing = { ...only };
    delete missing['model.layers.1.self_attn.q_proj.lora_B'];
    expect(() => loraFromTensors(cfg, small, missing)).toThrow(/layers\.1\.self_attn\.q_proj\.lora_B: missing/);
    expect(() => loraFromTensors(cfg, small, { ...only, 'model.layers.0.self_attn.q_proj.lora_A': new Float32Array(3) })).toThrow(/3 values/);
    expect(() => loraFromTensors(cfg, small, all)).toThrow(/unexpected keys/);
    expect(() => loraFromTensors(cfg, { ...small, targets: ['lm_head'] }, only)).toThrow(/lora\.targets/);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('loraLinear computes x W^T + b + scale (x A^T) B^T', () => {
    const ad = { A: tf.variable(tf.tensor2d([[1, 0, 1]])), B: tf.variable(tf.tensor2d([[2], [-1]])) }; // r = 1, in 3, out 2
    const y = tf.tidy(() =>
      loraLinear(tf.tensor3d([[[1, 2, 3]]]), tf.tensor2d([[1, 1, 1], [0, 1, 0]]), tf.tensor1d([0.5, -0.5]), ad, 0.5).arraySync(),
    );
    // xW^T = [6, 2]; + b = [6.5, 1.5]; xA^T = 4; * 0.5 = 2; * B^T = [4, -2] -> [10.5, -0.5]
    expect(y).toEqual([[[10.5, -0.5]]]);
    ad.A.dispose();
    ad.B.dispose();
  });

  it('applies seeded dropout only when training, and trains only A and B', () => {
    const drop = loraFromTensors(cfg, { ...lc, dropout: 0.5 }, loraTensors(fixtureLora));
    try {
      const { ids, mask } = batchOf(base);
      const run = (opts: { training?: boolean; dropoutRng?: Rng }) =>
        tf.tidy(() => forwardLogits(cfg, w, ids, mask, { lora: drop, ...opts }).dataSync());
      expect(maxAbsDiff(run({}), logits(w, fixtureLora))).toBe(0);
      expect(() => run({ training: true })).toThrow(/dropoutRng/);
      const t1 = run({ training: true, dropoutRng: new Rng(3) });
      expect(maxAbsDiff(t1, run({ training: true, dropoutRng: new Rng(3) }))).toBe(0);
      expect(maxAbsDiff(t1, run({}))).toBeGreaterThan(1e-3);

      const vars = [...drop.layers.values()].flatMap((ad) => [ad.A, ad.B]);
      const baseBytes = Object.fromEntries(Object.entries(w).map(([k, t]) => [k, Buffer.from(t.dataSync().buffer.slice(0))]));
      const before = tf.memory().numTensors;
      // No variable list: tfjs differentiates every trainable variable there is, so only A and B may come back.
      const { value, grads } = tf.variableGrads(
        () => tf.mean(forwardLogits(cfg, w, ids, mask, { lora: drop, training: true, dropoutRng: new Rng(1) })) as tf.Scalar,
      );
      expect(Object.keys(grads).sort()).toEqual(vars.map((v) => v.name).sort());
      expect(vars).toHaveLength(2 * ALL_LINEAR.length * cfg.numLayers);
      expect(Object.values(grads).every((g) => g.dataSync().every(Number.isFinite))).toBe(true);
      // A step on everything trainable moves the adapters and leaves every base weight byte-identical.
      const a0 = vars[0].dataSync().slice();
      tf.tidy(() => { for (const v of vars) v.assign(tf.sub(v, tf.mul(grads[v.name], 0.1))); });
      expect(maxAbsDiff(vars[0].dataSync(), a0)).toBeGreaterThan(0);
      for (const [k, t] of Object.entries(w)) expect(Buffer.from(t.dataSync().buffer.slice(0)).equals(baseBytes[k]), `${k} changed`).toBe(true);
      tf.dispose([value, ...Object.values(grads)]);
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([ids, mask]);
    } finally {
      disposeLora(drop);
    }
  });
});

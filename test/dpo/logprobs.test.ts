// Summed completion log-probs vs the float64 numpy reference (base, lora, tied), chunk invariance, empty masks,
// gradients (plain-path autograd and central finite differences) and a flat tensor count.
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LlamaConfig } from '../../src/config/llama.js';
import { logprobsFromHidden, sequenceLogprobs } from '../../src/dpo/logprobs.js';
import { forwardHidden, forwardLogits } from '../../src/model/llama.js';
import type { Weights } from '../../src/model/llama.js';
import { disposeLora, loraFromTensors } from '../../src/model/lora.js';
import type { Lora } from '../../src/model/lora.js';
import { disposeWeights, loadModel, maxAbsDiff, readFixture, unpack } from '../model/fixture.js';
import type { LoraFixture, ModelCase, ModelFixture } from '../model/fixture.js';

let base: ModelFixture;
let tied: ModelFixture;
let lfx: LoraFixture;
let cfg: LlamaConfig;
let w: Weights;
let tcfg: LlamaConfig;
let tw: Weights;
let lora: Lora;

beforeAll(async () => {
  await tf.setBackend('cpu');
  base = readFixture<ModelFixture>('base.json');
  tied = readFixture<ModelFixture>('tied.json');
  lfx = readFixture<LoraFixture>('lora.json');
  ({ cfg, w } = loadModel(base));
  ({ cfg: tcfg, w: tw } = loadModel(tied));
  const l = lfx.lora;
  lora = loraFromTensors(
    cfg,
    { r: l.r, alpha: l.lora_alpha, dropout: l.lora_dropout, targets: l.target_modules, useRslora: l.use_rslora },
    Object.fromEntries(Object.entries(l.tensors).map(([k, p]) => [k, unpack(p)])),
  );
});

afterAll(() => {
  disposeLora(lora);
  disposeWeights(w);
  disposeWeights(tw);
});

/** The fixture's completion mask: 1 at t >= completion_start on real tokens. */
function lossMaskOf(c: ModelCase): number[][] {
  return c.input_ids.map((row, b) => row.map((_, t) => (t >= (c.completion_start[b] as number) && c.attention_mask[b]?.[t] === 1 ? 1 : 0)));
}

function tensorsOf(c: ModelCase): { ids: tf.Tensor2D; attn: tf.Tensor2D; loss: tf.Tensor2D } {
  return {
    ids: tf.tensor2d(c.input_ids, undefined, 'int32'),
    attn: tf.tensor2d(c.attention_mask, undefined, 'float32'),
    loss: tf.tensor2d(lossMaskOf(c), undefined, 'float32'),
  };
}

/** |got - want| <= abs + rel * |want| elementwise; prints the worst element on failure. */
function expectRelClose(got: ArrayLike<number>, want: ArrayLike<number>, rel: number, abs: number, what: string): void {
  expect(got.length).toBe(want.length);
  let worst = 0;
  let worstExcess = -Infinity;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs((got[i] as number) - (want[i] as number));
    const excess = d - (abs + rel * Math.abs(want[i] as number));
    if (excess > worstExcess) {
      worstExcess = excess;
      worst = i;
    }
  }
  if (worstExcess > 0) {
    console.log(`${what}: max diff ${maxAbsDiff(got, want)}; worst at ${worst}: got ${got[worst]} want ${want[worst]} (rel ${rel}, abs ${abs})`);
  }
  expect(worstExcess).toBeLessThanOrEqual(0);
}

const cases = () =>
  [
    { name: 'base', fx: base as ModelCase, c: cfg, weights: w, l: null as Lora | null },
    { name: 'lora', fx: lfx as ModelCase, c: cfg, weights: w, l: lora as Lora | null },
    { name: 'tied', fx: tied as ModelCase, c: tcfg, weights: tw, l: null as Lora | null },
  ] as const;

describe('sequenceLogprobs vs the float64 reference', () => {
  it.each(['base', 'lora', 'tied'])('%s: equals expected_completion_logp (rel 1e-5, abs 1e-4)', (name) => {
    const k = cases().find((x) => x.name === name)!;
    const got = tf.tidy(() => {
      const { ids, attn, loss } = tensorsOf(k.fx);
      return sequenceLogprobs(k.c, k.weights, ids, attn, loss, { lora: k.l }).dataSync();
    });
    expect(got.every(Number.isFinite)).toBe(true);
    expectRelClose(got, k.fx.expected_completion_logp, 1e-5, 1e-4, `${name} completion logp`);
  });

  it.each(['base', 'lora', 'tied'])('%s: logprobsFromHidden gives the same for chunk sizes 1, 3 and 64', (name) => {
    const k = cases().find((x) => x.name === name)!;
    const [c1, c3, c64] = tf.tidy(() => {
      const { ids, attn, loss } = tensorsOf(k.fx);
      const hidden = forwardHidden(k.c, k.weights, ids, attn, { lora: k.l });
      return [1, 3, 64].map((chunk) => logprobsFromHidden(k.c, k.weights, hidden, ids, loss, chunk).dataSync());
    });
    expectRelClose(c1!, c64!, 1e-6, 1e-5, `${name} chunk 1 vs 64`);
    expectRelClose(c3!, c64!, 1e-6, 1e-5, `${name} chunk 3 vs 64`);
    expectRelClose(c64!, k.fx.expected_completion_logp, 1e-5, 1e-4, `${name} chunk 64 vs reference`);
  });
});

describe('masks and edge cases', () => {
  it('an all-zero loss mask gives exactly 0 per row', () => {
    const got = tf.tidy(() => {
      const { ids, attn } = tensorsOf(base);
      const zeros = tf.zeros(ids.shape) as tf.Tensor2D;
      return sequenceLogprobs(cfg, w, ids, attn, zeros).arraySync();
    });
    expect(got).toEqual(base.input_ids.map(() => 0));
  });

  it('a mask on a single token gives log p of that token (sum of single-token masks = full sum)', () => {
    const { ids, attn, loss } = tensorsOf(base);
    const mask = lossMaskOf(base);
    const full = tf.tidy(() => sequenceLogprobs(cfg, w, ids, attn, loss).dataSync());
    const parts = new Float64Array(full.length);
    mask.forEach((row, b) =>
      row.forEach((m, t) => {
        if (m !== 1) return;
        const one = mask.map((r, bb) => r.map((_, tt) => (bb === b && tt === t ? 1 : 0)));
        const v = tf.tidy(() => sequenceLogprobs(cfg, w, ids, attn, tf.tensor2d(one)).dataSync());
        v.forEach((x, bb) => {
          if (bb !== b) expect(x).toBe(0);
        });
        parts[b] += v[b] as number;
        expect(v[b]).toBeLessThan(0);
      }),
    );
    expectRelClose(full, parts, 1e-6, 1e-5, 'sum of single-token log-probs');
    tf.dispose([ids, attn, loss]);
  });

  it('T = 1 gives zeros (nothing to score)', () => {
    const got = tf.tidy(() => sequenceLogprobs(cfg, w, tf.tensor2d([[3], [4]], undefined, 'int32'), tf.ones([2, 1]), tf.ones([2, 1])).arraySync());
    expect(got).toEqual([0, 0]);
  });
});

describe('gradients', () => {
  const vars = () => [...lora.layers.values()].flatMap((a) => [a.A, a.B]);

  /** The plain path: full logits, logSoftmax, gather the next token, mask, sum. */
  function plainLogp(ids: tf.Tensor2D, attn: tf.Tensor2D, loss: tf.Tensor2D): tf.Tensor1D {
    const logits = forwardLogits(cfg, w, ids, attn, { lora }); // [B, T, V]
    const [B, T] = ids.shape;
    const lsm = tf.logSoftmax(logits.slice([0, 0, 0], [B, T - 1, cfg.vocabSize])); // predicts t = 1..T-1
    const next = tf.oneHot(ids.slice([0, 1], [B, T - 1]), cfg.vocabSize);
    const tok = tf.sum(tf.mul(lsm, next), -1); // [B, T-1]
    return tf.sum(tf.mul(tok, loss.slice([0, 1], [B, T - 1])), 1) as tf.Tensor1D;
  }

  it('gradient w.r.t. every LoRA A and B equals autograd through forwardLogits + logSoftmax', () => {
    const { ids, attn, loss } = tensorsOf(lfx);
    const weights = tf.tensor1d([1, -0.5, 2]); // a weighted sum exercises per-row gradients
    const chunked = tf.variableGrads(() => tf.sum(tf.mul(sequenceLogprobs(cfg, w, ids, attn, loss, { lora }), weights)) as tf.Scalar, vars());
    const plain = tf.variableGrads(() => tf.sum(tf.mul(plainLogp(ids, attn, loss), weights)) as tf.Scalar, vars());
    expect(Math.abs(chunked.value.dataSync()[0]! - plain.value.dataSync()[0]!)).toBeLessThan(1e-4);
    const names = Object.keys(plain.grads);
    expect(names.length).toBe(vars().length);
    let worst = 0;
    let scale = 0;
    for (const n of names) {
      const a = chunked.grads[n]!.dataSync();
      const b = plain.grads[n]!.dataSync();
      worst = Math.max(worst, maxAbsDiff(a, b));
      scale = Math.max(scale, ...Array.from(b, Math.abs));
    }
    if (!(worst <= 1e-5 * Math.max(1, scale))) console.log(`lora grads: max diff ${worst}, max |grad| ${scale}`);
    expect(scale).toBeGreaterThan(1e-3); // the gradients are not trivially zero
    expect(worst).toBeLessThanOrEqual(1e-5 * Math.max(1, scale));
    tf.dispose([ids, attn, loss, weights, chunked.value, plain.value, ...Object.values(chunked.grads), ...Object.values(plain.grads)]);
  });

  it('directional derivative along a random direction matches central finite differences', () => {
    const { ids, attn, loss } = tensorsOf(lfx);
    const vs = vars();
    // A fixed pseudo-random direction with entries in [-0.01, 0.01] (an LCG, independent of tf's RNG): with eps 1e-2
    // each parameter moves by at most 1e-4, small enough for the O(eps^2) error, large enough for f32 round-off.
    let s = 12345;
    const rnd = () => {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      return (s / 4294967296) * 0.02 - 0.01;
    };
    const dirs = vs.map((v) => tf.tensor(Float32Array.from({ length: v.size }, rnd), v.shape));
    const f = () => tf.tidy(() => tf.sum(sequenceLogprobs(cfg, w, ids, attn, loss, { lora })).dataSync()[0]!);
    const { value, grads } = tf.variableGrads(() => tf.sum(sequenceLogprobs(cfg, w, ids, attn, loss, { lora })) as tf.Scalar, vs);
    let analytic = 0;
    vs.forEach((v, i) => {
      const g = grads[v.name]!.dataSync();
      const d = dirs[i]!.dataSync();
      for (let j = 0; j < g.length; j++) analytic += (g[j] as number) * (d[j] as number);
    });
    const originals = vs.map((v) => v.clone());
    const shift = (eps: number) => vs.forEach((v, i) => v.assign(tf.tidy(() => tf.add(originals[i]!, tf.mul(dirs[i]!, eps)))));
    const eps = 1e-2;
    shift(eps);
    const fp = f();
    shift(-eps);
    const fm = f();
    shift(0);
    const fd = (fp - fm) / (2 * eps);
    const tol = 0.01 * Math.abs(analytic) + 2e-3;
    if (!(Math.abs(fd - analytic) <= tol)) console.log(`FD ${fd} vs autograd ${analytic}: diff ${Math.abs(fd - analytic)} (tol ${tol})`);
    expect(Math.abs(analytic)).toBeGreaterThan(0.05);
    expect(Math.abs(fd - analytic)).toBeLessThanOrEqual(tol);
    expect(maxAbsDiff(vs[0]!.dataSync(), originals[0]!.dataSync())).toBe(0); // restored
    tf.dispose([ids, attn, loss, value, ...dirs, ...originals, ...Object.values(grads)]);
  });
});

describe('memory', () => {
  it('tf.memory().numTensors is flat across 5 calls inside tf.tidy (with and without LoRA, and with grads)', () => {
    const { ids, attn, loss } = tensorsOf(lfx);
    const counts: number[] = [];
    for (let i = 0; i < 5; i++) {
      tf.tidy(() => {
        sequenceLogprobs(cfg, w, ids, attn, loss, { lora });
        sequenceLogprobs(cfg, w, ids, attn, loss);
        const hidden = forwardHidden(cfg, w, ids, attn);
        logprobsFromHidden(cfg, w, hidden, ids, loss, 3);
      });
      const out = sequenceLogprobs(cfg, w, ids, attn, loss, { lora });
      out.dispose();
      const g = tf.variableGrads(() => tf.sum(sequenceLogprobs(cfg, w, ids, attn, loss, { lora })) as tf.Scalar);
      tf.dispose([g.value, ...Object.values(g.grads)]);
      counts.push(tf.memory().numTensors);
    }
    expect(new Set(counts).size).toBe(1);
    tf.dispose([ids, attn, loss]);
  });
});

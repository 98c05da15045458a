// The embedding and lm_head split by rows (model/row-blocks.ts), on cpu with a forced limit: the float64-reference tiny
// models cut into 3 uneven blocks give the unsplit model's logits, log-probs and metric sums, one DPO step's LoRA
// gradients and greedy tokens; the loader splits on the host and a merge writes the joined weight back; full SFT refuses.
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LlamaConfig } from '../../src/config/llama.js';
import { loadLlamaConfig } from '../../src/config/llama.js';
import { readEnv } from '../../src/config/env.js';
import { expectedWeightShapes, forwardLogits, type Weights } from '../../src/model/llama.js';
import { generate } from '../../src/model/generate.js';
import { blockKey, hostRowBlocks, isRowSplit, rowBlockSizes, rowBlocks, savedEntries, splitRowBlocks } from '../../src/model/row-blocks.js';
import { blockCompletionLogprobs, blockCompletionStats } from '../../src/model/row-block-logprob.js';
import { completionLogprobsReference, completionStatsReference } from '../../kernels/logprob.js';
import { batchSequenceStats, logprobsFromHidden } from '../../src/dpo/logprobs.js';
import { forwardHidden } from '../../src/model/llama.js';
import { createLora, loraFromTensors, disposeLora, type LoraConfig } from '../../src/model/lora.js';
import { disposeValues, objectiveStep } from '../../src/train/step.js';
import type { MicroBatch, RefProvider } from '../../src/dpo/objective.js';
import { disposeStats, stepGradients } from '../../src/train/dpo-step.js';
import { collatePairs } from '../../src/data/batch.js';
import type { TokenizedPair } from '../../src/tokenizer/pair.js';
import { loadModelWeights } from '../../src/io/hf-model.js';
import { disposeModel, loadModel as loadModelDir, type LoadedModel } from '../../src/io/model-dir.js';
import { writeMergedModel } from '../../src/io/merge.js';
import { writeTinyModel } from '../../src/io/tiny-model.js';
import { sftObjective } from '../../src/sft/objective.js';
import { InputError } from '../../src/util/errors.js';
import { SAMPLE_PAIRS, spawnTrain } from '../train/helpers.js';
import { Rng } from '../../src/util/rng.js';
import { batchOf, disposeWeights, loadModel, maxAbsDiff, readFixture, unpack, type ModelFixture } from './fixture.js';

/** 39 rows of 32 float32 per block: the 96-row base embedding and lm_head become 39 + 39 + 18, the tied 80 rows 39 + 39 + 2. */
const LIMIT = 5000;

interface GradFixture {
  lora: { r: number; lora_alpha: number; lora_dropout: number; use_rslora: boolean; target_modules: string[]; tensors: Record<string, { shape: number[]; scale: number; offset: number; int8: string }> };
  pairs: { prompt: number[]; chosen: number[]; rejected: number[] }[];
  ref_logps: number[];
  cases: { loss_type: string; beta: number; label_smoothing: number; grads: Record<string, number[]> }[];
}

const base = readFixture<ModelFixture>('base.json');
const tied = readFixture<ModelFixture>('tied.json');
const fx = JSON.parse(readFileSync(fileURLToPath(new URL('../fixtures/dpo/grad.json', import.meta.url)), 'utf8')) as GradFixture;

/** Max |a - b| / max(1, max |b|), printed with each comparison. */
function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 1;
  for (let i = 0; i < b.length; i++) m = Math.max(m, Math.abs(b[i]));
  return maxAbsDiff(a, b) / m;
}

function lossMaskOf(c: ModelFixture): tf.Tensor2D {
  return tf.tensor2d(c.attention_mask.map((row, b) => row.map((m, t) => (m === 1 && t >= c.completion_start[b] ? 1 : 0))), undefined, 'float32');
}

let models: { name: string; fixture: ModelFixture; cfg: LlamaConfig; w: Weights; split: Weights }[];

beforeAll(async () => {
  await tf.setBackend('cpu');
  models = [base, tied].map((fixture, i) => {
    const { cfg, w } = loadModel(fixture);
    return { name: i === 0 ? 'untied' : 'tied', fixture, cfg, w, split: splitRowBlocks(w, LIMIT) };
  });
});

afterAll(() => {
  for (const m of models) {
    for (const [k, t] of Object.entries(m.split)) if (k.includes('#')) t.dispose();
    disposeWeights(m.w);
  }
});

describe('row blocks of the embedding and lm_head', () => {
  it('plans as many rows as fit per block, the last taking the rest; one row above the limit is an error', () => {
    expect(rowBlockSizes(96, 128, LIMIT)).toEqual([39, 39, 18]);
    expect(rowBlockSizes(96, 128, 96 * 128)).toEqual([96]);
    expect(rowBlockSizes(96, 128, 96 * 128 - 1)).toEqual([95, 1]);
    expect(() => rowBlockSizes(96, 128, 127, 'lm_head.weight')).toThrow(/^lm_head\.weight: one row: 128 bytes \(expected at most the binding limit of 127 bytes\)/);
  });

  it('splits into 3 uneven blocks under the limit whose rows are the weight, and ties share the embedding blocks', async () => {
    const [untied, tie] = models;
    for (const key of ['model.embed_tokens.weight', 'lm_head.weight']) {
      expect(untied.split[key]).toBeUndefined();
      expect(isRowSplit(untied.split, key)).toBe(true);
      const blocks = rowBlocks(untied.split, key);
      expect(blocks.map((b) => b.shape)).toEqual([[39, 32], [39, 32], [18, 32]]);
      for (const b of blocks) expect(b.size * 4).toBeLessThanOrEqual(LIMIT);
      const joined = new Float32Array(96 * 32);
      let at = 0;
      for (const b of blocks) {
        joined.set(await b.data(), at);
        at += b.size;
      }
      expect(Array.from(joined)).toEqual(Array.from(await untied.w[key].data()));
    }
    expect(rowBlocks(tie.split, 'model.embed_tokens.weight').map((b) => b.shape[0])).toEqual([39, 39, 2]);
    expect(Object.keys(tie.split).filter((k) => k.startsWith('lm_head'))).toEqual([]);
    expect(() => rowBlocks(tie.split, 'lm_head.weight')).toThrow(/^weights lm_head\.weight: missing/);
    // Other weights are shared, not copied.
    expect(untied.split['model.norm.weight']).toBe(untied.w['model.norm.weight']);
  });

  it('forward logits equal the unsplit model (untied and tied) and the float64 reference', async () => {
    for (const m of models) {
      const { ids, mask } = batchOf(m.fixture);
      const a = forwardLogits(m.cfg, m.w, ids, mask);
      const b = forwardLogits(m.cfg, m.split, ids, mask);
      const hA = forwardHidden(m.cfg, m.w, ids, mask);
      const hB = forwardHidden(m.cfg, m.split, ids, mask);
      const [la, lb, ha, hb] = await Promise.all([a.data(), b.data(), hA.data(), hB.data()]);
      const d = relDiff(lb, la);
      console.log(`row blocks (${m.name}): logits max rel diff split vs whole ${d.toExponential(2)}, vs float64 ${relDiff(lb, m.fixture.expected_logits.flat(2)).toExponential(2)}`);
      expect(b.shape).toEqual(a.shape);
      // The split lookup keeps each row x 1 and adds rows x 0: the hidden states are the same bits.
      expect(maxAbsDiff(hb, ha)).toBe(0);
      expect(d).toBeLessThan(1e-6);
      expect(relDiff(lb, m.fixture.expected_logits.flat(2))).toBeLessThan(1e-4);
      tf.dispose([ids, mask, a, b, hA, hB]);
    }
  });

  it('completion log-probs and the metric sums equal the unsplit kernel (several chunks) and the float64 reference', async () => {
    for (const m of models) {
      const { ids, mask } = batchOf(m.fixture);
      const loss = lossMaskOf(m.fixture);
      const hidden = forwardHidden(m.cfg, m.w, ids, mask);
      for (const chunk of [1, 3, 64]) {
        const a = logprobsFromHidden(m.cfg, m.w, hidden, ids, loss, chunk);
        const b = logprobsFromHidden(m.cfg, m.split, hidden, ids, loss, chunk);
        const d = maxAbsDiff(await b.data(), await a.data());
        if (chunk === 3) console.log(`row blocks (${m.name}): log-probs max abs diff split vs whole ${d.toExponential(2)}, vs float64 ${maxAbsDiff(await b.data(), m.fixture.expected_completion_logp).toExponential(2)}`);
        expect(d).toBeLessThan(1e-5);
        expect(maxAbsDiff(await b.data(), m.fixture.expected_completion_logp)).toBeLessThan(1e-3);
        tf.dispose([a, b]);
      }
      tf.dispose([ids, mask, loss, hidden]);
    }
    // The stats of a collated [chosen; rejected] batch: log-probs, mean-logit sums, argmax hits.
    const m = models[0];
    const pairs: TokenizedPair[] = fx.pairs.map((p) => ({ promptIds: p.prompt, chosenIds: p.chosen, rejectedIds: p.rejected, truncated: false }));
    const batch = collatePairs(pairs, 0);
    const a = batchSequenceStats(m.cfg, m.w, batch);
    const b = batchSequenceStats(m.cfg, m.split, batch);
    expect(maxAbsDiff(await b.logps.data(), await a.logps.data())).toBeLessThan(1e-5);
    expect(maxAbsDiff(await b.logitSums.data(), await a.logitSums.data())).toBeLessThan(1e-5);
    expect(Array.from(await b.correct.data())).toEqual(Array.from(await a.correct.data()));
    tf.dispose([a.logps, a.logitSums, a.correct, b.logps, b.logitSums, b.correct]);
  });

  it('the split log-prob gradient to the hidden states equals the plain-ops reference gradient, ties in the argmax included', async () => {
    const rng = new Rng(7);
    const [B, T, H, V] = [2, 6, 8, 23];
    const hidden = tf.tensor3d(Float32Array.from({ length: B * T * H }, () => rng.uniform() * 2 - 1), [B, T, H]);
    const headW = tf.tensor2d(Float32Array.from({ length: V * H }, () => rng.uniform() * 2 - 1), [V, H]);
    const ids = tf.tensor2d(Int32Array.from({ length: B * T }, (_, i) => (i * 7) % V), [B, T], 'int32');
    const loss = tf.tensor2d(Float32Array.from({ length: B * T }, (_, i) => (i % T >= 2 ? 1 : 0)), [B, T]);
    const blocks = [tf.slice(headW, [0, 0], [10, H]), tf.slice(headW, [10, 0], [10, H]), tf.slice(headW, [20, 0], [3, H])] as tf.Tensor2D[];
    const f = (h: tf.Tensor) => tf.sum(tf.mul(blockCompletionLogprobs(h as tf.Tensor3D, blocks, ids, loss, 4), tf.tensor1d([0.7, -1.3])));
    const g = (h: tf.Tensor) => tf.sum(tf.mul(completionLogprobsReference(h as tf.Tensor3D, headW, ids, loss, 4), tf.tensor1d([0.7, -1.3])));
    const before = tf.memory().numTensors;
    const ga = tf.grad(f)(hidden);
    const gb = tf.grad(g)(hidden);
    const d = maxAbsDiff(await ga.data(), await gb.data());
    console.log(`row blocks: dLogp/dHidden max abs diff split vs plain ops ${d.toExponential(2)}`);
    expect(d).toBeLessThan(1e-6);
    expect(Math.max(...Array.from(await gb.data(), Math.abs))).toBeGreaterThan(1e-2);
    tf.dispose([ga, gb]);
    expect(tf.memory().numTensors).toBe(before);
    // The metric sums against the plain ops, with row 0's labels set to the argmax so there are hits to count.
    const am = tf.tidy(() => tf.argMax(tf.matMul(tf.reshape(hidden, [B * T, H]), headW, false, true), -1).arraySync() as number[]);
    const hitIds = (ids.arraySync() as number[][]).map((row, b) => row.map((v, t) => (b === 0 && t > 0 ? am[t - 1] : v)));
    const ids2 = tf.tensor2d(hitIds, [B, T], 'int32');
    const sa = blockCompletionStats(hidden, blocks, ids2, loss, 4);
    const sb = completionStatsReference(hidden, headW, ids2, loss, 4);
    expect(Array.from(await sa.correct.data())).toEqual(Array.from(await sb.correct.data()));
    expect((await sb.correct.data())[0]).toBe(T - 2); // every scored position of row 0
    expect(maxAbsDiff(await sa.logitSums.data(), await sb.logitSums.data())).toBeLessThan(1e-6);
    expect(maxAbsDiff(await sa.logps.data(), await sb.logps.data())).toBeLessThan(1e-6);
    tf.dispose([ids2, sa.logps, sa.logitSums, sa.correct, sb.logps, sb.logitSums, sb.correct]);
    // A row whose largest logit is in two blocks: the argmax is the lower id, as one argMax over V.
    const dup = tf.concat([tf.ones([1, H]), tf.zeros([9, H]), tf.ones([1, H]), tf.zeros([12, H])]) as tf.Tensor2D;
    const dupBlocks = [tf.slice(dup, [0, 0], [10, H]), tf.slice(dup, [10, 0], [13, H])] as tf.Tensor2D[];
    const hOnes = tf.ones([1, 2, H]) as tf.Tensor3D;
    for (const label of [0, 10]) {
      const lab = tf.tensor2d([[0, label]], [1, 2], 'int32');
      const s = blockCompletionStats(hOnes, dupBlocks, lab, tf.ones([1, 2]) as tf.Tensor2D, 4);
      expect(Array.from(await s.correct.data())).toEqual([label === 0 ? 1 : 0]);
      tf.dispose([lab, s.logps, s.logitSums, s.correct]);
    }
    tf.dispose([hidden, headW, ids, loss, ...blocks, dup, ...dupBlocks, hOnes]);
  });

  it("one DPO step's LoRA gradients equal the unsplit model's, with no tensor left behind", () => {
    const m = models[0];
    const lc: LoraConfig = { r: fx.lora.r, alpha: fx.lora.lora_alpha, dropout: fx.lora.lora_dropout, targets: fx.lora.target_modules, useRslora: fx.lora.use_rslora };
    const values = Object.fromEntries(Object.entries(fx.lora.tensors).map(([k, p]) => [k, unpack(p)]));
    const pairs: TokenizedPair[] = fx.pairs.map((p) => ({ promptIds: p.prompt, chosenIds: p.chosen, rejectedIds: p.rejected, truncated: false }));
    const P = pairs.length;
    const ref: RefProvider = (_p, positions) => ({
      chosen: Float32Array.from(positions, (i) => fx.ref_logps[i]),
      rejected: Float32Array.from(positions, (i) => fx.ref_logps[P + i]),
    });
    const micro: MicroBatch[] = [{ positions: pairs.map((_, i) => i), pairs }];
    const dpo = { loss: 'sigmoid' as const, beta: fx.cases[0].beta, labelSmoothing: 0 };
    const lora = loraFromTensors(m.cfg, lc, values);
    const run = (w: Weights) => {
      const { grads, stats } = stepGradients(m.cfg, w, lora, micro, ref, dpo, 0, new Rng(1));
      const out = new Map([...grads].map(([k, g]) => [k, g.dataSync() as Float32Array]));
      tf.dispose([...grads.values()]);
      disposeStats(stats);
      return out;
    };
    const whole = run(m.w);
    const before = tf.memory().numTensors;
    const split = run(m.split);
    expect(tf.memory().numTensors).toBe(before);
    const want = fx.cases[0].grads;
    const gmax = Math.max(...Object.values(want).map((g) => Math.max(...g.map(Math.abs))));
    let worst = 0;
    let worstFd = 0;
    for (const [k, g] of split) {
      worst = Math.max(worst, maxAbsDiff(g, whole.get(k)!) / gmax);
      worstFd = Math.max(worstFd, maxAbsDiff(g, want[k]) / gmax);
    }
    console.log(`row blocks: DPO gradients max diff / max |g| split vs whole ${worst.toExponential(2)}, vs float64 finite differences ${worstFd.toExponential(2)}`);
    expect([...split.keys()].sort()).toEqual(Object.keys(want).sort());
    expect(worst).toBeLessThan(1e-6);
    expect(worstFd).toBeLessThan(1e-3);
    disposeLora(lora);
  });

  it('greedy generation gives the unsplit tokens (untied and tied)', async () => {
    for (const m of models) {
      const prompts = [[1, 5, 9], [1, 17], [1, 40, 3, 22]];
      const opts = { maxNewTokens: 10, temperature: 0, stopIds: [], seed: 1 };
      const a = await generate(m.cfg, m.w, null, prompts, opts);
      const before = tf.memory().numTensors;
      const b = await generate(m.cfg, m.split, null, prompts, opts);
      expect(tf.memory().numTensors).toBe(before);
      expect(b.tokens).toEqual(a.tokens);
      expect(new Set(a.tokens.flat()).size).toBeGreaterThan(1); // not one repeated id
      const s1 = await generate(m.cfg, m.w, null, prompts, { ...opts, temperature: 1, seed: 5 });
      const s2 = await generate(m.cfg, m.split, null, prompts, { ...opts, temperature: 1, seed: 5 });
      expect(s2.tokens).toEqual(s1.tokens);
    }
  });

  it("full SFT refuses a split model; a LoRA SFT step's gradients and token accuracy equal the unsplit model's", async () => {
    const m = models[0];
    expect(() => sftObjective(m.cfg, m.split, 0, { completionOnly: true, full: true })).toThrow(InputError);
    expect(() => sftObjective(m.cfg, m.split, 0, { completionOnly: true, full: true })).toThrow(/^sft --full: the embedding or lm_head is split into row blocks/);
    const lora = createLora(m.cfg, { r: 4, alpha: 8, dropout: 0, targets: ['q_proj', 'v_proj'], useRslora: false }, 3);
    // B = 0 at init gives A no gradient: give B values so both adapters get one.
    for (const ad of lora.layers.values()) ad.B.assign(tf.randomUniform(ad.B.shape, -0.1, 0.1, 'float32', 9));
    const examples = fx.pairs.map((p, index) => ({ index, promptIds: p.prompt, completionIds: p.chosen }));
    const run = async (w: Weights) => {
      const out = objectiveStep(sftObjective(m.cfg, w, 0, { completionOnly: true, full: false }), lora, [{ examples }], new Rng(1));
      const grads = new Map(await Promise.all([...out.grads].map(async ([k, g]) => [k, (await g.data()) as Float32Array] as const)));
      const correct = Array.from(await out.values.correct.data());
      tf.dispose([...out.grads.values()]);
      disposeValues(out.values);
      return { grads, correct };
    };
    const whole = await run(m.w);
    const split = await run(m.split);
    let worst = 0;
    let gmax = 0;
    for (const [k, g] of whole.grads) {
      worst = Math.max(worst, maxAbsDiff(split.grads.get(k)!, g));
      gmax = Math.max(gmax, ...Array.from(g, Math.abs));
    }
    console.log(`row blocks: LoRA SFT gradients max diff split vs whole ${worst.toExponential(2)} (max |g| ${gmax.toExponential(2)})`);
    expect(gmax).toBeGreaterThan(1e-3);
    expect(worst / gmax).toBeLessThan(1e-6);
    expect(split.correct).toEqual(whole.correct);
    disposeLora(lora);
  });
});

describe('loading and saving split weights', () => {
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'row-blocks-'));
    await writeTinyModel(join(dir, 'tiny'), { seed: 3, hiddenSize: 32, numLayers: 1 });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('the loader splits on the host into blocks under the limit, and savedEntries joins them to the file bytes', async () => {
    const cfg = loadLlamaConfig(join(dir, 'tiny'));
    const expected = expectedWeightShapes(cfg);
    const V = cfg.vocabSize;
    const rowBytes = cfg.hiddenSize * 4;
    const per = Math.ceil(V / 3) + 1;
    const limit = per * rowBytes + 7;
    const whole = await loadModelWeights(join(dir, 'tiny'), cfg, expected, { rowLimit: null });
    const split = await loadModelWeights(join(dir, 'tiny'), cfg, expected, { rowLimit: limit });
    expect(rowBlocks(split, 'model.embed_tokens.weight').map((b) => b.shape[0])).toEqual([per, per, V - 2 * per]);
    for (const [k, t] of Object.entries(split)) if (k.includes('#')) expect(t.size * 4).toBeLessThanOrEqual(limit);
    expect(Object.keys(split).filter((k) => !k.includes('#')).sort()).toEqual(Object.keys(expected).filter((k) => !['model.embed_tokens.weight', 'lm_head.weight'].includes(k)).sort());
    const a = savedEntries(whole);
    const b = savedEntries(split);
    expect(b.map((e) => [e.name, e.shape])).toEqual(a.map((e) => [e.name, e.shape]));
    for (let i = 0; i < a.length; i++) expect(Buffer.from((await b[i].data()).buffer).equals(Buffer.from((await a[i].data()).buffer))).toBe(true);
    tf.dispose([...Object.values(whole), ...Object.values(split)]);
  });

  it('merge of a split model writes the bytes of the unsplit merge', async () => {
    const whole = await loadModelDir(join(dir, 'tiny'));
    const lora = createLora(whole.cfg, { r: 2, alpha: 4, dropout: 0, targets: ['q_proj'], useRslora: false }, 5);
    for (const ad of lora.layers.values()) ad.B.assign(tf.randomUniform(ad.B.shape, -0.1, 0.1, 'float32', 2));
    await writeMergedModel(whole, lora, join(dir, 'merged-whole'), 'F32');
    const limit = Math.ceil(whole.cfg.vocabSize / 3) * whole.cfg.hiddenSize * 4;
    const split: LoadedModel = { ...whole, weights: await loadModelWeights(join(dir, 'tiny'), whole.cfg, expectedWeightShapes(whole.cfg), { rowLimit: limit }) };
    expect(rowBlocks(split.weights, 'lm_head.weight').length).toBe(3);
    await writeMergedModel(split, lora, join(dir, 'merged-split'), 'F32');
    expect(readFileSync(join(dir, 'merged-split', 'model.safetensors')).equals(readFileSync(join(dir, 'merged-whole', 'model.safetensors')))).toBe(true);
    disposeLora(lora);
    disposeModel(whole);
    disposeModel(split);
  });

  it('score with DPO_MAX_BINDING_BYTES splits at load (its log says so) and writes the unsplit log-probs', async () => {
    const tiny = join(dir, 'tiny');
    const score = async (out: string, limit: string | null) => {
      const prev = process.env.DPO_MAX_BINDING_BYTES;
      if (limit) process.env.DPO_MAX_BINDING_BYTES = limit;
      const c = spawnTrain(['score', '--model', tiny, '--data', SAMPLE_PAIRS, '--backend', 'cpu', '--max-length', '64', '--out', out]);
      if (prev === undefined) delete process.env.DPO_MAX_BINDING_BYTES; // spawn has copied the environment
      else process.env.DPO_MAX_BINDING_BYTES = prev;
      const { code } = await c.exited;
      expect(code, c.stderr()).toBe(0);
      return { log: c.stderr(), rows: readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { chosen_logp: number; rejected_logp: number }) };
    };
    const cfg = loadLlamaConfig(tiny);
    const limit = Math.ceil(cfg.vocabSize / 3) * cfg.hiddenSize * 4; // 3 blocks
    const [whole, split] = await Promise.all([score(join(dir, 'whole.jsonl'), null), score(join(dir, 'split.jsonl'), String(limit))]);
    expect(whole.log).not.toMatch(/row blocks/);
    expect(split.log).toMatch(new RegExp(`row blocks: model\\.embed_tokens\\.weight as 3 blocks \\(2 x ${Math.ceil(cfg.vocabSize / 3)} \\+ \\d+ rows\\); lm_head\\.weight as 3 blocks`));
    const d = maxAbsDiff(split.rows.flatMap((r) => [r.chosen_logp, r.rejected_logp]), whole.rows.flatMap((r) => [r.chosen_logp, r.rejected_logp]));
    console.log(`row blocks: score's ${whole.rows.length} pairs, log-probs max abs diff split vs whole ${d.toExponential(2)}`);
    expect(whole.rows.length).toBeGreaterThan(10);
    expect(d).toBeLessThan(1e-4);
  }, 60_000);

  it('hostRowBlocks leaves other weights and fitting ones whole; DPO_MAX_BINDING_BYTES is parsed strictly', () => {
    const data = new Float32Array(12);
    expect(hostRowBlocks('model.norm.weight', data, [12], 8).map((b) => b.key)).toEqual(['model.norm.weight']);
    expect(hostRowBlocks('lm_head.weight', data, [4, 3], 48).map((b) => b.key)).toEqual(['lm_head.weight']);
    expect(hostRowBlocks('lm_head.weight', data, [4, 3], 47).map((b) => [b.key, b.shape])).toEqual([[blockKey('lm_head.weight', 0), [3, 3]], [blockKey('lm_head.weight', 1), [1, 3]]]);
    expect(readEnv({ DPO_MAX_BINDING_BYTES: '5000' }).maxBindingBytes).toBe(5000);
    expect(readEnv({}).maxBindingBytes).toBeNull();
    expect(() => readEnv({ DPO_MAX_BINDING_BYTES: '12MiB' })).toThrow(/^DPO_MAX_BINDING_BYTES: "12MiB" \(expected an integer number of bytes >= 4\)/);
  });
});

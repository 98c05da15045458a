// The row split of the embedding and lm_head (model/row-blocks.ts) on webgpu against the unsplit model on cpu: the
// float64-reference tiny model cut into 3 uneven blocks (a forced 5000-byte limit, as DPO_MAX_BINDING_BYTES does) gives
// cpu's forward logits, completion log-probs, one DPO step's LoRA gradients and greedy tokens. Every read is
// `await data()`. Then a tied model whose embedding is above the adapter's real limit (lavapipe: 128 MiB), split by the
// loader's host function at that limit, gives cpu's logits. Skips, saying why, only where Dawn finds no adapter;
// DPO_REQUIRE_WEBGPU=1 (CI) fails instead.
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeBackend, selectBackend } from '../../src/backend/index.js';
import { checkWeightsFit, probeWebGpu, rowSplitLimit, webgpuAdapter } from '../../src/backend/webgpu.js';
import { parseLlamaConfig } from '../../src/config/llama.js';
import { tinyConfigJson } from '../../src/io/tiny-model.js';
import { expectedWeightShapes, forwardLogits, type Weights } from '../../src/model/llama.js';
import { generate } from '../../src/model/generate.js';
import { hostRowBlocks, rowBlocks, splitRowBlocks } from '../../src/model/row-blocks.js';
import { sequenceLogprobs } from '../../src/dpo/logprobs.js';
import { disposeLora, loraFromTensors, type LoraConfig } from '../../src/model/lora.js';
import type { MicroBatch, RefProvider } from '../../src/dpo/objective.js';
import { disposeStats, stepGradients } from '../../src/train/dpo-step.js';
import type { TokenizedPair } from '../../src/tokenizer/pair.js';
import { Rng } from '../../src/util/rng.js';
import { batchOf, disposeWeights, loadModel, maxAbsDiff, readFixture, unpack, type ModelFixture } from '../model/fixture.js';

interface GradFixture {
  lora: { r: number; lora_alpha: number; lora_dropout: number; use_rslora: boolean; target_modules: string[]; tensors: Record<string, { shape: number[]; scale: number; offset: number; int8: string }> };
  pairs: { prompt: number[]; chosen: number[]; rejected: number[] }[];
  ref_logps: number[];
  cases: { loss_type: string; beta: number; label_smoothing: number; grads: Record<string, number[]> }[];
}

tf.env().set('PROD', true);
const probe = await probeWebGpu();
const required = process.env.DPO_REQUIRE_WEBGPU === '1';
if (!probe.ok && !required) console.log(`webgpu row split: SKIPPED: ${probe.reason}`);

/** 39 rows of 32 float32 per block: the 96-row embedding and lm_head become 39 + 39 + 18. */
const LIMIT = 5000;
const base = readFixture<ModelFixture>('base.json');
const fx = JSON.parse(readFileSync(fileURLToPath(new URL('../fixtures/dpo/grad.json', import.meta.url)), 'utf8')) as GradFixture;
const lc: LoraConfig = { r: fx.lora.r, alpha: fx.lora.lora_alpha, dropout: fx.lora.lora_dropout, targets: fx.lora.target_modules, useRslora: fx.lora.use_rslora };
const loraValues = Object.fromEntries(Object.entries(fx.lora.tensors).map(([k, p]) => [k, unpack(p)]));
const P = fx.pairs.length;
const pairs: TokenizedPair[] = fx.pairs.map((p) => ({ promptIds: p.prompt, chosenIds: p.chosen, rejectedIds: p.rejected, truncated: false }));
const ref: RefProvider = (_p, positions) => ({
  chosen: Float32Array.from(positions, (i) => fx.ref_logps[i]),
  rejected: Float32Array.from(positions, (i) => fx.ref_logps[P + i]),
});
const micro: MicroBatch[] = [{ positions: pairs.map((_, i) => i), pairs }];
const dpo = { loss: 'sigmoid' as const, beta: fx.cases[0].beta, labelSmoothing: 0 };
const prompts = [[1, 5, 9], [1, 17], [1, 40, 3, 22]];

interface Results {
  blocks: number[];
  logits: Float32Array;
  logps: Float32Array;
  grads: Map<string, Float32Array>;
  tokens: number[][];
}

/** Everything on the current backend, from the fixture model split at `limit` (null: whole). */
async function compute(limit: number | null): Promise<Results> {
  const { cfg, w } = loadModel(base);
  const m: Weights = limit === null ? w : splitRowBlocks(w, limit);
  try {
    const { ids, mask } = batchOf(base);
    const lossMask = tf.tensor2d(base.attention_mask.map((row, b) => row.map((v, t) => (v === 1 && t >= base.completion_start[b] ? 1 : 0))), undefined, 'float32');
    const logitsT = forwardLogits(cfg, m, ids, mask);
    const logpsT = sequenceLogprobs(cfg, m, ids, mask, lossMask);
    const logits = (await logitsT.data()) as Float32Array;
    const logps = (await logpsT.data()) as Float32Array;
    tf.dispose([ids, mask, lossMask, logitsT, logpsT]);
    const lora = loraFromTensors(cfg, lc, loraValues);
    const { grads: g, stats } = stepGradients(cfg, m, lora, micro, ref, dpo, 0, new Rng(1));
    const grads = new Map(await Promise.all([...g].map(async ([k, t]) => [k, (await t.data()) as Float32Array] as const)));
    tf.dispose([...g.values()]);
    disposeStats(stats);
    disposeLora(lora);
    const { tokens } = await generate(cfg, m, null, prompts, { maxNewTokens: 8, temperature: 0, stopIds: [], seed: 1 });
    return { blocks: rowBlocks(m, 'lm_head.weight').map((b) => b.shape[0]), logits, logps, grads, tokens };
  } finally {
    if (m !== w) for (const [k, t] of Object.entries(m)) if (k.includes('#')) t.dispose();
    disposeWeights(w);
  }
}

const maxAbs = (a: Float32Array): number => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

let cpu: Results;
let gpu: Results;

describe.skipIf(!probe.ok && !required)('webgpu row split of the embedding and lm_head against cpu', () => {
  beforeAll(async () => {
    if (!probe.ok) throw new Error(`DPO_REQUIRE_WEBGPU=1 but there is no WebGPU adapter: ${probe.reason}`);
    await tf.setBackend('cpu');
    cpu = await compute(null);
    const info = await selectBackend('webgpu');
    expect(tf.getBackend()).toBe('webgpu');
    expect(info.name).toBe('webgpu');
    gpu = await compute(LIMIT);
  }, 300_000);

  afterAll(async () => {
    await closeBackend();
  });

  it('holds 3 uneven blocks and gives the unsplit cpu logits and log-probs', () => {
    expect(gpu.blocks).toEqual([39, 39, 18]);
    expect(cpu.blocks).toEqual([96]);
    const dl = maxAbsDiff(gpu.logits, cpu.logits);
    const dp = maxAbsDiff(gpu.logps, cpu.logps);
    console.log(`webgpu row split: logits max abs diff vs cpu whole ${dl.toExponential(2)}, log-probs ${dp.toExponential(2)} (log-probs vs float64 ${maxAbsDiff(gpu.logps, base.expected_completion_logp).toExponential(2)})`);
    expect(gpu.logits.length).toBe(cpu.logits.length);
    expect(dl).toBeLessThan(1e-5);
    expect(dp).toBeLessThan(1e-4);
  });

  it('an embedding above the real adapter limit loads as blocks under it and gives the cpu logits and log-probs (no silent zeros)', async () => {
    const limit = rowSplitLimit()!;
    expect(limit).toBe(webgpuAdapter()!.limits.maxStorageBufferBindingSize); // no DPO_MAX_BINDING_BYTES here
    if (limit > 256 * 2 ** 20) {
      console.log(`webgpu row split: real-limit case SKIPPED: maxStorageBufferBindingSize ${limit} would need an embedding above ${limit} bytes`);
      return;
    }
    // A tied 1-layer model whose [V, 1024] embedding is 1.25x the limit (160 MiB on lavapipe): 2 blocks.
    const H = 1024;
    const V = Math.floor((limit / (H * 4)) * 1.25);
    const cfg = parseLlamaConfig(tinyConfigJson(V, 1, [2], { hiddenSize: H, numHeads: 8, numKvHeads: 8, intermediateSize: 64, numLayers: 1, tieWordEmbeddings: true }), 'big-vocab config');
    const shapes = expectedWeightShapes(cfg);
    checkWeightsFit(shapes, limit);
    const tStart = performance.now();
    let x = 11; // an LCG inline: 40M draws through Rng's method calls take seconds
    const host = Object.fromEntries(Object.entries(shapes).map(([k, shape]) => {
      const n = shape.reduce((a, d) => a * d, 1);
      const data = new Float32Array(n);
      for (let i = 0; i < n; i++) data[i] = k.endsWith('norm.weight') ? 1 : (((x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1) * 0.05;
      return [k, { data, shape }];
    }));
    const ids = [[1, 7, V - 3, 40000 % V, 5, V - 1]];
    const run = async (split: boolean) => {
      const w: Weights = {};
      for (const [k, { data, shape }] of Object.entries(host)) {
        for (const b of hostRowBlocks(k, data, shape, split ? limit : null)) w[b.key] = tf.tensor(b.data, b.shape, 'float32');
      }
      const idsT = tf.tensor2d(ids, undefined, 'int32');
      const mask = tf.onesLike(idsT) as tf.Tensor2D;
      const loss = tf.tensor2d([[0, 0, 1, 1, 1, 1]]);
      const logitsT = forwardLogits(cfg, w, idsT, mask);
      const logpT = sequenceLogprobs(cfg, w, idsT, mask, loss);
      const out = { blocks: rowBlocks(w, 'model.embed_tokens.weight').map((b) => b.shape[0]), logits: (await logitsT.data()) as Float32Array, logp: (await logpT.data()) as Float32Array };
      tf.dispose([idsT, mask, loss, logitsT, logpT, ...Object.values(w)]);
      return out;
    };
    const t0 = performance.now();
    await tf.setBackend('cpu');
    const want = await run(false);
    const t1 = performance.now();
    await tf.setBackend('webgpu');
    const got = await run(true);
    console.log(`webgpu row split: host weights ${((t0 - tStart) / 1000).toFixed(1)} s, cpu ${((t1 - t0) / 1000).toFixed(1)} s, webgpu ${((performance.now() - t1) / 1000).toFixed(1)} s`);
    const dl = maxAbsDiff(got.logits, want.logits);
    console.log(`webgpu row split: embedding [${V}, ${H}] = ${(V * H * 4 / 2 ** 20).toFixed(1)} MiB over a ${(limit / 2 ** 20).toFixed(1)} MiB limit as blocks ${JSON.stringify(got.blocks)}: ` +
      `logits max abs diff vs cpu ${dl.toExponential(2)} (max |logit| ${maxAbs(want.logits).toExponential(2)}), log-prob ${got.logp[0]} vs ${want.logp[0]}`);
    expect(got.blocks).toEqual([Math.floor(limit / (H * 4)), V - Math.floor(limit / (H * 4))]);
    expect(maxAbs(got.logits)).toBeGreaterThan(0.1); // not Dawn's skipped-kernel zeros
    expect(dl).toBeLessThan(1e-4);
    expect(Math.abs(got.logp[0] - want.logp[0])).toBeLessThan(1e-3);
  }, 300_000);

  it("gives the unsplit cpu model's DPO LoRA gradients and greedy tokens", () => {
    const gmax = Math.max(...[...cpu.grads.values()].map((g) => Math.max(...Array.from(g, Math.abs))));
    let worst = 0;
    for (const [k, g] of gpu.grads) worst = Math.max(worst, maxAbsDiff(g, cpu.grads.get(k)!) / gmax);
    console.log(`webgpu row split: DPO gradients max diff / max |g| vs cpu whole ${worst.toExponential(2)}; greedy tokens ${JSON.stringify(gpu.tokens)}`);
    expect([...gpu.grads.keys()].sort()).toEqual([...cpu.grads.keys()].sort());
    expect(worst).toBeLessThan(1e-5);
    expect(gpu.tokens).toEqual(cpu.tokens);
  });
});

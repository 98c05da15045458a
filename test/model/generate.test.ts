// Generation: greedy tokens through the KV cache equal the argmax of a full forward without cache (batched, left-padded
// prompts of different lengths, with and without LoRA); seeded sampling; top-k/top-p against a brute-force HF reference;
// stop ids, max-new-tokens, stop sequences and no tensor leaks.
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LlamaConfig } from '../../src/config/llama.js';
import { argmax, firstStopIndex, generate, generateText, samplingDistribution, sampleToken } from '../../src/model/generate.js';
import type { SamplingOptions } from '../../src/model/generate.js';
import { forwardLogits } from '../../src/model/llama.js';
import type { Weights } from '../../src/model/llama.js';
import { disposeLora, loraFromTensors } from '../../src/model/lora.js';
import type { Lora } from '../../src/model/lora.js';
import { disposeModel, loadModel as loadModelDir } from '../../src/io/model-dir.js';
import type { LoadedModel } from '../../src/io/model-dir.js';
import { writeTinyModel } from '../../src/io/tiny-model.js';
import { Rng } from '../../src/util/rng.js';
import { disposeWeights, loadModel, readFixture, unpack } from './fixture.js';
import type { LoraFixture, ModelFixture } from './fixture.js';

let cfg: LlamaConfig;
let w: Weights;
let lora: Lora;
let tiny: LoadedModel;
let dir: string;

beforeAll(async () => {
  await tf.setBackend('cpu');
  ({ cfg, w } = loadModel(readFixture<ModelFixture>('base.json')));
  const l = readFixture<LoraFixture>('lora.json').lora;
  lora = loraFromTensors(
    cfg,
    { r: l.r, alpha: l.lora_alpha, dropout: l.lora_dropout, targets: l.target_modules, useRslora: l.use_rslora },
    Object.fromEntries(Object.entries(l.tensors).map(([k, p]) => [k, unpack(p)])),
  );
  dir = mkdtempSync(join(tmpdir(), 'generate-test-'));
  await writeTinyModel(join(dir, 'tiny'), { seed: 3 });
  tiny = await loadModelDir(join(dir, 'tiny'));
});

afterAll(() => {
  disposeWeights(w);
  disposeLora(lora);
  disposeModel(tiny);
  rmSync(dir, { recursive: true, force: true });
});

// Lengths 5, 2 and 3: the batch is left-padded to 5.
const prompts = [[1, 5, 7, 9, 11], [1, 20], [1, 30, 31]];
const greedy = (o: Partial<SamplingOptions> = {}): SamplingOptions => ({ maxNewTokens: 6, temperature: 0, stopIds: [], seed: 0, ...o });

/** Last-position logits of one unpadded sequence, recomputed from scratch (no cache). */
function fullLastLogits(seq: number[], l: Lora | null): number[] {
  return tf.tidy(() => {
    const logits = forwardLogits(cfg, w, tf.tensor2d([seq], undefined, 'int32'), tf.ones([1, seq.length]) as tf.Tensor2D, { lora: l });
    return (logits.arraySync() as number[][][])[0]![seq.length - 1]!;
  });
}

describe('generate', () => {
  it.each([
    ['base model', false],
    ['with LoRA', true],
  ])('greedy tokens equal the argmax of a full forward on the sequence so far (%s)', async (_name, withLora) => {
    const l = withLora ? lora : null;
    const res = await generate(cfg, w, l, prompts, greedy());
    expect(res.finishReason).toEqual(['length', 'length', 'length']);
    prompts.forEach((p, b) => {
      const got = res.tokens[b]!;
      expect(got).toHaveLength(6);
      for (let i = 0; i < got.length; i++) {
        const z = fullLastLogits([...p, ...got.slice(0, i)], l);
        const want = argmax(z);
        if (got[i] !== want) console.log(`row ${b} step ${i}: got ${got[i]} (logit ${z[got[i]!]}), want ${want} (logit ${z[want]})`);
        expect(got[i]).toBe(want);
      }
    });
  });

  it('LoRA changes the greedy tokens (the adapter is applied)', async () => {
    const base = await generate(cfg, w, null, prompts, greedy());
    const adapted = await generate(cfg, w, lora, prompts, greedy());
    expect(adapted.tokens).not.toEqual(base.tokens);
    const off = await generate(cfg, w, { ...lora, enabled: false }, prompts, greedy());
    expect(off.tokens).toEqual(base.tokens);
  });

  it('a row in a batch generates as the same prompt alone', async () => {
    const batch = await generate(cfg, w, null, prompts, greedy());
    for (const [b, p] of prompts.entries()) expect((await generate(cfg, w, null, [p], greedy())).tokens[0]).toEqual(batch.tokens[b]);
  });

  it('the same seed gives the same samples; different seeds differ at temperature 1', async () => {
    const o = greedy({ temperature: 1, maxNewTokens: 12, seed: 7 });
    const a = await generate(cfg, w, null, prompts, o);
    const b = await generate(cfg, w, null, prompts, o);
    expect(b).toEqual(a);
    const c = await generate(cfg, w, null, prompts, { ...o, seed: 8 });
    expect(c.tokens).not.toEqual(a.tokens);
  });

  it('top-k = 1 and top-p = 1e-6 at temperature 1 equal greedy', async () => {
    const g = await generate(cfg, w, null, prompts, greedy());
    expect((await generate(cfg, w, null, prompts, greedy({ temperature: 1, topK: 1, seed: 3 }))).tokens).toEqual(g.tokens);
    expect((await generate(cfg, w, null, prompts, greedy({ temperature: 1, topP: 1e-6, seed: 3 }))).tokens).toEqual(g.tokens);
  });

  it('stops at a stop id, which is excluded, and other rows go on', async () => {
    const g = (await generate(cfg, w, null, prompts, greedy())).tokens;
    // The first step of row 0 whose greedy token did not occur earlier in that row.
    const k = g[0]!.findIndex((id, i) => i > 0 && !g[0]!.slice(0, i).includes(id));
    expect(k).toBeGreaterThan(0);
    const stop = g[0]![k]!;
    const res = await generate(cfg, w, null, prompts, greedy({ stopIds: [stop] }));
    expect(res.tokens[0]).toEqual(g[0]!.slice(0, k));
    expect(res.finishReason[0]).toBe('stop');
    g.forEach((row, b) => {
      const at = row.indexOf(stop);
      expect(res.tokens[b]).toEqual(at >= 0 ? row.slice(0, at) : row);
      expect(res.finishReason[b]).toBe(at >= 0 ? 'stop' : 'length');
    });
  });

  it('a row stopped at step 0 yields no tokens', async () => {
    const first = (await generate(cfg, w, null, [prompts[1]!], greedy({ maxNewTokens: 1 }))).tokens[0]![0]!;
    const res = await generate(cfg, w, null, [prompts[1]!], greedy({ stopIds: [first] }));
    expect(res).toEqual({ tokens: [[]], finishReason: ['stop'] });
  });

  it('respects maxNewTokens', async () => {
    for (const n of [0, 1, 3]) {
      const res = await generate(cfg, w, null, prompts, greedy({ maxNewTokens: n, temperature: 0.7, seed: 1 }));
      expect(res.tokens.map((t) => t.length)).toEqual([n, n, n]);
      expect(res.finishReason).toEqual(['length', 'length', 'length']);
    }
  });

  it('stopWhen ends a row early and onToken counts the steps', async () => {
    const steps: number[] = [];
    const res = await generate(cfg, w, null, prompts, greedy({ stopWhen: (row, t) => row === 1 && t.length === 2 }), (s) => steps.push(s));
    expect(res.tokens.map((t) => t.length)).toEqual([6, 2, 6]);
    expect(res.finishReason).toEqual(['length', 'stop', 'length']);
    expect(steps).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('leaves no tensors behind', async () => {
    await generate(cfg, w, lora, prompts, greedy({ temperature: 1, topP: 0.9, topK: 20 })); // warm-up
    const before = tf.memory().numTensors;
    await generate(cfg, w, lora, prompts, greedy({ temperature: 1, topP: 0.9, topK: 20, maxNewTokens: 8 }));
    await generate(cfg, w, null, prompts, greedy({ stopIds: [2, 3] }));
    expect(tf.memory().numTensors).toBe(before);
  });

  it('rejects bad options with the key', async () => {
    await expect(generate(cfg, w, null, [[]], greedy())).rejects.toThrow(/prompts\[0\]: no tokens/);
    await expect(generate(cfg, w, null, [[1, 999]], greedy())).rejects.toThrow(/token id 999/);
    await expect(generate(cfg, w, null, prompts, greedy({ topP: 0 }))).rejects.toThrow(/topP/);
    await expect(generate(cfg, w, null, prompts, greedy({ temperature: -1 }))).rejects.toThrow(/temperature/);
  });
});

/** HF's warpers with a full sort: TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper, softmax over the rest. */
function hfReference(logits: number[], T: number, topK: number, topP: number): Map<number, number> {
  let x = logits.map((v) => v / T);
  if (topK > 0) {
    const kth = [...x].sort((a, b) => b - a)[Math.min(topK, x.length) - 1]!;
    x = x.map((v) => (v < kth ? -Infinity : v));
  }
  const softmax = (z: number[]) => {
    const m = Math.max(...z);
    const e = z.map((v) => Math.exp(v - m));
    const s = e.reduce((a, b) => a + b, 0);
    return e.map((v) => v / s);
  };
  if (topP < 1) {
    const p = softmax(x);
    const asc = x.map((_, i) => i).sort((a, b) => p[a]! - p[b]! || b - a); // ascending; lower id ranks higher on ties
    let cum = 0;
    const remove = new Set<number>();
    asc.forEach((i, j) => {
      cum += p[i]!;
      if (cum <= 1 - topP && j < asc.length - 1) remove.add(i);
    });
    x = x.map((v, i) => (remove.has(i) ? -Infinity : v));
  }
  const p = softmax(x);
  return new Map(p.flatMap((v, i) => (v > 0 ? [[i, v] as [number, number]] : [])));
}

describe('samplingDistribution', () => {
  const rng = new Rng(11);
  const cases: [string, number[], number, number, number][] = [];
  for (let c = 0; c < 6; c++) {
    const V = 200;
    const scale = [0.5, 3, 8][c % 3]!;
    const logits = Array.from({ length: V }, () => rng.normal(0, scale));
    cases.push([`normal(0, ${scale}) top-p 0.9`, logits, 1, 0, 0.9]);
    cases.push([`normal(0, ${scale}) top-k 10, T 0.7`, logits, 0.7, 10, 1]);
    cases.push([`normal(0, ${scale}) top-k 50, top-p 0.5, T 1.3`, logits, 1.3, 50, 0.5]);
  }
  // One dominant token: the first candidate set lacks the mass, so the search widens.
  cases.push(['one dominant token, top-p 0.99', [10, ...new Array<number>(999).fill(0)], 1, 0, 0.99]);
  cases.push(['ties at the k-th are kept', [3, 2, 2, 2, 1, 0], 1, 2, 1]);

  it.each(cases)('matches the HF warpers: %s', async (_name, logits, T, k, p) => {
    const want = hfReference(logits, T, k, p);
    const got = samplingDistribution(logits, { temperature: T, topK: k, topP: p });
    expect(new Set(got.ids)).toEqual(new Set(want.keys()));
    let d = 0;
    got.ids.forEach((id, j) => (d = Math.max(d, Math.abs(got.probs[j]! - want.get(id)!))));
    if (!(d < 1e-9)) console.log(`max prob diff ${d}`);
    expect(d).toBeLessThan(1e-9);
    for (let j = 1; j < got.ids.length; j++) expect(got.probs[j]!).toBeLessThanOrEqual(got.probs[j - 1]!); // most likely first
  });

  it('top-p keeps the smallest set reaching p: [0.5, 0.3, 0.2] at 0.6 keeps two, at 0.4 one', async () => {
    const logits = [0.5, 0.3, 0.2].map(Math.log);
    expect(samplingDistribution(logits, { temperature: 1, topP: 0.6 }).ids).toEqual([0, 1]);
    expect(samplingDistribution(logits, { temperature: 1, topP: 0.4 }).ids).toEqual([0]);
    const d = samplingDistribution(logits, { temperature: 1, topP: 0.6 });
    expect(d.probs[0]).toBeCloseTo(0.625, 12);
  });

  it('sampleToken draws with the distribution frequencies; greedy breaks ties at the lowest id', async () => {
    const r = new Rng(5);
    const logits = [0.5, 0.3, 0.2].map(Math.log);
    const counts = [0, 0, 0];
    for (let i = 0; i < 4000; i++) counts[sampleToken(logits, { temperature: 1 }, r)]!++;
    counts.forEach((c, i) => expect(Math.abs(c / 4000 - [0.5, 0.3, 0.2][i]!)).toBeLessThan(0.03));
    expect(sampleToken([1, 4, 4, 2], { temperature: 0 }, r)).toBe(1);
  });
});

describe('generateText', () => {
  it('decodes greedy tokens, adds BOS once, and matches generate on the encoded prompt', async () => {
    const tok = tiny.tokenizer;
    const prompt = 'def add(a, b):\n';
    const [res] = await generateText(tiny, null, [prompt], { maxNewTokens: 5, temperature: 0, seed: 0, stopIds: [] });
    const ids = [tok.bosId!, ...tok.encode(prompt, { addSpecialTokens: false })];
    const direct = await generate(tiny.cfg, tiny.weights, null, [ids], greedy({ maxNewTokens: 5 }));
    expect(res!.text).toBe(tok.decode(direct.tokens[0]!, { skipSpecialTokens: true }));
    expect(res!.finishReason).toBe('length');
    // A prompt that already starts with BOS (a rendered chat template) gets no second one.
    const withBos = tok.decode([tok.bosId!]) + prompt;
    const [again] = await generateText(tiny, null, [withBos], { maxNewTokens: 5, temperature: 0, seed: 0, stopIds: [] });
    expect(again).toEqual(res);
  });

  it('stops a row at a stop sequence, cut at its first occurrence', async () => {
    const prompts = ['def add(a, b):\n', 'x'];
    const free = await generateText(tiny, null, prompts, { maxNewTokens: 16, temperature: 0, seed: 0, stopIds: [] });
    // A stop sequence that occurs in row 0's free text: its 3 characters starting at the 2nd.
    const text0 = free[0]!.text;
    expect(text0.length).toBeGreaterThan(4);
    const stop = text0.slice(1, 4);
    const res = await generateText(tiny, null, prompts, { maxNewTokens: 16, temperature: 0, seed: 0, stopIds: [], stopSequences: [stop] });
    free.forEach((f, b) => {
      const at = firstStopIndex(f.text, [stop]);
      expect(res[b]!.text).toBe(at >= 0 ? f.text.slice(0, at) : f.text);
      expect(res[b]!.finishReason).toBe(at >= 0 ? 'stop' : 'length');
    });
    // Alone, row 0 stops generating as soon as its text holds the stop sequence: well before 16 steps.
    let steps = 0;
    const [alone] = await generateText(tiny, null, [prompts[0]!], { maxNewTokens: 16, temperature: 0, seed: 0, stopIds: [], stopSequences: [stop] }, () => steps++);
    expect(alone).toEqual(res[0]);
    expect(steps).toBeLessThan(16);
  });

  it('uses the tokenizer stop ids by default: a stop id ends the row', async () => {
    const tok = tiny.tokenizer;
    expect(tok.stopIds.length).toBeGreaterThan(0);
    const before = tf.memory().numTensors;
    // The greedy continuation of 'a' without any stop id: its first token becomes the tokenizer's only stop id below.
    const free = await generate(tiny.cfg, tiny.weights, null, [[tok.bosId!, ...tok.encode('a', { addSpecialTokens: false })]], { maxNewTokens: 4, temperature: 0, seed: 0, stopIds: [] });
    expect(free.finishReason[0]).toBe('length');
    const first = free.tokens[0]![0]!;
    const codec = { encode: tok.encode.bind(tok), decode: tok.decode.bind(tok), bosId: tok.bosId, stopIds: [first] };
    const [stopped] = await generateText({ ...tiny, tokenizer: codec }, null, ['a'], { maxNewTokens: 4, temperature: 0, seed: 0 });
    expect(stopped).toEqual({ text: '', finishReason: 'stop' });
    // The same call with a stop id the row never produces runs to the length limit.
    const other = tok.stopIds.find((id) => !free.tokens[0]!.includes(id));
    if (other !== undefined) {
      const [ran] = await generateText({ ...tiny, tokenizer: { ...codec, stopIds: [other] } }, null, ['a'], { maxNewTokens: 4, temperature: 0, seed: 0 });
      expect(ran.finishReason).toBe('length');
    }
    expect(tf.memory().numTensors).toBe(before);
  });
});

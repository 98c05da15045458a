// Generation on the device (issue 14 item 2): chooseTokens against the host reference (samplingDistribution's inverse
// CDF in float64), the transfers of a generate call (one read of B ids per step, no sync read) and of scoring, and
// incremental detokenization with stop sequences looked for in the new text only.
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { computePairLogps } from '../../src/dpo/reference.js';
import { disposeModel, loadModel, type LoadedModel } from '../../src/io/model-dir.js';
import { writeTinyModel } from '../../src/io/tiny-model.js';
import { chooseTokens, firstStopIndex, generate, IncrementalText, samplingDistribution, stopInNewText } from '../../src/model/generate.js';
import { Rng } from '../../src/util/rng.js';

let dir: string;
let tiny: LoadedModel;
beforeAll(async () => {
  await tf.setBackend('cpu');
  dir = mkdtempSync(join(tmpdir(), 'gen-device-'));
  await writeTinyModel(join(dir, 'tiny'), { seed: 3 });
  tiny = await loadModel(join(dir, 'tiny'));
});
afterAll(() => {
  disposeModel(tiny);
  rmSync(dir, { recursive: true, force: true });
});

/** The host reference draw with a given u: walk samplingDistribution's order; also how close u is to a boundary. */
function hostPick(logits: number[], o: { temperature: number; topP?: number; topK?: number }, u: number): { id: number; margin: number } {
  const { ids, probs } = samplingDistribution(logits, o);
  let c = 0;
  for (let j = 0; j < ids.length; j++) {
    const next = c + probs[j];
    if (u < next) return { id: ids[j], margin: Math.min(u - c, next - u) };
    c = next;
  }
  return { id: ids[ids.length - 1], margin: 0 };
}

describe('chooseTokens', () => {
  const rng = new Rng(5);
  const V = 40;
  const rows = Array.from({ length: 3 }, () => Array.from({ length: V }, () => rng.normal(0, 2)));
  const cases: [string, { temperature: number; topP?: number; topK?: number }][] = [
    ['T 0.8, no filter', { temperature: 0.8 }],
    ['top-k 5', { temperature: 1, topK: 5 }],
    ['top-p 0.7', { temperature: 1.2, topP: 0.7 }],
    ['top-k 10, top-p 0.5, T 0.7', { temperature: 0.7, topK: 10, topP: 0.5 }],
  ];

  it.each(cases)('picks what the host inverse CDF picks for a grid of uniforms: %s', (_n, o) => {
    const us = Array.from({ length: 200 }, (_, i) => (i + 0.5) / 200);
    const logits = tf.tensor2d(rows.flatMap((r) => us.map(() => r)), [rows.length * us.length, V]);
    const u = tf.tensor1d(rows.flatMap(() => us));
    const got = chooseTokens(logits, o, u).dataSync();
    let checked = 0;
    rows.forEach((r, b) => us.forEach((x, i) => {
      const want = hostPick(r, o, x);
      // float32 on the device against float64 on the host: only a u within 1e-5 of a CDF boundary may differ.
      if (want.margin < 1e-5) return;
      checked++;
      expect(got[b * us.length + i], `row ${b} u ${x}`).toBe(want.id);
    }));
    expect(checked).toBeGreaterThan(550);
    tf.dispose([logits, u]);
  });

  it('greedy is the argmax with the lowest id on ties, and draws no uniform', () => {
    const t = tf.tensor2d([[1, 4, 4, 2], [0, -1, 3, 3]]);
    expect(Array.from(chooseTokens(t, { temperature: 0 }, null).dataSync())).toEqual([1, 2]);
    t.dispose();
  });
});

/** Counts engine-level transfers while `f` runs (see test/train/hostwork.test.ts for why the engine, not the backend). */
async function transfers<T>(f: () => Promise<T>): Promise<{ result: T; syncReads: number; reads: number; uploads: number }> {
  const engine = tf.engine() as unknown as Record<string, (...a: unknown[]) => unknown>;
  const orig = { makeTensor: engine.makeTensor, readSync: engine.readSync, read: engine.read };
  const c = { syncReads: 0, reads: 0, uploads: 0 };
  engine.makeTensor = function (this: unknown, ...a: unknown[]) { c.uploads++; return orig.makeTensor.apply(this, a); };
  engine.readSync = function (this: unknown, ...a: unknown[]) { c.syncReads++; return orig.readSync.apply(this, a); };
  engine.read = function (this: unknown, ...a: unknown[]) { c.reads++; return orig.read.apply(this, a); };
  try {
    const result = await f();
    return { result, ...c };
  } finally {
    Object.assign(engine, orig);
  }
}

describe('transfers', () => {
  it('generate reads B ids once per step and never synchronously, greedy and sampled', async () => {
    const prompts = [[1, 5, 9], [1, 7]];
    for (const o of [{ temperature: 0 }, { temperature: 1, topP: 0.9, topK: 20 }]) {
      const t = await transfers(() => generate(tiny.cfg, tiny.weights, null, prompts, { ...o, maxNewTokens: 6, stopIds: [], seed: 1 }));
      expect(t.syncReads).toBe(0);
      expect(t.reads).toBe(6); // 6 steps, one read of [B] ids each
      expect(t.result.tokens.map((r) => r.length)).toEqual([6, 6]);
    }
  });

  it('scoring (computePairLogps) reads each batch once, never synchronously', async () => {
    const pairs = [
      { promptIds: [1, 5, 6], chosenIds: [7, 8, 2], rejectedIds: [9, 2] },
      { promptIds: [1, 4], chosenIds: [3, 2], rejectedIds: [10, 11, 12, 2] },
      { promptIds: [1, 6, 6, 6], chosenIds: [2], rejectedIds: [5, 2] },
    ];
    const t = await transfers(() => computePairLogps(tiny.cfg, tiny.weights, pairs, tiny.tokenizer.padId, 2, null));
    expect(t.syncReads).toBe(0);
    expect(t.reads).toBe(2);
  });
});

describe('incremental detokenization', () => {
  it('the pieces add up to decoding the whole row, multi-byte characters included', () => {
    const tok = tiny.tokenizer;
    const decode = (ids: number[]) => tok.decode(ids, { skipSpecialTokens: true });
    for (const text of ['def f(x):\n    return x + 1\n', 'naïve café — ok ✓ 日本', '  spaced   out\t\ttabs']) {
      const ids = tok.encode(text, { addSpecialTokens: false });
      const inc = new IncrementalText(decode);
      let joined = '';
      for (let i = 1; i <= ids.length; i++) joined += inc.push(ids.slice(0, i));
      expect(joined).toBe(decode(ids));
      expect(inc.text).toBe(decode(ids));
    }
  });

  it('stopInNewText finds a stop sequence only where it ends in the new text, across a piece boundary too', () => {
    expect(stopInNewText('abc\ndef', 3, ['\nd'])).toBe(true); // '\nd' straddles old 'abc\n' and new 'def'
    expect(stopInNewText('abc\ndef', 2, ['\nd'])).toBe(false); // it ended before the new 'ef'
    expect(stopInNewText('xx\nclass', 5, ['\nclass', '\nif'])).toBe(true);
    expect(stopInNewText('abc', 1, [''])).toBe(false);
    // Fed one character at a time, it fires exactly where a stop sequence ends; the first firing is where
    // firstStopIndex (which searches the whole text) first finds one.
    const text = 'a = 1\nprint(a)\nif x:\n';
    const stops = ['\nif', '\nprint'];
    let seen = '';
    let first = -1;
    for (const ch of text) {
      seen += ch;
      const hit = stopInNewText(seen, 1, stops);
      expect(hit).toBe(stops.some((s) => seen.endsWith(s)));
      if (hit && first < 0) first = seen.length;
    }
    expect(first).toBe(firstStopIndex(text, stops) + '\nprint'.length);
  });
});

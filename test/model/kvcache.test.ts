// KV cache: incremental forward equals the full forward (left-padded prompts of different lengths, chunked steps),
// the cache is unchanged by a failed step, and dispose frees every tensor.
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LlamaConfig } from '../../src/config/llama.js';
import { createKVCache } from '../../src/model/kvcache.js';
import { forwardHidden, forwardLogits, headLogits } from '../../src/model/llama.js';
import type { Weights } from '../../src/model/llama.js';
import { disposeWeights, loadModel, maxAbsDiff, readFixture } from './fixture.js';
import type { ModelFixture } from './fixture.js';

let cfg: LlamaConfig;
let w: Weights;

beforeAll(async () => {
  await tf.setBackend('cpu');
  ({ cfg, w } = loadModel(readFixture<ModelFixture>('base.json')));
});

afterAll(() => disposeWeights(w));

// Three prompts of lengths 5, 2 and 3, left-padded to 5 with a junk id, then 4 generated tokens each.
const PAD = 9;
const prompts = [[11, 12, 13, 14, 15], [21, 22], [31, 32, 33]];
const generated = [[41, 42, 43, 44], [51, 52, 53, 54], [61, 62, 63, 64]];
const P = 5;
const ids = prompts.map((p, b) => [...Array(P - p.length).fill(PAD), ...p, ...generated[b]!]);
const mask = prompts.map((p) => [...Array(P - p.length).fill(0), ...Array(P + 4 - (P - p.length)).fill(1)]);

function cols(rows: number[][], from: number, to: number): number[][] {
  return rows.map((r) => r.slice(from, to));
}

/** Logits of slots [from, to) fed through the cache in steps of the given sizes. */
function incremental(steps: number[]): number[][][] {
  const cache = createKVCache(cfg, 3, P + 4);
  const out: number[][][] = [[], [], []];
  let at = 0;
  try {
    for (const n of steps) {
      const logits = tf.tidy(() => {
        const h = forwardHidden(cfg, w, tf.tensor2d(cols(ids, at, at + n), undefined, 'int32'), tf.tensor2d(cols(mask, at, at + n)), { cache });
        return headLogits(cfg, w, h).arraySync() as number[][][];
      });
      logits.forEach((rows, b) => out[b]!.push(...rows));
      at += n;
      expect(cache.length).toBe(at);
    }
  } finally {
    cache.dispose();
  }
  return out;
}

describe('KV cache', () => {
  const full = () => tf.tidy(() => forwardLogits(cfg, w, tf.tensor2d(ids, undefined, 'int32'), tf.tensor2d(mask)).arraySync());

  it.each([
    ['prefill 5 then one token at a time', [5, 1, 1, 1, 1]],
    ['token by token from the first slot', [1, 1, 1, 1, 1, 1, 1, 1, 1]],
    ['uneven chunks', [2, 4, 3]],
  ])('%s equals the full forward at every token slot', (_name, steps) => {
    const want = full();
    const got = incremental(steps);
    for (let b = 0; b < 3; b++) {
      for (let t = 0; t < P + 4; t++) {
        if (mask[b]![t] === 0) continue; // a pad's output is unused
        const d = maxAbsDiff(got[b]![t]!, want[b]![t]!);
        if (!(d < 1e-4)) console.log(`row ${b} slot ${t}: max abs diff ${d}`);
        expect(d).toBeLessThan(1e-4);
      }
    }
  });

  it('a left-padded row generates as the same row alone without padding', () => {
    const got = incremental([5, 1, 1, 1, 1]);
    const alone = tf.tidy(() => {
      const row = [...prompts[1]!, ...generated[1]!];
      return forwardLogits(cfg, w, tf.tensor2d([row], undefined, 'int32'), tf.ones([1, row.length]) as tf.Tensor2D).arraySync()[0]!;
    });
    const d = maxAbsDiff(got[1]!.slice(3).flat(), alone.flat());
    if (!(d < 1e-4)) console.log(`max abs diff ${d}`);
    expect(d).toBeLessThan(1e-4);
  });

  it('is unchanged by a rejected step, refuses overflow and use after dispose, and frees everything', () => {
    const before = tf.memory().numTensors;
    const cache = createKVCache(cfg, 3, 6);
    const step = (n: number, B = 3) =>
      tf.tidy(() => {
        forwardHidden(cfg, w, tf.zeros([B, n], 'int32') as tf.Tensor2D, tf.ones([B, n]) as tf.Tensor2D, { cache });
      });
    step(4);
    expect(cache.length).toBe(4);
    expect(cache.keys[0]!.shape).toEqual([3, cfg.numKvHeads, 4, cfg.headDim]);
    expect(() => step(3)).toThrow(/maxLen=6/);
    expect(() => step(1, 2)).toThrow(/batch 2/);
    const partial = { ...w };
    delete partial['model.layers.1.self_attn.v_proj.weight'];
    expect(() =>
      tf.tidy(() => {
        forwardHidden(cfg, partial, tf.zeros([3, 1], 'int32') as tf.Tensor2D, tf.ones([3, 1]) as tf.Tensor2D, { cache });
      }),
    ).toThrow(/v_proj\.weight: missing/);
    expect(cache.length).toBe(4);
    expect(cache.keys[0]!.shape[2]).toBe(4);
    step(2);
    expect(cache.length).toBe(6);
    cache.dispose();
    expect(tf.memory().numTensors).toBe(before);
    expect(() => step(1)).toThrow(/after dispose/);
  });
});

// computePairLogps: results come back in input order and do not depend on batch size, order or padding neighbours;
// each value equals the pair scored alone through sequenceLogprobs; no tensors leak.
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LlamaConfig } from '../../src/config/llama.js';
import { computePairLogps } from '../../src/dpo/reference.js';
import type { PairLogpTable } from '../../src/dpo/reference.js';
import { sequenceLogprobs } from '../../src/dpo/logprobs.js';
import type { Weights } from '../../src/model/llama.js';
import { createLora, disposeLora } from '../../src/model/lora.js';
import type { TokenizedPair } from '../../src/tokenizer/pair.js';
import { disposeWeights, loadModel, maxAbsDiff, readFixture } from '../model/fixture.js';
import type { ModelFixture } from '../model/fixture.js';

let cfg: LlamaConfig;
let w: Weights;
const PAD = 0;

// Nine pairs with varied prompt and completion lengths (ids in 3..95; 1 = BOS, 2 = EOS as in the fixture config).
const PAIRS: TokenizedPair[] = (() => {
  let s = 7;
  const next = (n: number) => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s % n;
  };
  const seq = (len: number) => Array.from({ length: len }, () => 3 + next(93));
  const shapes = [[3, 2, 5], [1, 1, 1], [6, 4, 2], [2, 7, 3], [4, 3, 3], [1, 5, 1], [5, 1, 6], [2, 2, 2], [3, 6, 4]];
  return shapes.map(([p, c, r]) => ({ promptIds: [1, ...seq(p! - 1)], chosenIds: [...seq(c! - 1), 2], rejectedIds: [...seq(r! - 1), 2], truncated: false }));
})();

beforeAll(async () => {
  await tf.setBackend('cpu');
  ({ cfg, w } = loadModel(readFixture<ModelFixture>('base.json')));
});

afterAll(() => disposeWeights(w));

function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string): void {
  const d = maxAbsDiff(got, want);
  if (!(d <= tol)) console.log(`${what}: max abs diff ${d} (tol ${tol})`);
  expect(d).toBeLessThanOrEqual(tol);
}

/** One row scored alone, no padding at all. */
function alone(prompt: number[], completion: number[]): number {
  const ids = [...prompt, ...completion];
  return tf.tidy(() =>
    sequenceLogprobs(
      cfg, w,
      tf.tensor2d([ids], undefined, 'int32'),
      tf.ones([1, ids.length]) as tf.Tensor2D,
      tf.tensor2d([ids.map((_, t) => (t >= prompt.length ? 1 : 0))]),
    ).dataSync()[0]!,
  );
}

describe('computePairLogps', () => {
  let all: PairLogpTable;

  it('equals each pair scored alone (no padding), in input order, with token counts', async () => {
    all = await computePairLogps(cfg, w, PAIRS, PAD, PAIRS.length, null);
    const wantC = PAIRS.map((p) => alone(p.promptIds, p.chosenIds));
    const wantR = PAIRS.map((p) => alone(p.promptIds, p.rejectedIds));
    expectClose(all.chosen, wantC, 1e-4, 'chosen vs alone');
    expectClose(all.rejected, wantR, 1e-4, 'rejected vs alone');
    expect(Array.from(all.chosenTokens)).toEqual(PAIRS.map((p) => p.chosenIds.length));
    expect(Array.from(all.rejectedTokens)).toEqual(PAIRS.map((p) => p.rejectedIds.length));
    expect(Array.from(all.chosen).every((x) => Number.isFinite(x) && x < 0)).toBe(true);
  });

  it.each([1, 2, 4])('batch size %s gives the same table as one batch of all', async (bs) => {
    const calls: number[] = [];
    const t = await computePairLogps(cfg, w, PAIRS, PAD, bs, null, (d) => calls.push(d));
    expectClose(t.chosen, all.chosen, 1e-5, `chosen bs ${bs}`);
    expectClose(t.rejected, all.rejected, 1e-5, `rejected bs ${bs}`);
    expect(Array.from(t.chosenTokens)).toEqual(Array.from(all.chosenTokens));
    expect(Array.from(t.rejectedTokens)).toEqual(Array.from(all.rejectedTokens));
    // Progress is reported per batch, increasing, ending at n.
    expect(calls.length).toBe(Math.ceil(PAIRS.length / bs));
    expect(calls[calls.length - 1]).toBe(PAIRS.length);
    expect(calls.every((c, i) => i === 0 || c > calls[i - 1]!)).toBe(true);
  });

  it('a permuted input gives the permuted table', async () => {
    const perm = [4, 8, 0, 6, 2, 7, 1, 5, 3];
    const t = await computePairLogps(cfg, w, perm.map((i) => PAIRS[i]!), PAD, 4, null);
    expectClose(t.chosen, perm.map((i) => all.chosen[i]!), 1e-5, 'permuted chosen');
    expectClose(t.rejected, perm.map((i) => all.rejected[i]!), 1e-5, 'permuted rejected');
    expect(Array.from(t.chosenTokens)).toEqual(perm.map((i) => all.chosenTokens[i]));
  });

  it('a fresh LoRA (B = 0) and a disabled one give the base values; nothing leaks', async () => {
    const lora = createLora(cfg, { r: 2, alpha: 4, dropout: 0, targets: ['q_proj', 'v_proj'], useRslora: false }, 1);
    try {
      const before = tf.memory().numTensors;
      const fresh = await computePairLogps(cfg, w, PAIRS, PAD, 3, lora);
      expectClose(fresh.chosen, all.chosen, 1e-5, 'fresh lora');
      lora.enabled = false;
      const off = await computePairLogps(cfg, w, PAIRS, PAD, 3, lora);
      expect(maxAbsDiff(off.chosen, (await computePairLogps(cfg, w, PAIRS, PAD, 3, null)).chosen)).toBe(0);
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      disposeLora(lora);
    }
  });
});

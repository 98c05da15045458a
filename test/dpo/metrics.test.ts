// TRL 1.x's logits/chosen, logits/rejected and mean_token_accuracy (issue 13 item 7). Golden values come from the
// fixtures' float64 numpy logits (scripts/reference/make_fixtures.py), reduced here as TRL 1.x DPOTrainer.compute_loss
// reduces them (huggingface/trl trl/trainer/dpo_trainer.py, the "Average logits for chosen and rejected completions" and
// "Token accuracy for the chosen completions" blocks): per completion token the mean over the vocabulary of the shifted
// logits, summed and divided by the completion tokens; argmax == label over the chosen completion tokens.
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LlamaConfig } from '../../src/config/llama.js';
import { dpoObjective } from '../../src/dpo/objective.js';
import { statsFromHidden } from '../../src/dpo/logprobs.js';
import { forwardHidden, type Weights } from '../../src/model/llama.js';
import { windowMean } from '../../src/train/hooks.js';
import type { HostValues } from '../../src/train/objective.js';
import { disposeWeights, loadModel, readFixture } from '../model/fixture.js';
import type { ModelCase, ModelFixture } from '../model/fixture.js';

let base: ModelFixture;
let cfg: LlamaConfig;
let w: Weights;
beforeAll(async () => {
  await tf.setBackend('cpu');
  base = readFixture<ModelFixture>('base.json');
  ({ cfg, w } = loadModel(base));
});
afterAll(() => disposeWeights(w));

/** TRL's per-row sums from float64 logits: sum of mean_v z_t and of [argmax z_t == id_{t+1}] over completion tokens. */
function trlSums(c: ModelCase): { logitSums: number[]; correct: number[]; tokens: number[]; nearTie: boolean } {
  let nearTie = false;
  const out = { logitSums: [] as number[], correct: [] as number[], tokens: [] as number[] };
  c.input_ids.forEach((row, b) => {
    let s = 0, hit = 0, n = 0;
    for (let t = 0; t + 1 < row.length; t++) {
      const masked = t + 1 >= c.completion_start[b] && c.attention_mask[b][t + 1] === 1;
      if (!masked) continue;
      const z = c.expected_logits[b][t];
      s += z.reduce((a, x) => a + x, 0) / z.length;
      const sorted = [...z].sort((x, y) => y - x);
      if (sorted[0] - sorted[1] < 1e-4) nearTie = true;
      hit += z.indexOf(sorted[0]) === row[t + 1] ? 1 : 0;
      n += 1;
    }
    out.logitSums.push(s);
    out.correct.push(hit);
    out.tokens.push(n);
  });
  return { ...out, nearTie };
}

describe('logits/* and mean_token_accuracy', () => {
  it('the kernel sums equal TRL reductions of the numpy float64 logits (fixture base)', () => {
    const c = base as ModelCase;
    const want = trlSums(c);
    expect(want.nearTie).toBe(false); // else argmax could differ by float32 rounding
    const mask = c.input_ids.map((row, b) => row.map((_, t) => (t >= c.completion_start[b] && c.attention_mask[b][t] === 1 ? 1 : 0)));
    tf.tidy(() => {
      const ids = tf.tensor2d(c.input_ids, undefined, 'int32');
      const h = forwardHidden(cfg, w, ids, tf.tensor2d(c.attention_mask));
      const s = statsFromHidden(cfg, w, h, ids, tf.tensor2d(mask), 3);
      const got = Array.from(s.logitSums.dataSync());
      const d = Math.max(...got.map((x, i) => Math.abs(x - want.logitSums[i])));
      if (d > 1e-4) console.log(`logit sums: got ${got} want ${want.logitSums}`);
      expect(d).toBeLessThan(1e-4);
      expect(Array.from(s.correct.dataSync())).toEqual(want.correct);
    });
  });

  it('readout: token-weighted over the step, accuracy over chosen tokens only, 0 without tokens (TRL)', () => {
    const obj = dpoObjective(cfg, w, 0, () => ({ chosen: new Float32Array(0), rejected: new Float32Array(0) }), { loss: 'sigmoid', beta: 0.1, labelSmoothing: 0 });
    const host = (x: number[]) => { const a = Float32Array.from(x); return Object.assign(a, { dataSync: () => a }); };
    const v: HostValues = {
      losses: host([0.5, 0.7]), chosenRewards: host([0.1, -0.2]), rejectedRewards: host([0, 0.1]), policyChosen: host([-3, -5]), policyRejected: host([-4, -6]),
      chosenLogitSums: host([1.5, -0.25]), rejectedLogitSums: host([2, 4]), chosenCorrect: host([1, 2]), chosenTokens: host([3, 1]), rejectedTokens: host([2, 6]),
    };
    const m = obj.readout(v).metrics;
    expect(m['logits/chosen']).toBeCloseTo((1.5 - 0.25) / 4, 12);
    expect(m['logits/rejected']).toBeCloseTo(6 / 8, 12);
    expect(m.mean_token_accuracy).toBeCloseTo(3 / 4, 12);
    expect(m['rewards/accuracies']).toBe(0.5);
    const none = obj.readout({ ...v, chosenTokens: host([0, 0]), rejectedTokens: host([0, 0]) }).metrics;
    expect([none['logits/chosen'], none['logits/rejected'], none.mean_token_accuracy]).toEqual([0, 0, 0]);
  });

  it('windowMean: metrics averaged over the window (HF tr_loss / steps, TRL sum(val) / len(val)); step-level keys last', () => {
    const lines = [
      { loss: 0.6, 'logits/chosen': 1, mean_token_accuracy: 0.5, grad_norm: 3, learning_rate: 1e-3, num_tokens: 100, epoch: 0.25, step: 1 },
      { loss: 0.5, 'logits/chosen': 2, mean_token_accuracy: 0.25, grad_norm: 2, learning_rate: 2e-3, num_tokens: 180, epoch: 0.5, step: 2 },
      { loss: 0.1, 'logits/chosen': 6, mean_token_accuracy: 0, grad_norm: 1, learning_rate: 3e-3, num_tokens: 300, epoch: 0.75, step: 3 },
    ];
    expect(windowMean(lines)).toEqual({
      loss: (0.6 + 0.5 + 0.1) / 3, 'logits/chosen': 3, mean_token_accuracy: 0.25, grad_norm: 1, learning_rate: 3e-3, num_tokens: 300, epoch: 0.75, step: 3,
    });
  });
});

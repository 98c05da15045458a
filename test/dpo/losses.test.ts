// DPO losses against float64 values and finite differences from scripts/reference/losses_ref.py
// (test/fixtures/dpo/losses.json, transcribed from TRL 1.x trl/trainer/dpo_trainer.py `_compute_loss`), plus hand
// checks: ln 2 at step 0, the hinge kink, rewards beta (pi - ref), no gradient through rewards, no tensor leaks,
// and the --loss / --loss-weights parser.
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { LOSS_NAMES, dpoLoss, needsLengths, parseLossTerms, type LossSettings, type LossType, type PairLogps } from '../../src/dpo/losses.js';
import { InputError } from '../../src/util/errors.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

interface LossCase {
  loss: string;
  weights: number[];
  beta: number;
  label_smoothing: number;
  discopop_tau: number;
  losses: number[];
  grad_policy_chosen: number[];
  grad_policy_rejected: number[];
  grad_ref_chosen: number[];
  grad_ref_rejected: number[];
}
interface LossFixture {
  policy_chosen: number[];
  policy_rejected: number[];
  ref_chosen: number[];
  ref_rejected: number[];
  chosen_lengths: number[];
  rejected_lengths: number[];
  cases: LossCase[];
}
const fx = JSON.parse(readFileSync(fileURLToPath(new URL('../fixtures/dpo/losses.json', import.meta.url)), 'utf8')) as LossFixture;

const vectors = (): [number[], number[], number[], number[]] => [fx.policy_chosen, fx.policy_rejected, fx.ref_chosen, fx.ref_rejected];
const settings = (c: LossCase): LossSettings => ({
  terms: c.loss.split(',').map((type, i) => ({ type: type as LossType, weight: c.weights[i] })),
  beta: c.beta, labelSmoothing: c.label_smoothing, discopopTau: c.discopop_tau,
});
function logps(v: tf.Tensor1D[] = vectors().map((x) => tf.tensor1d(x))): PairLogps {
  return { policyChosen: v[0], policyRejected: v[1], refChosen: v[2], refRejected: v[3],
    chosenLengths: tf.tensor1d(fx.chosen_lengths), rejectedLengths: tf.tensor1d(fx.rejected_lengths) };
}

function expectClose(got: ArrayLike<number>, want: number[], rel: number, abs: number, what: string): void {
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]) - rel * Math.abs(want[i]) - abs);
  if (worst > 0) console.log(`${what}: exceeds tolerance by ${worst}\n got  ${Array.from(got)}\n want ${want}`);
  expect(got.length).toBe(want.length);
  expect(worst).toBeLessThanOrEqual(0);
}

describe('dpoLoss vs float64 TRL formulas (scripts/reference/losses_ref.py)', () => {
  it('the fixture covers every loss name, and its deltas span zero, small and large margins', () => {
    const covered = new Set(fx.cases.flatMap((c) => c.loss.split(',')));
    expect([...covered].sort()).toEqual([...LOSS_NAMES].sort());
    const d = fx.policy_chosen.map((_, i) => fx.policy_chosen[i] - fx.ref_chosen[i] - (fx.policy_rejected[i] - fx.ref_rejected[i]));
    expect(d).toEqual([0, 0, 5, -25, 1.75, -4]);
  });

  for (const c of fx.cases) {
    it(`${c.loss} (weights ${c.weights}, beta ${c.beta}, eps ${c.label_smoothing}): per-pair values and gradients of the mean`, () => {
      const got = tf.tidy(() => Array.from(dpoLoss(logps(), settings(c)).losses.dataSync()));
      expectClose(got, c.losses, 2e-5, 1e-6, `${c.loss} values`);
      const grads = tf.tidy(() => {
        // The zero term connects every input, so tf.grads also reports the zeros of a loss that ignores one (sft).
        const f = (a: tf.Tensor, b: tf.Tensor, r1: tf.Tensor, r2: tf.Tensor) =>
          tf.add(tf.mean(dpoLoss(logps([a, b, r1, r2] as tf.Tensor1D[]), settings(c)).losses), tf.mul(0, tf.addN([a, b, r1, r2].map((x) => tf.sum(x)))));
        return tf.grads(f)(vectors().map((x) => tf.tensor1d(x))).map((g) => Array.from(g.dataSync()));
      });
      const want = [c.grad_policy_chosen, c.grad_policy_rejected, c.grad_ref_chosen, c.grad_ref_rejected];
      const scale = Math.max(...want.flat().map(Math.abs));
      ['policy chosen', 'policy rejected', 'ref chosen', 'ref rejected'].forEach((name, k) =>
        expectClose(grads[k], want[k], 1e-4, 1e-6 * scale, `${c.loss} d/d ${name} vs FD`));
    });
  }
});

describe('dpoLoss by hand', () => {
  const one = (type: LossType, beta: number, l: PairLogps, eps = 0) => tf.tidy(() => Array.from(dpoLoss(l, { terms: [{ type, weight: 1 }], beta, labelSmoothing: eps }).losses.dataSync()));

  it('policy = reference (step 0): sigmoid, robust and cdpo are ln 2; ipo 1/(4 beta^2); hinge 1', () => {
    const v = tf.tensor1d([-3.5, -120.25, 0]);
    const u = tf.tensor1d([-9, -1e-3, -77]);
    const l: PairLogps = { policyChosen: v, policyRejected: u, refChosen: v, refRejected: u, chosenLengths: tf.tensor1d([1, 2, 3]), rejectedLengths: tf.tensor1d([3, 2, 1]) };
    for (const [type, eps] of [['sigmoid', 0], ['robust', 0.2], ['cdpo', 0.2], ['sigmoid_norm', 0]] as const) {
      for (const x of one(type, 0.1, l, eps)) expect(Math.abs(x - Math.LN2)).toBeLessThan(1e-6);
    }
    for (const x of one('ipo', 0.1, l)) expect(x).toBeCloseTo(25, 4);
    expect(one('hinge', 0.1, l)).toEqual([1, 1, 1]);
    tf.dispose(Object.values(l));
  });

  it('rewards are beta (pi - ref) on summed log-probs for every loss (also the length-normalized ones)', () => {
    for (const type of LOSS_NAMES) {
      const beta = 0.2;
      const [rc, rr] = tf.tidy(() => {
        const out = dpoLoss(logps(), { terms: [{ type, weight: 1 }], beta, labelSmoothing: type === 'exo_pair' ? 0.1 : 0 });
        return [Array.from(out.chosenRewards.dataSync()), Array.from(out.rejectedRewards.dataSync())];
      });
      expectClose(rc, fx.policy_chosen.map((p, i) => beta * (p - fx.ref_chosen[i])), 1e-6, 1e-6, `${type} chosen rewards`);
      expectClose(rr, fx.policy_rejected.map((p, i) => beta * (p - fx.ref_rejected[i])), 1e-6, 1e-6, `${type} rejected rewards`);
    }
  });

  it('rewards carry no gradient, and dpoLoss leaks no tensors', () => {
    const l = logps();
    const before = tf.memory().numTensors;
    const s: LossSettings = { terms: [{ type: 'sigmoid', weight: 1 }, { type: 'sft', weight: 0.5 }], beta: 0.1 };
    const g = tf.grad((pc: tf.Tensor) => tf.sum(dpoLoss({ ...l, policyChosen: pc as tf.Tensor1D }, s).chosenRewards))(l.policyChosen);
    expect(Array.from(g.dataSync())).toEqual(fx.policy_chosen.map(() => 0));
    g.dispose();
    for (let i = 0; i < 3; i++) {
      const out = dpoLoss(l, s);
      tf.dispose([out.losses, out.chosenRewards, out.rejectedRewards]);
    }
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose(Object.values(l));
  });

  it('a length-normalized loss without lengths is an error, not a silent sum', () => {
    const l = logps();
    const { chosenLengths: _, rejectedLengths: __, ...bare } = l;
    expect(() => dpoLoss(bare, { terms: [{ type: 'ipo', weight: 1 }], beta: 0.1 })).toThrow(/ipo needs chosenLengths/);
    tf.dispose(Object.values(l));
  });
});

describe('parseLossTerms (--loss, --loss-weights, --label-smoothing)', () => {
  it('parses a single loss and a weighted list (TRL loss_type list + loss_weights, default 1 each)', () => {
    expect(parseLossTerms('sigmoid', null)).toEqual([{ type: 'sigmoid', weight: 1 }]);
    expect(parseLossTerms('sigmoid,sft', '1,0.5')).toEqual([{ type: 'sigmoid', weight: 1 }, { type: 'sft', weight: 0.5 }]);
    expect(parseLossTerms('sigmoid, sft', null)).toEqual([{ type: 'sigmoid', weight: 1 }, { type: 'sft', weight: 1 }]);
    expect(parseLossTerms('robust', null, 0.1)).toEqual([{ type: 'robust', weight: 1 }]);
    expect(needsLengths(parseLossTerms('sigmoid,sft', null))).toBe(true);
    expect(needsLengths(parseLossTerms('hinge', null))).toBe(false);
  });

  it('refuses unknown names, repeats, wrong weight counts and label smoothing that no loss reads', () => {
    expect(() => parseLossTerms('dpo', null)).toThrow(InputError);
    expect(() => parseLossTerms('dpo', null)).toThrow(/--loss: "dpo" \(expected one of sigmoid\|hinge/);
    expect(() => parseLossTerms('sigmoid,sigmoid', null)).toThrow(/each loss at most once/);
    expect(() => parseLossTerms('sigmoid,sft', '1')).toThrow(/--loss-weights: "1" \(expected 2 comma-separated numbers/);
    expect(() => parseLossTerms('sigmoid,sft', '1,x')).toThrow(/--loss-weights/);
    expect(() => parseLossTerms('sigmoid', null, 0.1)).toThrow(/--label-smoothing: 0\.1 \(expected 0 with --loss sigmoid\).*--loss cdpo/);
    expect(() => parseLossTerms('exo_pair', null, 0)).toThrow(/> 0 with --loss exo_pair/);
    expect(() => parseLossTerms('robust', null, 0.5)).toThrow(/\[0, 0\.5\)/);
  });
});

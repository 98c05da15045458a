// DPO losses against hand values computed in JS float64: sigmoid (ln 2 at z = 0), label smoothing, ipo, hinge,
// rewards, and the sigmoid loss gradient -beta sigmoid(-beta z) w.r.t. the policy log-probs.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { dpoLoss } from '../../src/dpo/losses.js';
import type { LossType, PairLogps } from '../../src/dpo/losses.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

// float64 references
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const logSigmoid = (x: number) => (x >= 0 ? -Math.log1p(Math.exp(-x)) : x - Math.log1p(Math.exp(x)));

// Four log-prob vectors; z = (pc - rc) - (pr - rr) spans negative, zero, small and large margins.
const PC = [-10, -12.5, -3, -40, -7.25, -100];
const PR = [-11, -12.5, -9, -20, -7.0, -101];
const RC = [-10.5, -12, -4, -30, -8, -100];
const RR = [-11.5, -12, -5, -35, -6, -150];
const Z = PC.map((_, i) => PC[i]! - RC[i]! - (PR[i]! - RR[i]!));

function logps(): PairLogps {
  return { policyChosen: tf.tensor1d(PC), policyRejected: tf.tensor1d(PR), refChosen: tf.tensor1d(RC), refRejected: tf.tensor1d(RR) };
}

function run(type: LossType, beta: number, eps = 0): { losses: number[]; chosen: number[]; rejected: number[] } {
  return tf.tidy(() => {
    const out = dpoLoss(logps(), type, beta, eps);
    return { losses: Array.from(out.losses.dataSync()), chosen: Array.from(out.chosenRewards.dataSync()), rejected: Array.from(out.rejectedRewards.dataSync()) };
  });
}

function expectClose(got: number[], want: number[], tol: number, what: string): void {
  let d = 0;
  for (let i = 0; i < want.length; i++) d = Math.max(d, Math.abs(got[i]! - want[i]!) / Math.max(1, Math.abs(want[i]!)));
  if (!(d <= tol)) console.log(`${what}: max rel diff ${d} (tol ${tol})\n got  ${got}\n want ${want}`);
  expect(got.length).toBe(want.length);
  expect(d).toBeLessThanOrEqual(tol);
}

describe('dpoLoss', () => {
  it('the z values of the fixture are as intended', () => {
    expect(Z).toEqual([0, 0, 5, -25, 1.75, -49]);
  });

  it('sigmoid: z = 0 gives ln 2 (policy = reference, step 0)', () => {
    const ln2 = tf.tidy(() => {
      const v = tf.tensor1d([-3.5, -120.25, 0]);
      const u = tf.tensor1d([-9, -1e-3, -77]);
      return dpoLoss({ policyChosen: v, policyRejected: u, refChosen: v, refRejected: u }, 'sigmoid', 0.1).losses.dataSync();
    });
    for (const x of ln2) expect(Math.abs(x - Math.LN2)).toBeLessThan(1e-7);
    const { losses } = run('sigmoid', 0.1);
    expect(Math.abs(losses[0]! - Math.LN2)).toBeLessThan(1e-7);
    expect(Math.abs(losses[1]! - Math.LN2)).toBeLessThan(1e-7);
  });

  it.each([0.1, 0.5, 2])('sigmoid: -log sigmoid(beta z) for beta %s', (beta) => {
    const { losses } = run('sigmoid', beta);
    expectClose(losses, Z.map((z) => -logSigmoid(beta * z)), 1e-6, `sigmoid beta ${beta}`);
  });

  it.each([0.1, 0.25])('sigmoid with label smoothing %s: -(1 - eps) log sigmoid(beta z) - eps log sigmoid(-beta z)', (eps) => {
    const beta = 0.3;
    const { losses } = run('sigmoid', beta, eps);
    const want = Z.map((z) => -(1 - eps) * logSigmoid(beta * z) - eps * logSigmoid(-beta * z));
    expectClose(losses, want, 1e-6, `smoothed ${eps}`);
    // At eps = 0.5 the loss is symmetric in z.
    const half = run('sigmoid', beta, 0.5).losses;
    expectClose(half, Z.map((z) => -0.5 * (logSigmoid(beta * z) + logSigmoid(-beta * z))), 1e-6, 'eps 0.5');
  });

  it('ipo: (z - 1/(2 beta))^2', () => {
    for (const beta of [0.1, 0.5]) {
      const { losses } = run('ipo', beta);
      expectClose(losses, Z.map((z) => (z - 1 / (2 * beta)) ** 2), 1e-6, `ipo beta ${beta}`);
    }
    // At z = 0, beta 0.1: (0 - 5)^2 = 25.
    expect(run('ipo', 0.1).losses[0]).toBeCloseTo(25, 5);
  });

  it('hinge: relu(1 - beta z)', () => {
    for (const beta of [0.1, 0.5]) {
      const { losses } = run('hinge', beta);
      expectClose(losses, Z.map((z) => Math.max(0, 1 - beta * z)), 1e-6, `hinge beta ${beta}`);
    }
    expect(run('hinge', 0.1).losses).toEqual([1, 1, expect.closeTo(0.5, 6), expect.closeTo(3.5, 6), expect.closeTo(0.825, 6), expect.closeTo(5.9, 5)]);
    expect(run('hinge', 0.5).losses[2]).toBe(0); // beta z = 2.5 > 1: no loss
  });

  it('rewards are beta (pi - ref) for every loss type', () => {
    for (const type of ['sigmoid', 'ipo', 'hinge'] as const) {
      const beta = 0.2;
      const { chosen, rejected } = run(type, beta, 0.1);
      expectClose(chosen, PC.map((p, i) => beta * (p - RC[i]!)), 1e-6, `${type} chosen rewards`);
      expectClose(rejected, PR.map((p, i) => beta * (p - RR[i]!)), 1e-6, `${type} rejected rewards`);
    }
  });

  it('sigmoid gradient: d/d pi_w = -beta sigmoid(-beta z), d/d pi_l = +beta sigmoid(-beta z); smoothed too', () => {
    for (const eps of [0, 0.2]) {
      const beta = 0.4;
      const [gw, gl] = tf.tidy(() => {
        const rc = tf.tensor1d(RC);
        const rr = tf.tensor1d(RR);
        const f = (pc: tf.Tensor, pr: tf.Tensor) =>
          tf.sum(dpoLoss({ policyChosen: pc as tf.Tensor1D, policyRejected: pr as tf.Tensor1D, refChosen: rc, refRejected: rr }, 'sigmoid', beta, eps).losses);
        return tf.grads(f)([tf.tensor1d(PC), tf.tensor1d(PR)]).map((g) => Array.from(g.dataSync()));
      });
      // d/dz of -(1-eps) log s(bz) - eps log s(-bz) = -beta ((1 - eps) s(-bz) - eps s(bz))
      const dz = Z.map((z) => -beta * ((1 - eps) * sigmoid(-beta * z) - eps * sigmoid(beta * z)));
      expectClose(gw!, dz, 1e-6, `grad chosen eps ${eps}`);
      expectClose(gl!, dz.map((x) => -x), 1e-6, `grad rejected eps ${eps}`);
      if (eps === 0) expectClose(gw!, Z.map((z) => -beta * sigmoid(-beta * z)), 1e-6, 'grad chosen plain');
    }
  });

  it('rewards carry no gradient, and dpoLoss leaks no tensors', () => {
    const l = logps();
    const before = tf.memory().numTensors;
    const g = tf.grad((pc: tf.Tensor) => tf.sum(dpoLoss({ ...l, policyChosen: pc as tf.Tensor1D }, 'sigmoid', 0.1).chosenRewards))(l.policyChosen);
    expect(Array.from(g.dataSync())).toEqual(PC.map(() => 0));
    g.dispose();
    for (let i = 0; i < 3; i++) {
      const out = dpoLoss(l, 'sigmoid', 0.1, 0.1);
      tf.dispose([out.losses, out.chosenRewards, out.rejectedRewards]);
    }
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose(Object.values(l));
  });
});

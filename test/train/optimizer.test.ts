// AdamW against torch.optim.AdamW's single-tensor algorithm worked by hand for a 2-element tensor, two steps:
// decoupled decay p *= 1 - lr wd, bias-corrected moments, eps outside the sqrt; clip_grad_norm_ coef = max / (norm + 1e-6).
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { adamwStep, createAdamWState, disposeAdamWState, globalNorm } from '../../src/train/optimizer.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const S = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };

function expectNear(got: ArrayLike<number>, want: number[], tol: number, what: string): void {
  want.forEach((w, i) => {
    const d = Math.abs(got[i] - w);
    if (!(d <= tol)) console.log(`${what}[${i}]: got ${got[i]}, want ${w}, diff ${d}`);
    expect(d).toBeLessThanOrEqual(tol);
  });
}

describe('adamwStep', () => {
  it('matches torch AdamW + clip_grad_norm_ on two steps (clipped, then not), weight decay on', () => {
    const p = tf.variable(tf.tensor1d([1, -2]), true);
    const vars = new Map([['p', p]]);
    const state = createAdamWState(vars);
    const before = tf.memory().numTensors;
    // Step 1: g = [0.3, -0.4], |g| = 0.5 > 0.25, so g *= 0.25 / (0.5 + 1e-6) = 0.499999000002.
    // m = 0.1 g, v = 0.001 g^2, bias corrections 0.1 and 0.001, so p = 0.999 p - 0.1 g / (|g| + 1e-8):
    // [0.999 - 0.1 * 0.1499997 / 0.14999971, -1.998 + 0.1 * 0.1999996 / 0.19999961]
    const g1 = new Map([['p', tf.tensor1d([0.3, -0.4])]]);
    const n1 = adamwStep(vars, g1, state, 0.1, 0.25, S);
    expect(n1.dataSync()[0]).toBeCloseTo(0.5, 6); // grad_norm is the pre-clip norm, as HF Trainer logs it
    expectNear(p.dataSync(), [0.8990000066666796, -1.8980000050000096], 2e-7, 'p after step 1');
    expectNear(state.m.get('p')!.dataSync(), [0.014999970000059995, -0.019999960000079996], 1e-9, 'exp_avg 1');
    expectNear(state.v.get('p')!.dataSync(), [2.2499910000270012e-5, 3.9999840000480036e-5], 1e-11, 'exp_avg_sq 1');
    expect(state.step).toBe(1);
    // Step 2: g = [-0.1, 0.05], |g| = 0.1118 < 0.25, no clipping; bias corrections 0.19 and 0.001999.
    const g2 = new Map([['p', tf.tensor1d([-0.1, 0.05])]]);
    const n2 = adamwStep(vars, g2, state, 0.1, 0.25, S);
    expect(n2.dataSync()[0]).toBeCloseTo(0.1118033988749895, 6);
    expectNear(p.dataSync(), [0.8836490463050236, -1.8491552327367546], 2e-7, 'p after step 2');
    expectNear(state.m.get('p')!.dataSync(), [0.0034999730000539967, -0.012999964000071999], 1e-9, 'exp_avg 2');
    expectNear(state.v.get('p')!.dataSync(), [3.2477410090269754e-5, 4.245984016047956e-5], 1e-11, 'exp_avg_sq 2');
    // The caller owns gradients and the returned norm; the step itself keeps no temporaries.
    expect(g1.get('p')!.isDisposed).toBe(false);
    tf.dispose([n1, n2, g1.get('p')!, g2.get('p')!]);
    expect(tf.memory().numTensors).toBe(before);
    disposeAdamWState(state);
    p.dispose();
  });

  it('max_grad_norm 0 turns clipping off; no weight decay leaves the update lr * sign(g) on step 1', () => {
    const p = tf.variable(tf.tensor1d([0.5, 0.25, -1]), true);
    const vars = new Map([['p', p]]);
    const state = createAdamWState(vars);
    const g = new Map([['p', tf.tensor1d([30, -40, 0])]]);
    const n = adamwStep(vars, g, state, 0.01, 0, { ...S, weightDecay: 0 });
    expect(n.dataSync()[0]).toBeCloseTo(50, 4);
    // |g| >> eps: the step is lr; g = 0: m = 0, so no step at all.
    expectNear(p.dataSync(), [0.49, 0.26, -1], 1e-7, 'p');
    tf.dispose([n, g.get('p')!]);
    disposeAdamWState(state);
    p.dispose();
  });

  it('globalNorm is the L2 norm over every tensor together', () => {
    const g = new Map<string, tf.Tensor>([['a', tf.tensor2d([[3, 0]], [1, 2])], ['b', tf.tensor1d([0, 4, 12])]]);
    const n = globalNorm(g);
    expect(n.dataSync()[0]).toBeCloseTo(13, 5);
    tf.dispose([n, ...g.values()]);
  });
});

// Learning-rate schedules against hand values of transformers' get_{constant,linear,cosine}_schedule_with_warmup
// (lr_lambda at the 0-based step about to be taken) and get_warmup_steps' rule (steps win, else ceil(ratio * total)).
import { describe, expect, it } from 'vitest';
import { learningRateAt, warmupSteps } from '../../src/train/schedule.js';

const BASE = 1e-3;
const TOTAL = 10;
const WARMUP = 2;
const lrs = (name: 'constant' | 'linear' | 'cosine') => Array.from({ length: TOTAL + 1 }, (_, s) => learningRateAt(s, BASE, name, TOTAL, WARMUP));

function expectValues(got: number[], want: number[]): void {
  expect(got.length).toBe(want.length);
  got.forEach((g, i) => {
    if (Math.abs(g - want[i]) > 1e-15) console.log(`step ${i}: got ${g}, want ${want[i]}`);
    expect(g).toBeCloseTo(want[i], 15);
  });
}

describe('learningRateAt', () => {
  it('constant with warmup: step / warmup, then the base rate', () => {
    expectValues(lrs('constant'), [0, 5e-4, 1e-3, 1e-3, 1e-3, 1e-3, 1e-3, 1e-3, 1e-3, 1e-3, 1e-3]);
  });

  it('linear with warmup: up to the base, then (total - step) / (total - warmup) down to 0', () => {
    // after warmup: 1e-3 * (10 - s) / 8
    expectValues(lrs('linear'), [0, 5e-4, 1e-3, 8.75e-4, 7.5e-4, 6.25e-4, 5e-4, 3.75e-4, 2.5e-4, 1.25e-4, 0]);
  });

  it('cosine with warmup: half a cosine wave, 0.5 (1 + cos(pi progress))', () => {
    const c = (p: number) => 0.5 * (1 + Math.cos(Math.PI * p));
    // progress = (s - 2) / 8; hand values: cos(pi/8) = 0.92387953, cos(pi/4) = 0.70710678, cos(3pi/8) = 0.38268343
    const want = [0, 5e-4, 1e-3, 9.6193977e-4, 8.5355339e-4, 6.9134172e-4, 5e-4, 3.0865828e-4, 1.4644661e-4, 3.806023e-5, 0];
    const got = lrs('cosine');
    got.forEach((g, i) => expect(Math.abs(g - want[i])).toBeLessThan(1e-11));
    expect(got[4]).toBeCloseTo(BASE * c(0.25), 15);
  });

  it('no warmup starts at the base rate; linear stays at 0 past the end', () => {
    expect(learningRateAt(0, BASE, 'linear', 4, 0)).toBe(BASE);
    expect(learningRateAt(0, BASE, 'cosine', 4, 0)).toBe(BASE);
    expect(learningRateAt(1, BASE, 'linear', 4, 0)).toBeCloseTo(7.5e-4, 15);
    expect(learningRateAt(5, BASE, 'linear', 4, 0)).toBe(0);
    expect(learningRateAt(4, BASE, 'cosine', 4, 0)).toBeCloseTo(0, 18);
  });

  it('warmupSteps: explicit steps win over the ratio, the ratio rounds up', () => {
    expect(warmupSteps(100, 7, 0.5)).toBe(7);
    expect(warmupSteps(100, 0, 0.05)).toBe(5);
    expect(warmupSteps(10, 0, 0.15)).toBe(2); // ceil(1.5)
    expect(warmupSteps(10, 0, 0)).toBe(0);
  });
});

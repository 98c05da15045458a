// The step schedule: each step's micro-batches are consecutive slices of the epoch's order (computed once per epoch),
// a short last step is still a step, the budget follows --epochs or --max-steps, and stage ends match the order.
import { describe, expect, it } from 'vitest';
import { epochOrder, epochSchedule, makePlan } from '../../src/curriculum/order.js';
import { Schedule, stepsPerEpoch } from '../../src/curriculum/schedule.js';

const D = [5, 1, 9, 3, 7, 2, 8, 0, 6, 4];

describe('Schedule', () => {
  it('slices each epoch order into batch x accumulation steps, across epochs', () => {
    const plan = makePlan('shuffle');
    const s = new Schedule(10, plan, { seed: 3, batchSize: 2, gradAccum: 2, epochs: 2, maxSteps: -1 });
    expect(s.spe).toBe(stepsPerEpoch(10, 2, 2));
    expect(s.spe).toBe(3); // 5 micro-batches of 2 -> 3 steps, the last with one micro-batch
    expect(s.maxSteps).toBe(6);
    for (let epoch = 0; epoch < 2; epoch++) {
      const order = epochOrder(10, 'shuffle', 3, epoch);
      const steps = [0, 1, 2].map((j) => s.microBatches(epoch * 3 + j));
      expect(steps.flat(2)).toEqual(order);
      expect(steps.map((m) => m.length)).toEqual([2, 2, 1]);
    }
    // Asking out of order gives the same micro-batches (the per-epoch cache is only a cache).
    expect(s.microBatches(1)).toEqual(new Schedule(10, plan, { seed: 3, batchSize: 2, gradAccum: 2, epochs: 2, maxSteps: -1 }).microBatches(1));
    expect(new Schedule(10, plan, { seed: 3, batchSize: 2, gradAccum: 1, epochs: 1, maxSteps: 7 }).maxSteps).toBe(7);
  });

  it('stage ends are the steps holding each stage’s last pair, per epoch', () => {
    const plan = makePlan('stages', D, [50]);
    const s = new Schedule(10, plan, { seed: 1, batchSize: 3, gradAccum: 1, epochs: 2, maxSteps: -1 });
    const sched = epochSchedule(10, plan, 1, 0);
    // Two stages of 5: the first ends in step ceil(5 / 3) = 2, the second in step 4; then again in epoch 2.
    expect(sched.sizes).toEqual([5, 5]);
    expect([...s.stageEnds]).toEqual([[2, 0], [4, 1], [6, 0], [8, 1]]);
  });
});

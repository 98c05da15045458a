// Epoch orders under each --curriculum, pinned for n = 10: none and shuffle as before the curriculum existed
// (resume tests rely on them), distance derived by hand, stages' buckets by hand and their shuffles pinned.
import { describe, expect, it } from 'vitest';
import { epochOrder, epochSchedule, makePlan, numStages, planFingerprint, stageOf, stageSizes } from '../../src/curriculum/order.js';
import { InputError } from '../../src/util/errors.js';

// Sorted: 0.05 (6), 0.1 (1), 0.3 (3, 4, 8), 0.5 (0), 0.6 (9), 0.7 (5), 0.9 (2), 0.95 (7).
// Ranks 100 i / 9: 6 -> 0, 1 -> 11.1, {3, 4, 8} -> mean of 22.2, 33.3, 44.4 = 33.3, 0 -> 55.6, 9 -> 66.7, 5 -> 77.8,
// 2 -> 88.9, 7 -> 100. Cuts 10, 50, 90 -> buckets {6} {1, 3, 4, 8} {0, 2, 5, 9} {7}.
const D = [0.5, 0.1, 0.9, 0.3, 0.3, 0.7, 0.05, 0.95, 0.3, 0.6];
const sorted = (a: number[]) => [...a].sort((x, y) => x - y);

describe('none and shuffle', () => {
  it('none is file order; shuffle is the seeded permutation pinned before curricula existed', () => {
    expect(epochOrder(10, 'none', 42, 3)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(epochOrder(10, 'shuffle', 42, 0)).toEqual([0, 4, 7, 8, 1, 2, 5, 6, 9, 3]);
    expect(epochOrder(10, 'shuffle', 42, 1)).toEqual([5, 3, 0, 8, 1, 4, 2, 6, 9, 7]);
    expect(epochOrder(10, 'shuffle', 0, 0)).toEqual([2, 1, 8, 3, 6, 0, 4, 5, 7, 9]);
  });

  it('a plan with difficulties does not change them, and they have one stage', () => {
    for (const name of ['none', 'shuffle'] as const) {
      const plan = makePlan(name, D);
      expect(epochOrder(10, name, 42, 1, plan)).toEqual(epochOrder(10, name, 42, 1));
      expect(numStages(plan)).toBe(1);
      expect(stageOf(plan, 10)).toEqual(new Array(10).fill(0));
      expect(epochSchedule(10, plan, 42, 1)).toMatchObject({ sizes: [10], ends: [10], stage: new Array(10).fill(0) });
    }
  });
});

describe('distance', () => {
  it('ascending difficulty, ties by position, the same every epoch and seed', () => {
    const plan = makePlan('distance', D);
    const want = [6, 1, 3, 4, 8, 0, 9, 5, 2, 7];
    expect(epochOrder(10, 'distance', 42, 0, plan)).toEqual(want);
    expect(epochOrder(10, 'distance', 7, 5, plan)).toEqual(want);
  });

  it('its stages are the percentile buckets, contiguous in the order', () => {
    const s = epochSchedule(10, makePlan('distance', D), 42, 0);
    expect(s.stage).toEqual([0, 1, 1, 1, 1, 2, 2, 2, 2, 3]);
    expect(s.sizes).toEqual([1, 4, 4, 1]);
    expect(s.ends).toEqual([1, 5, 9, 10]);
  });
});

describe('stages', () => {
  const plan = makePlan('stages', D);

  it('pinned orders: buckets in order, each shuffled by (seed, epoch, stage)', () => {
    expect(epochOrder(10, 'stages', 42, 0, plan)).toEqual([6, 3, 8, 4, 1, 5, 2, 0, 9, 7]);
    expect(epochOrder(10, 'stages', 42, 1, plan)).toEqual([6, 1, 8, 4, 3, 2, 9, 5, 0, 7]);
    expect(epochOrder(10, 'stages', 7, 0, plan)).toEqual([6, 8, 1, 4, 3, 0, 9, 5, 2, 7]);
  });

  it('every epoch visits the hand-derived buckets in order, each a permutation of its members', () => {
    for (let epoch = 0; epoch < 6; epoch++) {
      const s = epochSchedule(10, plan, 123, epoch);
      expect(s.sizes).toEqual([1, 4, 4, 1]);
      expect(s.stage).toEqual([0, 1, 1, 1, 1, 2, 2, 2, 2, 3]);
      expect(sorted(s.order.slice(0, 1))).toEqual([6]);
      expect(sorted(s.order.slice(1, 5))).toEqual([1, 3, 4, 8]);
      expect(sorted(s.order.slice(5, 9))).toEqual([0, 2, 5, 9]);
      expect(s.order.slice(9)).toEqual([7]);
    }
    expect(stageOf(plan, 10)).toEqual([2, 1, 2, 1, 1, 2, 0, 3, 1, 2]);
    expect(stageSizes(plan, 10)).toEqual([1, 4, 4, 1]);
  });

  it('same seed same order; epochs and seeds differ', () => {
    const n = 200;
    const d = Array.from({ length: n }, (_, i) => (i * 37) % 101);
    const p = makePlan('stages', d);
    expect(epochOrder(n, 'stages', 5, 2, p)).toEqual(epochOrder(n, 'stages', 5, 2, makePlan('stages', [...d])));
    expect(epochOrder(n, 'stages', 5, 2, p)).not.toEqual(epochOrder(n, 'stages', 5, 3, p));
    expect(epochOrder(n, 'stages', 5, 2, p)).not.toEqual(epochOrder(n, 'stages', 6, 2, p));
    expect(epochOrder(n, 'shuffle', 5, 2)).not.toEqual(epochOrder(n, 'shuffle', 5, 3));
    expect(sorted(epochOrder(n, 'stages', 5, 2, p))).toEqual([...Array(n).keys()]);
  });

  it('custom cuts; no cuts is one shuffled stage; empty buckets keep their index', () => {
    // [1, 2, 2, 2, 3]: ranks 0, 50, 50, 50, 100 -> the tie at the p50 cut goes up, leaving bucket 1 empty.
    const s = epochSchedule(5, makePlan('stages', [1, 2, 2, 2, 3]), 1, 0);
    expect(s.sizes).toEqual([1, 0, 3, 1]);
    expect(s.ends).toEqual([1, 1, 4, 5]);
    expect(s.stage).toEqual([0, 2, 2, 2, 3]);
    const halves = makePlan('stages', D, [50]);
    expect(stageSizes(halves, 10)).toEqual([5, 5]);
    const one = epochSchedule(10, makePlan('stages', D, []), 3, 0);
    expect(one.sizes).toEqual([10]);
    expect(sorted(one.order)).toEqual([...Array(10).keys()]);
  });
});

describe('plans', () => {
  it('distance and stages need a finite difficulty per pair; cuts must increase within [0, 100]', () => {
    expect(() => makePlan('stages', null)).toThrow(InputError);
    expect(() => epochOrder(10, 'distance', 1, 0)).toThrow(/--curriculum: distance without difficulty/);
    expect(() => makePlan('distance', [0, NaN])).toThrow(/difficulty of pair 1: NaN/);
    expect(() => makePlan('stages', D, [50, 10])).toThrow(/--stage-percentiles: 50,10 \(expected strictly increasing/);
    expect(() => makePlan('stages', D, [10, 101])).toThrow(InputError);
    expect(() => makePlan('bogus' as never)).toThrow(/--curriculum: "bogus"/);
    expect(() => epochOrder(9, 'stages', 1, 0, makePlan('stages', D))).toThrow(/10 difficulties for 9 pairs/);
    expect(() => epochOrder(10, 'shuffle', 1, 0, makePlan('stages', D))).toThrow(/plan is "stages"/);
  });

  it('the fingerprint changes with the difficulties or cuts, not with ignored difficulties', () => {
    const a = planFingerprint(makePlan('stages', D));
    expect(planFingerprint(makePlan('stages', [...D]))).toBe(a);
    expect(planFingerprint(makePlan('stages', D.map((x, i) => (i === 0 ? x + 1e-9 : x))))).not.toBe(a);
    expect(planFingerprint(makePlan('stages', D, [10, 50]))).not.toBe(a);
    expect(planFingerprint(makePlan('shuffle', D))).toBe(planFingerprint(makePlan('shuffle')));
  });
});

// Difficulty scores: quantile vs numpy.percentile's default (values below printed by numpy 1.x/2.x, linear method),
// percentile ranks with ties (scipy rankdata 'average', scaled to 0-100), and the mean/sum pair distance.
import { describe, expect, it } from 'vitest';
import { pairDistance, percentileRanks, quantile } from '../../src/curriculum/difficulty.js';

/** Independent rank: (values below + (ties - 1) / 2) / (n - 1) * 100, i.e. average-rank percentiles. */
function refRank(values: number[]): number[] {
  const n = values.length;
  return values.map((v) => {
    const below = values.filter((x) => x < v).length;
    const ties = values.filter((x) => x === v).length;
    return (100 * (below + (ties - 1) / 2)) / (n - 1);
  });
}

describe('quantile (numpy.percentile, linear)', () => {
  it('[1, 2, 3, 4]: p10 = 1.3, p50 = 2.5, p90 = 3.7', () => {
    expect(quantile([1, 2, 3, 4], 10)).toBeCloseTo(1.3, 12);
    expect(quantile([1, 2, 3, 4], 50)).toBeCloseTo(2.5, 12);
    expect(quantile([1, 2, 3, 4], 90)).toBeCloseTo(3.7, 12);
  });

  it('matches numpy on an unsorted list with a duplicate and a negative', () => {
    // np.percentile([3.5, -1, 7, 7, 2, 0.25, 10], [0, 10, 33, 50, 90, 99.5, 100])
    const a = [3.5, -1, 7, 7, 2, 0.25, 10];
    const want = [-1.0, -0.25, 1.965, 3.5, 8.2, 9.91, 10.0];
    [0, 10, 33, 50, 90, 99.5, 100].forEach((p, i) => expect(quantile(a, p)).toBeCloseTo(want[i]!, 10));
  });

  it('does not reorder its input; a single value is every percentile; empty is NaN', () => {
    const a = [3, 1, 2];
    quantile(a, 50);
    expect(a).toEqual([3, 1, 2]);
    for (const p of [0, 37, 100]) expect(quantile([4.25], p)).toBe(4.25);
    expect(quantile([], 50)).toBeNaN();
  });
});

describe('percentileRanks', () => {
  it('smallest 0, largest 100, evenly spaced without ties, in input order', () => {
    expect(percentileRanks([30, 10, 20, 40, 0])).toEqual([75, 25, 50, 100, 0]);
  });

  it('ties share their mean rank', () => {
    // sorted: 1 (0), 3 (1), 5 5 (2, 3 -> 2.5); n - 1 = 3
    const got = percentileRanks([5, 1, 5, 3]);
    expect(got[0]).toBeCloseTo(250 / 3, 12);
    expect(got[2]).toBeCloseTo(250 / 3, 12);
    expect(got[1]).toBe(0);
    expect(got[3]).toBeCloseTo(100 / 3, 12);
    expect(percentileRanks([2, 2, 2])).toEqual([50, 50, 50]);
    expect(percentileRanks([7])).toEqual([50]);
    expect(percentileRanks([])).toEqual([]);
  });

  it('matches the average-rank reference on a list with many ties', () => {
    const v = [0.5, 0.1, 0.5, 0.9, 0.1, 0.1, 0.7, 0.5, 0.0, 0.9];
    const got = percentileRanks(v);
    const want = refRank(v);
    const d = Math.max(...got.map((g, i) => Math.abs(g - want[i]!)));
    if (!(d < 1e-9)) console.log(`ranks: max diff ${d}\n got ${got}\n want ${want}`);
    expect(d).toBeLessThan(1e-9);
  });
});

describe('pairDistance', () => {
  it('mean (default): chosen per-token mean minus rejected per-token mean', () => {
    expect(pairDistance(-12, 4, -30, 6)).toBeCloseTo(-3 - -5, 12);
    expect(pairDistance(-12, 4, -30, 6, 'mean')).toBeCloseTo(2, 12);
    expect(pairDistance(-10, 5, -4, 2)).toBe(0); // equal means: distance 0 though the sums differ
  });

  it('sum: chosen minus rejected summed log-probs, token counts ignored', () => {
    expect(pairDistance(-12, 4, -30, 6, 'sum')).toBe(18);
    expect(pairDistance(-10, 5, -4, 2, 'sum')).toBe(-6);
  });
});

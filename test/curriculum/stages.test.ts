// Stage buckets at percentile cuts: half-open [cut[k-1], cut[k]), ties at a boundary together, and the step after
// which each stage is complete.
import { describe, expect, it } from 'vitest';
import { bucketOfRank, bucketSizes, checkStagePercentiles, DEFAULT_STAGE_PERCENTILES, stageBuckets, stageEndSteps, stageEnds } from '../../src/curriculum/stages.js';
import { InputError } from '../../src/util/errors.js';

describe('bucketOfRank', () => {
  it('a rank equal to a cut goes to the upper bucket', () => {
    const cuts = [10, 50, 90];
    const got = [0, 9.999, 10, 10.001, 49.9, 50, 89.9, 90, 100].map((p) => bucketOfRank(p, cuts));
    expect(got).toEqual([0, 0, 1, 1, 1, 2, 2, 3, 3]);
    expect(bucketOfRank(37, [])).toBe(0);
  });
});

describe('stageBuckets', () => {
  it('n = 11 distinct values: ranks 0, 10, ..., 100 -> 1 / 4 / 4 / 2 pairs with the default cuts', () => {
    const d = [5, 3, 9, 0, 10, 1, 7, 2, 8, 4, 6]; // rank of value v is 10 v
    const b = stageBuckets(d, DEFAULT_STAGE_PERCENTILES);
    expect(b).toEqual(d.map((v) => (v < 1 ? 0 : v < 5 ? 1 : v < 9 ? 2 : 3)));
    expect(bucketSizes(b, 4)).toEqual([1, 4, 4, 2]);
  });

  it('equal difficulties always share a bucket, even across a cut', () => {
    // Without ties the two smallest would have ranks 0 and 10 (buckets 0 and 1). Three zeros share rank 10 -> bucket 1.
    const d = [0, 0, 0, 3, 4, 5, 6, 7, 8, 9, 10];
    expect(stageBuckets(d, [10, 50, 90])).toEqual([1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3]);
    // Ties straddling p50: [1, 2, 2, 2, 3] ranks 0, 50, 50, 50, 100; bucket 1 ([10, 50)) is left empty.
    const b = stageBuckets([2, 1, 2, 3, 2], [10, 50, 90]);
    expect(b).toEqual([2, 0, 2, 3, 2]);
    expect(bucketSizes(b, 4)).toEqual([1, 0, 3, 1]);
    // All equal: every pair has rank 50 -> one bucket, the [50, 90) one.
    expect(stageBuckets([4, 4, 4, 4], [10, 50, 90])).toEqual([2, 2, 2, 2]);
  });

  it('large n: each bucket holds the pairs whose rank is in its range, about 10/40/40/10 %', () => {
    const n = 1001;
    const d = Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898) * 43758.5453); // distinct
    const b = stageBuckets(d, [10, 50, 90]);
    expect(bucketSizes(b, 4)).toEqual([100, 400, 400, 101]); // ranks i / 10 for i = 0..1000
  });

  it('rejects bad cuts with the flag name', () => {
    expect(() => checkStagePercentiles([10, 10])).toThrow(InputError);
    expect(() => checkStagePercentiles([-1])).toThrow(/--stage-percentiles: -1 \(expected percentiles in \[0, 100\]\)/);
    expect(() => checkStagePercentiles([NaN])).toThrow(InputError);
    expect(() => checkStagePercentiles([])).not.toThrow();
  });
});

describe('stage ends', () => {
  it('exclusive ends in the order, and the step (batch x accumulation = 4 pairs) that completes each stage', () => {
    expect(stageEnds([1, 4, 4, 1])).toEqual([1, 5, 9, 10]);
    expect(stageEndSteps([1, 4, 4, 1], 4)).toEqual([0, 1, 2, 2]);
    expect(stageEndSteps([1, 0, 3, 1], 1)).toEqual([0, null, 3, 4]);
    expect(() => stageEndSteps([1], 0)).toThrow(RangeError);
  });
});

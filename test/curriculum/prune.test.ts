// Pruning by difficulty percentile: strict on both sides (a rank equal to P is kept), ties together, counts.
import { describe, expect, it } from 'vitest';
import { formatPruneCounts, prunePairs } from '../../src/curriculum/prune.js';
import { InputError } from '../../src/util/errors.js';

// Value v has rank 10 v (n = 11, distinct).
const D = [5, 3, 9, 0, 10, 1, 7, 2, 8, 4, 6];

describe('prunePairs', () => {
  it('drops ranks < below and > above; a rank equal to a cut is kept', () => {
    const r = prunePairs(D, { below: 20, above: 80 });
    expect(r.kept).toEqual(D.flatMap((v, i) => (v >= 2 && v <= 8 ? [i] : [])));
    expect(r.counts).toEqual({ below: 2, above: 2, kept: 7 });
  });

  it('cuts between ranks; one side only; no cuts keeps everything', () => {
    expect(prunePairs(D, { below: 15, above: null }).counts).toEqual({ below: 2, above: 0, kept: 9 });
    expect(prunePairs(D, { below: null, above: 95 }).counts).toEqual({ below: 0, above: 1, kept: 10 });
    expect(prunePairs(D, { below: null, above: null })).toEqual({ kept: [...D.keys()], counts: { below: 0, above: 0, kept: 11 } });
    expect(prunePairs(D, { below: 0, above: 100 }).counts).toEqual({ below: 0, above: 0, kept: 11 });
  });

  it('equal difficulties are pruned together', () => {
    // [0, 0, 0, 1, 2]: ranks 25, 25, 25, 75, 100. below 30 drops all three zeros; below 25 drops none.
    const d = [0, 1, 0, 2, 0];
    expect(prunePairs(d, { below: 30, above: null })).toEqual({ kept: [1, 3], counts: { below: 3, above: 0, kept: 2 } });
    expect(prunePairs(d, { below: 25, above: null }).counts).toEqual({ below: 0, above: 0, kept: 5 });
    expect(prunePairs(d, { below: null, above: 74 }).counts).toEqual({ below: 0, above: 2, kept: 3 });
  });

  it('bad cuts and cuts that drop everything are InputErrors naming the flags', () => {
    expect(() => prunePairs(D, { below: 101, above: null })).toThrow(/^--prune-below: 101/);
    expect(() => prunePairs(D, { below: null, above: -1 })).toThrow(/^--prune-above: -1/);
    expect(() => prunePairs(D, { below: 60, above: 40 })).toThrow(InputError);
    expect(() => prunePairs([1, 1], { below: 60, above: null })).toThrow(/drops all 2 pairs/);
  });

  it('formats a log line', () => {
    const opts = { below: 10, above: 90 };
    expect(formatPruneCounts(prunePairs(D, opts).counts, opts)).toBe('pruned 2 pairs (1 below p10, 1 above p90); 9 kept');
    expect(formatPruneCounts({ below: 0, above: 0, kept: 4 }, { below: null, above: null })).toBe('pruned 0 pairs (no cuts); 4 kept');
  });
});

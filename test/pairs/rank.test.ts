// Best-of-N ranking on hand-made completions with known pass counts: dedup, the tie rules (shorter chosen, longer
// rejected, then first occurrence), the skip rule and the --min-gap / --require-chosen-pass filters.
import { describe, expect, it } from 'vitest';
import { compareScore, dedupe, rankCompletions, textLength, type Ranking, type ScoredCompletion } from '../../src/pairs/rank.js';

const s = (text: string, passed: number, total = 4): ScoredCompletion => ({ text, passed, total });

function pair(r: Ranking): { chosen: string; rejected: string } {
  if (r.kind !== 'pair') throw new Error(`expected a pair, got skip: ${r.reason}`);
  return { chosen: r.chosen.text, rejected: r.rejected.text };
}

describe('dedupe', () => {
  it('keeps the first occurrence of each exact text, counting repeats; whitespace differences are different texts', () => {
    const u = dedupe([s('a', 1), s('b', 2), s('a', 1), s('a ', 1), s('b', 2)]);
    expect(u.map((c) => [c.text, c.index, c.count])).toEqual([['a', 0, 2], ['b', 1, 2], ['a ', 3, 1]]);
  });
});

describe('rankCompletions', () => {
  it('chosen has the best pass rate and rejected the worst', () => {
    const r = rankCompletions([s('two', 2), s('four', 4), s('zero', 0), s('one', 1)]);
    expect(pair(r)).toEqual({ chosen: 'four', rejected: 'zero' });
    expect(r).toMatchObject({ nSamples: 4, nUnique: 4, gap: 1 });
    if (r.kind === 'pair') expect([r.chosen.passed, r.rejected.passed, r.chosen.total]).toEqual([4, 0, 4]);
  });

  it('ties at the top: the shorter completion is chosen; at the bottom: the longer one is rejected', () => {
    const r = rankCompletions([s('medium!', 3), s('longest-bad', 0), s('short', 3), s('bad', 0), s('longer bad', 0), s('much longer', 3)]);
    expect(pair(r)).toEqual({ chosen: 'short', rejected: 'longest-bad' });
  });

  it('equal score and length: the first occurrence wins both roles', () => {
    expect(pair(rankCompletions([s('bb', 0), s('AA', 2), s('aa', 0), s('CC', 2)]))).toEqual({ chosen: 'AA', rejected: 'bb' });
    // reversed input order flips the pick: the rule is input order, not text order
    expect(pair(rankCompletions([s('CC', 2), s('aa', 0), s('AA', 2), s('bb', 0)]))).toEqual({ chosen: 'CC', rejected: 'aa' });
  });

  it('dedup happens before ranking: repeats count as one candidate and n_unique says so', () => {
    const r = rankCompletions([s('x', 1), s('x', 1), s('x', 1), s('y', 3)]);
    expect(pair(r)).toEqual({ chosen: 'y', rejected: 'x' });
    expect(r).toMatchObject({ nSamples: 4, nUnique: 2 });
    if (r.kind === 'pair') expect(r.rejected).toMatchObject({ index: 0, count: 3 });
  });

  it('length is counted in code points (as Python len), not UTF-16 units', () => {
    expect(textLength('😀😀')).toBe(2);
    expect('😀😀'.length).toBe(4);
    // 'abc' has 3 code points, '😀😀' has 2 (but 4 UTF-16 units): the emoji one is shorter, so it is chosen
    expect(pair(rankCompletions([s('abc', 1, 1), s('😀😀', 1, 1), s('z', 0, 1)]))).toEqual({ chosen: '😀😀', rejected: 'z' });
  });

  it('scores compare as exact fractions', () => {
    expect(compareScore(s('a', 1, 3), s('b', 2, 6))).toBe(0);
    expect(compareScore(s('a', 2, 3), s('b', 1, 2))).toBe(1);
  });

  it('skips a task whose unique samples all score the same, a single unique sample included', () => {
    expect(rankCompletions([s('a', 2), s('b', 2), s('c', 2)])).toMatchObject({ kind: 'skip', reason: 'all samples score the same', nUnique: 3 });
    expect(rankCompletions([s('a', 4), s('b', 4)])).toMatchObject({ kind: 'skip', reason: 'all samples score the same' });
    expect(rankCompletions([s('a', 0), s('a', 0), s('a', 0)])).toMatchObject({ kind: 'skip', reason: 'single unique sample', nSamples: 3, nUnique: 1 });
    expect(rankCompletions([s('a', 3)])).toMatchObject({ kind: 'skip', reason: 'single unique sample' });
    expect(rankCompletions([])).toMatchObject({ kind: 'skip', reason: 'no samples' });
  });

  it('--min-gap skips pairs whose pass-rate gap is below it (a gap equal to it is kept)', () => {
    const samples = [s('a', 3), s('b', 1)]; // gap 0.5
    expect(rankCompletions(samples, { minGap: 0.5 }).kind).toBe('pair');
    expect(rankCompletions(samples, { minGap: 0.51 })).toMatchObject({ kind: 'skip', reason: 'gap below --min-gap', gap: 0.5 });
    const thirds = [s('a', 2, 3), s('b', 1, 3)]; // gap 1/3, computed as 2/3 - 1/3
    expect(rankCompletions(thirds, { minGap: 1 / 3 }).kind).toBe('pair');
  });

  it('--require-chosen-pass keeps only pairs whose chosen passes every test', () => {
    expect(rankCompletions([s('a', 3), s('b', 0)], { requireChosenPass: true })).toMatchObject({ kind: 'skip', reason: 'chosen fails a test' });
    expect(pair(rankCompletions([s('a', 4), s('b', 3)], { requireChosenPass: true }))).toEqual({ chosen: 'a', rejected: 'b' });
  });

  it('refuses impossible counts', () => {
    expect(() => rankCompletions([s('a', 5, 4)])).toThrow(/sample 0 has passed=5, total=4/);
    expect(() => rankCompletions([s('a', 0, 0)])).toThrow(RangeError);
  });
});

describe("rankCompletions with rejected: 'frequent' (--rejected frequent)", () => {
  it('rejects the most repeated of the worst completions (then the shorter, then the first); chosen is unchanged', () => {
    const samples = [s('ok', 4), s('wrong but long', 0), s('bad', 0), s('bad2', 0), s('bad', 0), s('bad2', 0), s('bad2', 0), s('half', 2), s('half', 2), s('half', 2)];
    expect(pair(rankCompletions(samples))).toEqual({ chosen: 'ok', rejected: 'wrong but long' });
    // 'half' is sampled most, but it is not among the worst: bad2 (3 times) is.
    expect(pair(rankCompletions(samples, { rejected: 'frequent' }))).toEqual({ chosen: 'ok', rejected: 'bad2' });
    // Equal counts: the shorter, then the first occurrence.
    expect(pair(rankCompletions([s('ok', 4), s('xyz', 0), s('ab', 0), s('cd', 0), s('xyz', 0), s('ab', 0), s('cd', 0)], { rejected: 'frequent' }))).toEqual({ chosen: 'ok', rejected: 'ab' });
    // The skip rules are the same.
    expect(rankCompletions([s('a', 1), s('b', 1), s('a', 1)], { rejected: 'frequent' })).toMatchObject({ kind: 'skip', reason: 'all samples score the same' });
  });
});

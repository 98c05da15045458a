// Rng: mulberry32 stream pinned against an independent Python implementation, state round-trip, distributions.
import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/util/rng.js';

describe('Rng', () => {
  it('matches mulberry32 reference values', () => {
    const a = new Rng(0);
    expect([a.nextU32(), a.nextU32(), a.nextU32()]).toEqual([1144304738, 1416247, 958946056]);
    const b = new Rng(42);
    expect([b.nextU32(), b.nextU32(), b.nextU32()]).toEqual([2581720956, 1925393290, 3661312704]);
  });

  it('is deterministic and resumes from a saved state, spare normal included', () => {
    const r = new Rng(7);
    r.normal();
    const state = r.getState();
    expect(state.spare).not.toBeNull();
    const seq = [r.normal(), r.next(), r.normal(), r.int(10)];
    const resumed = Rng.fromState(JSON.parse(JSON.stringify(state)));
    expect([resumed.normal(), resumed.next(), resumed.normal(), resumed.int(10)]).toEqual(seq);
  });

  it('gives plausible uniform and normal moments', () => {
    const r = new Rng(123);
    const n = 20000;
    let su = 0, sn = 0, sn2 = 0;
    for (let i = 0; i < n; i++) {
      const u = r.next();
      expect(u >= 0 && u < 1).toBe(true);
      su += u;
      const z = r.normal();
      sn += z;
      sn2 += z * z;
    }
    expect(Math.abs(su / n - 0.5)).toBeLessThan(0.01);
    expect(Math.abs(sn / n)).toBeLessThan(0.03);
    expect(Math.abs(sn2 / n - 1)).toBeLessThan(0.05);
  });

  it('shuffles into a permutation, the same for the same seed', () => {
    const a = new Rng(5).shuffle([...Array(50).keys()]);
    const b = new Rng(5).shuffle([...Array(50).keys()]);
    expect(a).toEqual(b);
    expect([...a].sort((x, y) => x - y)).toEqual([...Array(50).keys()]);
    expect(a).not.toEqual([...Array(50).keys()]);
  });

  it('separates large seeds and rejects bad ones', () => {
    expect(new Rng(2 ** 40 + 1).nextU32()).not.toBe(new Rng(1).nextU32());
    expect(() => new Rng(1.5)).toThrow(/safe integer/);
    expect(() => new Rng(0).setState({ s: -1, spare: null })).toThrow(/uint32/);
  });
});

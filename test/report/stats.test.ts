// The experiment's intervals (report/stats.ts) against an independent numpy computation given the same resampled task
// indices: pass@1 means, differences from shuffle and gains over step 0, with numpy.percentile's 2.5/97.5. Plus an
// analytic case (every task alike: a zero-width interval at the value) and determinism for a seed.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { bootstrapIndices, experimentStats, formatInterval, percentile, type ArmMatrix } from '../../src/report/stats.js';
import { Rng } from '../../src/util/rng.js';

const PYTHON = existsSync('/root/.pyenv/versions/3.11.7/bin/python3') ? '/root/.pyenv/versions/3.11.7/bin/python3' : 'python3';

const NUMPY = `
import json, sys
import numpy as np
d = json.load(sys.stdin)
idx = np.array(d['idx'])                       # [B, T]
def mean(m, ix):                               # m [S, T]: mean over seeds of the mean over the picked tasks
    return np.asarray(m)[:, ix].mean(axis=1).mean()
def ci(f):
    draws = np.array([f(ix) for ix in idx])
    return [f(np.arange(idx.shape[1])), float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))]
out = {}
for arm, steps in d['arms'].items():
    base, zero = d['arms']['shuffle'], steps['0']
    out[arm] = {s: {'pass': ci(lambda ix: mean(m, ix)),
                    'diff': ci(lambda ix: mean(m, ix) - mean(base[s], ix)),
                    'gain': ci(lambda ix: mean(m, ix) - mean(zero, ix))} for s, m in steps.items()}
print(json.dumps(out))
`;

/** Per-task pass@1 of n samples: multiples of 1/n, as an evaluation gives them. */
function matrix(rng: Rng, seeds: number, tasks: number, p: number, n = 4): number[][] {
  return Array.from({ length: seeds }, () => Array.from({ length: tasks }, () => {
    let c = 0;
    for (let i = 0; i < n; i++) if (rng.next() < p) c++;
    return c / n;
  }));
}

describe('paired bootstrap intervals', () => {
  it('match numpy on the same resampled indices (means, differences from shuffle, gains over step 0)', () => {
    const rng = new Rng(3);
    const T = 23, B = 300, SEED = 11;
    const arms: ArmMatrix[] = [
      { arm: 'shuffle', seeds: [1, 2, 3], byStep: new Map([[0, matrix(rng, 3, T, 0.3)], [6, matrix(rng, 3, T, 0.35)]]) },
      { arm: 'stages', seeds: [1, 2, 3], byStep: new Map([[0, matrix(rng, 3, T, 0.3)], [6, matrix(rng, 3, T, 0.45)]]) },
    ];
    const st = experimentStats(arms, T, { resamples: B, seed: SEED });
    const idx = bootstrapIndices(T, B, SEED).map((a) => Array.from(a));
    const payload = { idx, arms: Object.fromEntries(arms.map((a) => [a.arm, Object.fromEntries([...a.byStep].map(([s, m]) => [String(s), m]))])) };
    const py = spawnSync(PYTHON, ['-c', NUMPY], { input: JSON.stringify(payload), encoding: 'utf8' });
    expect(py.status, py.stderr).toBe(0);
    const ref = JSON.parse(py.stdout) as Record<string, Record<string, Record<'pass' | 'diff' | 'gain', [number, number, number]>>>;
    let maxDiff = 0;
    const cmp = (x: { mean: number; lo: number; hi: number } | null, r: [number, number, number]) => {
      expect(x).not.toBeNull();
      for (const [a, b] of [[x!.mean, r[0]], [x!.lo, r[1]], [x!.hi, r[2]]]) maxDiff = Math.max(maxDiff, Math.abs(a - b));
    };
    expect(st.steps).toEqual([0, 6]);
    for (const a of st.arms) {
      st.steps.forEach((s, i) => {
        cmp(a.pass[i], ref[a.arm][String(s)].pass);
        if (a.arm !== 'shuffle') cmp(a.diff[i], ref[a.arm][String(s)].diff);
        else expect(a.diff[i]).toBeNull();
        if (s !== 0) cmp(a.gain[i], ref[a.arm][String(s)].gain);
        else expect(a.gain[i]).toBeNull();
      });
    }
    expect(maxDiff, `max |ts - numpy| = ${maxDiff}`).toBeLessThan(1e-12);
    // The intervals are not degenerate here, and contain their estimate.
    const stages = st.arms[1].pass[1]!;
    expect(stages.hi - stages.lo).toBeGreaterThan(0.02);
    expect(stages.lo).toBeLessThanOrEqual(stages.mean);
    expect(stages.hi).toBeGreaterThanOrEqual(stages.mean);
  });

  it('analytic: every task alike gives a zero-width interval at the value; the same seed gives the same intervals', () => {
    const flat = (v: number) => [Array(10).fill(v), Array(10).fill(v)];
    const arms: ArmMatrix[] = [
      { arm: 'shuffle', seeds: [1, 2], byStep: new Map([[0, flat(0.25)], [4, flat(0.5)]]) },
      { arm: 'distance', seeds: [1, 2], byStep: new Map([[0, flat(0.25)], [4, flat(0.75)]]) },
    ];
    const st = experimentStats(arms, 10, { resamples: 50, seed: 1 });
    expect(st.arms[1].pass[1]).toEqual({ mean: 0.75, lo: 0.75, hi: 0.75 });
    expect(st.arms[1].diff[1]).toEqual({ mean: 0.25, lo: 0.25, hi: 0.25 });
    expect(st.arms[0].gain[1]).toEqual({ mean: 0.25, lo: 0.25, hi: 0.25 });
    expect(formatInterval(st.arms[1].diff[1], 3, true)).toBe('+0.250 [+0.250, +0.250]');
    const rng = new Rng(5);
    const noisy: ArmMatrix[] = [{ arm: 'shuffle', seeds: [1], byStep: new Map([[0, matrix(rng, 1, 30, 0.5)]]) }];
    expect(experimentStats(noisy, 30, { resamples: 100, seed: 9 })).toEqual(experimentStats(noisy, 30, { resamples: 100, seed: 9 }));
    expect(experimentStats(noisy, 30, { resamples: 100, seed: 9 }).arms[0].pass[0]).not.toEqual(experimentStats(noisy, 30, { resamples: 100, seed: 10 }).arms[0].pass[0]);
  });

  it('percentile is numpy.percentile (linear): hand-computed values', () => {
    // numpy.percentile([1, 2, 3, 4], [2.5, 50, 97.5]) = [1.075, 2.5, 3.925]
    expect(percentile([4, 1, 3, 2], 2.5)).toBeCloseTo(1.075, 12);
    expect(percentile([4, 1, 3, 2], 50)).toBe(2.5);
    expect(percentile([4, 1, 3, 2], 97.5)).toBeCloseTo(3.925, 12);
    expect(percentile([7], 2.5)).toBe(7);
  });
});

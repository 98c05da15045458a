// The experiment's answer as numbers: held-out pass@1 per evaluation step and arm, as the mean over seeds and tasks
// with a 95% paired bootstrap interval over tasks (Efron & Tibshirani's percentile interval: resample task indices
// with replacement, the same resample for every arm, step and seed, so arm differences are paired). Seeded and
// deterministic. Differences from a baseline arm and gains over step 0 (the SFT model) get their intervals from the
// same resamples. Percentiles as numpy.percentile (linear). Per-level tables restrict the tasks, then resample.
import { Rng } from '../util/rng.js';

/** numpy.percentile(values, q) with the default linear interpolation. */
export function percentile(values: ArrayLike<number>, q: number): number {
  const s = Float64Array.from(values).sort();
  if (s.length === 0) return NaN;
  const pos = (q / 100) * (s.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, s.length - 1);
  return s[lo] + (pos - lo) * (s[hi] - s[lo]);
}

/** `b` resamples of `n` task indices (with replacement), from a seeded mulberry32 stream. */
export function bootstrapIndices(n: number, b: number, seed: number): Int32Array[] {
  const rng = new Rng(seed);
  return Array.from({ length: b }, () => Int32Array.from({ length: n }, () => rng.int(n)));
}

/** Mean over seeds of the mean over the tasks `idx` picks; `m` is [seed][task]. */
export function resampledMean(m: readonly (readonly number[])[], idx: ArrayLike<number>): number {
  let total = 0;
  for (const row of m) {
    let s = 0;
    for (let i = 0; i < idx.length; i++) s += row[idx[i]];
    total += s / idx.length;
  }
  return total / m.length;
}

export interface Interval {
  /** The estimate on the data as observed (every task once). */
  mean: number;
  lo: number;
  hi: number;
}

/** The estimate and the 2.5th/97.5th percentiles of f over the resamples. */
export function interval(f: (idx: ArrayLike<number>) => number, n: number, resamples: readonly Int32Array[]): Interval {
  const all = Int32Array.from({ length: n }, (_, i) => i);
  const draws = resamples.map(f);
  return { mean: f(all), lo: percentile(draws, 2.5), hi: percentile(draws, 97.5) };
}

/** Per-task pass@1 of one arm: by evaluation step, a [seed][task] matrix over the common task list. */
export interface ArmMatrix {
  arm: string;
  seeds: number[];
  byStep: Map<number, number[][]>;
}

export interface ArmStats {
  arm: string;
  /** pass@1 mean ± CI at each step of `steps` (null where the arm lacks it). */
  pass: (Interval | null)[];
  /** This arm minus the baseline at each step (null for the baseline itself, or without data). */
  diff: (Interval | null)[];
  /** This arm at each step minus itself at step 0 (the SFT model). */
  gain: (Interval | null)[];
}

export interface ExperimentStats {
  steps: number[];
  tasks: number;
  seeds: number;
  resamples: number;
  baseline: string | null;
  arms: ArmStats[];
}

export interface StatsOptions {
  resamples?: number;
  seed?: number;
  baseline?: string;
}

/** Every interval of the experiment from one set of task resamples. */
export function experimentStats(arms: readonly ArmMatrix[], nTasks: number, opts: StatsOptions = {}): ExperimentStats {
  const b = opts.resamples ?? 2000;
  const resamples = bootstrapIndices(nTasks, b, opts.seed ?? 0);
  const steps = [...new Set(arms.flatMap((a) => [...a.byStep.keys()]))].sort((x, y) => x - y);
  const base = arms.find((a) => a.arm === (opts.baseline ?? 'shuffle')) ?? null;
  const out: ArmStats[] = arms.map((a) => {
    const at = (s: number) => a.byStep.get(s) ?? null;
    const pass = steps.map((s) => {
      const m = at(s);
      return m ? interval((idx) => resampledMean(m, idx), nTasks, resamples) : null;
    });
    const diff = steps.map((s) => {
      const [m, bm] = [at(s), base?.byStep.get(s) ?? null];
      if (!m || !bm || a === base) return null;
      return interval((idx) => resampledMean(m, idx) - resampledMean(bm, idx), nTasks, resamples);
    });
    const zero = at(0);
    const gain = steps.map((s) => {
      const m = at(s);
      if (!m || !zero || s === 0) return null;
      return interval((idx) => resampledMean(m, idx) - resampledMean(zero, idx), nTasks, resamples);
    });
    return { arm: a.arm, pass, diff, gain };
  });
  return { steps, tasks: nTasks, seeds: Math.max(0, ...arms.map((a) => a.seeds.length)), resamples: b, baseline: base?.arm ?? null, arms: out };
}

/** `0.312 [0.281, 0.344]`, or `+0.012 [-0.004, 0.027]` with `signed`. */
export function formatInterval(x: Interval | null, digits = 3, signed = false): string {
  if (!x || !Number.isFinite(x.mean)) return '-';
  const f = (v: number) => (signed && v >= 0 ? '+' : '') + v.toFixed(digits);
  return `${f(x.mean)} [${f(x.lo)}, ${f(x.hi)}]`;
}

// The answer tables of an experiment from its runs' per-task completions (completions.ts): the runs of each arm
// (one per seed) become [seed][task] matrices of pass@1 at every evaluation step, over the tasks every run was
// evaluated on, then stats.ts gives mean ± 95% CI, the difference from shuffle and the gain over step 0 (the SFT
// model), overall and per task level. Runs without completions (older runs, plain `train`) give no outcome.
import { relative } from 'node:path';
import type { ArmData } from './load.js';
import { completionSteps, completionsFile, readTaskPass, type TaskPass } from './completions.js';
import { experimentStats, formatInterval, type ArmMatrix, type ExperimentStats } from './stats.js';

export interface CompletionLink {
  run: string;
  steps: { step: number; href: string }[];
}

export interface Outcome {
  overall: ExperimentStats;
  /** Per task level (the world's tasks carry one), ascending; empty when the tasks have none. */
  byLevel: { level: number; tasks: number; stats: ExperimentStats }[];
  links: CompletionLink[];
  /** Arms in order, with their seeds. */
  arms: { arm: string; seeds: number[] }[];
}

export const BOOTSTRAP = { resamples: 2000, seed: 0 };

/** Reads every run's completions; null when no run has any. `dir` is the report folder, for relative links. */
export function loadOutcome(dir: string, runs: readonly ArmData[], notes: string[]): Outcome | null {
  const per = runs.map((r) => ({ run: r, steps: new Map(completionSteps(r.dir).map((s) => [s, readTaskPass(completionsFile(r.dir, s))])) }))
    .filter((x) => x.steps.size > 0);
  if (per.length === 0) return null;
  // Steps every run of the experiment was evaluated at; tasks every one of those evaluations covers.
  const steps = [...per[0].steps.keys()].filter((s) => per.every((p) => p.steps.has(s)));
  const partial = new Set(per.flatMap((p) => [...p.steps.keys()])).size - steps.length;
  if (partial > 0) notes.push(`${partial} evaluation step(s) not reached by every run (a run still in progress?) are left out of the intervals.`);
  const evals: Map<string, TaskPass>[] = per.flatMap((p) => steps.map((s) => p.steps.get(s)!));
  const tasks = [...(evals[0]?.keys() ?? [])].filter((t) => evals.every((e) => e.has(t))).sort();
  const dropped = new Set(evals.flatMap((e) => [...e.keys()])).size - tasks.length;
  if (dropped > 0) notes.push(`${dropped} task(s) missing from some evaluation are left out of the intervals.`);
  if (steps.length === 0 || tasks.length === 0) {
    notes.push('no evaluation step and task common to every run: no intervals.');
    return null;
  }
  const armNames = [...new Set(per.map((p) => p.run.group))];
  const arms = armNames.map((arm) => ({ arm, seeds: per.filter((p) => p.run.group === arm).map((p) => p.run.seed ?? 0) }));
  const seedCounts = new Set(arms.map((a) => a.seeds.length));
  if (seedCounts.size > 1) notes.push(`arms have different numbers of seeds (${arms.map((a) => `${a.arm} ${a.seeds.length}`).join(', ')}): a run still to train?`);
  const level = new Map(tasks.map((t) => [t, evals[0].get(t)!.level]));
  const matrices = (keep: string[]): ArmMatrix[] => arms.map(({ arm, seeds }) => ({
    arm, seeds,
    byStep: new Map(steps.map((s) => [s, per.filter((p) => p.run.group === arm).map((p) => keep.map((t) => p.steps.get(s)!.get(t)!.pass1))])),
  }));
  const overall = experimentStats(matrices(tasks), tasks.length, BOOTSTRAP);
  const levels = [...new Set([...level.values()].filter((l): l is number => l !== null))].sort((a, b) => a - b);
  const byLevel = levels.map((l) => {
    const keep = tasks.filter((t) => level.get(t) === l);
    return { level: l, tasks: keep.length, stats: experimentStats(matrices(keep), keep.length, { ...BOOTSTRAP, seed: BOOTSTRAP.seed + l }) };
  });
  const links = per.map((p) => ({ run: p.run.name, steps: [...p.steps.keys()].map((s) => ({ step: s, href: relative(dir, completionsFile(p.run.dir, s)) })) }));
  return { overall, byLevel, links, arms };
}

/** Plain-text answer table, as the CLI prints it: pass@1 [95% CI] per step and arm, then each arm's difference from the baseline and gain over step 0 at the last step. */
export function formatOutcome(o: Outcome): string {
  const st = o.overall;
  const rows = [['pass@1 [95% CI]', ...st.arms.map((a) => a.arm)], ...st.steps.map((s, i) => [`step ${s}`, ...st.arms.map((a) => formatInterval(a.pass[i]))])];
  const last = st.steps.length - 1;
  if (st.baseline && st.arms.length > 1) rows.push([`vs ${st.baseline} @${st.steps[last]}`, ...st.arms.map((a) => formatInterval(a.diff[last], 3, true))]);
  if (st.steps[0] === 0 && last > 0) rows.push([`gain over SFT @${st.steps[last]}`, ...st.arms.map((a) => formatInterval(a.gain[last], 3, true))]);
  const widths = rows[0].map((_, j) => Math.max(...rows.map((r) => r[j].length)));
  return [`${st.tasks} tasks x ${st.seeds} seed(s), paired bootstrap over tasks (${st.resamples} resamples)`,
    ...rows.map((r) => r.map((c, j) => (j === 0 ? c.padEnd(widths[j]) : c.padStart(widths[j]))).join('  ').trimEnd())].join('\n');
}

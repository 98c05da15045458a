// The one place step values are read back to JS: a step's TRL-named metrics line and its per-pair losses and margins
// (run/files.ts writes them). Lines are deterministic (no wall-clock fields).
import type { StepStats } from './step.js';

export type MetricsLine = Record<string, number>;

export interface StepReadout {
  line: MetricsLine;
  /** Per pair, in the order trained: loss and reward margin. */
  pairLosses: number[];
  pairMargins: number[];
}

function mean(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i];
  return s / a.length;
}

/** Reads a step's stats and builds its metrics line (TRL's names; `loss` is computed before the update). */
export function readStep(stats: StepStats, gradNorm: number, lr: number, step: number, epoch: number): StepReadout {
  const losses = stats.losses.dataSync();
  const rc = stats.chosenRewards.dataSync();
  const rr = stats.rejectedRewards.dataSync();
  const pc = stats.policyChosen.dataSync();
  const pr = stats.policyRejected.dataSync();
  const margins = Array.from(rc, (c, i) => c - rr[i]);
  const line: MetricsLine = {
    loss: mean(losses),
    'rewards/chosen': mean(rc),
    'rewards/rejected': mean(rr),
    'rewards/accuracies': mean(margins.map((m) => (m > 0 ? 1 : 0))),
    'rewards/margins': mean(margins),
    'logps/chosen': mean(pc),
    'logps/rejected': mean(pr),
    grad_norm: gradNorm,
    learning_rate: lr,
    epoch,
    step,
  };
  return { line, pairLosses: Array.from(losses), pairMargins: margins };
}

// The one place step values are read back to JS: TRL-named metrics lines (metrics.jsonl), first-epoch
// per-pair losses (pair_losses.jsonl) and the TTY progress line. Lines are deterministic (no wall-clock fields).
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from '../io/atomic.js';
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

/** Appends JSON lines to a run file. */
export function appendLines(file: string, rows: object[]): void {
  if (rows.length > 0) appendFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
}

/** On resume: keeps the lines whose `step` is <= the checkpoint's, dropping what a crash left past it. */
export function truncateByStep(file: string, lastStep: number): void {
  if (!existsSync(file)) return;
  const kept = readFileSync(file, 'utf8').split('\n').filter((l) => {
    if (!l.trim()) return false;
    try {
      return (JSON.parse(l) as { step: number }).step <= lastStep;
    } catch {
      return false; // a torn last line from a crash
    }
  });
  writeFileAtomic(file, kept.length ? kept.join('\n') + '\n' : '');
}

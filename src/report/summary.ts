// The report's numbers: final training metrics per arm and pass@1 at each evaluation point per arm, as rows
// for the HTML page and as the plain-text table the CLI prints. Evaluation points are matched across arms by step.
import type { ArmData } from './load.js';

export interface ArmSummary {
  arm: string;
  steps: number;
  epoch: number | null;
  loss: number | null;
  margins: number | null;
  accuracies: number | null;
  /** pass@1 at the arm's last evaluation. */
  lastPass1: number | null;
}

/** The last logged metrics line of each arm (a step's value, as TRL logs it; not a running mean). */
export function armSummaries(arms: ArmData[]): ArmSummary[] {
  return arms.map((a) => {
    const last = a.metrics[a.metrics.length - 1];
    const pick = (k: string) => (k in last ? last[k] : null);
    const withPass = (a.evals ?? []).filter((e) => 'pass@1' in e.passAtK);
    return {
      arm: a.name,
      steps: last.step,
      epoch: pick('epoch'),
      loss: pick('loss'),
      margins: pick('rewards/margins'),
      accuracies: pick('rewards/accuracies'),
      lastPass1: withPass.length ? withPass[withPass.length - 1].passAtK['pass@1'] : null,
    };
  });
}

export interface PassTable {
  /** One label per evaluation step, e.g. `stage 1 · step 12`. */
  points: string[];
  steps: number[];
  arms: string[];
  /** [point][arm]: pass@1, or null where the arm has no evaluation at that step. */
  cells: (number | null)[][];
}

function stageLabel(stage: string | number): string {
  return typeof stage === 'number' ? `stage ${stage}` : stage;
}

/**
 * pass@1 by evaluation step and arm. Arms are evaluated at the same step counts (the experiment's contract), so
 * the step is the key; the label takes the latest stage any arm ends at that step.
 */
export function passTable(arms: ArmData[]): PassTable {
  const withPass = arms.filter((a) => a.evals?.some((e) => 'pass@1' in e.passAtK));
  const steps = [...new Set(withPass.flatMap((a) => a.evals!.filter((e) => 'pass@1' in e.passAtK).map((e) => e.step)))].sort((x, y) => x - y);
  const points = steps.map((s) => {
    // A step that ends a stage in several arms takes the latest stage (a shuffle arm's single stage 0 ends where the stages arm's last does).
    const named = withPass.map((a) => a.evals!.find((e) => e.step === s)?.stage).filter((x) => x !== null && x !== undefined);
    const stage = named.some((x) => typeof x === 'number') ? Math.max(...named.filter((x): x is number => typeof x === 'number')) : named[0];
    return stage === undefined || stage === null ? `step ${s}` : `${stageLabel(stage)} · step ${s}`;
  });
  const cells = steps.map((s) => withPass.map((a) => a.evals!.find((e) => e.step === s)?.passAtK['pass@1'] ?? null));
  return { points, steps, arms: withPass.map((a) => a.name), cells };
}

export function num(x: number | null, digits = 4): string {
  if (x === null || !Number.isFinite(x)) return '-';
  return x.toFixed(digits);
}

function pad(rows: string[][]): string[] {
  const widths = rows[0].map((_, j) => Math.max(...rows.map((r) => r[j].length)));
  return rows.map((r) => r.map((c, j) => (j === 0 ? c.padEnd(widths[j]) : c.padStart(widths[j]))).join('  ').trimEnd());
}

/** Plain-text pass@1 table (evaluation points down, arms across), as the CLI prints it; '' when no evaluation. */
export function formatPassTable(t: PassTable): string {
  if (t.points.length === 0) return '';
  const rows = [['pass@1', ...t.arms], ...t.points.map((p, i) => [p, ...t.cells[i].map((c) => num(c, 3))])];
  return pad(rows).join('\n');
}

/** Plain-text final-metrics table, one row per arm. */
export function formatSummaryTable(s: ArmSummary[]): string {
  const rows = [
    ['arm', 'steps', 'loss', 'rewards/margins', 'rewards/accuracies', 'pass@1'],
    ...s.map((r) => [r.arm, String(r.steps), num(r.loss), num(r.margins), num(r.accuracies), num(r.lastPass1, 3)]),
  ];
  return pad(rows).join('\n');
}

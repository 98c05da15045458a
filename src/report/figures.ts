// The report's four figures as Vega-Lite specs, rendered to SVG headless (vega View.toSVG, renderer 'none':
// no canvas, no DOM, no network). Each builder takes plain rows; reading and joining files is elsewhere.
import { parse, View } from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { Percentiles } from './difficulty.js';

/** Vega's category10, so arm colours match across figures. */
const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
const BASE = {
  $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
  background: 'white',
  padding: 8,
  config: { font: 'system-ui, sans-serif', title: { fontSize: 14, anchor: 'start' as const, subtitleColor: '#555' }, axis: { labelFontSize: 11, titleFontSize: 12 } },
};

/** Arm colours, fixed by the order the arms are listed in. */
function armColor(arms: string[]) {
  return { field: 'arm', type: 'nominal' as const, title: 'arm', sort: arms, scale: { domain: arms, range: COLORS } };
}

/** Compiles a Vega-Lite spec and renders it to an SVG string. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new View(parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Histogram of per-pair difficulty with dashed rules at p10, p50 and p90. */
export function histogramSpec(values: number[], name: string, p: Percentiles, subtitle: string): TopLevelSpec {
  // Labels on three rows (pixel y, no scale) so close percentiles do not print over each other.
  const marks = (['p10', 'p50', 'p90'] as const).map((k, i) => ({ label: `${k} ${fmt(p[k])}`, value: p[k], row: 3 + 14 * i }));
  return {
    ...BASE,
    title: { text: `Difficulty of the ${values.length} training pairs`, subtitle },
    width: 520,
    height: 260,
    layer: [
      {
        data: { values: values.map((v) => ({ difficulty: v })) },
        mark: { type: 'bar', color: '#9ebfe0', binSpacing: 1 },
        encoding: {
          x: { field: 'difficulty', type: 'quantitative', bin: { maxbins: 30 }, title: name },
          y: { aggregate: 'count', type: 'quantitative', title: 'pairs' },
        },
      },
      {
        data: { values: marks },
        mark: { type: 'rule', color: '#d62728', strokeDash: [5, 3], strokeWidth: 1.5 },
        encoding: { x: { field: 'value', type: 'quantitative' } },
      },
      {
        data: { values: marks },
        mark: { type: 'text', color: '#d62728', align: 'left', dx: 3, baseline: 'top', fontSize: 11 },
        encoding: { x: { field: 'value', type: 'quantitative' }, y: { field: 'row', type: 'quantitative', scale: null }, text: { field: 'label' } },
      },
    ],
  };
}

export interface ScatterRow {
  index: number;
  difficulty: number;
  loss: number;
  arm: string;
}

/** First-epoch loss of each pair against its difficulty, one dot per pair (and arm); a rule at ln 2, the step-0 loss. */
export function scatterSpec(rows: ScatterRow[], name: string, arms: string[], subtitle: string): TopLevelSpec {
  const many = arms.length > 1;
  return {
    ...BASE,
    title: { text: 'First-epoch loss of each pair against its difficulty', subtitle },
    width: 520,
    height: 300,
    layer: [
      {
        data: { values: rows },
        // aria off: one label per dot would dominate the file size on large runs.
        mark: { type: 'circle', size: 28, opacity: 0.7, aria: false, ...(many ? {} : { color: '#4c78a8' }) },
        encoding: {
          x: { field: 'difficulty', type: 'quantitative', title: name, scale: { zero: false } },
          y: { field: 'loss', type: 'quantitative', title: 'first-epoch DPO loss' },
          ...(many ? { color: armColor(arms) } : {}),
        },
      },
      {
        data: { values: [{ y: Math.LN2, label: 'ln 2 (loss at step 0)' }] },
        layer: [
          { mark: { type: 'rule', color: '#888', strokeDash: [4, 4] }, encoding: { y: { field: 'y', type: 'quantitative' } } },
          { mark: { type: 'text', color: '#666', align: 'right', dy: -6, fontSize: 10 }, encoding: { y: { field: 'y', type: 'quantitative' }, x: { value: 520 }, text: { field: 'label' } } },
        ],
      },
    ],
  };
}

export interface CurveRow {
  step: number;
  value: number;
  /** The colour: the arm (its seeds share it). */
  arm: string;
  /** One line per run (an arm's seed); the arm's name when each arm is one run. */
  run?: string;
  /** Raw logged values, or their smoothed curve drawn over them. */
  kind?: 'raw' | 'smoothed';
}

const CURVES = [
  { key: 'loss', title: 'loss' },
  { key: 'rewards/margins', title: 'rewards/margins' },
  { key: 'rewards/accuracies', title: 'rewards/accuracies' },
] as const;
export const CURVE_KEYS = CURVES.map((c) => c.key);

/** TensorBoard's smoothing: a debiased exponential moving average (weight w on the past). */
export function smoothEma(values: readonly number[], w: number): number[] {
  let last = 0;
  return values.map((v, i) => {
    last = last * w + (1 - w) * v;
    return last / (1 - w ** (i + 1));
  });
}

/** The smoothing weight for a curve of n points: light for short runs, heavier for long ones. */
export function smoothingWeight(n: number): number {
  return n < 20 ? 0.6 : n < 200 ? 0.85 : 0.95;
}

/**
 * Training curves side by side: loss, rewards/margins and rewards/accuracies against the optimizer step (a numeric
 * axis): the raw values faint, the smoothed curve over them, dashed rules at the stage ends. 3 x 180 px: fits the page with a legend.
 */
export function curvesSpec(byKey: Record<string, CurveRow[]>, arms: string[], subtitle: string, stageEnds: number[] = []): TopLevelSpec {
  const many = arms.length > 1;
  const points = Math.max(0, ...Object.values(byKey).map((r) => r.filter((x) => x.kind !== 'smoothed').length)) <= 40;
  const color = many ? { color: armColor(arms) } : {};
  const x = { field: 'step', type: 'quantitative' as const, title: 'step' };
  return {
    ...BASE,
    title: { text: 'Training curves', subtitle },
    hconcat: CURVES.map((c) => {
      const y = {
        field: 'value',
        type: 'quantitative' as const,
        title: null,
        ...(c.key === 'rewards/accuracies' ? { scale: { domain: [0, 1] } } : { scale: { zero: false } }),
      };
      const rows = byKey[c.key] ?? [];
      return {
        width: 180,
        height: 170,
        title: { text: c.title, fontSize: 12, anchor: 'middle' as const },
        layer: [
          { data: { values: stageEnds.map((step) => ({ step })) }, mark: { type: 'rule' as const, color: '#bbb', strokeDash: [3, 3] }, encoding: { x } },
          {
            data: { values: rows.filter((r) => r.kind !== 'smoothed') },
            mark: { type: 'line' as const, point: points, strokeWidth: 1, opacity: rows.some((r) => r.kind === 'smoothed') ? 0.3 : 1, aria: false, ...(many ? {} : { color: '#4c78a8' }) },
            encoding: { x, y, detail: { field: 'run' }, ...color },
          },
          {
            data: { values: rows.filter((r) => r.kind === 'smoothed') },
            mark: { type: 'line' as const, strokeWidth: 2, aria: false, ...(many ? {} : { color: '#4c78a8' }) },
            encoding: { x, y, detail: { field: 'run' }, ...color },
          },
        ],
      };
    }),
  };
}

export interface PassCiRow {
  step: number;
  arm: string;
  mean: number;
  lo: number;
  hi: number;
}

/** pass@1 per evaluation step and arm as the mean with its 95% interval (a band and bars), stage ends marked. */
export function passCiSpec(rows: PassCiRow[], marks: PassMark[], arms: string[], subtitle: string): TopLevelSpec {
  const x = { field: 'step', type: 'quantitative' as const, title: 'step', scale: { nice: false, padding: 24 } };
  const hiMax = Math.min(1, Math.max(0.05, ...rows.map((r) => r.hi)) * 1.15);
  const y = { field: 'mean', type: 'quantitative' as const, title: 'held-out pass@1', scale: { domain: [0, Number(hiMax.toFixed(2))] } };
  return {
    ...BASE,
    title: { text: 'Held-out pass@1 after each stage, mean and 95% CI', subtitle },
    width: 520,
    height: 260,
    layer: [
      { data: { values: marks }, mark: { type: 'rule', color: '#bbb', strokeDash: [3, 3] }, encoding: { x } },
      {
        data: { values: marks },
        mark: { type: 'text', color: '#555', fontSize: 10, baseline: 'top', lineBreak: ' · ', dy: 2 },
        encoding: { x, y: { value: 0 }, text: { field: 'label' } },
      },
      {
        data: { values: rows },
        layer: [
          { mark: { type: 'area', opacity: 0.15 }, encoding: { y: { ...y, field: 'lo' }, y2: { field: 'hi' } } },
          { mark: { type: 'rule', strokeWidth: 1.5 }, encoding: { y: { ...y, field: 'lo' }, y2: { field: 'hi' } } },
          { mark: { type: 'line', strokeWidth: 1.5 }, encoding: { y } },
          { mark: { type: 'point', filled: true, size: 40 }, encoding: { y } },
        ],
        encoding: { x, color: armColor(arms) },
      },
    ],
  };
}

export interface PassRow {
  /** Optimizer step of the evaluation. */
  step: number;
  arm: string;
  pass: number;
}

export interface PassMark {
  step: number;
  /** `step N`, after the stage when known (`stage 1 · step 8`, drawn on two lines). */
  label: string;
}

/**
 * pass@1 against the optimizer step (a quantitative axis, so uneven stage lengths show), one line with a dot per
 * evaluation for each arm; a dashed rule and a label mark each evaluation point. As wide as the other figures.
 */
export function passSpec(rows: PassRow[], marks: PassMark[], arms: string[], subtitle: string): TopLevelSpec {
  const x = { field: 'step', type: 'quantitative' as const, title: 'step', scale: { nice: false, padding: 24 } };
  return {
    ...BASE,
    title: { text: 'pass@1 after each stage', subtitle },
    width: 520,
    height: 260,
    layer: [
      { data: { values: marks }, mark: { type: 'rule', color: '#bbb', strokeDash: [3, 3] }, encoding: { x } },
      {
        data: { values: marks },
        mark: { type: 'text', color: '#555', fontSize: 10, baseline: 'top', lineBreak: ' · ', dy: 2 },
        encoding: { x, y: { value: 0 }, text: { field: 'label' } },
      },
      {
        data: { values: rows },
        layer: [
          { mark: { type: 'line', strokeWidth: 1.5 } },
          { mark: { type: 'point', filled: true, size: 50 } },
          { mark: { type: 'text', dy: -8, fontSize: 10, color: '#333' }, encoding: { text: { field: 'pass', type: 'quantitative', format: '.2f' } } },
        ],
        encoding: { x, y: { field: 'pass', type: 'quantitative', title: 'pass@1', scale: { domain: [0, 1] } }, color: armColor(arms) },
      },
    ],
  };
}

/** Short numbers for labels: 4 significant digits. */
export function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  return Math.abs(x) >= 1e4 || (Math.abs(x) < 1e-3 && x !== 0) ? x.toExponential(2) : Number(x.toPrecision(4)).toString();
}

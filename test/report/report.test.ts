// `report` on synthetic run and experiment folders: the four SVGs exist, are well-formed, carry one mark per pair /
// bar / percentile and their titles; report.html references them; optional inputs may be missing; errors name lines.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import yargs from 'yargs';
import type { CommandModule } from 'yargs';
import { afterAll, describe, expect, it } from 'vitest';
import { reportCommand } from '../../src/cli/report.js';
import { runReport } from '../../src/report/run.js';
import { readScores } from '../../src/report/difficulty.js';
import { loadReportData } from '../../src/report/load.js';
import { FIGURE_FILES, writeReport } from '../../src/report/report.js';
import { distanceDifficulties } from '../../src/curriculum/difficulty.js';
import { InputError } from '../../src/util/errors.js';

const root = mkdtempSync(join(tmpdir(), 'report-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const N_PAIRS = 12;
const STEPS = 20;

function jsonl(file: string, rows: object[]): void {
  writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
}

/** A run folder: metrics for STEPS steps, first-epoch losses for N_PAIRS pairs, scores, three stage evaluations. */
function makeRun(dir: string, opts: { pairs?: boolean; scores?: boolean; evals?: boolean; shift?: number } = {}): string {
  mkdirSync(dir, { recursive: true });
  const s = opts.shift ?? 0;
  jsonl(join(dir, 'metrics.jsonl'), Array.from({ length: STEPS }, (_, i) => ({
    loss: Math.LN2 - 0.01 * i - s, 'rewards/chosen': 0.01 * i, 'rewards/rejected': -0.01 * i, 'rewards/accuracies': Math.min(1, i / STEPS + s),
    'rewards/margins': 0.02 * i + s, 'logps/chosen': -10, 'logps/rejected': -12, grad_norm: 1, learning_rate: 1e-4, epoch: (i + 1) / 5, step: i + 1,
  })));
  if (opts.pairs !== false) jsonl(join(dir, 'pair_losses.jsonl'), Array.from({ length: N_PAIRS }, (_, i) => ({ index: (i * 5) % N_PAIRS, step: 1 + (i >> 2), loss: 0.7 - 0.02 * i - s, margin: 0.01 * i })));
  if (opts.scores !== false) jsonl(join(dir, 'scores.jsonl'), Array.from({ length: N_PAIRS }, (_, i) => ({ prompt: 'p', chosen: 'c', rejected: 'r', chosen_logp: -10, rejected_logp: -12, chosen_tokens: 4, rejected_tokens: 4, distance: (i % 2 ? -1 : 1) * 0.1 * i, percentile: 0 })));
  if (opts.evals !== false) jsonl(join(dir, 'eval.jsonl'), [0, 8, 20].map((step, k) => ({ step, stage: k === 0 ? null : k, 'pass@1': 0.1 + 0.1 * k + s, 'pass@5': 0.3 }))
    .map((r) => (r.stage === null ? { step: r.step, 'pass@1': r['pass@1'] } : r)));
  return dir;
}

/** Well-formedness by a tag stack: every open tag closed in order, no stray `<` or bare `&` in text. */
function assertWellFormed(xml: string): void {
  const stack: string[] = [];
  const tag = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"]*")*)\s*(\/?)>|<!--[\s\S]*?-->/g;
  let last = 0;
  for (let m = tag.exec(xml); m; m = tag.exec(xml)) {
    const text = xml.slice(last, m.index);
    expect(text, `text before offset ${m.index}`).not.toMatch(/<|&(?![a-z]+;|#\d+;|#x[0-9a-f]+;)/i);
    last = tag.lastIndex;
    if (m[0].startsWith('<!--')) continue;
    if (m[1]) expect(stack.pop(), `closing </${m[2]}> at ${m.index}`).toBe(m[2]);
    else if (!m[4]) stack.push(m[2]);
  }
  expect(xml.slice(last).trim()).toBe('');
  expect(stack).toEqual([]);
}

/** The children of the first mark group whose class starts with `cls`, e.g. `mark-symbol role-mark`. */
function markGroup(svg: string, cls: string): string {
  const start = svg.indexOf(`<g class="${cls}`);
  expect(start, `no group ${cls}`).toBeGreaterThan(-1);
  const open = svg.indexOf('>', start) + 1;
  return svg.slice(open, svg.indexOf('</g>', open));
}
const count = (s: string, re: RegExp) => (s.match(re) ?? []).length;
const read = (dir: string, f: string) => readFileSync(join(dir, f), 'utf8');

describe('report on a run folder', () => {
  const dir = makeRun(join(root, 'run'));
  const result = writeReport(dir);

  it('writes four well-formed SVGs, each referenced by report.html', async () => {
    const r = await result;
    expect(r.kind).toBe('run');
    const html = read(dir, 'report.html');
    for (const f of Object.values(FIGURE_FILES)) {
      const svg = read(dir, f);
      expect(svg.startsWith('<svg')).toBe(true);
      expect(svg).toMatch(/xmlns="http:\/\/www.w3.org\/2000\/svg"/);
      assertWellFormed(svg);
      expect(html).toContain(`<img src="${f}"`);
    }
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html).not.toMatch(/<script|<link|https?:\/\/(?!www\.w3\.org)/);
    assertWellFormed(html.replace(/^<!doctype html>/, '').replace(/<meta[^>]*>/g, '').replace(/<img[^>]*>/g, ''));
  });

  it('histogram: three percentile rules labelled p10/p50/p90, axis titles', async () => {
    await result;
    const svg = read(dir, FIGURE_FILES.histogram);
    expect(count(markGroup(svg, 'mark-rule role-mark'), /<line/g)).toBe(3);
    const labels = markGroup(svg, 'mark-text role-mark');
    for (const p of ['p10', 'p50', 'p90']) expect(labels).toContain(`>${p} `);
    // |distance| of 0, 0.1, ..., 1.1: numpy's p50 is 0.55.
    expect(labels).toContain('>p50 0.55<');
    expect(svg).toContain('>|distance|</text>');
    expect(svg).toContain('>pairs</text>');
    expect(svg).toContain(`Difficulty of the ${N_PAIRS} training pairs`);
  });

  it('scatter: one dot per pair, axis titles and the ln 2 line', async () => {
    await result;
    const svg = read(dir, FIGURE_FILES.scatter);
    expect(count(markGroup(svg, 'mark-symbol role-mark'), /<path/g)).toBe(N_PAIRS);
    expect(svg).toContain('>first-epoch DPO loss</text>');
    expect(svg).toContain('>|distance|</text>');
    expect(svg).toContain('ln 2');
  });

  it('training curves: three panels with the raw line and its smoothed curve each, stage ends marked, narrower than the page', async () => {
    await result;
    const svg = read(dir, FIGURE_FILES.curves);
    expect(count(svg, /class="mark-line role-mark/g)).toBe(6);
    expect(svg).toContain('class="mark-rule role-mark');
    expect(Number(/^<svg[^>]*\swidth="([\d.]+)"/.exec(svg)![1])).toBeLessThanOrEqual(1008);
    for (const t of ['loss', 'rewards/margins', 'rewards/accuracies', 'step']) expect(svg).toContain(`>${t}</text>`);
  });

  it('pass@1: one dot per evaluation on a step axis, labelled with stage and step, as wide as the page allows', async () => {
    await result;
    const svg = read(dir, FIGURE_FILES.pass);
    expect(count(markGroup(svg, 'mark-symbol role-mark'), /<path/g)).toBe(3);
    for (const t of ['step 0', 'pass@1', 'step']) expect(svg).toContain(`>${t}</text>`);
    // The x axis is the optimizer step (quantitative: uneven stages show), with numeric ticks.
    expect(svg).toMatch(/role-axis[\s\S]*>20<\/text>/);
    // report.html shows figures at most 1008 px wide (main 1080 px less padding): the SVG is drawn at that size or less.
    expect(Number(/^<svg[^>]*\swidth="([\d.]+)"/.exec(svg)![1])).toBeLessThanOrEqual(1008);
    // `stage 1 · step 8` is drawn on two lines.
    expect(svg).toMatch(/<tspan>stage 1<\/tspan><tspan [^>]*>step 8<\/tspan>/);
  });

  it('summary tables: final metrics and pass@1 per stage', async () => {
    const r = await result;
    expect(r.summaries).toEqual([{ arm: 'run', steps: STEPS, epoch: 4, loss: Math.LN2 - 0.19, margins: 0.38, accuracies: 0.95, lastPass1: 0.30000000000000004 }]);
    const html = read(dir, 'report.html');
    expect(html).toContain(`<td>run</td><td>20</td><td>4.00</td><td>${(Math.LN2 - 0.19).toFixed(4)}</td><td>0.3800</td><td>0.9500</td><td>0.300</td>`);
    expect(html).toContain('<tr><td>stage 1 · step 8</td><td>0.200</td></tr>');
  });
});

describe('missing optional inputs', () => {
  it('metrics.jsonl alone: curves drawn, the rest skipped with a note, stale SVGs removed', async () => {
    const dir = makeRun(join(root, 'bare'));
    await writeReport(dir);
    for (const f of ['pair_losses.jsonl', 'scores.jsonl', 'eval.jsonl']) rmSync(join(dir, f));
    const r = await writeReport(dir);
    expect(r.figures.map((f) => f.file)).toEqual([null, null, FIGURE_FILES.curves, null]);
    for (const f of [FIGURE_FILES.histogram, FIGURE_FILES.scatter, FIGURE_FILES.pass]) expect(existsSync(join(dir, f))).toBe(false);
    const html = read(dir, 'report.html');
    expect(count(html, /class="skipped">Skipped: /g)).toBe(3);
    expect(html).toContain('No evaluation with pass@1');
    expect(html).toContain(`<img src="${FIGURE_FILES.curves}"`);
  });

  it('difficulty.json wins over scores.jsonl; its name and percentiles are used', async () => {
    const dir = makeRun(join(root, 'dj'), { evals: false });
    writeFileSync(join(dir, 'difficulty.json'), JSON.stringify({ difficulty: [...Array.from({ length: N_PAIRS - 1 }, (_, i) => i / 10), null], name: 'ast distance', percentiles: { p10: 0.125, p50: 0.5, p90: 0.875 } }));
    const r = await writeReport(dir);
    const hist = read(dir, FIGURE_FILES.histogram);
    expect(hist).toContain('>ast distance</text>');
    expect(markGroup(hist, 'mark-text role-mark')).toContain('>p90 0.875<');
    // The null pair (index 11) has no difficulty: 11 dots, and a note says so.
    expect(count(markGroup(read(dir, FIGURE_FILES.scatter), 'mark-symbol role-mark'), /<path/g)).toBe(N_PAIRS - 1);
    expect(r.notes.join('\n')).toMatch(/1 of 12 pairs in pair_losses.jsonl have no difficulty/);
    expect(r.figures[3].skipped).toMatch(/no eval.jsonl/);
  });

  it("without scores, the run's reference cache gives the per-token |distance|", async () => {
    const dir = makeRun(join(root, 'refcache'), { scores: false, evals: false });
    const n = N_PAIRS;
    writeFileSync(join(dir, 'ref_logps.json'), JSON.stringify({ format: 'dpo-ref-logps', version: 1, key: 'k',
      chosen: Array.from({ length: n }, (_, i) => -i), rejected: Array.from({ length: n }, (_, i) => -2 * i),
      chosen_tokens: Array(n).fill(1), rejected_tokens: Array(n).fill(4) }));
    const data = loadReportData(dir);
    // -i/1 - (-2i/4) = -i/2, so |distance| = i/2.
    expect([...data.difficulty!.byIndex].slice(0, 3)).toEqual([[0, 0], [1, 0.5], [2, 1]]);
    const r = await writeReport(dir);
    expect(r.figures.map((f) => f.file !== null)).toEqual([true, true, true, false]);
    expect(count(markGroup(read(dir, FIGURE_FILES.scatter), 'mark-symbol role-mark'), /<path/g)).toBe(N_PAIRS);
  });

  it('scores match pairs by their `index` field when present, else by line order (with a note)', () => {
    const file = join(root, 'idx-scores.jsonl');
    jsonl(file, [{ index: 5, distance: -2 }, { index: 0, distance: 1 }]);
    const notes: string[] = [];
    expect([...readScores(file, null, notes).byIndex]).toEqual([[5, 2], [0, 1]]);
    expect(notes).toEqual([]);
    jsonl(file, [{ distance: -2 }, { distance: 1 }]);
    // signed is the curriculum's -distance (the pairs the reference already prefers are easy), as training orders them.
    expect([...readScores(file, { distanceSign: 'signed' }, notes).byIndex]).toEqual([[0, 2], [1, -1]]);
    expect([...readScores(file, { distanceSign: 'signed' }, notes).byIndex.values()]).toEqual(distanceDifficulties(
      [{ chosenLogp: -2, chosenTokens: 1, rejectedLogp: 0, rejectedTokens: 1 }, { chosenLogp: 1, chosenTokens: 1, rejectedLogp: 0, rejectedTokens: 1 }], 'mean', 'signed'));
    expect(notes[0]).toMatch(/matched to pairs by line order/);
  });
});

describe('report on an experiment folder', () => {
  it('arms side by side: a pass@1 line per arm, dots per arm, the printed pass@1 table', async () => {
    const dir = join(root, 'exp');
    makeRun(join(dir, 'runs', 'stages'), { scores: false });
    makeRun(join(dir, 'runs', 'shuffle'), { scores: false, shift: 0.05 });
    jsonl(join(dir, 'scores.jsonl'), Array.from({ length: N_PAIRS }, (_, i) => ({ distance: i })));
    writeFileSync(join(dir, 'experiment.json'), JSON.stringify({ arms: [{ name: 'stages', run_dir: 'runs/stages' }, { name: 'shuffle', run_dir: 'runs/shuffle' }, { name: 'distance', run_dir: 'runs/distance' }] }));
    const printed: string[] = [];
    const noted: string[] = [];
    await runReport(dir, (l) => printed.push(l), (l) => noted.push(l));
    const pass = read(dir, FIGURE_FILES.pass);
    expect(count(markGroup(pass, 'mark-symbol role-mark'), /<path/g)).toBe(6);
    for (const arm of ['stages', 'shuffle']) expect(pass).toContain(`>${arm}</text>`);
    expect(count(markGroup(read(dir, FIGURE_FILES.scatter), 'mark-symbol role-mark'), /<path/g)).toBe(2 * N_PAIRS);
    // Three panels, a raw line and a smoothed one per arm in each.
    expect(count(read(dir, FIGURE_FILES.curves), /class="mark-line role-mark/g)).toBe(12);
    const out = printed.join('\n');
    expect(out).toMatch(/^pass@1 +stages +shuffle$/m);
    expect(out).toMatch(/stage 2 · step 20\s+0\.300\s+0\.350/);
    expect(noted.join('\n')).toMatch(/arm "distance": .* not found .*left out/);
    const html = read(dir, 'report.html');
    expect(html).toContain('<th>evaluation</th><th>stages</th><th>shuffle</th>');
  });
});

describe('errors', () => {
  it('a folder without metrics.jsonl is refused, naming the file', async () => {
    const dir = join(root, 'empty');
    mkdirSync(dir);
    await expect(writeReport(dir)).rejects.toThrow(InputError);
    await expect(writeReport(dir)).rejects.toThrow(/metrics\.jsonl: file not found/);
  });

  it('a bad line names file:line; a torn last line is skipped with a note', async () => {
    const dir = makeRun(join(root, 'torn'));
    const m = join(dir, 'metrics.jsonl');
    writeFileSync(m, readFileSync(m, 'utf8') + '{"loss": 0.5, "st');
    const data = loadReportData(dir);
    expect(data.arms[0].metrics).toHaveLength(STEPS);
    expect(data.notes[0]).toMatch(/metrics\.jsonl:21: last line is not complete JSON/);
    writeFileSync(m, '{"loss": 1, "step": 1}\nnot json\n{"loss": 1, "step": 2}\n');
    expect(() => loadReportData(dir)).toThrow(/metrics\.jsonl:2: invalid JSON/);
    writeFileSync(m, '{"loss": 1}\n');
    expect(() => loadReportData(dir)).toThrow(/metrics\.jsonl:1: "step": missing \(expected a finite number\)/);
  });

  it('experiment.json with a bad arm names the key', () => {
    const dir = join(root, 'badexp');
    mkdirSync(dir);
    writeFileSync(join(dir, 'experiment.json'), JSON.stringify({ arms: [{ name: 'a' }] }));
    expect(() => loadReportData(dir)).toThrow(/experiment\.json: "arms"\[0\]\.run_dir: undefined \(expected a run folder path\)/);
  });
});

describe('yargs wiring', () => {
  it('report <dir> writes the report', async () => {
    const dir = makeRun(join(root, 'cli'), { pairs: false });
    const log = console.log;
    const err = process.stderr.write;
    console.log = () => {};
    process.stderr.write = (() => true) as typeof process.stderr.write;
    try {
      await yargs(['report', dir]).command(reportCommand as unknown as CommandModule).strict().fail((msg, e) => {
        throw e ?? new Error(msg);
      }).exitProcess(false).parseAsync();
    } finally {
      console.log = log;
      process.stderr.write = err;
    }
    expect(existsSync(join(dir, 'report.html'))).toBe(true);
    expect(existsSync(join(dir, FIGURE_FILES.scatter))).toBe(false);
  });
});

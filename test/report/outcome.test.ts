// The report's answer on a small synthetic experiment folder (2 arms x 2 seeds, per-task completions at steps 0, 4
// and 8, tasks of two levels): the pass@1, difference and gain tables hold the means computed here directly from the
// pass counts, with intervals around them; per-level rows; the completions linked; the Settings table names what
// differs between arms (the pruning flag, the curriculum), the budget and the pruning counts; the interval figure fits the page.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runReport } from '../../src/report/run.js';
import { writeReport } from '../../src/report/report.js';

const root = mkdtempSync(join(tmpdir(), 'report-outcome-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const ARMS = ['shuffle', 'stages+prune-incorrect-chosen'];
const SEEDS = [7, 8];
const STEPS = [0, 4, 8];
const TASKS = Array.from({ length: 6 }, (_, i) => ({ id: `w/${i}`, level: i < 3 ? 1 : 2 }));
const N = 2;

/** Passing samples of a task (of N): step 0 is the same model in every arm; later steps differ by arm, seed and task. */
function passes(arm: number, seed: number, step: number, task: number): number {
  if (step === 0) return (task + seed) % 2;
  return Math.min(N, (task + seed + arm + step / 4) % 3);
}

function jsonl(file: string, rows: object[]): void {
  writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
}

function makeExperiment(dir: string): void {
  const entries = [];
  for (const seed of SEEDS) {
    for (const [a, arm] of ARMS.entries()) {
      const name = `${arm}/seed-${seed}`;
      const run = join(dir, name);
      mkdirSync(join(run, 'completions'), { recursive: true });
      entries.push({ name, arm, seed, run_dir: name, status: 'done' });
      jsonl(join(run, 'metrics.jsonl'), Array.from({ length: 8 }, (_, i) => ({ step: i + 1, loss: 0.69 - 0.01 * i, 'rewards/margins': 0.1 * i, 'rewards/accuracies': 0.5 })));
      jsonl(join(run, 'eval.jsonl'), STEPS.map((step, k) => ({ step, stage: k === 0 ? null : k, 'pass@1': 0 })));
      writeFileSync(join(run, 'run_config.json'), JSON.stringify({ model: 'm', data: 'pairs.jsonl', curriculum: arm.split('+')[0], seed, beta: 0.1, batchSize: 4, gradAccum: 1,
        pruneIncorrectChosen: a === 1, lossWeights: null, outputDir: run, max_steps: 8, steps_per_epoch: a === 1 ? 2 : 3, epochs: 1 }));
      if (a === 1) writeFileSync(join(run, 'pruning.json'), JSON.stringify({ total: 10, incorrectChosen: 3, commentOnly: 0, kept: 7, pruneIncorrectChosen: true, pruneCommentOnly: false }));
      for (const step of STEPS) {
        jsonl(join(run, 'completions', `step-${step}.jsonl`), TASKS.flatMap((t, ti) => Array.from({ length: N }, (_, j) => ({
          task_id: t.id, completion: `    return ${j}\n`, result: j < passes(a, seed, step, ti) ? 'passed' : 'failed: ', passed: j < passes(a, seed, step, ti), passed_tests: 1, total_tests: 1, level: t.level,
        }))));
      }
    }
  }
  writeFileSync(join(dir, 'experiment.json'), JSON.stringify({ format: 'dpo-experiment', version: 1, arms: entries, arm_names: ARMS, seeds: SEEDS, max_steps: 8, eval_steps: STEPS, config: {} }));
}

/** Mean over seeds and the given tasks of pass@1, straight from the counts. */
function mean(arm: number, step: number, tasks = TASKS.map((_, i) => i)): number {
  return SEEDS.reduce((s, seed) => s + tasks.reduce((t, ti) => t + passes(arm, seed, step, ti) / N, 0) / tasks.length, 0) / SEEDS.length;
}

describe('report answer tables (issue 16 item 6)', () => {
  const dir = join(root, 'exp');
  makeExperiment(dir);
  const result = writeReport(dir);

  it('pass@1 per step and arm, differences from shuffle and gains over step 0: the direct means, inside their intervals', async () => {
    const r = await result;
    const st = r.outcome!.overall;
    expect(st.steps).toEqual(STEPS);
    expect([st.tasks, st.seeds, st.baseline]).toEqual([6, 2, 'shuffle']);
    expect(st.arms.map((a) => a.arm)).toEqual(ARMS);
    st.arms.forEach((a, ai) => {
      STEPS.forEach((s, i) => {
        expect(a.pass[i]!.mean).toBeCloseTo(mean(ai, s), 12);
        expect(a.pass[i]!.lo).toBeLessThanOrEqual(a.pass[i]!.mean + 1e-12);
        expect(a.pass[i]!.hi).toBeGreaterThanOrEqual(a.pass[i]!.mean - 1e-12);
        if (s > 0) expect(a.gain[i]!.mean).toBeCloseTo(mean(ai, s) - mean(ai, 0), 12);
      });
    });
    expect(st.arms[1].diff[2]!.mean).toBeCloseTo(mean(1, 8) - mean(0, 8), 12);
    // Step 0 is the same model in both arms: no difference, and a zero-width interval (paired resamples).
    expect(st.arms[1].diff[0]).toEqual({ mean: 0, lo: 0, hi: 0 });
  });

  it('per level: the tasks of each level only', async () => {
    const r = await result;
    expect(r.outcome!.byLevel.map((l) => [l.level, l.tasks])).toEqual([[1, 3], [2, 3]]);
    const l2 = r.outcome!.byLevel[1].stats;
    expect(l2.arms[0].pass[2]!.mean).toBeCloseTo(mean(0, 8, [3, 4, 5]), 12);
  });

  it('report.html: the tables, the completions linked, the settings that differ, the budget and the pruning counts', async () => {
    const r = await result;
    const html = readFileSync(r.html, 'utf8');
    const cell = (x: { mean: number; lo: number; hi: number }, signed = false) => {
      const f = (v: number) => (signed && v >= 0 ? '+' : '') + v.toFixed(3);
      return `${f(x.mean)} [${f(x.lo)}, ${f(x.hi)}]`;
    };
    const st = r.outcome!.overall;
    expect(html).toContain('Held-out pass@1: mean [95% CI]');
    expect(html).toContain(`<td>stage 2 · step 8</td><td>${cell(st.arms[0].pass[2]!)}</td><td>${cell(st.arms[1].pass[2]!)}</td>`);
    expect(html).toContain('Difference from shuffle');
    expect(html).toContain(cell(st.arms[1].diff[2]!, true));
    expect(html).toContain('Gain over the SFT model');
    expect(html).toContain('<td>level 2 (3 tasks): step 0</td>');
    for (const seed of SEEDS) for (const step of STEPS) expect(html).toContain(`href="stages+prune-incorrect-chosen/seed-${seed}/completions/step-${step}.jsonl"`);
    // One column per arm; a cell lists its runs' distinct values.
    expect(html).toContain('<tr><td>seed</td><td>7, 8</td><td>7, 8</td></tr>');
    expect(html).toContain('<tr><td>pruneIncorrectChosen</td><td>false</td><td>true</td></tr>');
    expect(html).toContain('<tr><td>pairs trained</td><td>-</td><td>7 of 10</td></tr>');
    expect(html).toContain('<tr><td>pruned: incorrect chosen</td><td>-</td><td>3</td></tr>');
    expect(html).toContain('Budget: 8 steps of 4 x 1 pairs per run');
    expect(html).not.toContain('<td>outputDir</td>'); // differs by construction: not a setting
    expect(html).not.toContain('<td>lossWeights</td>'); // the same in every run: not shown
    const svg = readFileSync(join(dir, 'pass_at_1_ci.svg'), 'utf8');
    expect(Number(/^<svg[^>]*\swidth="([\d.]+)"/.exec(svg)![1])).toBeLessThanOrEqual(1008);
    expect(r.figures[0].file).toBe('pass_at_1_ci.svg');
  });

  it('the CLI prints the answer table', async () => {
    await result;
    const printed: string[] = [];
    await runReport(dir, (l) => printed.push(l), () => {});
    const out = printed.join('\n');
    expect(out).toMatch(/6 tasks x 2 seed\(s\), paired bootstrap over tasks \(2000 resamples\)/);
    expect(out).toMatch(/^gain over SFT @8 /m);
    expect(out).toMatch(/^vs shuffle @8 /m);
  });
});

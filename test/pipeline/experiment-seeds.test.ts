// experiment --seeds (issue 16 items 5-7) in-process on the tiny model: 2 arms (one pruning incorrect chosen) x 2
// seeds from the same model and pairs, one step budget (the pruned arm, with fewer pairs, runs as many steps), every
// run evaluated at the same steps with per-task completions saved (with the tasks' levels); a second call resumes by
// (arm, seed) and skips every finished run; the report has the interval tables.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runExperiment } from '../../src/pipeline/experiment.js';
import { ROOT, SAMPLE_PAIRS, readJsonl, runConfig, tempDir, tinyModelDir } from '../train/helpers.js';

let root: string;
let model: string;
let data: string;
let tasks: string;
const WRONG = [1, 4]; // pairs whose chosen fails a test

beforeAll(async () => {
  root = tempDir('exp-seeds');
  model = await tinyModelDir(root);
  const lines = readFileSync(SAMPLE_PAIRS, 'utf8').split('\n').filter((l) => l.trim()).slice(0, 8).map((l, i) => {
    const p = JSON.parse(l) as Record<string, number>;
    return JSON.stringify(WRONG.includes(i) ? { ...p, chosen_passed: p.tests_total - 1 } : p);
  });
  data = join(root, 'pairs.jsonl');
  writeFileSync(data, lines.join('\n') + '\n');
  const t = readFileSync(join(ROOT, 'data', 'tasks', 'humaneval-sample.jsonl'), 'utf8').split('\n').filter((l) => l.trim()).slice(0, 2);
  tasks = join(root, 'tasks.jsonl');
  writeFileSync(tasks, t.map((l, i) => JSON.stringify({ ...JSON.parse(l), level: i + 1 })).join('\n') + '\n');
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('experiment --seeds', () => {
  it('arms x seeds, one budget, the same evaluation steps, completions saved; resumes by (arm, seed)', async () => {
    const out = join(root, 'exp');
    const cfg = runConfig({ model, data, 'eval-tasks': tasks, 'eval-max-new-tokens': 4, 'output-dir': out, seed: 5, 'learning-rate': 1e-3, 'lora-dropout': 0 });
    const lines: string[] = [];
    await runExperiment(cfg, 'shuffle,stages+prune-incorrect-chosen', (l) => lines.push(l), { seeds: 2 });
    const log = lines.join('\n');
    expect(log).toContain('content pruning: 2 of 8 pairs dropped (2 incorrect chosen, 0 comment-only); 6 kept');
    const exp = JSON.parse(readFileSync(join(out, 'experiment.json'), 'utf8')) as { arms: { name: string; arm: string; seed: number; status: string }[]; max_steps: number; eval_steps: number[]; seeds: number[]; arm_names: string[] };
    expect(exp.arms.map((a) => [a.name, a.arm, a.seed, a.status])).toEqual([
      ['shuffle/seed-5', 'shuffle', 5, 'done'], ['stages+prune-incorrect-chosen/seed-5', 'stages+prune-incorrect-chosen', 5, 'done'],
      ['shuffle/seed-6', 'shuffle', 6, 'done'], ['stages+prune-incorrect-chosen/seed-6', 'stages+prune-incorrect-chosen', 6, 'done'],
    ]);
    expect([exp.seeds, exp.arm_names]).toEqual([[5, 6], ['shuffle', 'stages+prune-incorrect-chosen']]);
    // 8 pairs in batches of 2: 4 steps for one epoch; the pruned arm's 6 pairs run for the same 4 steps.
    expect(exp.max_steps).toBe(4);
    expect(exp.eval_steps[0]).toBe(0);
    expect(exp.eval_steps.at(-1)).toBe(4);
    for (const a of exp.arms) {
      const dir = join(out, a.name);
      const rc = JSON.parse(readFileSync(join(dir, 'run_config.json'), 'utf8')) as Record<string, unknown>;
      expect([rc.seed, rc.max_steps, rc.curriculum, rc.pruneIncorrectChosen]).toEqual([a.seed, 4, a.arm.split('+')[0], a.arm.includes('+')]);
      expect(readJsonl(join(dir, 'metrics.jsonl'))).toHaveLength(4);
      expect(readJsonl<{ step: number }>(join(dir, 'eval.jsonl')).map((e) => e.step)).toEqual(exp.eval_steps);
      for (const step of exp.eval_steps) {
        const c = readJsonl<{ task_id: string; level: number; completion: string; passed: boolean }>(join(dir, 'completions', `step-${step}.jsonl`));
        expect(c.map((x) => [x.task_id, x.level])).toEqual([['HumanEvalSample/0', 1], ['HumanEvalSample/1', 2]]);
        expect(typeof c[0].completion).toBe('string');
      }
      if (a.arm.includes('+')) expect(JSON.parse(readFileSync(join(dir, 'pruning.json'), 'utf8'))).toMatchObject({ total: 8, incorrectChosen: 2, commentOnly: 0, kept: 6 });
      // The pruned pairs never reach training.
      const trained = new Set(readJsonl<{ index: number }>(join(dir, 'pair_losses.jsonl')).map((p) => p.index));
      if (a.arm.includes('+')) for (const w of WRONG) expect(trained.has(w)).toBe(false);
    }
    // Step 0 is the SFT model in every arm: the same completions (greedy or the seed's sampling) in both arms of a seed.
    for (const seed of [5, 6]) {
      expect(readFileSync(join(out, `shuffle/seed-${seed}`, 'completions', 'step-0.jsonl'), 'utf8'))
        .toBe(readFileSync(join(out, `stages+prune-incorrect-chosen/seed-${seed}`, 'completions', 'step-0.jsonl'), 'utf8'));
    }
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    expect(html).toContain('Held-out pass@1: mean [95% CI]');
    expect(html).toContain('href="shuffle/seed-6/completions/step-4.jsonl"');
    expect(existsSync(join(out, 'pass_at_1_ci.svg'))).toBe(true);

    const again: string[] = [];
    await runExperiment(cfg, 'shuffle,stages+prune-incorrect-chosen', (l) => again.push(l), { seeds: 2 });
    expect(again.filter((l) => /already done, skipping/.test(l))).toEqual([
      'arm shuffle seed 5: already done, skipping', 'arm stages+prune-incorrect-chosen seed 5: already done, skipping',
      'arm shuffle seed 6: already done, skipping', 'arm stages+prune-incorrect-chosen seed 6: already done, skipping',
    ]);
  }, 240_000);
});

// `experiment` end to end on the tiny model: both arms trained with the same budget from the same initial adapter,
// evaluated at the same steps, experiment.json + report written; a rerun skips finished arms.
import { describe, it, expect, beforeAll } from 'vitest';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, tinyModelDir, pairsFile, runTrain, readJsonl, ROOT } from '../train/helpers.js';

let root: string;
let args: string[];

beforeAll(async () => {
  root = tempDir('exp');
  const model = await tinyModelDir(root);
  const data = pairsFile(root, 8);
  args = ['experiment', '--model', model, '--data', data, '--arms', 'stages,shuffle', '--eval-tasks', join(ROOT, 'data', 'tasks', 'humaneval-sample.jsonl'),
    '--eval-max-new-tokens', '8', '--backend', 'cpu', '--max-length', '64', '--max-prompt-length', '32', '--batch-size', '2', '--lora-r', '4',
    '--lora-dropout', '0', '--learning-rate', '1e-3', '--output-dir', join(root, 'exp')];
});

describe('experiment', () => {
  it('trains both arms with the same budget, evaluates them at the same steps, and writes the report', async () => {
    const r = await runTrain(args);
    expect(r.code, r.stderr).toBe(0);
    const exp = JSON.parse(readFileSync(join(root, 'exp', 'experiment.json'), 'utf8'));
    expect(exp.arms.map((a: { name: string; status: string }) => [a.name, a.status])).toEqual([['stages', 'done'], ['shuffle', 'done']]);
    const steps = (arm: string) => readJsonl<{ step: number }>(join(root, 'exp', arm, 'eval.jsonl')).map((l) => l.step);
    expect(steps('stages')).toEqual(exp.eval_steps);
    expect(steps('shuffle')).toEqual(exp.eval_steps);
    expect(exp.eval_steps[0]).toBe(0);
    expect(exp.eval_steps.at(-1)).toBe(exp.max_steps);
    // Same initial adapter: the first step's loss is ln 2 in both arms, and both run the same number of steps.
    for (const arm of ['stages', 'shuffle']) {
      const m = readJsonl(join(root, 'exp', arm, 'metrics.jsonl'));
      expect(m).toHaveLength(exp.max_steps);
      expect(m[0].loss).toBeCloseTo(Math.log(2), 6);
    }
    expect(existsSync(join(root, 'exp', 'report.html'))).toBe(true);
    expect(existsSync(join(root, 'exp', 'pass_at_1.svg'))).toBe(true);

    const again = await runTrain(args);
    expect(again.code).toBe(0);
    expect(again.stderr).toMatch(/arm stages: already done/);
    expect(again.stderr).toMatch(/arm shuffle: already done/);
  });
});

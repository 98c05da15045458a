// experiment --eval-common-seed (issue 16, measuring the DPO gain): every evaluation of a run samples with the run's
// seed, so a policy that did not move gives the same samples at step 0 and at the last step (common random numbers),
// while the default (the seed moves with the step) draws fresh ones. The flag is stored in experiment.json and read
// back on resume.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaults } from '../../src/config/schema.js';
import { RUN_SCHEMA } from '../../src/config/run.js';
import { SAMPLING_DEFAULTS } from '../../src/config/sampling.js';
import { stageSampling } from '../../src/eval/stage.js';
import { runExperiment, storedExperiment } from '../../src/pipeline/experiment.js';
import { ROOT, SAMPLE_PAIRS, runConfig, tempDir, tinyModelDir } from '../train/helpers.js';

let root: string;
let model: string;
let data: string;
let tasks: string;

beforeAll(async () => {
  root = tempDir('exp-common-seed');
  model = await tinyModelDir(root);
  data = join(root, 'pairs.jsonl');
  writeFileSync(data, readFileSync(SAMPLE_PAIRS, 'utf8').split('\n').filter((l) => l.trim()).slice(0, 4).join('\n') + '\n');
  tasks = join(root, 'tasks.jsonl');
  writeFileSync(tasks, readFileSync(join(ROOT, 'data', 'tasks', 'humaneval-sample.jsonl'), 'utf8').split('\n').filter((l) => l.trim()).slice(0, 2).join('\n') + '\n');
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const completions = (dir: string, step: number) => readFileSync(join(dir, 'completions', `step-${step}.jsonl`), 'utf8').split('\n').filter(Boolean)
  .map((l) => (JSON.parse(l) as { completion: string }).completion);

describe('stageSampling', () => {
  it('moves the seed with the step by default; with commonSeed it is the run seed at every step', () => {
    const run = { ...defaults(RUN_SCHEMA), seed: 7 };
    expect(stageSampling(run, 3)).toEqual({ ...SAMPLING_DEFAULTS.stage, seed: 10 });
    expect(stageSampling(run, 3, true)).toEqual({ ...SAMPLING_DEFAULTS.stage, seed: 7 });
    expect(stageSampling(run, 0, true)).toEqual(stageSampling(run, 0));
  });
});

describe('experiment --eval-common-seed', () => {
  it('an unmoved policy samples the same completions at every step; the default draws new ones; resume keeps the setting', async () => {
    // Learning rate 0: the LoRA B stays 0, so the policy at step 2 is the model at step 0.
    const flags = { model, data, 'eval-tasks': tasks, 'eval-max-new-tokens': 6, 'eval-samples': 3, 'eval-temperature': 1.0, 'learning-rate': 0, 'lora-dropout': 0, seed: 4, 'max-steps': 2, 'batch-size': 2 };
    const common = join(root, 'common');
    await runExperiment(runConfig({ ...flags, 'output-dir': common }), 'shuffle', () => {}, { commonEvalSeed: true });
    const moving = join(root, 'moving');
    await runExperiment(runConfig({ ...flags, 'output-dir': moving }), 'shuffle', () => {});
    const [c0, c2, m0, m2] = [completions(join(common, 'shuffle'), 0), completions(join(common, 'shuffle'), 2), completions(join(moving, 'shuffle'), 0), completions(join(moving, 'shuffle'), 2)];
    expect(c0).toHaveLength(6); // 2 tasks x 3 samples
    expect(c2).toEqual(c0);
    expect(m0).toEqual(c0); // step 0 samples with the run seed either way
    expect(m2).not.toEqual(m0);
    expect(JSON.parse(readFileSync(join(common, 'experiment.json'), 'utf8')).common_eval_seed).toBe(true);
    expect(storedExperiment('latest', common).commonEvalSeed).toBe(true);
    expect(storedExperiment('latest', moving).commonEvalSeed).toBe(false);
  });
});

// Issue 12 item 12 for `experiment`: after Ctrl-C the printed command is complete and copy-pasteable, and
// `experiment --resume latest --output-dir X` alone takes the rest (settings and arms) from X/experiment.json and
// finishes every arm. The folder name holds a space and a quote, so the printed command must quote it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../../src/util/errors.js';
import { storedExperiment } from '../../src/pipeline/experiment.js';
import { ROOT, pairsFile, readJsonl, spawnTrain, tempDir, tinyModelDir, waitFor } from '../train/helpers.js';

let root: string;
let model: string;
let data: string;
const TASKS = join(ROOT, 'data', 'tasks', 'humaneval-sample.jsonl');

beforeAll(async () => {
  root = tempDir('exp-resume');
  model = await tinyModelDir(root);
  data = pairsFile(root, 8);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('experiment --resume (item 12)', () => {
  it('after SIGINT the printed command, run as printed in a shell, finishes both arms with the stored settings', async () => {
    const out = join(root, "exp it's");
    const c = spawnTrain(['experiment', '--model', model, '--data', data, '--arms', 'none,shuffle', '--eval-tasks', TASKS, '--eval-max-new-tokens', '4',
      '--backend', 'cpu', '--max-length', '64', '--max-prompt-length', '32', '--batch-size', '2', '--lora-r', '4', '--lora-dropout', '0',
      '--learning-rate', '1e-3', '--lr-scheduler', 'constant', '--beta', '0.3', '--max-steps', '2000', '--save-steps', '0', '--output-dir', out]);
    const metrics = join(out, 'none', 'metrics.jsonl');
    await waitFor(() => existsSync(metrics) && readFileSync(metrics, 'utf8').length > 0, 90_000, 'arm none step 1');
    c.kill('SIGINT');
    const ended = await c.exited;
    const err = c.stderr();
    expect(ended.code, err).toBe(130);
    const m = /Resume with:\n {2}(node train\.js experiment .*)\n/.exec(err);
    expect(m, err).not.toBeNull();
    expect(m![1]).toBe(`node train.js experiment --resume latest --output-dir '${out.replace(/'/g, `'\\''`)}'`);

    // Lower the budget on resume so the test stays short (a constant schedule allows it): a flag given with --resume
    // applies over the stored ones.
    const stoppedAt = readJsonl(metrics).length;
    const r = spawnSync('sh', ['-c', `${m![1].replace(/^node /, `'${process.execPath}' `)} --max-steps ${stoppedAt + 2}`],
      { cwd: ROOT, encoding: 'utf8', env: { ...process.env, CI: 'true' }, timeout: 110_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/arm none: resuming/);
    const exp = JSON.parse(readFileSync(join(out, 'experiment.json'), 'utf8')) as { arms: { name: string; status: string }[]; max_steps: number; config: { beta: number } };
    expect(exp.arms.map((a) => [a.name, a.status])).toEqual([['none', 'done'], ['shuffle', 'done']]);
    expect(exp.max_steps).toBe(stoppedAt + 2);
    for (const arm of ['none', 'shuffle']) {
      // The stored settings reached every arm.
      const cfg = JSON.parse(readFileSync(join(out, arm, 'run_config.json'), 'utf8')) as Record<string, unknown>;
      expect([cfg.beta, cfg.learningRate, cfg.lrScheduler, cfg.model, cfg.curriculum]).toEqual([0.3, 1e-3, 'constant', model, arm]);
      expect(readJsonl(join(out, arm, 'metrics.jsonl'))).toHaveLength(stoppedAt + 2);
    }
    expect(existsSync(join(out, 'report.html'))).toBe(true);
  }, 240_000);

  it('storedExperiment: latest needs the folder; a folder without experiment.json is refused, naming it', () => {
    expect(() => storedExperiment('latest', null)).toThrow(InputError);
    expect(() => storedExperiment('latest', null)).toThrow(/--resume latest: no experiment folder given \(expected --output-dir DIR/);
    expect(() => storedExperiment(root, null)).toThrow(/has no experiment\.json .*train --resume/);
  });
});

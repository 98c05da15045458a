// Issue 12 item 7: signals. A second Ctrl-C quits at once (what was saved stays whole); no evaluation starts after
// SIGINT (the resumed run does it first); a closed output pipe (`| head`, EPIPE) stops the run cleanly after saving.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { readTrainerState } from '../../src/run/checkpoint.js';
import { ROOT, TRAIN_JS, pairsFile, readJsonl, runTrain, spawnTrain, tempDir, tinyModelDir, waitFor } from './helpers.js';

let root: string;
let model: string;
let data: string;
const TASKS = join(ROOT, 'data', 'tasks', 'humaneval-sample.jsonl');

const flags = (out: string, evalSamples: number, tokens: number) => ['train', '--model', model, '--data', data, '--backend', 'cpu', '--max-length', '64',
  '--max-prompt-length', '32', '--batch-size', '2', '--lora-r', '4', '--curriculum', 'shuffle', '--max-steps', '3', '--save-steps', '1',
  '--eval-tasks', TASKS, '--eval-samples', String(evalSamples), '--eval-max-new-tokens', String(tokens), '--eval-steps', '1', '--output-dir', out];

/** Every checkpoint-N folder loads: none is half written. */
function checkpointsWhole(out: string): number[] {
  return readdirSync(out).filter((n) => /^checkpoint-\d+$/.test(n)).map((n) => readTrainerState(join(out, n)).global_step).sort((a, b) => a - b);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  root = tempDir('signals');
  model = await tinyModelDir(root);
  data = pairsFile(root, 8);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('signals', () => {
  it('a second Ctrl-C during a long evaluation quits at once with 130; saved checkpoints stay whole', async () => {
    const out = join(root, 'twice');
    const c = spawnTrain(flags(out, 16, 200));
    await waitFor(() => /^train: /m.test(c.stderr()), 60_000, 'the training to start');
    await sleep(300);
    // The sandbox pool's processes: they must not outlive the run.
    const children = spawnSync('ps', ['-o', 'pid=', '--ppid', String(c.pid)], { encoding: 'utf8' }).stdout.split('\n').map(Number).filter((p) => p > 0);
    c.kill('SIGINT');
    await sleep(300);
    const t0 = Date.now();
    c.kill('SIGINT');
    const { code } = await c.exited;
    expect(Date.now() - t0, c.stderr()).toBeLessThan(3000);
    expect(code, c.stderr()).toBe(130);
    expect(c.stderr()).toMatch(/SIGINT again: quitting now/);
    expect(readJsonl(join(out, 'eval.jsonl'))).toEqual([]);
    checkpointsWhole(out);
    expect(children.length).toBeGreaterThan(0);
    await waitFor(() => children.every((p) => !alive(p)), 5000, `the pool processes ${children.join(', ')} to exit`);
  }, 90_000);

  it('no evaluation starts after SIGINT; the resumed run evaluates that step first and finishes', async () => {
    const out = join(root, 'once');
    const c = spawnTrain(flags(out, 4, 96));
    await waitFor(() => /^train: /m.test(c.stderr()), 60_000, 'the training to start');
    await sleep(200);
    c.kill('SIGINT'); // during the step-0 evaluation: it finishes, step 1 runs and is saved, its evaluation does not start
    const { code } = await c.exited;
    expect(code, c.stderr()).toBe(130);
    expect(readJsonl<{ step: number }>(join(out, 'eval.jsonl')).map((l) => l.step)).toEqual([0]);
    expect(checkpointsWhole(out)).toEqual([1]);
    const r = await runTrain([...flags(out, 4, 96), '--resume', 'latest']);
    expect(r.code, r.stderr).toBe(0);
    expect(readJsonl<{ step: number }>(join(out, 'eval.jsonl')).map((l) => l.step)).toEqual([0, 1, 2, 3]);
  }, 120_000);

  it('`train ... 2>&1 | head -n 1` (EPIPE) stops after saving, exit 130, nothing half written', () => {
    const out = join(root, 'pipe');
    const args = flags(out, 1, 8).map((a) => `'${a}'`).join(' ');
    const r = spawnSync('bash', ['-c', `'${process.execPath}' '${TRAIN_JS}' ${args} 2>&1 | head -n 1 >/dev/null; echo "\${PIPESTATUS[0]}"`],
      { cwd: ROOT, encoding: 'utf8', env: { ...process.env, CI: 'true' }, timeout: 90_000 });
    expect(r.stdout.trim(), r.stderr).toBe('130');
    const steps = checkpointsWhole(out);
    expect(steps.length).toBeGreaterThan(0);
    expect(existsSync(join(out, 'metrics.jsonl'))).toBe(true);
    expect(readJsonl(join(out, 'metrics.jsonl')).length).toBe(steps.at(-1));
  }, 120_000);
});

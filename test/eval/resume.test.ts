// `eval` is crash-safe and resumable: judged samples go to `<out>.partial.jsonl` (fsynced, one line each); a
// rerun with the same inputs runs only the rest and writes the same results file as one uninterrupted run; a
// progress file of other inputs is refused; a crash's temp file is removed at the next start; a real SIGKILL
// in the middle resumes to the same bytes.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runEval, type EvalDeps, type EvalJob } from '../../src/eval/run.js';
import { SAMPLING_DEFAULTS } from '../../src/config/sampling.js';
import type { RunRequest, RunResult } from '../../src/eval/execute.js';
import { InputError } from '../../src/util/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'eval-resume-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const tasksFile = 'data/tasks/humaneval-sample.jsonl';
const tasks = readFileSync(tasksFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const samplesFile = join(dir, 'samples.jsonl');
const lines = [0, 1, 2, 3].flatMap((j) =>
  tasks.map((t) => ({ task_id: t.task_id, completion: j % 2 === 1 ? '    return None\n' : t.canonical_solution })),
);
writeFileSync(samplesFile, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');

/** A runner that judges by text, and dies (like a killed process) after `dieAfter` runs. */
function deps(calls: RunRequest[], dieAfter = Infinity): EvalDeps {
  const runner = {
    async run(req: RunRequest): Promise<RunResult> {
      if (calls.length >= dieAfter) throw new Error('killed');
      calls.push(req);
      const passed = !req.code.includes('return None');
      return { result: passed ? 'passed' : 'failed: AssertionError', passed, stdout: '', stderr: '', durationMs: 1 };
    },
    async close() {},
  };
  return { openRunner: async () => runner, print: () => {}, log: () => {} };
}

const job = (out: string, over: Partial<EvalJob> = {}): EvalJob => ({
  samples: samplesFile, tasks: tasksFile, out, sampling: SAMPLING_DEFAULTS.eval,
  sandbox: { timeoutS: 1, workers: 1, strictResults: false }, ...over,
});

describe('eval resume', () => {
  it('an interrupted run resumes: only the rest runs, and the results equal one straight run', async () => {
    const straight = join(dir, 'straight.jsonl');
    await runEval(job(straight), deps([]));
    const out = join(dir, 'resumed.jsonl');
    await expect(runEval(job(out), deps([], 15))).rejects.toThrow('killed');
    const partial = readFileSync(`${out}.partial.jsonl`, 'utf8').trim().split('\n');
    expect(partial.length).toBeGreaterThan(1); // the header and the samples judged before the crash
    expect(existsSync(out)).toBe(false);
    const judged = partial.length - 1;
    const calls: RunRequest[] = [];
    await runEval(job(out), deps(calls));
    expect(calls.length).toBe(lines.length - judged);
    expect(readFileSync(out, 'utf8')).toBe(readFileSync(straight, 'utf8'));
    expect(existsSync(`${out}.partial.jsonl`)).toBe(false);
  });

  it("refuses another eval's progress file, and removes a crash's temp file", async () => {
    const out = join(dir, 'other.jsonl');
    writeFileSync(`${out}.partial.jsonl`, JSON.stringify({ eval_partial: 1, inputs: 'something else' }) + '\n');
    await expect(runEval(job(out), deps([]))).rejects.toThrow(InputError);
    await expect(runEval(job(out), deps([]))).rejects.toThrow(/other inputs/);
    rmSync(`${out}.partial.jsonl`);
    const stale = join(dir, `.other.jsonl.tmp-4194303-deadbeef`); // a pid no process has
    writeFileSync(stale, 'half a file');
    await runEval(job(out), deps([]));
    expect(existsSync(stale)).toBe(false);
    expect(readFileSync(out, 'utf8').trim().split('\n').length).toBe(lines.length);
  });

  it('a SIGKILLed `node train.js eval` resumes to the same results file', async () => {
    const big = join(dir, 'big.jsonl');
    const many = Array.from({ length: 6 }, () => lines).flat();
    writeFileSync(big, many.map((l) => JSON.stringify(l)).join('\n') + '\n');
    const cli = (out: string) => ['train.js', 'eval', '--samples', big, '--tasks', tasksFile, '--out', out, '--workers', '2'];
    const straight = join(dir, 'big-straight.jsonl');
    expect(spawnSync(process.execPath, cli(straight), { encoding: 'utf8' }).status).toBe(0);
    const out = join(dir, 'big-killed.jsonl');
    const child = spawn(process.execPath, cli(out), { stdio: 'ignore' });
    const partial = `${out}.partial.jsonl`;
    await new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        if (existsSync(partial) && readFileSync(partial, 'utf8').split('\n').length > 20) {
          clearInterval(poll);
          child.kill('SIGKILL');
          resolve();
        }
      }, 20);
    });
    await new Promise((r) => child.once('exit', r));
    expect(existsSync(out)).toBe(false);
    const again = spawnSync(process.execPath, cli(out), { encoding: 'utf8' });
    expect(again.status).toBe(0);
    expect(again.stderr + again.stdout).toMatch(/resuming .*samples judged/);
    expect(readFileSync(out, 'utf8')).toBe(readFileSync(straight, 'utf8'));
  }, 120_000);
});

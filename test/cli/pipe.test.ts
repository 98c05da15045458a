// Issue 12 item 7: `node train.js <command> | head` (EPIPE) stops any command cleanly: exit 0, no stack, and every file
// it leaves is whole (the results file absent or complete, the progress sidecar whole lines only). Each test pipes a
// real `node train.js <command>` (stdout and stderr) into a reader that closes its end after the first line.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, TRAIN_JS, pairsFile, tempDir, tinyModelDir } from '../train/helpers.js';

const TASKS = join(ROOT, 'data', 'tasks', 'humaneval-sample.jsonl');
let root: string;

/** `node train.js args 2>&1 | <read one line, close, exit>`: the command's exit status and what the reader got. */
function pipeIntoEarlyCloser(args: string[]): { code: number; first: string } {
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const reader = `${q(process.execPath)} -e ${q("process.stdin.once('data', (d) => { process.stdout.write(String(d).split('\\n')[0]); process.exit(0); })")}`;
  const r = spawnSync('bash', ['-c', `${q(process.execPath)} ${q(TRAIN_JS)} ${args.map(q).join(' ')} 2>&1 | ${reader}; s="\${PIPESTATUS[0]}"; echo; echo "$s"`],
    { cwd: ROOT, encoding: 'utf8', env: { ...process.env, CI: 'true' }, timeout: 90_000 });
  const lines = r.stdout.trimEnd().split('\n');
  return { code: Number(lines.at(-1)), first: lines[0] };
}

/** Every line of a JSONL file parses (no torn or half-written line). */
function wholeLines(file: string): number {
  const text = readFileSync(file, 'utf8');
  expect(text === '' || text.endsWith('\n'), `${file} ends mid-line`).toBe(true);
  return text.split('\n').filter(Boolean).map((l) => JSON.parse(l)).length;
}

beforeAll(() => {
  root = tempDir('pipe');
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('a reader that closes early (EPIPE)', () => {
  it('eval: exit 0, no stack; the results file is absent or complete, the progress file whole lines', () => {
    const samples = join(root, 'samples.jsonl');
    const lines = readFileSync(TASKS, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { task_id: string; canonical_solution: string });
    writeFileSync(samples, lines.flatMap((t) => [0, 1, 2].map(() => JSON.stringify({ task_id: t.task_id, completion: t.canonical_solution }) + '\n')).join(''));
    const out = join(root, 'results.jsonl');
    const r = pipeIntoEarlyCloser(['eval', '--samples', samples, '--tasks', TASKS, '--out', out]);
    expect(r.first).toMatch(/^eval: 30 samples/);
    expect(r.code).toBe(0);
    if (existsSync(out)) expect(wholeLines(out)).toBe(30);
    if (existsSync(`${out}.partial.jsonl`)) wholeLines(`${out}.partial.jsonl`);
    expect(readdirSync(root).filter((n) => n.includes('.tmp-'))).toEqual([]);
  }, 120_000);

  it('score: exit 0, no stack; the scores file is absent or complete', async () => {
    const model = await tinyModelDir(root);
    const data = pairsFile(root, 8);
    const out = join(root, 'scores.jsonl');
    const r = pipeIntoEarlyCloser(['score', '--model', model, '--data', data, '--out', out, '--backend', 'cpu', '--max-length', '64', '--batch-size', '2']);
    expect(r.first).not.toMatch(/Error|^\s+at /);
    expect(r.code).toBe(0);
    if (existsSync(out)) expect(wholeLines(out)).toBe(8);
    expect(readdirSync(root).filter((n) => n.includes('.tmp-'))).toEqual([]);
  }, 120_000);
});

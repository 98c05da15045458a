// eval --tasks and pairs --tasks from a `datasets` DatasetDict folder with --split (issue 13 item 9): the tasks load
// from Arrow IPC written here by apache-arrow, the resume keys hash the split's files, and the outputs match the
// JSONL tasks' run.
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Table, Utf8, tableToIPC, vectorFromArray } from 'apache-arrow';
import { runEval, type EvalDeps } from '../../src/eval/run.js';
import type { RunRequest, RunResult } from '../../src/eval/execute.js';
import { SAMPLING_DEFAULTS } from '../../src/config/sampling.js';
import { runPairs } from '../../src/pairs/job.js';

const dir = mkdtempSync(join(tmpdir(), 'eval-formats-'));
const tasks = readFileSync('data/tasks/humaneval-sample.jsonl', 'utf8').trim().split('\n').map((l) => JSON.parse(l)) as Record<string, string>[];
const KEYS = ['task_id', 'prompt', 'canonical_solution', 'test', 'entry_point'];

function savedSplit(path: string, rows: Record<string, string>[]): void {
  mkdirSync(path, { recursive: true });
  const table = new Table(Object.fromEntries(KEYS.map((k) => [k, vectorFromArray(rows.map((r) => r[k]!), new Utf8())])));
  writeFileSync(join(path, 'data-00000-of-00001.arrow'), tableToIPC(table, 'stream'));
  writeFileSync(join(path, 'state.json'), JSON.stringify({ _data_files: [{ filename: 'data-00000-of-00001.arrow' }], _split: null }));
}

const deps = (printed: string[]): EvalDeps => ({
  openRunner: async () => ({
    async run(req: RunRequest): Promise<RunResult> {
      const passed = !req.code.includes('return None');
      return { result: passed ? 'passed' : 'failed: AssertionError', passed, stdout: '', stderr: '', durationMs: 1 };
    },
    async close() {},
  }),
  print: (l) => printed.push(l),
  log: () => {},
});

describe('eval --tasks <DatasetDict folder> --split', () => {
  it('scores against the split asked for, like the same tasks as JSONL', async () => {
    const dict = join(dir, 'he');
    savedSplit(join(dict, 'train'), tasks.slice(0, 2));
    savedSplit(join(dict, 'test'), tasks);
    writeFileSync(join(dict, 'dataset_dict.json'), JSON.stringify({ splits: ['train', 'test'] }));
    const samples = join(dir, 'samples.jsonl');
    writeFileSync(samples, tasks.map((t, i) => JSON.stringify({ task_id: t.task_id, completion: i % 2 ? '    return None\n' : t.canonical_solution })).join('\n') + '\n');
    const base = { samples, sandbox: { timeoutS: 1, workers: 1, strictResults: false }, sampling: SAMPLING_DEFAULTS.eval };
    const fromDict: string[] = [];
    await runEval({ ...base, tasks: dict, split: 'test', out: join(dir, 'a.jsonl') }, deps(fromDict));
    const fromJsonl: string[] = [];
    await runEval({ ...base, tasks: 'data/tasks/humaneval-sample.jsonl', out: join(dir, 'b.jsonl') }, deps(fromJsonl));
    expect(readFileSync(join(dir, 'a.jsonl'), 'utf8')).toBe(readFileSync(join(dir, 'b.jsonl'), 'utf8'));
    expect(fromDict.slice(1)).toEqual(fromJsonl.slice(1));
    // The train split holds two of the tasks: the other samples name a task it does not have.
    await expect(runEval({ ...base, tasks: dict, out: join(dir, 'c.jsonl') }, deps([]))).rejects.toThrow('is not in the tasks file');
  });
});

describe('pairs --tasks <DatasetDict folder> --split', () => {
  it('builds the same pairs as from the JSONL tasks', async () => {
    const dict = join(dir, 'he-pairs');
    savedSplit(join(dict, 'test'), tasks);
    writeFileSync(join(dict, 'dataset_dict.json'), JSON.stringify({ splits: ['test'] }));
    const samples = join(dir, 'pair-samples.jsonl');
    writeFileSync(samples, tasks.flatMap((t) => [t.canonical_solution, '    return None\n'].map((completion) => JSON.stringify({ task_id: t.task_id, completion }))).join('\n') + '\n');
    const job = (tasksSpec: string, out: string, split?: string) => ({
      samples, tasks: tasksSpec, split, out, backend: 'cpu' as const, minGap: 0, requireChosenPass: false,
      sampling: SAMPLING_DEFAULTS.pairs, sandbox: { timeoutS: 1, workers: 1, strictResults: false },
    });
    const pairsDeps = { ...deps([]), loadModel: async () => { throw new Error('no model in this test'); } };
    await runPairs(job(dict, join(dir, 'p-dict.jsonl'), 'test'), pairsDeps);
    await runPairs(job('data/tasks/humaneval-sample.jsonl', join(dir, 'p-jsonl.jsonl')), pairsDeps);
    const a = readFileSync(join(dir, 'p-dict.jsonl'), 'utf8');
    expect(a.trim().split('\n')).toHaveLength(tasks.length);
    expect(a).toBe(readFileSync(join(dir, 'p-jsonl.jsonl'), 'utf8'));
  });
});

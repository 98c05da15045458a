// Issue 12 item 2: `pairs --out FILE` resumes only a file its own sidecar says it wrote from the same tasks file; any
// other existing file (unrelated pairs, the tasks file itself) is refused before any work, its bytes unchanged.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runPairs, type PairsDeps, type PairsJob } from '../../src/pairs/job.js';
import { progressPath } from '../../src/run/layout.js';
import { InputError } from '../../src/util/errors.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
let dir: string;
let tasks: string;
let samples: string;
let opened = 0;

const deps: PairsDeps = {
  openRunner: async () => {
    opened++;
    throw new Error('the sandbox must not open for a refused --out');
  },
  print: () => {},
  log: () => {},
  loadModel: async () => {
    throw new Error('the model must not load for a refused --out');
  },
};

function job(out: string, over: Partial<PairsJob> = {}): PairsJob {
  return {
    samples, tasks, out, backend: 'cpu', minGap: 0, requireChosenPass: false,
    sampling: { nSamples: 1, temperature: 0, topP: 1, topK: 0, maxNewTokens: 8, seed: 0, chat: false, batchSize: null },
    sandbox: { timeoutS: 5, workers: 1, strictResults: false }, ...over,
  };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'pairs-out-'));
  tasks = join(dir, 'tasks.jsonl');
  copyFileSync(join(ROOT, 'data/tasks/humaneval-sample.jsonl'), tasks);
  const first = JSON.parse(readFileSync(tasks, 'utf8').split('\n')[0]) as { task_id: string };
  samples = join(dir, 'samples.jsonl');
  writeFileSync(samples, JSON.stringify({ task_id: first.task_id, completion: '    return 1\n' }) + '\n');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('pairs --out', () => {
  it('refuses a file of unrelated pairs (no sidecar), leaving it byte for byte', async () => {
    const out = join(dir, 'mine.jsonl');
    const bytes = '{"prompt": "a", "chosen": "b", "rejected": "c"}\n';
    writeFileSync(out, bytes);
    await expect(runPairs(job(out), deps)).rejects.toThrow(/did not write.*Pick another --out/);
    await expect(runPairs(job(out), deps)).rejects.toBeInstanceOf(InputError);
    expect(readFileSync(out, 'utf8')).toBe(bytes);
    expect(opened).toBe(0);
  });

  it('refuses the tasks file and the samples file as --out', async () => {
    const before = [readFileSync(tasks), readFileSync(samples)];
    await expect(runPairs(job(tasks), deps)).rejects.toThrow(/is the --tasks file/);
    await expect(runPairs(job(samples), deps)).rejects.toThrow(/is the --samples file/);
    expect([readFileSync(tasks), readFileSync(samples)]).toEqual(before);
    expect(opened).toBe(0);
  });

  it('refuses a pairs file whose sidecar records another tasks file', async () => {
    const out = join(dir, 'other.jsonl');
    writeFileSync(out, '');
    const header = { format: 'dpo-pairs-progress', version: 1, settings: { tasks_sha256: 'f'.repeat(64) } };
    writeFileSync(progressPath(out), JSON.stringify(header) + '\n');
    await expect(runPairs(job(out), deps)).rejects.toThrow(/another tasks file/);
    expect(readFileSync(out, 'utf8')).toBe('');
  });

  it('refuses a missing folder and a folder as --out, before any work', async () => {
    await expect(runPairs(job(join(dir, 'missing', 'p.jsonl')), deps)).rejects.toThrow(/does not exist/);
    await expect(runPairs(job(dir), deps)).rejects.toThrow(/is a folder/);
    expect(opened).toBe(0);
  });
});

// Issue 12 items 5 and 6: `train` and `experiment` exit (never hang on the sandbox pool) after an --eval-tasks error,
// with the error's exit code; and every input and output path is checked before the model loads, so a bad path
// costs seconds, not a whole generation or training run.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openRunServices } from '../../src/eval/stage.js';
import type { LoadedModel } from '../../src/io/model-dir.js';
import { ROOT, pairsFile, runConfig, spawnTrain, tempDir, tinyModelDir } from './helpers.js';

let root: string;
let model: string;
let data: string;
const TASKS = join(ROOT, 'data', 'tasks', 'humaneval-sample.jsonl');
const LOADED = /^model: .* layers/m;

/** Runs the CLI; a run still alive after `ms` is killed and reported as a hang. */
async function cli(args: string[], ms = 60_000): Promise<{ code: number | null; out: string; hung: boolean }> {
  const c = spawnTrain(args);
  let hung = false;
  const t = setTimeout(() => {
    hung = true;
    c.kill('SIGKILL');
  }, ms);
  const { code } = await c.exited;
  clearTimeout(t);
  return { code, out: c.stderr(), hung };
}

const trainFlags = (d = data) => ['--model', model, '--data', d, '--backend', 'cpu', '--max-length', '64', '--max-prompt-length', '32', '--batch-size', '2',
  '--lora-r', '4', '--curriculum', 'shuffle', '--max-steps', '2', '--save-steps', '0'];

beforeAll(async () => {
  root = tempDir('preflight');
  model = await tinyModelDir(root);
  data = pairsFile(root, 8);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('no hang after an --eval-tasks error', () => {
  for (const cmd of ['train', 'experiment']) {
    it(`${cmd}: a tasks file in the wrong format, or a missing one, exits 1 with one error line`, async () => {
      for (const tasks of [data, join(root, 'missing-tasks.jsonl')]) {
        const r = await cli([cmd, ...trainFlags(), '--eval-tasks', tasks, '--output-dir', join(root, `${cmd}-out`)], 30_000);
        expect(r.hung, r.out).toBe(false);
        expect(r.code, r.out).toBe(1);
        expect(r.out).toMatch(/^error: .*(--eval-tasks|missing-tasks|pairs\.jsonl)/m);
        expect(r.out).not.toMatch(LOADED);
      }
    }, 90_000);
  }

  it('openRunServices: a bad tasks file fails before a pool is opened (nothing left to keep Node alive)', async () => {
    let opened = 0;
    const open = async () => {
      opened++;
      return { run: async () => { throw new Error('unused'); }, close: async () => {} };
    };
    const cfg = runConfig({ data, 'eval-tasks': data });
    await expect(openRunServices({} as LoadedModel, cfg, () => {}, open)).rejects.toThrow();
    expect(opened).toBe(0);
  });
});

describe('paths are checked before the model loads', () => {
  it('eval --model ... --out missing/r.jsonl, or --out a folder: refused at once, no stack', async () => {
    for (const out of [join(root, 'missing', 'r.jsonl'), root]) {
      const r = await cli(['eval', '--model', model, '--tasks', TASKS, '--out', out, '--backend', 'cpu', '--max-new-tokens', '4']);
      expect(r.code, r.out).toBe(1);
      expect(r.out).toMatch(/^error: --out .*(does not exist|is a folder)/m);
      expect(r.out).not.toMatch(LOADED);
      expect(r.out).not.toMatch(/\n\s+at /);
    }
  }, 60_000);

  it('train: an --output-dir that is a file, a bad last data line, a missing --resume, a tasks file in the wrong format', async () => {
    const file = join(root, 'a-file');
    writeFileSync(file, 'keep');
    const torn = join(root, 'torn.jsonl');
    writeFileSync(torn, readFileSync(data, 'utf8') + '{"prompt": "x", "chosen": \n');
    const cases: [string[], RegExp][] = [
      [['--output-dir', file], /--output-dir .*is a file/],
      [['--output-dir', join(root, 'o1')], /torn\.jsonl:9/],
      [['--resume', join(root, 'nope'), '--output-dir', join(root, 'o2')], /--resume .*nope/],
      [['--resume', 'latest', '--output-dir', join(root, 'o3')], /--resume latest/],
      [['--eval-tasks', data, '--output-dir', join(root, 'o4')], /pairs\.jsonl/],
    ];
    for (const [extra, msg] of cases) {
      const r = await cli(['train', ...trainFlags(extra.includes(join(root, 'o1')) ? torn : data), ...extra]);
      expect(r.code, r.out).toBe(1);
      expect(r.out).toMatch(msg);
      expect(r.out, extra.join(' ')).not.toMatch(LOADED);
    }
    expect(readFileSync(file, 'utf8')).toBe('keep');
  }, 120_000);

  it('score --out missing/s.jsonl is refused before the model loads', async () => {
    const r = await cli(['score', '--model', model, '--data', data, '--backend', 'cpu', '--out', join(root, 'missing', 's.jsonl')]);
    expect(r.code, r.out).toBe(1);
    expect(r.out).toMatch(/^error: --out .*does not exist/m);
    expect(r.out).not.toMatch(LOADED);
  }, 60_000);

  it('experiment: an --output-dir that is a file is refused before the model loads', async () => {
    const file = join(root, 'exp-file');
    writeFileSync(file, 'keep');
    mkdirSync(join(root, 'unused'), { recursive: true });
    const r = await cli(['experiment', ...trainFlags(), '--eval-tasks', TASKS, '--output-dir', file]);
    expect(r.code, r.out).toBe(1);
    expect(r.out).toMatch(/--output-dir .*is a file/);
    expect(r.out).not.toMatch(LOADED);
    expect(readFileSync(file, 'utf8')).toBe('keep');
  }, 60_000);
});

// --data and --split for score and train (issue 13 item 9): a `datasets` DatasetDict folder (Arrow IPC written here by
// apache-arrow) scores exactly as the same rows in JSONL, and a run on it records the split's data hash.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Table, Utf8, tableToIPC, vectorFromArray } from 'apache-arrow';
import { hashData } from '../../src/data/formats.js';
import { readJsonl, runTrain, tempDir, tinyModelDir } from '../train/helpers.js';

let root: string;
let model: string;
const rows = Array.from({ length: 6 }, (_, i) => ({
  prompt: `def f${i}(x):\n`, chosen: `    return x + ${i}\n`, rejected: `    return x - ${i} * 2\n`,
}));

function savedSplit(dir: string, part: typeof rows): void {
  mkdirSync(dir, { recursive: true });
  const keys = ['prompt', 'chosen', 'rejected'] as const;
  const table = new Table(Object.fromEntries(keys.map((k) => [k, vectorFromArray(part.map((r) => r[k]), new Utf8())])));
  writeFileSync(join(dir, 'data-00000-of-00001.arrow'), tableToIPC(table, 'stream'));
  writeFileSync(join(dir, 'state.json'), JSON.stringify({ _data_files: [{ filename: 'data-00000-of-00001.arrow' }], _split: null }));
}

beforeAll(async () => {
  root = tempDir('data-split');
  model = await tinyModelDir(root);
  const dict = join(root, 'dict');
  savedSplit(join(dict, 'train'), rows.slice(0, 2));
  savedSplit(join(dict, 'test'), rows.slice(2));
  writeFileSync(join(dict, 'dataset_dict.json'), JSON.stringify({ splits: ['train', 'test'] }));
  writeFileSync(join(root, 'test.jsonl'), rows.slice(2).map((r) => JSON.stringify(r)).join('\n') + '\n');
}, 60_000);
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('--data <DatasetDict folder> --split', () => {
  it('score gives the lines of the same rows as JSONL; a missing split is one error naming the splits', async () => {
    const common = ['score', '--model', model, '--backend', 'cpu', '--max-length', '64'];
    const a = await runTrain([...common, '--data', join(root, 'dict'), '--split', 'test', '--out', join(root, 'a.jsonl')]);
    expect(a.code, a.stderr).toBe(0);
    const b = await runTrain([...common, '--data', join(root, 'test.jsonl'), '--out', join(root, 'b.jsonl')]);
    expect(b.code, b.stderr).toBe(0);
    expect(readJsonl(join(root, 'a.jsonl')).length).toBe(4);
    expect(readFileSync(join(root, 'a.jsonl'), 'utf8')).toBe(readFileSync(join(root, 'b.jsonl'), 'utf8'));
    const c = await runTrain([...common, '--data', join(root, 'dict'), '--split', 'validation', '--out', join(root, 'c.jsonl')]);
    expect(c.code).toBe(1);
    expect(c.stderr).toMatch(/validation/);
    expect(c.stderr).toMatch(/test/);
  }, 90_000);

  it('train reads the split and records its data hash for resume', async () => {
    const out = join(root, 'run');
    const r = await runTrain(['train', '--model', model, '--data', join(root, 'dict'), '--split', 'test', '--backend', 'cpu',
      '--max-length', '64', '--batch-size', '2', '--lora-r', '4', '--max-steps', '2', '--curriculum', 'shuffle', '--output-dir', out]);
    expect(r.code, r.stderr).toBe(0);
    const state = JSON.parse(readFileSync(join(out, 'checkpoint-2', 'resume_state.json'), 'utf8')) as { hashes: { data: string } };
    expect(state.hashes.data).toBe(hashData(join(root, 'dict'), 'test'));
    expect(state.hashes.data).not.toBe(hashData(join(root, 'dict'), 'train'));
  }, 90_000);
});

// Pairs and tasks as users have them (issue 13 item 9): JSON, Parquet (written here by hyparquet-writer with the
// list<struct<content, role>> layout pyarrow gives TRL's conversational datasets), a `datasets` save_to_disk folder
// (Arrow IPC streams written here by apache-arrow, with state.json / dataset_info.json / dataset_dict.json as
// datasets' arrow_dataset.py save_to_disk writes them), and a Hub dataset in the HF cache
// (datasets--org--name/snapshots/<rev>/ with refs/main and symlinked blobs, as huggingface_hub lays it out).
import { existsSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { Field, Float64, Int64, List, Struct, Table, Utf8, tableToIPC, vectorFromArray } from 'apache-arrow';
import { readPairs } from '../../src/data/pairs.js';
import { folderSplits, globRegex, readRecords } from '../../src/data/formats.js';
import { loadTasks } from '../../src/eval/tasks.js';
import { InputError } from '../../src/util/errors.js';

const root = mkdtempSync(join(tmpdir(), 'formats-'));
let n = 0;
const fresh = (name: string) => {
  const p = join(root, `${n++}`, name);
  mkdirSync(dirname(p), { recursive: true });
  return p;
};
const write = (p: string, data: string | Uint8Array | ArrayBuffer) => {
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, typeof data === 'string' ? data : new Uint8Array(data as ArrayBuffer));
  return p;
};

const msg = (role: string, content: string) => ({ role, content });
/** trl-lib/ultrafeedback_binarized's columns: prompt/chosen/rejected message lists and two scores. */
const CHAT = [
  { prompt: [msg('user', 'add 1 and 2')], chosen: [msg('assistant', '3')], rejected: [msg('assistant', '4')], score_chosen: 9.5, score_rejected: 2 },
  { prompt: [msg('user', 'capital of France?')], chosen: [msg('assistant', 'Paris')], rejected: [msg('assistant', 'Rome')], score_chosen: 8, score_rejected: 1.25 },
];

/** A Parquet file with pyarrow's layout for list<struct<content: string, role: string>> columns. */
function chatParquet(rows: typeof CHAT): ArrayBuffer {
  const messages = (name: string) => [
    { name, repetition_type: 'OPTIONAL', converted_type: 'LIST', num_children: 1 },
    { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
    { name: 'element', repetition_type: 'OPTIONAL', num_children: 2 },
    { name: 'content', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
    { name: 'role', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
  ];
  const schema = [
    { name: 'schema', num_children: 5 },
    ...messages('prompt'), ...messages('chosen'), ...messages('rejected'),
    { name: 'score_chosen', type: 'DOUBLE', repetition_type: 'OPTIONAL' },
    { name: 'score_rejected', type: 'DOUBLE', repetition_type: 'OPTIONAL' },
  ];
  const col = (k: keyof (typeof CHAT)[number]) => rows.map((r) => (Array.isArray(r[k]) ? (r[k] as { role: string; content: string }[]).map((m) => ({ content: m.content, role: m.role })) : r[k]));
  return parquetWriteBuffer({
    schema: schema as never,
    columnData: (['prompt', 'chosen', 'rejected', 'score_chosen', 'score_rejected'] as const).map((name) => ({ name, data: col(name) as never })),
  });
}

/** An Arrow IPC stream as datasets' ArrowWriter writes one: the same columns, list<struct> and float64. */
function chatArrow(rows: typeof CHAT): Uint8Array {
  const msgs = new List(new Field('item', new Struct([new Field('content', new Utf8(), true), new Field('role', new Utf8(), true)]), true));
  const table = new Table({
    prompt: vectorFromArray(rows.map((r) => r.prompt), msgs),
    chosen: vectorFromArray(rows.map((r) => r.chosen), msgs),
    rejected: vectorFromArray(rows.map((r) => r.rejected), msgs),
    score_chosen: vectorFromArray(rows.map((r) => r.score_chosen), new Float64()),
    score_rejected: vectorFromArray(rows.map((r) => r.score_rejected), new Float64()),
  });
  return tableToIPC(table, 'stream');
}

/** datasets' save_to_disk of one Dataset: the arrow shard, dataset_info.json, state.json naming the shard. */
function saveToDisk(dir: string, rows: typeof CHAT, split: string | null): string {
  write(join(dir, 'data-00000-of-00001.arrow'), chatArrow(rows));
  write(join(dir, 'dataset_info.json'), JSON.stringify({ citation: '', description: '', features: {}, homepage: '', license: '' }));
  write(join(dir, 'state.json'), JSON.stringify({
    _data_files: [{ filename: 'data-00000-of-00001.arrow' }], _fingerprint: 'abc123', _format_columns: null,
    _format_kwargs: {}, _format_type: null, _output_all_columns: false, _split: split,
  }));
  return dir;
}

function expectChat(records: ReturnType<typeof readPairs>, rows = CHAT) {
  expect(records.map((r) => [r.prompt, r.chosen, r.rejected, r.conversational])).toEqual(rows.map((r) => [r.prompt, r.chosen, r.rejected, true]));
  expect(records.map((r) => r.raw.score_chosen)).toEqual(rows.map((r) => r.score_chosen));
  expect(records.map((r) => [r.index, r.line])).toEqual(rows.map((_, i) => [i, i + 1]));
}

describe('pairs from each format', () => {
  it('JSONL and a JSON array give the same records', () => {
    const jsonl = write(fresh('p.jsonl'), CHAT.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const json = write(fresh('p.json'), JSON.stringify(CHAT));
    expectChat(readPairs(jsonl));
    expectChat(readPairs(json));
  });

  it('Parquet with message-list columns (TRL\'s conversational layout)', () => {
    const file = write(fresh('train-00000-of-00001.parquet'), chatParquet(CHAT));
    expectChat(readPairs(file));
  });

  it('a save_to_disk Dataset folder and a DatasetDict folder with --split', () => {
    const ds = saveToDisk(join(root, 'ds'), CHAT, 'train');
    expectChat(readPairs(ds));
    const dict = join(root, 'dict');
    saveToDisk(join(dict, 'train'), CHAT, 'train');
    saveToDisk(join(dict, 'test'), CHAT.slice(1), 'test');
    write(join(dict, 'dataset_dict.json'), JSON.stringify({ splits: ['train', 'test'] }));
    expectChat(readPairs(dict));
    expectChat(readPairs(dict, 'test'), CHAT.slice(1));
    expect(() => readPairs(dict, 'validation')).toThrow(`${dict}: no split "validation" (it has train, test) (expected one of train, test). Pass --split.`);
  });

  it('an int64 column becomes a number; row errors name the file and row', () => {
    const buf = parquetWriteBuffer({ columnData: [
      { name: 'prompt', data: ['a', 'b'], type: 'STRING' },
      { name: 'chosen', data: ['x', 'y'], type: 'STRING' },
      { name: 'rejected', data: ['z', null], type: 'STRING' },
      { name: 'task_id', data: [7n, 8n], type: 'INT64' },
    ] });
    const file = write(fresh('plain.parquet'), buf);
    expect(() => readPairs(file)).toThrow(InputError);
    expect(() => readPairs(file)).toThrow(`${file}[1]: "rejected" is null`);
    const ok = write(fresh('ok.parquet'), parquetWriteBuffer({ columnData: [
      { name: 'prompt', data: ['a'], type: 'STRING' }, { name: 'chosen', data: ['x'], type: 'STRING' },
      { name: 'rejected', data: ['z'], type: 'STRING' }, { name: 'task_id', data: [7n], type: 'INT64' },
    ] }));
    expect(readPairs(ok)[0]).toMatchObject({ prompt: 'a', chosen: 'x', rejected: 'z', conversational: false, raw: { task_id: 7 } });
  });

  it('the synchronous Parquet reader also works in a process started with node --input-type=module (built dist/)', () => {
    const dist = join(process.cwd(), 'dist', 'src', 'data', 'pairs.js');
    expect(existsSync(dist)).toBe(true);
    const file = write(fresh('t.parquet'), chatParquet(CHAT));
    const code = `import { readPairs } from ${JSON.stringify(pathToFileURL(dist).href)}; console.log(JSON.stringify(readPairs(${JSON.stringify(file)}).map((r) => r.chosen)));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual(CHAT.map((c) => c.chosen));
  });

  it('a file that is not Parquet says so', () => {
    const file = write(fresh('bad.parquet'), 'not parquet at all');
    expect(() => readPairs(file)).toThrow(new RegExp(`^${file.replace(/[.]/g, '\\.')}: cannot be read as Parquet`));
  });
});

describe('a Hub dataset in the HF cache', () => {
  const saved = { ...process.env };
  afterEach(() => {
    process.env = { ...saved };
  });

  /** huggingface_hub's layout: blobs/<sha>, snapshots/<rev>/<path> -> ../../blobs/<sha>, refs/main = <rev>. */
  function cacheDataset(cache: string, id: string, files: Record<string, string | ArrayBuffer>, rev = '0123abcd'): void {
    const repo = join(cache, `datasets--${id.replace('/', '--')}`);
    write(join(repo, 'refs', 'main'), rev);
    let blob = 0;
    for (const [path, data] of Object.entries(files)) {
      const target = join(repo, 'blobs', `blob${blob++}`);
      write(target, data);
      const link = join(repo, 'snapshots', rev, path);
      mkdirSync(dirname(link), { recursive: true });
      symlinkSync(target, link);
    }
  }

  it('trl-lib-style data/{split}-00000-of-00001.parquet, read offline with --split (default train), under HF_HUB_CACHE', () => {
    const cache = join(root, 'hub');
    cacheDataset(cache, 'trl-lib/tiny_prefs', {
      'README.md': '---\nlicense: mit\n---\n# tiny\n',
      'data/train-00000-of-00001.parquet': chatParquet(CHAT),
      'data/test-00000-of-00001.parquet': chatParquet(CHAT.slice(0, 1)),
    });
    process.env.HF_HUB_CACHE = cache;
    expectChat(readPairs('trl-lib/tiny_prefs'));
    expectChat(readPairs('trl-lib/tiny_prefs', 'test'), CHAT.slice(0, 1));
    expect(readRecords('trl-lib/tiny_prefs', { split: 'test' }).source).toMatchObject({ split: 'test', kind: 'Hub dataset trl-lib/tiny_prefs (HF cache)' });
  });

  it('HF_HOME/hub when HF_HUB_CACHE is unset; a missing dataset names the cache folder and never downloads', () => {
    const home = join(root, 'hfhome');
    cacheDataset(join(home, 'hub'), 'openai/tiny_humaneval', {
      'openai_humaneval/test-00000-of-00001.parquet': parquetWriteBuffer({ columnData: [
        { name: 'task_id', data: ['HumanEval/0'], type: 'STRING' },
        { name: 'prompt', data: ['def f():\n'], type: 'STRING' },
        { name: 'canonical_solution', data: ['    return 1\n'], type: 'STRING' },
        { name: 'test', data: ['def check(c):\n    assert c() == 1\n'], type: 'STRING' },
        { name: 'entry_point', data: ['f'], type: 'STRING' },
      ] }),
    });
    delete process.env.HF_HUB_CACHE;
    process.env.HF_HOME = home;
    // The only split is test (file-name pattern), so no --split is needed; asking for train names what there is.
    expect(loadTasks('openai/tiny_humaneval')).toEqual([{ format: 'humaneval', taskId: 'HumanEval/0', prompt: 'def f():\n', test: 'def check(c):\n    assert c() == 1\n', entryPoint: 'f', reference: '    return 1\n' }]);
    expect(() => loadTasks('openai/tiny_humaneval', undefined, 'train')).toThrow('no split "train" (it has test)');
    expect(() => readPairs('nobody/absent')).toThrow(`as a Hugging Face Hub dataset not in the HF cache`);
    expect(() => readPairs('nobody/absent')).toThrow(join(home, 'hub', 'datasets--nobody--absent', 'snapshots', '<rev>'));
  });

  it('a README.md configs block names the files of each split', () => {
    const cache = join(root, 'hub-readme');
    cacheDataset(cache, 'me/cfg', {
      'README.md': '---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: raw/part-*.jsonl\n  - split: eval\n    path: raw/holdout.jsonl\n---\n',
      'raw/part-1.jsonl': JSON.stringify(CHAT[0]) + '\n',
      'raw/part-2.jsonl': JSON.stringify(CHAT[1]) + '\n',
      'raw/holdout.jsonl': JSON.stringify(CHAT[1]) + '\n',
    });
    process.env.HF_HUB_CACHE = cache;
    const train = readPairs('me/cfg');
    expect(train.map((r) => r.prompt)).toEqual(CHAT.map((r) => r.prompt));
    expect(train.map((r) => r.line)).toEqual([1, 1]);
    expect(readPairs('me/cfg', 'eval').map((r) => r.prompt)).toEqual([CHAT[1]!.prompt]);
  });
});

describe('tasks from each format', () => {
  it('MBPP from Parquet (int64 task_id, list<string> test_list) and from a save_to_disk folder', () => {
    const buf = parquetWriteBuffer({ columnData: [
      { name: 'task_id', data: [2n, 3n], type: 'INT64' },
      { name: 'text', data: ['one', 'two'], type: 'STRING' },
      { name: 'code', data: ['def f(): return 1', 'def g(): return 2'], type: 'STRING' },
      { name: 'test_list', data: [['assert f() == 1'], ['assert g() == 2', 'assert g() != 3']] },
      { name: 'test_setup_code', data: ['', ''], type: 'STRING' },
    ] });
    const tasks = loadTasks(write(fresh('mbpp.parquet'), buf));
    expect(tasks.map((t) => [t.format, t.taskId, t.format === 'mbpp' ? t.asserts : null])).toEqual([
      ['mbpp', '2', ['assert f() == 1']],
      ['mbpp', '3', ['assert g() == 2', 'assert g() != 3']],
    ]);
    const table = new Table({
      task_id: vectorFromArray([2n], new Int64()),
      text: vectorFromArray(['one'], new Utf8()),
      code: vectorFromArray(['def f(): return 1'], new Utf8()),
      test_list: vectorFromArray([['assert f() == 1']], new List(new Field('item', new Utf8(), true))),
    });
    const dir = join(root, 'mbpp-saved');
    write(join(dir, 'data-00000-of-00001.arrow'), tableToIPC(table, 'stream'));
    write(join(dir, 'state.json'), JSON.stringify({ _data_files: [{ filename: 'data-00000-of-00001.arrow' }], _split: 'test' }));
    expect(loadTasks(dir).map((t) => t.taskId)).toEqual(['2']);
  });
});

describe("datasets' default split patterns (data_files.py)", () => {
  const folder = (files: string[]) => {
    const dir = fresh('x');
    for (const f of files) write(join(dirname(dir), 'x', f), '{}\n');
    return join(dirname(dir), 'x');
  };
  const splits = (files: string[]) => Object.fromEntries(folderSplits(folder(files)));

  it('sharded data/{split}-NNNNN-of-NNNNN first, then split names in folders, then in file names, else all train', () => {
    expect(splits(['data/train-00000-of-00002.parquet', 'data/train-00001-of-00002.parquet', 'data/other-00000-of-00001.parquet'])).toEqual({
      train: ['data/train-00000-of-00002.parquet', 'data/train-00001-of-00002.parquet'], other: ['data/other-00000-of-00001.parquet'],
    });
    expect(splits(['train/a.jsonl', 'dev/b.jsonl', 'test.jsonl'])).toEqual({ train: ['train/a.jsonl'], validation: ['dev/b.jsonl'] });
    expect(splits(['my_train.jsonl', 'my-valid.json', 'testing.jsonl', 'README.md'])).toEqual({ train: ['my_train.jsonl'], validation: ['my-valid.json'], test: ['testing.jsonl'] });
    // "contest" holds "test" but not between separators: not a test split.
    expect(splits(['contest.jsonl', 'pairs.jsonl'])).toEqual({ train: ['contest.jsonl', 'pairs.jsonl'] });
  });

  it('globs as fsspec reads them', () => {
    expect(globRegex('data/train-*').test('data/train-00000-of-00001.parquet')).toBe(true);
    expect(globRegex('data/train-*').test('data/x/train-0.parquet')).toBe(false);
    expect(globRegex('**/*.jsonl').test('a/b/c.jsonl')).toBe(true);
    expect(globRegex('**/*.jsonl').test('c.jsonl')).toBe(true);
    expect(globRegex('data/[0-9].json').test('data/7.json')).toBe(true);
  });
});

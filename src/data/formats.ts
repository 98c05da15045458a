// Data as users have it -> JSON-like records, for pairs (data/pairs.ts) and eval tasks (eval/tasks.ts): JSONL or JSON
// (optionally gzipped), Parquet (hyparquet), a `datasets` save_to_disk folder (Arrow IPC streams: apache-arrow), a
// folder of data files, or a Hub dataset already in the local HF cache (offline). Splits as `datasets` names them:
// a DatasetDict's dataset_dict.json, a README.md `configs:` block, then data_files.py's default patterns. Each record
// carries `where` (`file:line`, or `file[i]` for the i-th row of a table or JSON array) for error messages.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { load as loadYaml } from 'js-yaml';
import { hubCacheDir, hubSnapshot, isHubId } from '../io/hub-cache.js';
import { hashFile, hashJson } from '../util/hash.js';
import { InputError, describe } from '../util/errors.js';
import { arrowRecords, parquetRecords } from './tables.js';

/** One record and where it came from. */
export interface Located {
  /** `file:line` (JSON lines) or `file[i]` (the i-th row of a table or JSON array, 0-based as dataset[i]). */
  where: string;
  /** 1-based line of a JSONL file, else 1-based row. */
  line: number;
  value: unknown;
}

// ---- one file ----

/** Reads a file as text, gunzipping it when it starts with the gzip magic bytes. */
export function readText(file: string): string {
  let buf: Buffer;
  try {
    buf = readFileSync(file);
  } catch (e) {
    throw new InputError(describe(file, `cannot read (${(e as Error).message})`));
  }
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) {
    try {
      buf = gunzipSync(buf);
    } catch (e) {
      throw new InputError(describe(file, `broken gzip data (${(e as Error).message})`));
    }
  }
  return buf.toString('utf8');
}

/** Parses a JSON array or JSON lines; blank lines are skipped. */
export function parseRecords(text: string, file: string): Located[] {
  const body = text.replace(/^\uFEFF/, '');
  if (body.trimStart().startsWith('[')) {
    let arr: unknown;
    try {
      arr = JSON.parse(body);
    } catch (e) {
      throw new InputError(describe(file, `not valid JSON (${(e as Error).message})`, 'a JSON array or one JSON object per line'));
    }
    if (!Array.isArray(arr)) throw new InputError(describe(file, 'not a JSON array'));
    return arr.map((value, i) => ({ where: `${file}[${i}]`, line: i + 1, value }));
  }
  const out: Located[] = [];
  const lines = body.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    const where = `${file}:${i + 1}`;
    try {
      out.push({ where, line: i + 1, value: JSON.parse(line) });
    } catch (e) {
      throw new InputError(describe(where, `not valid JSON (${(e as Error).message})`, 'one JSON object per line'));
    }
  }
  return out;
}

export type FileFormat = 'json' | 'parquet' | 'arrow';

/** The format of a data file from its name: .parquet, .arrow, else JSON or JSON lines (.gz allowed). */
export function fileFormat(file: string): FileFormat {
  if (/\.parquet$/i.test(file)) return 'parquet';
  if (/\.arrow$/i.test(file)) return 'arrow';
  return 'json';
}

const DATA_FILE = /\.(parquet|arrow|jsonl|json|ndjson)(\.gz)?$/i;

/** The records of one file. */
export function readFileRecords(file: string): Located[] {
  switch (fileFormat(file)) {
    case 'parquet':
      return parquetRecords(file);
    case 'arrow':
      return arrowRecords(file);
    case 'json':
      return parseRecords(readText(file), file);
  }
}

// ---- a folder: which files make the split ----

/** datasets' data_files.py: split keywords and the characters that may surround them in a name. */
const SPLIT_KEYWORDS: Record<string, string[]> = {
  train: ['train', 'training'],
  validation: ['validation', 'valid', 'dev', 'val'],
  test: ['test', 'testing', 'eval', 'evaluation'],
};
const SEP = '[-._ 0-9]';
/** datasets' FILES_TO_IGNORE, and the save_to_disk metadata. */
const IGNORED = new Set(['README.md', 'config.json', 'dataset_info.json', 'dataset_infos.json', 'dummy_data.zip', 'dataset_dict.json', 'state.json']);

/** Every data file under `root`, relative, sorted; hidden and `__` entries skipped, symlinks followed (the HF cache). */
function walk(root: string, dir = root): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    if (name.startsWith('.') || name.startsWith('__')) continue;
    const p = join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) out.push(...walk(root, p));
    else if (!IGNORED.has(name) && DATA_FILE.test(name)) out.push(relative(root, p).split('\\').join('/'));
  }
  return out;
}

/** A glob as fsspec reads it (`**` any depth, `*` within a name, `?`, `[...]`) -> a regex over relative paths. */
export function globRegex(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      const slash = glob[i + 2] === '/';
      re += slash ? '(?:.*/)?' : '.*';
      i += slash ? 2 : 1;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        re += `[${glob.slice(i + 1, end).replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** The README.md `configs:` block's data_files for the default config, as {split: globs}; null when there is none. */
function readmeSplits(root: string): Record<string, string[]> | null {
  const readme = join(root, 'README.md');
  if (!existsSync(readme)) return null;
  const m = /^---\r?\n([\s\S]*?)\r?\n---/.exec(readFileSync(readme, 'utf8'));
  if (!m) return null;
  let meta: unknown;
  try {
    meta = loadYaml(m[1]!);
  } catch (e) {
    throw new InputError(describe(readme, `its YAML header does not parse (${(e as Error).message.split('\n')[0]})`));
  }
  const configs = (meta as { configs?: unknown } | null)?.configs;
  if (!Array.isArray(configs) || configs.length === 0) return null;
  const cfg = (configs.find((c) => c?.default === true) ?? configs.find((c) => c?.config_name === 'default') ?? (configs.length === 1 ? configs[0] : null)) as
    | { data_files?: unknown }
    | null;
  if (!cfg) {
    const names = configs.map((c) => c?.config_name).join(', ');
    throw new InputError(describe(readme, `several configs (${names}) and none is the default`, 'one config marked default', 'Point --data at that config\'s files.'));
  }
  const files = cfg.data_files;
  const list = (v: unknown): string[] => (typeof v === 'string' ? [v] : Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
  if (typeof files === 'string' || (Array.isArray(files) && files.every((f) => typeof f === 'string'))) return { train: list(files) };
  if (Array.isArray(files)) {
    const out: Record<string, string[]> = {};
    for (const f of files as { split?: unknown; path?: unknown }[]) out[String(f.split ?? 'train')] = [...(out[String(f.split ?? 'train')] ?? []), ...list(f.path)];
    return out;
  }
  if (files && typeof files === 'object') return Object.fromEntries(Object.entries(files).map(([k, v]) => [k, list(v)]));
  return null;
}

/** Split -> files (relative, sorted) of a folder of data files, as datasets' get_data_patterns resolves them. */
export function folderSplits(root: string): Map<string, string[]> {
  const files = walk(root);
  const out = new Map<string, string[]>();
  const readme = readmeSplits(root);
  if (readme) {
    for (const [split, globs] of Object.entries(readme)) {
      const res = globs.map(globRegex);
      out.set(split, files.filter((f) => res.some((r) => r.test(f))));
    }
    return out;
  }
  // SPLIT_PATTERN_SHARDED: data/{split}-[0-9]{5}-of-[0-9]{5}*.*
  for (const f of files) {
    const m = /^data\/([^/]+?)-\d{5}-of-\d{5}[^/]*\.[^/]+$/.exec(f);
    if (m) out.set(m[1]!, [...(out.get(m[1]!) ?? []), f]);
  }
  if (out.size > 0) return out;
  // DEFAULT_PATTERNS_SPLIT_IN_DIR_NAME, then DEFAULT_PATTERNS_SPLIT_IN_FILENAME, then everything is train.
  const byDir = (kw: string) => new RegExp(`(^|/)(${kw}|${kw}${SEP}[^/]*|[^/]*${SEP}${kw}|[^/]*${SEP}${kw}${SEP}[^/]*)/`);
  const byName = (kw: string) => new RegExp(`(^|/)(${kw}${SEP}[^/]*|[^/]*${SEP}${kw}${SEP}[^/]*)$`);
  for (const rule of [byDir, byName]) {
    for (const [split, kws] of Object.entries(SPLIT_KEYWORDS)) {
      const res = kws.map(rule);
      const hit = files.filter((f) => res.some((r) => r.test(f)));
      if (hit.length > 0) out.set(split, hit);
    }
    if (out.size > 0) return out;
  }
  if (files.length > 0) out.set('train', files);
  return out;
}

// ---- a data source: file, folder, save_to_disk, Hub cache ----

export interface DataSource {
  /** The files of the split, in order. */
  files: string[];
  /** The split read, or null for a single file. */
  split: string | null;
  /** What it was, for logs: `parquet file`, `save_to_disk DatasetDict`, `Hub dataset org/name`... */
  kind: string;
}

/** A save_to_disk Dataset folder's arrow files (state.json `_data_files`). */
function savedDatasetFiles(dir: string): string[] {
  const statePath = join(dir, 'state.json');
  let state: { _data_files?: { filename?: unknown }[] };
  try {
    state = JSON.parse(readFileSync(statePath, 'utf8'));
  } catch (e) {
    throw new InputError(describe(statePath, `not valid JSON (${(e as Error).message})`, "datasets' save_to_disk state.json"));
  }
  const files = (state._data_files ?? []).map((f) => f?.filename);
  if (files.length === 0 || files.some((f) => typeof f !== 'string')) {
    throw new InputError(describe(statePath, 'no "_data_files" list of {filename}', "datasets' save_to_disk state.json"));
  }
  return (files as string[]).map((f) => join(dir, f));
}

/** Picks `split` (default train; a lone split when train is absent and none was asked for) out of `splits`. */
function pickSplit<T>(splits: Map<string, T>, split: string | undefined, where: string): [string, T] {
  const want = split ?? 'train';
  const hit = splits.get(want);
  if (hit !== undefined) return [want, hit];
  if (split === undefined && splits.size === 1) return [...splits.entries()][0]!;
  const names = [...splits.keys()];
  throw new InputError(describe(where, names.length ? `no split "${want}" (it has ${names.join(', ')})` : 'no data files', names.length ? `one of ${names.join(', ')}` : '.parquet, .arrow, .jsonl or .json files', names.length ? 'Pass --split.' : undefined));
}

function folderSource(dir: string, split: string | undefined, kind: string, where: string): DataSource {
  const dictPath = join(dir, 'dataset_dict.json');
  if (existsSync(dictPath)) {
    let splits: unknown;
    try {
      splits = JSON.parse(readFileSync(dictPath, 'utf8')).splits;
    } catch (e) {
      throw new InputError(describe(dictPath, `not valid JSON (${(e as Error).message})`, "datasets' dataset_dict.json"));
    }
    if (!Array.isArray(splits)) throw new InputError(describe(dictPath, 'no "splits" list', "datasets' dataset_dict.json"));
    const [name] = pickSplit(new Map(splits.map((s) => [String(s), true])), split, where);
    return { files: savedDatasetFiles(join(dir, name)), split: name, kind: 'save_to_disk DatasetDict' };
  }
  if (existsSync(join(dir, 'state.json'))) return { files: savedDatasetFiles(dir), split: null, kind: 'save_to_disk Dataset' };
  const [name, files] = pickSplit(folderSplits(dir), split, where);
  return { files: files.map((f) => join(dir, f)), split: name, kind };
}

/**
 * Where `spec` (a file, a folder, or a Hub id `org/name` in the HF cache) keeps the rows of `split`. `flag` names
 * the option in errors. Never downloads.
 */
export function resolveData(spec: string, split: string | undefined, flag?: string, env: Record<string, string | undefined> = process.env): DataSource {
  const at = flag ? `${flag} ${spec}` : spec;
  if (existsSync(spec)) {
    if (statSync(spec).isDirectory()) return folderSource(spec, split, 'folder', at);
    return { files: [spec], split: null, kind: `${fileFormat(spec)} file` };
  }
  if (isHubId(spec)) {
    const cache = hubCacheDir(env);
    const snap = hubSnapshot(spec, cache, 'datasets');
    if (snap) return folderSource(snap, split, `Hub dataset ${spec} (HF cache)`, at);
    const where = join(cache, `datasets--${spec.replace('/', '--')}`, 'snapshots', '<rev>');
    throw new InputError(describe(at, 'no such file or folder here, and as a Hugging Face Hub dataset not in the HF cache', 'a data file or folder',
      `This trainer reads files only and never downloads. Download it where you have internet access ` +
      `(\`huggingface-cli download --repo-type dataset ${spec}\`) so that it lands in ${where}/, or pass a file or folder.`));
  }
  throw new InputError(describe(at, 'file not found'));
}

/** Every record of `spec`'s split, in order, with where each came from. */
export function readRecords(spec: string, opts: { split?: string; flag?: string; env?: Record<string, string | undefined> } = {}): { records: Located[]; source: DataSource } {
  const source = resolveData(spec, opts.split, opts.flag, opts.env);
  const records = source.files.flatMap(readFileRecords);
  return { records, source };
}

/** `spec` names a single JSON or JSONL file (the line-numbered formats). */
export function isJsonFile(spec: string): boolean {
  return existsSync(spec) && !statSync(spec).isDirectory() && fileFormat(spec) === 'json';
}

/** A content hash of `spec`'s split, for resume keys: a single file's own hash, else the split's files' hashes. */
export function hashData(spec: string, split?: string): string {
  if (existsSync(spec) && !statSync(spec).isDirectory()) return hashFile(spec);
  const source = resolveData(spec, split);
  return hashJson({ split: source.split, files: source.files.map(hashFile) });
}

// Sharded safetensors checkpoints: `<prefix>-00001-of-0000N.safetensors` + `<prefix>.safetensors.index.json`, as
// transformers' save_pretrained writes them (index last; shards renamed in once all are written). Read shard by shard.
import { mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fsyncDir, tempSibling, unlinkIfExists, writeFileAtomic } from './atomic.js';
import { readJsonObject } from './json.js';
import { DTYPE_BYTES, fail, isCount, numel, openSafetensors, writeSafetensors, type ReadTensor, type SafetensorsFile, type TensorToWrite, type WriteOptions } from './safetensors.js';

export interface SafetensorsIndex {
  path: string;
  /** `metadata.total_size` when present: the sum of tensor bytes, headers excluded. */
  totalSize: number | null;
  /** tensor name -> shard file name (relative to the index's directory). */
  weightMap: Map<string, string>;
  /** Shard file names, sorted (as transformers does: `sorted(set(weight_map.values()))`). */
  shards: string[];
}

export function readSafetensorsIndex(path: string): SafetensorsIndex {
  const j = readJsonObject(path, 'a safetensors index {metadata: {total_size}, weight_map: {name: file}}');
  const wm = (j as { weight_map?: unknown } | null)?.weight_map;
  if (typeof wm !== 'object' || wm === null || Array.isArray(wm)) throw fail(path, null, 'no weight_map object', '{weight_map: {name: shard file}}');
  const total = (j as { metadata?: { total_size?: unknown } }).metadata?.total_size;
  if (total !== undefined && !isCount(total)) throw fail(path, null, `metadata.total_size ${JSON.stringify(total)}`, 'a non-negative integer');
  const weightMap = new Map<string, string>();
  const shards: string[] = [];
  for (const [name, f] of Object.entries(wm)) {
    // A shard must sit beside the index: no paths, so a crafted index cannot read files elsewhere.
    if (typeof f !== 'string' || f !== basename(f) || f === '..' || f === '.' || f.includes('\\')) throw fail(path, name, `shard ${JSON.stringify(f)}`, 'a file name in the same directory');
    weightMap.set(name, f);
    if (!shards.includes(f)) shards.push(f);
  }
  return { path, totalSize: total ?? null, weightMap, shards: shards.sort() };
}

export interface ShardTensor extends ReadTensor {
  file: string;
  name: string;
}

/**
 * Yields every tensor of a single file or of an index's shards, one shard open at a time, checking that each
 * shard holds exactly the tensors the index assigns to it. Peak memory is one tensor.
 */
export function* iterateSafetensors(path: string): Generator<ShardTensor> {
  const index = path.endsWith('.json') ? readSafetensorsIndex(path) : null;
  const files = index ? index.shards.map((s) => join(dirname(path), s)) : [path];
  for (const file of files) {
    const st = openSafetensors(file);
    try {
      if (index) checkShardAgainstIndex(index, file, st);
      for (const e of st.entries) yield { file, name: e.name, ...st.read(e.name) };
    } finally {
      st.close();
    }
  }
}

/** The shard must contain exactly the names the index maps to it. */
export function checkShardAgainstIndex(index: SafetensorsIndex, file: string, st: SafetensorsFile): void {
  const shard = basename(file);
  for (const [name, f] of index.weightMap) {
    if (f === shard && !st.has(name)) throw fail(file, name, `missing, though ${basename(index.path)} maps it here`, 'the tensor in this shard', 'The index and shards are out of sync; re-download or re-save the model.');
  }
  for (const e of st.entries) {
    const f = index.weightMap.get(e.name);
    if (f !== shard) throw fail(file, e.name, f ? `present, but ${basename(index.path)} maps it to ${f}` : `not listed in ${basename(index.path)}`, 'every tensor in weight_map', 'The index and shards are out of sync; re-download or re-save the model.');
  }
}

export interface ShardedWriteOptions extends WriteOptions {
  /** Max tensor bytes per shard (headers excluded), default 5e9 like transformers' "5GB". A bigger tensor gets its own shard. */
  maxShardBytes?: number;
  /** File name stem, default `model`. */
  prefix?: string;
}

export interface ShardedWriteResult {
  /** Written file names, relative to `dir`. */
  files: string[];
  /** The index file name, or null when a single `<prefix>.safetensors` was written. */
  indexFile: string | null;
  totalSize: number;
}

/**
 * Writes tensors (in the given order, greedily packed) as shards + index like transformers' save_pretrained, or one
 * `<prefix>.safetensors` when they fit in one shard. Each file is atomic, the index is written last, and stale files
 * of the other layout are removed afterwards. Shards are buffered as descriptors only: pass lazy `data` to keep
 * host memory at one tensor.
 */
export async function writeShardedSafetensors(
  dir: string,
  tensors: Iterable<TensorToWrite> | AsyncIterable<TensorToWrite>,
  opts: ShardedWriteOptions = {},
): Promise<ShardedWriteResult> {
  const prefix = opts.prefix ?? 'model';
  const max = opts.maxShardBytes ?? 5e9;
  mkdirSync(dir, { recursive: true });
  // The shard count is unknown until the input ends, so shards go to hidden part files and are renamed at the end.
  const parts: { tmp: string; names: string[] }[] = [];
  let group: TensorToWrite[] = [];
  let groupBytes = 0;
  let totalSize = 0;
  const names = new Set<string>();
  const flush = async (): Promise<void> => {
    if (group.length === 0) return;
    const tmp = tempSibling(join(dir, `${prefix}-part${parts.length + 1}.safetensors`));
    parts.push({ tmp, names: group.map((t) => t.name) });
    await writeSafetensors(tmp, group, opts);
    group = [];
    groupBytes = 0;
  };
  try {
    for await (const t of tensors) {
      if (names.has(t.name)) throw fail(dir, t.name, 'duplicate name', 'unique tensor names');
      names.add(t.name);
      const bytes = numel(t.shape) * DTYPE_BYTES[t.dtype ?? opts.dtype ?? 'F32'];
      if (group.length > 0 && groupBytes + bytes > max) await flush();
      group.push(t);
      groupBytes += bytes;
      totalSize += bytes;
    }
    await flush();
    if (parts.length === 0) {
      parts.push({ tmp: tempSibling(join(dir, `${prefix}.safetensors`)), names: [] });
      await writeSafetensors(parts[0]!.tmp, [], opts);
    }
  } catch (e) {
    for (const p of parts) rmSync(p.tmp, { force: true });
    throw e;
  }
  const n = parts.length;
  const single = n === 1;
  const pad = (i: number): string => String(i).padStart(5, '0');
  const files = single ? [`${prefix}.safetensors`] : parts.map((_, i) => `${prefix}-${pad(i + 1)}-of-${pad(n)}.safetensors`);
  parts.forEach((p, i) => renameSync(p.tmp, join(dir, files[i]!)));
  fsyncDir(dir);
  const indexFile = `${prefix}.safetensors.index.json`;
  if (!single) {
    const weightMap: Record<string, string> = {};
    const pairs = parts.flatMap((p, i) => p.names.map((name) => [name, files[i]!] as const));
    for (const [name, f] of pairs.sort((a, b) => (a[0] < b[0] ? -1 : 1))) weightMap[name] = f;
    // Same layout as transformers: json.dumps(index, indent=2, sort_keys=True) + "\n".
    writeFileAtomic(join(dir, indexFile), JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2) + '\n');
  }
  const shardRe = new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-\\d{5}-of-\\d{5}\\.safetensors$`);
  for (const f of readdirSync(dir)) {
    const stale = (shardRe.test(f) && !files.includes(f)) || (single ? f === indexFile : f === `${prefix}.safetensors`);
    if (stale) unlinkIfExists(join(dir, f));
  }
  return { files, indexFile: single ? null : indexFile, totalSize };
}

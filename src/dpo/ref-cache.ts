// The reference log-prob cache of a run: computed once before training with the same code as `score`,
// stored in the run folder and keyed by hashes of everything that changes it, so a stale cache is never reused.
import { existsSync } from 'node:fs';
import { writeFileAtomic } from '../io/atomic.js';
import { readJsonObject } from '../io/json.js';
import { runFile } from '../run/layout.js';
import type { PairLogpTable } from './reference.js';

const FORMAT = 'dpo-ref-logps';
// 2: TRL 1.x tokenization (joint prompt + completion ids, one <|eot_id|> on chat pairs); a v1 cache is recomputed.
const VERSION = 2;

interface CacheFile {
  format: typeof FORMAT;
  version: number;
  key: string;
  chosen: number[];
  rejected: number[];
  chosen_tokens: number[];
  rejected_tokens: number[];
}

/** A cache file's key and table when it is one (format, version and array lengths checked), else null. */
function parseCache(file: string): { key: unknown; version: number; table: PairLogpTable } | null {
  let c: Partial<CacheFile>;
  try {
    c = readJsonObject(file, 'a reference cache') as Partial<CacheFile>;
  } catch {
    return null;
  }
  const arrays = [c.chosen, c.rejected, c.chosen_tokens, c.rejected_tokens];
  // v1 tables still read for the report (the numbers are what that run trained on); training needs VERSION.
  if (c.format !== FORMAT || (c.version !== VERSION && c.version !== 1) || !arrays.every((a) => Array.isArray(a) && a.length === c.chosen!.length)) return null;
  return {
    key: c.key,
    version: c.version,
    table: {
      chosen: Float64Array.from(c.chosen!),
      rejected: Float64Array.from(c.rejected!),
      chosenTokens: Int32Array.from(c.chosen_tokens!),
      rejectedTokens: Int32Array.from(c.rejected_tokens!),
    },
  };
}

/** The table of a cache file whatever its key (the report reads a run's cache), or null when it is not a cache. */
export function readRefCacheFile(file: string): PairLogpTable | null {
  return existsSync(file) ? (parseCache(file)?.table ?? null) : null;
}

/** The run folder's cached table when its key matches and it holds `n` pairs, else null. */
export function readRefCache(dir: string, key: string, n: number): PairLogpTable | null {
  const file = runFile(dir, 'refLogps');
  const c = existsSync(file) ? parseCache(file) : null;
  return c && c.version === VERSION && c.key === key && c.table.chosen.length === n ? c.table : null;
}

export function writeRefCache(dir: string, key: string, t: PairLogpTable): void {
  const c: CacheFile = {
    format: FORMAT,
    version: VERSION,
    key,
    chosen: Array.from(t.chosen),
    rejected: Array.from(t.rejected),
    chosen_tokens: Array.from(t.chosenTokens),
    rejected_tokens: Array.from(t.rejectedTokens),
  };
  writeFileAtomic(runFile(dir, 'refLogps'), JSON.stringify(c) + '\n');
}

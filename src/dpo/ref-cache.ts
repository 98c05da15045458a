// The reference log-prob cache of a run: computed once before training with the same code as `score`,
// stored in the run folder and keyed by hashes of everything that changes it, so a stale cache is never reused.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import type { PairLogpTable } from './reference.js';

export const REF_CACHE_FILE = 'ref_logps.json';

interface CacheFile {
  format: 'dpo-ref-logps';
  version: 1;
  key: string;
  chosen: number[];
  rejected: number[];
  chosen_tokens: number[];
  rejected_tokens: number[];
}

/** The cached table when its key matches, else null. */
export function readRefCache(dir: string, key: string, n: number): PairLogpTable | null {
  const file = join(dir, REF_CACHE_FILE);
  if (!existsSync(file)) return null;
  try {
    const c = JSON.parse(readFileSync(file, 'utf8')) as CacheFile;
    if (c.format !== 'dpo-ref-logps' || c.version !== 1 || c.key !== key || c.chosen.length !== n) return null;
    return {
      chosen: Float64Array.from(c.chosen),
      rejected: Float64Array.from(c.rejected),
      chosenTokens: Int32Array.from(c.chosen_tokens),
      rejectedTokens: Int32Array.from(c.rejected_tokens),
    };
  } catch {
    return null;
  }
}

export function writeRefCache(dir: string, key: string, t: PairLogpTable): void {
  const c: CacheFile = {
    format: 'dpo-ref-logps',
    version: 1,
    key,
    chosen: Array.from(t.chosen),
    rejected: Array.from(t.rejected),
    chosen_tokens: Array.from(t.chosenTokens),
    rejected_tokens: Array.from(t.rejectedTokens),
  };
  writeFileAtomic(join(dir, REF_CACHE_FILE), JSON.stringify(c) + '\n');
}

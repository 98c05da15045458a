// The reference log-prob table of a run: from the run folder's cache, from a `score` output, or computed (with the
// same code as `score`) under the reference model, then cached, keyed by everything that changes it, so a stale cache
// is never reused. Also the per-step reference provider: table lookups, or with --ref-mode online a no-grad forward.
import * as tf from '@tensorflow/tfjs';
import { existsSync } from 'node:fs';
import { collatePairs, type TokenizedPair } from '../data/batch.js';
import { writeFileAtomic } from '../io/atomic.js';
import { readJsonObject } from '../io/json.js';
import type { LoadedModel } from '../io/model-dir.js';
import { disposeLora, type Lora } from '../model/lora.js';
import { runFile } from '../run/layout.js';
import type { PairLogps } from '../curriculum/difficulty.js';
import { progress } from '../util/progress.js';
import { batchSequenceLogprobs } from './logprobs.js';
import { computePairLogps, type PairLogpTable } from './reference.js';

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

export interface RefTableSource {
  model: LoadedModel;
  pairs: readonly TokenizedPair[];
  batchSize: number;
  /** The run folder holding the cache. */
  dir: string;
  /** Hash of everything the log-probs depend on (model, tokenizer, data, reference adapter, tokenization). */
  key: string;
  /** A `score` output's log-probs for these pairs (checked line by line), usable when the reference is the bare base. */
  scored: PairLogps[] | null;
  scoresFile?: string | null;
  /** Loads the reference adapter (null: the bare base); disposed after the pass. */
  referenceLora: () => Lora | null;
  log: (line: string) => void;
}

/** The table: the cache when its key matches, else the scores, else a pass under the reference model; cached after. */
export async function referenceTable(s: RefTableSource): Promise<PairLogpTable> {
  const cached = readRefCache(s.dir, s.key, s.pairs.length);
  if (cached) {
    s.log('reference log-probs: reusing the cache');
    return cached;
  }
  let table: PairLogpTable;
  if (s.scored) {
    table = {
      chosen: Float64Array.from(s.scored, (l) => l.chosenLogp), rejected: Float64Array.from(s.scored, (l) => l.rejectedLogp),
      chosenTokens: Int32Array.from(s.scored, (l) => l.chosenTokens), rejectedTokens: Int32Array.from(s.scored, (l) => l.rejectedTokens),
    };
    s.log(`reference log-probs: taken from ${s.scoresFile}`);
  } else {
    const lora = s.referenceLora();
    try {
      const bar = progress('reference log-probs', s.pairs.length, 'pairs');
      table = await computePairLogps(s.model.cfg, s.model.weights, s.pairs, s.model.tokenizer.padId, s.batchSize, lora, (d) => bar.tick(d));
      bar.done();
    } finally {
      if (lora) disposeLora(lora);
    }
  }
  writeRefCache(s.dir, s.key, table);
  return table;
}

/** Per-pair log-probs of the table, as the difficulty functions read them. */
export function tableLogps(t: PairLogpTable): PairLogps[] {
  return Array.from(t.chosen, (_, i) => ({ chosenLogp: t.chosen[i], chosenTokens: t.chosenTokens[i], rejectedLogp: t.rejected[i], rejectedTokens: t.rejectedTokens[i] }));
}

/**
 * Reference log-probs of one micro-batch's pairs: from the table (host values, uploaded by the objective), or computed
 * online as tensors that stay on the device (no read-back inside the step). The objective disposes the tensors.
 */
export type RefProvider = (pairs: readonly TokenizedPair[], positions: readonly number[]) =>
  { chosen: Float32Array | tf.Tensor1D; rejected: Float32Array | tf.Tensor1D };

/** TRL's `reference_free`: every reference log-prob is 0, so the rewards are beta times the policy's log-probs. */
export const zeroReference: RefProvider = (pairs) => ({ chosen: new Float32Array(pairs.length), rejected: new Float32Array(pairs.length) });

/**
 * The step's reference: table rows of the kept pairs (`keptIdx[position]`), or with no table a forward of the
 * same `[chosen; rejected]` batch under the reference (base + `refLora`, or the bare base), without gradient.
 */
export function refProvider(table: PairLogpTable | null, keptIdx: readonly number[], model: LoadedModel, refLora: Lora | null): RefProvider {
  if (table) return (_pairs, positions) => ({ chosen: Float32Array.from(positions, (p) => table.chosen[keptIdx[p]]), rejected: Float32Array.from(positions, (p) => table.rejected[keptIdx[p]]) });
  return (pairs) => tf.tidy(() => {
    const l = batchSequenceLogprobs(model.cfg, model.weights, collatePairs(pairs, model.tokenizer.padId), { lora: refLora, training: false }); // [2P]
    return { chosen: tf.slice(l, [0], [pairs.length]) as tf.Tensor1D, rejected: tf.slice(l, [pairs.length], [pairs.length]) as tf.Tensor1D };
  });
}

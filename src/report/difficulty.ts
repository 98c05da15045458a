// Per-pair difficulty for the report: difficulty.json when the curriculum wrote one, else |distance| from
// scores.jsonl (the `score` output) or the run's reference cache. Percentiles as numpy.percentile.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pairDistance, quantile } from '../curriculum/difficulty.js';
import { REF_CACHE_FILE } from '../dpo/ref-cache.js';
import { InputError, describe } from '../util/errors.js';
import { readJsonl } from './inputs.js';

export interface Percentiles {
  p10: number;
  p50: number;
  p90: number;
}

export interface Difficulty {
  /** Pair index (0-based line of the pair in the data file) -> difficulty. */
  byIndex: Map<number, number>;
  /** Axis label, e.g. `|distance|`. */
  name: string;
  percentiles: Percentiles;
  /** Where it came from, for the page. */
  source: string;
}

function percentilesOf(values: number[]): Percentiles {
  return { p10: quantile(values, 10), p50: quantile(values, 50), p90: quantile(values, 90) };
}

/**
 * difficulty.json: `{difficulty: (number|null)[] by pair index, name?, percentiles?: {p10, p50, p90}}`.
 * Missing percentiles are computed from the values; null entries are pairs without a score (pruned, dropped).
 */
export function readDifficultyJson(file: string): Difficulty {
  let obj: unknown;
  try {
    obj = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new InputError(describe(file, `invalid JSON: ${(e as Error).message}`, 'a JSON object'));
  }
  const d = obj as { difficulty?: unknown; name?: unknown; percentiles?: Partial<Record<keyof Percentiles, unknown>> };
  if (!d || typeof d !== 'object' || !Array.isArray(d.difficulty)) throw new InputError(describe(`${file}: "difficulty"`, 'missing or not an array', 'one number per pair index'));
  const byIndex = new Map<number, number>();
  d.difficulty.forEach((v, i) => {
    if (typeof v === 'number' && Number.isFinite(v)) byIndex.set(i, v);
    else if (v !== null) throw new InputError(describe(`${file}: "difficulty"[${i}]`, JSON.stringify(v), 'a finite number or null'));
  });
  let percentiles = percentilesOf([...byIndex.values()]);
  const p = d.percentiles;
  if (p && typeof p === 'object') {
    const given = [p.p10, p.p50, p.p90];
    if (given.every((x) => typeof x === 'number' && Number.isFinite(x))) percentiles = { p10: p.p10 as number, p50: p.p50 as number, p90: p.p90 as number };
  }
  const name = typeof d.name === 'string' && d.name ? d.name : 'difficulty';
  return { byIndex, name, percentiles, source: file };
}

/**
 * scores.jsonl -> difficulty. A line's pair index is its `index` field when present, else its position among
 * the file's lines: `score` writes kept pairs in input order, so order equals data index only when tokenization
 * dropped no pair. The convention follows the run's config when it names one (`distanceMetric: sum`,
 * `distanceSign: signed`); the default is the `score` command's |per-token distance|.
 */
export function readScores(file: string, runConfig: Record<string, unknown> | null, notes: string[]): Difficulty {
  const f = readJsonl(file);
  if (f.tornLastLine) notes.push(`${f.tornLastLine}: last line is not complete JSON; skipped.`);
  const metric = runConfig?.distanceMetric === 'sum' ? 'sum' : 'mean';
  const signed = runConfig?.distanceSign === 'signed';
  const byIndex = new Map<number, number>();
  let byOrder = 0;
  f.rows.forEach(({ obj, where }, i) => {
    let index = i;
    if (Number.isInteger(obj.index) && (obj.index as number) >= 0) index = obj.index as number;
    else byOrder++;
    let dist: number;
    if (metric === 'sum') {
      const [c, r] = [obj.chosen_logp, obj.rejected_logp];
      if (typeof c !== 'number' || typeof r !== 'number') throw new InputError(describe(where, 'no "chosen_logp"/"rejected_logp"', 'a `score` output line'));
      dist = pairDistance(c, 1, r, 1, 'sum');
    } else {
      if (typeof obj.distance !== 'number' || !Number.isFinite(obj.distance)) throw new InputError(describe(`${where}: "distance"`, JSON.stringify(obj.distance), 'a finite number', 'Is this a `score` output?'));
      dist = obj.distance;
    }
    byIndex.set(index, signed ? dist : Math.abs(dist));
  });
  if (byIndex.size === 0) throw new InputError(describe(file, 'no lines', 'one score per pair'));
  if (byOrder > 0) notes.push(`${file}: ${byOrder} lines have no "index"; matched to pairs by line order (exact only if no pair was dropped at tokenization).`);
  const base = metric === 'sum' ? 'distance (sum)' : 'distance';
  return { byIndex, name: signed ? base : `|${base}|`, percentiles: percentilesOf([...byIndex.values()]), source: file };
}

/**
 * A run's reference cache (dpo/ref-cache.ts, `--ref-mode cache`) -> the same distance `score` computes, from the
 * run's own reference. Its entries follow the kept pairs in input order, matched to pair indices as scores by order.
 * Null when the file is not a readable cache.
 */
export function readRefLogps(file: string, runConfig: Record<string, unknown> | null, notes: string[]): Difficulty | null {
  let c: { format?: unknown; chosen?: unknown; rejected?: unknown; chosen_tokens?: unknown; rejected_tokens?: unknown };
  try {
    c = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return null;
  }
  const arrays = [c.chosen, c.rejected, c.chosen_tokens, c.rejected_tokens];
  if (c.format !== 'dpo-ref-logps' || !arrays.every((a) => Array.isArray(a) && a.length === (c.chosen as unknown[]).length)) return null;
  const [ch, rj, ct, rt] = arrays as number[][];
  const metric = runConfig?.distanceMetric === 'sum' ? 'sum' : 'mean';
  const signed = runConfig?.distanceSign === 'signed';
  const byIndex = new Map<number, number>();
  ch.forEach((_, i) => {
    const d = pairDistance(ch[i], ct[i], rj[i], rt[i], metric);
    if (Number.isFinite(d)) byIndex.set(i, signed ? d : Math.abs(d));
  });
  if (byIndex.size === 0) return null;
  notes.push(`difficulty from the run's reference cache ${file}, matched to pairs by order (exact only if no pair was dropped at tokenization).`);
  const base = metric === 'sum' ? 'distance (sum)' : 'distance';
  return { byIndex, name: signed ? base : `|${base}|`, percentiles: percentilesOf([...byIndex.values()]), source: file };
}

/**
 * The first source found, in this order: difficulty.json in `dirs`; scores.jsonl in `dirs`; the run config's
 * `scores` file (`--scores FILE`); the reference cache ref_logps.json in `dirs`. Null when there is none.
 */
export function findDifficulty(dirs: string[], runConfig: Record<string, unknown> | null, notes: string[]): Difficulty | null {
  for (const dir of dirs) {
    const dj = join(dir, 'difficulty.json');
    if (existsSync(dj)) return readDifficultyJson(dj);
  }
  const candidates = dirs.map((d) => join(d, 'scores.jsonl'));
  if (typeof runConfig?.scores === 'string') candidates.push(runConfig.scores);
  for (const sj of candidates) if (existsSync(sj)) return readScores(sj, runConfig, notes);
  for (const dir of dirs) {
    const rf = join(dir, REF_CACHE_FILE);
    const d = existsSync(rf) ? readRefLogps(rf, runConfig, notes) : null;
    if (d) return d;
  }
  return null;
}

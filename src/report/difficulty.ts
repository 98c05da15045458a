// Per-pair difficulty for the report: difficulty.json when the curriculum wrote one, else the distance difficulty
// from scores.jsonl (the `score` output) or the run's reference cache, under the run's metric and sign exactly as
// training computes it (curriculum/difficulty.ts). Percentiles as numpy.percentile.
import { existsSync } from 'node:fs';
import { distanceDifficulty, distanceDifficulties, pairDistance, quantile, type DistanceMetric, type DistanceSign } from '../curriculum/difficulty.js';
import { readRefCacheFile } from '../dpo/ref-table.js';
import { InputError, describe } from '../util/errors.js';
import { readDifficulty, readRunJsonl } from '../run/files.js';
import { runFile } from '../run/layout.js';

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

/** difficulty.json: missing percentiles are computed from the values; null entries are pairs without a score (pruned, dropped). */
export function readDifficultyJson(file: string): Difficulty {
  const d = readDifficulty(file);
  return { byIndex: d.byIndex, name: d.name ?? 'difficulty', percentiles: d.percentiles ?? percentilesOf([...d.byIndex.values()]), source: file };
}

/** The run's distance convention (its run_config.json), defaulting to the `score` command's |per-token distance|. */
function convention(runConfig: Record<string, unknown> | null): { metric: DistanceMetric; sign: DistanceSign; name: string } {
  const metric = runConfig?.distanceMetric === 'sum' ? 'sum' : 'mean';
  const sign = runConfig?.distanceSign === 'signed' ? 'signed' : 'abs';
  const base = metric === 'sum' ? 'distance (sum)' : 'distance';
  return { metric, sign, name: sign === 'signed' ? `-${base}` : `|${base}|` };
}

/**
 * scores.jsonl -> difficulty. A line's pair index is its `index` field when present, else its position among
 * the file's lines: `score` writes kept pairs in input order, so order equals data index only when tokenization
 * dropped no pair. The convention follows the run's config when it names one (`distanceMetric: sum`,
 * `distanceSign: signed`); the default is the `score` command's |per-token distance|.
 */
export function readScores(file: string, runConfig: Record<string, unknown> | null, notes: string[]): Difficulty {
  const f = readRunJsonl(file, notes);
  const c = convention(runConfig);
  const byIndex = new Map<number, number>();
  let byOrder = 0;
  f.rows.forEach(({ value: obj, where }, i) => {
    let index = i;
    if (Number.isInteger(obj.index) && (obj.index as number) >= 0) index = obj.index as number;
    else byOrder++;
    let dist: number;
    if (c.metric === 'sum') {
      const [ch, r] = [obj.chosen_logp, obj.rejected_logp];
      if (typeof ch !== 'number' || typeof r !== 'number') throw new InputError(describe(where, 'no "chosen_logp"/"rejected_logp"', 'a `score` output line'));
      dist = pairDistance(ch, 1, r, 1, 'sum');
    } else {
      if (typeof obj.distance !== 'number' || !Number.isFinite(obj.distance)) throw new InputError(describe(`${where}: "distance"`, JSON.stringify(obj.distance), 'a finite number', 'Is this a `score` output?'));
      dist = obj.distance;
    }
    byIndex.set(index, distanceDifficulty(dist, c.sign));
  });
  if (byIndex.size === 0) throw new InputError(describe(file, 'no lines', 'one score per pair'));
  if (byOrder > 0) notes.push(`${file}: ${byOrder} lines have no "index"; matched to pairs by line order (exact only if no pair was dropped at tokenization).`);
  return { byIndex, name: c.name, percentiles: percentilesOf([...byIndex.values()]), source: file };
}

/**
 * A run's reference cache (dpo/ref-table.ts, `--ref-mode cache`) -> the same distance `score` computes, from the
 * run's own reference. Its entries follow the kept pairs in input order, matched to pair indices as scores by order.
 * Null when the file is not a readable cache.
 */
export function readRefLogps(file: string, runConfig: Record<string, unknown> | null, notes: string[]): Difficulty | null {
  const t = readRefCacheFile(file);
  if (!t) return null;
  const c = convention(runConfig);
  const all = distanceDifficulties(Array.from(t.chosen, (_, i) => ({ chosenLogp: t.chosen[i], chosenTokens: t.chosenTokens[i], rejectedLogp: t.rejected[i], rejectedTokens: t.rejectedTokens[i] })), c.metric, c.sign);
  const byIndex = new Map<number, number>();
  all.forEach((d, i) => {
    if (Number.isFinite(d)) byIndex.set(i, d);
  });
  if (byIndex.size === 0) return null;
  notes.push(`difficulty from the run's reference cache ${file}, matched to pairs by order (exact only if no pair was dropped at tokenization).`);
  return { byIndex, name: c.name, percentiles: percentilesOf([...byIndex.values()]), source: file };
}

/**
 * The first source found, in this order: the curriculum's difficulty file in `dirs`; a `score` output in `dirs`; the run
 * config's `scores` file (`--scores FILE`); the reference cache in `dirs` (names in run/layout.ts). Null when there is none.
 */
export function findDifficulty(dirs: string[], runConfig: Record<string, unknown> | null, notes: string[]): Difficulty | null {
  for (const dir of dirs) {
    const dj = runFile(dir, 'difficulty');
    if (existsSync(dj)) return readDifficultyJson(dj);
  }
  const candidates = dirs.map((d) => runFile(d, 'scores'));
  if (typeof runConfig?.scores === 'string') candidates.push(runConfig.scores);
  for (const sj of candidates) if (existsSync(sj)) return readScores(sj, runConfig, notes);
  for (const dir of dirs) {
    const rf = runFile(dir, 'refLogps');
    const d = existsSync(rf) ? readRefLogps(rf, runConfig, notes) : null;
    if (d) return d;
  }
  return null;
}

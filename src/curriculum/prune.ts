// Pruning the tails of the difficulty distribution before training: `--prune-below P` drops pairs whose
// difficulty percentile rank is strictly below P, `--prune-above P` those strictly above P (a rank equal to P is
// kept on both sides). Ranks are percentileRanks' over all the pairs given, so equal difficulties share a fate.
import { InputError, describe } from '../util/errors.js';
import { percentileRanks } from './difficulty.js';

export interface PruneOptions {
  /** Drop pairs with percentile rank < below; null keeps the bottom tail. */
  below: number | null;
  /** Drop pairs with percentile rank > above; null keeps the top tail. */
  above: number | null;
}

export interface PruneCounts {
  below: number;
  above: number;
  kept: number;
}

export interface PruneResult {
  /** Positions (indices into the difficulty array) that survive, ascending. */
  kept: number[];
  counts: PruneCounts;
}

function checkPercentile(p: number | null, flag: string): void {
  if (p !== null && !(Number.isFinite(p) && p >= 0 && p <= 100)) throw new InputError(describe(flag, `${p}`, 'a percentile in [0, 100]'));
}

/** Splits pairs into kept / dropped-below / dropped-above by the percentile rank of their difficulty. */
export function prunePairs(difficulty: readonly number[], opts: PruneOptions): PruneResult {
  checkPercentile(opts.below, '--prune-below');
  checkPercentile(opts.above, '--prune-above');
  if (opts.below !== null && opts.above !== null && opts.below > opts.above) {
    throw new InputError(describe(`--prune-below ${opts.below} --prune-above ${opts.above}`, 'below is above the upper cut', '--prune-below <= --prune-above'));
  }
  const ranks = percentileRanks(difficulty);
  const kept: number[] = [];
  const counts: PruneCounts = { below: 0, above: 0, kept: 0 };
  ranks.forEach((p, i) => {
    if (opts.below !== null && p < opts.below) counts.below++;
    else if (opts.above !== null && p > opts.above) counts.above++;
    else kept.push(i);
  });
  counts.kept = kept.length;
  if (difficulty.length > 0 && kept.length === 0) {
    throw new InputError(
      describe(`--prune-below ${opts.below ?? 'none'} --prune-above ${opts.above ?? 'none'}`, `drops all ${difficulty.length} pairs`, 'at least one pair kept', 'Widen the range.'),
    );
  }
  return { kept, counts };
}

/** One log line, e.g. `pruned 3 pairs (2 below p10, 1 above p95); 95 kept`. */
export function formatPruneCounts(c: PruneCounts, opts: PruneOptions): string {
  const parts: string[] = [];
  if (opts.below !== null) parts.push(`${c.below} below p${opts.below}`);
  if (opts.above !== null) parts.push(`${c.above} above p${opts.above}`);
  return `pruned ${c.below + c.above} pairs (${parts.join(', ') || 'no cuts'}); ${c.kept} kept`;
}

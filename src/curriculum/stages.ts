// Curriculum stages: pairs bucketed by the percentile rank of their difficulty, split at cut percentiles.
// Bucket k holds ranks p with cut[k-1] <= p < cut[k] (half-open, upper side takes a rank equal to a cut); ranks are
// percentileRanks' 0-100 average ranks, so pairs of equal difficulty share a rank and always share a bucket.
import { InputError, describe } from '../util/errors.js';
import { percentileRanks } from './difficulty.js';

/** The default split: p10, p50, p90 -> 4 stages (about 10% / 40% / 40% / 10% of the pairs). */
export const DEFAULT_STAGE_PERCENTILES: readonly number[] = [10, 50, 90];

/** Cuts must be finite, within [0, 100] and strictly increasing; an empty list is one stage. */
export function checkStagePercentiles(cuts: readonly number[], where = '--stage-percentiles'): void {
  cuts.forEach((c, i) => {
    if (!Number.isFinite(c) || c < 0 || c > 100) throw new InputError(describe(where, `${c}`, 'percentiles in [0, 100]'));
    if (i > 0 && !(c > cuts[i - 1]!)) {
      throw new InputError(describe(where, cuts.join(','), 'strictly increasing percentiles', 'For example 10,50,90.'));
    }
  });
}

/** Bucket of one percentile rank: the number of cuts at or below it. */
export function bucketOfRank(p: number, cuts: readonly number[]): number {
  let k = 0;
  while (k < cuts.length && cuts[k]! <= p) k++;
  return k;
}

/** Bucket of every pair, from its difficulty (smaller = easier): 0..cuts.length, by percentile rank. */
export function stageBuckets(difficulty: readonly number[], cuts: readonly number[]): number[] {
  checkStagePercentiles(cuts);
  return percentileRanks(difficulty).map((p) => bucketOfRank(p, cuts));
}

/** Pairs per bucket, empty buckets included, so index k is always the k-th percentile range. */
export function bucketSizes(buckets: readonly number[], numBuckets: number): number[] {
  const sizes = new Array<number>(numBuckets).fill(0);
  for (const b of buckets) sizes[b]!++;
  return sizes;
}

/** Exclusive end of each stage in an epoch order where stages run contiguously: the running sum of sizes. */
export function stageEnds(sizes: readonly number[]): number[] {
  let end = 0;
  return sizes.map((s) => (end += s));
}

/**
 * The 0-based optimizer step within an epoch after which each stage is complete, or null for an empty stage.
 * A step takes `pairsPerStep` (batch size x grad accumulation) consecutive positions of the order, so a step can
 * straddle two stages; the stage counts as done after the step that holds its last pair.
 */
export function stageEndSteps(sizes: readonly number[], pairsPerStep: number): (number | null)[] {
  if (!Number.isInteger(pairsPerStep) || pairsPerStep < 1) throw new RangeError(`stageEndSteps: pairsPerStep ${pairsPerStep} (expected an integer >= 1)`);
  const ends = stageEnds(sizes);
  return ends.map((e, k) => (sizes[k] === 0 ? null : Math.floor((e - 1) / pairsPerStep)));
}

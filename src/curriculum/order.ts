// The order in which pairs are trained, epoch by epoch: pure and deterministic for (plan, seed, epoch).
// `none` is file order; `shuffle` a seeded permutation per epoch (the baseline); `distance` ascending difficulty
// (ties by position); `stages` difficulty buckets (stages.ts) in order, each shuffled with its own seed.
import { hashJson } from '../util/hash.js';
import { Rng } from '../util/rng.js';
import { InputError, describe } from '../util/errors.js';
import { DEFAULT_STAGE_PERCENTILES, bucketSizes, checkStagePercentiles, stageBuckets, stageEnds } from './stages.js';

export const CURRICULA = ['none', 'shuffle', 'distance', 'stages'] as const;
export type CurriculumName = (typeof CURRICULA)[number];

/** Everything the order depends on besides (seed, epoch). Positions index the kept pairs. */
export interface CurriculumPlan {
  name: CurriculumName;
  /** Difficulty per position, smaller = easier; required by `distance` and `stages`, ignored by the others. */
  difficulty: readonly number[] | null;
  /** Stage cuts in percentile rank of the difficulty (stages.ts); used by `distance` and `stages`. */
  stagePercentiles: readonly number[];
}

/** Checks and builds a plan; `distance` and `stages` need one finite difficulty per pair. */
export function makePlan(name: CurriculumName, difficulty: readonly number[] | null = null, stagePercentiles: readonly number[] = DEFAULT_STAGE_PERCENTILES): CurriculumPlan {
  if (!(CURRICULA as readonly string[]).includes(name)) throw new InputError(describe('--curriculum', `"${name}"`, CURRICULA.join(' | ')));
  checkStagePercentiles(stagePercentiles);
  if (usesDifficulty(name)) {
    if (difficulty === null) throw new InputError(describe('--curriculum', `${name} without difficulty scores`, 'a difficulty per pair', 'Pass --scores or let the run score the pairs.'));
    const bad = difficulty.findIndex((d) => !Number.isFinite(d));
    if (bad >= 0) throw new InputError(describe(`difficulty of pair ${bad}`, `${difficulty[bad]}`, 'a finite number'));
  }
  return { name, difficulty, stagePercentiles: [...stagePercentiles] };
}

/** True for the curricula that order by difficulty and so have stages. */
export function usesDifficulty(name: CurriculumName): boolean {
  return name === 'distance' || name === 'stages';
}

/** Stages in an epoch: the percentile buckets for `distance` and `stages`, a single stage for `none` and `shuffle`. */
export function numStages(plan: CurriculumPlan): number {
  return usesDifficulty(plan.name) ? plan.stagePercentiles.length + 1 : 1;
}

/** Stage index of every position (not in training order): its bucket, or 0 without difficulty. */
export function stageOf(plan: CurriculumPlan, n: number): number[] {
  if (!usesDifficulty(plan.name)) return new Array<number>(n).fill(0);
  const d = difficultyOf(plan, n);
  return stageBuckets(d, plan.stagePercentiles);
}

/** Pairs per stage, empty stages included (index k is always the k-th percentile range). */
export function stageSizes(plan: CurriculumPlan, n: number): number[] {
  return bucketSizes(stageOf(plan, n), numStages(plan));
}

/** A seed for (run seed, epoch): distinct epochs get unrelated permutations. Pinned by resume tests. */
function epochSeed(seed: number, epoch: number): number {
  return (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(epoch + 1, 0x85ebca6b)) >>> 0;
}

/** A seed for one stage's shuffle in one epoch, distinct from the plain shuffle's. */
function stageSeed(seed: number, epoch: number, stage: number): number {
  return (epochSeed(seed, epoch) ^ Math.imul(stage + 1, 0xc2b2ae35) ^ 0x27d4eb2f) >>> 0;
}

function difficultyOf(plan: CurriculumPlan, n: number): readonly number[] {
  const d = plan.difficulty;
  if (d === null) throw new InputError(describe('--curriculum', `${plan.name} without difficulty scores`, 'a difficulty per pair'));
  if (d.length !== n) throw new RangeError(`curriculum ${plan.name}: ${d.length} difficulties for ${n} pairs (expected one per kept pair)`);
  return d;
}

/** One epoch: `order[i]` is the i-th position trained, `stage[i]` its stage; stages run contiguously and ascending. */
export interface EpochSchedule {
  order: number[];
  stage: number[];
  /** Pairs per stage, empty stages included. */
  sizes: number[];
  /** Exclusive end of each stage in `order`: stage k is order.slice(ends[k-1] ?? 0, ends[k]). */
  ends: number[];
}

export function epochSchedule(n: number, plan: CurriculumPlan, seed: number, epoch: number): EpochSchedule {
  const idx = [...Array(n).keys()];
  if (plan.name === 'none' || plan.name === 'shuffle') {
    const order = plan.name === 'none' ? idx : new Rng(epochSeed(seed, epoch)).shuffle(idx);
    return { order, stage: new Array<number>(n).fill(0), sizes: [n], ends: [n] };
  }
  const d = difficultyOf(plan, n);
  const buckets = stageBuckets(d, plan.stagePercentiles);
  const sizes = bucketSizes(buckets, numStages(plan));
  let order: number[];
  if (plan.name === 'distance') {
    // Ascending difficulty, ties by position. Buckets come from the same ranks, so they are contiguous here.
    order = idx.sort((a, b) => d[a]! - d[b]! || a - b);
  } else {
    order = sizes.flatMap((_, k) => new Rng(stageSeed(seed, epoch, k)).shuffle(idx.filter((i) => buckets[i] === k)));
  }
  return { order, stage: order.map((i) => buckets[i]!), sizes, ends: stageEnds(sizes) };
}

/** Positions 0..n-1 (indices into the kept pairs) in training order for `epoch`. `plan` is needed by distance/stages. */
export function epochOrder(n: number, name: CurriculumName, seed: number, epoch: number, plan?: CurriculumPlan): number[] {
  if (plan && plan.name !== name) throw new RangeError(`epochOrder: curriculum "${name}" but the plan is "${plan.name}"`);
  return epochSchedule(n, plan ?? makePlan(name), seed, epoch).order;
}

/** A content hash of the plan for checkpoints: a resume with other difficulties or cuts is a different order. */
export function planFingerprint(plan: CurriculumPlan): string {
  return hashJson({ name: plan.name, difficulty: usesDifficulty(plan.name) ? plan.difficulty : null, stagePercentiles: plan.stagePercentiles }).slice(0, 32);
}

// The order in which pairs are trained, epoch by epoch: pure and deterministic for a seed.
// `none` is file order; `shuffle` a seeded permutation per epoch (the baseline the curriculum is compared with).
import { Rng } from '../util/rng.js';

export type CurriculumName = 'none' | 'shuffle';

/** A seed for (run seed, epoch): distinct epochs get unrelated permutations. */
function epochSeed(seed: number, epoch: number): number {
  return (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(epoch + 1, 0x85ebca6b)) >>> 0;
}

/** Positions 0..n-1 (indices into the kept pairs) in training order for `epoch`. */
export function epochOrder(n: number, name: CurriculumName, seed: number, epoch: number): number[] {
  const idx = [...Array(n).keys()];
  if (name === 'none') return idx;
  return new Rng(epochSeed(seed, epoch)).shuffle(idx);
}

// Best-of-N ranking for one task: dedupe the scored completions, pick `chosen` (best pass rate) and `rejected`
// (worst), or say why the task gives no pair. Pure: no I/O, no sandbox. Follows the best-of-N recipe of on-policy
// DPO data for code (the highest- and lowest-scoring samples of one prompt); leaves out reward models and judges.
//
// Rules, in order (all deterministic):
// - Dedup is exact string equality of the completion text (no whitespace normalization: two texts that differ only
//   in spacing are different training targets). The first occurrence is kept, with its score.
// - score = passed / total, compared exactly as fractions (a.passed * b.total vs b.passed * a.total).
// - chosen: the highest score; among ties the shorter text (length in Unicode code points, as Python's len);
//   then the earlier first occurrence.
// - rejected: the lowest score; among ties the longer text; then the earlier first occurrence. With `rejected:
//   'frequent'`, among the lowest-scoring the one sampled most often (the mode of the failures: the model's likely
//   mistake, a hard negative), then the shorter, then the earlier.
// - skipped when every unique completion scores the same (a single unique completion included), when the pass-rate
//   gap is below `minGap`, or with `requireChosenPass` when chosen fails any test.

/** One completion with its test counts. */
export interface ScoredCompletion {
  /** The text that goes into the pair (and the text compared for dedup and length). */
  text: string;
  passed: number;
  total: number;
}

/** A unique completion: the first occurrence's index among the task's samples and how many samples repeated it. */
export interface Candidate extends ScoredCompletion {
  index: number;
  count: number;
}

export interface RankOptions {
  /** Minimum chosen - rejected pass-rate gap, in [0, 1]; 0 (default) keeps any pair with a positive gap. */
  minGap?: number;
  /** Keep a pair only when chosen passes every test. */
  requireChosenPass?: boolean;
  /** Which of the lowest-scoring completions is rejected: the longest (default) or the most often sampled. */
  rejected?: RejectedRule;
}

/** `--rejected`: longest (the default) or frequent (the most repeated of the worst: a likely failure). */
export type RejectedRule = 'longest' | 'frequent';
export const REJECTED_RULES: readonly RejectedRule[] = ['longest', 'frequent'];

/** Why a task gave no pair; also the keys of the job's skip counts. */
export type SkipReason = 'no samples' | 'single unique sample' | 'all samples score the same' | 'gap below --min-gap' | 'chosen fails a test';

export const SKIP_REASONS: readonly SkipReason[] = ['no samples', 'single unique sample', 'all samples score the same', 'gap below --min-gap', 'chosen fails a test'];

export type Ranking =
  | { kind: 'pair'; chosen: Candidate; rejected: Candidate; nSamples: number; nUnique: number; gap: number }
  | { kind: 'skip'; reason: SkipReason; nSamples: number; nUnique: number; gap: number };

/** Length as Python's len(): Unicode code points, so a check written in Python agrees on non-ASCII text. */
export function textLength(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** Unique completions in first-occurrence order (exact string equality). */
export function dedupe(samples: readonly ScoredCompletion[]): Candidate[] {
  const byText = new Map<string, Candidate>();
  samples.forEach((s, index) => {
    const seen = byText.get(s.text);
    if (seen) seen.count++;
    else byText.set(s.text, { ...s, index, count: 1 });
  });
  return [...byText.values()];
}

/** Orders candidates for `rejected: 'frequent'`: lower score, then sampled more often, then shorter, then earlier. */
function likelierRejected(a: Candidate, b: Candidate): number {
  return compareScore(a, b) || b.count - a.count || textLength(a.text) - textLength(b.text) || a.index - b.index;
}

/** Sign of score(a) - score(b), exact for integer counts. */
export function compareScore(a: ScoredCompletion, b: ScoredCompletion): number {
  return Math.sign(a.passed * b.total - b.passed * a.total);
}

/** Orders candidates best first for `chosen`: higher score, then shorter, then earlier. */
function betterChosen(a: Candidate, b: Candidate): number {
  return -compareScore(a, b) || textLength(a.text) - textLength(b.text) || a.index - b.index;
}

/** Orders candidates worst first for `rejected`: lower score, then longer, then earlier. */
function worseRejected(a: Candidate, b: Candidate): number {
  return compareScore(a, b) || textLength(b.text) - textLength(a.text) || a.index - b.index;
}

function checkCounts(samples: readonly ScoredCompletion[]): void {
  for (const [i, s] of samples.entries()) {
    if (!(Number.isInteger(s.passed) && Number.isInteger(s.total) && s.total > 0 && s.passed >= 0 && s.passed <= s.total)) {
      throw new RangeError(`rankCompletions: sample ${i} has passed=${s.passed}, total=${s.total} (expected integers with 0 <= passed <= total, total > 0)`);
    }
  }
}

/** Picks chosen and rejected among a task's scored samples, or the reason it is skipped. */
export function rankCompletions(samples: readonly ScoredCompletion[], opts: RankOptions = {}): Ranking {
  checkCounts(samples);
  const unique = dedupe(samples);
  const base = { nSamples: samples.length, nUnique: unique.length };
  if (unique.length === 0) return { kind: 'skip', reason: 'no samples', ...base, gap: 0 };
  const chosen = [...unique].sort(betterChosen)[0]!;
  const rejected = [...unique].sort(opts.rejected === 'frequent' ? likelierRejected : worseRejected)[0]!;
  const gap = chosen.passed / chosen.total - rejected.passed / rejected.total;
  if (compareScore(chosen, rejected) === 0) {
    return { kind: 'skip', reason: unique.length === 1 ? 'single unique sample' : 'all samples score the same', ...base, gap: 0 };
  }
  // The gap is a difference of two fractions: allow for its rounding when it equals --min-gap exactly (1/2 vs 0.5).
  if (gap < (opts.minGap ?? 0) - 1e-12) return { kind: 'skip', reason: 'gap below --min-gap', ...base, gap };
  if (opts.requireChosenPass && chosen.passed < chosen.total) return { kind: 'skip', reason: 'chosen fails a test', ...base, gap };
  return { kind: 'pair', chosen, rejected, ...base, gap };
}

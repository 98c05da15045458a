// Difficulty scores of preference pairs and their percentile ranks (pure functions, no tensors; `ast` is in ast.ts).
// Smaller = easier. Distance is the reference chosen-minus-rejected log-prob (per token by default), |d| small = easy;
// tests is 1 - the pass-count gap. Fields are `score`'s (chosen_logp, ...) and `pairs`' (chosen_passed, ...).
import { InputError, describe } from '../util/errors.js';

export const DISTANCE_METRICS = ['mean', 'sum'] as const;
export type DistanceMetric = (typeof DISTANCE_METRICS)[number];
export const DISTANCE_SIGNS = ['abs', 'signed'] as const;
export type DistanceSign = (typeof DISTANCE_SIGNS)[number];
export const DIFFICULTIES = ['distance', 'ast', 'tests'] as const;
export type DifficultyName = (typeof DIFFICULTIES)[number];

/** Chosen minus rejected log-prob: per-token means (`mean`) or sums (`sum`). */
export function pairDistance(chosenLogp: number, chosenTokens: number, rejectedLogp: number, rejectedTokens: number, metric: DistanceMetric = 'mean'): number {
  if (metric === 'sum') return chosenLogp - rejectedLogp;
  return chosenLogp / chosenTokens - rejectedLogp / rejectedTokens;
}

/** numpy.percentile's default (linear interpolation between closest ranks). p in [0, 100]. */
export function quantile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const pos = (p / 100) * (s.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

/**
 * 0-100 rank of each value among all: the smallest is 0, the largest 100, ties share their mean rank.
 * A single value gets 50.
 */
export function percentileRanks(values: readonly number[]): number[] {
  const n = values.length;
  if (n === 1) return [50];
  const order = values.map((v, i) => [v, i] as const).sort((a, b) => a[0] - b[0]);
  const ranks = new Array<number>(n);
  for (let i = 0; i < n; ) {
    let j = i;
    while (j + 1 < n && order[j + 1][0] === order[i][0]) j++;
    const mean = (i + j) / 2;
    for (let k = i; k <= j; k++) ranks[order[k][1]] = (100 * mean) / (n - 1);
    i = j + 1;
  }
  return ranks;
}

/**
 * Difficulty of a distance d (chosen minus rejected reference log-prob).
 * - `abs`: |d|. The reference barely tells the pair apart, so it is a small step for the policy: easy first.
 * - `signed`: -d. Pairs the reference already ranks right by a wide margin (large positive d) come first, pairs it
 *   ranks the wrong way (negative d, the ones DPO must flip) come last.
 */
export function distanceDifficulty(d: number, sign: DistanceSign = 'abs'): number {
  return sign === 'abs' ? Math.abs(d) : -d;
}

/** The reference log-probs of one pair, as in a `score` output line. */
export interface PairLogps {
  chosenLogp: number;
  chosenTokens: number;
  rejectedLogp: number;
  rejectedTokens: number;
}

/** An input line that carries metadata: its parsed object and 1-based line (a PairRecord fits). */
export interface RecordLine {
  raw: Record<string, unknown>;
  line: number;
}

function numberField(raw: Record<string, unknown>, field: string, where: string, expected: string, hint: string, check: (v: number) => boolean): number {
  if (!(field in raw)) throw new InputError(describe(where, `missing "${field}"`, expected, hint));
  const v = raw[field];
  if (typeof v !== 'number' || !check(v)) throw new InputError(describe(where, `"${field}" is ${JSON.stringify(v)}`, expected, hint));
  return v;
}

const SCORE_HINT = 'Use the output of the `score` command (or leave out --scores to score the pairs in the run).';

/** Reads chosen_logp, rejected_logp, chosen_tokens, rejected_tokens from a `score` line; `where` is file:line. */
export function readPairLogps(raw: Record<string, unknown>, where: string): PairLogps {
  const logp = (f: string) => numberField(raw, f, where, 'a finite log-prob <= 0', SCORE_HINT, (v) => Number.isFinite(v) && v <= 0);
  const tokens = (f: string) => numberField(raw, f, where, 'a token count, an integer >= 1', SCORE_HINT, (v) => Number.isInteger(v) && v >= 1);
  return { chosenLogp: logp('chosen_logp'), chosenTokens: tokens('chosen_tokens'), rejectedLogp: logp('rejected_logp'), rejectedTokens: tokens('rejected_tokens') };
}

/** Distance difficulty of every pair: pairDistance under `metric`, then distanceDifficulty under `sign`. */
export function distanceDifficulties(logps: readonly PairLogps[], metric: DistanceMetric = 'mean', sign: DistanceSign = 'abs'): number[] {
  return logps.map((l) => distanceDifficulty(pairDistance(l.chosenLogp, l.chosenTokens, l.rejectedLogp, l.rejectedTokens, metric), sign));
}

const TESTS_HINT = 'The tests difficulty reads chosen_passed, rejected_passed and tests_total (written by the `pairs` command); or use --difficulty distance.';

/**
 * 1 - (chosen_passed - rejected_passed) / tests_total: a large pass-count gap is a clear preference, so easy (0 when
 * chosen passes everything and rejected nothing, 1 for a tie, up to 2 when rejected passes more than chosen).
 */
export function testsDifficulty(raw: Record<string, unknown>, where: string): number {
  const total = numberField(raw, 'tests_total', where, 'the number of tests, an integer >= 1', TESTS_HINT, (v) => Number.isInteger(v) && v >= 1);
  const passed = (f: string) => numberField(raw, f, where, `an integer in [0, tests_total = ${total}]`, TESTS_HINT, (v) => Number.isInteger(v) && v >= 0 && v <= total);
  const gap = (passed('chosen_passed') - passed('rejected_passed')) / total;
  return 1 - gap;
}

/** The tests difficulty of every record; errors name `file:line` and the field. */
export function testsDifficulties(records: readonly RecordLine[], file: string): number[] {
  return records.map((r) => testsDifficulty(r.raw, `${file}:${r.line}`));
}

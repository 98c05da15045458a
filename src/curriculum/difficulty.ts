// Difficulty scores of preference pairs and their percentile ranks (pure functions, no tensors).
// Distance is the reference model's chosen-minus-rejected log-prob, per token by default; |distance| small = easy.

export type DistanceMetric = 'mean' | 'sum';

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

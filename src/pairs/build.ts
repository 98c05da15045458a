// The best-of-N pair job: for each task, get N completions (a model or a samples file), run them against the task's
// tests, rank them (rank.ts) and append one TRL pair line. Safe to stop at any point: a re-run with the same `out`
// repairs a torn last line, skips finished tasks and never duplicates or loses one. Shards are joined in merge.ts.
//
// Files: `out` holds the pairs (TRL standard or conversational format plus task_id and test counts). The sidecar
// `<out>.progress.jsonl` starts with a header {format, version, settings} and gets one line per finished task
// ({task_id, status: kept|skipped, reason, ...}), written after the task's pair line. A task is done when it has a
// pair line or a `skipped` progress line; a pair line without its progress line (a crash between the two) gets its
// progress line back on resume.
import { evaluateCompletions, type EvalOptions, type Runner } from '../eval/execute.js';
import type { PromptText } from '../eval/sampling.js';
import type { Sample, Task } from '../eval/tasks.js';
import { AppendLog, repairJsonl, type JsonlLine } from '../io/json.js';
import { progressPath } from '../run/layout.js';
import { canonicalJson } from '../util/hash.js';
import { FormatError, MismatchError, describe } from '../util/errors.js';
import { SKIP_REASONS, rankCompletions, type RankOptions, type Ranking, type SkipReason } from './rank.js';

export const PROGRESS_FORMAT = 'dpo-pairs-progress';
export const PROGRESS_VERSION = 1;

export { progressPath };

// ---- the pair line ----

/** One task's completions and the prompt they answer, exactly as the model saw it. */
export interface TaskSamples {
  samples: Sample[];
  prompt: PromptText;
}

/**
 * The text a sample contributes to a pair: its completion, or for a conversational prompt the raw answer
 * (`response`, which --chat keeps beside the extracted code) when there is one, since that is what the model wrote.
 */
export function pairText(sample: Sample, prompt: PromptText): string {
  const response = sample.record.response;
  return Array.isArray(prompt) && typeof response === 'string' ? response : sample.completion;
}

/** A TRL pair line: standard strings, or conversational message lists, then the extra fields. */
export function pairRecord(taskId: string | number, prompt: PromptText, r: Extract<Ranking, { kind: 'pair' }>): Record<string, unknown> {
  const conversational = Array.isArray(prompt);
  const completion = (text: string) => (conversational ? [{ role: 'assistant', content: text }] : text);
  return {
    prompt,
    chosen: completion(r.chosen.text),
    rejected: completion(r.rejected.text),
    task_id: taskId,
    chosen_passed: r.chosen.passed,
    rejected_passed: r.rejected.passed,
    tests_total: r.chosen.total,
    n_samples: r.nSamples,
    n_unique: r.nUnique,
  };
}

/** The progress line of a finished task. */
function progressRecord(taskId: string | number, r: Ranking, testsTotal: number): Record<string, unknown> {
  const line: Record<string, unknown> = { task_id: taskId, status: r.kind === 'pair' ? 'kept' : 'skipped' };
  if (r.kind === 'skip') line.reason = r.reason;
  return { ...line, n_samples: r.nSamples, n_unique: r.nUnique, tests_total: testsTotal, gap: r.gap };
}

export function taskIdOf(line: JsonlLine): string {
  const id = line.value.task_id;
  if (typeof id === 'string' || typeof id === 'number') return String(id);
  throw new FormatError(describe(line.where, 'no "task_id"', 'a line written by `pairs`'));
}

// ---- the job ----

export interface PairJobOptions {
  /** The pairs file; its sidecar is progressPath(out). */
  out: string;
  /** The tasks this job covers (a shard's, when sharded), in output order. */
  tasks: Task[];
  /** N completions for a task, and the prompt they answer. Called one task at a time, in order. */
  source: (task: Task) => Promise<TaskSamples>;
  runner: Runner;
  /** What makes two runs the same job (sampling flags, model hash, filters, shard); a resume must match. */
  settings: Record<string, unknown>;
  rank?: RankOptions;
  eval?: Pick<EvalOptions, 'timeoutMs' | 'strict' | 'concurrency' | 'stdioCompare'>;
  /** Tasks being evaluated at once while the next ones are sampled; default 4. Output stays in task order. */
  taskConcurrency?: number;
  log?: (line: string) => void;
  onProgress?: (p: PairJobProgress) => void;
}

export interface PairJobProgress {
  /** Tasks finished in this run, out of `total` pending when it started. */
  done: number;
  total: number;
  kept: number;
  skipped: number;
  /** Samples scored in this run. */
  samples: number;
}

export interface PairJobSummary {
  /** Tasks in the job. */
  tasks: number;
  /** Already done when this run started (resume). */
  resumed: number;
  /** Finished in this run. */
  processed: number;
  /** Over all tasks of the job, this run and earlier ones. */
  kept: number;
  skipped: Record<SkipReason, number>;
  /** Samples scored in this run. */
  samples: number;
}

interface Outcome {
  task: Task;
  /** The task id as the samples carry it (an MBPP id stays an integer). */
  taskId: string | number;
  prompt: PromptText;
  ranking: Ranking;
  testsTotal: number;
}

function checkHeader(lines: JsonlLine[], file: string, settings: Record<string, unknown>): void {
  const h = lines[0]!;
  if (h.value.format !== PROGRESS_FORMAT || h.value.version !== PROGRESS_VERSION) {
    throw new FormatError(
      describe(h.where, `format ${JSON.stringify(h.value.format)} version ${JSON.stringify(h.value.version)}`, `${PROGRESS_FORMAT} version ${PROGRESS_VERSION}`, `Move ${file} aside or use a new --out.`),
    );
  }
  const before = canonicalJson(h.value.settings);
  const now = canonicalJson(settings);
  if (before !== now) {
    const was = (h.value.settings ?? {}) as Record<string, unknown>;
    const keys = [...new Set([...Object.keys(was), ...Object.keys(settings)])].filter((k) => canonicalJson(was[k]) !== canonicalJson(settings[k]));
    const diff = keys.map((k) => `${k}: ${JSON.stringify(was[k])} -> ${JSON.stringify(settings[k])}`).join(', ');
    throw new MismatchError(
      describe(file, `was written with other settings (${diff})`, 'the flags of the run being resumed', 'Re-run with those flags, or write to a new --out.'),
    );
  }
}

/** Runs (or resumes) the job; resolves when every task of `tasks` is done. */
export async function runPairJob(o: PairJobOptions): Promise<PairJobSummary> {
  const log = o.log ?? (() => {});
  const progressFile = progressPath(o.out);
  const pairLines = repairJsonl(o.out, log);
  const progLines = repairJsonl(progressFile, log);
  if (progLines.length > 0) checkHeader(progLines, progressFile, o.settings);

  const pairIds = new Set<string>();
  for (const line of pairLines) {
    const id = taskIdOf(line);
    if (pairIds.has(id)) throw new FormatError(describe(line.where, `task_id ${id} twice`, 'one pair per task', 'The file is damaged: restore it, or start a new --out.'));
    pairIds.add(id);
  }
  // The last progress line of a task wins (a task redone after its pair line was lost gets a second one).
  const status = new Map<string, Record<string, unknown>>();
  for (const line of progLines.slice(1)) status.set(taskIdOf(line), line.value);

  const prog = new AppendLog(progressFile);
  const pairsOut = new AppendLog(o.out);
  try {
    if (progLines.length === 0) prog.append({ format: PROGRESS_FORMAT, version: PROGRESS_VERSION, settings: o.settings });
    // A crash between a pair line and its progress line: the pair is there, so the task is done.
    for (const id of pairIds) {
      if (status.get(id)?.status === 'kept') continue;
      const line = { task_id: id, status: 'kept', recovered: true };
      prog.append(line);
      status.set(id, line);
      log(`${o.out}: task ${id} has a pair line but no progress line; marked done`);
    }
    const lost = [...status].filter(([id, s]) => s.status === 'kept' && !pairIds.has(id)).map(([id]) => id);
    if (lost.length > 0) log(`${o.out}: ${lost.length} tasks marked kept have no pair line (e.g. ${lost[0]}); redoing them`);
    const isDone = (id: string) => pairIds.has(id) || status.get(id)?.status === 'skipped';
    const pending = o.tasks.filter((t) => !isDone(t.taskId));
    const resumed = o.tasks.length - pending.length;
    if (resumed > 0) log(`pairs: resuming ${o.out}: ${resumed} of ${o.tasks.length} tasks already done`);

    const counts = { done: 0, total: pending.length, kept: 0, skipped: 0, samples: 0 };
    const outcomes: (Outcome | undefined)[] = new Array(pending.length);
    let next = 0;
    let error: { e: unknown } | null = null;

    // Writes finished tasks in task order: the pair line first, then the progress line that marks the task done.
    const flush = (): void => {
      try {
        while (next < pending.length && outcomes[next] !== undefined) {
          const { task, taskId, prompt, ranking, testsTotal } = outcomes[next]!;
          if (ranking.kind === 'pair') pairsOut.append(pairRecord(taskId, prompt, ranking));
          const line = progressRecord(taskId, ranking, testsTotal);
          prog.append(line);
          status.set(task.taskId, line);
          if (ranking.kind === 'pair') pairIds.add(task.taskId);
          outcomes[next] = undefined;
          next++;
          counts.done++;
          if (ranking.kind === 'pair') counts.kept++;
          else counts.skipped++;
          o.onProgress?.({ ...counts });
        }
      } catch (e) {
        error ??= { e };
      }
    };

    const evaluate = async (i: number, task: Task, ts: TaskSamples): Promise<void> => {
      let ranking: Ranking;
      let testsTotal = 0;
      if (ts.samples.length === 0) {
        ranking = rankCompletions([], o.rank);
      } else {
        const results = await evaluateCompletions([task], ts.samples, o.runner, o.eval ?? {});
        testsTotal = results[0]!.totalTests;
        ranking = rankCompletions(
          results.map((r, j) => ({ text: pairText(ts.samples[j]!, ts.prompt), passed: r.passedTests, total: r.totalTests })),
          o.rank,
        );
      }
      counts.samples += ts.samples.length;
      const raw = ts.samples[0]?.record.task_id;
      const taskId = (typeof raw === 'number' || typeof raw === 'string') && String(raw) === task.taskId ? raw : task.taskId;
      outcomes[i] = { task, taskId, prompt: ts.prompt, ranking, testsTotal };
      flush();
    };

    const window = Math.max(1, o.taskConcurrency ?? 4);
    const inflight = new Set<Promise<void>>();
    for (let i = 0; i < pending.length && error === null; i++) {
      while (inflight.size >= window) await Promise.race(inflight);
      if (error !== null) break;
      const task = pending[i]!;
      let ts: TaskSamples;
      try {
        ts = await o.source(task);
        for (const s of ts.samples) {
          if (s.taskId !== task.taskId) throw new Error(`pairs: the source gave a sample of task ${s.taskId} for task ${task.taskId}`);
        }
      } catch (e) {
        error ??= { e };
        break;
      }
      const p: Promise<void> = evaluate(i, task, ts)
        .catch((e: unknown) => {
          error ??= { e };
        })
        .finally(() => inflight.delete(p));
      inflight.add(p);
    }
    await Promise.all([...inflight]);
    flush();
    if (error !== null) throw (error as { e: unknown }).e;

    const skipped = Object.fromEntries(SKIP_REASONS.map((r) => [r, 0])) as Record<SkipReason, number>;
    let kept = 0;
    for (const t of o.tasks) {
      const s = status.get(t.taskId);
      if (pairIds.has(t.taskId)) kept++;
      else if (s?.status === 'skipped') skipped[s.reason as SkipReason] = (skipped[s.reason as SkipReason] ?? 0) + 1;
    }
    return { tasks: o.tasks.length, resumed, processed: counts.done, kept, skipped, samples: counts.samples };
  } finally {
    prog.close();
    pairsOut.close();
  }
}

/** `kept 7, skipped 3 (all samples score the same 2, gap below --min-gap 1)`. */
export function formatSummary(s: PairJobSummary): string {
  const skips = Object.entries(s.skipped).filter(([, n]) => n > 0);
  const total = skips.reduce((n, [, k]) => n + k, 0);
  const detail = skips.length > 0 ? ` (${skips.map(([r, n]) => `${r}: ${n}`).join(', ')})` : '';
  return `${s.tasks} tasks: ${s.kept} pairs kept, ${total} skipped${detail}; ${s.processed} done in this run (${s.samples} samples), ${s.resumed} before`;
}

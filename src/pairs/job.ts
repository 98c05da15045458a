// A best-of-N pairs job: N completions per task from a model (sampled on-policy) or a samples file, each run against
// the task's tests in the sandbox, the best and worst kept as one TRL pair (build.ts does the resumable job itself).
// Also `pairs merge`: shard outputs joined in tasks-file order, with a check that every task was finished somewhere.
import { existsSync, realpathSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { BackendName } from '../backend/index.js';
import { checkSampling, type SamplingConfig } from '../config/sampling.js';
import { checkSandbox, type OpenSandbox, type SandboxConfig } from '../config/sandbox.js';
import { matchSamples, RUNS_IN_FLIGHT } from '../eval/execute.js';
import { parseShard } from '../eval/run.js';
import { sampleTask, type PromptText } from '../eval/sampling.js';
import { loadSamples, loadTasks, type Sample, type Task, type TaskFormat } from '../eval/tasks.js';
import { readJsonl } from '../io/json.js';
import { disposeModel, type LoadedModel } from '../io/model-dir.js';
import { adapterWeightsSha256, loadAdapter } from '../io/peft.js';
import { disposeLora, type Lora } from '../model/lora.js';
import { progressPath } from '../run/layout.js';
import { InputError, describe } from '../util/errors.js';
import { hashFile } from '../util/hash.js';
import { hashData } from '../data/formats.js';
import { progress, type Progress } from '../util/progress.js';
import { PROGRESS_FORMAT, formatSummary, runPairJob, type PairJobProgress, type TaskSamples } from './build.js';
import { mergePairFiles } from './merge.js';
import { REJECTED_RULES, type RejectedRule } from './rank.js';

export interface PairsJob {
  model?: string;
  adapter?: string;
  samples?: string;
  tasks?: string;
  format?: TaskFormat;
  /** The split of a datasets folder or cached Hub dataset given as --tasks (default train, or its only split). */
  split?: string;
  /** The pairs file; an existing one is resumed. */
  out?: string;
  backend: BackendName;
  shard?: string;
  /** Skip pairs whose chosen - rejected pass-rate gap is below this. */
  minGap: number;
  requireChosenPass: boolean;
  /** `--rejected`: which of the worst completions is rejected (rank.ts); default longest. */
  rejected?: RejectedRule;
  sampling: SamplingConfig;
  sandbox: SandboxConfig;
}

export interface PairsMergeJob {
  files: string[];
  out: string;
  tasks?: string;
  format?: TaskFormat;
}

export interface PairsDeps {
  openRunner: OpenSandbox;
  print: (line: string) => void;
  log: (line: string) => void;
  /** Backend + model dir -> a loaded model (io/model-dir.ts openModel); tests may swap it. */
  loadModel: (backend: BackendName, dir: string) => Promise<LoadedModel>;
}

function checkJob(a: PairsJob): void {
  const bad = (flag: string, v: unknown, expected: string): never => {
    throw new InputError(describe(flag, String(v), expected));
  };
  if ((a.model === undefined) === (a.samples === undefined)) {
    throw new InputError(describe('--model / --samples', a.model ? 'both given' : 'neither given', 'exactly one: a model to sample from, or a samples file'));
  }
  if (a.adapter !== undefined && a.model === undefined) bad('--adapter', a.adapter, 'only with --model');
  if (a.sampling.chat && a.model === undefined) bad('--chat', true, 'only with --model (a samples line may carry its own "prompt")');
  if (!a.tasks) throw new InputError(describe('--tasks', 'missing', 'a HumanEval, MBPP or stdio tasks file'));
  if (!a.out) throw new InputError(describe('--out', 'missing', 'the pairs file to write (or resume)'));
  checkSampling(a.sampling, '--n');
  checkSandbox(a.sandbox);
  if (!(a.minGap >= 0 && a.minGap <= 1)) bad('--min-gap', a.minGap, 'a pass-rate gap in [0, 1]');
  if (a.rejected !== undefined && !REJECTED_RULES.includes(a.rejected)) bad('--rejected', a.rejected, `one of ${REJECTED_RULES.join('|')}`);
}

/**
 * `--out` is resumed only when its own sidecar says this command wrote it from the same tasks file; anything else is
 * refused before any work (a file of unrelated pairs, the tasks or samples file itself, a folder, a missing parent).
 */
export function checkPairsOut(out: string, inputs: { flag: string; file: string }[], tasksSha256: string): void {
  const real = (p: string) => (existsSync(p) ? realpathSync(p) : resolve(p));
  const parent = dirname(resolve(out));
  if (!existsSync(parent) || !statSync(parent).isDirectory()) {
    throw new InputError(describe(`--out ${out}`, `the folder ${parent} does not exist`, 'a file in an existing folder', `Create it first (mkdir -p ${parent}).`));
  }
  for (const i of inputs) {
    if (existsSync(i.file) && real(out) === real(i.file)) throw new InputError(describe(`--out ${out}`, `is the ${i.flag} file`, 'a new pairs file', 'Pick another --out.'));
  }
  if (!existsSync(out)) return;
  if (statSync(out).isDirectory()) throw new InputError(describe(`--out ${out}`, 'is a folder', 'a pairs JSONL file'));
  const sidecar = progressPath(out);
  if (statSync(out).size === 0 && !existsSync(sidecar)) return;
  const header = existsSync(sidecar) ? readJsonl(sidecar).rows[0]?.value : undefined;
  if (!header || header.format !== PROGRESS_FORMAT) {
    throw new InputError(describe(`--out ${out}`, `an existing file that this command did not write (no ${PROGRESS_FORMAT} header in ${sidecar})`,
      'a new file, or one that `pairs` wrote and can resume', 'Pick another --out, or move the file aside.'));
  }
  const was = (header.settings as Record<string, unknown> | undefined)?.tasks_sha256;
  if (was !== tasksSha256) {
    throw new InputError(describe(`--out ${out}`, `was written from another tasks file (${sidecar} records tasks_sha256 ${String(was).slice(0, 12)}...)`,
      'the --tasks file of the run being resumed', 'Re-run with that --tasks, or write to a new --out.'));
  }
}

/** Samples by task id, in file order, with the prompt the lines carry (all lines of a task must agree). */
function groupSamples(samples: Sample[]): Map<string, { samples: Sample[]; prompt?: PromptText; where?: string }> {
  const byTask = new Map<string, { samples: Sample[]; prompt?: PromptText; where?: string }>();
  for (const s of samples) {
    const g = byTask.get(s.taskId) ?? { samples: [] };
    byTask.set(s.taskId, g);
    const p = s.record.prompt;
    if (p !== undefined && typeof p !== 'string' && !Array.isArray(p)) {
      throw new InputError(describe(s.where, `"prompt" is ${JSON.stringify(p).slice(0, 40)}`, 'a string or a list of {role, content} messages'));
    }
    if (g.samples.length > 0 && JSON.stringify(p) !== JSON.stringify(g.prompt)) {
      throw new InputError(describe(s.where, `a "prompt" different from the one at ${g.where}`, 'one prompt per task: every completion answers the same prompt'));
    }
    if (g.samples.length === 0) {
      if (p !== undefined) g.prompt = p as PromptText;
      g.where = s.where;
    }
    g.samples.push(s);
  }
  return byTask;
}

/** A one-line status for logs that are not a terminal (the progress bar only draws on a TTY). */
function statusLine(p: PairJobProgress, startMs: number): string {
  const secs = Math.max((Date.now() - startMs) / 1000, 1e-9);
  const eta = p.done > 0 ? Math.round(((p.total - p.done) * secs) / p.done) : NaN;
  return `pairs: ${p.done}/${p.total} tasks, ${p.kept} kept, ${p.skipped} skipped, ${(p.samples / secs).toFixed(2)} samples/s, ETA ${Number.isFinite(eta) ? `${eta}s` : '?'}`;
}

export async function runPairs(args: PairsJob, deps: PairsDeps): Promise<void> {
  checkJob(args);
  const out = args.out!;
  const tasksSha256 = hashData(args.tasks!, args.split);
  checkPairsOut(out, [{ flag: '--tasks', file: args.tasks! }, ...(args.samples ? [{ flag: '--samples', file: args.samples }] : [])], tasksSha256);
  const { sampling: sp, sandbox } = args;
  const workers = sandbox.workers;
  const all = loadTasks(args.tasks!, args.format, args.split);
  const shard = args.shard ? parseShard(args.shard) : undefined;
  let tasks = shard ? all.filter((_, i) => i % shard[1] === shard[0]) : all;
  const rejected = args.rejected ?? 'longest';
  const rank = { minGap: args.minGap, requireChosenPass: args.requireChosenPass, rejected };
  // `rejected` joins the resume settings only when it is not the default, so progress files written before it resume.
  const common = { tasks_sha256: tasksSha256, min_gap: args.minGap, require_chosen_pass: args.requireChosenPass, strict_results: sandbox.strictResults, shard: args.shard ?? null,
    ...(rejected !== 'longest' ? { rejected } : {}) };

  let source: (task: Task) => Promise<TaskSamples>;
  let settings: Record<string, unknown>;
  let model: LoadedModel | null = null;
  let lora: Lora | null = null;
  const cleanup = (): void => {
    if (lora) disposeLora(lora);
    if (model) disposeModel(model);
  };

  if (args.samples !== undefined) {
    const samples = loadSamples(args.samples);
    matchSamples(all, samples);
    const byTask = groupSamples(samples);
    const without = tasks.filter((t) => !byTask.has(t.taskId)).length;
    if (without > 0) deps.log(`pairs: ${without} of ${tasks.length} tasks have no samples in ${args.samples}; they are left out`);
    tasks = tasks.filter((t) => byTask.has(t.taskId));
    source = async (task) => {
      const g = byTask.get(task.taskId)!;
      return { samples: g.samples, prompt: g.prompt ?? task.prompt };
    };
    settings = { source: 'samples', samples_sha256: hashFile(args.samples), ...common };
    deps.log(`pairs: ${samples.length} samples for ${byTask.size} tasks from ${args.samples}`);
  } else {
    model = await deps.loadModel(args.backend, args.model!);
    try {
      if (sp.chat && !model.tokenizer.hasChatTemplate) {
        throw new InputError(describe('--chat', `${args.model} has no chat_template`, 'an instruct model with a chat template', 'Drop --chat to use completion prompts.'));
      }
      if (args.adapter !== undefined) lora = loadAdapter(args.adapter, model.cfg);
    } catch (e) {
      cleanup();
      throw e;
    }
    const m = model;
    source = (task) => sampleTask(m, lora, task, sp);
    settings = {
      source: 'model',
      model_hash: model.modelHash,
      adapter_sha256: args.adapter !== undefined ? adapterWeightsSha256(args.adapter) : null,
      n: sp.nSamples,
      temperature: sp.temperature,
      top_p: sp.topP,
      top_k: sp.topK,
      max_new_tokens: sp.maxNewTokens,
      seed: sp.seed,
      batch_size: sp.batchSize ?? sp.nSamples,
      chat: sp.chat,
      ...common,
    };
  }

  deps.log(
    `pairs: ${tasks.length} ${all[0]!.format} tasks${shard ? ` (shard ${shard[0]}/${shard[1]} of ${all.length})` : ''} from ${args.tasks} -> ${out} ` +
      `(progress in ${progressPath(out)})`,
  );
  let runner;
  try {
    runner = await deps.openRunner(sandbox, deps.log);
  } catch (e) {
    cleanup();
    throw e;
  }
  let bar: Progress | undefined;
  const start = Date.now();
  let lastLog = start;
  try {
    const summary = await runPairJob({
      out,
      tasks,
      source,
      runner,
      settings,
      rank,
      eval: { strict: sandbox.strictResults, stdioCompare: sandbox.stdioCompare, concurrency: Math.max(RUNS_IN_FLIGHT, workers * 4) },
      taskConcurrency: args.model !== undefined ? 2 : Math.max(4, workers),
      log: deps.log,
      onProgress: (p) => {
        const secs = Math.max((Date.now() - start) / 1000, 1e-9);
        (bar ??= progress('pairs', p.total, 'tasks')).tick(p.done, `${p.kept} kept, ${p.skipped} skipped, ${(p.samples / secs).toFixed(2)} samples/s`);
        if (!process.stderr.isTTY && Date.now() - lastLog > 30_000) {
          lastLog = Date.now();
          deps.log(statusLine(p, start));
        }
      },
    });
    bar?.done();
    deps.print(`wrote ${out}`);
    deps.print(formatSummary(summary));
    if (summary.kept === 0) {
      deps.log('pairs: no pair kept, and `train` needs at least one: sample more (--n, --temperature) or loosen --min-gap / --require-chosen-pass');
    }
  } finally {
    await runner.close();
    cleanup();
  }
}

/** `pairs merge`: joins shard outputs, one pair per task, in the tasks file's order when --tasks is given. */
export async function runPairsMerge(args: PairsMergeJob, deps: Pick<PairsDeps, 'print' | 'log'>): Promise<void> {
  const order = args.tasks ? loadTasks(args.tasks, args.format).map((t) => t.taskId) : undefined;
  const s = mergePairFiles(args.files, args.out, order);
  deps.print(`wrote ${args.out} (${s.pairs} pairs from ${s.files} files${s.duplicates > 0 ? `, ${s.duplicates} identical duplicates dropped` : ''})`);
  // The shards' progress files say which tasks are done (kept or skipped): a task in none of them was never finished.
  if (order && args.files.every((f) => existsSync(progressPath(f)))) {
    const done = new Set<string>();
    let skipped = 0;
    for (const f of args.files) {
      for (const line of readJsonl(progressPath(f)).rows.slice(1)) {
        const id = String(line.value.task_id);
        if (line.value.status === 'skipped' && !done.has(id)) skipped++;
        done.add(id);
      }
    }
    const missing = order.filter((id) => !done.has(id));
    deps.print(`tasks: ${done.size} done (${skipped} skipped) of ${order.length}`);
    if (missing.length > 0) deps.log(`pairs merge: ${missing.length} tasks are done in no shard (e.g. ${missing.slice(0, 3).join(', ')}): a shard is missing or unfinished`);
  }
}


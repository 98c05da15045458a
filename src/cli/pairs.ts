// `node train.js pairs`: best-of-N preference pairs from unit tests. N completions per task come from a model
// (--model, sampled on-policy) or a samples file (--samples); each is run against the task's tests in the sandbox and
// the best and worst become one TRL pair. Resumable, shardable; `pairs merge` joins shards. See src/pairs/build.ts.
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { BACKENDS, type BackendName } from '../backend/index.js';
import { adapterWeightsSha256, loadAdapter } from '../io/peft.js';
import { disposeModel, type LoadedModel } from '../io/model-dir.js';
import { disposeLora, type Lora } from '../model/lora.js';
import { sampleTask, type PromptText, type SampleOptions } from '../eval/sampling.js';
import { TASK_FORMATS, loadSamples, loadTasks, type Sample, type Task, type TaskFormat } from '../eval/tasks.js';
import { matchSamples } from '../eval/execute.js';
import { readJsonl } from '../io/json.js';
import { formatSummary, progressPath, runPairJob, type PairJobProgress, type TaskSamples } from '../pairs/build.js';
import { mergePairFiles } from '../pairs/merge.js';
import { InputError, describe } from '../util/errors.js';
import { hashFile } from '../util/hash.js';
import { progress, type Progress } from '../util/progress.js';
import { DEFAULT_TIMEOUT_MS, parseShard, type OpenRunner } from './eval.js';
import { log as stderrLog, setup } from './common.js';

export interface PairsArgs {
  model?: string;
  adapter?: string;
  samples?: string;
  tasks?: string;
  format?: TaskFormat;
  out?: string;
  n: number;
  temperature: number;
  topP: number;
  topK: number;
  maxNewTokens: number;
  seed: number;
  batchSize?: number;
  chat: boolean;
  timeout: number;
  workers?: number;
  backend: BackendName;
  shard?: string;
  minGap: number;
  requireChosenPass: boolean;
  strictResults: boolean;
}

export interface PairsMergeArgs {
  files: string[];
  out: string;
  tasks?: string;
  format?: TaskFormat;
}

export interface PairsDeps {
  openRunner: OpenRunner;
  print: (line: string) => void;
  log: (line: string) => void;
  /** Backend + model dir -> a loaded model (common.ts setup); tests may swap it. */
  loadModel: (backend: BackendName, dir: string) => Promise<LoadedModel>;
}

const openPool: OpenRunner = async (opts) => {
  const { PythonPool } = await import('../python/index.js');
  const pool = await PythonPool.create(opts);
  opts.log(`sandbox: ${opts.workers} workers; layers: ${pool.layers().join(', ')}`);
  return pool;
};

const DEFAULT_DEPS: PairsDeps = {
  openRunner: openPool,
  print: (line) => console.log(line),
  log: stderrLog,
  loadModel: (backend, dir) => setup(backend, dir),
};

/** Flag defaults: sampling as in on-policy best-of-N code pairs (diverse samples, nucleus 0.95). */
export const PAIRS_DEFAULTS = { n: 8, temperature: 0.8, topP: 0.95, topK: 0, maxNewTokens: 512, seed: 0 } as const;

function checkArgs(a: PairsArgs): void {
  const bad = (flag: string, v: unknown, expected: string): never => {
    throw new InputError(describe(flag, String(v), expected));
  };
  if ((a.model === undefined) === (a.samples === undefined)) {
    throw new InputError(describe('--model / --samples', a.model ? 'both given' : 'neither given', 'exactly one: a model to sample from, or a samples file'));
  }
  if (a.adapter !== undefined && a.model === undefined) bad('--adapter', a.adapter, 'only with --model');
  if (a.chat && a.model === undefined) bad('--chat', true, 'only with --model (a samples line may carry its own "prompt")');
  if (!a.tasks) throw new InputError(describe('--tasks', 'missing', 'a HumanEval, MBPP or stdio tasks file'));
  if (!a.out) throw new InputError(describe('--out', 'missing', 'the pairs file to write (or resume)'));
  if (!(Number.isInteger(a.n) && a.n >= 1)) bad('--n', a.n, 'an integer >= 1');
  if (!(a.temperature >= 0)) bad('--temperature', a.temperature, 'a number >= 0');
  if (!(a.topP > 0 && a.topP <= 1)) bad('--top-p', a.topP, 'a number in (0, 1]');
  if (!(Number.isInteger(a.topK) && a.topK >= 0)) bad('--top-k', a.topK, 'an integer >= 0 (0 = off)');
  if (!(Number.isInteger(a.maxNewTokens) && a.maxNewTokens >= 1)) bad('--max-new-tokens', a.maxNewTokens, 'an integer >= 1');
  if (!Number.isSafeInteger(a.seed)) bad('--seed', a.seed, 'an integer');
  if (a.batchSize !== undefined && !(Number.isInteger(a.batchSize) && a.batchSize >= 1)) bad('--batch-size', a.batchSize, 'an integer >= 1');
  if (!(a.timeout > 0)) bad('--timeout', a.timeout, 'milliseconds > 0');
  if (!(a.minGap >= 0 && a.minGap <= 1)) bad('--min-gap', a.minGap, 'a pass-rate gap in [0, 1]');
  if (a.workers !== undefined && !(Number.isInteger(a.workers) && a.workers >= 1)) bad('--workers', a.workers, 'an integer >= 1');
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

export async function runPairs(args: PairsArgs, deps: PairsDeps = DEFAULT_DEPS): Promise<void> {
  checkArgs(args);
  const out = args.out!;
  const workers = args.workers ?? availableParallelism();
  const all = loadTasks(args.tasks!, args.format);
  const shard = args.shard ? parseShard(args.shard) : undefined;
  let tasks = shard ? all.filter((_, i) => i % shard[1] === shard[0]) : all;
  const rank = { minGap: args.minGap, requireChosenPass: args.requireChosenPass };
  const common = { min_gap: args.minGap, require_chosen_pass: args.requireChosenPass, strict_results: args.strictResults, shard: args.shard ?? null };

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
      if (args.chat && !model.tokenizer.hasChatTemplate) {
        throw new InputError(describe('--chat', `${args.model} has no chat_template`, 'an instruct model with a chat template', 'Drop --chat to use completion prompts.'));
      }
      if (args.adapter !== undefined) lora = loadAdapter(args.adapter, model.cfg);
    } catch (e) {
      cleanup();
      throw e;
    }
    const opts: SampleOptions = {
      nSamples: args.n,
      temperature: args.temperature,
      topP: args.topP,
      topK: args.topK,
      maxNewTokens: args.maxNewTokens,
      seed: args.seed,
      batchSize: args.batchSize,
      chat: args.chat,
    };
    const m = model;
    source = (task) => sampleTask(m, lora, task, opts);
    settings = {
      source: 'model',
      model_hash: model.modelHash,
      adapter_sha256: args.adapter !== undefined ? adapterWeightsSha256(args.adapter) : null,
      n: args.n,
      temperature: args.temperature,
      top_p: args.topP,
      top_k: args.topK,
      max_new_tokens: args.maxNewTokens,
      seed: args.seed,
      batch_size: args.batchSize ?? args.n,
      chat: args.chat,
      ...common,
    };
  }

  deps.log(
    `pairs: ${tasks.length} ${all[0]!.format} tasks${shard ? ` (shard ${shard[0]}/${shard[1]} of ${all.length})` : ''} from ${args.tasks} -> ${out} ` +
      `(progress in ${progressPath(out)})`,
  );
  let runner;
  try {
    runner = await deps.openRunner({ workers, timeoutMs: args.timeout, log: deps.log });
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
      eval: { timeoutMs: args.timeout, strict: args.strictResults, concurrency: Math.max(64, workers * 4) },
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
export async function runPairsMerge(args: PairsMergeArgs, deps: Pick<PairsDeps, 'print' | 'log'> = DEFAULT_DEPS): Promise<void> {
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

const mergeCommand: CommandModule<object, PairsMergeArgs> = {
  command: 'merge <files..>',
  describe: 'Join `pairs --shard i/n` outputs: one pair per task (identical duplicates dropped, conflicting ones refused)',
  builder: (y) =>
    (y as Argv)
      .positional('files', { type: 'string', array: true, demandOption: true, describe: 'pairs files (shards)' })
      .option('out', { type: 'string', demandOption: true, describe: 'merged pairs file' })
      .option('tasks', { type: 'string', describe: 'order the pairs as this tasks file (default: input order)' })
      .option('format', { choices: TASK_FORMATS, describe: 'task format (detected when absent)' }) as unknown as Argv<PairsMergeArgs>,
  handler: (argv) => runPairsMerge({ files: argv.files, out: argv.out, tasks: argv.tasks, format: argv.format }),
};

export const pairsCommand: CommandModule<object, PairsArgs> = {
  command: 'pairs',
  describe: 'Build best-of-N DPO pairs: sample N completions per task (or read them), run the tests, keep best vs worst',
  builder: (y) =>
    (y as Argv)
      .command(mergeCommand as CommandModule)
      .option('model', { type: 'string', describe: 'Hugging Face model directory to sample from (on-policy)' })
      .option('adapter', { type: 'string', describe: 'PEFT LoRA adapter directory applied while sampling' })
      .option('samples', { type: 'string', describe: 'instead of --model: completions sampled elsewhere, {task_id, completion[, prompt]} per line' })
      .option('tasks', { type: 'string', describe: 'tasks with tests: HumanEval jsonl(.gz), MBPP jsonl/json, or CodeContests-style stdio jsonl' })
      .option('format', { choices: TASK_FORMATS, describe: 'task format (detected from the file when absent)' })
      .option('out', { type: 'string', describe: 'pairs JSONL to write; an existing one is resumed (progress in <out>.progress.jsonl)' })
      .option('n', { type: 'number', default: PAIRS_DEFAULTS.n, describe: 'completions sampled per task' })
      .option('temperature', { type: 'number', default: PAIRS_DEFAULTS.temperature, describe: 'sampling temperature (0 = greedy)' })
      .option('top-p', { type: 'number', default: PAIRS_DEFAULTS.topP, describe: 'nucleus sampling mass' })
      .option('top-k', { type: 'number', default: PAIRS_DEFAULTS.topK, describe: 'keep the k most likely tokens (0 = off)' })
      .option('max-new-tokens', { type: 'number', default: PAIRS_DEFAULTS.maxNewTokens, describe: 'tokens generated per completion at most' })
      .option('seed', { type: 'number', default: PAIRS_DEFAULTS.seed, describe: 'sampling seed (each task draws from its own stream)' })
      .option('batch-size', { type: 'number', describe: 'rows per generate call (default: --n)' })
      .option('chat', {
        type: 'boolean',
        default: false,
        describe: 'prompt through the chat template and score the fenced code block (pairs are conversational); default: completion prompts',
      })
      .option('timeout', { type: 'number', default: DEFAULT_TIMEOUT_MS, describe: 'wall-clock limit per program run, ms' })
      .option('workers', { type: 'number', describe: 'sandbox workers (default: CPU cores)' })
      .option('backend', { choices: BACKENDS, default: 'auto' as BackendName, describe: 'tfjs backend for sampling' })
      .option('shard', { type: 'string', describe: 'i/n: the tasks whose index % n == i; join with `pairs merge`' })
      .option('min-gap', { type: 'number', default: 0, describe: 'skip pairs whose chosen - rejected pass-rate gap is below this' })
      .option('require-chosen-pass', { type: 'boolean', default: false, describe: 'keep a pair only when chosen passes every test' })
      .option('strict-results', {
        type: 'boolean',
        default: false,
        describe: 'fail a test whose function returns an object of its own class that overrides __eq__ (reward-hack guard)',
      })
      .example('$0 pairs --model ./Llama-3.1-8B-Instruct --tasks mbpp.jsonl --n 8 --out pairs.jsonl', 'sample and rank')
      .example('$0 pairs --samples samples.jsonl --tasks HumanEval.jsonl.gz --out pairs.jsonl', 'rank completions sampled elsewhere')
      .example('$0 pairs merge --out all.jsonl --tasks mbpp.jsonl part0.jsonl part1.jsonl', 'join shard outputs') as unknown as Argv<PairsArgs>,
  handler: (argv) => runPairs(argv),
};

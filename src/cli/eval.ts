// `node train.js eval`: score completions against HumanEval/MBPP/stdio tasks in the Python sandbox and print pass@k
// (eval/run.ts); with --model they are sampled first. `eval merge` joins `--shard i/n` outputs.
import type { Argv, CommandModule } from 'yargs';
import { localModelDir } from '../io/hub-cache.js';
import { BACKENDS, type BackendName } from '../backend/index.js';
import { SAMPLING_DEFAULTS, samplingFromFlags, samplingOptions } from '../config/sampling.js';
import { openSandbox, sandboxFromFlags, sandboxOptions } from '../config/sandbox.js';
import { runEval, runEvalMerge } from '../eval/run.js';
import { TASK_FORMATS, type TaskFormat } from '../eval/tasks.js';
import { log } from './common.js';

const print = (line: string) => console.log(line);

const mergeCommand: CommandModule<object, { files: string[]; out: string }> = {
  command: 'merge <files..>',
  describe: 'Join `eval --shard i/n` outputs into one results file and print pass@k',
  builder: (y) => (y as Argv)
    .positional('files', { type: 'string', array: true, demandOption: true, describe: 'shard results files' })
    .option('out', { type: 'string', demandOption: true, describe: 'merged results file' }) as unknown as Argv<{ files: string[]; out: string }>,
  handler: (argv) => runEvalMerge({ files: argv.files, out: argv.out }, { print }),
};

export const evalCommand: CommandModule<object, Record<string, unknown>> = {
  command: 'eval',
  describe: 'Score completions against HumanEval/MBPP/stdio tasks in the Python sandbox; print pass@k',
  builder: (y) => (y as Argv)
    .command(mergeCommand as CommandModule)
    .options({
      samples: { type: 'string', describe: 'completions to score: {task_id, completion} per line (jsonl or jsonl.gz)' },
      tasks: { type: 'string', describe: 'tasks: HumanEval jsonl(.gz), MBPP jsonl/json, or CodeContests-style stdio jsonl' },
      format: { choices: TASK_FORMATS, describe: 'task format (detected from the file when absent)' },
      split: { type: 'string', describe: 'split of a datasets folder or cached Hub dataset given as --tasks (default: train, or its only split)' },
      out: { type: 'string', describe: 'results file: one {task_id, completion, result, passed, passed_tests, total_tests} per sample (default: <samples>_results.jsonl)' },
      shard: { type: 'string', describe: 'i/n: score samples whose index % n == i; join with `eval merge`' },
      model: { type: 'string', describe: 'generate samples with this model directory instead of --samples' },
      adapter: { type: 'string', describe: 'PEFT adapter applied to --model' },
      backend: { type: 'string', choices: BACKENDS, describe: 'tfjs backend with --model' },
      ...sandboxOptions(),
      ...samplingOptions(SAMPLING_DEFAULTS.eval, 'n-samples'),
    })
    .example('$0 eval --samples samples.jsonl --tasks HumanEval.jsonl.gz --out results.jsonl', 'score completions')
    .example('$0 eval merge --out all.jsonl part0.jsonl part1.jsonl', 'join shard outputs') as unknown as Argv<Record<string, unknown>>,
  handler: (argv) => runEval({
    samples: argv.samples as string | undefined, tasks: argv.tasks as string | undefined, format: argv.format as TaskFormat | undefined,
    split: argv.split as string | undefined,
    out: argv.out as string | undefined, shard: argv.shard as string | undefined, model: argv.model === undefined ? undefined : localModelDir(argv.model as string),
    adapter: argv.adapter as string | undefined, backend: (argv.backend as BackendName | undefined) ?? 'auto',
    sandbox: sandboxFromFlags(argv), sampling: samplingFromFlags(argv, SAMPLING_DEFAULTS.eval, 'n-samples'),
  }, { openRunner: openSandbox, print, log }),
};

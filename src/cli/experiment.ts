// `experiment`: trains curriculum arms x seeds with the same budget, evaluates them at the same steps and writes a
// report (pipeline/experiment.ts); resumable by (arm, seed).
import type { CommandModule } from 'yargs';
import { resolveRunConfig, RUN_SCHEMA, PRESETS } from '../config/run.js';
import { yargsOptions } from '../config/schema.js';
import { CURRICULA } from '../curriculum/order.js';
import { runExperiment, storedExperiment } from '../pipeline/experiment.js';
import { defaultRunDir } from '../run/layout.js';
import { log } from './common.js';

export const experimentCommand: CommandModule<object, Record<string, unknown>> = {
  command: 'experiment',
  describe: 'train curriculum arms x seeds with the same budget, evaluate them at the same steps, report with confidence intervals',
  builder: (y) => y.options({
    ...yargsOptions(RUN_SCHEMA),
    arms: {
      type: 'string',
      describe: `comma list of curricula (${CURRICULA.join(', ')}), each optionally +prune-incorrect-chosen and/or +prune-comment-only; default stages,shuffle, or the resumed experiment's`,
    },
    seeds: { type: 'number', describe: 'seeds per arm: --seed, --seed + 1, ... [default: 1, or the resumed experiment\'s]' },
    'eval-common-seed': { type: 'boolean', describe: 'sample every evaluation of a run with the run\'s seed (common random numbers: the gain over step 0 is paired in the sampling noise) [default: false, or the resumed experiment\'s]' },
    config: { type: 'string', describe: 'YAML or JSON file of settings, TRL-style keys welcome (applied before flags)' },
    preset: { type: 'string', choices: Object.keys(PRESETS), describe: 'named settings (applied before --config)' },
    resume: { type: 'string', describe: 'continue an experiment: latest (in --output-dir) or its folder; its stored settings, arms and seeds apply, then any flags given' },
  }),
  handler: async (argv) => {
    const resume = argv.resume as string | undefined;
    // `--resume` alone continues the experiment as it was asked for: its stored config, arms and seeds, then the flags given now.
    const asked = resolveRunConfig(argv);
    const stored = resume ? storedExperiment(resume, asked.outputDir ?? (asked.runName ? defaultRunDir(asked.runName) : null)) : null;
    const cfg = stored ? resolveRunConfig(argv, undefined, stored.base) : asked;
    const seeds = (argv.seeds as number | undefined) ?? stored?.seeds ?? 1;
    const commonEvalSeed = (argv['eval-common-seed'] as boolean | undefined) ?? stored?.commonEvalSeed ?? false;
    await runExperiment(cfg, (argv.arms as string | undefined) ?? stored?.arms ?? 'stages,shuffle', log, { seeds, commonEvalSeed });
  },
};

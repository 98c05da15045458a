// `experiment`: trains several curriculum arms with the same seed and budget, evaluates them at the same steps and
// writes a report (pipeline/experiment.ts); resumable by arm.
import type { CommandModule } from 'yargs';
import { resolveRunConfig, RUN_SCHEMA, PRESETS } from '../config/run.js';
import { yargsOptions } from '../config/schema.js';
import { CURRICULA } from '../curriculum/order.js';
import { runExperiment } from '../pipeline/experiment.js';
import { log } from './common.js';

export const experimentCommand: CommandModule<object, Record<string, unknown>> = {
  command: 'experiment',
  describe: 'train several curriculum arms with the same seed and budget, evaluate them at the same steps, report',
  builder: (y) => y.options({
    ...yargsOptions(RUN_SCHEMA),
    arms: { type: 'string', default: 'stages,shuffle', describe: `comma list of curricula (${CURRICULA.join(', ')})` },
    config: { type: 'string', describe: 'YAML or JSON file of settings, TRL-style keys welcome (applied before flags)' },
    preset: { type: 'string', choices: Object.keys(PRESETS), describe: 'named settings (applied before --config)' },
  }),
  handler: async (argv) => {
    await runExperiment(resolveRunConfig(argv), (argv.arms as string | undefined) ?? 'stages,shuffle', log);
  },
};

// `train` (the default command with flags): LoRA + DPO on a model and a pairs file, with checkpoints and resume
// (pipeline/train.ts). With no flags at all it runs the embedded default pipeline. Flags follow TRL's DPOConfig names.
import type { CommandModule } from 'yargs';
import { resolveRunConfig, RUN_SCHEMA, PRESETS } from '../config/run.js';
import { yargsOptions } from '../config/schema.js';
import { runDefaultPipeline } from '../pipeline/default.js';
import { storedRunConfig, train } from '../pipeline/train.js';
import { defaultRunDir } from '../run/layout.js';
import { log } from './common.js';

export const trainCommand: CommandModule<object, Record<string, unknown>> = {
  command: ['train', '$0'],
  describe: 'train LoRA adapters with DPO (writes checkpoints/<run>/); with no flags, the embedded default pipeline',
  builder: (y) => y.options({
    ...yargsOptions(RUN_SCHEMA),
    config: { type: 'string', describe: 'YAML or JSON file of settings, TRL-style keys welcome (applied before flags)' },
    preset: { type: 'string', choices: Object.keys(PRESETS), describe: 'named settings (applied before --config)' },
    resume: { type: 'string', describe: 'continue a run: latest (in --output-dir), a checkpoint folder, or a run folder; its stored settings apply, then any flags given (a larger --max-steps or --epochs continues a finished run)' },
  }),
  handler: async (argv) => {
    const given = Object.keys(argv).filter((k) => !['_', '$0', 'backend'].includes(k) && argv[k] !== undefined);
    if (given.length === 0) return runDefaultPipeline((argv.backend as string | undefined) ?? 'auto', log);
    const resume = (argv.resume as string | undefined) ?? null;
    // `--resume` alone continues the run as it was asked for: its stored config, then whatever flags are given now.
    const asked = resolveRunConfig(argv);
    const base = resume ? storedRunConfig(resume, asked.outputDir ?? (asked.runName ? defaultRunDir(asked.runName) : null)) : undefined;
    await train(base ? resolveRunConfig(argv, undefined, base) : asked, resume, log);
  },
};

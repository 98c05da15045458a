// `train` (the default command with flags): LoRA + DPO on a model and a pairs file, with checkpoints and resume.
// With no flags at all it runs the embedded default pipeline (default.ts). Flags follow TRL's DPOConfig names.
import type { CommandModule } from 'yargs';
import { resolveRunConfig, RUN_SCHEMA, PRESETS } from '../config/run.js';
import { yargsOptions } from '../config/schema.js';
import { disposeModel } from '../io/model-dir.js';
import { runTraining } from '../train/loop.js';
import { InterruptedError } from '../util/errors.js';
import { log, setup, loadPairs } from './common.js';
import { openRunServices } from './stage-eval.js';
import { assertGpuWhenAsked } from '../backend/doctor.js';
import { currentBackend, type BackendName } from '../backend/index.js';
import { runDefaultPipeline } from './default.js';

export const trainCommand: CommandModule<object, Record<string, unknown>> = {
  command: ['train', '$0'],
  describe: 'train LoRA adapters with DPO (writes checkpoints/<run>/); with no flags, the embedded default pipeline',
  builder: (y) => y.options({
    ...yargsOptions(RUN_SCHEMA),
    config: { type: 'string', describe: 'JSON file of settings (applied before flags)' },
    preset: { type: 'string', choices: Object.keys(PRESETS), describe: 'named settings (applied before --config)' },
    resume: { type: 'string', describe: 'continue a run: latest (in --output-dir), a checkpoint folder, or a run folder' },
  }),
  handler: async (argv) => {
    const given = Object.keys(argv).filter((k) => !['_', '$0', 'backend'].includes(k) && argv[k] !== undefined);
    if (given.length === 0) return runDefaultPipeline((argv.backend as string | undefined) ?? 'auto');
    const cfg = resolveRunConfig(argv);
    log(`config: ${JSON.stringify(cfg)}`);
    const model = await setup(cfg.backend as never, cfg.model);
    try {
      // A long run on a silent CPU fallback after asking for the GPU is refused (doctor explains what is missing).
      assertGpuWhenAsked(cfg.backend as BackendName, currentBackend()!);
      const { records, data } = loadPairs(cfg.data, model, cfg.maxLength, cfg.maxPromptLength);
      const services = await openRunServices(model, cfg, log);
      let res;
      try {
        res = await runTraining(model, data.pairs, cfg.data!, cfg, {
          log, sources: records, resume: (argv.resume as string | undefined) ?? null, pythonRunner: services.pool ?? undefined, evaluate: services.evaluate,
        });
      } finally {
        await services.close();
      }
      if (res.interrupted) throw new InterruptedError(`training stopped at step ${res.steps}; resume with --output-dir ${res.outputDir} --resume latest`);
    } finally {
      disposeModel(model);
    }
  },
};

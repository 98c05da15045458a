// The `train` command as a library call: backend and model, the GPU guard, the pairs, the run's sandbox services
// (stage evaluation, `ast`), then the training loop. A run stopped by a signal is an InterruptedError after saving.
import { currentBackend } from '../backend/index.js';
import { assertGpuWhenAsked } from '../backend/doctor.js';
import type { RunConfig } from '../config/run.js';
import { changedFlags, loraTargets, pairLengths, shellWord } from '../config/run.js';
import { loadPairsFile } from '../data/load.js';
import { openRunServices } from '../eval/stage.js';
import { disposeModel, openModel } from '../io/model-dir.js';
import { defaultOutputDir, runTraining, type TrainResult } from '../train/loop.js';
import { InputError, InterruptedError, describe } from '../util/errors.js';
import { dirname, join, resolve } from 'node:path';
import { readTrainerState, resolveResume } from '../run/checkpoint.js';
import { CHECKPOINT_FILES, RUN_FILES } from '../run/layout.js';
import { defaultRunDir } from '../run/layout.js';
import { checkRunPaths } from './preflight.js';
import { guardPipes } from '../util/pipe.js';
import { contentPrunedPairs } from '../curriculum/prune.js';

/** The command that continues a run: the rest comes from the run folder (storedRunConfig). */
export function resumeCommand(outputDir: string): string {
  return `node train.js train --resume latest --output-dir ${shellWord(resolve(outputDir))}`;
}

/**
 * The config a `--resume` continues: trainer_state.json's, from the checkpoint it names. `latest` needs the run folder
 * (--output-dir, or --run-name under checkpoints/). Flags given with --resume are applied over it.
 */
export function storedRunConfig(resume: string, outputDir: string | null): { config: Record<string, unknown>; source: string } {
  if (resume === 'latest' && outputDir === null) {
    throw new InputError(describe('--resume latest', 'no run folder given', '--output-dir DIR (or --run-name NAME)', 'Or pass the run or checkpoint folder itself: --resume DIR.'));
  }
  const dir = resolveResume(resume, outputDir ?? '.');
  // The run folder is the checkpoint's parent, wherever the run was started from.
  return { config: { ...readTrainerState(dir).config, outputDir: dirname(resolve(dir)) }, source: join(dir, CHECKPOINT_FILES.state) };
}

export async function train(cfg: RunConfig, resume: string | null, log: (l: string) => void): Promise<TrainResult> {
  guardPipes(); // `| head` closing the pipe stops the run after a save instead of crashing it (util/pipe.ts)
  // The whole config goes to run_config.json (train/loop.ts); the log shows what differs from the defaults.
  log(`config: ${changedFlags(cfg).join(' ') || '(defaults)'}; the whole of it in ${join(defaultOutputDir(cfg), RUN_FILES.config)}`);
  checkRunPaths(cfg, resume, cfg.outputDir ?? (cfg.runName ? defaultRunDir(cfg.runName) : null));
  // The backend is sized against the step's plan at these settings (auto never picks wasm past its heap).
  const step = { maxLength: cfg.maxLength, batchSize: cfg.batchSize, gradientCheckpointing: cfg.gradientCheckpointing, loraR: cfg.loraR, loraTargets: loraTargets(cfg) };
  const model = await openModel(cfg.backend, cfg.model, log, step);
  try {
    // A long run on a silent CPU fallback after asking for the GPU is refused (doctor explains what is missing).
    assertGpuWhenAsked(cfg.backend, currentBackend()!);
    const { records, data } = loadPairsFile(cfg.data, model.tokenizer, pairLengths(cfg), log, cfg.split ?? undefined);
    const services = await openRunServices(model, cfg, log);
    let res: TrainResult;
    try {
      // --prune-incorrect-chosen / --prune-comment-only drop pairs before anything is scored (curriculum/prune.ts).
      const pairs = await contentPrunedPairs(data.pairs, records, cfg, services.pool, defaultOutputDir(cfg), log);
      res = await runTraining(model, pairs, cfg.data!, cfg, { log, sources: records, resume, pythonRunner: services.pool ?? undefined, evaluate: services.evaluate });
    } finally {
      await services.close();
    }
    if (res.interrupted) throw new InterruptedError(`training stopped at step ${res.steps}. Resume with:\n  ${resumeCommand(res.outputDir)}`);
    return res;
  } finally {
    disposeModel(model);
  }
}

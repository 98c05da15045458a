// The `train` command as a library call: backend and model, the GPU guard, the pairs, the run's sandbox services
// (stage evaluation, `ast`), then the training loop. A run stopped by a signal is an InterruptedError after saving.
import { currentBackend } from '../backend/index.js';
import { assertGpuWhenAsked } from '../backend/doctor.js';
import type { RunConfig } from '../config/run.js';
import { pairLengths } from '../config/run.js';
import { loadPairsFile } from '../data/load.js';
import { openRunServices } from '../eval/stage.js';
import { disposeModel, openModel } from '../io/model-dir.js';
import { runTraining, type TrainResult } from '../train/loop.js';
import { InterruptedError } from '../util/errors.js';

export async function train(cfg: RunConfig, resume: string | null, log: (l: string) => void): Promise<TrainResult> {
  log(`config: ${JSON.stringify(cfg)}`);
  const model = await openModel(cfg.backend, cfg.model, log);
  try {
    // A long run on a silent CPU fallback after asking for the GPU is refused (doctor explains what is missing).
    assertGpuWhenAsked(cfg.backend, currentBackend()!);
    const { records, data } = loadPairsFile(cfg.data, model.tokenizer, pairLengths(cfg), log);
    const services = await openRunServices(model, cfg, log);
    let res: TrainResult;
    try {
      res = await runTraining(model, data.pairs, cfg.data!, cfg, { log, sources: records, resume, pythonRunner: services.pool ?? undefined, evaluate: services.evaluate });
    } finally {
      await services.close();
    }
    if (res.interrupted) throw new InterruptedError(`training stopped at step ${res.steps}; resume with --output-dir ${res.outputDir} --resume latest`);
    return res;
  } finally {
    disposeModel(model);
  }
}

// The embedded default: `node train.js` with no flags runs the whole pipeline on a tiny model built from a fixed
// seed and the project's own sample pairs, so a newcomer sees every stage work on a laptop CPU.
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveRunConfig } from '../config/run.js';
import { writeTinyModel } from '../io/tiny-model.js';
import { disposeModel } from '../io/model-dir.js';
import { runTraining } from '../train/loop.js';
import { log, setup, loadPairs } from './common.js';
import { openRunServices } from './stage-eval.js';

/** The repo root (dist/src/cli -> ../../..), where data/ and checkpoints/ live. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export const DEFAULT_PATHS = {
  model: join(ROOT, 'checkpoints', 'tiny-model'),
  data: join(ROOT, 'data', 'sample-pairs.jsonl'),
  run: join(ROOT, 'checkpoints', 'default'),
};

export async function runDefaultPipeline(backend: string): Promise<void> {
  const t0 = Date.now();
  if (!existsSync(DEFAULT_PATHS.model)) {
    log(`[1/3] building the tiny model in ${DEFAULT_PATHS.model}`);
    await writeTinyModel(DEFAULT_PATHS.model, { seed: 0 });
  } else log(`[1/3] reusing the tiny model in ${DEFAULT_PATHS.model}`);
  if (existsSync(DEFAULT_PATHS.run)) {
    log(`      replacing the previous default run in ${DEFAULT_PATHS.run}`);
    rmSync(DEFAULT_PATHS.run, { recursive: true, force: true });
  }
  const cfg = resolveRunConfig({ preset: 'tiny', model: DEFAULT_PATHS.model, data: DEFAULT_PATHS.data, 'output-dir': DEFAULT_PATHS.run, backend });
  const model = await setup(cfg.backend as never, cfg.model);
  try {
    log(`[2/3] tokenizing ${DEFAULT_PATHS.data}`);
    const { records, data } = loadPairs(cfg.data, model, cfg.maxLength, cfg.maxPromptLength);
    log('[3/3] training LoRA adapters with DPO');
    const res = await runTraining(model, data.pairs, cfg.data!, cfg, { log, sources: records });
    const m = res.lastMetrics;
    if (m) log(`last step: loss ${m.loss.toFixed(4)}, rewards/margins ${m['rewards/margins'].toFixed(4)}, rewards/accuracies ${m['rewards/accuracies'].toFixed(2)}`);
  } finally {
    disposeModel(model);
  }
  log(`default pipeline done in ${((Date.now() - t0) / 1000).toFixed(1)} s. Run folder: ${DEFAULT_PATHS.run}`);
}

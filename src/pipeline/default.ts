// The embedded default: `node train.js` with no flags runs the whole pipeline on a tiny model built from a fixed
// seed and the project's own sample pairs, so a newcomer sees every stage work on a laptop CPU.
import { existsSync, mkdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveRunConfig, pairLengths } from '../config/run.js';
import { loadPairsFile } from '../data/load.js';
import { scorePairs } from '../dpo/score.js';
import { openRunServices } from '../eval/stage.js';
import { writeFileAtomic } from '../io/atomic.js';
import { disposeModel, openModel } from '../io/model-dir.js';
import { writeTinyModel } from '../io/tiny-model.js';
import { runReport } from '../report/run.js';
import { listCheckpoints } from '../run/checkpoint.js';
import { ADAPTER_WEIGHTS, RUN_FILES, runFile } from '../run/layout.js';
import { runTraining } from '../train/loop.js';
import { InterruptedError } from '../util/errors.js';
import { guardPipes } from '../util/pipe.js';

/** The repo root (dist/src/pipeline -> ../../..), where data/ and checkpoints/ live. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export const DEFAULT_PATHS = {
  model: join(ROOT, 'checkpoints', 'tiny-model'),
  data: join(ROOT, 'data', 'sample-pairs.jsonl'),
  tasks: join(ROOT, 'data', 'tasks', 'humaneval-sample.jsonl'),
  run: join(ROOT, 'checkpoints', 'default'),
};

/** The first of `<run>.prev`, `<run>.prev-2`, ... that does not exist. */
function freeName(base: string): string {
  if (!existsSync(base)) return base;
  for (let i = 2; ; i++) if (!existsSync(`${base}-${i}`)) return `${base}-${i}`;
}

/**
 * What the default run does with the folder an earlier one left: a finished run (its final adapter is there) is
 * renamed to a free `.prev` name, never deleted; an unfinished one is resumed from its latest checkpoint, or, with no
 * checkpoint yet (Ctrl-C while scoring), started again in place.
 */
export function prepareDefaultRun(runDir: string): { resume: 'latest' | null; keptAs: string | null } {
  if (!existsSync(runDir)) return { resume: null, keptAs: null };
  if (existsSync(join(runDir, ADAPTER_WEIGHTS))) {
    const keptAs = freeName(`${runDir}.prev`);
    renameSync(runDir, keptAs);
    return { resume: null, keptAs };
  }
  return { resume: listCheckpoints(runDir).length > 0 ? 'latest' : null, keptAs: null };
}

export async function runDefaultPipeline(backend: string, log: (l: string) => void): Promise<void> {
  const t0 = Date.now();
  guardPipes(); // `node train.js | head`: the run stops after a save, the report is still written (util/pipe.ts)
  if (!existsSync(DEFAULT_PATHS.model)) {
    log(`[1/5] building the tiny model in ${DEFAULT_PATHS.model}`);
    await writeTinyModel(DEFAULT_PATHS.model, { seed: 0 });
  } else log(`[1/5] reusing the tiny model in ${DEFAULT_PATHS.model}`);
  // A finished default run is kept under a new name, never deleted; an unfinished one is resumed in place.
  const { resume, keptAs } = prepareDefaultRun(DEFAULT_PATHS.run);
  if (keptAs) log(`      the previous default run is kept in ${keptAs}`);
  const unfinished = resume !== null;
  mkdirSync(DEFAULT_PATHS.run, { recursive: true });
  const scores = runFile(DEFAULT_PATHS.run, 'scores');
  const cfg = resolveRunConfig({
    preset: 'tiny', model: DEFAULT_PATHS.model, data: DEFAULT_PATHS.data, 'output-dir': DEFAULT_PATHS.run, backend,
    curriculum: 'stages', scores, 'eval-tasks': DEFAULT_PATHS.tasks, 'eval-max-new-tokens': 48,
  });
  const model = await openModel(cfg.backend, cfg.model, log);
  let last: Record<string, number> | null = null;
  try {
    log(`[2/5] scoring ${DEFAULT_PATHS.data} under the reference model`);
    const { records, data } = loadPairsFile(cfg.data, model.tokenizer, pairLengths(cfg), log);
    writeFileAtomic(scores, (await scorePairs(model, records, data.pairs, cfg.batchSize, log)).join('\n') + '\n');
    log(`[3/5] training LoRA adapters with DPO, easiest stage first; evaluating ${DEFAULT_PATHS.tasks} after each stage`);
    const services = await openRunServices(model, cfg, log);
    try {
      if (unfinished) log(`      resuming the interrupted default run in ${DEFAULT_PATHS.run}`);
      const res = await runTraining(model, data.pairs, cfg.data!, cfg, {
        log, sources: records, pythonRunner: services.pool ?? undefined, evaluate: services.evaluate, resume,
      });
      if (res.interrupted) throw new InterruptedError(`default run stopped at step ${res.steps}; run \`node train.js\` again to resume it`);
      last = res.lastMetrics;
    } finally {
      await services.close();
    }
  } finally {
    disposeModel(model);
  }
  log('[4/5] writing the report');
  await runReport(DEFAULT_PATHS.run, (l) => console.log(l), log);
  log('[5/5] done');
  if (last) log(`last step: loss ${last.loss.toFixed(4)}, rewards/margins ${last['rewards/margins'].toFixed(4)}, rewards/accuracies ${last['rewards/accuracies'].toFixed(2)}`);
  log(`default pipeline done in ${((Date.now() - t0) / 1000).toFixed(1)} s.`);
  log(`  run folder:  ${DEFAULT_PATHS.run}`);
  log(`  scores:      ${scores}`);
  log(`  metrics:     ${runFile(DEFAULT_PATHS.run, 'metrics')}  (eval: ${RUN_FILES.eval})`);
  log(`  adapter:     ${join(DEFAULT_PATHS.run, ADAPTER_WEIGHTS)} (PEFT)`);
  log(`  report:      ${runFile(DEFAULT_PATHS.run, 'report')}`);
}

// Everything a run settles before its first step, in order: the reference log-prob table (dpo/ref-table.ts), the
// difficulty, pruning and curriculum plan, and the step schedule (curriculum/schedule.ts). `train` and `experiment` share it.
import type { RunConfig } from '../config/run.js';
import type { PythonRunner } from '../curriculum/ast.js';
import { scoresLogps } from '../curriculum/compute.js';
import type { CurriculumPlan } from '../curriculum/order.js';
import { Schedule, chooseCurriculum, usesDifficultyFor } from '../curriculum/schedule.js';
import type { PairRecord } from '../data/pairs.js';
import type { TokenizedRecord } from '../data/tokenize.js';
import type { PairLogpTable } from '../dpo/reference.js';
import { referenceTable, tableLogps } from '../dpo/ref-table.js';
import type { LoadedModel } from '../io/model-dir.js';
import { loadAdapter } from '../io/peft.js';
import type { RunHashes } from '../run/checkpoint.js';
import { writeDifficulty } from '../run/files.js';
import { InputError, describe } from '../util/errors.js';
import { hashJson } from '../util/hash.js';
import { warmupSteps } from './schedule.js';

export { usesDifficultyFor };

export interface PrepareOptions {
  log: (line: string) => void;
  sources?: PairRecord[];
  pythonRunner?: PythonRunner;
}

export interface RunPrep {
  /** Reference log-probs of every tokenized pair (null with --ref-mode online and no need for distance). */
  fullTable: PairLogpTable | null;
  /** Kept pair i is allRecords[keptIdx[i]]. */
  keptIdx: number[];
  records: TokenizedRecord[];
  plan: CurriculumPlan;
  schedule: Schedule;
  n: number;
  spe: number;
  maxSteps: number;
  warmup: number;
  /** 1-based global step -> the stage that ends with it. */
  stageEnds: Map<number, number>;
}

export async function prepareRun(model: LoadedModel, allRecords: TokenizedRecord[], dataFile: string, cfg: RunConfig, hashes: RunHashes,
  outputDir: string, opts: PrepareOptions): Promise<RunPrep> {
  const { log } = opts;
  const refDir = cfg.refAdapter ?? cfg.initAdapter;
  // A `score` output holds log-probs under the bare base: it can stand for the reference only when that is the base.
  const bareBase = !refDir || refDir === 'none';
  if (cfg.scores && !bareBase) {
    throw new InputError(describe('--scores', `given with the reference adapter ${refDir}`, 'scores under the run\'s reference model',
      '`score` uses the bare base; drop --scores (the run then scores pairs under its reference itself) or pass --ref-adapter none.'));
  }
  const scored = cfg.scores
    ? scoresLogps(cfg.scores, allRecords.map((r) => opts.sources?.[r.index] ?? null), allRecords.map((r) => ({ chosen: r.chosenIds.length, rejected: r.rejectedIds.length })))
    : null;
  // The table serves the cached reference of each step and the distance difficulty; --ref-mode online recomputes it per step.
  const needRefTable = cfg.refMode === 'cache' || (usesDifficultyFor(cfg) && cfg.difficulty === 'distance' && !scored);
  let fullTable: PairLogpTable | null = null;
  if (needRefTable) {
    const key = hashJson({ ...hashes, scores: null, maxLength: cfg.maxLength, maxPromptLength: cfg.maxPromptLength, truncationMode: cfg.truncationMode, pairs: allRecords.length });
    fullTable = await referenceTable({
      model, pairs: allRecords, batchSize: cfg.batchSize, dir: outputDir, key, scored, scoresFile: cfg.scores, log,
      referenceLora: () => (bareBase ? null : loadAdapter(refDir, model.cfg)),
    });
  }

  // Positions from here on index the kept pairs; keptIdx maps them back.
  const t = fullTable;
  const c = await chooseCurriculum(cfg, allRecords.length, {
    refLogps: () => scored ?? tableLogps(t!),
    records: usesDifficultyFor(cfg) ? allRecords.map((r) => sourceOf(opts, r.index, dataFile)) : [],
    dataFile, runner: opts.pythonRunner,
  }, log);
  if (c.kept && c.percentiles) {
    const byIndex: (number | null)[] = new Array(opts.sources?.length ?? allRecords.reduce((m, r) => Math.max(m, r.index + 1), 0)).fill(null);
    c.keptIdx.forEach((i, k) => (byIndex[allRecords[i].index] = c.kept![k]));
    writeDifficulty(outputDir, { name: cfg.difficulty, metric: cfg.distanceMetric, sign: cfg.distanceSign, difficulty: byIndex, percentiles: c.percentiles });
  }
  const records = c.keptIdx.map((i) => allRecords[i]);
  const schedule = new Schedule(records.length, c.plan, cfg);
  const warmup = warmupSteps(schedule.maxSteps, cfg.warmupSteps, cfg.warmupRatio);
  return { fullTable, keptIdx: c.keptIdx, records, plan: c.plan, schedule, n: records.length, spe: schedule.spe, maxSteps: schedule.maxSteps, warmup, stageEnds: schedule.stageEnds };
}

function sourceOf(opts: PrepareOptions, index: number, dataFile: string): PairRecord {
  const r = opts.sources?.[index];
  if (!r) throw new Error(`runTraining: no source record for pair ${index} of ${dataFile} (pass opts.sources)`);
  return r;
}

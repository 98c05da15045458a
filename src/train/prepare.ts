// Everything a run settles before its first step: reference log-probs (cached), difficulty, pruning, the
// curriculum plan, the step budget and where stages end. `train` and `experiment` share it.
import { join } from 'node:path';
import type { RunConfig } from '../config/run.js';
import type { LoadedModel } from '../io/model-dir.js';
import { loadAdapter } from '../io/peft.js';
import { writeDifficulty } from '../run/files.js';
import { disposeLora, type Lora } from '../model/lora.js';
import type { TokenizedRecord } from '../data/tokenize.js';
import type { PairRecord } from '../data/pairs.js';
import { computePairLogps, type PairLogpTable } from '../dpo/reference.js';
import { readRefCache, writeRefCache } from '../dpo/ref-cache.js';
import { epochSchedule, makePlan, usesDifficulty, type CurriculumName, type CurriculumPlan } from '../curriculum/order.js';
import { stageEndSteps } from '../curriculum/stages.js';
import { prunePairs, formatPruneCounts } from '../curriculum/prune.js';
import { quantile } from '../curriculum/difficulty.js';
import { computeDifficulty, scoresLogps } from '../curriculum/compute.js';
import { InputError, describe } from '../util/errors.js';
import type { PythonRunner } from '../curriculum/ast.js';
import { hashFile, hashJson } from '../util/hash.js';
import { progress } from '../util/progress.js';
import { warmupSteps } from './schedule.js';
import type { RunHashes } from '../run/checkpoint.js';

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
  n: number;
  spe: number;
  maxSteps: number;
  warmup: number;
  /** 1-based global step -> the stage that ends with it. */
  stageEnds: Map<number, number>;
}

/** Optimizer steps per epoch (micro-batches never cross an epoch; a short last step is still a step, as HF). */
export function stepsPerEpoch(pairs: number, batchSize: number, gradAccum: number): number {
  return Math.ceil(Math.ceil(pairs / batchSize) / gradAccum);
}

/** Stage-end steps (1-based, global) over the run: stage k of epoch e ends after the step holding its last pair. */
export function stageEndGlobalSteps(n: number, plan: CurriculumPlan, cfg: RunConfig, spe: number, maxSteps: number): Map<number, number> {
  const out = new Map<number, number>();
  for (let e = 0; e * spe < maxSteps; e++) {
    const sched = epochSchedule(n, plan, cfg.seed, e);
    stageEndSteps(sched.sizes, cfg.batchSize * cfg.gradAccum).forEach((j, k) => {
      if (j !== null && e * spe + j + 1 <= maxSteps) out.set(e * spe + j + 1, k);
    });
  }
  return out;
}

export async function prepareRun(model: LoadedModel, allRecords: TokenizedRecord[], dataFile: string, cfg: RunConfig, hashes: RunHashes,
  outputDir: string, opts: PrepareOptions): Promise<RunPrep> {
  const { log } = opts;
  const refDir = cfg.refAdapter ?? cfg.initAdapter;
  // Reference log-probs of every tokenized pair: cached once (keyed by everything that changes them). They also give
  // the distance difficulty; with --ref-mode online they are recomputed in each step instead of read from here.
  // A `score` output holds log-probs under the bare base: it can stand for the reference only when that is the base.
  const bareBase = !refDir || refDir === 'none';
  if (cfg.scores && !bareBase) {
    throw new InputError(describe('--scores', `given with the reference adapter ${refDir}`, 'scores under the run\'s reference model',
      '`score` uses the bare base; drop --scores (the run then scores pairs under its reference itself) or pass --ref-adapter none.'));
  }
  const scored = cfg.scores ? scoresLogps(cfg.scores, allRecords.map((r) => opts.sources?.[r.index] ?? null)) : null;
  const needRefTable = cfg.refMode === 'cache' || (usesDifficultyFor(cfg) && cfg.difficulty === 'distance' && !scored);
  const refLoraForTable = (): Lora | null => (bareBase ? null : loadAdapter(refDir, model.cfg));
  let fullTable: PairLogpTable | null = null;
  if (needRefTable) {
    const key = hashJson({ ...hashes, scores: null, maxLength: cfg.maxLength, maxPromptLength: cfg.maxPromptLength, pairs: allRecords.length });
    fullTable = readRefCache(outputDir, key, allRecords.length);
    if (!fullTable && scored) {
      // The scores are this run's reference pass already (same model, tokenization and pairs, checked line by line).
      fullTable = {
        chosen: Float64Array.from(scored, (l) => l.chosenLogp), rejected: Float64Array.from(scored, (l) => l.rejectedLogp),
        chosenTokens: Int32Array.from(scored, (l) => l.chosenTokens), rejectedTokens: Int32Array.from(scored, (l) => l.rejectedTokens),
      };
      writeRefCache(outputDir, key, fullTable);
      log(`reference log-probs: taken from ${cfg.scores}`);
    } else if (!fullTable) {
      const lora = refLoraForTable();
      try {
        const bar = progress('reference log-probs', allRecords.length, 'pairs');
        fullTable = computePairLogps(model.cfg, model.weights, allRecords, model.tokenizer.padId, cfg.batchSize, lora, (d) => bar.tick(d));
        bar.done();
      } finally {
        if (lora) disposeLora(lora);
      }
      writeRefCache(outputDir, key, fullTable);
    } else log('reference log-probs: reusing the cache');
  }

  // Difficulty, pruning and the curriculum plan. Positions below index the kept pairs; keptIdx maps them back.
  let keptIdx = [...allRecords.keys()];
  let difficulty: number[] | null = null;
  if (usesDifficultyFor(cfg)) {
    const t = fullTable;
    const all = await computeDifficulty({
      name: cfg.difficulty as never, metric: cfg.distanceMetric as never, sign: cfg.distanceSign as never,
      refLogps: () => scored ?? allRecords.map((_, i) => ({ chosenLogp: t!.chosen[i], chosenTokens: t!.chosenTokens[i], rejectedLogp: t!.rejected[i], rejectedTokens: t!.rejectedTokens[i] })),
      records: allRecords.map((r) => sourceOf(opts, r.index, dataFile)),
      dataFile, runner: opts.pythonRunner,
    });
    if (cfg.pruneBelow !== null || cfg.pruneAbove !== null) {
      const pr = prunePairs(all, { below: cfg.pruneBelow, above: cfg.pruneAbove });
      log(formatPruneCounts(pr.counts, { below: cfg.pruneBelow, above: cfg.pruneAbove }));
      keptIdx = pr.kept;
    }
    difficulty = keptIdx.map((i) => all[i]);
    const byIndex: (number | null)[] = new Array(opts.sources?.length ?? allRecords.reduce((m, r) => Math.max(m, r.index + 1), 0)).fill(null);
    keptIdx.forEach((i, k) => (byIndex[allRecords[i].index] = difficulty![k]));
    writeDifficulty(outputDir, {
      name: cfg.difficulty, metric: cfg.distanceMetric, sign: cfg.distanceSign, difficulty: byIndex,
      percentiles: { p10: quantile(difficulty, 10), p50: quantile(difficulty, 50), p90: quantile(difficulty, 90) },
    });
  }
  const records = keptIdx.map((i) => allRecords[i]);
  const plan = makePlan(cfg.curriculum as CurriculumName, usesDifficulty(cfg.curriculum as CurriculumName) ? difficulty : null, parsePercentiles(cfg.stagePercentiles));
  const n = records.length;
  const spe = stepsPerEpoch(n, cfg.batchSize, cfg.gradAccum);
  const maxSteps = cfg.maxSteps > 0 ? cfg.maxSteps : Math.max(1, Math.ceil(cfg.epochs * spe));
  const warmup = warmupSteps(maxSteps, cfg.warmupSteps, cfg.warmupRatio);
  const stageEnds = stageEndGlobalSteps(n, plan, cfg, spe, maxSteps);
  return { fullTable, keptIdx, records, plan, n, spe, maxSteps, warmup, stageEnds };
}

export function usesDifficultyFor(cfg: RunConfig): boolean {
  return usesDifficulty(cfg.curriculum as CurriculumName) || cfg.pruneBelow !== null || cfg.pruneAbove !== null;
}

function parsePercentiles(s: string): number[] {
  return s.split(',').map((x) => x.trim()).filter(Boolean).map(Number);
}

function sourceOf(opts: PrepareOptions, index: number, dataFile: string): PairRecord {
  const r = opts.sources?.[index];
  if (!r) throw new Error(`runTraining: no source record for pair ${index} of ${dataFile} (pass opts.sources)`);
  return r;
}

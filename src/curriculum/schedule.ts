// The run's data schedule: difficulty -> pruning -> stages -> the micro-batches of every optimizer step, with each
// epoch's order computed once and cached, and the steps at which stages end. Pure given (plan, seed); resume-exact.
import type { RunConfig } from '../config/run.js';
import { computeDifficulty, type DifficultyInputs } from './compute.js';
import { quantile } from './difficulty.js';
import { epochSchedule, makePlan, usesDifficulty, type CurriculumPlan } from './order.js';
import { formatPruneCounts, prunePairs } from './prune.js';
import { stageEndSteps } from './stages.js';

type CurriculumSettings = Pick<RunConfig, 'curriculum' | 'difficulty' | 'distanceMetric' | 'distanceSign' | 'stagePercentiles' | 'pruneBelow' | 'pruneAbove'>;

/** True when the run needs a difficulty per pair: a difficulty order, or pruning. */
export function usesDifficultyFor(cfg: CurriculumSettings): boolean {
  return usesDifficulty(cfg.curriculum) || cfg.pruneBelow !== null || cfg.pruneAbove !== null;
}

export interface CurriculumChoice {
  plan: CurriculumPlan;
  /** Kept position i is input pair keptIdx[i]. */
  keptIdx: number[];
  /** Difficulty of every input pair (before pruning), or null when the run needs none. */
  all: number[] | null;
  /** Of the kept pairs, and their p10/p50/p90. */
  kept: number[] | null;
  percentiles: { p10: number; p50: number; p90: number } | null;
}

/** Difficulty of every pair, the pairs pruning keeps, and the curriculum plan over them. */
export async function chooseCurriculum(cfg: CurriculumSettings, n: number, inputs: Omit<DifficultyInputs, 'name' | 'metric' | 'sign'>,
  log: (line: string) => void): Promise<CurriculumChoice> {
  let keptIdx = [...Array(n).keys()];
  let all: number[] | null = null;
  let kept: number[] | null = null;
  if (usesDifficultyFor(cfg)) {
    all = await computeDifficulty({ ...inputs, name: cfg.difficulty, metric: cfg.distanceMetric, sign: cfg.distanceSign });
    if (cfg.pruneBelow !== null || cfg.pruneAbove !== null) {
      const cuts = { below: cfg.pruneBelow, above: cfg.pruneAbove };
      const pr = prunePairs(all, cuts);
      log(formatPruneCounts(pr.counts, cuts));
      keptIdx = pr.kept;
    }
    kept = keptIdx.map((i) => all![i]);
  }
  const name = cfg.curriculum;
  const plan = makePlan(name, usesDifficulty(name) ? kept : null, parsePercentiles(cfg.stagePercentiles));
  const percentiles = kept ? { p10: quantile(kept, 10), p50: quantile(kept, 50), p90: quantile(kept, 90) } : null;
  return { plan, keptIdx, all, kept, percentiles };
}

/** `10,50,90` -> cuts; makePlan checks them (finite, in [0, 100], increasing). */
function parsePercentiles(s: string): number[] {
  return s.split(',').map((x) => x.trim()).filter(Boolean).map(Number);
}

/** Optimizer steps per epoch (micro-batches never cross an epoch; a short last step is still a step, as HF). */
export function stepsPerEpoch(pairs: number, batchSize: number, gradAccum: number): number {
  return Math.ceil(Math.ceil(pairs / batchSize) / gradAccum);
}

export interface ScheduleSettings {
  seed: number;
  batchSize: number;
  gradAccum: number;
  epochs: number;
  /** > 0 overrides epochs. */
  maxSteps: number;
}

/** The steps of a run over `n` kept pairs: which positions each micro-batch of a step holds, and where stages end. */
export class Schedule {
  readonly spe: number;
  readonly maxSteps: number;
  /** 1-based global step -> the stage that ends with it. */
  readonly stageEnds: Map<number, number>;
  private cached: { epoch: number; order: number[] } | null = null;

  constructor(readonly n: number, readonly plan: CurriculumPlan, private readonly s: ScheduleSettings) {
    this.spe = stepsPerEpoch(n, s.batchSize, s.gradAccum);
    this.maxSteps = s.maxSteps > 0 ? s.maxSteps : Math.max(1, Math.ceil(s.epochs * this.spe));
    this.stageEnds = new Map();
    for (let e = 0; e * this.spe < this.maxSteps; e++) {
      stageEndSteps(epochSchedule(n, plan, s.seed, e).sizes, s.batchSize * s.gradAccum).forEach((j, k) => {
        if (j !== null && e * this.spe + j + 1 <= this.maxSteps) this.stageEnds.set(e * this.spe + j + 1, k);
      });
    }
  }

  /** The epoch's order, computed once per epoch (a sort or a shuffle of all pairs). */
  private order(epoch: number): number[] {
    if (this.cached?.epoch !== epoch) this.cached = { epoch, order: epochSchedule(this.n, this.plan, this.s.seed, epoch).order };
    return this.cached.order;
  }

  /** The micro-batches of optimizer step `step` (0-based), as positions among the kept pairs. */
  microBatches(step: number): number[][] {
    const { batchSize, gradAccum } = this.s;
    const order = this.order(Math.floor(step / this.spe));
    const j = step % this.spe;
    const out: number[][] = [];
    for (let m = j * gradAccum; m < (j + 1) * gradAccum; m++) {
      const chunk = order.slice(m * batchSize, (m + 1) * batchSize);
      if (chunk.length > 0) out.push(chunk);
    }
    return out;
  }
}

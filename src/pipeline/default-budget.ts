// The embedded default's settings, one object (issue 16 item 4): the world's size, the model shape, the SFT token
// budget, best-of-N pairs, DPO and the held-out evaluation. DEFAULT_BUDGET fits a first run on 2 cores in about
// 10 minutes; tests pass a much smaller one. Every stage's cache key is a hash of the settings it reads (and its inputs').
import { TINY_PRESETS, type TinyOptions } from '../io/tiny-model.js';

export interface DefaultBudget {
  /** World, model init, SFT order, sampling and DPO seed. */
  seed: number;
  world: { size: number; heldout: number };
  /** The init-tiny shape (`init-tiny --preset world`). */
  model: TinyOptions;
  /** SFT --full: stop after this many prompt + solution tokens (the prototype's budget is 2M). */
  sftTokens: number;
  /** `sft` flags (SFT_SCHEMA keys), over the pipeline's own: --full, the data, the output folder, the step count. */
  sft: Record<string, unknown>;
  /** Best-of-N on the first `tasks` train prompts, scored by the sandbox. */
  pairs: { tasks: number; n: number; temperature: number; topP: number; maxNewTokens: number; requireChosenPass: boolean };
  /** `train` flags (RUN_SCHEMA keys): LoRA DPO with the `stages` curriculum on the pairs, over the SFT model. */
  dpo: Record<string, unknown>;
  /** Held-out evaluation after each stage (and at step 0, the SFT model): the first `evalTasks` held-out tasks, greedy. */
  evalTasks: number;
  evalMaxNewTokens: number;
}

export const DEFAULT_BUDGET: DefaultBudget = {
  seed: 0,
  // The world and SFT of scripts/world-experiment.ts's 2M-token run (issue16.md: held-out greedy pass@1 0.225).
  world: { size: 8000, heldout: 200 },
  model: TINY_PRESETS.world,
  sftTokens: 2_000_000,
  sft: { 'batch-size': 4, 'learning-rate': 2e-3, 'lr-scheduler': 'cosine', 'warmup-ratio': 0.02, 'weight-decay': 0.1, 'max-length': 1024, 'save-steps': 250, 'logging-steps': 100 },
  pairs: { tasks: 200, n: 8, temperature: 1.0, topP: 1, maxNewTokens: 128, requireChosenPass: true },
  dpo: {
    'max-length': 512, 'lora-r': 8, 'lora-alpha': 16, 'lora-dropout': 0, 'learning-rate': 5e-4, beta: 0.1, 'batch-size': 4, epochs: 1,
    'save-steps': 10, 'logging-steps': 5, curriculum: 'stages',
  },
  evalTasks: 100,
  evalMaxNewTokens: 160,
};

/** SFT steps for a token budget: tokens per step = batch x mean tokens per example (byte-level: UTF-8 bytes + BOS + EOS). */
export function sftStepsFor(budget: DefaultBudget, exampleTokens: readonly number[]): number {
  const mean = exampleTokens.reduce((a, b) => a + b, 0) / Math.max(1, exampleTokens.length);
  const batch = Number(budget.sft['batch-size'] ?? 8);
  return Math.max(1, Math.round(budget.sftTokens / (batch * mean)));
}

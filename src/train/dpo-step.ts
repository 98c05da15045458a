// One DPO step outside the loop (the gradient and memory tests, bench-step): objectiveStep with the DPO objective,
// its stats typed. Here in train/, since train imports dpo and not the other way.
import * as tf from '@tensorflow/tfjs';
import type { LlamaConfig } from '../model/types.js';
import type { Weights } from '../model/llama.js';
import type { Lora } from '../model/lora.js';
import type { Rng } from '../util/rng.js';
import { objectiveStep, disposeValues } from './step.js';
import type { StepValues } from './objective.js';
import { dpoObjective, type DpoSettings, type MicroBatch, type RefProvider } from '../dpo/objective.js';

export interface StepStats {
  losses: tf.Tensor1D;
  chosenRewards: tf.Tensor1D;
  rejectedRewards: tf.Tensor1D;
  policyChosen: tf.Tensor1D;
  policyRejected: tf.Tensor1D;
  /** Real tokens (prompt + completion) in the step, for tokens/s. */
  tokens: number;
}

/** One DPO step's accumulated gradients and per-pair stats (objectiveStep with the DPO objective). */
export function stepGradients(cfg: LlamaConfig, w: Weights, lora: Lora, micro: MicroBatch[], ref: RefProvider, s: DpoSettings, padId: number,
  dropoutRng: Rng): { grads: Map<string, tf.Tensor>; stats: StepStats } {
  const out = objectiveStep(dpoObjective(cfg, w, padId, ref, s), lora, micro, dropoutRng);
  return { grads: out.grads, stats: { ...(out.values as unknown as Omit<StepStats, 'tokens'>), tokens: out.tokens } };
}

export function disposeStats(s: StepStats): void {
  const { tokens: _, ...values } = s;
  disposeValues(values as StepValues);
}

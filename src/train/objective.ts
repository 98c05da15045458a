// The interface a training objective fills, so that one loop serves any of them: DPO today (dpo/objective.ts), SFT's
// completion-only loss next. The loop owns the order, accumulation, AdamW, logging and checkpoints; the objective owns
// the forward pass, the loss, and the names of what it logs (TRL's, for DPO).
import type * as tf from '@tensorflow/tfjs';
import type { Lora } from '../model/lora.js';
import type { Rng } from '../util/rng.js';

/** What a forward in training needs besides the batch: the policy adapters and this step's dropout stream. */
export interface TapeContext {
  lora: Lora;
  dropoutRng: Rng;
}

/** Per-item values of one step, still on the device, by name; the logger reads them back once per logging window. */
export type StepValues = Record<string, tf.Tensor1D>;

/**
 * One step's values after the logger's single read of its window (`await data()` on one packed tensor): host arrays
 * by name. `dataSync()` returns the same array (no device read), for objectives written against the tensors.
 */
export type HostValues = Record<string, Float32Array & { dataSync(): Float32Array }>;

export interface MicroBatchPlan {
  /** Items (pairs, sequences) in the micro-batch: its weight in the step's mean loss. */
  size: number;
  /** Real tokens in the micro-batch, for tokens/s. */
  tokens: number;
  /** Runs inside the gradient tape: the micro-batch's mean loss over its items, and per-item values to log. */
  loss(): { loss: tf.Scalar; values: StepValues };
  /** Frees what microBatch() put on the device for loss() (reference log-probs), after the micro-batch's gradients. */
  dispose?(): void;
}

export interface Objective<M> {
  /**
   * Prepares micro-batch `m` of a step outside the tape (collation, reference values); `step` is all of the step's
   * micro-batches, for normalizers that span it (a token mean over the whole step).
   */
  microBatch(m: M, step: readonly M[], ctx: TapeContext): MicroBatchPlan;
  /** A step's values as the logger read them back: the metrics line (before step-level keys) and one row per item. */
  readout(values: HostValues): { metrics: Record<string, number>; items: Record<string, number>[] };
  /** Metrics shown beside the loss on the progress line. */
  progressKeys: readonly string[];
}

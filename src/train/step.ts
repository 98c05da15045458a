// One DPO optimizer step: gradients of the loss into the LoRA variables over `gradAccum` micro-batches,
// each a `[chosen; rejected]` batch through one forward (TRL's concatenated forward), then AdamW.
import * as tf from '@tensorflow/tfjs';
import type { LlamaConfig } from '../config/llama.js';
import type { Weights } from '../model/llama.js';
import { type Lora, loraTensors } from '../model/lora.js';
import { collatePairs, type TokenizedPair } from '../data/batch.js';

import { sequenceLogprobs } from '../dpo/logprobs.js';
import { dpoLoss, needsLengths, type LossTerm, type LossType } from '../dpo/losses.js';
import { batchTensors } from '../dpo/reference.js';
import type { Rng } from '../util/rng.js';

export interface StepSettings {
  /** One loss, or weighted terms summed (TRL loss_type list + loss_weights; see dpo/losses.ts). */
  loss: LossType | readonly LossTerm[];
  beta: number;
  labelSmoothing: number;
  discopopTau?: number;
  /** Recompute each decoder layer in the backward pass (same gradients, activations of layer inputs only). */
  gradientCheckpointing?: boolean;
}

/** Reference log-probs of one micro-batch's pairs: from the cache, or computed online. */
export type RefProvider = (pairs: readonly TokenizedPair[], positions: readonly number[]) => { chosen: Float32Array; rejected: Float32Array };

/** Per-pair values of a step, still on the device; the logger reads them back. */
export interface StepStats {
  losses: tf.Tensor1D;
  chosenRewards: tf.Tensor1D;
  rejectedRewards: tf.Tensor1D;
  policyChosen: tf.Tensor1D;
  policyRejected: tf.Tensor1D;
  /** Real tokens (prompt + completion) in the step, for tokens/s. */
  tokens: number;
}

export interface MicroBatch {
  pairs: TokenizedPair[];
  /** Positions of these pairs among the kept pairs (keys of the reference cache). */
  positions: number[];
}

/**
 * Accumulated gradients of the step's mean pair loss. Each micro-batch's mean is weighted by its share of the
 * step's pairs, so k micro-batches of n/k pairs give exactly the gradient of one batch of n.
 */
export function stepGradients(cfg: LlamaConfig, w: Weights, lora: Lora, micro: MicroBatch[], ref: RefProvider, s: StepSettings, padId: number,
  dropoutRng: Rng): { grads: Map<string, tf.Tensor>; stats: StepStats } {
  const vars = loraTensors(lora);
  const names = Object.keys(vars);
  const total = micro.reduce((n, m) => n + m.pairs.length, 0);
  // sft's token mean runs over the whole step's chosen completions, so accumulation splits it exactly.
  const chosenTokens = micro.reduce((n, m) => n + m.pairs.reduce((k, p) => k + p.chosenIds.length, 0), 0);
  const grads = new Map<string, tf.Tensor>();
  const parts: Omit<StepStats, 'tokens'>[] = [];
  let tokens = 0;
  for (const mb of micro) {
    const P = mb.pairs.length;
    const batch = collatePairs(mb.pairs, padId);
    tokens += batch.lengths.reduce((a, b) => a + b, 0);
    const r = ref(mb.pairs, mb.positions);
    let kept: Omit<StepStats, 'tokens'> | null = null;
    const { value, grads: g } = tf.variableGrads(() => {
      const { ids, attn, loss } = batchTensors(batch);
      const logps = sequenceLogprobs(cfg, w, ids, attn, loss, { lora, training: true, dropoutRng, gradientCheckpointing: s.gradientCheckpointing ?? false }); // [2P]
      const pc = logps.slice(0, P) as tf.Tensor1D;
      const pr = logps.slice(P, P) as tf.Tensor1D;
      const terms = typeof s.loss === 'string' ? [{ type: s.loss, weight: 1 }] : s.loss;
      // ipo, sigmoid_norm and sft read the completion token counts (TRL completion_mask.sum(dim=1)).
      const lengths = needsLengths(terms)
        ? { chosenLengths: tf.tensor1d(Array.from(batch.completionLengths.subarray(0, P))), rejectedLengths: tf.tensor1d(Array.from(batch.completionLengths.subarray(P))) }
        : {};
      const out = dpoLoss({ policyChosen: pc, policyRejected: pr, refChosen: tf.tensor1d(r.chosen), refRejected: tf.tensor1d(r.rejected), ...lengths },
        { terms, beta: s.beta, labelSmoothing: s.labelSmoothing, discopopTau: s.discopopTau, sftTokens: { pairs: total, tokens: chosenTokens } });
      kept = {
        losses: tf.keep(out.losses.clone()),
        chosenRewards: tf.keep(out.chosenRewards),
        rejectedRewards: tf.keep(out.rejectedRewards),
        policyChosen: tf.keep(logps.slice(0, P).clone() as tf.Tensor1D),
        policyRejected: tf.keep(logps.slice(P, P).clone() as tf.Tensor1D),
      };
      return tf.mul(tf.mean(out.losses), P / total) as tf.Scalar;
    }, names.map((n) => vars[n]));
    value.dispose();
    parts.push(kept!);
    // variableGrads keys its result by tf.Variable.name, not by our module keys.
    for (const n of names) {
      const gn = g[vars[n].name];
      const prev = grads.get(n);
      if (prev) {
        grads.set(n, tf.keep(tf.add(prev, gn)));
        prev.dispose();
        gn.dispose();
      } else grads.set(n, gn);
    }
  }
  const cat = (f: (p: Omit<StepStats, 'tokens'>) => tf.Tensor1D) => {
    const t = parts.length === 1 ? f(parts[0]).clone() : tf.concat(parts.map(f));
    return t as tf.Tensor1D;
  };
  const stats: StepStats = {
    losses: cat((p) => p.losses),
    chosenRewards: cat((p) => p.chosenRewards),
    rejectedRewards: cat((p) => p.rejectedRewards),
    policyChosen: cat((p) => p.policyChosen),
    policyRejected: cat((p) => p.policyRejected),
    tokens,
  };
  for (const p of parts) tf.dispose(Object.values(p));
  return { grads, stats };
}

export function disposeStats(s: StepStats): void {
  tf.dispose([s.losses, s.chosenRewards, s.rejectedRewards, s.policyChosen, s.policyRejected]);
}

// DPO as a training objective (train/objective.ts): a micro-batch of pairs goes through one forward as a
// `[chosen; rejected]` batch (TRL's concatenated forward), its reference log-probs come from the RefProvider, and the
// loss is dpo/losses.ts's. The readout names the metrics as TRL's DPOTrainer logs them.
import * as tf from '@tensorflow/tfjs';
import type { LlamaConfig } from '../model/types.js';
import type { Weights } from '../model/llama.js';
import { disposeLora, type Lora } from '../model/lora.js';
import type { RunConfig } from '../config/run.js';
import type { LoadedModel } from '../io/model-dir.js';
import { loadAdapter } from '../io/peft.js';
import { collatePairs, type TokenizedPair } from '../data/batch.js';
import type { Objective, StepValues } from '../train/objective.js';
import type { Rng } from '../util/rng.js';
import { batchSequenceLogprobs } from './logprobs.js';
import { dpoLoss, needsLengths, parseLossTerms, type LossTerm, type LossType } from './losses.js';
import { refProvider, type RefProvider } from './ref-table.js';
import type { PairLogpTable } from './reference.js';

export type { RefProvider };

export interface DpoSettings {
  /** One loss, or weighted terms summed (TRL loss_type list + loss_weights; see dpo/losses.ts). */
  loss: LossType | readonly LossTerm[];
  beta: number;
  labelSmoothing: number;
  discopopTau?: number;
  /** Recompute each decoder layer in the backward pass (same gradients, activations of layer inputs only). */
  gradientCheckpointing?: boolean;
}

export interface MicroBatch {
  pairs: TokenizedPair[];
  /** Positions of these pairs among the kept pairs (keys of the reference table). */
  positions: number[];
}

function mean(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i];
  return s / a.length;
}

export function dpoObjective(cfg: LlamaConfig, w: Weights, padId: number, ref: RefProvider, s: DpoSettings): Objective<MicroBatch> {
  const terms = typeof s.loss === 'string' ? [{ type: s.loss, weight: 1 }] : s.loss;
  return {
    progressKeys: ['rewards/margins'],
    microBatch(mb, step, ctx) {
      const P = mb.pairs.length;
      const batch = collatePairs(mb.pairs, padId);
      const r = ref(mb.pairs, mb.positions);
      // sft's token mean runs over the whole step's chosen completions, so accumulation splits it exactly.
      const sftTokens = { pairs: step.reduce((n, m) => n + m.pairs.length, 0), tokens: step.reduce((n, m) => n + m.pairs.reduce((k, p) => k + p.chosenIds.length, 0), 0) };
      return {
        size: P,
        tokens: batch.lengths.reduce((a, b) => a + b, 0),
        loss: () => {
          const logps = batchSequenceLogprobs(cfg, w, batch, { lora: ctx.lora, training: true, dropoutRng: ctx.dropoutRng, gradientCheckpointing: s.gradientCheckpointing ?? false }); // [2P]
          const pc = logps.slice(0, P) as tf.Tensor1D;
          const pr = logps.slice(P, P) as tf.Tensor1D;
          // ipo, sigmoid_norm and sft read the completion token counts (TRL completion_mask.sum(dim=1)).
          const lengths = needsLengths(terms)
            ? { chosenLengths: tf.tensor1d(Array.from(batch.completionLengths.subarray(0, P))), rejectedLengths: tf.tensor1d(Array.from(batch.completionLengths.subarray(P))) }
            : {};
          const out = dpoLoss({ policyChosen: pc, policyRejected: pr, refChosen: tf.tensor1d(r.chosen), refRejected: tf.tensor1d(r.rejected), ...lengths },
            { terms, beta: s.beta, labelSmoothing: s.labelSmoothing, discopopTau: s.discopopTau, sftTokens });
          return {
            loss: tf.mean(out.losses) as tf.Scalar,
            values: { losses: out.losses, chosenRewards: out.chosenRewards, rejectedRewards: out.rejectedRewards, policyChosen: pc, policyRejected: pr },
          };
        },
      };
    },
    readout(v) {
      const losses = v.losses.dataSync();
      const rc = v.chosenRewards.dataSync();
      const rr = v.rejectedRewards.dataSync();
      const margins = Array.from(rc, (c, i) => c - rr[i]);
      const metrics = {
        loss: mean(losses),
        'rewards/chosen': mean(rc),
        'rewards/rejected': mean(rr),
        'rewards/accuracies': mean(margins.map((m) => (m > 0 ? 1 : 0))),
        'rewards/margins': mean(margins),
        'logps/chosen': mean(v.policyChosen.dataSync()),
        'logps/rejected': mean(v.policyRejected.dataSync()),
      };
      return { metrics, items: Array.from(losses, (loss, i) => ({ loss, margin: margins[i] })) };
    },
  };
}

/**
 * The run's DPO objective from its config: the reference from the table (--ref-mode cache) or computed online under
 * the reference (base + --ref-adapter / --init-adapter, or the bare base), loaded from disk, never from the policy.
 */
export function runObjective(model: LoadedModel, cfg: RunConfig, table: PairLogpTable | null, keptIdx: readonly number[]): { objective: Objective<MicroBatch>; reference: string; dispose(): void } {
  const refDir = cfg.refAdapter ?? cfg.initAdapter;
  const bare = !refDir || refDir === 'none';
  const online = cfg.refMode !== 'cache' || !table;
  const refLora = online && !bare ? loadAdapter(refDir, model.cfg) : null;
  const objective = dpoObjective(model.cfg, model.weights, model.tokenizer.padId, refProvider(online ? null : table, keptIdx, model, refLora), {
    loss: parseLossTerms(cfg.loss, cfg.lossWeights, cfg.labelSmoothing), beta: cfg.beta, labelSmoothing: cfg.labelSmoothing,
    discopopTau: cfg.discopopTau, gradientCheckpointing: cfg.gradientCheckpointing,
  });
  return { objective, reference: bare ? 'base' : `base + ${refDir}`, dispose: () => { if (refLora) disposeLora(refLora); } };
}

/** Per-pair values of a DPO step, still on the device. */

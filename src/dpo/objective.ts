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
import { batchSequenceStats } from './logprobs.js';
import { dpoLoss, needsLengths, parseLossTerms, type LossTerm, type LossType } from './losses.js';
import { refProvider, zeroReference, type RefProvider } from './ref-table.js';
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

function sum(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i];
  return s;
}

/** A reference value as the device needs it: host rows are uploaded once, tensors (online reference) used as they are. */
const onDevice = (x: Float32Array | tf.Tensor1D): tf.Tensor1D => (x instanceof Float32Array ? tf.tensor1d(x) : x);

export function dpoObjective(cfg: LlamaConfig, w: Weights, padId: number, ref: RefProvider, s: DpoSettings): Objective<MicroBatch> {
  const terms = typeof s.loss === 'string' ? [{ type: s.loss, weight: 1 }] : s.loss;
  return {
    progressKeys: ['rewards/margins'],
    microBatch(mb, step, ctx) {
      const P = mb.pairs.length;
      const batch = collatePairs(mb.pairs, padId);
      // The reference stays on the device: computed online without a read-back, or the table's rows uploaded.
      const r = ref(mb.pairs, mb.positions);
      const refChosen = onDevice(r.chosen);
      const refRejected = onDevice(r.rejected);
      // Completion token counts (EOS included): the loss for ipo/sigmoid_norm/sft, and the logits/accuracy means.
      const chosenLengths = tf.tensor1d(batch.completionLengths.subarray(0, P), 'float32');
      const rejectedLengths = tf.tensor1d(batch.completionLengths.subarray(P), 'float32');
      // sft's token mean runs over the whole step's chosen completions, so accumulation splits it exactly.
      const sftTokens = { pairs: step.reduce((n, m) => n + m.pairs.length, 0), tokens: step.reduce((n, m) => n + m.pairs.reduce((k, p) => k + p.chosenIds.length, 0), 0) };
      return {
        size: P,
        tokens: batch.lengths.reduce((a, b) => a + b, 0),
        loss: () => {
          const st = batchSequenceStats(cfg, w, batch, { lora: ctx.lora, training: true, dropoutRng: ctx.dropoutRng, gradientCheckpointing: s.gradientCheckpointing ?? false }); // [2P] each
          const pc = st.logps.slice(0, P) as tf.Tensor1D;
          const pr = st.logps.slice(P, P) as tf.Tensor1D;
          const lengths = needsLengths(terms) ? { chosenLengths, rejectedLengths } : {};
          const out = dpoLoss({ policyChosen: pc, policyRejected: pr, refChosen, refRejected, ...lengths },
            { terms, beta: s.beta, labelSmoothing: s.labelSmoothing, discopopTau: s.discopopTau, sftTokens });
          return {
            loss: tf.mean(out.losses) as tf.Scalar,
            values: {
              losses: out.losses, chosenRewards: out.chosenRewards, rejectedRewards: out.rejectedRewards, policyChosen: pc, policyRejected: pr,
              // TRL 1.x's logits/* and mean_token_accuracy numerators per pair (kernels/logprob.ts), and their denominators.
              chosenLogitSums: st.logitSums.slice(0, P) as tf.Tensor1D, rejectedLogitSums: st.logitSums.slice(P, P) as tf.Tensor1D,
              chosenCorrect: st.correct.slice(0, P) as tf.Tensor1D, chosenTokens: chosenLengths.clone(), rejectedTokens: rejectedLengths.clone(),
            },
          };
        },
        dispose: () => tf.dispose([refChosen, refRejected, chosenLengths, rejectedLengths]),
      };
    },
    readout(v) {
      const losses = v.losses;
      const rc = v.chosenRewards;
      const rr = v.rejectedRewards;
      const margins = Array.from(rc, (c, i) => c - rr[i]);
      const ct = sum(v.chosenTokens);
      const rt = sum(v.rejectedTokens);
      const metrics = {
        loss: mean(losses),
        'rewards/chosen': mean(rc),
        'rewards/rejected': mean(rr),
        'rewards/accuracies': mean(margins.map((m) => (m > 0 ? 1 : 0))),
        'rewards/margins': mean(margins),
        'logps/chosen': mean(v.policyChosen),
        'logps/rejected': mean(v.policyRejected),
        // TRL 1.x DPOTrainer.compute_loss (huggingface/trl trl/trainer/dpo_trainer.py, the blocks '# Average logits for
        // chosen and rejected completions' and '# Token accuracy for the chosen completions'; line numbers not resolvable
        // in the stored copy): shift_logits[mask].mean(-1) summed over the completion tokens / their count, per side;
        // (argmax == label) over the chosen completion tokens / their count; 0 with no tokens. TRL reduces per micro-batch
        // and averages the list on log(); here one step's micro-batches are pooled (equal when they are the same size).
        'logits/chosen': ct > 0 ? sum(v.chosenLogitSums) / ct : 0,
        'logits/rejected': rt > 0 ? sum(v.rejectedLogitSums) / rt : 0,
        mean_token_accuracy: ct > 0 ? sum(v.chosenCorrect) / ct : 0,
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
  const refLora = online && !bare && !cfg.referenceFree ? loadAdapter(refDir, model.cfg) : null;
  const ref = cfg.referenceFree ? zeroReference : refProvider(online ? null : table, keptIdx, model, refLora);
  const objective = dpoObjective(model.cfg, model.weights, model.tokenizer.padId, ref, {
    loss: parseLossTerms(cfg.loss, cfg.lossWeights, cfg.labelSmoothing), beta: cfg.beta, labelSmoothing: cfg.labelSmoothing,
    discopopTau: cfg.discopopTau, gradientCheckpointing: cfg.gradientCheckpointing,
  });
  const reference = cfg.referenceFree ? 'none (reference_free: log-probs of 0)' : bare ? 'base' : `base + ${refDir}`;
  return { objective, reference, dispose: () => { if (refLora) disposeLora(refLora); } };
}

/** Per-pair values of a DPO step, still on the device. */

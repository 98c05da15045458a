// SFT as a training objective (train/objective.ts): the mean negative log-likelihood of the completion tokens, EOS
// included (TRL SFTTrainer with completion_only_loss), as one token mean over the whole optimizer step, so gradient
// accumulation splits it exactly (transformers' num_items_in_batch). Logs TRL's loss, mean_token_accuracy, num_tokens.
import * as tf from '@tensorflow/tfjs';
import type { LlamaConfig } from '../model/types.js';
import { forwardHidden, type Weights } from '../model/llama.js';
import type { Objective, StepValues } from '../train/objective.js';
import { completionStats, completionStatsReference } from '../../kernels/logprob.js';
import { LOGPROB_CHUNK, statsFromHidden } from '../dpo/logprobs.js';
import { isRowSplit } from '../model/row-blocks.js';
import { InputError, describe } from '../util/errors.js';
import { env } from '../config/env.js';
import type { SftExample } from './data.js';

export interface SftMicroBatch {
  examples: SftExample[];
}

/** Right-padded rows of prompt + completion. */
export interface SeqBatch {
  shape: [number, number];
  inputIds: Int32Array;
  attentionMask: Float32Array;
  /** 1 where token t is scored: the completion tokens, or (completionOnly false) every real token after the first. */
  lossMask: Float32Array;
  /** Real tokens per row. */
  lengths: number[];
  /** Scored tokens per row. */
  lossTokens: number[];
}

export function collateSequences(ex: readonly SftExample[], padId: number, completionOnly: boolean): SeqBatch {
  if (ex.length === 0) throw new Error('collateSequences: no examples');
  const T = Math.max(...ex.map((e) => e.promptIds.length + e.completionIds.length));
  const B = ex.length;
  const inputIds = new Int32Array(B * T).fill(padId);
  const attentionMask = new Float32Array(B * T);
  const lossMask = new Float32Array(B * T);
  const lengths: number[] = [];
  const lossTokens: number[] = [];
  ex.forEach((e, r) => {
    const np = e.promptIds.length;
    const n = np + e.completionIds.length;
    inputIds.set(e.promptIds, r * T);
    inputIds.set(e.completionIds, r * T + np);
    attentionMask.fill(1, r * T, r * T + n);
    const from = completionOnly ? np : 1; // token 0 has nothing to condition on
    lossMask.fill(1, r * T + from, r * T + n);
    lengths.push(n);
    lossTokens.push(n - from);
  });
  return { shape: [B, T], inputIds, attentionMask, lossMask, lengths, lossTokens };
}

export interface SftSettings {
  completionOnly: boolean;
  /**
   * Every weight trains: the head gets a gradient, so the plain-ops log-prob path is used (the memory-bounded kernel
   * differentiates the hidden states only, which is all LoRA needs).
   */
  full: boolean;
  /** num_tokens already seen (a resumed run's), so the logged count is cumulative as TRL's. */
  tokensSeen?: number;
}

const sum = (a: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i];
  return s;
};

export function sftObjective(cfg: LlamaConfig, w: Weights, padId: number, s: SftSettings): Objective<SftMicroBatch> {
  let seen = s.tokensSeen ?? 0;
  const headKey = cfg.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight';
  // A head split by rows (the device's binding limit, model/row-blocks.ts) is frozen: LoRA reads it block by block.
  const split = isRowSplit(w, headKey) || isRowSplit(w, 'model.embed_tokens.weight');
  if (split && s.full) {
    throw new InputError(describe('sft --full', 'the embedding or lm_head is split into row blocks (above the device\'s binding limit)', 'weights that each fit the device',
      'Full SFT trains every weight whole; use LoRA SFT (without --full), a device with larger limits, or --backend tensorflow.'));
  }
  const stats = s.full || env().kernels === 'reference' ? completionStatsReference : completionStats;
  return {
    progressKeys: ['mean_token_accuracy'],
    microBatch(mb, _step, ctx) {
      const b = collateSequences(mb.examples, padId, s.completionOnly);
      const size = sum(b.lossTokens);
      return {
        // Weighted by scored tokens: the step's loss is the token mean over all its micro-batches.
        size,
        tokens: sum(b.lengths),
        loss: () => {
          const ids = tf.tensor2d(b.inputIds, b.shape, 'int32');
          const attn = tf.tensor2d(b.attentionMask, b.shape);
          const mask = tf.tensor2d(b.lossMask, b.shape);
          const hidden = forwardHidden(cfg, w, ids, attn, { lora: ctx.lora, training: true, dropoutRng: ctx.dropoutRng }); // [B, T, H]
          const st = split ? statsFromHidden(cfg, w, hidden, ids, mask) : stats(hidden, w[headKey] as tf.Tensor2D, ids, mask, LOGPROB_CHUNK);
          const nll = tf.neg(st.logps) as tf.Tensor1D; // [B] summed over each row's scored tokens
          return {
            loss: tf.div(tf.sum(nll), Math.max(1, size)) as tf.Scalar,
            values: { nll, correct: st.correct, scored: tf.tensor1d(b.lossTokens), tokens: tf.tensor1d(b.lengths) } as StepValues,
          };
        },
      };
    },
    readout(v) {
      const nll = v.nll.dataSync();
      const scored = v.scored.dataSync();
      const n = Math.max(1, sum(scored));
      seen += sum(v.tokens.dataSync());
      return {
        metrics: { loss: sum(nll) / n, mean_token_accuracy: sum(v.correct.dataSync()) / n, num_tokens: seen },
        items: Array.from(nll, (x, i) => ({ loss: x / Math.max(1, scored[i]) })),
      };
    },
  };
}

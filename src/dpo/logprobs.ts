// Summed completion log-probs of a `[chosen; rejected]` batch: one function serves policy and reference.
// Follows TRL's concatenated forward: log p(token_t | <t) summed where the loss mask is 1 (EOS included).
import * as tf from '@tensorflow/tfjs';
import type { LlamaConfig } from '../config/llama.js';
import { forwardHidden, headLogits, type Weights } from '../model/llama.js';
import type { Lora } from '../model/lora.js';
import type { Rng } from '../util/rng.js';
import { completionLogprobs, useReferenceLogprob } from '../../kernels/logprob.js';

/** Positions per head chunk: bounds the live `[B, c, V]` logits (V is 128256 for Llama 3). */
export const LOGPROB_CHUNK = 64;

/**
 * Per-row sum of log-probs of the masked tokens, from final hidden states.
 * hidden [B, T, H]; inputIds [B, T] int32; lossMask [B, T], 1 where token t belongs to the completion.
 * Token t is scored by the logits at t - 1, so column 0 of the mask is ignored (it is never a completion token).
 * Each chunk of positions computes its logits, reduces them to [B] and drops them before the next chunk.
 */
export function logprobsFromHidden(cfg: LlamaConfig, w: Weights, hidden: tf.Tensor3D, inputIds: tf.Tensor2D, lossMask: tf.Tensor2D, chunk = LOGPROB_CHUNK): tf.Tensor1D {
  const head = w[cfg.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight'];
  // The kernel's backward holds one chunk's logits at a time; below is the plain reference (DPO_KERNELS=reference).
  if (head && !useReferenceLogprob()) return completionLogprobs(hidden, head as tf.Tensor2D, inputIds, lossMask, chunk);
  const [B, T, H] = hidden.shape;
  const parts: tf.Tensor1D[] = [];
  for (let t0 = 0; t0 < T - 1; t0 += chunk) {
    const c = Math.min(chunk, T - 1 - t0);
    parts.push(tf.tidy(() => {
      const h = hidden.slice([0, t0, 0], [B, c, H]); // [B, c, H] predicts tokens t0+1 .. t0+c
      const labels = inputIds.slice([0, t0 + 1], [B, c]); // [B, c]
      const mask = lossMask.slice([0, t0 + 1], [B, c]); // [B, c]
      const logits = headLogits(cfg, w, h) as tf.Tensor3D; // [B, c, V]
      const lse = tf.logSumExp(logits, -1); // [B, c]
      // oneHot, not gather: gather's gradient needs UnsortedSegmentSum, which the wasm backend lacks.
      const picked = tf.sum(tf.mul(logits, tf.oneHot(labels.toInt(), cfg.vocabSize)), -1); // [B, c]
      return tf.sum(tf.mul(tf.sub(picked, lse), mask), 1) as tf.Tensor1D; // [B]
    }));
  }
  if (parts.length === 0) return tf.zeros([B]);
  const total = tf.addN(parts) as tf.Tensor1D;
  if (parts.length > 1) for (const p of parts) p.dispose();
  return total;
}

/** Forward + summed completion log-probs. `lora` null (or disabled) is the bare base model. */
export function sequenceLogprobs(cfg: LlamaConfig, w: Weights, inputIds: tf.Tensor2D, attentionMask: tf.Tensor2D, lossMask: tf.Tensor2D,
  opts: { lora?: Lora | null; training?: boolean; dropoutRng?: Rng; gradientCheckpointing?: boolean } = {}): tf.Tensor1D {
  return tf.tidy(() => {
    const hidden = forwardHidden(cfg, w, inputIds, attentionMask,
      { lora: opts.lora ?? null, training: opts.training ?? false, dropoutRng: opts.dropoutRng, gradientCheckpointing: opts.gradientCheckpointing ?? false });
    return logprobsFromHidden(cfg, w, hidden, inputIds, lossMask);
  });
}

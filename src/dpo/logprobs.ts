// Summed completion log-probs of a `[chosen; rejected]` batch: one function serves policy and reference.
// Follows TRL's concatenated forward: log p(token_t | <t) summed where the loss mask is 1 (EOS included).
import * as tf from '@tensorflow/tfjs';
import type { LlamaConfig } from '../config/llama.js';
import { forwardHidden, type Weights } from '../model/llama.js';
import type { Lora } from '../model/lora.js';
import type { Rng } from '../util/rng.js';
import type { PairBatch } from '../data/batch.js';
import { completionLogprobs, completionLogprobsReference, completionStats, completionStatsReference, type CompletionStats } from '../../kernels/logprob.js';
import { env } from '../config/env.js';
import { headKey, rowBlocks } from '../model/row-blocks.js';
import { blockCompletionLogprobs, blockCompletionStats } from '../model/row-block-logprob.js';

/** Positions per head chunk: bounds the live `[B, c, V]` logits (V is 128256 for Llama 3). */
export const LOGPROB_CHUNK = 64;

/**
 * Per-row sum of log-probs of the masked tokens, from final hidden states.
 * hidden [B, T, H]; inputIds [B, T] int32; lossMask [B, T], 1 where token t belongs to the completion.
 * Token t is scored by the logits at t - 1, so column 0 of the mask is ignored (it is never a completion token).
 * The kernel works in chunks of positions and its backward holds one chunk's logits at a time; DPO_KERNELS=reference
 * takes the plain path (kernels/logprob.ts holds both).
 */
export function logprobsFromHidden(cfg: LlamaConfig, w: Weights, hidden: tf.Tensor3D, inputIds: tf.Tensor2D, lossMask: tf.Tensor2D, chunk = LOGPROB_CHUNK): tf.Tensor1D {
  const blocks = rowBlocks(w, headKey(cfg));
  // A head split by rows (model/row-blocks.ts): the logsumexp over blocks, never the whole [B*c, V] chunk as one tensor.
  // It has no plain-ops twin (that would build the whole chunk), so DPO_KERNELS=reference does not apply to it.
  if (blocks.length > 1) return blockCompletionLogprobs(hidden, blocks, inputIds, lossMask, chunk);
  const head = blocks[0];
  // DPO_KERNELS=reference forces the plain-ops path (tape-held logits), for checks and bisection; read once (config/env.ts).
  const f = env().kernels === 'reference' ? completionLogprobsReference : completionLogprobs;
  return f(hidden, head, inputIds, lossMask, chunk);
}

/** logprobsFromHidden plus the kernel's metric sums (mean logit and argmax hits over completion tokens), no gradient on those. */
export function statsFromHidden(cfg: LlamaConfig, w: Weights, hidden: tf.Tensor3D, inputIds: tf.Tensor2D, lossMask: tf.Tensor2D, chunk = LOGPROB_CHUNK): CompletionStats {
  const blocks = rowBlocks(w, headKey(cfg));
  if (blocks.length > 1) return blockCompletionStats(hidden, blocks, inputIds, lossMask, chunk);
  const head = blocks[0];
  const f = env().kernels === 'reference' ? completionStatsReference : completionStats;
  return f(hidden, head, inputIds, lossMask, chunk);
}

/** [2P] per-row CompletionStats of a collated `[chosen; rejected]` batch (the policy forward of a DPO step). */
export function batchSequenceStats(cfg: LlamaConfig, w: Weights, b: PairBatch,
  opts: { lora?: Lora | null; training?: boolean; dropoutRng?: Rng; gradientCheckpointing?: boolean } = {}): CompletionStats {
  return tf.tidy(() => {
    const { ids, attn, loss } = batchTensors(b);
    const hidden = forwardHidden(cfg, w, ids, attn,
      { lora: opts.lora ?? null, training: opts.training ?? false, dropoutRng: opts.dropoutRng, gradientCheckpointing: opts.gradientCheckpointing ?? false });
    return statsFromHidden(cfg, w, hidden, ids, loss) as unknown as tf.TensorContainer;
  }) as unknown as CompletionStats;
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

/** Tensors of a collated `[chosen; rejected]` batch; the caller disposes them (or runs inside tf.tidy). */
export function batchTensors(b: PairBatch): { ids: tf.Tensor2D; attn: tf.Tensor2D; loss: tf.Tensor2D } {
  return {
    ids: tf.tensor2d(b.inputIds, b.shape, 'int32'),
    attn: tf.tensor2d(b.attentionMask, b.shape, 'float32'),
    loss: tf.tensor2d(b.lossMask, b.shape, 'float32'),
  };
}

/** [2P] summed completion log-probs of a collated batch: rows 0..P-1 chosen, P..2P-1 rejected. Policy and reference alike. */
export function batchSequenceLogprobs(cfg: LlamaConfig, w: Weights, b: PairBatch,
  opts: { lora?: Lora | null; training?: boolean; dropoutRng?: Rng; gradientCheckpointing?: boolean } = {}): tf.Tensor1D {
  return tf.tidy(() => {
    const { ids, attn, loss } = batchTensors(b);
    return sequenceLogprobs(cfg, w, ids, attn, loss, opts);
  });
}

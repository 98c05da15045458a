// Summed completion log-probs when the head is split by rows (model/row-blocks.ts): no [M, V] logits tensor is built.
// log p = z[label] - lse with lse = log sum_b exp(lse_b) over the blocks' own logsumexps (HF causal-LM shift), and the
// label's logit gathered from its block. Same contract as kernels/logprob.ts' completionStats: chunks of positions, a
// custom gradient to the hidden states only (the blocks are frozen), the forward saving one lse per position. Chunks
// hold at most H rows, so each block's logits are no larger than the block (which fits the device's binding limit).
import * as tf from '@tensorflow/tfjs';
import type { CompletionStats } from '../../kernels/logprob.js';
import { blockIndex } from './row-blocks.js';

interface Chunk {
  h: tf.Tensor2D; // [M, H], M = B*c, predicts tokens t0+1 .. t0+c
  labels: tf.Tensor1D; // [M] int32
  mask: tf.Tensor2D; // [B, c]
  c: number;
}

/** Rows t0 .. t0+c-1 of hidden with the labels and mask of the tokens they predict. Call inside a tidy. */
function chunkAt(hidden: tf.Tensor3D, ids: tf.Tensor2D, lossMask: tf.Tensor2D, t0: number, c: number): Chunk {
  const [B, , H] = hidden.shape;
  const h = tf.reshape(tf.slice(hidden, [0, t0, 0], [B, c, H]), [B * c, H]) as tf.Tensor2D; // [M, H]
  const int = ids.dtype === 'int32' ? ids : tf.cast(ids, 'int32');
  const labels = tf.reshape(tf.slice(int, [0, t0 + 1], [B, c]), [B * c]) as tf.Tensor1D; // [M]
  const mask = tf.cast(tf.slice(lossMask, [0, t0 + 1], [B, c]), 'float32') as tf.Tensor2D; // [B, c]
  return { h, labels, mask, c };
}

/** Per row of one chunk: lse over all blocks, z[label], and with `stats` the sum of z and the argmax (lowest id on ties). */
function chunkPass(k: Chunk, blocks: tf.Tensor2D[], stats: boolean): { lse: tf.Tensor1D; picked: tf.Tensor1D; sumZ?: tf.Tensor1D; best?: tf.Tensor1D } {
  const M = k.h.shape[0];
  let r0 = 0;
  // Each block's own tidy frees its [M, n] logits before the next block's exist.
  const per = blocks.map((b) => {
    const n = b.shape[0];
    const from = r0;
    r0 += n;
    return tf.tidy(() => {
      const z = tf.matMul(k.h, b, false, true); // [M, n]
      const { local, inside } = blockIndex(k.labels, from, n);
      const flat = tf.add(tf.mul(tf.range(0, M, 1, 'int32'), tf.fill([], n, 'int32')), local); // [M] into the flat [M*n]
      const out: tf.Tensor1D[] = [tf.logSumExp(z, -1), tf.mul(tf.gather(tf.reshape(z, [-1]), flat), inside)] as tf.Tensor1D[];
      if (stats) out.push(tf.sum(z, -1) as tf.Tensor1D, tf.max(z, -1) as tf.Tensor1D, tf.add(tf.argMax(z, -1), tf.fill([], from, 'int32')) as tf.Tensor1D);
      return out; // lse_b, z[label] (0 outside), and sum z, max z, global argmax
    });
  });
  const lse = tf.logSumExp(tf.stack(per.map((p) => p[0]), 1), 1) as tf.Tensor1D; // [M] log sum_b exp(lse_b)
  const picked = tf.addN(per.map((p) => p[1])) as tf.Tensor1D; // [M]
  if (!stats) return { lse, picked };
  let [bestVal, bestIdx] = [per[0][3], per[0][4]];
  for (const p of per.slice(1)) {
    // Strictly greater: on a tie the earlier block (the lower id) keeps it, as one argMax over V would.
    bestIdx = tf.where(tf.greater(p[3], bestVal), p[4], bestIdx) as tf.Tensor1D;
    bestVal = tf.maximum(p[3], bestVal) as tf.Tensor1D;
  }
  return { lse, picked, sumZ: tf.addN(per.map((p) => p[2])) as tf.Tensor1D, best: bestIdx };
}

/** dHidden of one chunk: s * (W[label] - sum_b softmax_b(z) W_b), softmax_b = exp(z_b - lse) over the whole vocab. -> [B, c, H] */
function chunkBackward(k: Chunk, blocks: tf.Tensor2D[], lse: tf.Tensor1D, dy: tf.Tensor1D, B: number): tf.Tensor3D {
  const H = blocks[0].shape[1];
  const lseCol = tf.reshape(lse, [-1, 1]); // [M, 1]
  let pW: tf.Tensor | null = null; // softmax(z) W, [M, H]
  let wLabel: tf.Tensor | null = null; // W[label], [M, H]
  let r0 = 0;
  for (const b of blocks) {
    const n = b.shape[0];
    const part = tf.tidy(() => tf.matMul(tf.exp(tf.sub(tf.matMul(k.h, b, false, true), lseCol)), b)); // [M, H]
    const { local, inside } = blockIndex(k.labels, r0, n);
    const rows = tf.mul(tf.gather(b, local), tf.reshape(inside, [-1, 1])); // [M, H]
    pW = pW ? tf.add(pW, part) : part;
    wLabel = wLabel ? tf.add(wLabel, rows) : rows;
    r0 += n;
  }
  const scale = tf.reshape(tf.mul(k.mask, tf.reshape(dy, [B, 1])), [-1, 1]); // [M, 1]
  return tf.reshape(tf.mul(tf.sub(wLabel as tf.Tensor, pW as tf.Tensor), scale), [B, k.c, H]) as tf.Tensor3D;
}

/** The customGrad op: value [1, B] (or [3, B] with stats); only row 0 (the log-probs) carries a gradient, to hidden. */
function blockOp(hidden: tf.Tensor3D, blocks: tf.Tensor2D[], inputIds: tf.Tensor2D, lossMask: tf.Tensor2D, chunk: number, stats: boolean): tf.Tensor2D {
  if (!Number.isInteger(chunk) || chunk < 1) throw new RangeError(`logprob chunk: ${chunk} (expected a positive integer)`);
  const [B, T, H] = hidden.shape;
  const V = blocks.reduce((n, b) => n + b.shape[0], 0);
  // A block [n, H] fits the limit; with B*c <= H rows a chunk's [B*c, n] logits are no larger, so they fit too.
  chunk = Math.max(1, Math.min(chunk, Math.floor(H / B)));
  const starts: number[] = [];
  for (let t0 = 0; t0 < T - 1; t0 += chunk) starts.push(t0);
  const size = (t0: number) => Math.min(chunk, T - 1 - t0);
  const op = tf.customGrad((...args: unknown[]) => {
    const [hid, ids, mask] = args as [tf.Tensor3D, tf.Tensor2D, tf.Tensor2D];
    const save = args[3] as tf.GradSaveFunc;
    let value = tf.fill([stats ? 3 : 1, B], 0) as tf.Tensor2D;
    const lses: tf.Tensor1D[] = [];
    for (const t0 of starts) {
      const [next, lse] = tf.tidy(() => {
        const k = chunkAt(hid, ids, mask, t0, size(t0));
        const p = chunkPass(k, blocks, stats);
        const masked = (x: tf.Tensor) => tf.sum(tf.mul(tf.reshape(x, [B, k.c]), k.mask), 1); // [B]
        const lp = masked(tf.sub(p.picked, p.lse));
        const rows = stats
          ? tf.stack([lp, masked(tf.div(p.sumZ as tf.Tensor, V)), masked(tf.cast(tf.equal(p.best as tf.Tensor, k.labels), 'float32'))])
          : tf.reshape(lp, [1, B]);
        return [tf.add(value, rows) as tf.Tensor2D, p.lse];
      });
      value.dispose();
      value = next;
      lses.push(lse);
    }
    save([hid, ids, mask, ...lses]);
    tf.dispose(lses); // save() holds its own references
    const gradFunc = (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor[] => {
      const [sh, si, sm] = saved as [tf.Tensor3D, tf.Tensor2D, tf.Tensor2D];
      const dLogp = tf.reshape(tf.slice(dy, [0, 0], [1, B]), [B]) as tf.Tensor1D;
      const parts = starts.map((t0, i) => tf.tidy(() => chunkBackward(chunkAt(sh, si, sm, t0, size(t0)), blocks, saved[3 + i] as tf.Tensor1D, dLogp, B)));
      parts.push(tf.fill([B, 1, H], 0) as tf.Tensor3D); // position T-1 predicts nothing
      const dh = tf.concat(parts, 1); // [B, T, H]
      tf.dispose([...parts, dLogp]);
      // ids and mask are data, never on a path from the variables: tfjs never reads their gradient.
      return [dh, tf.scalar(0), tf.scalar(0)];
    };
    return { value, gradFunc };
  });
  return op(hidden, inputIds, lossMask) as tf.Tensor2D;
}

/**
 * Per-row summed completion log-probs with the head as row blocks. hidden [B, T, H], blocks [n_b, H] (rows in order),
 * inputIds [B, T], lossMask [B, T] (column 0 ignored) -> [B]. The gradient reaches hidden only.
 */
export function blockCompletionLogprobs(hidden: tf.Tensor3D, blocks: tf.Tensor2D[], inputIds: tf.Tensor2D, lossMask: tf.Tensor2D, chunk: number): tf.Tensor1D {
  return tf.tidy(() => {
    if (hidden.shape[1] < 2) return tf.zeros([hidden.shape[0]]) as tf.Tensor1D;
    return tf.reshape(blockOp(hidden, blocks, inputIds, lossMask, chunk, false), [-1]) as tf.Tensor1D;
  });
}

/** blockCompletionLogprobs plus the metric sums of CompletionStats (mean logit, argmax hits), without gradient on those. */
export function blockCompletionStats(hidden: tf.Tensor3D, blocks: tf.Tensor2D[], inputIds: tf.Tensor2D, lossMask: tf.Tensor2D, chunk: number): CompletionStats {
  const B = hidden.shape[0];
  if (hidden.shape[1] < 2) return { logps: tf.zeros([B]), logitSums: tf.zeros([B]), correct: tf.zeros([B]) };
  const all = blockOp(hidden, blocks, inputIds, lossMask, chunk, true); // [3, B]
  const [logps, logitSums, correct] = tf.unstack(all) as tf.Tensor1D[];
  all.dispose();
  return { logps, logitSums, correct }; // the op's gradient ignores rows 1 and 2
}

// Summed completion log-probs from final hidden states, chunked over positions, with a memory-bounded gradient.
// log p(token_t | <t) = z_{t-1}[token_t] - logsumexp(z_{t-1}), z = h W^T (HF causal-LM shift); gradient to h only.
//
// Why a custom gradient: under a tape, every chunk's [B, c, V] logits (and their softmax, one-hot, ...) stay saved
// until the backward pass ends, so chunking the forward alone still holds the full [B, T, V] during training. Here the
// forward saves only the inputs; the backward recomputes one chunk's logits at a time:
//   d out_b / d z_{b,t} = dy_b * mask_{b,t+1} * (onehot(token_{t+1}) - softmax(z_{b,t})),  dh_{b,t} = dz_{b,t} W.
// The head weight gets no gradient (LoRA never adapts lm_head or the tied embedding): pass only frozen heads.
import * as tf from '@tensorflow/tfjs';

interface Chunk {
  h: tf.Tensor2D; // [B*c, H] predicts tokens t0+1 .. t0+c
  labels: tf.Tensor1D; // [B*c] int32
  mask: tf.Tensor2D; // [B, c]
  c: number;
}

/** Rows t0 .. t0+c-1 of hidden with the labels and mask of the tokens they predict. Call inside a tidy. */
function chunkAt(hidden: tf.Tensor3D, inputIds: tf.Tensor2D, lossMask: tf.Tensor2D, t0: number, c: number): Chunk {
  const [B, , H] = hidden.shape;
  const h = tf.reshape(tf.slice(hidden, [0, t0, 0], [B, c, H]), [B * c, H]) as tf.Tensor2D; // [B*c, H]
  const ids = inputIds.dtype === 'int32' ? inputIds : tf.cast(inputIds, 'int32');
  const labels = tf.reshape(tf.slice(ids, [0, t0 + 1], [B, c]), [B * c]) as tf.Tensor1D; // [B*c]
  const mask = tf.cast(tf.slice(lossMask, [0, t0 + 1], [B, c]), 'float32') as tf.Tensor2D; // [B, c]
  return { h, labels, mask, c };
}

/** Chunk starts over the T - 1 scoring positions. */
function chunkStarts(T: number, chunk: number): number[] {
  if (!Number.isInteger(chunk) || chunk < 1) throw new RangeError(`logprob chunk: ${chunk} (expected a positive integer)`);
  const out: number[] = [];
  for (let t0 = 0; t0 < T - 1; t0 += chunk) out.push(t0);
  return out;
}

/**
 * The reference: plain tfjs ops, chunked in the forward only. Under a tape every chunk's [B, c, V] tensors stay
 * saved for the backward. hidden [B, T, H], headW [V, H], inputIds [B, T], lossMask [B, T] (column 0 ignored) -> [B].
 */
export function completionLogprobsReference(hidden: tf.Tensor3D, headW: tf.Tensor2D, inputIds: tf.Tensor2D, lossMask: tf.Tensor2D, chunk: number): tf.Tensor1D {
  const [B, T] = hidden.shape;
  const V = headW.shape[0];
  const parts = chunkStarts(T, chunk).map((t0) => tf.tidy(() => {
    const { h, labels, mask, c } = chunkAt(hidden, inputIds, lossMask, t0, Math.min(chunk, T - 1 - t0));
    const logits = tf.matMul(h, headW, false, true); // [B*c, V]
    const lse = tf.logSumExp(logits, -1); // [B*c]
    // oneHot, not gather: gather's gradient needs UnsortedSegmentSum, which the wasm backend lacks.
    const picked = tf.sum(tf.mul(logits, tf.oneHot(labels, V)), -1); // [B*c]
    return tf.sum(tf.mul(tf.reshape(tf.sub(picked, lse), [B, c]), mask), 1) as tf.Tensor1D; // [B]
  }));
  if (parts.length === 0) return tf.zeros([B]);
  if (parts.length === 1) return parts[0];
  const total = tf.addN(parts) as tf.Tensor1D;
  for (const p of parts) p.dispose();
  return total;
}

/**
 * exp(z - max z) of one chunk's logits and its row max, freeing each [B*c, V] step as soon as the next exists, so
 * at most two are live. Runs without a tape (customGrad forward or backward). -> e, z - max z: [B*c, V]
 */
function shiftedExp(h: tf.Tensor2D, headW: tf.Tensor2D): { e: tf.Tensor2D; shifted: tf.Tensor2D } {
  const logits = tf.matMul(h, headW, false, true); // [B*c, V]
  const mx = tf.max(logits, -1, true) as tf.Tensor2D; // [B*c, 1]
  const shifted = tf.sub(logits, mx) as tf.Tensor2D; // [B*c, V]
  logits.dispose();
  return { e: tf.exp(shifted) as tf.Tensor2D, shifted };
}

/** Forward of one chunk: sum over its positions of mask * (z[label] - lse). -> [B] */
function chunkForward(k: Chunk, headW: tf.Tensor2D, B: number): tf.Tensor1D {
  const V = headW.shape[0];
  const { e, shifted } = shiftedExp(k.h, headW);
  const logZ = tf.log(tf.sum(e, -1)); // [B*c] lse - max
  e.dispose();
  const rows = tf.mul(tf.range(0, B * k.c, 1, 'int32'), tf.scalar(V, 'int32')); // [B*c] row offsets into the flat logits
  const picked = tf.gather(tf.reshape(shifted, [-1]), tf.add(rows, k.labels)); // [B*c] z[label] - max
  shifted.dispose();
  return tf.sum(tf.mul(tf.reshape(tf.sub(picked, logZ), [B, k.c]), k.mask), 1) as tf.Tensor1D; // [B]
}

/**
 * dHidden of one chunk: s * (W[label] - softmax(z) W) with s = dy * mask, which is (s * (onehot - softmax(z))) W
 * without building the one-hot or the normalized softmax: softmax(z) W = (e W) / sum(e). -> [B, c, H]
 */
function chunkBackward(k: Chunk, headW: tf.Tensor2D, dy: tf.Tensor1D, B: number): tf.Tensor3D {
  const H = headW.shape[1];
  const { e, shifted } = shiftedExp(k.h, headW);
  shifted.dispose();
  const sumE = tf.sum(e, -1, true); // [B*c, 1]
  const eW = tf.matMul(e, headW); // [B*c, H]
  e.dispose();
  const scale = tf.reshape(tf.mul(k.mask, tf.reshape(dy, [B, 1])), [B * k.c, 1]); // [B*c, 1]
  const dh = tf.mul(tf.sub(tf.gather(headW, k.labels), tf.div(eW, sumE)), scale); // [B*c, H]
  return tf.reshape(dh, [B, k.c, H]) as tf.Tensor3D; // [B, c, H]
}

/**
 * Memory-bounded version of completionLogprobsReference (same arguments, same values). Under a tape it saves only
 * hidden, ids and mask; the backward holds one chunk's [B, c, V] at a time and returns dHidden [B, T, H].
 */
export function completionLogprobs(hidden: tf.Tensor3D, headW: tf.Tensor2D, inputIds: tf.Tensor2D, lossMask: tf.Tensor2D, chunk: number): tf.Tensor1D {
  const [B, T, H] = hidden.shape;
  const starts = chunkStarts(T, chunk);
  const size = (t0: number) => Math.min(chunk, T - 1 - t0);
  const op = tf.customGrad((...args: unknown[]) => {
    const [hid, ids, mask] = args as [tf.Tensor3D, tf.Tensor2D, tf.Tensor2D];
    const save = args[3] as tf.GradSaveFunc;
    save([hid, ids, mask]);
    let value: tf.Tensor1D = tf.zeros([B]);
    for (const t0 of starts) {
      const next = tf.tidy(() => tf.add(value, chunkForward(chunkAt(hid, ids, mask, t0, size(t0)), headW, B)) as tf.Tensor1D);
      value.dispose();
      value = next;
    }
    const gradFunc = (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor[] => {
      const [sh, si, sm] = saved as [tf.Tensor3D, tf.Tensor2D, tf.Tensor2D];
      // Each chunk's tidy frees its [B*c, V] tensors before the next chunk starts.
      const parts = starts.map((t0) => tf.tidy(() => chunkBackward(chunkAt(sh, si, sm, t0, size(t0)), headW, dy as tf.Tensor1D, B)));
      parts.push(tf.zeros([B, 1, H])); // position T-1 predicts nothing
      const dh = tf.concat(parts, 1); // [B, T, H]
      for (const p of parts) p.dispose();
      // ids and mask are data, never on a path from the variables: tfjs never reads their gradient.
      return [dh, tf.scalar(0), tf.scalar(0)];
    };
    return { value, gradFunc };
  });
  return op(hidden, inputIds, lossMask) as tf.Tensor1D;
}

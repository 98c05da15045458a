// Summed completion log-probs from final hidden states, chunked over positions, with a memory-bounded gradient.
// log p(token_t | <t) = z_{t-1}[token_t] - logsumexp(z_{t-1}), z = h W^T (HF causal-LM shift); gradient to h only.
//
// Why a custom gradient: under a tape, every chunk's [B, c, V] logits (and their softmax, one-hot, ...) stay saved
// until the backward pass ends, so chunking the forward alone still holds the full [B, T, V] during training. Here the
// forward saves only the inputs; the backward recomputes one chunk's logits at a time:
//   d out_b / d z_{b,t} = dy_b * mask_{b,t+1} * (onehot(token_{t+1}) - softmax(z_{b,t})),  dh_{b,t} = dz_{b,t} W.
// The head weight gets no gradient (LoRA never adapts lm_head or the tied embedding): pass only frozen heads.
// The *Stats variants also return, per row and without gradient, the sum over completion tokens of the mean logit
// (TRL's logits/chosen numerator) and the count of tokens whose argmax is the label (mean_token_accuracy's), taken
// from the same chunk logits, so no [B, T, V] tensor is ever built for the metrics.
// Where the addon's kernels are registered (logprobOps), each chunk's log-softmax + gather (+ the metric sums) and its
// gradient s * (onehot - softmax) are one native pass over the logits each (native/blas/fused.cc).
import * as tf from '@tensorflow/tfjs';
import { fusedActive, runFused, type FusedAddon, type NativeOp } from './native.js';

/** Per row [B]: summed completion log-probs; sum over completion tokens of mean_v z; completion tokens predicted by argmax. */
export interface CompletionStats {
  logps: tf.Tensor1D;
  logitSums: tf.Tensor1D;
  correct: tf.Tensor1D;
}

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
  const s = completionStatsReference(hidden, headW, inputIds, lossMask, chunk);
  tf.dispose([s.logitSums, s.correct]);
  return s.logps;
}

/** completionLogprobsReference plus the two metric sums of CompletionStats (plain ops; the stats carry no gradient). */
export function completionStatsReference(hidden: tf.Tensor3D, headW: tf.Tensor2D, inputIds: tf.Tensor2D, lossMask: tf.Tensor2D, chunk: number): CompletionStats {
  const [B, T] = hidden.shape;
  const V = headW.shape[0];
  const parts = chunkStarts(T, chunk).map((t0) => tf.tidy(() => {
    const { h, labels, mask, c } = chunkAt(hidden, inputIds, lossMask, t0, Math.min(chunk, T - 1 - t0));
    const logits = tf.matMul(h, headW, false, true); // [B*c, V]
    const lse = tf.logSumExp(logits, -1); // [B*c]
    // oneHot, not gather: gather's gradient needs UnsortedSegmentSum, which the wasm backend lacks.
    const picked = tf.sum(tf.mul(logits, tf.oneHot(labels, V)), -1); // [B*c]
    const rows = (x: tf.Tensor) => tf.sum(tf.mul(tf.reshape(x, [B, c]), mask), 1) as tf.Tensor1D; // [B]
    const hit = tf.cast(tf.equal(tf.argMax(logits, -1), labels), 'float32'); // [B*c]
    return [rows(tf.sub(picked, lse)), rows(tf.mean(logits, -1)), rows(hit)];
  }));
  if (parts.length === 0) return { logps: tf.zeros([B]), logitSums: tf.zeros([B]), correct: tf.zeros([B]) };
  const sum = (k: number): tf.Tensor1D => (parts.length === 1 ? parts[0][k] : (tf.addN(parts.map((p) => p[k])) as tf.Tensor1D));
  const out = { logps: sum(0), logitSums: tf.tidy(() => detachTensor(sum(1))), correct: tf.tidy(() => detachTensor(sum(2))) };
  if (parts.length > 1) for (const p of parts) tf.dispose(p);
  return out;
}

/** Identity with a zero gradient: the metric sums must never carry one. */
const detachTensor = (x: tf.Tensor1D): tf.Tensor1D => tf.customGrad((t) => ({ value: (t as tf.Tensor).clone(), gradFunc: (dy) => tf.zerosLike(dy) }))(x) as tf.Tensor1D;

/**
 * exp(z - max z) of one chunk's logits and its row max, freeing each [B*c, V] step as soon as the next exists, so
 * at most two are live. Runs without a tape (customGrad forward or backward). -> e, z - max z: [B*c, V]
 */
function shiftedExp(h: tf.Tensor2D, headW: tf.Tensor2D, keepMax = false): { e: tf.Tensor2D; shifted: tf.Tensor2D; mx?: tf.Tensor2D } {
  const logits = tf.matMul(h, headW, false, true); // [B*c, V]
  const mx = tf.max(logits, -1, true) as tf.Tensor2D; // [B*c, 1]
  const shifted = tf.sub(logits, mx) as tf.Tensor2D; // [B*c, V]
  logits.dispose();
  return { e: tf.exp(shifted) as tf.Tensor2D, shifted, ...(keepMax ? { mx } : {}) };
}

/**
 * Forward of one chunk: sum over its positions of mask * (z[label] - lse) -> [1, B]; with `stats` also the masked sums
 * of mean_v z and of [argmax z == label] -> [3, B]. mean z = mean(z - max) + max; the argmax is that of z - max.
 */
function chunkForward(k: Chunk, headW: tf.Tensor2D, B: number, stats: boolean, kept?: tf.Tensor[]): tf.Tensor2D {
  if (fusedActive('DpoLogSoftmaxPick')) return chunkForwardFused(k, headW, B, stats, kept);
  const V = headW.shape[0];
  const { e, shifted, mx } = shiftedExp(k.h, headW, stats);
  const logZ = tf.log(tf.sum(e, -1)); // [B*c] lse - max
  e.dispose();
  const rows = tf.mul(tf.range(0, B * k.c, 1, 'int32'), tf.scalar(V, 'int32')); // [B*c] row offsets into the flat logits
  const picked = tf.gather(tf.reshape(shifted, [-1]), tf.add(rows, k.labels)); // [B*c] z[label] - max
  const masked = (x: tf.Tensor) => tf.sum(tf.mul(tf.reshape(x, [B, k.c]), k.mask), 1); // [B]
  const lp = masked(tf.sub(picked, logZ));
  if (!stats) {
    shifted.dispose();
    return tf.reshape(lp, [1, B]) as tf.Tensor2D;
  }
  const meanZ = tf.add(tf.mean(shifted, -1), tf.reshape(mx!, [-1])); // [B*c]
  const hit = tf.cast(tf.equal(tf.argMax(shifted, -1), k.labels), 'float32'); // [B*c]
  shifted.dispose();
  return tf.stack([lp, masked(meanZ), masked(hit)]) as tf.Tensor2D; // [3, B]
}

/**
 * dHidden of one chunk: s * (W[label] - softmax(z) W) with s = dy * mask, which is (s * (onehot - softmax(z))) W
 * without building the one-hot or the normalized softmax: softmax(z) W = (e W) / sum(e). -> [B, c, H]
 */
function chunkBackward(k: Chunk, headW: tf.Tensor2D, dy: tf.Tensor1D, B: number): tf.Tensor3D {
  if (fusedActive('DpoLogSoftmaxPickGrad')) return chunkBackwardFused(k, headW, dy, B);
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
 * chunkForward with the native pass: the chunk's logits, then lse, z[label], mean z and argmax hits per row in one.
 * With `keep`, the pass also writes onehot - softmax(z) [B*c, V] into `kept` for the backward (no recompute).
 */
function chunkForwardFused(k: Chunk, headW: tf.Tensor2D, B: number, stats: boolean, kept?: tf.Tensor[]): tf.Tensor2D {
  const logits = tf.matMul(k.h, headW, false, true); // [B*c, V]
  const [lse, picked, meanZ, hit, g] = runFused('DpoLogSoftmaxPick', { logits, labels: k.labels }, { keep: kept !== undefined }); // [B*c] x4
  logits.dispose();
  if (kept && g) kept.push(tf.keep(g));
  const masked = (x: tf.Tensor) => tf.sum(tf.mul(tf.reshape(x, [B, k.c]), k.mask), 1); // [B]
  const lp = masked(tf.sub(picked, lse));
  if (!stats) return tf.reshape(lp, [1, B]) as tf.Tensor2D;
  return tf.stack([lp, masked(meanZ), masked(hit)]) as tf.Tensor2D; // [3, B]
}

/** chunkBackward with the native pass: dz = s * (onehot - softmax(z)) in one pass over the logits, then dz W. */
function chunkBackwardFused(k: Chunk, headW: tf.Tensor2D, dy: tf.Tensor1D, B: number): tf.Tensor3D {
  const H = headW.shape[1];
  const logits = tf.matMul(k.h, headW, false, true); // [B*c, V]
  const scale = tf.reshape(tf.mul(k.mask, tf.reshape(dy, [B, 1])), [B * k.c]); // [B*c]
  const [dz] = runFused('DpoLogSoftmaxPickGrad', { logits, labels: k.labels, scale }); // [B*c, V]
  logits.dispose();
  const dh = tf.matMul(dz, headW); // [B*c, H]
  dz.dispose();
  return tf.reshape(dh, [B, k.c, H]) as tf.Tensor3D; // [B, c, H]
}

/** chunkBackward from the kept onehot - softmax(z) of the forward: dz = s * kept, dh = dz W. -> [B, c, H] */
function chunkBackwardKept(k: Chunk, kept: tf.Tensor2D, headW: tf.Tensor2D, dy: tf.Tensor1D, B: number): tf.Tensor3D {
  const H = headW.shape[1];
  const scale = tf.reshape(tf.mul(k.mask, tf.reshape(dy, [B, 1])), [B * k.c]); // [B*c]
  const [dz] = runFused('DpoScaleRows', { x: kept, scale }); // [B*c, V]
  return tf.reshape(tf.matMul(dz, headW), [B, k.c, H]) as tf.Tensor3D; // [B, c, H]
}

/** The most bytes of kept [B*c, V] chunks (all chunks together) before the backward recomputes the logits instead. */
export const KEEP_BYTES = 64 * 2 ** 20;
let keepBytes = KEEP_BYTES;

/** Sets the kept-chunk budget (tests force the recompute path with 0); returns the previous one. */
export function setLogprobKeepBytes(bytes: number): number {
  const prev = keepBytes;
  keepBytes = bytes;
  return prev;
}

/**
 * Memory-bounded version of completionLogprobsReference (same arguments, same values). Under a tape it saves only
 * hidden, ids and mask; the backward holds one chunk's [B, c, V] at a time and returns dHidden [B, T, H].
 */
export function completionLogprobs(hidden: tf.Tensor3D, headW: tf.Tensor2D, inputIds: tf.Tensor2D, lossMask: tf.Tensor2D, chunk: number): tf.Tensor1D {
  return tf.tidy(() => tf.reshape(chunkedOp(hidden, headW, inputIds, lossMask, chunk, false), [-1]) as tf.Tensor1D);
}

/** completionLogprobs plus the metric sums of CompletionStats, from the same chunk logits (one head matmul per chunk). */
export function completionStats(hidden: tf.Tensor3D, headW: tf.Tensor2D, inputIds: tf.Tensor2D, lossMask: tf.Tensor2D, chunk: number): CompletionStats {
  const all = chunkedOp(hidden, headW, inputIds, lossMask, chunk, true); // [3, B]
  const [logps, logitSums, correct] = tf.unstack(all) as tf.Tensor1D[];
  all.dispose();
  return { logps, logitSums, correct };
}

/** The customGrad op: value [1, B] (or [3, B] with stats); only row 0 (the log-probs) carries a gradient. */
function chunkedOp(hidden: tf.Tensor3D, headW: tf.Tensor2D, inputIds: tf.Tensor2D, lossMask: tf.Tensor2D, chunk: number, stats: boolean): tf.Tensor2D {
  const [B, T, H] = hidden.shape;
  const rowsOut = stats ? 3 : 1;
  const starts = chunkStarts(T, chunk);
  const size = (t0: number) => Math.min(chunk, T - 1 - t0);
  // Under a tape, with the native pass and all chunks' [B*c, V] within KEEP_BYTES, the forward keeps each chunk's
  // onehot - softmax for the backward instead of recomputing the logits there (one head matmul less per chunk).
  const V = headW.shape[0];
  const taped = (tf.engine().state as unknown as { gradientDepth: number }).gradientDepth > 0;
  const keep = taped && fusedActive('DpoScaleRows') && B * (T - 1) * V * 4 <= keepBytes;
  const op = tf.customGrad((...args: unknown[]) => {
    const [hid, ids, mask] = args as [tf.Tensor3D, tf.Tensor2D, tf.Tensor2D];
    const save = args[3] as tf.GradSaveFunc;
    const kept: tf.Tensor[] | undefined = keep ? [] : undefined;
    let value = tf.fill([rowsOut, B], 0) as tf.Tensor2D; // fill, not zeros: a kernel, no host array uploaded
    for (const t0 of starts) {
      const next = tf.tidy(() => tf.add(value, chunkForward(chunkAt(hid, ids, mask, t0, size(t0)), headW, B, stats, kept)) as tf.Tensor2D);
      value.dispose();
      value = next;
    }
    save([hid, ids, mask, ...(kept ?? [])]);
    if (kept) tf.dispose(kept); // save() holds its own references
    const gradFunc = (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor[] => {
      const [sh, si, sm] = saved as [tf.Tensor3D, tf.Tensor2D, tf.Tensor2D];
      const dLogp = tf.reshape(tf.slice(dy, [0, 0], [1, B]), [B]) as tf.Tensor1D; // the stats rows get no gradient
      // Each chunk's tidy frees its [B*c, V] tensors before the next chunk starts.
      const parts = starts.map((t0, i) => tf.tidy(() => (saved.length > 3
        ? chunkBackwardKept(chunkAt(sh, si, sm, t0, size(t0)), saved[3 + i] as tf.Tensor2D, headW, dLogp, B)
        : chunkBackward(chunkAt(sh, si, sm, t0, size(t0)), headW, dLogp, B))));
      parts.push(tf.fill([B, 1, H], 0) as tf.Tensor3D); // position T-1 predicts nothing
      const dh = tf.concat(parts, 1); // [B, T, H]
      for (const p of parts) p.dispose();
      dLogp.dispose();
      // ids and mask are data, never on a path from the variables: tfjs never reads their gradient.
      return [dh, tf.scalar(0), tf.scalar(0)];
    };
    return { value, gradFunc };
  });
  return op(hidden, inputIds, lossMask) as tf.Tensor2D;
}

const rowsOf = (t: tf.TensorInfo) => t.shape[0];

/** The addon kernels of the fused chunk passes (registered by backend/kernels.ts with the other fused ops). */
export const logprobOps: NativeOp[] = [
  {
    kernelName: 'DpoLogSoftmaxPick', inputs: ['logits', 'labels'],
    outShapes: ([z, l], attrs) => {
      if (z.shape.length !== 2 || l.dtype !== 'int32' || String(l.shape) !== String([z.shape[0]])) {
        throw new Error(`DpoLogSoftmaxPick: logits [${z.shape}] with labels [${l.shape}] ${l.dtype} (expected [R, V] and [R] int32)`);
      }
      const R = z.shape[0];
      return attrs.keep ? [[R], [R], [R], [R], z.shape] : [[R], [R], [R], [R]];
    },
    run: (a: FusedAddon, [z, l], [lse, picked, meanZ, hit, g], [zi]) =>
      a.logSoftmaxPick(z as Float32Array, l as Int32Array, lse, picked, meanZ, hit, g ?? new Float32Array(0), rowsOf(zi), zi.shape[1]),
  },
  {
    kernelName: 'DpoScaleRows', inputs: ['x', 'scale'],
    outShapes: ([x]) => [x.shape],
    run: (a: FusedAddon, [x, sc], [y], [xi]) => a.scaleRows(x as Float32Array, sc as Float32Array, y, rowsOf(xi), xi.shape[1]),
  },
  {
    kernelName: 'DpoLogSoftmaxPickGrad', inputs: ['logits', 'labels', 'scale'],
    outShapes: ([z]) => [z.shape],
    run: (a: FusedAddon, [z, l, sc], [g], [zi]) => a.logSoftmaxPickGrad(z as Float32Array, l as Int32Array, sc as Float32Array, g, rowsOf(zi), zi.shape[1]),
  },
];

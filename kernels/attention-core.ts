// The attention core of a Llama layer, between the q/k/v projections and o_proj: RoPE on q and k, grouped-query scores
// q k^T / sqrt(D), the causal + padding bias, the softmax, probs x v and the merge of heads (HF eager attention with
// repeat_kv). The reference is the plain ops chain; the fused version, for a call without a KV cache, is one addon
// call each way (native/blas/attention.cc) that takes the key mask instead of a built bias and whose backward
// recomputes the probabilities. Leaves out: the KV cache in the fused version (generate runs the op chain).
import * as tf from '@tensorflow/tfjs';
import { fusedActive, runFused, type FusedAddon, type NativeOp } from './native.js';
import { ropeHeadsFirst, ropeHeadsFirstReference } from './rope.js';
import { maskedSoftmax, maskedSoftmaxReference } from './attention-softmax.js';

/** Added to the scores of masked keys. Finite, so a row with every key masked (a left pad) gives no NaN. */
export const MASKED = -1e9;

/** The head layout: N query heads, K kv heads (N a multiple of K), head_dim D. */
export interface AttentionHeads {
  numHeads: number;
  numKvHeads: number;
  headDim: number;
}

/**
 * Additive attention bias [B, 1, T, S]: 0 where query slot past+i may see key slot j (j <= past+i and key j is a
 * token), MASKED elsewhere. A padded query row still sees earlier tokens (or only masked keys): never NaN.
 */
export function attentionBias(keyMask: tf.Tensor2D, past: number, T: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [B, S] = keyMask.shape;
    const qSlot = tf.reshape(tf.range(past, past + T, 1, 'int32'), [T, 1]); // [T, 1]
    const kSlot = tf.reshape(tf.range(0, S, 1, 'int32'), [1, S]); // [1, S]
    const causal = tf.cast(tf.lessEqual(kSlot, qSlot), 'float32'); // [T, S]
    const allowed = tf.mul(tf.reshape(causal, [1, T, S]), tf.reshape(keyMask, [B, 1, S])); // [B, T, S]
    return tf.reshape(tf.mul(tf.sub(1, allowed), MASKED), [B, 1, T, S]) as tf.Tensor4D; // [B, 1, T, S]
  });
}

/** RoPE + heads-first transpose, and the masked softmax: the fused-or-reference ops, or the plain references. */
interface Parts {
  rope: typeof ropeHeadsFirst;
  softmax: typeof maskedSoftmax;
}

const DISPATCHED: Parts = { rope: ropeHeadsFirst, softmax: maskedSoftmax };
const PLAIN: Parts = { rope: ropeHeadsFirstReference, softmax: maskedSoftmaxReference };

/** Appends cached slots to this call's keys/values: [B, K, T, D] -> [B, K, S, D] (model/kvcache.ts cacheExtend). */
export type ExtendKv = (k: tf.Tensor4D, v: tf.Tensor4D) => { k: tf.Tensor4D; v: tf.Tensor4D };

/**
 * The op chain. Instead of `repeat_kv`, the G query heads that share a kv head are stacked along the row axis, so one
 * batched matmul serves them without copying keys: query head n = k*G + g reads kv head k = floor(n / G), exactly as
 * repeat_kv. q [B, T, N*D], k and v [B, T, K*D], cos/sin [B, T, D], bias [B, 1, T, S]. Returns the merged output
 * [B, T, N*D] and the keys (after RoPE) and values of all S slots.
 */
function opChain(parts: Parts, q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D, cos: tf.Tensor3D, sin: tf.Tensor3D, bias: tf.Tensor4D,
  heads: AttentionHeads, extend?: ExtendKv): { out: tf.Tensor3D; k: tf.Tensor4D; v: tf.Tensor4D } {
  const [B, T] = q.shape;
  const { numHeads: N, numKvHeads: K, headDim: D } = heads;
  const G = N / K;
  const q4 = tf.reshape(q, [B, T, N, D]) as tf.Tensor4D; // [B, T, N, D]
  const k4 = tf.reshape(k, [B, T, K, D]) as tf.Tensor4D; // [B, T, K, D]
  const v4 = tf.reshape(v, [B, T, K, D]) as tf.Tensor4D; // [B, T, K, D]
  // Query head n = k*G + g, so [B, N, T, D] is [B, K, G, T, D]: the G heads of kv head k stacked along rows.
  const qg = tf.reshape(parts.rope(q4, cos, sin), [B, K, G * T, D]); // [B, K, G*T, D]
  let kAll = parts.rope(k4, cos, sin); // [B, K, T, D]
  let vAll = tf.transpose(v4, [0, 2, 1, 3]) as tf.Tensor4D; // [B, K, T, D]
  if (extend) ({ k: kAll, v: vAll } = extend(kAll, vAll)); // [B, K, S, D]
  const S = kAll.shape[2];
  const scores = tf.reshape(tf.matMul(qg, kAll, false, true), [B, N, T, S]); // [B, N, T, S]
  const probs = parts.softmax(scores as tf.Tensor4D, bias, 1 / Math.sqrt(D)); // [B, N, T, S], float32
  const ctx = tf.matMul(tf.reshape(probs, [B, K, G * T, S]), vAll); // [B, K, G*T, D]
  const out = tf.reshape(tf.transpose(tf.reshape(ctx, [B, K, G, T, D]), [0, 3, 1, 2, 4]), [B, T, N * D]) as tf.Tensor3D; // [B, T, N*D]
  return { out, k: kAll, v: vAll };
}

/**
 * The op chain with each op fused where its kernel is registered (RoPE, masked softmax): what the model runs with a KV
 * cache, or when the fused core is off. bias is attentionBias(keyMask, past, T).
 */
export function attentionOps(q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D, cos: tf.Tensor3D, sin: tf.Tensor3D, bias: tf.Tensor4D,
  heads: AttentionHeads, extend?: ExtendKv): { out: tf.Tensor3D; k: tf.Tensor4D; v: tf.Tensor4D } {
  return opChain(DISPATCHED, q, k, v, cos, sin, bias, heads, extend);
}

/** The plain-ops reference without a cache: keyMask [B, T] (1 = token, 0 = pad) -> [B, T, N*D]. */
export function attentionCoreReference(q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D, cos: tf.Tensor3D, sin: tf.Tensor3D,
  keyMask: tf.Tensor2D, heads: AttentionHeads): tf.Tensor3D {
  return tf.tidy(() => opChain(PLAIN, q, k, v, cos, sin, attentionBias(keyMask, 0, q.shape[1]), heads).out);
}

const attrsOf = (h: AttentionHeads): tf.NamedAttrMap => ({ numHeads: h.numHeads, numKvHeads: h.numKvHeads });

/** The fused version (needs attentionCoreOps registered for the backend): same values, same gradients for q, k, v. */
export function attentionCoreFused(q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D, cos: tf.Tensor3D, sin: tf.Tensor3D,
  keyMask: tf.Tensor2D, heads: AttentionHeads): tf.Tensor3D {
  return runFused('DpoAttentionCore', { q, k, v, cos, sin, keyMask }, attrsOf(heads))[0] as tf.Tensor3D;
}

/** True when the fused core can run on the active backend. */
export function attentionCoreActive(): boolean {
  return fusedActive('DpoAttentionCore');
}

/** attentionCoreFused where its kernels are registered for the active backend, else the reference. */
export function attentionCore(q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D, cos: tf.Tensor3D, sin: tf.Tensor3D, keyMask: tf.Tensor2D,
  heads: AttentionHeads): tf.Tensor3D {
  return attentionCoreActive() ? attentionCoreFused(q, k, v, cos, sin, keyMask, heads) : attentionCoreReference(q, k, v, cos, sin, keyMask, heads);
}

// One backward kernel gives dq, dk and dv. It runs in the gradient function itself, in the backward pass's scope: tfjs
// calls each input's thunk inside its own tidy, which would free the outputs a first thunk does not return.
// cos, sin and the mask are data (positions, padding): tfjs never reads their gradient, zeros stand in.
tf.registerGradient({
  kernelName: 'DpoAttentionCore',
  inputsToSave: ['q', 'k', 'v', 'cos', 'sin', 'keyMask'],
  gradFunc: (dy, saved, attrs) => {
    const [q, k, v, cos, sin, keyMask] = saved;
    const [dq, dk, dv] = runFused('DpoAttentionCoreGrad', { dy: dy as tf.Tensor, q, k, v, cos, sin, keyMask }, attrs);
    return {
      q: () => dq, k: () => dk, v: () => dv,
      cos: () => tf.zerosLike(cos), sin: () => tf.zerosLike(sin), keyMask: () => tf.zerosLike(keyMask),
    };
  },
});

/** The addon's attention entry points (native/blas/attention.cc); an addon built before them has none. */
interface AttentionAddon {
  attentionForward(q: Float32Array, k: Float32Array, v: Float32Array, cos: Float32Array, sin: Float32Array, mask: Float32Array,
    out: Float32Array, B: number, T: number, N: number, K: number, D: number, scale: number): void;
  attentionBackward(q: Float32Array, k: Float32Array, v: Float32Array, cos: Float32Array, sin: Float32Array, mask: Float32Array,
    dOut: Float32Array, dq: Float32Array, dk: Float32Array, dv: Float32Array, B: number, T: number, N: number, K: number, D: number, scale: number): void;
}

/** True when the addon has the attention entry points (so attentionCoreOps can be registered). */
export function hasAttentionCore(addon: FusedAddon | null): boolean {
  return addon !== null && typeof (addon as unknown as Partial<AttentionAddon>).attentionForward === 'function';
}

const A = (a: FusedAddon) => a as unknown as AttentionAddon;
// The cpu backend's Cast from int32 keeps the Int32Array under a float32 dtype (a cast attention mask): copied here.
const F = (v: Float32Array | Int32Array): Float32Array => (v instanceof Float32Array ? v : Float32Array.from(v));

/** B, T, N, K, D of the operands, checked: q [B, T, N*D], k and v [B, T, K*D], cos and sin [B, T, D], mask [B, T]. */
function dims(name: string, [q, k, v, c, s, m]: tf.TensorInfo[], attrs: tf.NamedAttrMap): [number, number, number, number, number] {
  const N = attrs.numHeads as number;
  const K = attrs.numKvHeads as number;
  const [B, T, D] = c.shape;
  const ok = [q, k, v, c, s, m].every((t) => t.dtype === 'float32') && q.shape.length === 3 && c.shape.length === 3 && Number.isInteger(N / K) && D % 2 === 0
    && String(q.shape) === String([B, T, N * D]) && String(k.shape) === String([B, T, K * D]) && String(v.shape) === String(k.shape)
    && String(s.shape) === String(c.shape) && String(m.shape) === String([B, T]);
  if (!ok) {
    throw new Error(`${name}: q [${q.shape}] k [${k.shape}] v [${v.shape}] cos [${c.shape}] sin [${s.shape}] mask [${m.shape}] with ${N}/${K} heads `
      + '(expected float32 [B, T, N*D], [B, T, K*D] twice, [B, T, D] twice with D even, [B, T]; N a multiple of K)');
  }
  return [B, T, N, K, D];
}

export const attentionCoreOps: NativeOp[] = [
  {
    kernelName: 'DpoAttentionCore', inputs: ['q', 'k', 'v', 'cos', 'sin', 'keyMask'],
    outShapes: (ins, attrs) => {
      dims('DpoAttentionCore', ins, attrs);
      return [ins[0].shape];
    },
    run: (a: FusedAddon, [q, k, v, c, s, m], [out], ins, attrs) => {
      const d = dims('DpoAttentionCore', ins, attrs);
      A(a).attentionForward(F(q), F(k), F(v), F(c), F(s), F(m), out, ...d, 1 / Math.sqrt(d[4]));
    },
  },
  {
    kernelName: 'DpoAttentionCoreGrad', inputs: ['dy', 'q', 'k', 'v', 'cos', 'sin', 'keyMask'],
    outShapes: ([dy, ...ins], attrs) => {
      dims('DpoAttentionCoreGrad', ins, attrs);
      if (String(dy.shape) !== String(ins[0].shape)) throw new Error(`DpoAttentionCoreGrad: dy [${dy.shape}] (expected q's [${ins[0].shape}])`);
      return [ins[0].shape, ins[1].shape, ins[2].shape];
    },
    run: (a: FusedAddon, [dy, q, k, v, c, s, m], [dq, dk, dv], [, ...ins], attrs) => {
      const d = dims('DpoAttentionCoreGrad', ins, attrs);
      A(a).attentionBackward(F(q), F(k), F(v), F(c), F(s), F(m), F(dy), dq, dk, dv, ...d, 1 / Math.sqrt(d[4]));
    },
  },
];

// Rotary position embeddings: inverse frequencies (with Llama 3.1 per-frequency scaling), cos/sin tables, rotation.
// Rotate-half form and `rope_type: "llama3"` as HF `_compute_llama3_parameters`, in float32 op by op as HF computes it; no other rope types.
import * as tf from '@tensorflow/tfjs';
import type { RopeScaling } from './types.js';

const f32 = Math.fround;

/**
 * `inv_freq[i] = 1 / theta^(2i/d)` for i < d/2, then Llama 3.1 scaling per frequency, in float32 op by op as HF
 * computes it (`torch.arange(0, d, 2).float() / d`, `base ** x`, then `_compute_llama3_parameters` on float32 tensors).
 */
export function ropeInvFreq(headDim: number, theta: number, scaling: RopeScaling | null): Float32Array {
  const half = headDim / 2;
  const out = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const f = f32(1 / f32(Math.pow(f32(theta), f32((2 * i) / headDim))));
    out[i] = scaling ? llama3Scale(f, scaling) : f;
  }
  return out;
}

/**
 * One frequency through HF `_compute_llama3_parameters`: short wavelengths (high frequencies) are kept, long ones are
 * slowed by `factor`, and the band between is interpolated so the context extension is smooth. Python scalars meet
 * float32 tensors there, so each operation rounds to float32.
 */
function llama3Scale(f: number, s: RopeScaling): number {
  const oldCtx = s.originalMaxPositionEmbeddings;
  const lowFreqWavelen = f32(oldCtx / s.lowFreqFactor);
  const highFreqWavelen = f32(oldCtx / s.highFreqFactor);
  const wavelen = f32(f32(2 * Math.PI) / f);
  const scaled = wavelen > lowFreqWavelen ? f32(f / f32(s.factor)) : f;
  // Both boundaries belong to the medium band, as in HF (`~(w < high) * ~(w > low)`).
  if (wavelen < highFreqWavelen || wavelen > lowFreqWavelen) return scaled;
  const smooth = f32(f32(f32(f32(oldCtx) / wavelen) - f32(s.lowFreqFactor)) / f32(s.highFreqFactor - s.lowFreqFactor));
  return f32(f32(f32(f32(1 - smooth) * scaled) / f32(s.factor)) + f32(smooth * scaled));
}

/**
 * cos/sin tables for the given positions: `emb = cat(pos * inv_freq, pos * inv_freq)` as in HF `LlamaRotaryEmbedding`,
 * in float32. `positions` is [B, T] (any numeric dtype); the result is { cos, sin }, each [B, T, D].
 */
export function ropeCosSin(invFreq: Float32Array, positions: tf.Tensor): { cos: tf.Tensor3D; sin: tf.Tensor3D } {
  return tf.tidy(() => {
    const [B, T] = positions.shape as [number, number];
    const half = invFreq.length;
    const pos = tf.reshape(tf.cast(positions, 'float32'), [B, T, 1]); // [B, T, 1]
    const freqs = tf.mul(pos, tf.tensor3d(invFreq, [1, 1, half])); // [B, T, D/2]
    const emb = tf.concat([freqs, freqs], -1); // [B, T, D]
    return { cos: tf.cos(emb) as tf.Tensor3D, sin: tf.sin(emb) as tf.Tensor3D };
  });
}

/** HF `rotate_half`: (x1, x2) -> (-x2, x1) over the two halves of the last axis. */
function rotateHalf(x: tf.Tensor): tf.Tensor {
  const [x1, x2] = tf.split(x, 2, -1) as [tf.Tensor, tf.Tensor];
  return tf.concat([tf.neg(x2), x1], -1);
}

/**
 * `x * cos + rotate_half(x) * sin`. Our layout keeps time before heads: x is [B, T, heads, D] and cos/sin are
 * [B, T, D], broadcast over the heads axis (HF keeps [B, heads, T, D] and unsqueezes axis 1 instead).
 */
export function applyRope(x: tf.Tensor4D, cos: tf.Tensor3D, sin: tf.Tensor3D): tf.Tensor4D {
  return tf.tidy(() => {
    const [B, T, , D] = x.shape;
    const c = tf.reshape(cos, [B, T, 1, D]); // [B, T, 1, D]
    const s = tf.reshape(sin, [B, T, 1, D]); // [B, T, 1, D]
    return tf.add(tf.mul(x, c), tf.mul(rotateHalf(x), s)) as tf.Tensor4D;
  });
}

// The RoPE tables of a forward: positions from the key mask as HF `generate` computes them (cumsum - 1, 1 at pads),
// then cos/sin of position * inv_freq (HF `LlamaRotaryEmbedding`). The reference is plain tfjs ops (about 15 kernel
// calls, twice per DPO step and recorded on the tape in the policy's); the fused version is one addon call
// (native/blas/attention.cc ropeTables) with no gradient: the tables are data. Leaves out: rope types other than
// default and llama3 (the inverse frequencies come from model/rope.ts).
import * as tf from '@tensorflow/tfjs';
import { fusedActive, runFused, type FusedAddon, type NativeOp } from './native.js';
import { ropeCosSin } from '../src/model/rope.js';

/**
 * Positions of this call's T tokens from the mask of all S slots, as HF `generate`: cumsum(mask) - 1, and 1 at pads.
 * With right padding this is arange for the tokens, with left padding it skips the pads. keyMask [B, S] -> [B, T].
 */
export function positionsFromMask(keyMask: tf.Tensor2D, T: number): tf.Tensor2D {
  return tf.tidy(() => {
    const [B, S] = keyMask.shape;
    const pos = tf.slice(tf.sub(tf.cumsum(keyMask, 1), 1), [0, S - T], [B, T]); // [B, T]
    const m = tf.slice(keyMask, [0, S - T], [B, T]); // [B, T]
    return tf.where(tf.greater(m, 0), pos, tf.onesLike(pos)) as tf.Tensor2D;
  });
}

/** The plain-ops reference: cos/sin [B, T, D] of the last T of the S slots of keyMask [B, S] (float32). */
export function ropeTablesReference(keyMask: tf.Tensor2D, invFreq: Float32Array, T: number): { cos: tf.Tensor3D; sin: tf.Tensor3D } {
  return tf.tidy(() => ropeCosSin(invFreq, positionsFromMask(keyMask, T)));
}

/** The fused version (needs ropeTablesOps registered for the backend): the same tables, in one kernel call. */
export function ropeTablesFused(keyMask: tf.Tensor2D, invFreq: Float32Array, T: number): { cos: tf.Tensor3D; sin: tf.Tensor3D } {
  return tf.tidy(() => {
    const [cos, sin] = runFused('DpoRopeTables', { keyMask, invFreq: tf.tensor1d(invFreq) }, { T }) as tf.Tensor3D[];
    return { cos, sin };
  });
}

/** ropeTablesFused where its kernel is registered for the active backend, else the reference. */
export function ropeTables(keyMask: tf.Tensor2D, invFreq: Float32Array, T: number): { cos: tf.Tensor3D; sin: tf.Tensor3D } {
  return fusedActive('DpoRopeTables') ? ropeTablesFused(keyMask, invFreq, T) : ropeTablesReference(keyMask, invFreq, T);
}

interface TablesAddon {
  ropeTables(mask: Float32Array, invFreq: Float32Array, cos: Float32Array, sin: Float32Array, B: number, S: number, T: number, D: number): void;
}

/** True when the addon has the ropeTables entry point (so ropeTablesOps can be registered). */
export function hasRopeTables(addon: FusedAddon | null): boolean {
  return addon !== null && typeof (addon as unknown as Partial<TablesAddon>).ropeTables === 'function';
}

export const ropeTablesOps: NativeOp[] = [
  {
    kernelName: 'DpoRopeTables', inputs: ['keyMask', 'invFreq'],
    outShapes: ([m, f], attrs) => {
      const T = attrs.T as number;
      if (m.shape.length !== 2 || f.shape.length !== 1 || m.dtype !== 'float32' || !(T >= 1 && T <= m.shape[1])) {
        throw new Error(`DpoRopeTables: keyMask ${m.dtype} [${m.shape}], invFreq [${f.shape}], T ${T} (expected float32 [B, S], [D/2], 1 <= T <= S)`);
      }
      const out = [m.shape[0], T, 2 * f.shape[0]];
      return [out, out];
    },
    // The cpu backend's Cast from int32 keeps the Int32Array under a float32 dtype (a cast attention mask): copied.
    run: (a: FusedAddon, [m, f], [cos, sin], [mi, fi], attrs) =>
      (a as unknown as TablesAddon).ropeTables(m instanceof Float32Array ? m : Float32Array.from(m), f as Float32Array, cos, sin, mi.shape[0], mi.shape[1],
        attrs.T as number, 2 * fi.shape[0]),
  },
];

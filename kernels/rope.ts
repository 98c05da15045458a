// Rotary embeddings (HF rotate-half form) fused with attention's transpose: x [B, T, heads, D] with cos/sin
// [B, T, D] -> [B, heads, T, D], the layout the attention matmuls read. The reference is plain tfjs ops (as
// src/model/rope.ts's applyRope, then a transpose); the fused version is one addon call each way. cos/sin are tables
// of positions and get no gradient.
import * as tf from '@tensorflow/tfjs';
import { fusedActive, runFused, type FusedAddon, type NativeOp } from './native.js';

/** HF `rotate_half`: (x1, x2) -> (-x2, x1) over the two halves of the last axis. */
function rotateHalf(x: tf.Tensor): tf.Tensor {
  const [x1, x2] = tf.split(x, 2, -1) as [tf.Tensor, tf.Tensor];
  return tf.concat([tf.neg(x2), x1], -1);
}

/** The plain-ops reference: transpose(x * cos + rotate_half(x) * sin, [0, 2, 1, 3]). */
export function ropeHeadsFirstReference(x: tf.Tensor4D, cos: tf.Tensor3D, sin: tf.Tensor3D): tf.Tensor4D {
  return tf.tidy(() => {
    const [B, T, , D] = x.shape;
    const c = tf.reshape(cos, [B, T, 1, D]); // [B, T, 1, D]
    const s = tf.reshape(sin, [B, T, 1, D]); // [B, T, 1, D]
    const y = tf.add(tf.mul(x, c), tf.mul(rotateHalf(x), s)); // [B, T, heads, D]
    return tf.transpose(y, [0, 2, 1, 3]) as tf.Tensor4D; // [B, heads, T, D]
  });
}

/** The fused version (needs ropeOps registered for the backend): same values, same gradient to x. */
export function ropeHeadsFirstFused(x: tf.Tensor4D, cos: tf.Tensor3D, sin: tf.Tensor3D): tf.Tensor4D {
  const op = tf.customGrad((...args: unknown[]) => {
    const [xi, c, s] = args as [tf.Tensor4D, tf.Tensor3D, tf.Tensor3D];
    const save = args[3] as tf.GradSaveFunc;
    save([c, s]);
    const [y] = runFused('DpoRope', { x: xi, cos: c, sin: s });
    const gradFunc = (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor[] => {
      const [dx] = runFused('DpoRopeGrad', { dy, cos: saved[0], sin: saved[1] });
      // cos and sin come from positions (data): tfjs never reads their gradient.
      return [dx, tf.scalar(0), tf.scalar(0)];
    };
    return { value: y, gradFunc };
  });
  return op(x, cos, sin) as tf.Tensor4D;
}

/** ropeHeadsFirstFused where its kernels are registered for the active backend, else the reference. */
export function ropeHeadsFirst(x: tf.Tensor4D, cos: tf.Tensor3D, sin: tf.Tensor3D): tf.Tensor4D {
  return fusedActive('DpoRope') ? ropeHeadsFirstFused(x, cos, sin) : ropeHeadsFirstReference(x, cos, sin);
}

function check(name: string, x: readonly number[], cos: readonly number[], sin: readonly number[]): [number, number, number, number] {
  const [B, T, N, D] = x;
  if (x.length !== 4 || String(cos) !== String([B, T, D]) || String(sin) !== String(cos) || D % 2 !== 0) {
    throw new Error(`${name}: x [${x}] with cos [${cos}] and sin [${sin}] (expected [B, T, heads, D], [B, T, D] twice, D even)`);
  }
  return [B, T, N, D];
}

export const ropeOps: NativeOp[] = [
  {
    kernelName: 'DpoRope', inputs: ['x', 'cos', 'sin'],
    outShapes: ([x, c, s]) => {
      const [B, T, N, D] = check('DpoRope', x.shape, c.shape, s.shape);
      return [[B, N, T, D]];
    },
    run: (a: FusedAddon, [x, c, s], [y], [xi]) => a.ropeForward(x as Float32Array, c as Float32Array, s as Float32Array, y, ...(xi.shape as [number, number, number, number])),
  },
  {
    kernelName: 'DpoRopeGrad', inputs: ['dy', 'cos', 'sin'],
    outShapes: ([dy, c]) => {
      const [B, N, T, D] = dy.shape;
      check('DpoRopeGrad', [B, T, N, D], c.shape, c.shape);
      return [[B, T, N, D]];
    },
    run: (a: FusedAddon, [dy, c, s], [dx], [di]) => {
      const [B, N, T, D] = di.shape;
      a.ropeBackward(dy as Float32Array, c as Float32Array, s as Float32Array, dx, B, T, N, D);
    },
  },
];

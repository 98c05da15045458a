// The SwiGLU activation of HF `LlamaMLP`: silu(gate) * up, silu(x) = x * sigmoid(x). The reference is plain tfjs ops
// (tfjs has no silu); the fused version is one addon call each way (native/blas/fused.cc) and saves gate and up only.
import * as tf from '@tensorflow/tfjs';
import { fusedActive, runFused, type FusedAddon, type NativeOp } from './native.js';

/** The plain-ops reference. gate and up of the same shape [..., I]. */
export function swigluReference(gate: tf.Tensor, up: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(tf.mul(gate, tf.sigmoid(gate)), up));
}

/** The fused version (needs swigluOps registered for the backend): same values, same gradients. */
export function swigluFused(gate: tf.Tensor, up: tf.Tensor): tf.Tensor {
  const op = tf.customGrad((...args: unknown[]) => {
    const [g, u] = args as [tf.Tensor, tf.Tensor];
    const save = args[2] as tf.GradSaveFunc;
    save([g, u]);
    const [y] = runFused('DpoSwiglu', { gate: g, up: u });
    const gradFunc = (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor[] => runFused('DpoSwigluGrad', { gate: saved[0], up: saved[1], dy });
    return { value: y, gradFunc };
  });
  return op(gate, up);
}

/** swigluFused where its kernels are registered for the active backend, else the reference. */
export function swiglu(gate: tf.Tensor, up: tf.Tensor): tf.Tensor {
  return fusedActive('DpoSwiglu') ? swigluFused(gate, up) : swigluReference(gate, up);
}

const n = (t: tf.TensorInfo) => t.shape.reduce((p, d) => p * d, 1);

export const swigluOps: NativeOp[] = [
  {
    kernelName: 'DpoSwiglu', inputs: ['gate', 'up'],
    outShapes: ([g, u]) => {
      if (String(g.shape) !== String(u.shape)) throw new Error(`DpoSwiglu: gate [${g.shape}] and up [${u.shape}] differ`);
      return [g.shape];
    },
    run: (a: FusedAddon, [g, u], [y], [gi]) => a.swigluForward(g as Float32Array, u as Float32Array, y, n(gi)),
  },
  {
    kernelName: 'DpoSwigluGrad', inputs: ['gate', 'up', 'dy'],
    outShapes: ([g]) => [g.shape, g.shape],
    run: (a: FusedAddon, [g, u, dy], [dg, du], [gi]) => a.swigluBackward(g as Float32Array, u as Float32Array, dy as Float32Array, dg, du, n(gi)),
  },
];

// RMSNorm as HF `LlamaRMSNorm`: y = x * rsqrt(mean(x^2) + eps) * w over the last axis, float32. The reference is plain
// tfjs ops; the fused version is one addon call each way (native/blas/fused.cc) and saves only x, w and 1/rms per row.
import * as tf from '@tensorflow/tfjs';
import { fusedActive, runFused, type FusedAddon, type NativeOp } from './native.js';

/** The plain-ops reference. x [..., H], weight [H]. */
export function rmsNormReference(x: tf.Tensor, weight: tf.Tensor, eps: number): tf.Tensor {
  return tf.tidy(() => {
    const ms = tf.mean(tf.square(x), -1, true); // [..., 1]
    return tf.mul(tf.mul(x, tf.rsqrt(tf.add(ms, eps))), weight);
  });
}

/** The fused version (needs the kernels of rmsNormOps registered for the backend): same values, same gradients. */
export function rmsNormFused(x: tf.Tensor, weight: tf.Tensor, eps: number): tf.Tensor {
  const op = tf.customGrad((...args: unknown[]) => {
    const [xi, wi] = args as [tf.Tensor, tf.Tensor];
    const save = args[2] as tf.GradSaveFunc;
    const [y, rinv] = runFused('DpoRmsNorm', { x: xi, weight: wi }, { eps });
    save([xi, wi, rinv]);
    const gradFunc = (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor[] => {
      const [sx, sw, sr] = saved;
      const [dx, dw] = runFused('DpoRmsNormGrad', { x: sx, weight: sw, rinv: sr, dy });
      return [dx, dw];
    };
    return { value: y, gradFunc };
  });
  return op(x, weight);
}

/** rmsNormFused where its kernels are registered for the active backend, else the reference. */
export function rmsNorm(x: tf.Tensor, weight: tf.Tensor, eps: number): tf.Tensor {
  return fusedActive('DpoRmsNorm') ? rmsNormFused(x, weight, eps) : rmsNormReference(x, weight, eps);
}

const rows = (x: tf.TensorInfo) => x.shape.slice(0, -1).reduce((p, d) => p * d, 1);
const last = (x: tf.TensorInfo) => x.shape[x.shape.length - 1];

export const rmsNormOps: NativeOp[] = [
  {
    kernelName: 'DpoRmsNorm', inputs: ['x', 'weight'],
    outShapes: ([x]) => [x.shape, [rows(x)]],
    run: (a: FusedAddon, [x, w], [y, rinv], [xi], attrs) => a.rmsNormForward(x as Float32Array, w as Float32Array, y, rinv, rows(xi), last(xi), attrs.eps as number),
  },
  {
    kernelName: 'DpoRmsNormGrad', inputs: ['x', 'weight', 'rinv', 'dy'],
    outShapes: ([x, w]) => [x.shape, w.shape],
    run: (a: FusedAddon, [x, w, rinv, dy], [dx, dw], [xi]) =>
      a.rmsNormBackward(x as Float32Array, w as Float32Array, rinv as Float32Array, dy as Float32Array, dx, dw, rows(xi), last(xi)),
  },
];

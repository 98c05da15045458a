// The masked softmax of attention: p = softmax(scores * scale + bias) over keys, with the additive causal + padding
// bias [B, 1, T, S] broadcast over heads (HF eager attention). The reference is plain tfjs ops; the fused version is one
// addon call each way and saves only p: d scores = scale * p * (dp - sum(dp * p)). The bias gets no gradient.
import * as tf from '@tensorflow/tfjs';
import { fusedActive, runFused, type FusedAddon, type NativeOp } from './native.js';

/** The plain-ops reference. scores [B, N, T, S], bias [B, 1, T, S]. */
export function maskedSoftmaxReference(scores: tf.Tensor4D, bias: tf.Tensor4D, scale: number): tf.Tensor4D {
  return tf.tidy(() => tf.softmax(tf.add(tf.mul(scores, scale), bias)) as tf.Tensor4D);
}

/** The fused version (needs maskedSoftmaxOps registered for the backend): same values, same gradient to scores. */
export function maskedSoftmaxFused(scores: tf.Tensor4D, bias: tf.Tensor4D, scale: number): tf.Tensor4D {
  const op = tf.customGrad((...args: unknown[]) => {
    const [x, b] = args as [tf.Tensor4D, tf.Tensor4D];
    const save = args[2] as tf.GradSaveFunc;
    const [p] = runFused('DpoMaskedSoftmax', { scores: x, bias: b }, { scale });
    save([p]);
    const gradFunc = (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor[] => {
      const [ds] = runFused('DpoMaskedSoftmaxGrad', { p: saved[0], dy }, { scale });
      // The bias is built from the masks (data): tfjs never reads its gradient.
      return [ds, tf.scalar(0)];
    };
    return { value: p, gradFunc };
  });
  return op(scores, bias) as tf.Tensor4D;
}

/** maskedSoftmaxFused where its kernels are registered for the active backend, else the reference. */
export function maskedSoftmax(scores: tf.Tensor4D, bias: tf.Tensor4D, scale: number): tf.Tensor4D {
  return fusedActive('DpoMaskedSoftmax') ? maskedSoftmaxFused(scores, bias, scale) : maskedSoftmaxReference(scores, bias, scale);
}

export const maskedSoftmaxOps: NativeOp[] = [
  {
    kernelName: 'DpoMaskedSoftmax', inputs: ['scores', 'bias'],
    outShapes: ([x, b]) => {
      const [B, , T, S] = x.shape;
      if (x.shape.length !== 4 || String(b.shape) !== String([B, 1, T, S])) {
        throw new Error(`DpoMaskedSoftmax: scores [${x.shape}] with bias [${b.shape}] (expected [B, N, T, S] and [B, 1, T, S])`);
      }
      return [x.shape];
    },
    run: (a: FusedAddon, [x, b], [p], [xi], attrs) => {
      const [B, N, T, S] = xi.shape;
      a.softmaxForward(x as Float32Array, b as Float32Array, p, B, N, T, S, attrs.scale as number);
    },
  },
  {
    kernelName: 'DpoMaskedSoftmaxGrad', inputs: ['p', 'dy'],
    outShapes: ([p]) => [p.shape],
    run: (a: FusedAddon, [p, dy], [ds], [pi], attrs) => {
      const S = pi.shape[pi.shape.length - 1];
      a.softmaxBackward(p as Float32Array, dy as Float32Array, ds, pi.shape.reduce((x, d) => x * d, 1) / S, S, attrs.scale as number);
    },
  },
];

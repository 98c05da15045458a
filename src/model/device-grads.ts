// tfjs-core's gradients of Sum and Mean broadcast dy with `ones(x.shape)`, which builds the ones array in JS and uploads
// it: one activation-sized host-to-device copy per reduction in every backward pass (RMSNorm's mean over hidden states,
// [B*T, H] floats). These registrations are the same math (d sum/dx = dy broadcast, d mean/dx = dy broadcast / size)
// with `onesLike(x)`, a kernel that fills on the device. Imported for its effect by model/lora.ts (every training path).
import * as tf from '@tensorflow/tfjs';

function expandedDy(dy: tf.Tensor, x: tf.Tensor, axis: number | number[] | null): { dy: tf.Tensor; size: number } {
  const axes = tf.util.parseAxisParam(axis as number | number[], x.shape); // null: every axis, as the forward
  const shape = x.shape.slice();
  let size = 1;
  for (const a of axes) {
    size *= shape[a];
    shape[a] = 1;
  }
  return { dy: tf.reshape(dy, shape), size };
}

tf.registerGradient({
  kernelName: tf.Sum,
  inputsToSave: ['x'],
  gradFunc: (dy, saved, attrs) => {
    const [x] = saved;
    const { axis } = attrs as unknown as { axis: number | number[] | null };
    return { x: () => tf.mul(expandedDy(dy as tf.Tensor, x, axis).dy, tf.onesLike(x)) };
  },
});

tf.registerGradient({
  kernelName: tf.Mean,
  inputsToSave: ['x'],
  gradFunc: (dy, saved, attrs) => {
    const [x] = saved;
    const { axis } = attrs as unknown as { axis: number | number[] | null };
    const e = expandedDy(dy as tf.Tensor, x, axis);
    return { x: () => tf.div(tf.mul(e.dy, tf.onesLike(x)), e.size) };
  },
});

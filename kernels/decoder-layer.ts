// Halves of a Llama decoder layer as one kernel each way (native/blas/layer.cc). The MLP half of HF
// `LlamaDecoderLayer`, y = x1 + down(silu(gate(h2)) * up(h2)) with h2 = rmsnorm(x1), is six fused ops today (RMSNorm,
// three linears, SiLU*up, the residual add: with their backward and the Identity clones of what they save, ~30 tfjs
// kernel calls a layer); fused it is one addon call forward and one backward, and only one tensor is saved (the stash:
// x1, 1/rms, gate, up). The weights are frozen (LoRA training): they are read by the closure, not taken as inputs, so
// the tape has x1 as the only input and never asks for a weight gradient; mlpHalfFused refuses a trainable variable.
// Leaves out: bias, adapters on the MLP, weight gradients (those layers take the plain path), the attention half.
import * as tf from '@tensorflow/tfjs';
import { fusedActive, runFused, type FusedAddon, type NativeOp } from './native.js';
import { rmsNormReference } from './rmsnorm.js';
import { swigluReference } from './swiglu.js';
import { linearReference } from './lora-linear.js';

/** The MLP half's frozen weights, HF layout: norm [H], gate and up [I, H], down [H, I]. */
export interface MlpWeights {
  norm: tf.Tensor;
  gate: tf.Tensor;
  up: tf.Tensor;
  down: tf.Tensor;
}

/** The plain-ops reference: x1 + down(silu(gate(h2)) * up(h2)), h2 = rmsnorm(x1). x1 [..., H]. */
export function mlpHalfReference(x1: tf.Tensor, w: MlpWeights, eps: number): tf.Tensor {
  return tf.tidy(() => {
    const h2 = rmsNormReference(x1, w.norm, eps);
    const act = swigluReference(linearReference(h2, w.gate), linearReference(h2, w.up));
    return tf.add(x1, linearReference(act, w.down));
  });
}

const trainable = (t: tf.Tensor) => t instanceof tf.Variable && t.trainable;

/** The fused version (needs mlpHalfOps registered for the backend): same value, same dx1; the weights must be frozen. */
export function mlpHalfFused(x1: tf.Tensor, w: MlpWeights, eps: number): tf.Tensor {
  if ([w.norm, w.gate, w.up, w.down].some(trainable)) {
    throw new Error('DpoMlpHalf: a weight is a trainable variable; the fused MLP half gives no weight gradients (use mlpHalfReference)');
  }
  const op = tf.customGrad((...args: unknown[]) => {
    const x = args[0] as tf.Tensor;
    const save = args[1] as tf.GradSaveFunc;
    const [y, stash] = runFused('DpoMlpHalf', { x, norm: w.norm, gate: w.gate, up: w.up, down: w.down }, { eps });
    save([stash]);
    const gradFunc = (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor[] =>
      runFused('DpoMlpHalfGrad', { dy, stash: saved[0], norm: w.norm, gate: w.gate, up: w.up, down: w.down });
    return { value: y, gradFunc };
  });
  return op(x1);
}

/** True when the fused MLP half can run on the active backend. */
export function mlpHalfActive(): boolean {
  return fusedActive('DpoMlpHalf');
}

/** The addon's decoder-layer entry points (native/blas/layer.cc); an addon built before them has none. */
interface LayerAddon {
  mlpForward(x1: Float32Array, norm: Float32Array, gate: Float32Array, up: Float32Array, down: Float32Array, y: Float32Array,
    stash: Float32Array, M: number, H: number, I: number, eps: number): void;
  mlpBackward(dy: Float32Array, stash: Float32Array, norm: Float32Array, gate: Float32Array, up: Float32Array, down: Float32Array,
    dx1: Float32Array, M: number, H: number, I: number): void;
}

/** True when the addon has the decoder-layer entry points (so mlpHalfOps can be registered). */
export function hasDecoderLayer(addon: FusedAddon | null): boolean {
  return addon !== null && typeof (addon as unknown as Partial<LayerAddon>).mlpForward === 'function';
}

const La = (a: FusedAddon) => a as unknown as LayerAddon;
const F = (v: unknown) => v as Float32Array;
const rows = (t: tf.TensorInfo) => t.shape.slice(0, -1).reduce((p, d) => p * d, 1);

/** M, H, I of x (or dy) [..., H] and the weights, checked. */
function dims(name: string, x: tf.TensorInfo, norm: tf.TensorInfo, gate: tf.TensorInfo, up: tf.TensorInfo, down: tf.TensorInfo): [number, number, number] {
  const H = x.shape[x.shape.length - 1];
  const I = gate.shape[0];
  const ok = norm.shape.length === 1 && norm.shape[0] === H && gate.shape.length === 2 && gate.shape[1] === H
    && String(up.shape) === String(gate.shape) && down.shape.length === 2 && down.shape[0] === H && down.shape[1] === I;
  if (!ok) throw new Error(`${name}: x [${x.shape}], norm [${norm.shape}], gate [${gate.shape}], up [${up.shape}], down [${down.shape}] do not fit an MLP half (H = last axis of x)`);
  return [rows(x), H, I];
}

export const mlpHalfOps: NativeOp[] = [
  {
    kernelName: 'DpoMlpHalf', inputs: ['x', 'norm', 'gate', 'up', 'down'],
    outShapes: ([x, n, g, u, d]) => {
      const [M, H, I] = dims('DpoMlpHalf', x, n, g, u, d);
      return [x.shape, [M * (H + 1 + 2 * I)]];
    },
    run: (a: FusedAddon, [x, n, g, u, d], [y, stash], [xi, ni, gi, ui, di], attrs) =>
      La(a).mlpForward(F(x), F(n), F(g), F(u), F(d), y, stash, ...dims('DpoMlpHalf', xi, ni, gi, ui, di), attrs.eps as number),
  },
  {
    kernelName: 'DpoMlpHalfGrad', inputs: ['dy', 'stash', 'norm', 'gate', 'up', 'down'],
    outShapes: ([dy, , n, g, u, d]) => {
      dims('DpoMlpHalfGrad', dy, n, g, u, d);
      return [dy.shape];
    },
    run: (a: FusedAddon, [dy, s, n, g, u, d], [dx], [dyi, , ni, gi, ui, di]) =>
      La(a).mlpBackward(F(dy), F(s), F(n), F(g), F(u), F(d), dx, ...dims('DpoMlpHalfGrad', dyi, ni, gi, ui, di)),
  },
];

// The LoRA linear of model/lora.ts as one kernel each way: y = x W^T + (scale * x A^T) B^T, x [..., I], W [O, I] (HF
// layout), A [r, I], B [O, r]. The plain-ops reference (reshape, three matMuls, a scale, an add, reshape: ~25 kernel
// calls with their backward) costs the tiny preset more in tfjs engine overhead than in arithmetic; the fused forward is
// one addon call (three cblas_sgemm, native/blas/fused.cc) and the backward one per input: dx = dy W + scale (dy B) A,
// dA = scale (dy B)^T x, dB = dy^T (scale x A^T) (the rank-r side recomputed, so only the inputs are saved). The
// gradient is registered by kernel name, so tfjs asks only for the inputs on the path to the variables (never dW when W
// is frozen; when W is trainable its thunk is the plain dy^T x). Leaves out: bias and dropout (the reference serves them).
import * as tf from '@tensorflow/tfjs';
import { fusedActive, runFused, type FusedAddon, type NativeOp } from './native.js';

/** The plain-ops reference (lora.ts' formula without bias or dropout): x [..., I] -> [..., O]. */
export function loraLinearReference(x: tf.Tensor, weight: tf.Tensor, A: tf.Tensor, B: tf.Tensor, scale: number): tf.Tensor {
  return tf.tidy(() => {
    const inp = x.shape[x.shape.length - 1] as number;
    const x2 = tf.reshape(x, [-1, inp]);
    const y = tf.add(tf.matMul(x2, weight, false, true), tf.matMul(tf.mul(tf.matMul(x2, A, false, true), scale), B, false, true));
    return tf.reshape(y, [...x.shape.slice(0, -1), weight.shape[0] as number]);
  });
}

/** The fused version (needs loraLinearOps registered for the backend): same values, same gradients. */
export function loraLinearFused(x: tf.Tensor, weight: tf.Tensor, A: tf.Tensor, B: tf.Tensor, scale: number): tf.Tensor {
  return runFused('DpoLoraLinear', { x, weight, A, B }, { scale })[0];
}

/** loraLinearFused where its kernels are registered for the active backend, else the reference. */
export function loraLinearAdapted(x: tf.Tensor, weight: tf.Tensor, A: tf.Tensor, B: tf.Tensor, scale: number): tf.Tensor {
  return fusedActive('DpoLoraLinear') ? loraLinearFused(x, weight, A, B, scale) : loraLinearReference(x, weight, A, B, scale);
}

/**
 * The frozen linear without an adapter or bias, x [..., I] W^T -> [..., O], as one kernel: the reference's reshape,
 * matMul, reshape (and their backward) in one addon sgemm each way. Needs linearOps registered.
 */
export function linearFused(x: tf.Tensor, weight: tf.Tensor): tf.Tensor {
  return runFused('DpoLinear', { x, weight })[0];
}

/** The plain-ops reference of linearFused (model/lora.ts' path without an adapter or bias). */
export function linearReference(x: tf.Tensor, weight: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const inp = x.shape[x.shape.length - 1] as number;
    const y = tf.matMul(tf.reshape(x, [-1, inp]), weight, false, true);
    return tf.reshape(y, [...x.shape.slice(0, -1), weight.shape[0] as number]);
  });
}

/** dW = dy^T x over all rows (W trainable: full fine-tuning). */
function weightGrad(dy: tf.Tensor, x: tf.Tensor, weight: tf.Tensor): tf.Tensor {
  return tf.matMul(tf.reshape(dy, [-1, weight.shape[0] as number]), tf.reshape(x, [-1, weight.shape[1] as number]), true, false);
}

tf.registerGradient({
  kernelName: 'DpoLinear',
  inputsToSave: ['x', 'weight'],
  gradFunc: (dy, saved) => {
    const [x, weight] = saved;
    return {
      x: () => runFused('DpoLinearGradX', { dy: dy as tf.Tensor, weight })[0],
      weight: () => weightGrad(dy as tf.Tensor, x, weight),
    };
  },
});

tf.registerGradient({
  kernelName: 'DpoLoraLinear',
  inputsToSave: ['x', 'weight', 'A', 'B'],
  gradFunc: (dy, saved, attrs) => {
    const [x, weight, A, B] = saved;
    const g = dy as tf.Tensor;
    return {
      x: () => runFused('DpoLoraGradX', { dy: g, weight, A, B }, attrs)[0],
      weight: () => weightGrad(g, x, weight),
      A: () => runFused('DpoLoraGradA', { dy: g, x, B }, attrs)[0],
      B: () => runFused('DpoLoraGradB', { dy: g, x, A }, attrs)[0],
    };
  },
});

/** The addon's LoRA-linear entry points (native/blas/fused.cc); an addon built before them has none. */
interface LoraAddon {
  loraForward(x: Float32Array, w: Float32Array, A: Float32Array, B: Float32Array, y: Float32Array, M: number, I: number, O: number, r: number, scale: number): void;
  loraGradX(dy: Float32Array, w: Float32Array, A: Float32Array, B: Float32Array, dx: Float32Array, M: number, I: number, O: number, r: number, scale: number): void;
  loraGradA(dy: Float32Array, x: Float32Array, B: Float32Array, dA: Float32Array, M: number, I: number, O: number, r: number, scale: number): void;
  loraGradB(dy: Float32Array, x: Float32Array, A: Float32Array, dB: Float32Array, M: number, I: number, O: number, r: number, scale: number): void;
  /** native/blas/sgemm.cc's entry point (every addon has it). */
  sgemm(transA: boolean, transB: boolean, M: number, N: number, K: number, a: Float32Array, aOff: number, strideA: number,
    b: Float32Array, bOff: number, strideB: number, c: Float32Array, cOff: number, batch: number): void;
}

/** True when the addon has the LoRA-linear entry points (so loraLinearOps can be registered). */
export function hasLoraLinear(addon: FusedAddon | null): boolean {
  return addon !== null && typeof (addon as unknown as Partial<LoraAddon>).loraForward === 'function';
}

const L = (a: FusedAddon) => a as unknown as LoraAddon;
const last = (t: tf.TensorInfo) => t.shape[t.shape.length - 1];
const rows = (t: tf.TensorInfo) => t.shape.slice(0, -1).reduce((p, d) => p * d, 1);
const F = (v: unknown) => v as Float32Array;

/** M, I, O, r of an operand set, checked: x or dy [..., I or O], W [O, I], A [r, I], B [O, r]. */
function dims(name: string, x: tf.TensorInfo | null, dy: tf.TensorInfo | null, w: tf.TensorInfo | null, A: tf.TensorInfo | null, B: tf.TensorInfo | null): [number, number, number, number] {
  const I = w ? w.shape[1] : A ? A.shape[1] : last(x!);
  const O = w ? w.shape[0] : B ? B.shape[0] : last(dy!);
  const r = A ? A.shape[0] : B!.shape[1];
  const M = x ? rows(x) : rows(dy!);
  const bad = (w && w.shape.length !== 2) || (A && (A.shape.length !== 2 || A.shape[1] !== I)) || (B && (B.shape.length !== 2 || B.shape[0] !== O || B.shape[1] !== r))
    || (x && (last(x) !== I || rows(x) !== M)) || (dy && (last(dy) !== O || rows(dy) !== M));
  if (bad) throw new Error(`${name}: shapes x [${x?.shape}] dy [${dy?.shape}] W [${w?.shape}] A [${A?.shape}] B [${B?.shape}] do not fit y = x W^T + (x A^T) B^T`);
  return [M, I, O, r];
}

const scaleOf = (attrs: tf.NamedAttrMap) => attrs.scale as number;

export const loraLinearOps: NativeOp[] = [
  {
    kernelName: 'DpoLoraLinear', inputs: ['x', 'weight', 'A', 'B'],
    outShapes: ([x, w, A, B]) => {
      const [, , O] = dims('DpoLoraLinear', x, null, w, A, B);
      return [[...x.shape.slice(0, -1), O]];
    },
    run: (a: FusedAddon, [x, w, A, B], [y], [xi, wi, Ai, Bi], attrs) =>
      L(a).loraForward(F(x), F(w), F(A), F(B), y, ...dims('DpoLoraLinear', xi, null, wi, Ai, Bi), scaleOf(attrs)),
  },
  {
    kernelName: 'DpoLoraGradX', inputs: ['dy', 'weight', 'A', 'B'],
    outShapes: ([dy, w, A, B]) => {
      const [, I] = dims('DpoLoraGradX', null, dy, w, A, B);
      return [[...dy.shape.slice(0, -1), I]];
    },
    run: (a: FusedAddon, [dy, w, A, B], [dx], [dyi, wi, Ai, Bi], attrs) =>
      L(a).loraGradX(F(dy), F(w), F(A), F(B), dx, ...dims('DpoLoraGradX', null, dyi, wi, Ai, Bi), scaleOf(attrs)),
  },
  {
    kernelName: 'DpoLoraGradA', inputs: ['dy', 'x', 'B'],
    outShapes: ([dy, x, B]) => {
      const [, I, , r] = dims('DpoLoraGradA', x, dy, null, null, B);
      return [[r, I]];
    },
    run: (a: FusedAddon, [dy, x, B], [dA], [dyi, xi, Bi], attrs) =>
      L(a).loraGradA(F(dy), F(x), F(B), dA, ...dims('DpoLoraGradA', xi, dyi, null, null, Bi), scaleOf(attrs)),
  },
  {
    kernelName: 'DpoLoraGradB', inputs: ['dy', 'x', 'A'],
    outShapes: ([dy, x, A]) => {
      const [, , O, r] = dims('DpoLoraGradB', x, dy, null, A, null);
      return [[O, r]];
    },
    run: (a: FusedAddon, [dy, x, A], [dB], [dyi, xi, Ai], attrs) =>
      L(a).loraGradB(F(dy), F(x), F(A), dB, ...dims('DpoLoraGradB', xi, dyi, null, Ai, null), scaleOf(attrs)),
  },
];

/** DpoLinear (y = x W^T) and DpoLinearGradX (dx = dy W): one sgemm each, on any addon. */
export const linearOps: NativeOp[] = [
  {
    kernelName: 'DpoLinear', inputs: ['x', 'weight'],
    outShapes: ([x, w]) => {
      if (w.shape.length !== 2 || last(x) !== w.shape[1]) throw new Error(`DpoLinear: x [${x.shape}] and W [${w.shape}] do not fit x W^T`);
      return [[...x.shape.slice(0, -1), w.shape[0]]];
    },
    run: (a: FusedAddon, [x, w], [y], [xi, wi]) => L(a).sgemm(false, true, rows(xi), wi.shape[0], wi.shape[1], F(x), 0, 0, F(w), 0, 0, y, 0, 1),
  },
  {
    kernelName: 'DpoLinearGradX', inputs: ['dy', 'weight'],
    outShapes: ([dy, w]) => {
      if (w.shape.length !== 2 || last(dy) !== w.shape[0]) throw new Error(`DpoLinearGradX: dy [${dy.shape}] and W [${w.shape}] do not fit dy W`);
      return [[...dy.shape.slice(0, -1), w.shape[1]]];
    },
    run: (a: FusedAddon, [dy, w], [dx], [dyi, wi]) => L(a).sgemm(false, false, rows(dyi), wi.shape[1], wi.shape[0], F(dy), 0, 0, F(w), 0, 0, dx, 0, 1),
  },
];

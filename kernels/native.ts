// The fused kernels of the native addon (native/blas/fused.cc) as tfjs kernels of the wasm and cpu backends: operands
// are read and written in place (wasm heap views, or cpu-backend buffers), so a fused op costs one addon call. Other
// backends never get them, and each op in kernels/ then takes its plain-ops reference. Leaves out: the ops' gradients
// (each op file wraps its forward and backward kernels in tf.customGrad), non-float32 data (int32 labels only).
import * as tf from '@tensorflow/tfjs';
import type { CpuBuffersBackend, WasmHeapBackend } from './backend-shapes.js';

type F32 = Float32Array;
type I32 = Int32Array;

/** The addon's fused entry points; shapes and argument order as documented in native/blas/fused.cc. */
export interface FusedAddon {
  rmsNormForward(x: F32, w: F32, y: F32, rinv: F32, rows: number, H: number, eps: number): void;
  rmsNormBackward(x: F32, w: F32, rinv: F32, dy: F32, dx: F32, dw: F32, rows: number, H: number): void;
  ropeForward(x: F32, cos: F32, sin: F32, y: F32, B: number, T: number, heads: number, D: number): void;
  ropeBackward(dy: F32, cos: F32, sin: F32, dx: F32, B: number, T: number, heads: number, D: number): void;
  swigluForward(gate: F32, up: F32, y: F32, n: number): void;
  swigluBackward(gate: F32, up: F32, dy: F32, dGate: F32, dUp: F32, n: number): void;
  softmaxForward(scores: F32, bias: F32, p: F32, B: number, N: number, T: number, S: number, scale: number): void;
  softmaxBackward(p: F32, dp: F32, dScores: F32, rows: number, S: number, scale: number): void;
  logSoftmaxPick(z: F32, labels: I32, lse: F32, picked: F32, mean: F32, hit: F32, g: F32, rows: number, V: number): void;
  scaleRows(x: F32, scale: F32, y: F32, rows: number, V: number): void;
  logSoftmaxPickGrad(z: F32, labels: I32, scale: F32, g: F32, rows: number, V: number): void;
  add(a: F32, b: F32, y: F32, n: number): void;
  gatherRows(table: F32, ids: I32, out: F32, rows: number, V: number, W: number): void;
  /** Sets the addon's pool (fused kernels and gemm.h's blocked products) to n threads; returns the pool's size. */
  setThreads(n: number): number;
  getThreads(): number;
}

/** The addon object when it has the fused exports (an addon built before them has only sgemm). */
export function asFusedAddon(addon: object | null): FusedAddon | null {
  return addon && typeof (addon as Partial<FusedAddon>).rmsNormForward === 'function' ? (addon as FusedAddon) : null;
}

type Info = tf.TensorInfo;
type View = F32 | I32;

/** What a fused kernel does with its operands: output shapes from the inputs, then one addon call on views. */
export interface NativeOp {
  kernelName: string;
  /** Input names in the order `run` receives them. */
  inputs: readonly string[];
  outShapes(inputs: Info[], attrs: tf.NamedAttrMap): number[][];
  run(addon: FusedAddon, ins: View[], outs: F32[], inputs: Info[], attrs: tf.NamedAttrMap): void;
}

const size = (shape: readonly number[]) => shape.reduce((p, d) => p * d, 1);

function checkDtype(op: NativeOp, t: Info, name: string): void {
  if (t.dtype !== 'float32' && t.dtype !== 'int32') throw new Error(`${op.kernelName}: input ${name} is ${t.dtype} (expected float32 or int32)`);
}

/** The tfjs kernel config of `op` for 'wasm' or 'cpu'. */
export function nativeKernelConfig(addon: FusedAddon, op: NativeOp, backendName: 'wasm' | 'cpu'): tf.KernelConfig {
  const kernelFunc = (args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): Info[] => {
    const attrs = args.attrs ?? {};
    const inputs = op.inputs.map((n) => {
      const t = args.inputs[n];
      if (!t) throw new Error(`${op.kernelName}: input ${n} missing`);
      checkDtype(op, t, n);
      return t;
    });
    const shapes = op.outShapes(inputs, attrs);
    if (backendName === 'wasm') {
      const be = args.backend as WasmHeapBackend;
      const outs = shapes.map((s) => be.makeOutput(s, 'float32'));
      // Views are made after every makeOutput: a malloc may grow the heap and replace its buffer.
      const buf = be.wasm.HEAPU8.buffer;
      const view = (t: Info): View => {
        const off = be.dataIdMap.get(t.dataId).memoryOffset;
        return t.dtype === 'int32' ? new Int32Array(buf, off, size(t.shape)) : new Float32Array(buf, off, size(t.shape));
      };
      op.run(addon, inputs.map(view), outs.map((o) => view(o) as F32), inputs, attrs);
      return outs;
    }
    const be = args.backend as CpuBuffersBackend;
    const ins = inputs.map((t) => {
      const v = be.data.get(t.dataId).values;
      if (!(v instanceof Float32Array) && !(v instanceof Int32Array)) throw new Error(`${op.kernelName}: a cpu input has no typed array`);
      return v;
    });
    const outs = shapes.map((s) => new Float32Array(size(s)));
    op.run(addon, ins, outs, inputs, attrs);
    return shapes.map((s, i) => be.makeTensorInfo(s, 'float32', outs[i]));
  };
  return { kernelName: op.kernelName, backendName, kernelFunc: kernelFunc as unknown as tf.KernelFunc };
}

/** True when `kernelName` is registered for the active backend, i.e. the fused path can run. */
export function fusedActive(kernelName: string): boolean {
  return tf.getKernel(kernelName, tf.getBackend()) !== undefined;
}

/** Runs a registered fused kernel; its outputs as tensors, in order. */
export function runFused(kernelName: string, inputs: Record<string, tf.Tensor>, attrs: tf.NamedAttrMap = {}): tf.Tensor[] {
  const out = tf.engine().runKernel(kernelName, inputs as tf.NamedTensorMap, attrs);
  return Array.isArray(out) ? out : [out];
}

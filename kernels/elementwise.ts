// `Add` (same shapes, float32) and `GatherV2` (rows of a float32 table: axis 0, no batch dims, int32 indices) through
// the addon for the wasm and cpu backends: the stock wasm kernels take ~0.25 ms for a 16K-element add and ~35 ms to
// gather 1024 rows of 512 (tfjs-backend-wasm 4.22), a tenth of the tiny preset's step. Every other case goes to the
// stock kernel, which is also the reference (DPO_KERNELS=reference restores it). Gradients are tfjs' own (same names).
import * as tf from '@tensorflow/tfjs';
import { nativeKernelConfig, type FusedAddon, type NativeOp } from './native.js';

type Args = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };

const sameShape = (a: tf.TensorInfo, b: tf.TensorInfo) => a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);

const addOp: NativeOp = {
  kernelName: 'Add', inputs: ['a', 'b'],
  outShapes: ([a]) => [a.shape],
  run: (x: FusedAddon, [a, b], [y]) => x.add(a as Float32Array, b as Float32Array, y, y.length),
};

const gatherOp: NativeOp = {
  kernelName: 'GatherV2', inputs: ['x', 'indices'],
  outShapes: ([x, ids]) => [[...ids.shape, ...x.shape.slice(1)]],
  run: (a: FusedAddon, [x, ids], [out], [xi]) => {
    const W = xi.shape.slice(1).reduce((p, d) => p * d, 1);
    a.gatherRows(x as Float32Array, ids as Int32Array, out, ids.length, xi.shape[0], W);
  },
};

/** The cases the addon serves; anything else goes to the stock kernel. */
function served(name: string, args: Args): boolean {
  if (name === 'Add') {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    return a.dtype === 'float32' && b.dtype === 'float32' && sameShape(a, b);
  }
  const { x, indices } = args.inputs as { x: tf.TensorInfo; indices: tf.TensorInfo };
  const attrs = (args.attrs ?? {}) as { axis?: number; batchDims?: number };
  const axis = attrs.axis ?? 0;
  return x.dtype === 'float32' && indices.dtype === 'int32' && x.shape.length >= 1 && (axis === 0 || axis === -x.shape.length) && !attrs.batchDims;
}

/** Add and GatherV2 configs for `backend` that use the addon where `served`, else `stock` (by kernel name). */
export function elementwiseConfigs(addon: FusedAddon, backend: 'wasm' | 'cpu', stock: (name: string) => tf.KernelConfig): tf.KernelConfig[] {
  return [addOp, gatherOp].map((op) => {
    const native = nativeKernelConfig(addon, op, backend);
    const base = stock(op.kernelName);
    // The stock ops expect one TensorInfo back, not nativeKernelConfig's list of outputs.
    const kernelFunc = (args: Args) => (served(op.kernelName, args) ? (native.kernelFunc(args as never) as tf.TensorInfo[])[0] : base.kernelFunc(args as never));
    return { ...base, kernelFunc: kernelFunc as tf.KernelFunc };
  });
}

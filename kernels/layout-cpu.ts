// `Transpose` and the non-contiguous `Slice` for the cpu backend as strided copies of contiguous runs, in plain JS.
// tfjs-backend-cpu 4.22's stock kernels find every element through TensorBuffer.indexToLoc/get (an array per
// element): on the small preset a [4,256,512] -> [4,64,512] slice of the log-prob chunks took 150-300 ms and the
// attention transposes 15-55 ms a call, 2.3 s of a 4.7 s step (`bench-step --profile`). Here adjacent dimensions
// that stay contiguous are merged, the innermost run is copied with one `set` (or a strided loop), and an odometer
// walks the rest. Contiguous slices (a view in the stock kernel), string and complex tensors go to the stock kernel,
// which is also the reference: DPO_KERNELS=reference restores it (backend/kernels.ts). Gradients are tfjs' own.
import * as tf from '@tensorflow/tfjs';
import type { TypedArray } from '@tensorflow/tfjs';

type Args = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };
interface CpuBackend {
  data: { get(id: object): { values?: unknown } };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: TypedArray): tf.TensorInfo;
}
type Values = Float32Array | Int32Array | Uint8Array;

function strides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

/**
 * Copies into `out` (row-major over `dims`) the elements of `x` at `start + sum(idx[i] * step[i])`. Dimensions of size 1
 * are dropped and a dimension merged into the one outside it when together they are one contiguous run.
 */
export function copyStrided(x: Values, start: number, dims: readonly number[], step: readonly number[], out: Values): void {
  const d: number[] = [];
  const s: number[] = [];
  for (let i = 0; i < dims.length; i++) {
    if (dims[i] === 1) continue;
    const k = d.length - 1;
    if (k >= 0 && s[k] === step[i] * dims[i]) {
      d[k] *= dims[i];
      s[k] = step[i];
    } else {
      d.push(dims[i]);
      s.push(step[i]);
    }
  }
  if (out.length === 0) return;
  if (d.length === 0) {
    out[0] = x[start];
    return;
  }
  const n = d.length;
  const inner = d[n - 1];
  const is = s[n - 1];
  const outer = out.length / inner;
  const idx = new Array<number>(n - 1).fill(0);
  let src = start;
  let o = 0;
  for (let r = 0; r < outer; r++) {
    if (is === 1 && inner >= 32) {
      out.set(x.subarray(src, src + inner), o);
      o += inner;
    } else {
      for (let j = 0, p = src; j < inner; j++, p += is) out[o++] = x[p];
    }
    for (let k = n - 2; k >= 0; k--) {
      src += s[k];
      if (++idx[k] < d[k]) break;
      src -= s[k] * d[k];
      idx[k] = 0;
    }
  }
}

/** x transposed by `perm` (out dim i is x's dim perm[i]), into a new array of x's type. */
export function transposeValues(x: Values, shape: readonly number[], perm: readonly number[]): Values {
  const st = strides(shape);
  const out = new (x.constructor as new (n: number) => Values)(x.length);
  copyStrided(x, 0, perm.map((p) => shape[p]), perm.map((p) => st[p]), out);
  return out;
}

/** The box [begin, begin + size) of x, into a new array of x's type. */
export function sliceValues(x: Values, shape: readonly number[], begin: readonly number[], size: readonly number[]): Values {
  const st = strides(shape);
  const out = new (x.constructor as new (n: number) => Values)(size.reduce((a, b) => a * b, 1));
  copyStrided(x, begin.reduce((a, b, i) => a + b * st[i], 0), size, st, out);
  return out;
}

function plainValues(b: CpuBackend, t: tf.TensorInfo): Values | null {
  if (t.dtype === 'string' || t.dtype === 'complex64') return null;
  const v = b.data.get(t.dataId).values;
  return v instanceof Float32Array || v instanceof Int32Array || v instanceof Uint8Array ? v : null;
}

function transposeKernel(stock: tf.KernelConfig): tf.KernelFunc {
  return ((args: Args) => {
    const b = args.backend as CpuBackend;
    const x = (args.inputs as { x: tf.TensorInfo }).x;
    const perm = (args.attrs as { perm: number[] }).perm;
    const v = plainValues(b, x);
    if (!v) return stock.kernelFunc(args as never);
    return b.makeTensorInfo(perm.map((p) => x.shape[p]), x.dtype, transposeValues(v, x.shape, perm));
  }) as tf.KernelFunc;
}

function sliceKernel(stock: tf.KernelConfig): tf.KernelFunc {
  return ((args: Args) => {
    const b = args.backend as CpuBackend;
    const x = (args.inputs as { x: tf.TensorInfo }).x;
    const { begin, size } = args.attrs as { begin: number | number[]; size: number | number[] };
    const v = plainValues(b, x);
    if (!v) return stock.kernelFunc(args as never);
    const [bg, sz] = tf.slice_util.parseSliceParams(x, begin, size);
    // A contiguous slice is a view in the stock kernel; a malformed one gets the stock kernel's error.
    const valid = bg.every((s, i) => s >= 0 && sz[i] >= 0 && s + sz[i] <= x.shape[i]);
    if (!valid || tf.slice_util.isSliceContinous(x.shape, bg, sz)) return stock.kernelFunc(args as never);
    return b.makeTensorInfo(sz, x.dtype, sliceValues(v, x.shape, bg, sz));
  }) as tf.KernelFunc;
}

/** Transpose and Slice configs for the cpu backend over `stock` (by kernel name), which serves what these do not. */
export function layoutCpuConfigs(stock: (name: string) => tf.KernelConfig): tf.KernelConfig[] {
  const t = stock('Transpose');
  const s = stock('Slice');
  return [{ ...t, kernelFunc: transposeKernel(t) }, { ...s, kernelFunc: sliceKernel(s) }];
}

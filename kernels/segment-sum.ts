// UnsortedSegmentSum (the gradient of tf.gather: an embedding's backward) as one pass over the rows, for the cpu and
// wasm backends. tfjs-backend-cpu 4.22 builds it from one broadcast `equal` + `mul` + `sum` per segment (O(segments x
// size), 5 of 7 s of a full-SFT step of a 261-token model); tfjs-backend-wasm has no kernel at all. Semantics as
// tf.unsortedSegmentSum: out[s, ...] = sum of x[i, ...] over i with segmentIds[i] == s; ids outside [0, n) are dropped.
// Reference: the stock cpu kernel (test/kernels/segment-sum.test.ts compares them).
import * as tf from '@tensorflow/tfjs';

interface SyncBackend {
  readSync(dataId: object): ArrayLike<number>;
  /** cpu */
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: ArrayLike<number>): tf.TensorInfo;
}

interface WasmBackendLike {
  dataIdMap: { get(id: object): { memoryOffset: number } };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  wasm: { HEAPU8: Uint8Array };
}

export function segmentSumConfig(backendName: 'cpu' | 'wasm'): tf.KernelConfig {
  const kernelFunc = (args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo => {
    const b = args.backend as SyncBackend;
    const x = args.inputs.x as tf.TensorInfo;
    const ids = args.inputs.segmentIds as tf.TensorInfo;
    const n = Number(args.attrs?.numSegments);
    const rows = ids.shape.reduce((p, d) => p * d, 1);
    const inner = rows === 0 ? 0 : x.shape.reduce((p, d) => p * d, 1) / rows; // x [..ids.shape, ...rest]
    const xv = b.readSync(x.dataId);
    const iv = b.readSync(ids.dataId);
    const out = x.dtype === 'int32' ? new Int32Array(n * inner) : new Float32Array(n * inner);
    for (let r = 0; r < rows; r++) {
      const s = iv[r];
      if (s < 0 || s >= n) continue;
      const o = s * inner;
      const i = r * inner;
      for (let j = 0; j < inner; j++) out[o + j] += xv[i + j];
    }
    const shape = [n, ...x.shape.slice(ids.shape.length)];
    if (backendName === 'cpu') return b.makeTensorInfo(shape, x.dtype, out);
    const w = args.backend as WasmBackendLike;
    const info = w.makeOutput(shape, x.dtype);
    // The view is made after makeOutput: its malloc may grow the heap and replace the buffer.
    const off = w.dataIdMap.get(info.dataId).memoryOffset;
    (x.dtype === 'int32' ? new Int32Array(w.wasm.HEAPU8.buffer, off, out.length) : new Float32Array(w.wasm.HEAPU8.buffer, off, out.length)).set(out);
    return info;
  };
  return { kernelName: 'UnsortedSegmentSum', backendName, kernelFunc: kernelFunc as tf.KernelFunc };
}

const stock = new Map<string, tf.KernelConfig | null>();

/**
 * Registers this kernel for `backend` (on), or puts back the stock one (off; wasm then has none, as tfjs ships it).
 * The stock kernel is saved before the first override.
 */
export function useSegmentSum(backend: 'cpu' | 'wasm', on: boolean): void {
  if (!stock.has(backend)) stock.set(backend, tf.getKernel('UnsortedSegmentSum', backend) ?? null);
  if (tf.getKernel('UnsortedSegmentSum', backend)) tf.unregisterKernel('UnsortedSegmentSum', backend);
  const base = stock.get(backend);
  if (on) tf.registerKernel(segmentSumConfig(backend));
  else if (base) tf.registerKernel(base);
}

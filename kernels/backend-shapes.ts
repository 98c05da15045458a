// The parts of tfjs' wasm and cpu backends (4.22) that the addon's kernels read and write in place: the wasm heap
// with each tensor's offset, and the cpu backend's value buffers. Types only.
import type * as tf from '@tensorflow/tfjs';

/** tfjs-backend-wasm's BackendWasm, as an in-place kernel sees it. */
export interface WasmHeapBackend {
  dataIdMap: { get(id: object): { memoryOffset: number } };
  makeOutput(shape: number[], dtype: 'float32'): tf.TensorInfo;
  wasm: { HEAPU8: Uint8Array };
}

/** tfjs' MathBackendCPU, as an in-place kernel sees it. */
export interface CpuBuffersBackend {
  data: { get(id: object): { values?: unknown } };
  makeTensorInfo(shape: number[], dtype: 'float32', values: Float32Array): tf.TensorInfo;
}

// A zero-copy `Identity` for the tfjs wasm backend. tfjs clones every tensor it saves for a gradient (engine.ts
// `saveTensorsForBackwardMode`, customGrad's `save`) through Identity, and the stock wasm kernel copies the data
// (tfjs-backend-wasm 4.22 Identity.ts); the cpu backend instead shares it by reference count, as this does. tfjs
// tensors are immutable, so sharing is safe. Reference: the stock kernel (restored by DPO_KERNELS=reference).
import * as tf from '@tensorflow/tfjs';

interface RefCountedBackend {
  incRef(dataId: object): void;
}

/** Identity for 'wasm' sharing x's data; strings go to `fallback` (the stock kernel). */
export function sharedIdentityConfig(fallback: tf.KernelConfig): tf.KernelConfig {
  const kernelFunc = (args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo => {
    const x = args.inputs.x as tf.TensorInfo;
    if (x.dtype === 'string') return fallback.kernelFunc(args as never) as tf.TensorInfo;
    (args.backend as RefCountedBackend).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  };
  return { kernelName: 'Identity', backendName: 'wasm', kernelFunc: kernelFunc as tf.KernelFunc };
}

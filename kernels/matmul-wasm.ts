// `BatchMatMul` for the tfjs wasm backend that always lands on XNNPACK. The stock kernel uses XNNPACK only for one
// non-transposed [M, K] x [K, N] product and a naive loop otherwise (~30 vs ~1-2 GFLOP/s, tfjs-backend-wasm 4.22).
// Here transposed operands are transposed physically (the stock Transpose kernel) and each output matrix is one
// non-transposed 2-D product on zero-copy views of the wasm heap. Results follow tfjs semantics via planMatMul.
import * as tf from '@tensorflow/tfjs';
import { planMatMul } from './matmul.js';

type Info = tf.TensorInfo;
interface Attrs { transposeA: boolean; transposeB: boolean }

/** The parts of tfjs-backend-wasm's BackendWasm (4.22) this kernel relies on. */
interface WasmBackendLike {
  dataIdMap: { get(id: object): { memoryOffset: number } };
  dataIdNextNumber: number;
  makeOutput(shape: number[], dtype: 'float32'): Info;
  disposeData(id: object): void;
  wasm: {
    cwrap(name: string, ret: null, args: string[]): (...a: unknown[]) => void;
    tfjs: { registerTensor(id: number, size: number, offset: number): void; disposeData(id: number): void };
  };
}

type WasmMatMul = (aId: number, aShape: Uint8Array, aRank: number, bId: number, bShape: Uint8Array, bRank: number,
  ta: boolean, tb: boolean, outId: number) => void;

/**
 * A tensor id for `size` floats at byte `offset` of the heap, owned by someone else: the C++ side sees a tensor, and
 * disposing the view (`tfjs.disposeData`) forgets it without freeing memory (BackendWasm frees with `_free` itself).
 */
function withViews<T>(be: WasmBackendLike, f: (view: (offset: number, size: number) => number) => T): T {
  const ids: number[] = [];
  try {
    return f((offset, size) => {
      const id = be.dataIdNextNumber++;
      be.wasm.tfjs.registerTensor(id, size, offset);
      ids.push(id);
      return id;
    });
  } finally {
    for (const id of ids) be.wasm.tfjs.disposeData(id);
  }
}

const shape3 = (r: number, c: number) => new Uint8Array(new Int32Array([1, r, c]).buffer);

/**
 * A BatchMatMul kernel config for 'wasm'. `transpose` is the backend's Transpose kernel (used for transposed operands),
 * `fallback` the stock BatchMatMul (used for non-float32 inputs).
 */
export function xnnpackBatchMatMulConfig(transpose: tf.KernelConfig, fallback: tf.KernelConfig): tf.KernelConfig {
  let wasmMatMul: WasmMatMul | null = null;
  const kernelFunc = (args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): Info => {
    const { a, b } = args.inputs as { a: Info; b: Info };
    const { transposeA: ta, transposeB: tb } = args.attrs as unknown as Attrs;
    if (a.dtype !== 'float32' || b.dtype !== 'float32') return fallback.kernelFunc(args as never) as Info;
    const be = args.backend as WasmBackendLike;
    wasmMatMul ??= be.wasm.cwrap('BatchMatMul', null, ['number', 'array', 'number', 'number', 'array', 'number', 'number', 'number', 'number']) as WasmMatMul;
    const p = planMatMul(a.shape, b.shape, ta, tb);
    const { M, N, K } = p;
    // Physical transposes of the last two dims, so every product below is the fast non-transposed case.
    const swap = (t: Info): Info => {
      const perm = t.shape.map((_, i) => i);
      const r = perm.length;
      [perm[r - 2], perm[r - 1]] = [perm[r - 1], perm[r - 2]];
      return transpose.kernelFunc({ inputs: { x: t }, backend: args.backend as never, attrs: { perm } }) as Info;
    };
    const aa = ta ? swap(a) : a;
    const bb = tb ? swap(b) : b;
    try {
      const out = be.makeOutput(p.outShape, 'float32');
      if (p.batch === 0 || M === 0 || N === 0) return out;
      if (K === 0) {
        // The stock kernel's semantics: an empty sum is 0. A zero-filled output via the fallback keeps it exact.
        be.disposeData(out.dataId);
        return fallback.kernelFunc(args as never) as Info;
      }
      const off = (t: Info) => be.dataIdMap.get(t.dataId).memoryOffset;
      const [aBase, bBase, oBase] = [off(aa), off(bb), off(out)];
      withViews(be, (view) => {
        if (p.bStride === 0 && p.aStride === M * K) {
          // A batch of row blocks times one matrix: one taller product [batch*M, K] x [K, N].
          const rows = p.batch * M;
          wasmMatMul!(view(aBase, rows * K), shape3(rows, K), 3, view(bBase, K * N), shape3(K, N), 3, false, false, view(oBase, rows * N));
          return;
        }
        for (let i = 0; i < p.batch; i++) {
          const av = view(aBase + 4 * p.aIndex[i] * M * K, M * K);
          const bv = view(bBase + 4 * p.bIndex[i] * K * N, K * N);
          const ov = view(oBase + 4 * i * M * N, M * N);
          wasmMatMul!(av, shape3(M, K), 3, bv, shape3(K, N), 3, false, false, ov);
        }
      });
      return out;
    } finally {
      if (aa !== a) be.disposeData(aa.dataId);
      if (bb !== b) be.disposeData(bb.dataId);
    }
  };
  return { kernelName: 'BatchMatMul', backendName: 'wasm', kernelFunc: kernelFunc as tf.KernelFunc };
}

// The shape contract of tfjs `BatchMatMul` (transposes + NumPy-style batch broadcast) as a plan of 2-D GEMMs, and a
// plain float64 reference. The fast kernels (matmul-blas.ts, matmul-wasm.ts) execute the plan; tests check them against it.

export interface MatMulPlan {
  /** Rows of op(a), columns of op(b), and the shared inner size. */
  M: number;
  N: number;
  K: number;
  /** Number of [M, N] output matrices (the product of the broadcast batch dims). */
  batch: number;
  /** Output shape: the broadcast batch dims, then [M, N]. */
  outShape: number[];
  /** For output matrix i, which matrix of a (of b) it reads, counted in matrices of M*K (K*N) elements. */
  aIndex: Int32Array;
  bIndex: Int32Array;
  /**
   * When the matrix indices are an arithmetic sequence (0 for a broadcast operand, i for a full one), the step in
   * elements, so one strided call covers the whole batch; null when the broadcast pattern needs one call per matrix.
   */
  aStride: number | null;
  bStride: number | null;
}

/** Batch dims broadcast as tfjs `assertAndGetBroadcastShape`: right-aligned, each pair equal or one of them 1. */
function broadcastDims(a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const x = a[a.length - n + i] ?? 1;
    const y = b[b.length - n + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) throw new Error(`matMul: batch dims [${a}] and [${b}] do not broadcast`);
    out[i] = x === 1 ? y : x;
  }
  return out;
}

/** Index of each output matrix into an operand's batch dims (right-aligned; size-1 dims repeat). */
function batchIndex(outDims: readonly number[], dims: readonly number[], batch: number): Int32Array {
  const idx = new Int32Array(batch);
  const off = outDims.length - dims.length;
  for (let i = 0; i < batch; i++) {
    let rest = i;
    let flat = 0;
    let scale = 1;
    for (let d = outDims.length - 1; d >= 0; d--) {
      const coord = rest % outDims[d];
      rest = Math.floor(rest / outDims[d]);
      const dd = d - off;
      if (dd >= 0) {
        if (dims[dd] !== 1) flat += coord * scale;
        scale *= dims[dd];
      }
    }
    idx[i] = flat;
  }
  return idx;
}

function uniformStride(idx: Int32Array, size: number): number | null {
  if (idx.length <= 1) return 0;
  const step = idx[1] - idx[0];
  if (step !== 0 && step !== 1) return null;
  for (let i = 0; i < idx.length; i++) if (idx[i] !== idx[0] + i * step) return null;
  return idx[0] === 0 ? step * size : null;
}

export function planMatMul(aShape: readonly number[], bShape: readonly number[], transposeA: boolean, transposeB: boolean): MatMulPlan {
  const ra = aShape.length;
  const rb = bShape.length;
  if (ra < 2 || rb < 2) throw new Error(`matMul: ranks ${ra} and ${rb} (expected >= 2)`);
  const M = transposeA ? aShape[ra - 1] : aShape[ra - 2];
  const Ka = transposeA ? aShape[ra - 2] : aShape[ra - 1];
  const Kb = transposeB ? bShape[rb - 1] : bShape[rb - 2];
  const N = transposeB ? bShape[rb - 2] : bShape[rb - 1];
  if (Ka !== Kb) throw new Error(`matMul: inner sizes ${Ka} and ${Kb} of [${aShape}] and [${bShape}] differ`);
  const aDims = aShape.slice(0, -2);
  const bDims = bShape.slice(0, -2);
  const outDims = broadcastDims(aDims, bDims);
  const batch = outDims.reduce((p, d) => p * d, 1);
  const aIndex = batchIndex(outDims, aDims, batch);
  const bIndex = batchIndex(outDims, bDims, batch);
  return {
    M, N, K: Ka, batch, outShape: [...outDims, M, N], aIndex, bIndex,
    aStride: uniformStride(aIndex, M * Ka), bStride: uniformStride(bIndex, Ka * N),
  };
}

/** Plain reference: float64 sums over the plan, no blocking. a and b are row-major as their shapes say. */
export function matMulReference(a: Float32Array, aShape: readonly number[], b: Float32Array, bShape: readonly number[],
  transposeA: boolean, transposeB: boolean): { values: Float32Array; shape: number[] } {
  const p = planMatMul(aShape, bShape, transposeA, transposeB);
  const { M, N, K } = p;
  const out = new Float32Array(p.batch * M * N);
  for (let i = 0; i < p.batch; i++) {
    const ao = p.aIndex[i] * M * K;
    const bo = p.bIndex[i] * K * N;
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const x = a[ao + (transposeA ? k * M + m : m * K + k)];
          const y = b[bo + (transposeB ? n * K + k : k * N + n)];
          s += x * y;
        }
        out[i * M * N + m * N + n] = s;
      }
    }
  }
  return { values: out, shape: p.outShape };
}

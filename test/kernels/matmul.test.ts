// The BatchMatMul overrides (XNNPACK views on wasm, the CBLAS addon on wasm and cpu) against the stock tfjs kernel
// and a float64 reference: transposes, batch broadcast, ranks 2-4, gradients, heap growth. Addon cases skip when
// the addon is not built.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { matMulReference, planMatMul } from '../../kernels/matmul.js';
import { loadBlasAddon } from '../../kernels/matmul-blas.js';
import { activeMatMul, registerFastKernels, useMatMul, type MatMulImpl } from '../../src/backend/kernels.js';

const require = createRequire(import.meta.url);
const hasAddon = loadBlasAddon().addon !== null;

beforeAll(async () => {
  tf.env().set('PROD', true);
  setWasmPaths(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm')) + '/');
  await tf.setBackend('wasm');
  await tf.ready();
});

afterAll(() => {
  useMatMul('wasm', 'stock');
  useMatMul('cpu', 'stock');
});

/** Deterministic values in [-1, 1). */
function values(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

const size = (s: number[]) => s.reduce((a, b) => a * b, 1);

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Shapes [a, b, transposeA, transposeB]: ranks 2-4, every transpose, broadcast both ways, odd sizes. */
const CASES: [number[], number[], boolean, boolean][] = [];
for (const [ta, tb] of [[false, false], [false, true], [true, false], [true, true]] as const) {
  const A = (b: number[], m: number, k: number) => [...b, ...(ta ? [k, m] : [m, k])];
  const B = (b: number[], k: number, n: number) => [...b, ...(tb ? [n, k] : [k, n])];
  CASES.push([A([], 7, 5), B([], 5, 3), ta, tb]); // rank 2
  CASES.push([A([], 1, 9), B([], 9, 1), ta, tb]); // a dot product
  CASES.push([A([3], 6, 4), B([3], 4, 5), ta, tb]); // equal batches
  CASES.push([A([1], 6, 4), B([3], 4, 5), ta, tb]); // [1,M,K] x [B,K,N]
  CASES.push([A([3], 6, 4), B([1], 4, 5), ta, tb]); // [B,M,K] x [1,K,N]
  CASES.push([A([2, 3], 5, 4), B([2, 3], 4, 6), ta, tb]); // rank 4
  CASES.push([A([2, 3], 5, 4), B([], 4, 6), ta, tb]); // rank 4 x rank 2
}

/** Broadcast both ways ([2,1] x [1,3]): NumPy semantics, one call per matrix. The stock kernels get this case wrong
 * (max(batchA, batchB) matrices under a [2, 3] shape), so it is checked against the float64 reference only. */
const GENERAL: [number[], number[], boolean, boolean][] = [
  [[2, 1, 5, 4], [1, 3, 4, 6], false, false], [[2, 1, 4, 5], [1, 3, 6, 4], true, true],
];

/** tfjs' BatchMatMul gradient does not sum over broadcast batch dims, so gradients are compared where none are broadcast. */
const sameBatch = ([as, bs]: [number[], number[], boolean, boolean]) => as.length === 2 && bs.length === 2 || String(as.slice(0, -2)) === String(bs.slice(0, -2));

const IMPLS: { backend: 'wasm' | 'cpu'; impl: MatMulImpl; run: boolean }[] = [
  { backend: 'wasm', impl: 'xnnpack', run: true },
  { backend: 'wasm', impl: 'blas', run: hasAddon },
  { backend: 'cpu', impl: 'blas', run: hasAddon },
];

/** Runs f on `backend` with `impl` registered, reading the results back before switching anything. */
async function withImpl<T>(backend: 'wasm' | 'cpu', impl: MatMulImpl, f: () => T): Promise<T> {
  await tf.setBackend(backend);
  useMatMul(backend, impl);
  try {
    return f();
  } finally {
    useMatMul(backend, 'stock');
  }
}

function product(aShape: number[], bShape: number[], ta: boolean, tb: boolean, seed: number): Float32Array {
  return tf.tidy(() => {
    const a = tf.tensor(values(size(aShape), seed), aShape);
    const b = tf.tensor(values(size(bShape), seed + 1), bShape);
    return tf.matMul(a as tf.Tensor3D, b as tf.Tensor3D, ta, tb).dataSync() as Float32Array;
  });
}

function productGrads(aShape: number[], bShape: number[], ta: boolean, tb: boolean, seed: number): Float32Array[] {
  return tf.tidy(() => {
    const a = tf.tensor(values(size(aShape), seed), aShape);
    const b = tf.tensor(values(size(bShape), seed + 1), bShape);
    const planOut = planMatMul(aShape, bShape, ta, tb).outShape;
    const dy = tf.tensor(values(size(planOut), seed + 2), planOut);
    // A weighted sum, so each output element gets its own upstream gradient.
    const g = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(tf.matMul(x as tf.Tensor3D, y as tf.Tensor3D, ta, tb), dy)));
    return g([a, b]).map((t) => t.dataSync() as Float32Array);
  });
}

describe('planMatMul and the float64 reference', () => {
  it('computes a hand-checked product with transposes and batch broadcast', () => {
    // a [1, 2, 2] (transposed: [[1, 3], [2, 4]]) times b [2, 2, 1]: batch broadcast of a.
    const r = matMulReference(new Float32Array([1, 2, 3, 4]), [1, 2, 2], new Float32Array([1, 1, 0, 1]), [2, 2, 1], true, false);
    expect(r.shape).toEqual([2, 2, 1]);
    expect(Array.from(r.values)).toEqual([4, 6, 3, 4]);
  });

  it('maps broadcast batches and finds strided runs', () => {
    const p = planMatMul([2, 1, 5, 4], [1, 3, 4, 6], false, false);
    expect(p.outShape).toEqual([2, 3, 5, 6]);
    expect(Array.from(p.aIndex)).toEqual([0, 0, 0, 1, 1, 1]);
    expect(Array.from(p.bIndex)).toEqual([0, 1, 2, 0, 1, 2]);
    expect([p.aStride, p.bStride]).toEqual([null, null]);
    const q = planMatMul([3, 6, 4], [1, 4, 5], false, false);
    expect([q.aStride, q.bStride]).toEqual([24, 0]);
    expect(() => planMatMul([2, 3, 3], [3, 3, 3], false, false)).toThrow(/do not broadcast/);
    expect(() => planMatMul([3, 4], [5, 3], false, false)).toThrow(/inner sizes/);
  });

  it('agrees with the stock cpu kernel on every case', async () => {
    await tf.setBackend('cpu');
    useMatMul('cpu', 'stock');
    CASES.forEach(([as, bs, ta, tb], i) => {
      const ref = matMulReference(values(size(as), i), as, values(size(bs), i + 1), bs, ta, tb);
      const d = maxDiff(product(as, bs, ta, tb, i), ref.values);
      expect(d, `case ${i} [${as}]x[${bs}] ta=${ta} tb=${tb}: max diff ${d}`).toBeLessThan(1e-5);
    });
  });
});

describe.each(IMPLS)('BatchMatMul=$impl on $backend', ({ backend, impl, run }) => {
  it.skipIf(!run)('matches the stock kernel and the float64 reference', async () => {
    for (const [i, [as, bs, ta, tb]] of CASES.entries()) {
      const stock = await withImpl(backend, 'stock', () => product(as, bs, ta, tb, i));
      const fast = await withImpl(backend, impl, () => product(as, bs, ta, tb, i));
      const ref = matMulReference(values(size(as), i), as, values(size(bs), i + 1), bs, ta, tb).values;
      const d = Math.max(maxDiff(fast, stock), maxDiff(fast, ref));
      expect(d, `case ${i} [${as}]x[${bs}] ta=${ta} tb=${tb}: max diff ${d}`).toBeLessThan(1e-5);
    }
    for (const [i, [as, bs, ta, tb]] of GENERAL.entries()) {
      const fast = await withImpl(backend, impl, () => product(as, bs, ta, tb, i));
      const d = maxDiff(fast, matMulReference(values(size(as), i), as, values(size(bs), i + 1), bs, ta, tb).values);
      expect(d, `general case ${i} [${as}]x[${bs}]: max diff ${d}`).toBeLessThan(1e-5);
    }
  });

  it.skipIf(!run)('gives the stock gradients through tf.grads', async () => {
    for (const [i, [as, bs, ta, tb]] of CASES.entries()) {
      if (!sameBatch(CASES[i])) continue;
      const stock = await withImpl(backend, 'stock', () => productGrads(as, bs, ta, tb, 10 + i));
      const fast = await withImpl(backend, impl, () => productGrads(as, bs, ta, tb, 10 + i));
      for (const k of [0, 1]) {
        const d = maxDiff(fast[k], stock[k]);
        expect(d, `case ${i} [${as}]x[${bs}] ta=${ta} tb=${tb}, d${k ? 'b' : 'a'}: max diff ${d}`).toBeLessThan(1e-5);
      }
    }
  });

  it.skipIf(!run)('is exact on a larger product whose output grows the heap, and leaks no tensors', async () => {
    const [as, bs] = [[2, 96, 160], [160, 1536]]; // output [2, 96, 1536]: 1.2 MB
    const stock = await withImpl(backend, 'stock', () => product(as, bs, false, false, 7));
    const big = await withImpl(backend, impl, () => {
      const before = tf.memory().numTensors;
      // Hold 64 MB first, so the product's output allocation grows the wasm heap on its way.
      const hold = tf.zeros([16 << 20]);
      const out = product(as, bs, false, false, 7);
      hold.dispose();
      expect(tf.memory().numTensors).toBe(before);
      return out;
    });
    const d = maxDiff(big, stock);
    expect(d, `max diff ${d}`).toBeLessThan(1e-4);
  });
});

describe('registerFastKernels', () => {
  it('leaves the stock kernel with DPO_KERNELS=reference and the tensorflow backend untouched', () => {
    expect(registerFastKernels('wasm', 'reference')).toMatch(/BatchMatMul=stock/);
    expect(activeMatMul('wasm')).toBe('stock');
    expect(registerFastKernels('tensorflow', 'auto')).toBe('kernels: tensorflow built-ins');
  });

  it('picks the addon when built, else XNNPACK on wasm and stock on cpu', () => {
    expect(registerFastKernels('wasm', 'auto')).toMatch(hasAddon ? /BatchMatMul=blas/ : /BatchMatMul=xnnpack/);
    expect(registerFastKernels('cpu', 'auto')).toMatch(hasAddon ? /BatchMatMul=blas/ : /BatchMatMul=stock/);
    expect(registerFastKernels('wasm', 'xnnpack')).toMatch(/BatchMatMul=xnnpack/);
    useMatMul('wasm', 'stock');
    useMatMul('cpu', 'stock');
  });

  it.skipIf(hasAddon)('refuses the addon when it is not built', () => {
    expect(() => useMatMul('cpu', 'blas')).toThrow(/not built/);
  });
});

describe('scripts/build-native.mjs', () => {
  const script = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'scripts', 'build-native.mjs');
  it('never fails: no compiler, or DPO_NATIVE=0, is a logged skip with exit 0', () => {
    const noCompiler = spawnSync(process.execPath, [script], { encoding: 'utf8', env: { PATH: '/nonexistent', HOME: '/nonexistent' } });
    expect(noCompiler.status).toBe(0);
    expect(noCompiler.stdout).toMatch(/^native BLAS kernels: skipped \(no C\+\+ compiler/);
    const off = spawnSync(process.execPath, [script], { encoding: 'utf8', env: { ...process.env, DPO_NATIVE: '0' } });
    expect(off.status).toBe(0);
    expect(off.stdout).toMatch(/skipped \(DPO_NATIVE=0\)/);
  });
});

// The cpu backend's strided-copy Transpose and Slice (kernels/layout-cpu.ts): equal, element for element, to a naive
// index computation and to the stock kernels on random shapes, permutations and boxes (float32, int32, bool; size-1
// and empty dimensions; contiguous slices left to the stock view); gradients unchanged; off restores the stock kernels.
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sliceValues, transposeValues } from '../../kernels/layout-cpu.js';
import { useLayoutKernels } from '../../src/backend/kernels.js';
import { Rng } from '../../src/util/rng.js';

let stockTranspose: tf.KernelConfig;
let stockSlice: tf.KernelConfig;

beforeAll(async () => {
  await tf.setBackend('cpu');
  stockTranspose = tf.getKernel('Transpose', 'cpu')!;
  stockSlice = tf.getKernel('Slice', 'cpu')!;
});

afterAll(() => useLayoutKernels(false));

const size = (s: number[]) => s.reduce((a, b) => a * b, 1);

/** Row-major index of `loc` in `shape`. */
function flat(loc: number[], shape: number[]): number {
  return loc.reduce((a, l, i) => a * shape[i] + l, 0);
}

/** Location of flat index `i` in `shape`. */
function unflat(i: number, shape: number[]): number[] {
  const loc = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    loc[d] = i % shape[d];
    i = Math.floor(i / shape[d]);
  }
  return loc;
}

function randomShape(rng: Rng, rank: number): number[] {
  return Array.from({ length: rank }, () => [1, 2, 3, 5, 8, 33, 64][rng.nextU32() % 7]).map((d, i, a) => (size(a) > 40000 && i > 0 ? 1 : d));
}

function randomPerm(rng: Rng, n: number): number[] {
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.nextU32() % (i + 1);
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}

describe('strided Transpose and Slice on cpu', () => {
  it('transposeValues and sliceValues equal a naive index computation', () => {
    const rng = new Rng(11);
    for (let c = 0; c < 200; c++) {
      const shape = randomShape(rng, 1 + (c % 5));
      const x = Float32Array.from({ length: size(shape) }, (_, i) => i);
      const perm = randomPerm(rng, shape.length);
      const oshape = perm.map((p) => shape[p]);
      const t = transposeValues(x, shape, perm);
      for (let i = 0; i < t.length; i++) {
        const o = unflat(i, oshape);
        const loc = new Array<number>(shape.length);
        perm.forEach((p, k) => { loc[p] = o[k]; });
        if (t[i] !== x[flat(loc, shape)]) throw new Error(`transpose [${shape}] perm [${perm}] at ${i}: ${t[i]} vs ${x[flat(loc, shape)]}`);
      }
      const begin = shape.map((d) => rng.nextU32() % d);
      const sz = shape.map((d, i) => rng.nextU32() % (d - begin[i] + 1));
      const s = sliceValues(x, shape, begin, sz);
      expect(s.length).toBe(size(sz));
      for (let i = 0; i < s.length; i++) {
        const loc = unflat(i, sz).map((l, k) => l + begin[k]);
        if (s[i] !== x[flat(loc, shape)]) throw new Error(`slice [${shape}] at [${begin}] size [${sz}], ${i}`);
      }
    }
  });

  it('the registered kernels give the stock kernels\' tensors for float32, int32 and bool, with the stock fallbacks', () => {
    const rng = new Rng(5);
    const run = (on: boolean, f: () => tf.Tensor) => {
      useLayoutKernels(on);
      return tf.tidy(() => { const y = f(); return { shape: y.shape, dtype: y.dtype, data: Array.from(y.dataSync() as ArrayLike<number>) }; });
    };
    let cases = 0;
    for (let c = 0; c < 60; c++) {
      const shape = randomShape(rng, 1 + (c % 5));
      const dtype = (['float32', 'int32', 'bool'] as const)[c % 3];
      const vals = Array.from({ length: size(shape) }, () => (dtype === 'bool' ? rng.nextU32() % 2 : rng.nextU32() % 1000 - 500));
      const perm = randomPerm(rng, shape.length);
      const begin = shape.map((d) => rng.nextU32() % d);
      const sz = shape.map((d, i) => (c % 4 === 0 ? -1 : 1 + (rng.nextU32() % (d - begin[i]))));
      const mk = () => tf.tensor(vals, shape, dtype);
      for (const f of [() => tf.transpose(mk(), perm), () => tf.slice(mk(), begin, sz), () => tf.slice(mk(), 0, shape.map((d, i) => (i === 0 ? d : -1)))]) {
        expect(run(true, f)).toEqual(run(false, f));
        cases++;
      }
    }
    // Empty results, a rank-0 transpose, strings (stock), and a bad box gets the stock error.
    expect(run(true, () => tf.slice(tf.ones([3, 4]), [1, 0], [0, 4])).shape).toEqual([0, 4]);
    expect(run(true, () => tf.transpose(tf.scalar(3))).data).toEqual([3]);
    useLayoutKernels(true);
    expect(tf.tidy(() => tf.slice(tf.tensor([['a', 'b'], ['c', 'd']]), [0, 1], [2, 1]).arraySync())).toEqual([['b'], ['d']]);
    expect(() => tf.slice(tf.ones([3, 4]), [2, 0], [2, 4])).toThrow();
    expect(cases).toBe(180);
  });

  it('gradients through transpose and slice are the stock ones', () => {
    const f = (x: tf.Tensor) => tf.sum(tf.mul(tf.slice(tf.transpose(x, [2, 0, 1]), [1, 2, 0], [3, 2, 4]), tf.range(0, 24).reshape([3, 2, 4])));
    const x = tf.randomNormal([5, 4, 6], 0, 1, 'float32', 2);
    useLayoutKernels(true);
    const fast = tf.grad(f)(x).arraySync();
    useLayoutKernels(false);
    expect(tf.grad(f)(x).arraySync()).toEqual(fast);
    x.dispose();
  });

  it('off restores the stock kernels, on installs the strided ones', () => {
    useLayoutKernels(true);
    expect(tf.getKernel('Transpose', 'cpu')!.kernelFunc).not.toBe(stockTranspose.kernelFunc);
    useLayoutKernels(false);
    expect(tf.getKernel('Transpose', 'cpu')!.kernelFunc).toBe(stockTranspose.kernelFunc);
    expect(tf.getKernel('Slice', 'cpu')!.kernelFunc).toBe(stockSlice.kernelFunc);
  });
});

// kernels/segment-sum.ts against the stock cpu UnsortedSegmentSum: values (ids repeated, missing, out of range, 2-D
// ids), and the embedding gradient of tf.gather through it; on wasm, which has no stock kernel, the same values.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useSegmentSum } from '../../kernels/segment-sum.js';
import { Rng } from '../../src/util/rng.js';

const rng = new Rng(11);
const x = Array.from({ length: 7 * 5 }, () => rng.normal());
const ids = [3, 0, 3, -1, 9, 2, 0];

function compute(): { sum: number[]; grad: number[] } {
  return tf.tidy(() => {
    const sum = Array.from(tf.unsortedSegmentSum(tf.tensor2d(x, [7, 5]), tf.tensor1d(ids, 'int32'), 6).dataSync());
    const table = tf.tensor2d(x.slice(0, 6 * 5), [6, 5]);
    const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.gather(t, tf.tensor2d([[1, 4, 1], [5, 1, 0]], [2, 3], 'int32')), tf.range(1, 6))))(table);
    return { sum, grad: Array.from(g.dataSync()) };
  });
}

describe('UnsortedSegmentSum', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });
  afterAll(() => {
    useSegmentSum('cpu', false);
  });

  it('equals the stock cpu kernel, and gives the gather gradient', () => {
    useSegmentSum('cpu', false);
    const stock = compute();
    useSegmentSum('cpu', true);
    const ours = compute();
    expect(ours.sum).toEqual(stock.sum.map((v) => Math.fround(v)));
    expect(ours.grad).toEqual(stock.grad);
    // Row 1 of the table is gathered 3 times, each weighted [1..5]; row 2 never; row 0, 4, 5 once.
    expect(ours.grad.slice(5, 10)).toEqual([3, 6, 9, 12, 15]);
    expect(ours.grad.slice(10, 15)).toEqual([0, 0, 0, 0, 0]);
  });

  it('runs on wasm, which ships none, with the same values', async () => {
    useSegmentSum('cpu', true);
    const cpu = compute();
    await tf.setBackend('wasm');
    useSegmentSum('wasm', true);
    const wasm = compute();
    await tf.setBackend('cpu');
    for (const k of ['sum', 'grad'] as const) expect(Math.max(...wasm[k].map((v, i) => Math.abs(v - cpu[k][i])))).toBeLessThan(1e-6);
  });
});

// The log-prob kernel's metric sums (TRL logits/chosen numerator, mean_token_accuracy's hits) against float64 numpy,
// for the chunked kernel at several chunk sizes and the plain reference; and that the stats carry no gradient.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { completionLogprobs, completionStats, completionStatsReference } from '../../kernels/logprob.js';

// Golden values: numpy float64 on the same inputs (h = 1.5 sin(1 + 7b + 3t + k), W = 0.9 cos(5v + 2k)):
//   z = h @ W.T; for t < T-1 with m = mask[b, t+1], lab = ids[b, t+1]:
//   logp += m (z[t, lab] - logsumexp z[t]); logitSum += m mean(z[t]); correct += m [argmax z[t] == lab]
const GOLDEN = { logps: [-7.1167089, -14.16517029], logitSums: [-0.11211108, 0.35954274], correct: [1, 0] };
const B = 2, T = 6, H = 3, V = 7;

function inputs() {
  const h = tf.tensor3d(Array.from({ length: B * T * H }, (_, i) => {
    const b = Math.floor(i / (T * H)), t = Math.floor(i / H) % T, k = i % H;
    return 1.5 * Math.sin(1 + b * 7 + t * 3 + k);
  }), [B, T, H]);
  const w = tf.tensor2d(Array.from({ length: V * H }, (_, i) => 0.9 * Math.cos(Math.floor(i / H) * 5 + (i % H) * 2)), [V, H]);
  const ids = tf.tensor2d([[0, 3, 1, 4, 4, 2], [5, 6, 6, 0, 1, 3]], [B, T], 'int32');
  const mask = tf.tensor2d([[0, 0, 1, 1, 1, 0], [0, 1, 1, 1, 1, 1]], [B, T]);
  return { h, w, ids, mask };
}

const close = (got: tf.Tensor, want: number[], tol: number) => {
  const g = Array.from(got.dataSync());
  const d = Math.max(...g.map((x, i) => Math.abs(x - want[i])));
  if (d > tol) console.log(`max |diff| ${d}: got ${g} want ${want}`);
  expect(d).toBeLessThanOrEqual(tol);
};

describe('completionStats', () => {
  beforeAll(async () => { await tf.setBackend('cpu'); });

  it('matches numpy float64 for chunk 1, 2, 5 and the plain reference', () => {
    const x = inputs();
    for (const chunk of [1, 2, 5]) {
      const s = completionStats(x.h, x.w, x.ids, x.mask, chunk);
      close(s.logps, GOLDEN.logps, 1e-5);
      close(s.logitSums, GOLDEN.logitSums, 1e-5);
      close(s.correct, GOLDEN.correct, 0);
      tf.dispose([s.logps, s.logitSums, s.correct]);
    }
    const r = completionStatsReference(x.h, x.w, x.ids, x.mask, 3);
    close(r.logps, GOLDEN.logps, 1e-5);
    close(r.logitSums, GOLDEN.logitSums, 1e-5);
    close(r.correct, GOLDEN.correct, 0);
    tf.dispose([r.logps, r.logitSums, r.correct, ...Object.values(x)]);
  });

  it('the gradient of the log-probs is that of completionLogprobs; the stats rows add none', () => {
    const x = inputs();
    const dy = tf.tensor1d([0.7, -1.3]);
    const plain = tf.grad((h: tf.Tensor) => tf.sum(tf.mul(completionLogprobs(h as tf.Tensor3D, x.w, x.ids, x.mask, 2), dy)))(x.h);
    const withStats = tf.grad((h: tf.Tensor) => {
      const s = completionStats(h as tf.Tensor3D, x.w, x.ids, x.mask, 2);
      return tf.add(tf.sum(tf.mul(s.logps, dy)), tf.add(tf.sum(s.logitSums), tf.sum(s.correct)));
    })(x.h);
    const d = tf.max(tf.abs(tf.sub(plain, withStats))).dataSync()[0];
    expect(d).toBeLessThan(1e-6);
    tf.dispose([plain, withStats, dy, ...Object.values(x)]);
  });
});

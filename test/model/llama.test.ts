// Llama forward vs the float64 numpy reference (GQA + llama3 rope; tied + biases + MQA), padding, head, memory.
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LlamaConfig } from '../../src/config/llama.js';
import { expectedWeightShapes, forwardHidden, forwardLogits, headLogits } from '../../src/model/llama.js';
import type { Weights } from '../../src/model/llama.js';
import { batchOf, completionLogp, disposeWeights, loadModel, maxAbsDiff, readFixture } from './fixture.js';
import type { ModelFixture } from './fixture.js';

const fixtures: Record<string, { fx: ModelFixture; cfg: LlamaConfig; w: Weights }> = {};

beforeAll(async () => {
  await tf.setBackend('cpu');
  for (const name of ['base.json', 'tied.json']) {
    const fx = readFixture<ModelFixture>(name);
    fixtures[name] = { fx, ...loadModel(fx) };
  }
});

afterAll(() => {
  for (const f of Object.values(fixtures)) disposeWeights(f.w);
});

function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string): void {
  const d = maxAbsDiff(got, want);
  if (!(d < tol)) console.log(`${what}: max abs diff ${d} (tol ${tol})`);
  expect(d).toBeLessThan(tol);
}

describe.each(['base.json', 'tied.json'])('forward vs float64 reference: %s', (name) => {
  it('expectedWeightShapes lists exactly the fixture weights', () => {
    const { fx, cfg } = fixtures[name]!;
    const want = Object.fromEntries(Object.entries(fx.weights).map(([k, p]) => [k, p.shape]));
    expect(expectedWeightShapes(cfg)).toEqual(want);
  });

  it('logits match to 1e-4 on every row, padded rows included, and are finite', () => {
    const { fx, cfg, w } = fixtures[name]!;
    const { ids, mask } = batchOf(fx);
    const logits = forwardLogits(cfg, w, ids, mask);
    expect(logits.shape).toEqual([fx.input_ids.length, fx.input_ids[0]!.length, cfg.vocabSize]);
    const got = logits.dataSync();
    expect(got.every(Number.isFinite)).toBe(true);
    expectClose(got, fx.expected_logits.flat(2), 1e-4, `${name} logits`);
    // Completion log-probs, the quantity DPO uses, from our logits.
    const lp = completionLogp(logits.arraySync() as number[][][], fx);
    expectClose(lp, fx.expected_completion_logp, 1e-3, `${name} completion logp`);
    tf.dispose([ids, mask, logits]);
  });
});

describe('padding and the head', () => {
  it('a row gives the same logits alone, right-padded or left-padded in a batch', () => {
    const { fx, cfg, w } = fixtures['base.json']!;
    const row = fx.input_ids[1]!.slice(0, 6); // the 6-token row
    const alone = tf.tidy(() => forwardLogits(cfg, w, tf.tensor2d([row], undefined, 'int32'), tf.ones([1, 6]) as tf.Tensor2D).arraySync()[0]!);
    const pad = [7, 7, 7, 7];
    const batch = tf.tidy(() =>
      forwardLogits(
        cfg, w,
        tf.tensor2d([[...row, ...pad], [...pad, ...row], fx.input_ids[0]!], undefined, 'int32'),
        tf.tensor2d([[1, 1, 1, 1, 1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1, 1, 1, 1, 1], fx.attention_mask[0]!]),
      ).arraySync(),
    );
    expect(batch.flat(2).every(Number.isFinite)).toBe(true); // left-pad query rows see no key: still finite
    expectClose(batch[0]!.slice(0, 6).flat(), alone.flat(), 1e-5, 'right-padded row');
    expectClose(batch[1]!.slice(4).flat(), alone.flat(), 1e-5, 'left-padded row');
  });

  it('headLogits on a chunk of hidden rows equals the same rows of forwardLogits', () => {
    const { fx, cfg, w } = fixtures['tied.json']!;
    const { ids, mask } = batchOf(fx);
    const [full, chunk] = tf.tidy(() => {
      const hidden = forwardHidden(cfg, w, ids, mask);
      const last = tf.slice(hidden, [0, 2, 0], [-1, 3, -1]); // [B, 3, H]
      return [forwardLogits(cfg, w, ids, mask).slice([0, 2, 0], [-1, 3, -1]), headLogits(cfg, w, last)];
    });
    expect(chunk!.shape).toEqual(full!.shape);
    expectClose(chunk!.dataSync(), full!.dataSync(), 1e-6, 'chunked head');
    tf.dispose([ids, mask, full!, chunk!]);
  });

  it('leaks no tensors', () => {
    const { fx, cfg, w } = fixtures['base.json']!;
    const { ids, mask } = batchOf(fx);
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      forwardLogits(cfg, w, ids, mask);
    });
    const h = forwardHidden(cfg, w, ids, mask);
    h.dispose();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([ids, mask]);
  });

  it('names a missing weight', () => {
    const { fx, cfg, w } = fixtures['base.json']!;
    const { ids, mask } = batchOf(fx);
    const partial = { ...w };
    delete partial['model.layers.1.mlp.up_proj.weight'];
    expect(() => forwardHidden(cfg, partial, ids, mask)).toThrow(/model\.layers\.1\.mlp\.up_proj\.weight: missing/);
    expect(() => forwardHidden(cfg, w, ids, tf.ones([1, 2]) as tf.Tensor2D)).toThrow(/attentionMask/);
    tf.dispose([ids, mask]);
  });
});

// transformers v5 config.json (rope_parameters + dtype) beside the v4 layout: the tiny model written in both layouts
// from one seed gives bit-identical log-probs, and merge writes back the layout its source came from.
// v5 layout as in transformers v5 models/llama/configuration_llama.py and modeling_rope_utils.py (RopeParameters).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeTinyModel } from '../../src/io/tiny-model.js';
import { loadModel, disposeModel, type LoadedModel } from '../../src/io/model-dir.js';
import { writeMergedModel } from '../../src/io/merge.js';
import { sequenceLogprobs } from '../../src/dpo/logprobs.js';
import { createLora, disposeLora } from '../../src/model/lora.js';
import { Rng } from '../../src/util/rng.js';
import { tempDir, maxAbsDiff } from '../train/helpers.js';

let root: string;
let v4: LoadedModel;
let v5: LoadedModel;
// Positions up to 40 with original_max_position_embeddings 64: every llama3 band matters for these logits.
const T = 40;
const ids = tf.tensor2d(Array.from({ length: 2 * T }, (_, i) => (i * 37 + 11) % 250), [2, T], 'int32');
const attn = tf.ones([2, T]) as tf.Tensor2D;
const lossMask = tf.tensor2d(Array.from({ length: 2 * T }, (_, i) => (i % T >= 5 ? 1 : 0)), [2, T]);
const logps = (m: LoadedModel) => tf.tidy(() => sequenceLogprobs(m.cfg, m.weights, ids, attn, lossMask).dataSync() as Float32Array);

beforeAll(async () => {
  await tf.setBackend('cpu');
  root = tempDir('cfg-layout');
  await writeTinyModel(join(root, 'v4'), { seed: 3, layout: 'v4' });
  await writeTinyModel(join(root, 'v5'), { seed: 3, layout: 'v5' });
  v4 = await loadModel(join(root, 'v4'));
  v5 = await loadModel(join(root, 'v5'));
});
afterAll(() => {
  disposeModel(v4);
  disposeModel(v5);
  rmSync(root, { recursive: true, force: true });
});

describe('config.json layouts', () => {
  it('the v5 file really is v5: rope_parameters and dtype, no rope_theta, rope_scaling or torch_dtype', () => {
    const j = JSON.parse(readFileSync(join(root, 'v5', 'config.json'), 'utf8'));
    expect(j.rope_parameters).toEqual({ factor: 8, high_freq_factor: 4, low_freq_factor: 1, original_max_position_embeddings: 64, rope_type: 'llama3', rope_theta: 500000 });
    expect(j.dtype).toBe('bfloat16');
    for (const k of ['rope_theta', 'rope_scaling', 'torch_dtype']) expect(k in j).toBe(false);
    expect(v5.cfg.configLayout).toBe('v5');
    expect(v4.cfg.configLayout).toBe('v4');
  });

  it('v4 and v5 layouts give the same log-probs (llama3 scaling and theta read from rope_parameters)', () => {
    const a = logps(v4);
    const b = logps(v5);
    expect(maxAbsDiff(a, b)).toBe(0);
    // And they are not the log-probs of the silent fallback this replaces (theta 10000, no scaling).
    const plain = { ...v5.cfg, ropeTheta: 10000, ropeScaling: null };
    const c = tf.tidy(() => sequenceLogprobs(plain, v5.weights, ids, attn, lossMask).dataSync() as Float32Array);
    expect(maxAbsDiff(a, c)).toBeGreaterThan(1e-4);
  });

  it('merge writes the v5 layout for a v5 source and the v4 layout for a v4 source', async () => {
    for (const [m, tag] of [[v5, 'v5'], [v4, 'v4']] as const) {
      const lora = createLora(m.cfg, { r: 2, alpha: 4, dropout: 0, targets: ['q_proj', 'v_proj'], useRslora: false }, 1);
      const rng = new Rng(5);
      for (const { B } of lora.layers.values()) B.assign(tf.tensor(Float32Array.from({ length: B.size }, () => rng.normal(0, 0.05)), B.shape));
      const out = join(root, `merged-${tag}`);
      try {
        await writeMergedModel(m, lora, out, 'F32');
      } finally {
        disposeLora(lora);
      }
      const j = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
      if (tag === 'v5') {
        expect(j.dtype).toBe('float32');
        expect('torch_dtype' in j).toBe(false);
        expect(j.rope_parameters.rope_theta).toBe(500000);
      } else {
        expect(j.torch_dtype).toBe('float32');
        expect('dtype' in j).toBe(false);
      }
      const merged = await loadModel(out);
      expect(merged.cfg.configLayout).toBe(tag);
      disposeModel(merged);
    }
  });
});

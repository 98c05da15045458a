// init-tiny --preset world: the model the learnable world needs (issue 16's prototype: byte-level, d 96, 4 layers,
// 4 heads, ~0.49M parameters), with the tiny tokenizer reduced to its 256 byte tokens and the 5 special tokens.
import * as tf from '@tensorflow/tfjs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { disposeModel, loadModel } from '../../src/io/model-dir.js';
import { TINY_PRESETS, writeTinyModel } from '../../src/io/tiny-model.js';
import { tempDir } from '../train/helpers.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('the world preset', () => {
  it('is d 96, 4 layers, 4 heads, 493,344 parameters, byte-level', async () => {
    const dir = join(tempDir('world-preset'), 'model');
    await writeTinyModel(dir, { ...TINY_PRESETS.world, seed: 1 });
    const m = await loadModel(dir);
    try {
      expect([m.cfg.hiddenSize, m.cfg.numLayers, m.cfg.numHeads, m.cfg.numKvHeads, m.cfg.intermediateSize, m.cfg.vocabSize]).toEqual([96, 4, 4, 4, 256, 261]);
      expect(m.cfg.ropeScaling).toBeNull();
      // embed + lm_head 2 * 261 * 96; per layer q,k,v,o 4 * 96^2 + gate,up,down 3 * 96 * 256 + 2 norms; final norm.
      const expected = 2 * 261 * 96 + 4 * (4 * 96 * 96 + 3 * 96 * 256 + 2 * 96) + 96;
      expect(expected).toBe(493_344);
      expect(Object.values(m.weights).reduce((n, t) => n + t.size, 0)).toBe(expected);
      // One token per byte (no merges), BOS first, specials after the 256 bytes.
      const text = 'def f(x):\n    return x * 2\n';
      const ids = m.tokenizer.encode(text);
      expect(ids.length).toBe(1 + Buffer.byteLength(text));
      expect(ids[0]).toBe(256);
      expect(m.tokenizer.decode(ids.slice(1), { skipSpecialTokens: true })).toBe(text);
      expect(m.tokenizer.eosId).toBe(260);
    } finally {
      disposeModel(m);
    }
  });
});

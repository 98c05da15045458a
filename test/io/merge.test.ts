// merge: the exported HF directory (adapter folded in) gives the logits of base + adapter, loads through the same
// strict loader, and keeps config and tokenizer files; BF16 export is within BF16 rounding.
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel, disposeModel, type LoadedModel } from '../../src/io/model-dir.js';
import { writeMergedModel } from '../../src/io/merge.js';
import { forwardLogits } from '../../src/model/llama.js';
import { createLora, disposeLora, type Lora } from '../../src/model/lora.js';
import { Rng } from '../../src/util/rng.js';
import { tempDir, tinyModelDir, maxAbsDiff } from '../train/helpers.js';

let root: string;
let base: LoadedModel;
let lora: Lora;
const ids = tf.tensor2d([[5, 9, 200, 31, 7, 1], [3, 3, 400, 12, 0, 0]], [2, 6], 'int32');
const mask = tf.tensor2d([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], [2, 6]);

function logits(m: LoadedModel, l: Lora | null): Float32Array {
  return tf.tidy(() => forwardLogits(m.cfg, m.weights, ids, mask, { lora: l }).dataSync() as Float32Array);
}

beforeAll(async () => {
  await tf.setBackend('cpu');
  root = tempDir('merge');
  base = await loadModel(await tinyModelDir(root, { numLayers: 2 }));
  lora = createLora(base.cfg, { r: 4, alpha: 8, dropout: 0, targets: ['q_proj', 'v_proj', 'o_proj', 'down_proj'], useRslora: false }, 1);
  // A trained adapter has B != 0; give it one so the merge changes the weights.
  const rng = new Rng(9);
  for (const { B } of lora.layers.values()) B.assign(tf.tensor(Float32Array.from({ length: B.size }, () => rng.normal(0, 0.05)), B.shape));
});

describe('merge', () => {
  it('F32 export: same logits as base + adapter (and different from the base)', async () => {
    const out = join(root, 'merged-f32');
    await writeMergedModel(base, lora, out, 'F32');
    const merged = await loadModel(out);
    try {
      const want = logits(base, lora);
      expect(maxAbsDiff(logits(merged, null), want)).toBeLessThan(1e-5);
      expect(maxAbsDiff(logits(base, null), want)).toBeGreaterThan(1e-3);
      for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) expect(existsSync(join(out, f))).toBe(true);
      expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).torch_dtype).toBe('float32');
    } finally {
      disposeModel(merged);
    }
  });

  it('BF16 sharded export: index + shards, logits within BF16 rounding', async () => {
    const out = join(root, 'merged-bf16');
    await writeMergedModel(base, lora, out, 'BF16', 60_000);
    expect(existsSync(join(out, 'model.safetensors.index.json'))).toBe(true);
    const merged = await loadModel(out);
    try {
      const want = logits(base, lora);
      const scale = Math.max(...Array.from(want, Math.abs));
      expect(maxAbsDiff(logits(merged, null), want) / scale).toBeLessThan(2e-2);
    } finally {
      disposeModel(merged);
      disposeLora(lora);
    }
  });
});

// The webgpu size checks, without a GPU: a weight above maxStorageBufferBindingSize is refused by name with the limit
// (Dawn would skip its kernels and return zeros), one at the limit passes, the embedding and lm_head pass when a row
// fits (split by rows, test/model/row-blocks.test.ts), and device bytes count int32/bool as 4.
import { describe, expect, it } from 'vitest';
import { checkWeightsFit, deviceBytes, formatBytes } from '../../src/backend/webgpu.js';
import { assertWeightsFit } from '../../src/backend/index.js';
import { BackendError } from '../../src/util/errors.js';

const LAVAPIPE = 134217728; // 128 MiB, what Mesa 25's lavapipe reports

describe('webgpu weight limits', () => {
  it('counts 4 bytes per float32/int32/bool element and 8 per complex64', () => {
    expect(deviceBytes([128256, 4096], 'float32')).toBe(128256 * 4096 * 4);
    expect(deviceBytes([3, 5], 'bool')).toBe(60);
    expect(deviceBytes([2], 'complex64')).toBe(16);
    expect(deviceBytes([], 'float32')).toBe(4);
    expect(formatBytes(LAVAPIPE)).toBe('128.0 MiB');
    expect(formatBytes(128256 * 4096 * 4)).toBe('1.96 GiB');
  });

  it('refuses the first weight above the limit by name, with its size and the limit', () => {
    // Llama 3.1 405B's MLP weights: 1.62 GiB each, and not splittable.
    const shapes = { 'model.norm.weight': [16384], 'model.embed_tokens.weight': [128256, 16384], 'model.layers.0.mlp.gate_proj.weight': [53248, 16384] };
    let err: unknown;
    try {
      checkWeightsFit(shapes, 2 * LAVAPIPE);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BackendError);
    expect((err as Error).message).toBe('--backend webgpu: model.layers.0.mlp.gate_proj.weight: float32 [53248, 16384] is 3.25 GiB ' +
      '(expected at most maxStorageBufferBindingSize = 256.0 MiB (268435456 bytes) of this adapter). ' +
      'Dawn would skip every kernel that reads it and return zeros. Use a GPU with larger limits or --backend tensorflow.');
  });

  it('passes the embedding and lm_head above the limit (the loader splits them by rows) unless one row is above it', () => {
    // Llama 3.2 1B on lavapipe: every layer weight fits 128 MiB (the MLP's are 64 MiB), the 1 GiB embedding is split.
    const shapes = { 'model.embed_tokens.weight': [128256, 2048], 'lm_head.weight': [128256, 2048], 'model.layers.0.mlp.down_proj.weight': [2048, 8192] };
    expect(() => checkWeightsFit(shapes, LAVAPIPE)).not.toThrow();
    // Llama 3.1 8B's MLP weights (224 MiB) are not splittable: refused on lavapipe, the embedding would have been split.
    expect(() => checkWeightsFit({ ...shapes, 'model.embed_tokens.weight': [128256, 4096], 'model.layers.0.mlp.down_proj.weight': [4096, 14336] }, LAVAPIPE))
      .toThrow(/^--backend webgpu: model\.layers\.0\.mlp\.down_proj\.weight: float32 \[4096, 14336\] is 224\.0 MiB/);
    expect(() => checkWeightsFit({ 'lm_head.weight': [10, 4096] }, 4095 * 4)).toThrow(
      /^--backend webgpu: lm_head\.weight: float32 \[10, 4096\] is 0\.2 MiB \(split by rows, and one row alone is above the limit\) \(expected at most maxStorageBufferBindingSize/);
  });

  it('passes a weight of exactly the limit and refuses one element more', () => {
    expect(() => checkWeightsFit({ w: [LAVAPIPE / 4] }, LAVAPIPE)).not.toThrow();
    expect(() => checkWeightsFit({ w: [LAVAPIPE / 4 + 1] }, LAVAPIPE)).toThrow(/^--backend webgpu: w: float32 \[33554433\] is 128\.0 MiB/);
  });

  it('is a no-op before a backend is chosen (and on every backend but webgpu)', () => {
    expect(() => assertWeightsFit({ 'model.embed_tokens.weight': [1e6, 1e4] })).not.toThrow();
  });
});

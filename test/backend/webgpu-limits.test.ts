// The webgpu size checks, without a GPU: a weight above maxStorageBufferBindingSize is refused by name with the limit
// (Dawn would skip its kernels and return zeros), one at the limit passes, and device bytes count int32/bool as 4.
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
    const shapes = { 'model.norm.weight': [4096], 'model.embed_tokens.weight': [128256, 4096], 'lm_head.weight': [128256, 4096] };
    let err: unknown;
    try {
      checkWeightsFit(shapes, LAVAPIPE);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BackendError);
    expect((err as Error).message).toBe('--backend webgpu: model.embed_tokens.weight: float32 [128256, 4096] is 1.96 GiB ' +
      '(expected at most maxStorageBufferBindingSize = 128.0 MiB (134217728 bytes) of this adapter). ' +
      'Dawn would skip every kernel that reads it and return zeros. Use a GPU with larger limits or --backend tensorflow.');
  });

  it('passes a weight of exactly the limit and refuses one element more', () => {
    expect(() => checkWeightsFit({ w: [LAVAPIPE / 4] }, LAVAPIPE)).not.toThrow();
    expect(() => checkWeightsFit({ w: [LAVAPIPE / 4 + 1] }, LAVAPIPE)).toThrow(/^--backend webgpu: w: float32 \[33554433\] is 128\.0 MiB/);
  });

  it('is a no-op before a backend is chosen (and on every backend but webgpu)', () => {
    expect(() => assertWeightsFit({ 'model.embed_tokens.weight': [1e6, 1e4] })).not.toThrow();
  });
});

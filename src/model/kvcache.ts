// Key/value cache for incremental decoding: per layer the rotated keys and the values of every slot seen so far,
// plus the [B, S] attention mask of those slots. Rows may be padded anywhere (left padding is usual); no sliding window.
// It grows by concatenation, not into a preallocated buffer: tfjs has no in-place write into part of a tensor (a
// Variable's assign replaces its whole buffer, scatterND returns a new tensor), so a preallocated cache would copy the
// whole [B, K, maxLen, D] per step instead of [B, K, S, D]. The cost, measured by scripts/bench-generate.ts (its
// `kv concat ms` column: every layer's keys and values grown by one slot at the final length): at S = 64, B = 4,
// 4 layers of 2 kv heads x 64, 0.5-0.9 ms on cpu against a 12 ms decode step, 0.07-0.14 ms on wasm against 8-14 ms.
// It grows linearly in S (a copy of S slots per layer per step), so long generations pay O(S^2) in total.
import * as tf from '@tensorflow/tfjs';
import type { LlamaConfig } from './types.js';
import { InputError, describe } from '../util/errors.js';

/**
 * Owned by the caller: create it, pass it as `opts.cache` to `forwardHidden` (each call appends its t tokens as t new
 * slots for every row), and call `dispose()` when done. Its tensors live outside any tf.tidy.
 */
export interface KVCache {
  readonly batch: number;
  readonly maxLen: number;
  readonly numLayers: number;
  /** Slots filled so far; the same for every row (a pad is a slot too, masked out). */
  length: number;
  /** Per layer: keys after RoPE, [B, K, length, D]; null before the first forward. */
  keys: (tf.Tensor4D | null)[];
  /** Per layer: values, [B, K, length, D]. */
  values: (tf.Tensor4D | null)[];
  /** [B, length] float32, 1 = token, 0 = pad: masks keys and gives positions (cumsum - 1). */
  mask: tf.Tensor2D | null;
  disposed: boolean;
  dispose(): void;
}

export function createKVCache(cfg: LlamaConfig, batch: number, maxLen: number): KVCache {
  if (!Number.isInteger(batch) || batch <= 0) throw new InputError(describe('createKVCache batch', String(batch), 'a positive integer'));
  if (!Number.isInteger(maxLen) || maxLen <= 0) throw new InputError(describe('createKVCache maxLen', String(maxLen), 'a positive integer'));
  const cache: KVCache = {
    batch,
    maxLen,
    numLayers: cfg.numLayers,
    length: 0,
    keys: new Array<tf.Tensor4D | null>(cfg.numLayers).fill(null),
    values: new Array<tf.Tensor4D | null>(cfg.numLayers).fill(null),
    mask: null,
    disposed: false,
    dispose() {
      for (const t of [...cache.keys, ...cache.values, cache.mask]) t?.dispose();
      cache.keys.fill(null);
      cache.values.fill(null);
      cache.mask = null;
      cache.length = 0;
      cache.disposed = true;
    },
  };
  return cache;
}

/** Checks that `t` new slots of a [B, t] step fit, and returns the key mask of all slots after the step: [B, S]. */
export function cacheKeyMask(cache: KVCache, newMask: tf.Tensor2D): tf.Tensor2D {
  const [B, t] = newMask.shape;
  if (cache.disposed) throw new InputError(describe('kv cache', 'used after dispose()', 'a live cache', 'Create a new one with createKVCache.'));
  if (B !== cache.batch) throw new InputError(describe('kv cache', `batch ${B}`, `${cache.batch} as created`));
  if (cache.length + t > cache.maxLen) {
    throw new InputError(describe('kv cache', `${cache.length} + ${t} slots`, `at most maxLen=${cache.maxLen}`, 'Create the cache with a larger maxLen.'));
  }
  const m = tf.cast(newMask, 'float32') as tf.Tensor2D;
  return cache.mask ? (tf.concat([cache.mask, m], 1) as tf.Tensor2D) : m; // [B, S]
}

/** Keys/values of one layer for all slots: the cached ones followed by the step's. k, v: [B, K, t, D] -> [B, K, S, D]. */
export function cacheExtend(cache: KVCache, layer: number, k: tf.Tensor4D, v: tf.Tensor4D): { k: tf.Tensor4D; v: tf.Tensor4D } {
  const pk = cache.keys[layer];
  const pv = cache.values[layer];
  if (!pk || !pv) return { k, v };
  return { k: tf.concat([pk, k], 2) as tf.Tensor4D, v: tf.concat([pv, v], 2) as tf.Tensor4D }; // [B, K, S, D]
}

/**
 * Stores a whole step at once, after every layer ran, so a failed forward leaves the cache as it was. The new
 * tensors are kept out of the caller's tf.tidy; the replaced ones are disposed.
 */
export function cacheCommit(cache: KVCache, keys: tf.Tensor4D[], values: tf.Tensor4D[], keyMask: tf.Tensor2D): void {
  const old = [...cache.keys, ...cache.values, cache.mask];
  cache.keys = keys.map((t) => tf.keep(t));
  cache.values = values.map((t) => tf.keep(t));
  cache.mask = tf.keep(keyMask);
  cache.length = keyMask.shape[1];
  for (const t of old) t?.dispose();
}

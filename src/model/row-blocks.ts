// Row blocks: the embedding and lm_head [V, H] held as several [n, H] tensors when one tensor would exceed the
// device's binding limit (webgpu's maxStorageBufferBindingSize: Dawn skips, silently, a dispatch that binds more).
// Block i of key K is the record entry `K#i`, rows in order; a record with K itself is the one-block case, so the
// unsplit model takes the same code (and the stock ops). The blocks are frozen: nothing here differentiates them.
import * as tf from '@tensorflow/tfjs';
import type { LlamaConfig } from './types.js';
import { FormatError, InputError, describe } from '../util/errors.js';
import { ROW_SPLIT_KEYS } from '../backend/webgpu.js';

type Weights = Record<string, tf.Tensor>;

export const EMBED_KEY = 'model.embed_tokens.weight';
export const LM_HEAD_KEY = 'lm_head.weight';
export { ROW_SPLIT_KEYS }; // the embedding and lm_head: the only weights that may be split by rows

/** The record key of block i of `key`. HF keys never hold '#', so no checkpoint name collides with one. */
export const blockKey = (key: string, i: number): string => `${key}#${i}`;

/** The head's weight: lm_head, or the embedding when tied (HF `tie_word_embeddings`): tied blocks are shared. */
export const headKey = (cfg: LlamaConfig): string => (cfg.tieWordEmbeddings ? EMBED_KEY : LM_HEAD_KEY);

/**
 * Rows per block for a [rows, *] weight of `rowBytes` per row under a `limit` in bytes: one block when the whole fits,
 * else as many rows as fit per block, the last taking the rest. A single row above the limit cannot be split.
 */
export function rowBlockSizes(rows: number, rowBytes: number, limit: number, name = 'weight'): number[] {
  if (rows * rowBytes <= limit) return [rows];
  const per = Math.floor(limit / rowBytes);
  if (per < 1) {
    throw new InputError(describe(`${name}: one row`, `${rowBytes} bytes`, `at most the binding limit of ${limit} bytes`, 'A row cannot be split further; use a device with larger limits.'));
  }
  const out: number[] = [];
  for (let r = 0; r < rows; r += per) out.push(Math.min(per, rows - r));
  return out;
}

/** The blocks of `key` in row order: [w[key]] when it is whole, else w[key#0], w[key#1], ... */
export function rowBlocks(w: Weights, key: string): tf.Tensor2D[] {
  const whole = w[key];
  if (whole) return [whole as tf.Tensor2D];
  const out: tf.Tensor2D[] = [];
  for (let i = 0; w[blockKey(key, i)]; i++) out.push(w[blockKey(key, i)] as tf.Tensor2D);
  if (out.length === 0) {
    throw new FormatError(describe(`weights ${key}`, 'missing', `a tensor, or its row blocks ${blockKey(key, 0)}, ${blockKey(key, 1)}, ...`, 'Load weights that match the config (see expectedWeightShapes).'));
  }
  return out;
}

/** Whether `key` is held as more than one block. */
export const isRowSplit = (w: Weights, key: string): boolean => !(key in w) && blockKey(key, 0) in w;

/**
 * Host rows of one loaded weight as the record entries to create: [name, data, shape] whole when `limit` is null or it
 * fits, else one entry per block (copies, so no device tensor above the limit ever exists). Float32 data.
 */
export function hostRowBlocks(name: string, data: Float32Array, shape: number[], limit: number | null): { key: string; data: Float32Array; shape: number[] }[] {
  if (limit === null || !ROW_SPLIT_KEYS.includes(name) || shape.length !== 2) return [{ key: name, data, shape }];
  const [rows, cols] = shape as [number, number];
  const sizes = rowBlockSizes(rows, cols * 4, limit, name);
  if (sizes.length === 1) return [{ key: name, data, shape }];
  let r0 = 0;
  return sizes.map((n, i) => {
    const part = { key: blockKey(name, i), data: data.slice(r0 * cols, (r0 + n) * cols), shape: [n, cols] };
    r0 += n;
    return part;
  });
}

/**
 * The record with every splittable weight above `limit` bytes replaced by row blocks sliced from it (a new record;
 * other entries are shared and the split tensors stay the caller's). For weights already in memory: tests, tools.
 */
export function splitRowBlocks(w: Weights, limit: number): Weights {
  const out: Weights = {};
  for (const [k, t] of Object.entries(w)) {
    const [rows, cols] = t.shape as [number, number];
    const sizes = ROW_SPLIT_KEYS.includes(k) && t.rank === 2 ? rowBlockSizes(rows, cols * 4, limit, k) : [0];
    if (sizes.length === 1) {
      out[k] = t;
      continue;
    }
    let r0 = 0;
    sizes.forEach((n, i) => {
      out[blockKey(k, i)] = tf.slice(t, [r0, 0], [n, cols]);
      r0 += n;
    });
  }
  return out;
}

/** One line naming each weight held as row blocks and their rows, or null when none is split (the load log). */
export function describeRowSplit(w: Weights, limit: number | null): string | null {
  const parts = ROW_SPLIT_KEYS.filter((k) => isRowSplit(w, k)).map((k) => {
    const rows = rowBlocks(w, k).map((b) => b.shape[0]);
    return `${k} as ${rows.length} blocks (${rows.length - 1} x ${rows[0]} + ${rows[rows.length - 1]} rows)`;
  });
  return parts.length ? `row blocks: ${parts.join('; ')} (each at most ${limit ?? '?'} bytes, the binding limit)` : null;
}

/** Safetensors entries of a record by HF name, sorted, with each split weight joined back on the host. */
export function savedEntries(w: Weights): { name: string; shape: number[]; data: () => Promise<Float32Array> }[] {
  const names = new Set<string>();
  for (const k of Object.keys(w)) names.add(k.includes('#') ? k.slice(0, k.indexOf('#')) : k);
  return [...names].sort().map((name) => {
    const blocks = rowBlocks(w, name) as tf.Tensor[];
    if (blocks.length === 1) return { name, shape: blocks[0].shape as number[], data: () => blocks[0].data() as Promise<Float32Array> };
    const cols = blocks[0].shape[1] as number;
    const rows = blocks.reduce((n, b) => n + b.shape[0], 0);
    return {
      name, shape: [rows, cols], data: async () => {
        const out = new Float32Array(rows * cols);
        let at = 0;
        for (const b of blocks) {
          out.set((await b.data()) as Float32Array, at);
          at += b.size;
        }
        return out;
      },
    };
  });
}

/** An int32 scalar made by a kernel (no host value uploaded). */
const int = (v: number): tf.Scalar => tf.fill([], v, 'int32') as tf.Scalar;

/** For ids (int32, any shape) and a block of rows [r0, r0 + n): the in-block row of each id (clamped) and 1 where it is inside. */
export function blockIndex(ids: tf.Tensor, r0: number, n: number): { local: tf.Tensor; inside: tf.Tensor } {
  const shifted = tf.sub(ids, int(r0));
  const local = tf.maximum(tf.minimum(shifted, int(n - 1)), int(0));
  const inside = tf.cast(tf.logicalAnd(tf.greaterEqual(shifted, int(0)), tf.less(shifted, int(n))), 'float32');
  return { local, inside };
}

/**
 * Embedding rows of ids (int32 [B, T]) -> [B, T, H]. Split: each block gathers the clamped ids and keeps the rows of
 * its own range (x 1, the others x 0), and the blocks are summed: the same values as one gather, bit for bit.
 */
export function embedLookup(blocks: tf.Tensor2D[], ids: tf.Tensor): tf.Tensor {
  if (blocks.length === 1) return tf.gather(blocks[0], ids);
  return tf.tidy(() => {
    let out: tf.Tensor | null = null;
    let r0 = 0;
    for (const b of blocks) {
      const n = b.shape[0];
      const { local, inside } = blockIndex(ids, r0, n);
      const rows = tf.mul(tf.gather(b, local), tf.expandDims(inside, -1)); // [..., H]
      out = out ? tf.add(out, rows) : rows;
      r0 += n;
    }
    return out as tf.Tensor;
  });
}

/** h [M, H] against the blocks -> logits [M, V]: each block's h W_b^T, concatenated along the vocab axis. */
export function blockLogits(blocks: tf.Tensor2D[], h: tf.Tensor2D): tf.Tensor2D {
  if (blocks.length === 1) return tf.matMul(h, blocks[0], false, true);
  return tf.tidy(() => tf.concat(blocks.map((b) => tf.matMul(h, b, false, true)), 1) as tf.Tensor2D);
}

// Loads the float64-reference fixtures of test/fixtures/model (written by scripts/reference/make_fixtures.py).
// Weights are int8 * scale + offset, exact in float32; this decodes them into tf tensors keyed by HF names.
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseLlamaConfig } from '../../src/config/llama.js';
import type { LlamaConfig } from '../../src/config/llama.js';
import type { Weights } from '../../src/model/llama.js';

export interface Packed {
  shape: number[];
  scale: number;
  offset: number;
  int8: string;
}

export interface ModelCase {
  input_ids: number[][];
  attention_mask: number[][];
  completion_start: number[];
  expected_logits: number[][][];
  expected_completion_logp: number[];
}

export interface ModelFixture extends ModelCase {
  config: Record<string, unknown>;
  weights: Record<string, Packed>;
  expected_inv_freq: number[];
}

export interface LoraFixture extends ModelCase {
  lora: { r: number; lora_alpha: number; lora_dropout: number; use_rslora: boolean; target_modules: string[]; scale: number; tensors: Record<string, Packed> };
}

export function readFixture<T>(name: string): T {
  const file = fileURLToPath(new URL(`../fixtures/model/${name}`, import.meta.url));
  return JSON.parse(readFileSync(file, 'utf8')) as T;
}

export function unpack(p: Packed): Float32Array {
  const q = new Int8Array(Buffer.from(p.int8, 'base64'));
  const out = new Float32Array(q.length);
  for (let i = 0; i < q.length; i++) out[i] = (q[i] as number) * p.scale + p.offset;
  return out;
}

export function loadModel(fx: ModelFixture): { cfg: LlamaConfig; w: Weights } {
  const cfg = parseLlamaConfig(fx.config, 'fixture config');
  const w: Weights = {};
  for (const [k, p] of Object.entries(fx.weights)) w[k] = tf.tensor(unpack(p), p.shape, 'float32');
  return { cfg, w };
}

export function disposeWeights(w: Weights): void {
  for (const t of Object.values(w)) t.dispose();
}

export function batchOf(c: ModelCase): { ids: tf.Tensor2D; mask: tf.Tensor2D } {
  return { ids: tf.tensor2d(c.input_ids, undefined, 'int32'), mask: tf.tensor2d(c.attention_mask, undefined, 'int32') };
}

/** Max |a - b| over two same-shaped arrays (flattened). */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
}

/** Summed completion log-probs per row, as the reference: sum over t >= start with mask 1 of logp[t-1][ids[t]]. */
export function completionLogp(logits: number[][][], c: ModelCase): number[] {
  return c.input_ids.map((row, b) => {
    let total = 0;
    for (let t = c.completion_start[b] as number; t < row.length; t++) {
      if (c.attention_mask[b]?.[t] !== 1) continue;
      const z = logits[b]?.[t - 1] as number[];
      const m = Math.max(...z);
      const lse = m + Math.log(z.reduce((s, v) => s + Math.exp(v - m), 0));
      total += (z[row[t] as number] as number) - lse;
    }
    return total;
  });
}

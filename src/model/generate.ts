// Batched sampling with the KV cache: left-padded prefill, then one token per step for every row; greedy, temperature,
// top-k and top-p (HF TopKLogitsWarper / TopPLogitsWarper, applied in HF's order), seeded. No beams, no penalties.
// The choice runs on the device (argmax, or an inverse-CDF draw with one host uniform per row): each step uploads the
// B fed ids and B uniforms and reads back only the B chosen ids. Text is decoded incrementally and stop sequences are
// looked for in the new text only. The host versions (samplingDistribution, sampleToken) are the reference.
import * as tf from '@tensorflow/tfjs';
import type { LlamaConfig } from './types.js';
import { InputError, describe } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { createKVCache } from './kvcache.js';
import type { KVCache } from './kvcache.js';
import { forwardHidden, headLogits } from './llama.js';
import type { Weights } from './llama.js';
import type { Lora } from './lora.js';

export interface SamplingOptions {
  maxNewTokens: number;
  /** 0 = greedy (argmax, lowest id on ties); otherwise logits are divided by it before top-k / top-p. */
  temperature: number;
  /** Nucleus: keep the smallest set of most likely tokens whose probability reaches topP. Default 1 (off). */
  topP?: number;
  /** Keep the topK most likely tokens (and any tied with the k-th). Default 0 (off). */
  topK?: number;
  /** Ids that end a row; the stop token is not part of its output. */
  stopIds: number[];
  seed: number;
  /** Called after a row gains a token with all of its tokens so far; true ends the row ('stop'), e.g. at a stop sequence. */
  stopWhen?: (row: number, tokens: readonly number[]) => boolean;
}

export type FinishReason = 'stop' | 'length';

export interface GenerateResult {
  /** New tokens per row, stop token excluded. */
  tokens: number[][];
  finishReason: FinishReason[];
}

/** Fed (masked) for left padding and for rows that already finished; any valid id works since it is never attended. */
const PAD_ID = 0;

function checkOptions(cfg: LlamaConfig, prompts: number[][], o: SamplingOptions): void {
  const bad = (key: string, found: unknown, expected: string) => {
    throw new InputError(describe(`generate ${key}`, String(found), expected));
  };
  if (!Number.isInteger(o.maxNewTokens) || o.maxNewTokens < 0) bad('maxNewTokens', o.maxNewTokens, 'an integer >= 0');
  if (!Number.isFinite(o.temperature) || o.temperature < 0) bad('temperature', o.temperature, 'a finite number >= 0 (0 = greedy)');
  const topP = o.topP ?? 1;
  if (!(topP > 0 && topP <= 1)) bad('topP', topP, 'a number in (0, 1]');
  const topK = o.topK ?? 0;
  if (!Number.isInteger(topK) || topK < 0) bad('topK', topK, 'an integer >= 0 (0 = off)');
  if (!Number.isSafeInteger(o.seed)) bad('seed', o.seed, 'a safe integer');
  if (prompts.length === 0) bad('prompts', 'an empty batch', 'at least one prompt');
  prompts.forEach((p, b) => {
    if (p.length === 0) bad(`prompts[${b}]`, 'no tokens', 'at least one token (BOS) to condition on');
    for (const id of p) if (!Number.isInteger(id) || id < 0 || id >= cfg.vocabSize) bad(`prompts[${b}]`, `token id ${id}`, `an id in [0, ${cfg.vocabSize})`);
  });
}

/** Index of the largest value, the lowest index among ties (torch.argmax keeps the first maximum too). */
export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if ((x[i] as number) > (x[best] as number)) best = i;
  return best;
}

/** Token ids with e[i] >= t, most likely first (lower id first on ties). */
function candidates(e: Float64Array, t: number): number[] {
  const ids: number[] = [];
  for (let i = 0; i < e.length; i++) if ((e[i] as number) >= t) ids.push(i);
  return ids.sort((a, b) => (e[b] as number) - (e[a] as number) || a - b);
}

/**
 * The tokens a sampled step may pick, most likely first, with their renormalized probabilities. Temperature, then
 * top-k (keeps ties with the k-th, as TopKLogitsWarper), then top-p over the survivors (TopPLogitsWarper: a token stays
 * while the mass ranked above it is < topP, so the most likely always stays). Only tokens that can matter are sorted:
 * a candidate set {p >= t} for a falling t is exact once it holds k tokens (top-k) or topP of the mass (top-p), since
 * both keep a prefix of the sorted order. Without filtering, every id in id order.
 */
export function samplingDistribution(
  logits: ArrayLike<number>, o: { temperature: number; topP?: number; topK?: number },
): { ids: number[]; probs: number[] } {
  const V = logits.length;
  const topP = o.topP ?? 1;
  const topK = o.topK ?? 0;
  const T = o.temperature > 0 ? o.temperature : 1;
  let max = -Infinity;
  for (let i = 0; i < V; i++) max = Math.max(max, logits[i] as number);
  const e = new Float64Array(V); // unnormalized probabilities, the largest = 1
  let Z = 0;
  for (let i = 0; i < V; i++) Z += e[i] = Math.exp(((logits[i] as number) - max) / T);

  let kept: number[] = [];
  let mass = Z;
  if (topP >= 1 && (topK === 0 || topK >= V)) {
    kept = Array.from({ length: V }, (_, i) => i);
  } else {
    for (const t of [1e-4, 1e-8, 1e-16, 0]) {
      const c = candidates(e, t);
      if (topK > 0 && topK < V) {
        if (c.length < topK && t > 0) continue;
        const kth = e[c[Math.min(topK, c.length) - 1] as number] as number;
        kept = c.filter((i) => (e[i] as number) >= kth);
        mass = kept.reduce((s, i) => s + (e[i] as number), 0);
        break;
      }
      if (t === 0 || c.reduce((s, i) => s + (e[i] as number), 0) >= topP * Z) {
        kept = c;
        break;
      }
    }
    if (topP < 1) {
      let n = 0;
      let before = 0;
      while (n < kept.length && (n === 0 || before < topP * mass)) before += e[kept[n++] as number] as number;
      kept = kept.slice(0, n);
    }
  }
  const total = kept.reduce((s, i) => s + (e[i] as number), 0);
  return { ids: kept, probs: kept.map((i) => (e[i] as number) / total) };
}

/** One token from a row of logits: argmax at temperature 0 (no draw), else one uniform draw from samplingDistribution. */
export function sampleToken(logits: ArrayLike<number>, o: { temperature: number; topP?: number; topK?: number }, rng: Rng): number {
  if (o.temperature === 0) return argmax(logits);
  const { ids, probs } = samplingDistribution(logits, o);
  let u = rng.next();
  for (let j = 0; j < ids.length; j++) if ((u -= probs[j] as number) < 0) return ids[j] as number;
  return ids[ids.length - 1] as number;
}

/** One forward through the cache: the last slot's logits of every row, on the device. -> [B, V] */
function stepLogits(cfg: LlamaConfig, w: Weights, lora: Lora | null, cache: KVCache, ids: tf.Tensor2D, mask: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const [B, T] = ids.shape;
    const h = forwardHidden(cfg, w, ids, mask, { lora, cache }); // [B, T, H]
    const last = tf.reshape(tf.slice(h, [0, T - 1, 0], [B, 1, cfg.hiddenSize]), [B, cfg.hiddenSize]); // [B, H]
    return headLogits(cfg, w, last) as tf.Tensor2D; // [B, V]
  });
}

/**
 * The device version of sampleToken for every row: argmax at temperature 0 (lowest id on ties, as tf.argMax and
 * torch.argmax), else temperature, top-k (ties with the k-th kept), top-p over the survivors sorted most likely first
 * (a token stays while the mass above it is < topP), then the first token whose cumulative weight exceeds u * total.
 * logits [B, V], u [B] uniforms in [0, 1) -> [B] int32.
 */
export function chooseTokens(logits: tf.Tensor2D, o: { temperature: number; topP?: number; topK?: number }, u: tf.Tensor1D | null): tf.Tensor1D {
  return tf.tidy(() => {
    if (o.temperature === 0) return tf.cast(tf.argMax(logits, -1), 'int32') as tf.Tensor1D;
    if (!u) throw new Error('chooseTokens: sampling needs one uniform per row');
    const [B, V] = logits.shape;
    const topK = o.topK ?? 0;
    const topP = o.topP ?? 1;
    let z = tf.div(logits, o.temperature) as tf.Tensor2D; // [B, V]
    if (topK > 0 && topK < V) {
      const kth = tf.slice(tf.topk(z, topK).values, [0, topK - 1], [B, 1]); // [B, 1]
      z = tf.where(tf.greaterEqual(z, kth), z, tf.fill([B, V], -Infinity)) as tf.Tensor2D;
    }
    let ids: tf.Tensor2D | null = null; // [B, V] the id at each position of the order below (null: id order)
    let wts: tf.Tensor2D;
    if (topP < 1 || (topK > 0 && topK < V)) {
      // Filtered: most likely first, as samplingDistribution orders the survivors (so a u picks the same token).
      const sorted = tf.topk(z, V);
      ids = sorted.indices as tf.Tensor2D;
      const p = tf.softmax(sorted.values) as tf.Tensor2D; // [B, V]
      const before = tf.cumsum(p, 1, true); // mass ranked above each token
      wts = topP < 1 ? (tf.mul(p, tf.cast(tf.less(before, topP), 'float32')) as tf.Tensor2D) : p;
    } else {
      wts = tf.softmax(z) as tf.Tensor2D;
    }
    const cdf = tf.cumsum(wts, 1); // [B, V]
    const total = tf.slice(cdf, [0, V - 1], [B, 1]); // [B, 1]
    const target = tf.mul(tf.reshape(u, [B, 1]), total); // [B, 1]
    // The first position whose cdf exceeds the target = how many are <= it (capped: rounding at the top).
    const pos = tf.cast(tf.minimum(tf.sum(tf.cast(tf.lessEqual(cdf, target), 'int32'), 1), V - 1), 'int32'); // [B]
    if (!ids) return pos as tf.Tensor1D;
    const flat = tf.add(tf.mul(tf.range(0, B, 1, 'int32'), tf.scalar(V, 'int32')), pos); // [B] into the flattened [B, V]
    return tf.gather(tf.reshape(ids, [-1]), flat) as tf.Tensor1D;
  });
}

/**
 * Samples up to maxNewTokens for each prompt. Prompts are left-padded into one batch; a row ends at a stop id
 * ('stop', the id excluded), when stopWhen says so ('stop'), or after maxNewTokens ('length'). Finished rows feed a
 * masked pad until every row is done. `onToken(step)` is called after each step (0-based). Per step, the only read
 * from the device is the B chosen ids (`await data()`).
 */
export async function generate(
  cfg: LlamaConfig, w: Weights, lora: Lora | null, prompts: number[][], opts: SamplingOptions, onToken?: (step: number) => void,
): Promise<GenerateResult> {
  checkOptions(cfg, prompts, opts);
  const B = prompts.length;
  const tokens: number[][] = prompts.map(() => []);
  const finishReason: FinishReason[] = prompts.map(() => 'length');
  if (opts.maxNewTokens === 0) return { tokens, finishReason };
  const P = Math.max(...prompts.map((p) => p.length));
  const stops = new Set(opts.stopIds);
  const rng = new Rng(opts.seed);
  const done = new Array<boolean>(B).fill(false);
  const cache = createKVCache(cfg, B, P + opts.maxNewTokens);
  // One uniform per row per step, drawn in row order whether or not a row is done, so a row's draws do not depend on
  // when the others finish (as the host sampler drew one per live row; greedy draws none).
  const uniforms = (): tf.Tensor1D | null => (opts.temperature === 0 ? null : tf.tensor1d(Float32Array.from({ length: B }, () => rng.next())));
  const choose = (ids: tf.Tensor2D, mask: tf.Tensor2D): tf.Tensor1D => tf.tidy(() => {
    const logits = stepLogits(cfg, w, lora, cache, ids, mask);
    const u = uniforms();
    return chooseTokens(logits, opts, u);
  });
  try {
    let feedIds = tf.tensor2d(prompts.map((p) => [...new Array<number>(P - p.length).fill(PAD_ID), ...p]), [B, P], 'int32');
    let feedMask = tf.tensor2d(prompts.map((p) => [...new Array<number>(P - p.length).fill(0), ...new Array<number>(p.length).fill(1)]), [B, P], 'int32');
    for (let step = 0; ; step++) {
      const chosen = choose(feedIds, feedMask);
      tf.dispose([feedIds, feedMask]);
      let picked: Int32Array;
      try {
        picked = (await chosen.data()) as Int32Array; // the step's one read: B ids
      } finally {
        chosen.dispose();
      }
      const next = new Array<number>(B).fill(PAD_ID);
      for (let b = 0; b < B; b++) {
        if (done[b]) continue;
        const id = picked[b] as number;
        const row = tokens[b] as number[];
        if (stops.has(id)) {
          done[b] = true;
          finishReason[b] = 'stop';
          continue;
        }
        row.push(id);
        next[b] = id;
        if (opts.stopWhen?.(b, row)) {
          done[b] = true;
          finishReason[b] = 'stop';
        } else if (row.length >= opts.maxNewTokens) {
          done[b] = true;
        }
      }
      onToken?.(step);
      if (done.every((d) => d)) break;
      feedIds = tf.tensor2d(next, [B, 1], 'int32');
      feedMask = tf.tensor2d(done.map((d) => (d ? 0 : 1)), [B, 1], 'int32');
    }
  } finally {
    cache.dispose();
  }
  return { tokens, finishReason };
}

/** Index of the earliest occurrence of any stop sequence in `text`, or -1 (bigcode-evaluation-harness `_stop_at_stop_token`). */
export function firstStopIndex(text: string, stops: readonly string[]): number {
  let at = -1;
  for (const s of stops) {
    if (s.length === 0) continue;
    const i = text.indexOf(s);
    if (i >= 0 && (at < 0 || i < at)) at = i;
  }
  return at;
}

/** What generateText needs of a tokenizer (src/tokenizer's Tokenizer fits; model/ does not import it). */
export interface TextCodec {
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  decode(ids: number[], opts?: { skipSpecialTokens?: boolean }): string;
  bosId: number | null;
  stopIds: number[];
}

export interface TextGenerateOptions extends Omit<SamplingOptions, 'stopIds' | 'stopWhen'> {
  /** Default: the tokenizer's stopIds (eos, <|eot_id|>, generation_config's eos_token_id). */
  stopIds?: number[];
  /** Cut the text at the first of these; a row stops as soon as its text holds one. */
  stopSequences?: string[];
  /** Prepend BOS (once: not when the prompt already starts with it, e.g. a rendered chat template). Default true. */
  addSpecialTokens?: boolean;
}

export interface TextResult {
  text: string;
  finishReason: FinishReason;
}

/**
 * A row's text as tokens arrive, decoded incrementally as text-generation-inference's `decode_token`: the tokens from
 * `prefix` are decoded with and without the newest ones, and the difference is the new text, held back while it ends
 * in an incomplete UTF-8 sequence (U+FFFD). Each step decodes a few tokens, not the whole row.
 */
export class IncrementalText {
  text = '';
  private prefix = 0;
  private read = 0;

  constructor(private readonly decode: (ids: number[]) => string) {}

  /** The text the row's tokens add since the last call ('' while a character is incomplete). */
  push(ids: readonly number[]): string {
    const before = this.decode(ids.slice(this.prefix, this.read));
    const now = this.decode(ids.slice(this.prefix));
    if (now.length <= before.length || now.endsWith('\uFFFD')) return '';
    const added = now.slice(before.length);
    this.text += added;
    this.prefix = this.read;
    this.read = ids.length;
    return added;
  }
}

/** True when `text` holds a stop sequence that ends in its last `added` characters (only new matches are looked for). */
export function stopInNewText(text: string, added: number, stops: readonly string[]): boolean {
  for (const s of stops) {
    if (s.length === 0) continue;
    if (text.indexOf(s, Math.max(0, text.length - added - s.length + 1)) >= 0) return true;
  }
  return false;
}

/**
 * Encodes each prompt as TRL does (BOS once, then the text without special tokens), generates, decodes the new tokens
 * (special tokens skipped) and truncates at the first stop sequence; a row cut by a stop sequence finishes with 'stop'.
 * While generating, each row's text grows incrementally and only its new text is searched for a stop sequence; the
 * result is the whole row decoded once, cut at the first stop sequence.
 */
export async function generateText(
  model: { cfg: LlamaConfig; weights: Weights; tokenizer: TextCodec }, lora: Lora | null, prompts: string[], opts: TextGenerateOptions,
  onToken?: (step: number) => void,
): Promise<TextResult[]> {
  const tok = model.tokenizer;
  const addBos = (opts.addSpecialTokens ?? true) && tok.bosId !== null;
  const ids = prompts.map((p) => {
    const raw = tok.encode(p, { addSpecialTokens: false });
    return addBos && raw[0] !== tok.bosId ? [tok.bosId as number, ...raw] : raw;
  });
  const stopSequences = opts.stopSequences ?? [];
  const decode = (t: number[]) => tok.decode(t, { skipSpecialTokens: true });
  const { stopSequences: _s, addSpecialTokens: _a, ...sampling } = opts;
  const rows = prompts.map(() => new IncrementalText(decode));
  const res = await generate(model.cfg, model.weights, lora, ids, {
    ...sampling,
    stopIds: opts.stopIds ?? tok.stopIds,
    stopWhen: stopSequences.length > 0 ? (row, t) => {
      const r = rows[row] as IncrementalText;
      const added = r.push(t);
      return added.length > 0 && stopInNewText(r.text, added.length, stopSequences);
    } : undefined,
  }, onToken);
  return res.tokens.map((t, b) => {
    const text = decode(t);
    const at = firstStopIndex(text, stopSequences);
    return at >= 0 ? { text: text.slice(0, at), finishReason: 'stop' } : { text, finishReason: res.finishReason[b] as FinishReason };
  });
}

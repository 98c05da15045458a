// Llama 3.1 forward as pure functions over an HF-keyed weights record: embedding, decoder layers, final norm, LM head.
// Follows HF `modeling_llama` (eager attention, float32 throughout); leaves out sliding windows and tensor parallel.
// RMSNorm, the RoPE tables, the attention core (RoPE, scores, masked softmax, probs x v), its RoPE and masked softmax,
// and SiLU*up are kernels/ ops: fused where the backend has them, else plain ops.
//
// Dimension letters, used in every shape comment below:
//   B batch, T tokens in this call, S key slots (cached + this call's), H hidden, N query heads, K kv heads,
//   G = N / K query heads per kv head, D head_dim, V vocab, I intermediate, M = B * T rows of a linear layer.
import * as tf from '@tensorflow/tfjs';
import type { LlamaConfig } from './types.js';
import { FormatError, InputError, describe } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { checkpointed } from '../../kernels/checkpoint.js';
import { rmsNorm as rmsNormOp } from '../../kernels/rmsnorm.js';
import { attentionBias, attentionCoreActive, attentionCoreFused, attentionOps } from '../../kernels/attention-core.js';
import { swiglu } from '../../kernels/swiglu.js';
import { attnHalfActive, attnHalfFused, mlpHalfActive, mlpHalfFused, type AttnAdapters, type AttnWeights, type MlpWeights } from '../../kernels/decoder-layer.js';
import { ALL_LINEAR, ATTN_TARGETS, linearShape, loraLinear, modulePath } from './lora.js';
import type { Lora, LoraDropout } from './lora.js';
import { ropeInvFreq } from './rope.js';
import { positionsFromMask, ropeTables } from '../../kernels/rope-tables.js';
import { cacheCommit, cacheExtend, cacheKeyMask } from './kvcache.js';
import type { KVCache } from './kvcache.js';
import { EMBED_KEY, blockLogits, embedLookup, headKey, rowBlocks } from './row-blocks.js';

/**
 * HF safetensors keys -> float32 tensors; linear weights are [out, in] as in HF. The embedding and lm_head may instead
 * be row blocks `key#0`, `key#1`, ... when one tensor would exceed the device's binding limit (model/row-blocks.ts).
 */
export type Weights = Record<string, tf.Tensor>;

export interface ForwardOptions {
  /** Adapters to apply; null, absent or `enabled: false` gives the base model exactly. */
  lora?: Lora | null;
  /** Incremental decoding: this call's tokens are appended to the cache as new slots. */
  cache?: KVCache;
  /** Enables LoRA dropout (when its rate is > 0). */
  training?: boolean;
  /** Source of dropout seeds; required when dropout is active, so a seeded run is repeatable. */
  dropoutRng?: Rng;
  /** Recompute each decoder layer in the backward pass (kernels/checkpoint.ts): the tape keeps only layer inputs. */
  gradientCheckpointing?: boolean;
}

/** Every key the model reads, with its shape, layer by layer (biases only when enabled, no lm_head when tied). */
export function expectedWeightShapes(cfg: LlamaConfig): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  const H = cfg.hiddenSize;
  out['model.embed_tokens.weight'] = [cfg.vocabSize, H];
  for (let l = 0; l < cfg.numLayers; l++) {
    out[`model.layers.${l}.input_layernorm.weight`] = [H];
    out[`model.layers.${l}.post_attention_layernorm.weight`] = [H];
    for (const t of ALL_LINEAR) {
      const [o, i] = linearShape(cfg, t);
      const path = modulePath(l, t);
      out[`${path}.weight`] = [o, i];
      if (ATTN_TARGETS.includes(t) ? cfg.attentionBias : cfg.mlpBias) out[`${path}.bias`] = [o];
    }
  }
  out['model.norm.weight'] = [H];
  if (!cfg.tieWordEmbeddings) out['lm_head.weight'] = [cfg.vocabSize, H];
  return out;
}

function need(w: Weights, key: string): tf.Tensor {
  const t = w[key];
  if (!t) throw new FormatError(describe(`weights ${key}`, 'missing', 'a tensor', 'Load weights that match the config (see expectedWeightShapes).'));
  return t;
}

/** HF `LlamaRMSNorm`: x * rsqrt(mean(x^2) + eps) * w, in float32. x [..., H]. (kernels/rmsnorm.ts) */
export function rmsNorm(x: tf.Tensor, weight: tf.Tensor, eps: number): tf.Tensor {
  return rmsNormOp(x, weight, eps);
}

/** Positions of this call's T tokens from the key mask, as HF `generate` (kernels/rope-tables.ts). */
export { positionsFromMask };

/** Additive attention bias [B, 1, T, S] from the key mask (kernels/attention-core.ts). */
export { attentionBias };

/**
 * What attention masks with: the key mask of all slots [B, S], and the bias built from it [B, 1, T, S], or null when
 * the fused core reads the mask itself (no cache, kernel registered: forwardHidden decides once per forward).
 */
interface AttnMask {
  keyMask: tf.Tensor2D;
  bias: tf.Tensor4D | null;
}

/** Applies one HF linear module (with its bias when the config has one) and its adapter, if any. */
type Linear = (path: string, x: tf.Tensor, hasBias: boolean) => tf.Tensor;

/** A layer's output, plus its keys/values of all slots when a cache will store them (otherwise freed with the layer). */
interface LayerStep {
  x: tf.Tensor3D;
  k?: tf.Tensor4D;
  v?: tf.Tensor4D;
}

/**
 * HF `LlamaAttention` with grouped-query attention (kernels/attention-core.ts: RoPE, q k^T, the masked softmax,
 * probs x v and the head merge, as repeat_kv). Returns the output and, on the op chain, this layer's keys/values of
 * all slots (the cache stores them).
 */
function attention(
  cfg: LlamaConfig, lin: Linear, p: string, h: tf.Tensor3D, cos: tf.Tensor3D, sin: tf.Tensor3D, mask: AttnMask,
  cache: KVCache | undefined, layer: number,
): { out: tf.Tensor3D; k?: tf.Tensor4D; v?: tf.Tensor4D } {
  const heads = { numHeads: cfg.numHeads, numKvHeads: cfg.numKvHeads, headDim: cfg.headDim };
  const withBias = cfg.attentionBias;
  const q = lin(`${p}.q_proj`, h, withBias) as tf.Tensor3D; // [B, T, N*D]
  const k = lin(`${p}.k_proj`, h, withBias) as tf.Tensor3D; // [B, T, K*D]
  const v = lin(`${p}.v_proj`, h, withBias) as tf.Tensor3D; // [B, T, K*D]
  if (!mask.bias) return { out: lin(`${p}.o_proj`, attentionCoreFused(q, k, v, cos, sin, mask.keyMask, heads), withBias) as tf.Tensor3D };
  const extend = cache ? (kk: tf.Tensor4D, vv: tf.Tensor4D) => cacheExtend(cache, layer, kk, vv) : undefined;
  const att = attentionOps(q, k, v, cos, sin, mask.bias, heads, extend); // [B, T, N*D]; keys, values [B, K, S, D]
  return { out: lin(`${p}.o_proj`, att.out, withBias) as tf.Tensor3D, k: att.k, v: att.v };
}

/** HF `LlamaMLP`: down(silu(gate(x)) * up(x)) (kernels/swiglu.ts). */
function mlp(cfg: LlamaConfig, lin: Linear, p: string, h: tf.Tensor3D): tf.Tensor3D {
  const gate = lin(`${p}.gate_proj`, h, cfg.mlpBias); // [B, T, I]
  const up = lin(`${p}.up_proj`, h, cfg.mlpBias); // [B, T, I]
  const act = swiglu(gate, up); // [B, T, I]
  return lin(`${p}.down_proj`, act, cfg.mlpBias) as tf.Tensor3D; // [B, T, H]
}

/**
 * The MLP half's weights when it can run as one fused kernel (kernels/decoder-layer.ts): registered for the backend,
 * no bias, no adapter on its linears, frozen weights, no cache; else null (the op-by-op path).
 */
function fusedMlpWeights(cfg: LlamaConfig, w: Weights, lora: Lora | null, p: string, cache: KVCache | undefined): MlpWeights | null {
  if (cache || cfg.mlpBias || !mlpHalfActive()) return null;
  if (lora && ['gate_proj', 'up_proj', 'down_proj'].some((m) => lora.layers.has(`${p}.mlp.${m}`))) return null;
  const mw: MlpWeights = {
    norm: need(w, `${p}.post_attention_layernorm.weight`), gate: need(w, `${p}.mlp.gate_proj.weight`),
    up: need(w, `${p}.mlp.up_proj.weight`), down: need(w, `${p}.mlp.down_proj.weight`),
  };
  return Object.values(mw).some((t) => t instanceof tf.Variable && t.trainable) ? null : mw;
}

/**
 * The attention half's weights and adapters when it can run as one fused kernel (kernels/decoder-layer.ts):
 * registered, no bias, no LoRA dropout, the fused core's mask (no cache), frozen weights; else null.
 */
function fusedAttn(cfg: LlamaConfig, w: Weights, lora: Lora | null, dropout: boolean, p: string, mask: AttnMask): { w: AttnWeights; ad: AttnAdapters } | null {
  if (mask.bias || cfg.attentionBias || dropout || !attnHalfActive()) return null;
  const a = `${p}.self_attn`;
  const aw: AttnWeights = {
    norm: need(w, `${p}.input_layernorm.weight`), q: need(w, `${a}.q_proj.weight`), k: need(w, `${a}.k_proj.weight`),
    v: need(w, `${a}.v_proj.weight`), o: need(w, `${a}.o_proj.weight`),
  };
  if (Object.values(aw).some((t) => t instanceof tf.Variable && t.trainable)) return null;
  const ad: AttnAdapters = {};
  for (const n of ['q', 'k', 'v', 'o'] as const) {
    const adapter = lora?.layers.get(`${a}.${n}_proj`);
    if (adapter) ad[n] = adapter;
  }
  return { w: aw, ad };
}

/** HF `LlamaDecoderLayer` (pre-norm residual). Its own tidy frees the layer's temporaries when no tape holds them. */
function decoderLayer(
  cfg: LlamaConfig, w: Weights, lin: Linear, l: number, x: tf.Tensor3D, cos: tf.Tensor3D, sin: tf.Tensor3D,
  mask: AttnMask, cache: KVCache | undefined, lora: Lora | null, dropout: boolean,
): LayerStep {
  return tf.tidy(() => {
    const p = `model.layers.${l}`;
    const fa = fusedAttn(cfg, w, lora, dropout, p, mask);
    let x1: tf.Tensor3D;
    let att: { k?: tf.Tensor4D; v?: tf.Tensor4D } = {};
    if (fa) {
      const heads = { numHeads: cfg.numHeads, numKvHeads: cfg.numKvHeads, headDim: cfg.headDim };
      x1 = attnHalfFused(x, fa.w, fa.ad, { cos, sin, keyMask: mask.keyMask, heads, eps: cfg.rmsNormEps, loraScale: lora?.scale ?? 0 });
    } else {
      const h = rmsNorm(x, need(w, `${p}.input_layernorm.weight`), cfg.rmsNormEps) as tf.Tensor3D;
      const a = attention(cfg, lin, `${p}.self_attn`, h, cos, sin, mask, cache, l);
      x1 = tf.add(x, a.out) as tf.Tensor3D;
      att = a;
    }
    const mw = fusedMlpWeights(cfg, w, lora, p, cache);
    let out: tf.Tensor3D;
    if (mw) out = mlpHalfFused(x1, mw, cfg.rmsNormEps) as tf.Tensor3D;
    else {
      const h2 = rmsNorm(x1, need(w, `${p}.post_attention_layernorm.weight`), cfg.rmsNormEps) as tf.Tensor3D;
      out = tf.add(x1, mlp(cfg, lin, `${p}.mlp`, h2)) as tf.Tensor3D;
    }
    return cache && att.k && att.v ? { x: out, k: att.k, v: att.v } : { x: out };
  });
}

/** True when LoRA dropout is active in this forward (as makeLinear decides). */
function dropoutOn(lora: Lora | null, opts: ForwardOptions): boolean {
  return lora !== null && opts.training === true && lora.config.dropout > 0;
}

function makeLinear(w: Weights, opts: ForwardOptions): Linear {
  const lora = opts.lora && opts.lora.enabled ? opts.lora : null;
  let dropout: LoraDropout | null = null;
  if (lora && opts.training && lora.config.dropout > 0) {
    if (!opts.dropoutRng) {
      throw new InputError(describe('forward opts.dropoutRng', 'missing', 'an Rng when training with LoRA dropout > 0', 'Pass the run\'s Rng so dropout is seeded.'));
    }
    dropout = { rate: lora.config.dropout, rng: opts.dropoutRng };
  }
  return (path, x, hasBias) =>
    loraLinear(x, need(w, `${path}.weight`), hasBias ? need(w, `${path}.bias`) : null, lora?.layers.get(path), lora?.scale ?? 0, dropout);
}

/**
 * One decoder layer under gradient checkpointing. The layer's LoRA variables are passed as params so their gradients
 * flow; the recompute replays the same dropout seeds (each call restarts from the Rng state at the layer's start),
 * and the run's Rng ends where an unchecked layer would have left it.
 */
function checkpointedLayer(cfg: LlamaConfig, w: Weights, opts: ForwardOptions, l: number, x: tf.Tensor3D, cos: tf.Tensor3D,
  sin: tf.Tensor3D, mask: AttnMask): tf.Tensor3D {
  const lora = opts.lora && opts.lora.enabled ? opts.lora : null;
  const prefix = `model.layers.${l}.`;
  const params = lora ? [...lora.layers].filter(([p]) => p.startsWith(prefix)).flatMap(([, ad]) => [ad.A, ad.B]) : [];
  const start = opts.dropoutRng?.getState();
  let end = start;
  // The mask's tensors are inputs (constants) of the checkpointed function: the key mask, and the bias when built.
  const layer = (xi: tf.Tensor, c: tf.Tensor, s: tf.Tensor, km: tf.Tensor, b?: tf.Tensor): tf.Tensor => {
    const rng = start ? Rng.fromState(start) : undefined;
    const m: AttnMask = { keyMask: km as tf.Tensor2D, bias: (b as tf.Tensor4D | undefined) ?? null };
    const out = decoderLayer(cfg, w, makeLinear(w, { ...opts, dropoutRng: rng }), l, xi as tf.Tensor3D, c as tf.Tensor3D, s as tf.Tensor3D, m, undefined, lora, dropoutOn(lora, opts)).x;
    end = rng?.getState();
    return out;
  };
  const masks = mask.bias ? [mask.keyMask, mask.bias] : [mask.keyMask];
  const out = checkpointed(layer as (...t: tf.Tensor[]) => tf.Tensor, { params, constants: [1, 2, 3, 4] })(x, cos, sin, ...masks) as tf.Tensor3D;
  if (opts.dropoutRng && end) opts.dropoutRng.setState(end);
  return out;
}

/**
 * Final-normed hidden states [B, T, H] for input ids (int32 [B, T]) and attention mask ([B, T], 1 = token, 0 = pad).
 * Padding may be on either side. With `opts.cache` the T tokens are appended after the cached slots (the mask then
 * covers only the new tokens); the cache is updated only when the whole forward succeeds.
 */
export function forwardHidden(cfg: LlamaConfig, w: Weights, inputIds: tf.Tensor2D, attentionMask: tf.Tensor2D, opts: ForwardOptions = {}): tf.Tensor3D {
  const [B, T] = inputIds.shape;
  if (attentionMask.shape[0] !== B || attentionMask.shape[1] !== T) {
    throw new InputError(describe('forward attentionMask', `shape [${attentionMask.shape}]`, `[${B}, ${T}] like inputIds`));
  }
  const cache = opts.cache;
  const lin = makeLinear(w, opts);
  return tf.tidy(() => {
    const past = cache ? cache.length : 0;
    const keyMask = cache ? cacheKeyMask(cache, attentionMask) : (tf.cast(attentionMask, 'float32') as tf.Tensor2D); // [B, S]
    const { cos, sin } = ropeTables(keyMask, ropeInvFreq(cfg.headDim, cfg.ropeTheta, cfg.ropeScaling), T); // [B, T, D] at positionsFromMask
    // The fused core (no cache) masks from keyMask itself; the op chain adds the bias.
    const mask: AttnMask = { keyMask, bias: cache || !attentionCoreActive() ? attentionBias(keyMask, past, T) : null }; // bias [B, 1, T, S]
    const ids = inputIds.dtype === 'int32' ? inputIds : tf.cast(inputIds, 'int32');
    let x = embedLookup(rowBlocks(w, EMBED_KEY), ids) as tf.Tensor3D; // [B, T, H]
    const keys: tf.Tensor4D[] = [];
    const values: tf.Tensor4D[] = [];
    for (let l = 0; l < cfg.numLayers; l++) {
      if (opts.gradientCheckpointing && !cache) {
        x = checkpointedLayer(cfg, w, opts, l, x, cos, sin, mask);
        continue;
      }
      const lora = opts.lora && opts.lora.enabled ? opts.lora : null;
      const step = decoderLayer(cfg, w, lin, l, x, cos, sin, mask, cache, lora, dropoutOn(lora, opts));
      x = step.x;
      if (step.k && step.v) {
        keys.push(step.k);
        values.push(step.v);
      }
    }
    const out = rmsNorm(x, need(w, 'model.norm.weight'), cfg.rmsNormEps) as tf.Tensor3D; // [B, T, H]
    if (cache) cacheCommit(cache, keys, values, keyMask);
    return out;
  });
}

/**
 * LM head on hidden states [..., H] -> logits [..., V]: lm_head.weight, or the embedding when tied (split by rows: the
 * blocks' logits side by side). The caller picks the rows (a chunk, the last token) so a [B, T, V] tensor is built
 * only when asked for.
 */
export function headLogits(cfg: LlamaConfig, w: Weights, hidden: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const H = cfg.hiddenSize;
    const lead = hidden.shape.slice(0, -1);
    const logits = blockLogits(rowBlocks(w, headKey(cfg)), tf.reshape(hidden, [-1, H]) as tf.Tensor2D); // [M, V]
    return tf.reshape(logits, [...lead, cfg.vocabSize]); // [..., V]
  });
}

/** headLogits(forwardHidden(...)): the full [B, T, V] logits. Convenient for tests and tiny models. */
export function forwardLogits(cfg: LlamaConfig, w: Weights, inputIds: tf.Tensor2D, attentionMask: tf.Tensor2D, opts: ForwardOptions = {}): tf.Tensor3D {
  return tf.tidy(() => headLogits(cfg, w, forwardHidden(cfg, w, inputIds, attentionMask, opts)) as tf.Tensor3D);
}

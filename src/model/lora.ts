// LoRA adapters on Llama linear layers: the one shared `loraLinear`, seeded init, loading from tensors, merge.
// PEFT semantics (`LoraLayer`): y = x W^T + b + scale * (dropout(x) A^T) B^T, A [r, in], B [out, r]; no DoRA, no bias adapters.
import * as tf from '@tensorflow/tfjs';
import type { LlamaConfig } from './types.js';
import { FormatError, InputError, describe } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { dropoutKeepMask } from './dropout.js';
import { fusedActive } from '../../kernels/native.js';
import { linearFused, loraLinearFused } from '../../kernels/lora-linear.js';
import './device-grads.js';

export interface LoraConfig {
  r: number;
  alpha: number;
  /** PEFT `lora_dropout`: applied to the adapter's input only, and only in training. */
  dropout: number;
  /** Short module names from ALL_LINEAR, e.g. ['q_proj', 'v_proj']. */
  targets: string[];
  useRslora: boolean;
}

/** The LoRA target names (HF module names of Llama's linear layers): the only list of them. The default targets. */
export const ATTN_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj'];
/** Every linear layer of a decoder block: PEFT's `all-linear` for Llama (lm_head excluded, as PEFT does). */
export const ALL_LINEAR = [...ATTN_TARGETS, 'gate_proj', 'up_proj', 'down_proj'];

/** The trainable pair of one module. Only these are tf.Variables, so the base model is frozen by construction. */
export interface LoraAdapter {
  A: tf.Variable; // [r, in]
  B: tf.Variable; // [out, r]
}

export interface Lora {
  config: LoraConfig;
  scale: number;
  /** Keyed by module path, e.g. 'model.layers.0.self_attn.q_proj' (the HF weight key without '.weight'). */
  layers: Map<string, LoraAdapter>;
  /** false gives the base model exactly: the reference policy for DPO without a second copy of the weights. */
  enabled: boolean;
}

/**
 * Dropout for the adapter input: a fresh seed is drawn from `rng` at every call (one per layer and module, in order), so
 * a seeded run is repeatable; the mask itself is made on the device from that seed (model/dropout.ts).
 */
export interface LoraDropout {
  rate: number;
  rng: Rng;
}

/** PEFT scaling: alpha / r, or alpha / sqrt(r) with rank-stabilized LoRA (Kalajdzievski 2023). */
export function loraScale(lc: LoraConfig): number {
  return lc.useRslora ? lc.alpha / Math.sqrt(lc.r) : lc.alpha / lc.r;
}

/** HF module path of a target in a layer. */
export function modulePath(layer: number, target: string): string {
  const block = ATTN_TARGETS.includes(target) ? 'self_attn' : 'mlp';
  return `model.layers.${layer}.${block}.${target}`;
}

/** [out, in] of a linear target, as in HF `LlamaAttention` / `LlamaMLP`. */
export function linearShape(cfg: LlamaConfig, target: string): [number, number] {
  const H = cfg.hiddenSize;
  const qDim = cfg.numHeads * cfg.headDim;
  const kvDim = cfg.numKvHeads * cfg.headDim;
  const I = cfg.intermediateSize;
  switch (target) {
    case 'q_proj': return [qDim, H];
    case 'k_proj': return [kvDim, H];
    case 'v_proj': return [kvDim, H];
    case 'o_proj': return [H, qDim];
    case 'gate_proj': return [I, H];
    case 'up_proj': return [I, H];
    case 'down_proj': return [H, I];
    default: throw new InputError(describe(`lora target ${JSON.stringify(target)}`, 'unknown', `one of ${ALL_LINEAR.join(', ')}`));
  }
}

/** A trainable Variable from a tensor built in a tidy, so the temporary does not outlive it. */
function newVariable(make: () => tf.Tensor): tf.Variable {
  return tf.tidy(() => tf.variable(make(), true));
}

function validateLoraConfig(lc: LoraConfig): void {
  if (!Number.isInteger(lc.r) || lc.r <= 0) throw new InputError(describe('lora.r', String(lc.r), 'a positive integer'));
  if (!Number.isFinite(lc.alpha)) throw new InputError(describe('lora.alpha', String(lc.alpha), 'a finite number'));
  if (!(lc.dropout >= 0 && lc.dropout < 1)) throw new InputError(describe('lora.dropout', String(lc.dropout), 'a number in [0, 1)'));
  if (lc.targets.length === 0) throw new InputError(describe('lora.targets', '[]', `some of ${ALL_LINEAR.join(', ')}`));
  for (const t of lc.targets) {
    if (!ALL_LINEAR.includes(t)) throw new InputError(describe('lora.targets', JSON.stringify(t), `one of ${ALL_LINEAR.join(', ')}`));
  }
}

/** Every (path, target) pair an adapter covers, in a fixed order (layers, then ALL_LINEAR order) so init is order-free. */
function adapterModules(cfg: LlamaConfig, lc: LoraConfig): { path: string; target: string }[] {
  const out: { path: string; target: string }[] = [];
  for (let l = 0; l < cfg.numLayers; l++) {
    for (const t of ALL_LINEAR) if (lc.targets.includes(t)) out.push({ path: modulePath(l, t), target: t });
  }
  return out;
}

/**
 * Fresh adapters: A Kaiming-uniform as PEFT (`kaiming_uniform_(a=sqrt(5))` on [r, in] gives U(-1/sqrt(in), 1/sqrt(in))),
 * B zeros, so the adapted model starts equal to the base and the first DPO loss is ln 2.
 */
export function createLora(cfg: LlamaConfig, lc: LoraConfig, seed: number): Lora {
  validateLoraConfig(lc);
  const rng = new Rng(seed);
  const layers = new Map<string, LoraAdapter>();
  for (const { path, target } of adapterModules(cfg, lc)) {
    const [out, inp] = linearShape(cfg, target);
    const bound = 1 / Math.sqrt(inp);
    const a = new Float32Array(lc.r * inp);
    for (let i = 0; i < a.length; i++) a[i] = rng.uniform(-bound, bound);
    layers.set(path, {
      A: newVariable(() => tf.tensor2d(a, [lc.r, inp])), // [r, in]
      B: newVariable(() => tf.zeros([out, lc.r])), // [out, r]
    });
  }
  return { config: { ...lc, targets: [...lc.targets] }, scale: loraScale(lc), layers, enabled: true };
}

/**
 * Adapters from given values, keyed `<module path>.lora_A` / `.lora_B` (the torch module names of the matrices;
 * io/peft.ts maps them to PEFT's tensor keys). Strict: every key present with its shape, nothing extra.
 * Tensors are copied into new Variables; the caller keeps ownership of what it passed.
 */
export function loraFromTensors(cfg: LlamaConfig, lc: LoraConfig, tensors: Record<string, Float32Array | tf.Tensor>): Lora {
  validateLoraConfig(lc);
  const layers = new Map<string, LoraAdapter>();
  const seen = new Set<string>();
  const take = (key: string, shape: [number, number]): tf.Variable => {
    const v = tensors[key];
    if (v === undefined) throw new FormatError(describe(`adapter ${key}`, 'missing', `a tensor of shape [${shape}]`, 'Are lora targets and rank the same as when it was saved?'));
    seen.add(key);
    const size = shape[0] * shape[1];
    if (v instanceof Float32Array) {
      if (v.length !== size) throw new FormatError(describe(`adapter ${key}`, `${v.length} values`, `${size} for shape [${shape}]`));
      return newVariable(() => tf.tensor2d(v, shape));
    }
    if (v.shape.length !== 2 || v.shape[0] !== shape[0] || v.shape[1] !== shape[1]) {
      throw new FormatError(describe(`adapter ${key}`, `shape [${v.shape}]`, `[${shape}]`));
    }
    return newVariable(() => tf.cast(v, 'float32'));
  };
  try {
    for (const { path, target } of adapterModules(cfg, lc)) {
      const [out, inp] = linearShape(cfg, target);
      const A = take(`${path}.lora_A`, [lc.r, inp]);
      let B: tf.Variable;
      try {
        B = take(`${path}.lora_B`, [out, lc.r]);
      } catch (e) {
        A.dispose();
        throw e;
      }
      layers.set(path, { A, B });
    }
    const extra = Object.keys(tensors).filter((k) => !seen.has(k));
    if (extra.length > 0) {
      throw new FormatError(describe('adapter', `unexpected keys ${extra.slice(0, 3).join(', ')}${extra.length > 3 ? ', ...' : ''}`, `only the targets ${lc.targets.join(', ')}`));
    }
  } catch (e) {
    for (const ad of layers.values()) { ad.A.dispose(); ad.B.dispose(); }
    throw e;
  }
  return { config: { ...lc, targets: [...lc.targets] }, scale: loraScale(lc), layers, enabled: true };
}

/** The adapter Variables keyed like loraFromTensors' input (shared, not copied), e.g. for saving. */
export function loraTensors(lora: Lora): Record<string, tf.Variable> {
  const out: Record<string, tf.Variable> = {};
  for (const [path, { A, B }] of lora.layers) {
    out[`${path}.lora_A`] = A;
    out[`${path}.lora_B`] = B;
  }
  return out;
}

/**
 * The one linear layer of the model: x [..., in], weight [out, in] (HF layout), optional bias [out] -> [..., out].
 * With an adapter it adds `scale * (dropout(x) A^T) B^T`; the scale is applied on the rank-r side, where it is cheapest.
 */
export function loraLinear(
  x: tf.Tensor,
  weight: tf.Tensor,
  bias: tf.Tensor | null | undefined,
  adapter: LoraAdapter | undefined,
  scale: number,
  dropout?: LoraDropout | null,
): tf.Tensor {
  // Without bias or dropout, one kernel each way where the addon's are registered (kernels/lora-linear.ts): the same
  // values; the plain ops below are its reference (DPO_KERNELS=reference).
  if (adapter && !bias && !(dropout && dropout.rate > 0) && fusedActive('DpoLoraLinear')) return loraLinearFused(x, weight, adapter.A, adapter.B, scale);
  if (!adapter && !bias && fusedActive('DpoLinear')) return linearFused(x, weight);
  return tf.tidy(() => {
    const inp = x.shape[x.shape.length - 1] as number;
    const lead = x.shape.slice(0, -1);
    const out = weight.shape[0] as number;
    const x2 = tf.reshape(x, [-1, inp]); // [M, in]
    let y = tf.matMul(x2, weight, false, true); // [M, out]
    if (bias) y = tf.add(y, bias);
    if (adapter) {
      // Dropout keeps each input element with probability 1 - rate (model/dropout.ts: a mask hashed on the device);
      // nn.Dropout's 1 / (1 - rate) is folded into the rank-r scale.
      const drop = dropout && dropout.rate > 0 ? dropout : null;
      const xd = drop ? tf.mul(x2, dropoutKeepMask(x2.shape[0], inp, drop.rate, drop.rng.nextU32())) : x2; // [M, in]
      const down = tf.mul(tf.matMul(xd, adapter.A, false, true), drop ? scale / (1 - drop.rate) : scale); // [M, r]
      y = tf.add(y, tf.matMul(down, adapter.B, false, true)); // [M, out]
    }
    return tf.reshape(y, [...lead, out]); // [..., out]
  });
}

/**
 * W + scale * B A for every adapted module (PEFT `merge_and_unload`). Returns a new record: target keys hold new
 * tensors, every other key shares the input tensor. Free it with `disposeMerged(merged, w)`.
 */
export function mergeLora(w: Record<string, tf.Tensor>, lora: Lora): Record<string, tf.Tensor> {
  const out: Record<string, tf.Tensor> = { ...w };
  for (const [path, { A, B }] of lora.layers) {
    const key = `${path}.weight`;
    const base = w[key];
    if (!base) throw new FormatError(describe(`weights ${key}`, 'missing', 'the base weight of a LoRA target'));
    out[key] = tf.tidy(() => tf.add(base, tf.mul(tf.matMul(B, A), lora.scale))); // [out, in]
  }
  return out;
}

/** Disposes the tensors of `merged` that are not shared with `base`. */
export function disposeMerged(merged: Record<string, tf.Tensor>, base: Record<string, tf.Tensor>): void {
  for (const [k, t] of Object.entries(merged)) if (base[k] !== t) t.dispose();
}

export function disposeLora(lora: Lora): void {
  for (const { A, B } of lora.layers.values()) {
    A.dispose();
    B.dispose();
  }
  lora.layers.clear();
}

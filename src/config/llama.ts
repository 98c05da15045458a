// HF `config.json` -> a typed Llama config with every field Llama 3.1 uses (LlamaConfig field names).
// Strict: another architecture or rope type is an error, never a silent fallback. Derived values live here.
// Reads both layouts: transformers v4 (top-level `rope_theta` + `rope_scaling`, `torch_dtype`) and v5
// (`rope_parameters` holding `rope_theta`, `rope_type` and its factors; `dtype`), as v5's
// `RotaryEmbeddingConfigMixin.convert_rope_params_to_dict` does; a config where the two disagree is refused.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { FormatError, describe } from '../util/errors.js';
import { readJsonObject } from '../io/json.js';

// The types live beside the model that takes them (model/types.ts); config/ parses into them.
import type { ConfigLayout, LlamaConfig, RopeScaling } from '../model/types.js';
export type { ConfigLayout, LlamaConfig, RopeScaling } from '../model/types.js';
export { kvGroups } from '../model/types.js';

type Json = Record<string, unknown>;

function num(j: Json, key: string, where: string, fallback?: number): number {
  const v = j[key];
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new FormatError(describe(`${where}: ${key}`, 'missing', 'a number'));
  }
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new FormatError(describe(`${where}: ${key}`, JSON.stringify(v), 'a number'));
  }
  return v;
}

function int(j: Json, key: string, where: string, fallback?: number): number {
  const v = num(j, key, where, fallback);
  if (!Number.isInteger(v) || v < 0) throw new FormatError(describe(`${where}: ${key}`, String(v), 'a non-negative integer'));
  return v;
}

function bool(j: Json, key: string, where: string, fallback: boolean): boolean {
  const v = j[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean') throw new FormatError(describe(`${where}: ${key}`, JSON.stringify(v), 'true or false'));
  return v;
}

function ids(v: unknown, key: string, where: string): number[] {
  if (v === undefined || v === null) return [];
  const list = Array.isArray(v) ? v : [v];
  for (const x of list) {
    if (typeof x !== 'number' || !Number.isInteger(x)) throw new FormatError(describe(`${where}: ${key}`, JSON.stringify(v), 'an int or a list of ints'));
  }
  return list as number[];
}

/** The rope type and llama3 factors of a v4 `rope_scaling` or a v5 `rope_parameters` object (`key` names it). */
function parseRopeScaling(v: unknown, where: string, key: string): RopeScaling | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v)) throw new FormatError(describe(`${where}: ${key}`, JSON.stringify(v), 'an object or null'));
  const r = v as Json;
  // `type` is the older spelling of `rope_type` (transformers < 4.43); v5 defaults a missing one to "default".
  const kind = r.rope_type ?? r.type ?? (key === 'rope_parameters' ? 'default' : undefined);
  if (kind === 'default') return null;
  if (kind !== 'llama3') {
    throw new FormatError(describe(`${where}: ${key}.rope_type`, JSON.stringify(kind), '"llama3" or "default"', 'Only Llama 3.1 rope scaling is supported.'));
  }
  const w = `${where}: ${key}`;
  return {
    ropeType: 'llama3',
    factor: num(r, 'factor', w),
    lowFreqFactor: num(r, 'low_freq_factor', w),
    highFreqFactor: num(r, 'high_freq_factor', w),
    originalMaxPositionEmbeddings: int(r, 'original_max_position_embeddings', w),
  };
}

const sameScaling = (a: RopeScaling | null, b: RopeScaling | null) => JSON.stringify(a) === JSON.stringify(b);
const describeScaling = (s: RopeScaling | null) => (s === null ? 'no scaling' : JSON.stringify(s));

/**
 * RoPE settings from either layout. v5 (`rope_parameters`) wins only where it agrees with any v4 keys also present;
 * a disagreement is an error, since transformers v5 would silently prefer `rope_parameters` and v4 `rope_theta`.
 * Neither `rope_theta` nor `rope_parameters` is an error too: a silent theta = 10000 is another model for Llama 3.
 */
function parseRope(j: Json, where: string): { ropeTheta: number; ropeScaling: RopeScaling | null; v5: boolean } {
  const rp = j.rope_parameters;
  const hasTop = j.rope_theta !== undefined && j.rope_theta !== null;
  if (rp === undefined || rp === null) {
    if (!hasTop) {
      throw new FormatError(describe(`${where}: rope_theta`, 'missing (and no rope_parameters)', 'a number, or a transformers v5 rope_parameters object',
        'Without it the rope base is ambiguous (10000 for Llama 2, 500000 for Llama 3); copy config.json from the model\'s original release.'));
    }
    return { ropeTheta: num(j, 'rope_theta', where), ropeScaling: parseRopeScaling(j.rope_scaling, where, 'rope_scaling'), v5: false };
  }
  if (typeof rp !== 'object' || Array.isArray(rp)) throw new FormatError(describe(`${where}: rope_parameters`, JSON.stringify(rp), 'an object'));
  const p = rp as Json;
  if ('full_attention' in p || 'sliding_attention' in p) {
    throw new FormatError(describe(`${where}: rope_parameters`, 'per-layer-type rope parameters', 'one rope_parameters object', 'Llama uses one rope for every layer.'));
  }
  const prf = p.partial_rotary_factor;
  if (prf !== undefined && prf !== null && prf !== 1) {
    throw new FormatError(describe(`${where}: rope_parameters.partial_rotary_factor`, JSON.stringify(prf), '1 (rope on the whole head)'));
  }
  // v5 fills a missing rope_parameters.rope_theta from a top-level rope_theta (its backward-compatible path).
  const inner = p.rope_theta !== undefined && p.rope_theta !== null;
  if (!inner && !hasTop) throw new FormatError(describe(`${where}: rope_parameters.rope_theta`, 'missing', 'a number'));
  const ropeTheta = inner ? num(p, 'rope_theta', `${where}: rope_parameters`) : num(j, 'rope_theta', where);
  if (inner && hasTop && num(j, 'rope_theta', where) !== ropeTheta) {
    throw new FormatError(describe(`${where}: rope_theta`, `${String(j.rope_theta)} beside rope_parameters.rope_theta=${ropeTheta}`, 'one value, or only one of the two keys',
      'The file mixes transformers v4 and v5 layouts; keep the one its weights were trained with.'));
  }
  const ropeScaling = parseRopeScaling(p, where, 'rope_parameters');
  if (j.rope_scaling !== undefined && j.rope_scaling !== null) {
    const v4 = parseRopeScaling(j.rope_scaling, where, 'rope_scaling');
    if (!sameScaling(v4, ropeScaling)) {
      throw new FormatError(describe(`${where}: rope_scaling`, describeScaling(v4), `the same scaling as rope_parameters (${describeScaling(ropeScaling)})`,
        'The file mixes transformers v4 and v5 layouts; keep the one its weights were trained with.'));
    }
  }
  return { ropeTheta, ropeScaling, v5: true };
}

/** `torch_dtype` (v4) or `dtype` (v5); both present must agree. */
function parseDtype(j: Json, where: string): { dtype: string | null; v5: boolean } {
  const t = typeof j.torch_dtype === 'string' ? j.torch_dtype : null;
  const d = typeof j.dtype === 'string' ? j.dtype : null;
  if (t !== null && d !== null && t !== d) throw new FormatError(describe(`${where}: dtype`, JSON.stringify(d), `torch_dtype's ${JSON.stringify(t)} (or only one of the two keys)`));
  return { dtype: t ?? d, v5: d !== null && t === null };
}

/** Parses an HF LlamaConfig JSON object. `where` names the file in errors. */
export function parseLlamaConfig(j: Json, where = 'config.json'): LlamaConfig {
  const mt = j.model_type;
  if (mt !== undefined && mt !== 'llama') {
    throw new FormatError(describe(`${where}: model_type`, JSON.stringify(mt), '"llama"', 'Only the Llama architecture is supported.'));
  }
  const arch = j.architectures;
  if (Array.isArray(arch) && arch.length > 0 && !arch.includes('LlamaForCausalLM')) {
    throw new FormatError(describe(`${where}: architectures`, JSON.stringify(arch), '["LlamaForCausalLM"]'));
  }
  const hiddenSize = int(j, 'hidden_size', where);
  const numHeads = int(j, 'num_attention_heads', where);
  const numKvHeads = int(j, 'num_key_value_heads', where, numHeads);
  const headDim = int(j, 'head_dim', where, hiddenSize / numHeads);
  if (numHeads % numKvHeads !== 0) {
    throw new FormatError(describe(`${where}: num_key_value_heads`, String(numKvHeads), `a divisor of num_attention_heads=${numHeads}`));
  }
  if (headDim % 2 !== 0 || !Number.isInteger(headDim)) {
    throw new FormatError(describe(`${where}: head_dim`, String(headDim), 'an even integer'));
  }
  const act = j.hidden_act;
  if (act !== undefined && act !== 'silu') throw new FormatError(describe(`${where}: hidden_act`, JSON.stringify(act), '"silu"'));
  const pretrainingTp = j.pretraining_tp;
  if (pretrainingTp !== undefined && pretrainingTp !== 1) {
    throw new FormatError(describe(`${where}: pretraining_tp`, JSON.stringify(pretrainingTp), '1'));
  }
  const rope = parseRope(j, where);
  const dtype = parseDtype(j, where);
  return {
    vocabSize: int(j, 'vocab_size', where),
    hiddenSize,
    intermediateSize: int(j, 'intermediate_size', where),
    numLayers: int(j, 'num_hidden_layers', where),
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: num(j, 'rms_norm_eps', where, 1e-6),
    ropeTheta: rope.ropeTheta,
    ropeScaling: rope.ropeScaling,
    maxPositionEmbeddings: int(j, 'max_position_embeddings', where, 2048),
    tieWordEmbeddings: bool(j, 'tie_word_embeddings', where, false),
    attentionBias: bool(j, 'attention_bias', where, false),
    mlpBias: bool(j, 'mlp_bias', where, false),
    bosTokenId: ids(j.bos_token_id, 'bos_token_id', where)[0] ?? null,
    eosTokenIds: ids(j.eos_token_id, 'eos_token_id', where),
    torchDtype: dtype.dtype,
    configLayout: rope.v5 || dtype.v5 ? 'v5' : 'v4',
  };
}

/** Reads `<dir>/config.json`. */
export function loadLlamaConfig(dir: string): LlamaConfig {
  const file = join(dir, 'config.json');
  if (!existsSync(file)) throw new FormatError(describe(file, 'missing', 'an HF config.json', 'Point --model at a Hugging Face model directory.'));
  return parseLlamaConfig(readJsonObject(file, 'an HF config.json'), file);
}

// HF `config.json` -> a typed Llama config with every field Llama 3.1 uses (LlamaConfig field names).
// Strict: another architecture or rope type is an error, never a silent fallback. Derived values live here.
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { FormatError, describe } from '../util/errors.js';

export interface RopeScaling {
  ropeType: 'llama3';
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositionEmbeddings: number;
}

export interface LlamaConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  /** `head_dim` when given, else hidden / heads. */
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  attentionBias: boolean;
  mlpBias: boolean;
  bosTokenId: number | null;
  eosTokenIds: number[];
  /** `torch_dtype` as written, informational only: we compute in float32. */
  torchDtype: string | null;
}

/** Query heads per KV head (grouped-query attention). */
export function kvGroups(c: LlamaConfig): number {
  return c.numHeads / c.numKvHeads;
}

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

function parseRopeScaling(v: unknown, where: string): RopeScaling | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object') throw new FormatError(describe(`${where}: rope_scaling`, JSON.stringify(v), 'an object or null'));
  const r = v as Json;
  // `type` is the older spelling of `rope_type` (transformers < 4.43).
  const kind = r.rope_type ?? r.type;
  if (kind === 'default') return null;
  if (kind !== 'llama3') {
    throw new FormatError(describe(`${where}: rope_scaling.rope_type`, JSON.stringify(kind), '"llama3" or "default"', 'Only Llama 3.1 rope scaling is supported.'));
  }
  const w = `${where}: rope_scaling`;
  return {
    ropeType: 'llama3',
    factor: num(r, 'factor', w),
    lowFreqFactor: num(r, 'low_freq_factor', w),
    highFreqFactor: num(r, 'high_freq_factor', w),
    originalMaxPositionEmbeddings: int(r, 'original_max_position_embeddings', w),
  };
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
  return {
    vocabSize: int(j, 'vocab_size', where),
    hiddenSize,
    intermediateSize: int(j, 'intermediate_size', where),
    numLayers: int(j, 'num_hidden_layers', where),
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: num(j, 'rms_norm_eps', where, 1e-6),
    ropeTheta: num(j, 'rope_theta', where, 10000),
    ropeScaling: parseRopeScaling(j.rope_scaling, where),
    maxPositionEmbeddings: int(j, 'max_position_embeddings', where, 2048),
    tieWordEmbeddings: bool(j, 'tie_word_embeddings', where, false),
    attentionBias: bool(j, 'attention_bias', where, false),
    mlpBias: bool(j, 'mlp_bias', where, false),
    bosTokenId: ids(j.bos_token_id, 'bos_token_id', where)[0] ?? null,
    eosTokenIds: ids(j.eos_token_id, 'eos_token_id', where),
    torchDtype: typeof j.torch_dtype === 'string' ? j.torch_dtype : null,
  };
}

/** Reads `<dir>/config.json`. */
export function loadLlamaConfig(dir: string): LlamaConfig {
  const file = join(dir, 'config.json');
  if (!existsSync(file)) throw new FormatError(describe(file, 'missing', 'an HF config.json', 'Point --model at a Hugging Face model directory.'));
  let j: unknown;
  try {
    j = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new FormatError(describe(file, `invalid JSON (${(e as Error).message})`));
  }
  return parseLlamaConfig(j as Json, file);
}

// Writes a tiny Llama 3.1-shaped Hugging Face model directory from a seed: config.json with llama3 rope scaling,
// BF16 sharded safetensors + index, tokenizer files with a chat template. Tests and the embedded default use it.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseLlamaConfig } from '../config/llama.js';
import { expectedWeightShapes } from '../model/llama.js';
import { makeTinyTokenizer, TINY_SPECIAL_TOKENS } from '../tokenizer/tiny.js';
import { Rng } from '../util/rng.js';
import { writeDirAtomic, writeFileAtomic } from './atomic.js';
import { writeShardedSafetensors } from './shards.js';
import { checkOutDir } from './out-dir.js';

export interface TinyOptions {
  seed?: number;
  tieWordEmbeddings?: boolean;
  hiddenSize?: number;
  numLayers?: number;
  /** config.json layout: transformers v4 (`rope_theta` + `rope_scaling`, `torch_dtype`; the default) or v5 (`rope_parameters`, `dtype`). */
  layout?: 'v4' | 'v5';
  /** Write into a non-empty folder this tool did not write, replacing only its own files (io/out-dir.ts). */
  overwrite?: boolean;
  numHeads?: number;
  numKvHeads?: number;
  intermediateSize?: number;
  /** Byte merges on top of the 256 bytes (tokenizer/tiny.ts); 0 gives a byte-level tokenizer. Default 251 (vocab 512). */
  merges?: number;
  /** Plain RoPE (no llama3 scaling) with this theta. */
  ropeTheta?: number;
}

/**
 * Named model shapes. `world`: the learnable code world's model (issue 16's PyTorch prototype: byte-level, d = 96,
 * 4 layers, 4 heads, ~0.49M parameters), trained from scratch with `sft --full`.
 */
export const TINY_PRESETS: Record<string, TinyOptions> = {
  world: { hiddenSize: 96, numLayers: 4, numHeads: 4, numKvHeads: 4, intermediateSize: 256, merges: 0, ropeTheta: 10000 },
};

/** HF config.json of the tiny model. A small original context (64) puts its rope frequencies in all three llama3 bands. */
export function tinyConfigJson(vocabSize: number, bosId: number, eosIds: number[], o: TinyOptions = {}): Record<string, unknown> {
  const hidden = o.hiddenSize ?? 64;
  const heads = o.numHeads ?? 4;
  const v4: Record<string, unknown> = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    attention_bias: false,
    attention_dropout: 0.0,
    bos_token_id: bosId,
    eos_token_id: eosIds,
    head_dim: hidden / heads,
    hidden_act: 'silu',
    hidden_size: hidden,
    initializer_range: 0.02,
    intermediate_size: o.intermediateSize ?? Math.round((hidden * 11) / 4),
    max_position_embeddings: 2048,
    mlp_bias: false,
    num_attention_heads: heads,
    num_hidden_layers: o.numLayers ?? 2,
    num_key_value_heads: o.numKvHeads ?? 2,
    pretraining_tp: 1,
    rms_norm_eps: 1e-5,
    rope_scaling: o.ropeTheta !== undefined ? null : { factor: 8.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 64, rope_type: 'llama3' },
    rope_theta: o.ropeTheta ?? 500000.0,
    tie_word_embeddings: o.tieWordEmbeddings ?? false,
    torch_dtype: 'bfloat16',
    use_cache: true,
    vocab_size: vocabSize,
  };
  if (o.layout !== 'v5') return v4;
  // transformers v5 (configuration_llama.py `rope_parameters: RopeParameters`): rope_theta moves inside, dtype renamed.
  const { rope_scaling, rope_theta, torch_dtype, ...rest } = v4;
  return { ...rest, dtype: torch_dtype, rope_parameters: { ...(rope_scaling as object), rope_theta }, transformers_version: '5.0.0' };
}

/**
 * Creates `dir` atomically. Weights are N(0, 0.02) as HF's initializer_range, norms 1; deterministic for a seed.
 * Shards are capped small so even the tiny model exercises the sharded layout.
 */
export async function writeTinyModel(dir: string, o: TinyOptions = {}): Promise<void> {
  checkOutDir(dir, { flag: '--out', overwrite: o.overwrite ?? false });
  const tok = makeTinyTokenizer(undefined, o.merges !== undefined ? { vocabSize: 256 + o.merges + TINY_SPECIAL_TOKENS.length } : {});
  const ids = tok.specialIds;
  const configJson = tinyConfigJson(tok.vocabSize, ids['<|begin_of_text|>'], [ids['<|end_of_text|>'], ids['<|eot_id|>']], o);
  const cfg = parseLlamaConfig(configJson, 'tiny config.json');
  const shapes = expectedWeightShapes(cfg);
  const rng = new Rng(o.seed ?? 0);
  const names = Object.keys(shapes).sort();
  const tensors = names.map((name) => {
    const shape = shapes[name];
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (name.endsWith('norm.weight')) data.fill(1);
    else for (let i = 0; i < data.length; i++) data[i] = rng.normal(0, 0.02);
    return { name, shape, data };
  });
  const totalBytes = tensors.reduce((n, t) => n + t.data.length * 2, 0);
  mkdirSync(join(dir, '..'), { recursive: true });
  await writeDirAtomic(dir, async (tmp) => {
    await writeShardedSafetensors(tmp, tensors, { dtype: 'BF16', maxShardBytes: Math.ceil(totalBytes / 2) + 1 });
    const json = (name: string, v: unknown) => writeFileAtomic(join(tmp, name), JSON.stringify(v, null, 2) + '\n');
    json('config.json', configJson);
    json('tokenizer.json', tok.tokenizerJson);
    json('tokenizer_config.json', tok.tokenizerConfig);
    json('generation_config.json', { ...tok.generationConfig, do_sample: true, temperature: 0.6, top_p: 0.9 });
  }, { manifest: 'init-tiny' });
}

// parseLlamaConfig on the literal config.json of meta-llama/Llama-3.1-8B-Instruct, the older `type` spelling,
// derived values, and an error for each unsupported value. loadLlamaConfig's file errors.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { kvGroups, loadLlamaConfig, parseLlamaConfig } from '../../src/config/llama.js';
import { FormatError } from '../../src/util/errors.js';

// meta-llama/Llama-3.1-8B-Instruct config.json, verbatim.
const LLAMA_31_8B = `{
  "architectures": [
    "LlamaForCausalLM"
  ],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 128000,
  "eos_token_id": [
    128001,
    128008,
    128009
  ],
  "hidden_act": "silu",
  "hidden_size": 4096,
  "initializer_range": 0.02,
  "intermediate_size": 14336,
  "max_position_embeddings": 131072,
  "mlp_bias": false,
  "model_type": "llama",
  "num_attention_heads": 32,
  "num_hidden_layers": 32,
  "num_key_value_heads": 8,
  "pretraining_tp": 1,
  "rms_norm_eps": 1e-05,
  "rope_scaling": {
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192,
    "rope_type": "llama3"
  },
  "rope_theta": 500000.0,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.43.0.dev0",
  "use_cache": true,
  "vocab_size": 128256
}`;

const real = () => JSON.parse(LLAMA_31_8B) as Record<string, unknown>;
const withRope = (r: Record<string, unknown>) => ({ ...real(), rope_scaling: r });

describe('parseLlamaConfig', () => {
  it('reads every field of the real Llama 3.1 8B config', () => {
    const c = parseLlamaConfig(real());
    expect(c).toEqual({
      vocabSize: 128256,
      hiddenSize: 4096,
      intermediateSize: 14336,
      numLayers: 32,
      numHeads: 32,
      numKvHeads: 8,
      headDim: 128,
      rmsNormEps: 1e-5,
      ropeTheta: 500000,
      ropeScaling: { ropeType: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 },
      maxPositionEmbeddings: 131072,
      tieWordEmbeddings: false,
      attentionBias: false,
      mlpBias: false,
      bosTokenId: 128000,
      eosTokenIds: [128001, 128008, 128009],
      torchDtype: 'bfloat16',
      configLayout: 'v4',
    });
    expect(kvGroups(c)).toBe(4);
  });

  it('accepts `type` as the older spelling of `rope_type`, an explicit head_dim, a scalar eos and tied embeddings', () => {
    const { rope_type: _, ...rest } = real().rope_scaling as Record<string, unknown>;
    const c = parseLlamaConfig({ ...withRope({ ...rest, type: 'llama3' }), head_dim: 64, eos_token_id: 128009, tie_word_embeddings: true });
    expect(c.ropeScaling).toEqual({ ropeType: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 });
    expect(c.headDim).toBe(64);
    expect(c.eosTokenIds).toEqual([128009]);
    expect(c.tieWordEmbeddings).toBe(true);
  });

  it('no rope_scaling (or rope_type "default") is plain RoPE; missing kv heads means multi-head attention', () => {
    const { num_key_value_heads: _, rope_scaling: __, ...rest } = real();
    const c = parseLlamaConfig(rest);
    expect(c.ropeScaling).toBeNull();
    expect(c.numKvHeads).toBe(32);
    expect(parseLlamaConfig(withRope({ rope_type: 'default' })).ropeScaling).toBeNull();
  });

  it('rejects another architecture, naming the field', () => {
    expect(() => parseLlamaConfig({ ...real(), model_type: 'mistral' })).toThrow(FormatError);
    expect(() => parseLlamaConfig({ ...real(), model_type: 'mistral' })).toThrow(/config\.json: model_type: "mistral" \(expected "llama"\)/);
    expect(() => parseLlamaConfig({ ...real(), architectures: ['Qwen2ForCausalLM'] })).toThrow(/architectures/);
    expect(() => parseLlamaConfig({ ...real(), hidden_act: 'gelu' })).toThrow(/hidden_act: "gelu"/);
    expect(() => parseLlamaConfig({ ...real(), pretraining_tp: 2 })).toThrow(/pretraining_tp/);
  });

  it('rejects another rope type (yarn, dynamic, linear), never falling back silently', () => {
    for (const t of ['yarn', 'dynamic', 'linear']) {
      expect(() => parseLlamaConfig(withRope({ ...(real().rope_scaling as object), rope_type: t }), 'm/config.json')).toThrow(
        new RegExp(`m/config\\.json: rope_scaling\\.rope_type: "${t}" \\(expected "llama3" or "default"\\)`),
      );
    }
    expect(() => parseLlamaConfig(withRope({ type: 'yarn', factor: 4 }))).toThrow(/rope_type: "yarn"/);
    expect(() => parseLlamaConfig(withRope({ rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4 }))).toThrow(
      /rope_scaling: original_max_position_embeddings: missing/,
    );
  });

  it('rejects bad kv heads, head dims and ids, naming the key', () => {
    expect(() => parseLlamaConfig({ ...real(), num_key_value_heads: 5 })).toThrow(/num_key_value_heads: 5 \(expected a divisor of num_attention_heads=32\)/);
    expect(() => parseLlamaConfig({ ...real(), num_key_value_heads: 0 })).toThrow(/num_key_value_heads/);
    expect(() => parseLlamaConfig({ ...real(), num_key_value_heads: 2.5 })).toThrow(/num_key_value_heads: 2\.5/);
    expect(() => parseLlamaConfig({ ...real(), num_key_value_heads: '8' })).toThrow(/num_key_value_heads: "8" \(expected a number\)/);
    expect(() => parseLlamaConfig({ ...real(), head_dim: 63 })).toThrow(/head_dim: 63 \(expected an even integer\)/);
    expect(() => parseLlamaConfig({ ...real(), hidden_size: 4000, num_attention_heads: 32, num_key_value_heads: 8 })).toThrow(/head_dim/);
    expect(() => parseLlamaConfig({ ...real(), vocab_size: undefined })).toThrow(/vocab_size: missing/);
    expect(() => parseLlamaConfig({ ...real(), eos_token_id: ['</s>'] })).toThrow(/eos_token_id/);
    expect(() => parseLlamaConfig({ ...real(), tie_word_embeddings: 'no' })).toThrow(/tie_word_embeddings: "no" \(expected true or false\)/);
  });
});

// The same model as LLAMA_31_8B in the transformers v5 layout, written by hand from v5's
// models/llama/configuration_llama.py (`rope_parameters: RopeParameters | dict | None`, `dtype` in place of
// `torch_dtype`) and modeling_rope_utils.py (`RopeParameters`: rope_theta, rope_type and the llama3 factors in one
// dict; `convert_rope_params_to_dict` takes rope_theta from the top level only when rope_parameters lacks it).
function v5(): Record<string, unknown> {
  const { rope_scaling, rope_theta, torch_dtype, transformers_version: _, ...rest } = real();
  return { ...rest, dtype: torch_dtype, rope_parameters: { ...(rope_scaling as object), rope_theta }, transformers_version: '5.0.0' };
}

describe('parseLlamaConfig: transformers v5 layout', () => {
  it('reads rope_parameters and dtype into the same config as the v4 layout', () => {
    const a = parseLlamaConfig(real());
    const b = parseLlamaConfig(v5());
    expect(b.configLayout).toBe('v5');
    expect({ ...b, configLayout: 'v4' }).toEqual(a);
    expect(b.ropeTheta).toBe(500000);
    expect(b.ropeScaling?.factor).toBe(8);
  });

  it('rope_type "default" (or none) in rope_parameters is plain RoPE with its own theta', () => {
    const c = parseLlamaConfig({ ...v5(), rope_parameters: { rope_type: 'default', rope_theta: 10000 } });
    expect(c.ropeScaling).toBeNull();
    expect(c.ropeTheta).toBe(10000);
    expect(parseLlamaConfig({ ...v5(), rope_parameters: { rope_theta: 1234 } }).ropeTheta).toBe(1234);
  });

  it('v4 keys beside v5 ones must agree; a missing inner rope_theta falls back to the top-level one (v5 BC path)', () => {
    const both = { ...v5(), rope_theta: 500000, rope_scaling: real().rope_scaling, torch_dtype: 'bfloat16' };
    expect(parseLlamaConfig(both).ropeTheta).toBe(500000);
    expect(() => parseLlamaConfig({ ...both, rope_theta: 10000 })).toThrow(/rope_theta: 10000 beside rope_parameters\.rope_theta=500000/);
    expect(() => parseLlamaConfig({ ...both, rope_scaling: { ...(real().rope_scaling as object), factor: 4 } })).toThrow(/rope_scaling: .*expected the same scaling as rope_parameters/);
    expect(() => parseLlamaConfig({ ...both, rope_scaling: null, rope_parameters: { rope_type: 'default', rope_theta: 500000 }, torch_dtype: 'float32' })).toThrow(/dtype: "bfloat16" \(expected torch_dtype's "float32"/);
    const { rope_theta: _, ...inner } = v5().rope_parameters as Record<string, unknown>;
    expect(parseLlamaConfig({ ...v5(), rope_parameters: inner, rope_theta: 321 }).ropeTheta).toBe(321);
    expect(() => parseLlamaConfig({ ...v5(), rope_parameters: inner })).toThrow(/rope_parameters\.rope_theta: missing/);
  });

  it('neither rope_theta nor rope_parameters is refused, never a silent theta = 10000', () => {
    const { rope_theta: _, ...noTheta } = real();
    expect(() => parseLlamaConfig(noTheta)).toThrow(/rope_theta: missing \(and no rope_parameters\)/);
    expect(() => parseLlamaConfig({ ...v5(), rope_parameters: { ...(v5().rope_parameters as object), rope_type: 'yarn' } })).toThrow(/rope_parameters\.rope_type: "yarn"/);
    expect(() => parseLlamaConfig({ ...v5(), rope_parameters: { rope_theta: 1, partial_rotary_factor: 0.5 } })).toThrow(/partial_rotary_factor/);
    expect(() => parseLlamaConfig({ ...v5(), rope_parameters: { full_attention: { rope_theta: 1 } } })).toThrow(/per-layer-type/);
  });
});

describe('loadLlamaConfig', () => {
  const dir = mkdtempSync(join(tmpdir(), 'llama-cfg-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads <dir>/config.json; a missing or invalid file is a FormatError naming the path', () => {
    writeFileSync(join(dir, 'config.json'), LLAMA_31_8B);
    expect(loadLlamaConfig(dir).vocabSize).toBe(128256);
    writeFileSync(join(dir, 'config.json'), '{"vocab_size": 3,');
    expect(() => loadLlamaConfig(dir)).toThrow(/config\.json: invalid JSON/);
    const empty = mkdtempSync(join(dir, 'empty-'));
    expect(() => loadLlamaConfig(empty)).toThrow(new RegExp(`${empty}/config\\.json: missing.*--model`));
  });
});

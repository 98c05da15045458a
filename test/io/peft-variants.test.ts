// PEFT LoRA variants we cannot honour are refused by name; a regex target_modules resolves when it picks whole
// modules. The accepted config is the adapter_config.json that PEFT's save_pretrained writes for a plain LoRA
// (field names and defaults transcribed from PEFT HEAD src/peft/tuners/lora/config.py `LoraConfig`).
import { describe, it, expect, afterAll } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkPeftVariants, resolveTargetRegex } from '../../src/io/peft-variants.js';
import { readAdapterConfig } from '../../src/io/peft.js';
import { FormatError } from '../../src/util/errors.js';

const PEFT_DEFAULTS: Record<string, unknown> = {
  alora_invocation_tokens: null, alpha_pattern: {}, arrow_config: null, auto_mapping: null, base_model_name_or_path: 'm',
  bias: 'none', corda_config: null, ensure_weight_tying: false, eva_config: null, exclude_modules: null, fan_in_fan_out: false,
  inference_mode: true, init_lora_weights: true, layer_replication: null, layers_pattern: null, layers_to_transform: null,
  loftq_config: {}, lora_alpha: 16, lora_bias: false, lora_dropout: 0.05, megatron_config: null, megatron_core: 'megatron.core',
  modules_to_save: null, peft_type: 'LORA', peft_version: '0.18.0', qalora_group_size: 16, r: 8, rank_pattern: {}, revision: null,
  target_modules: ['q_proj', 'v_proj'], target_parameters: null, task_type: 'CAUSAL_LM', trainable_token_indices: null,
  use_dora: false, use_qalora: false, use_rslora: false,
};
const F = 'a/adapter_config.json';

describe('checkPeftVariants', () => {
  it('accepts what save_pretrained writes for a plain LoRA, and init_lora_weights false or "gaussian"', () => {
    expect(() => checkPeftVariants(PEFT_DEFAULTS, F)).not.toThrow();
    for (const init of [false, 'gaussian']) expect(() => checkPeftVariants({ ...PEFT_DEFAULTS, init_lora_weights: init }, F)).not.toThrow();
    expect(() => checkPeftVariants({ ...PEFT_DEFAULTS, exclude_modules: [] }, F)).not.toThrow();
  });

  it('refuses each variant by name, with what was found and what is expected', () => {
    const cases: [string, unknown, RegExp][] = [
      ['init_lora_weights', 'pissa', /init_lora_weights: "pissa" \(expected true, false or "gaussian"\).*merge_and_unload/],
      ['init_lora_weights', 'pissa_niter_16', /init_lora_weights: "pissa_niter_16"/],
      ['init_lora_weights', 'olora', /init_lora_weights: "olora"/],
      ['init_lora_weights', 'corda', /init_lora_weights: "corda"/],
      ['init_lora_weights', 'loftq', /init_lora_weights: "loftq"/],
      ['init_lora_weights', 'eva', /init_lora_weights: "eva"/],
      ['init_lora_weights', 'orthogonal', /init_lora_weights: "orthogonal"/],
      ['alora_invocation_tokens', [128006, 78191], /alora_invocation_tokens: \[128006,78191\] \(expected null/],
      ['lora_bias', true, /lora_bias: true \(expected false/],
      ['use_dora', true, /use_dora: true \(expected false \(DoRA/],
      ['use_qalora', true, /use_qalora: true/],
      ['exclude_modules', ['lm_head'], /exclude_modules: \["lm_head"\]/],
      ['exclude_modules', '.*mlp.*', /exclude_modules: ".\*mlp.\*"/],
      ['layer_replication', [[0, 4], [2, 5]], /layer_replication: \[\[0,4\],\[2,5\]\]/],
      ['trainable_token_indices', [128002], /trainable_token_indices: \[128002\]/],
      ['trainable_token_indices', { embed_tokens: [1] }, /trainable_token_indices/],
    ];
    for (const [key, value, msg] of cases) {
      const f = () => checkPeftVariants({ ...PEFT_DEFAULTS, [key]: value }, F);
      expect(f).toThrow(FormatError);
      expect(f).toThrow(new RegExp(`^${F.replace('.', '\\.')}: ` + msg.source));
    }
  });
});

describe('resolveTargetRegex', () => {
  it('resolves a regex that picks the same whole modules in every layer (PEFT re.fullmatch on the module path)', () => {
    expect(resolveTargetRegex('.*\\.(q_proj|v_proj)', F)).toEqual(['q_proj', 'v_proj']);
    expect(resolveTargetRegex('model\\.layers\\.\\d+\\.self_attn\\..*', F)).toEqual(['q_proj', 'k_proj', 'v_proj', 'o_proj']);
    expect(resolveTargetRegex('.*mlp.*', F)).toEqual(['gate_proj', 'up_proj', 'down_proj']);
  });

  it('refuses a regex that adapts some layers only, none, or does not parse', () => {
    expect(() => resolveTargetRegex('model\\.layers\\.[0-3]\\..*q_proj', F)).toThrow(/same modules in every layer.*\[q_proj\] in layer 0 but \[\] in layer 4/);
    // fullmatch: a bare "q" matches no whole path
    expect(() => resolveTargetRegex('q', F)).toThrow(/expected a regex matching some of/);
    expect(() => resolveTargetRegex('(', F)).toThrow(/expected a module list or a valid regex/);
  });
});

describe('readAdapterConfig (where adapter_config.json is parsed)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'peft-variants-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const read = (extra: Record<string, unknown>) => {
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ ...PEFT_DEFAULTS, ...extra }));
    return readAdapterConfig(dir);
  };

  it('loads the plain save_pretrained config, and resolves a regex target_modules to module names', () => {
    expect(read({})).toEqual({ r: 8, alpha: 16, dropout: 0.05, targets: ['q_proj', 'v_proj'], useRslora: false });
    expect(read({ target_modules: '.*\\.(k_proj|down_proj)' }).targets).toEqual(['k_proj', 'down_proj']);
  });

  it('refuses a PiSSA adapter, DoRA, a LoRA bias and a layer-subset regex instead of loading them as plain LoRA', () => {
    expect(() => read({ init_lora_weights: 'pissa' })).toThrow(/adapter_config\.json: init_lora_weights: "pissa"/);
    expect(() => read({ use_dora: true })).toThrow(/use_dora: true/);
    expect(() => read({ lora_bias: true })).toThrow(/lora_bias: true/);
    expect(() => read({ target_modules: 'model\\.layers\\.0\\..*' })).toThrow(/same modules in every layer/);
  });
});

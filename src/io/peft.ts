// The PEFT contract, and the only place it is spelled: module path <-> PEFT tensor keys, adapter_config.json, the two
// adapter file names, and the optimizer-moment names of a checkpoint. As PEFT's save_pretrained writes and
// from_pretrained reads: keys `base_model.model.<module>.lora_{A|B}.weight`, F32. Leaves out DoRA and per-module ranks.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { LlamaConfig } from '../model/types.js';
import { ALL_LINEAR, type Lora, type LoraConfig, loraFromTensors, loraTensors } from '../model/lora.js';
import { FormatError, describe } from '../util/errors.js';
import { hashFile } from '../util/hash.js';
import { writeFileAtomic } from './atomic.js';
import { readJsonObject } from './json.js';
import { openSafetensors, writeSafetensors } from './safetensors.js';
import { checkPeftVariants, resolveTargetRegex } from './peft-variants.js';

export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';

/** PEFT key of a LoRA matrix: `<module path>.lora_A` (model/lora.ts's key) -> `base_model.model.<module path>.lora_A.weight`. */
export function peftKey(key: string): string {
  return `base_model.model.${key}.weight`;
}

/** The inverse of peftKey (PEFT's `.default` adapter-name infix accepted), or null for a key that is not a LoRA matrix. */
export function moduleKeyOf(name: string): string | null {
  const m = /^base_model\.model\.(.+\.lora_[AB])(?:\.default)?\.weight$/.exec(name);
  return m ? m[1] : null;
}

/** torch.optim.AdamW's state names for the first and the second moment, in that order. */
export const ADAM_MOMENTS = ['exp_avg', 'exp_avg_sq'] as const;
export type AdamMoment = (typeof ADAM_MOMENTS)[number];

/** Key of an Adam moment in optimizer.safetensors: the PEFT key of its parameter + `.exp_avg` / `.exp_avg_sq`. */
export function momentKey(key: string, moment: AdamMoment): string {
  return `${peftKey(key)}.${moment}`;
}

/** Identity of an adapter folder (weights + config), or null for none: keys caches and guards resume. */
export function adapterHash(dir: string | null): string | null {
  if (!dir || dir === 'none') return null;
  return hashFile(join(dir, ADAPTER_WEIGHTS)).slice(0, 32) + hashFile(join(dir, ADAPTER_CONFIG)).slice(0, 32);
}

/** sha256 of an adapter's weights file (what `pairs` records of the adapter it sampled with). */
export function adapterWeightsSha256(dir: string): string {
  return hashFile(join(dir, ADAPTER_WEIGHTS));
}

/** The adapter_config.json PEFT writes for a causal LM LoRA. */
export function peftConfig(lc: LoraConfig, baseModel: string): Record<string, unknown> {
  return {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: baseModel,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layers_pattern: null,
    layers_to_transform: null,
    lora_alpha: lc.alpha,
    lora_dropout: lc.dropout,
    modules_to_save: null,
    peft_type: 'LORA',
    r: lc.r,
    rank_pattern: {},
    revision: null,
    target_modules: [...lc.targets].sort(),
    task_type: 'CAUSAL_LM',
    use_dora: false,
    use_rslora: lc.useRslora,
  };
}

/** Reads and checks adapter_config.json; features we do not implement are errors, never ignored. */
export function readAdapterConfig(dir: string): LoraConfig {
  const file = join(dir, ADAPTER_CONFIG);
  if (!existsSync(file)) throw new FormatError(describe(file, 'missing', 'a PEFT adapter folder', 'Point the flag at a folder written by PEFT save_pretrained or by this trainer.'));
  const j = readJsonObject(file, 'a PEFT adapter_config.json');
  const bad = (key: string, found: unknown, expected: string) => new FormatError(describe(`${file}: ${key}`, JSON.stringify(found), expected));
  if (j.peft_type !== 'LORA') throw bad('peft_type', j.peft_type, '"LORA"');
  if (typeof j.r !== 'number' || !Number.isInteger(j.r) || j.r < 1) throw bad('r', j.r, 'a positive integer');
  if (typeof j.lora_alpha !== 'number') throw bad('lora_alpha', j.lora_alpha, 'a number');
  checkPeftVariants(j, file);
  if (j.use_dora) throw bad('use_dora', j.use_dora, 'false (DoRA is not supported)');
  if (j.fan_in_fan_out) throw bad('fan_in_fan_out', j.fan_in_fan_out, 'false');
  if (j.bias !== undefined && j.bias !== 'none') throw bad('bias', j.bias, '"none"');
  for (const k of ['rank_pattern', 'alpha_pattern']) {
    if (j[k] && Object.keys(j[k] as object).length > 0) throw bad(k, j[k], '{} (per-module ranks are not supported)');
  }
  if (j.layers_to_transform !== undefined && j.layers_to_transform !== null) throw bad('layers_to_transform', j.layers_to_transform, 'null');
  if (Array.isArray(j.modules_to_save) && j.modules_to_save.length > 0) throw bad('modules_to_save', j.modules_to_save, 'null');
  let targets: string[];
  const tm = j.target_modules;
  if (tm === 'all-linear') targets = [...ALL_LINEAR];
  else if (typeof tm === 'string' && ALL_LINEAR.includes(tm)) targets = [tm];
  else if (Array.isArray(tm) && tm.every((t) => typeof t === 'string' && ALL_LINEAR.includes(t))) targets = tm as string[];
  else if (typeof tm === 'string') targets = resolveTargetRegex(tm, file);
  else throw bad('target_modules', tm, `a list from ${ALL_LINEAR.join(', ')} or "all-linear"`);
  const dropout = typeof j.lora_dropout === 'number' ? j.lora_dropout : 0;
  // Keep PEFT's module order stable regardless of how the list was written.
  targets = ALL_LINEAR.filter((t) => targets.includes(t));
  return { r: j.r, alpha: j.lora_alpha, dropout, targets, useRslora: Boolean(j.use_rslora) };
}

/** Loads a PEFT adapter folder as fresh Variables. Strict about missing, unexpected and misshapen tensors. */
export function loadAdapter(dir: string, cfg: LlamaConfig): Lora {
  const lc = readAdapterConfig(dir);
  const file = join(dir, ADAPTER_WEIGHTS);
  if (!existsSync(file)) {
    const bin = existsSync(join(dir, 'adapter_model.bin')) ? ' Found adapter_model.bin: re-save it with PEFT (safe_serialization=True).' : '';
    throw new FormatError(describe(file, 'missing', ADAPTER_WEIGHTS, `${bin}`.trim() || undefined));
  }
  const st = openSafetensors(file);
  try {
    const tensors: Record<string, Float32Array> = {};
    for (const e of st.entries) {
      const key = moduleKeyOf(e.name);
      if (!key) throw new FormatError(describe(`${file}: ${e.name}`, 'unexpected tensor', peftKey('<module>.lora_{A|B}')));
      tensors[key] = st.read(e.name).data;
    }
    try {
      return loraFromTensors(cfg, lc, tensors);
    } catch (e) {
      if (e instanceof FormatError) throw new FormatError(`${file}: ${e.message}`);
      throw e;
    }
  } finally {
    st.close();
  }
}

/** Writes adapter_config.json + adapter_model.safetensors (F32) into `dir`, created if missing (each file atomically). */
export async function saveAdapter(dir: string, lora: Lora, baseModel: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const named = Object.entries(loraTensors(lora));
  const tensors = named.map(([k, v]) => ({ name: peftKey(k), shape: v.shape as number[], data: () => v.dataSync() as Float32Array }));
  await writeSafetensors(join(dir, ADAPTER_WEIGHTS), tensors, { dtype: 'F32' });
  writeFileAtomic(join(dir, ADAPTER_CONFIG), JSON.stringify(peftConfig(lora.config, baseModel), null, 2) + '\n');
}

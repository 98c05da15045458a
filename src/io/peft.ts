// The PEFT contract, and the only place it is spelled: module path <-> PEFT tensor keys, adapter_config.json, the
// adapter file names (README.md model card included), and the optimizer-moment names of a checkpoint. As PEFT's
// save_pretrained writes and from_pretrained reads: keys `base_model.model.<module>.lora_{A|B}.weight`, F32; the card
// as TRL's create_model_card and then PEFT's create_or_update_model_card leave it. Leaves out DoRA and per-module ranks.
import { existsSync, mkdirSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { dump as dumpYaml } from 'js-yaml';
import { isHubId } from './hub-cache.js';
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
/** The model card PEFT's save_pretrained writes beside the adapter (create_or_update_model_card). */
export const ADAPTER_CARD = 'README.md';

/**
 * `peft_version` of the adapter_config.json we write: the PEFT release whose adapter format ours is (PEFT PR #2782
 * added the key, first released in 0.18.0). PEFT older than that drops the unknown key with a warning (PR #2038).
 */
export const PEFT_FORMAT_VERSION = '0.18.0';

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

/**
 * `base_model_name_or_path` as PEFT's save_pretrained sets it, from the base model's `name_or_path`: the Hub id when the
 * model was given as one (or as its HF-cache snapshot folder), else config.json's `_name_or_path` when it is a Hub id, else the path
 * exactly as given (never made absolute: PEFT keeps what from_pretrained was called with).
 */
export function baseModelName(given: string, modelDir: string): string {
  if (isHubId(given)) return given;
  // A Hub id resolved to its HF-cache snapshot (config/run.ts does so): huggingface_hub's models--org--name/snapshots/<rev>.
  const snap = /(?:^|[\\/])models--([^\\/]+?)--([^\\/]+)[\\/]snapshots[\\/][^\\/]+[\\/]?$/.exec(given);
  if (snap) return `${snap[1]}/${snap[2]}`;
  const file = join(modelDir, 'config.json');
  const named = existsSync(file) ? readJsonObject(file, 'a config.json')._name_or_path : undefined;
  return typeof named === 'string' && isHubId(named) ? named : given;
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
    peft_version: PEFT_FORMAT_VERSION,
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

/**
 * The README.md a TRL DPOTrainer + PEFT save leaves: TRL's create_model_card writes the card (tags `trl`, `dpo` from
 * DPOTrainer._tag_names), then PEFT's create_or_update_model_card sets `library_name: peft`, `base_model` (the model's
 * `_name_or_path`), `pipeline_tag: text-generation` (a causal LM) and `tags` = sorted(model tags ∪ PEFT's: `transformers`,
 * `lora`, `base_model:adapter:<name>`), and appends the PEFT version under "### Framework versions".
 */
export function modelCard(baseModel: string, modelName: string): string {
  const header = {
    base_model: baseModel,
    library_name: 'peft',
    model_name: modelName,
    pipeline_tag: 'text-generation',
    tags: [`base_model:adapter:${baseModel}`, 'dpo', 'lora', 'transformers', 'trl'].sort(),
  };
  const link = isHubId(baseModel) ? `[${baseModel}](https://huggingface.co/${baseModel})` : `\`${baseModel}\``;
  return `---\n${dumpYaml(header, { lineWidth: -1 })}---\n\n# Model Card for ${modelName}\n\n`
    + `This model is a LoRA adapter for ${link}, trained with DPO, a method introduced in `
    + '[Direct Preference Optimization: Your Language Model is Secretly a Reward Model](https://huggingface.co/papers/2305.18290), '
    + 'by dpo-trainer (a TypeScript trainer that follows TRL\'s DPOTrainer).\n\n'
    + '## Quick start\n\n```python\nfrom peft import AutoPeftModelForCausalLM\n\n'
    + `model = AutoPeftModelForCausalLM.from_pretrained("${modelName}")\n\`\`\`\n\n`
    + `### Framework versions\n\n- PEFT ${PEFT_FORMAT_VERSION}\n`;
}

/**
 * Writes what PEFT's save_pretrained writes into `dir` (created if missing, each file atomically): adapter_config.json,
 * adapter_model.safetensors (F32) and the README.md model card. `baseModel` is base_model_name_or_path (baseModelName);
 * `modelName` the card's model_name (TRL: the output folder's name).
 */
export async function saveAdapter(dir: string, lora: Lora, baseModel: string, modelName = basename(resolve(dir))): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const named = Object.entries(loraTensors(lora));
  const tensors = named.map(([k, v]) => ({ name: peftKey(k), shape: v.shape as number[], data: () => v.data() as Promise<Float32Array> }));
  await writeSafetensors(join(dir, ADAPTER_WEIGHTS), tensors, { dtype: 'F32' });
  writeFileAtomic(join(dir, ADAPTER_CONFIG), JSON.stringify(peftConfig(lora.config, baseModel), null, 2) + '\n');
  writeFileAtomic(join(dir, ADAPTER_CARD), modelCard(baseModel, modelName));
}

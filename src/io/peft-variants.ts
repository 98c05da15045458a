// The PEFT LoRA variants we cannot honour, refused by name when adapter_config.json is read, never ignored:
// each changes the model PEFT would build (PEFT tuners/lora/config.py `LoraConfig` and tuners/tuners_utils.py
// `check_target_module_exists`). Also resolves a regex `target_modules` to module names when it picks whole modules.
import { ALL_LINEAR, modulePath } from '../model/lora.js';
import { FormatError, describe } from '../util/errors.js';

type Json = Record<string, unknown>;

/** init_lora_weights values whose adapter is a plain LoRA delta on the unchanged base weights. */
const PLAIN_INITS: readonly unknown[] = [true, false, 'gaussian'];

const isSet = (v: unknown) => v !== undefined && v !== null && v !== false && !(Array.isArray(v) && v.length === 0) && v !== '';

/**
 * Throws a FormatError naming the first key of `j` (a parsed adapter_config.json at `file`) that asks for a LoRA
 * variant this trainer does not implement. Each would load as plain LoRA and silently give another model:
 * - init_lora_weights pissa / pissa_niter_N / olora / corda / loftq / eva / orthogonal: PiSSA, OLoRA, CorDA and
 *   LoftQ also rewrite the base weights into a residual, so the adapter only fits that residual;
 * - alora_invocation_tokens (activated LoRA: the delta applies only after the invocation tokens);
 * - lora_bias (a trained bias on lora_B), use_dora (magnitude vector), use_qalora (pooled inputs);
 * - exclude_modules, layer_replication, trainable_token_indices (extra trained embedding rows).
 */
export function checkPeftVariants(j: Json, file: string): void {
  const bad = (key: string, expected: string, hint?: string) => new FormatError(describe(`${file}: ${key}`, JSON.stringify(j[key]), expected, hint));
  if (j.init_lora_weights !== undefined && !PLAIN_INITS.includes(j.init_lora_weights)) {
    throw bad('init_lora_weights', 'true, false or "gaussian"',
      'PiSSA/OLoRA/CorDA/LoftQ adapters belong to a rewritten base model; merge it with PEFT (merge_and_unload) and pass the merged model as --model.');
  }
  if (isSet(j.alora_invocation_tokens)) throw bad('alora_invocation_tokens', 'null (activated LoRA is not supported)');
  if (isSet(j.lora_bias)) throw bad('lora_bias', 'false (a LoRA bias is not supported)');
  if (isSet(j.use_dora)) throw bad('use_dora', 'false (DoRA is not supported)');
  if (isSet(j.use_qalora)) throw bad('use_qalora', 'false (QA-LoRA is not supported)');
  if (isSet(j.exclude_modules)) throw bad('exclude_modules', 'null or [] (list the modules to adapt in target_modules instead)');
  if (isSet(j.layer_replication)) throw bad('layer_replication', 'null (layer replication is not supported)');
  if (isSet(j.trainable_token_indices)) throw bad('trainable_token_indices', 'null (trainable token rows are not supported)');
}

/** Layers a regex is tried on: more than any Llama 3.1 model has (the 405B has 126). */
const PROBE_LAYERS = 256;

/**
 * A string target_modules other than a module name is a regex that PEFT full-matches against each module path
 * (`re.fullmatch(target_modules, key)`). It is resolved to a list of module names when, over every layer, it picks
 * the same whole linear modules and nothing else; a regex that picks some layers only, or no module, is refused.
 * JavaScript's regex dialect stands in for Python's; the two agree on the patterns PEFT documents.
 */
export function resolveTargetRegex(pattern: string, file: string): string[] {
  let re: RegExp;
  try {
    re = new RegExp(`^(?:${pattern})$`);
  } catch (e) {
    throw new FormatError(describe(`${file}: target_modules`, JSON.stringify(pattern), 'a module list or a valid regex', (e as Error).message));
  }
  const picked = ALL_LINEAR.filter((t) => re.test(modulePath(0, t)));
  for (let l = 1; l < PROBE_LAYERS; l++) {
    const here = ALL_LINEAR.filter((t) => re.test(modulePath(l, t)));
    if (here.join() !== picked.join()) {
      throw new FormatError(describe(`${file}: target_modules`, JSON.stringify(pattern), 'a regex that adapts the same modules in every layer',
        `It picks [${picked.join(', ')}] in layer 0 but [${here.join(', ')}] in layer ${l}; per-layer adapters are not supported.`));
    }
  }
  if (picked.length === 0) {
    throw new FormatError(describe(`${file}: target_modules`, JSON.stringify(pattern), `a regex matching some of ${ALL_LINEAR.join(', ')} (as model.layers.N.self_attn.q_proj)`));
  }
  return picked;
}

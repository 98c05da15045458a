// Sampling settings, one typed object shared by `eval --model`, `pairs --model` and stage evaluation, with the
// defaults of each use written once here. Names follow HF generate (temperature, top_p, top_k, max_new_tokens).
// `--generation-config model` takes the defaults from the model's generation_config.json as transformers'
// GenerationConfig reads it (unset fields: do_sample false, temperature 1.0, top_p 1.0, top_k 50); flags win over both.
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { readJsonObject } from '../io/json.js';
import { localModelDir } from '../io/hub-cache.js';
import { InputError, describe } from '../util/errors.js';

export interface SamplingConfig {
  /** Completions per task. */
  nSamples: number;
  /** 0 = greedy (every sample of a task is then the same). */
  temperature: number;
  /** Nucleus mass in (0, 1]. */
  topP: number;
  /** Keep the k most likely tokens; 0 = off. */
  topK: number;
  maxNewTokens: number;
  seed: number;
  /** Chat template + the fenced code block of the answer; false: the task prompt is continued. */
  chat: boolean;
  /** Rows per generate call; null: nSamples. */
  batchSize: number | null;
}

const BASE: SamplingConfig = { nSamples: 1, temperature: 0, topP: 1, topK: 0, maxNewTokens: 512, seed: 0, chat: false, batchSize: null };

export const SAMPLING_DEFAULTS = {
  /** `eval --model`: pass@1 sampling as Codex/HumanEval report it (T 0.2, top-p 0.95). */
  eval: { ...BASE, temperature: 0.2, topP: 0.95 },
  /** `pairs --model`: diverse on-policy samples for best-of-N (T 0.8, nucleus 0.95). */
  pairs: { ...BASE, nSamples: 8, temperature: 0.8, topP: 0.95 },
  /** Stage evaluation inside a run: greedy and short, so it is cheap and repeatable. */
  stage: { ...BASE, maxNewTokens: 128 },
} as const satisfies Record<string, SamplingConfig>;

/** Refuses a value out of range, naming its flag; `nFlag` is how the command spells the sample count. */
export function checkSampling(s: SamplingConfig, nFlag = '--n-samples'): SamplingConfig {
  const bad = (flag: string, v: unknown, expected: string): never => {
    throw new InputError(describe(flag, String(v), expected));
  };
  if (!(Number.isInteger(s.nSamples) && s.nSamples >= 1)) bad(nFlag, s.nSamples, 'an integer >= 1');
  if (!(s.temperature >= 0)) bad('--temperature', s.temperature, 'a number >= 0');
  if (!(s.topP > 0 && s.topP <= 1)) bad('--top-p', s.topP, 'a number in (0, 1]');
  if (!(Number.isInteger(s.topK) && s.topK >= 0)) bad('--top-k', s.topK, 'an integer >= 0 (0 = off)');
  if (!(Number.isInteger(s.maxNewTokens) && s.maxNewTokens >= 1)) bad('--max-new-tokens', s.maxNewTokens, 'an integer >= 1');
  if (!Number.isSafeInteger(s.seed)) bad('--seed', s.seed, 'an integer');
  if (s.batchSize !== null && !(Number.isInteger(s.batchSize) && s.batchSize >= 1)) bad('--batch-size', s.batchSize, 'an integer >= 1');
  return s;
}

// ---- generation_config.json (--generation-config model) ----

export type GenerationConfigSource = 'ours' | 'model';
export const GENERATION_CONFIG_SOURCES: readonly GenerationConfigSource[] = ['ours', 'model'];

/** transformers' GenerationConfig defaults for the fields we use (generation/configuration_utils.py __init__). */
export const HF_GENERATION_DEFAULTS = { do_sample: false, temperature: 1.0, top_p: 1.0, top_k: 50 } as const;

/**
 * `d` with the sampling defaults of a generation_config.json object, as model.generate() would sample with it:
 * do_sample false is greedy (temperature 0 here, whatever `temperature` says); otherwise temperature, top_p, top_k,
 * each HF's default when unset. max_new_tokens only when set: HF's fallback (max_length 20, prompt included) would cut
 * every completion, so `d`'s stays. `file` names the source in errors.
 */
export function modelSampling(d: SamplingConfig, gen: Record<string, unknown>, file: string): SamplingConfig {
  const num = (key: string, fallback: number, int = false): number => {
    const v = gen[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || (int && !Number.isInteger(v))) {
      throw new InputError(describe(`${file}: ${key}`, JSON.stringify(v), int ? 'an integer' : 'a number'));
    }
    return v;
  };
  const doSample = gen.do_sample ?? HF_GENERATION_DEFAULTS.do_sample;
  if (typeof doSample !== 'boolean') throw new InputError(describe(`${file}: do_sample`, JSON.stringify(doSample), 'true or false'));
  const temperature = num('temperature', HF_GENERATION_DEFAULTS.temperature);
  const topP = num('top_p', HF_GENERATION_DEFAULTS.top_p);
  const topK = num('top_k', HF_GENERATION_DEFAULTS.top_k, true);
  const maxNewTokens = num('max_new_tokens', d.maxNewTokens, true);
  // Greedy needs no nucleus or top-k; HF ignores them then too.
  return doSample ? { ...d, temperature, topP, topK, maxNewTokens } : { ...d, temperature: 0, topP: 1, topK: 0, maxNewTokens };
}

/** `dir`/generation_config.json as modelSampling applies it over `d` (a Hub id read from the HF cache). */
export function modelSamplingDefaults(model: string, d: SamplingConfig): SamplingConfig {
  const file = join(localModelDir(model), 'generation_config.json');
  if (!existsSync(file)) {
    throw new InputError(describe('--generation-config model', `${file} not found`, "the model folder's generation_config.json", 'Drop --generation-config to sample with our defaults.'));
  }
  return modelSampling(d, readJsonObject(file, 'a Hugging Face generation_config.json', InputError), file);
}

type Opt = { type: 'number' | 'boolean' | 'string'; describe: string; choices?: readonly string[] };

/** yargs options for the sampling flags, documented with `d`'s defaults; `nFlag` names the sample count. No yargs
 * defaults: a flag the user did not pass must not hide the model's generation_config.json. */
export function samplingOptions(d: SamplingConfig, nFlag: 'n' | 'n-samples'): Record<string, Opt> {
  const def = (v: unknown) => ` [default: ${JSON.stringify(v)}]`;
  return {
    [nFlag]: { type: 'number', describe: 'completions sampled per task' + def(d.nSamples) },
    temperature: { type: 'number', describe: 'sampling temperature (0 = greedy)' + def(d.temperature) },
    'top-p': { type: 'number', describe: 'nucleus sampling mass' + def(d.topP) },
    'top-k': { type: 'number', describe: 'keep the k most likely tokens (0 = off)' + def(d.topK) },
    'max-new-tokens': { type: 'number', describe: 'tokens generated per completion at most' + def(d.maxNewTokens) },
    seed: { type: 'number', describe: 'sampling seed (each task draws from its own stream)' + def(d.seed) },
    'batch-size': { type: 'number', describe: `rows per generate call (default: --${nFlag})` },
    chat: { type: 'boolean', describe: 'prompt through the chat template and score the fenced code block; default: completion prompts' },
    'generation-config': { type: 'string', choices: GENERATION_CONFIG_SOURCES,
      describe: "sampling defaults: ours, or the --model folder's generation_config.json (do_sample, temperature, top_p, top_k, max_new_tokens) as transformers reads it; flags win" + def('ours') },
  };
}

/** The config from parsed flags (yargs camel-cases them), checked. `--generation-config model` puts the model's
 * generation_config.json between `d` and the flags. */
export function samplingFromFlags(argv: Record<string, unknown>, base: SamplingConfig, nFlag: 'n' | 'n-samples'): SamplingConfig {
  const source = argv['generation-config'] ?? 'ours';
  if (!GENERATION_CONFIG_SOURCES.includes(source as GenerationConfigSource)) {
    throw new InputError(describe('--generation-config', JSON.stringify(source), `one of ${GENERATION_CONFIG_SOURCES.join('|')}`));
  }
  let d = base;
  if (source === 'model') {
    if (typeof argv.model !== 'string') throw new InputError(describe('--generation-config model', 'no --model', 'a model folder to read generation_config.json from'));
    d = modelSamplingDefaults(argv.model, base);
  }
  const pick = <K extends keyof SamplingConfig>(k: K, flag: string): SamplingConfig[K] => (argv[flag] ?? d[k]) as SamplingConfig[K];
  return checkSampling({
    nSamples: pick('nSamples', nFlag), temperature: pick('temperature', 'temperature'), topP: pick('topP', 'top-p'), topK: pick('topK', 'top-k'),
    maxNewTokens: pick('maxNewTokens', 'max-new-tokens'), seed: pick('seed', 'seed'), chat: pick('chat', 'chat'), batchSize: pick('batchSize', 'batch-size') ?? null,
  }, `--${nFlag}`);
}

// Sampling settings, one typed object shared by `eval --model`, `pairs --model` and stage evaluation, with the
// defaults of each use written once here. Names follow HF generate (temperature, top_p, top_k, max_new_tokens).
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

type Opt = { type: 'number' | 'boolean'; describe: string; default?: number | boolean };

/** yargs options for the sampling flags, documented with `d`'s defaults; `nFlag` names the sample count. */
export function samplingOptions(d: SamplingConfig, nFlag: 'n' | 'n-samples'): Record<string, Opt> {
  return {
    [nFlag]: { type: 'number', default: d.nSamples, describe: 'completions sampled per task' },
    temperature: { type: 'number', default: d.temperature, describe: 'sampling temperature (0 = greedy)' },
    'top-p': { type: 'number', default: d.topP, describe: 'nucleus sampling mass' },
    'top-k': { type: 'number', default: d.topK, describe: 'keep the k most likely tokens (0 = off)' },
    'max-new-tokens': { type: 'number', default: d.maxNewTokens, describe: 'tokens generated per completion at most' },
    seed: { type: 'number', default: d.seed, describe: 'sampling seed (each task draws from its own stream)' },
    'batch-size': { type: 'number', describe: `rows per generate call (default: --${nFlag})` },
    chat: { type: 'boolean', default: d.chat, describe: 'prompt through the chat template and score the fenced code block; default: completion prompts' },
  };
}

/** The config from parsed flags (yargs camel-cases them), checked. */
export function samplingFromFlags(argv: Record<string, unknown>, d: SamplingConfig, nFlag: 'n' | 'n-samples'): SamplingConfig {
  const pick = <K extends keyof SamplingConfig>(k: K, flag: string): SamplingConfig[K] => (argv[flag] ?? d[k]) as SamplingConfig[K];
  return checkSampling({
    nSamples: pick('nSamples', nFlag), temperature: pick('temperature', 'temperature'), topP: pick('topP', 'top-p'), topK: pick('topK', 'top-k'),
    maxNewTokens: pick('maxNewTokens', 'max-new-tokens'), seed: pick('seed', 'seed'), chat: pick('chat', 'chat'), batchSize: pick('batchSize', 'batch-size') ?? null,
  }, `--${nFlag}`);
}

// The run config: one typed object for score/train/eval. Defaults <- preset <- --config file <- flags.
// Stored in every checkpoint; derived values (LoRA scale, targets list) are computed here, once.
import { Schema, Values, defaults, applyLayer, readConfigFile, flagLayer, flagName } from './schema.js';
import { InputError, describe } from '../util/errors.js';
import { DEFAULT_DISCOPOP_TAU, LOSS_NAMES, parseLossTerms } from '../dpo/losses.js';
import { TRUNCATION_MODES, type PairLengthOptions, type TruncationMode } from '../tokenizer/pair.js';
import { ALL_LINEAR, ATTN_TARGETS } from '../model/lora.js';
import { SAMPLING_DEFAULTS } from './sampling.js';
import { BACKENDS } from '../backend/index.js';
import { CURRICULA } from '../curriculum/order.js';
import { DIFFICULTIES, DISTANCE_METRICS, DISTANCE_SIGNS } from '../curriculum/difficulty.js';
import { TASK_FORMATS } from '../eval/tasks.js';
import { SCHEDULERS } from '../train/schedule.js';
import { DEFAULT_TIMEOUT_S, MIN_TIMEOUT_S } from './sandbox.js';
import { localModelDir } from '../io/hub-cache.js';
import { parseReportTo } from '../run/report-to.js';

export const RUN_SCHEMA = {
  model: { type: 'string', default: null, nullable: true, describe: 'Hugging Face model directory' },
  data: { type: 'string', default: null, nullable: true, describe: 'pairs: JSONL/JSON/Parquet file, datasets folder or cached Hub dataset id (TRL standard or conversational format)' },
  split: { type: 'string', default: null, nullable: true, aliases: ['dataset_train_split'], describe: 'split of --data when it holds several [default: train, or the only one]' },
  backend: { type: 'string', default: 'auto', choices: BACKENDS, describe: 'tfjs backend' },
  maxLength: { type: 'int', default: 1024, min: 2, describe: 'max prompt + completion tokens' },
  maxPromptLength: { type: 'int', default: null, nullable: true, min: 1, describe: 'cap the prompt first, keeping BOS and its end (TRL 0.x max_prompt_length; TRL 1.x has none)' },
  truncationMode: { type: 'string', default: 'keep_start', choices: TRUNCATION_MODES, describe: 'TRL truncation_mode: keep each row\'s first or last --max-length tokens' },
  // LoRA (PEFT semantics)
  loraR: { type: 'int', default: 16, min: 1, aliases: ['r'], describe: 'LoRA rank r' },
  loraAlpha: { type: 'number', default: 32, describe: 'LoRA alpha' },
  loraDropout: { type: 'number', default: 0.05, min: 0, describe: 'LoRA dropout on the adapter input' },
  loraTargets: { type: 'string', default: ATTN_TARGETS.join(','), aliases: ['target_modules'], list: true, describe: 'comma list of modules, or all-linear' },
  useRslora: { type: 'boolean', default: false, describe: 'scale alpha/sqrt(r) instead of alpha/r' },
  initAdapter: { type: 'string', default: null, nullable: true, describe: 'start the policy from this PEFT adapter dir' },
  refAdapter: { type: 'string', default: null, nullable: true, describe: 'reference: none (bare base) or a PEFT adapter dir [default: the init adapter]' },
  // DPO
  loss: { type: 'string', default: 'sigmoid', aliases: ['loss_type'], describe: `DPO loss (TRL 1.x loss_type): ${LOSS_NAMES.join('|')}, or a comma list of them` },
  lossWeights: { type: 'string', default: null, nullable: true, describe: 'comma list of weights, one per --loss term (TRL loss_weights) [default: 1 each]' },
  beta: { type: 'number', default: 0.1, describe: 'DPO beta' },
  labelSmoothing: { type: 'number', default: 0, min: 0, describe: 'label smoothing epsilon of robust, exo_pair and cdpo (TRL label_smoothing)' },
  discopopTau: { type: 'number', default: DEFAULT_DISCOPOP_TAU, min: 0, describe: 'DiscoPOP temperature (TRL discopop_tau)' },
  refMode: { type: 'string', default: 'cache', choices: ['cache', 'online'] as const, describe: 'reference log-probs precomputed once, or in each step' },
  referenceFree: { type: 'boolean', default: false, aliases: ['reference_free'], describe: 'TRL reference_free: the loss uses reference log-probs of 0 (an implicit uniform reference); the curriculum still orders by the reference table' },
  // Optimizer
  learningRate: { type: 'number', default: 5e-6, min: 0, describe: 'AdamW learning rate' },
  weightDecay: { type: 'number', default: 0, min: 0, describe: 'decoupled weight decay' },
  adamBeta1: { type: 'number', default: 0.9, describe: 'Adam beta1' },
  adamBeta2: { type: 'number', default: 0.999, describe: 'Adam beta2' },
  adamEpsilon: { type: 'number', default: 1e-8, describe: 'Adam epsilon' },
  lrScheduler: { type: 'string', default: 'linear', choices: SCHEDULERS, aliases: ['lr_scheduler_type'], describe: 'learning-rate schedule after warmup' },
  warmupSteps: { type: 'int', default: 0, min: 0, describe: 'linear warmup steps (wins over --warmup-ratio)' },
  warmupRatio: { type: 'number', default: 0, min: 0, describe: 'warmup as a fraction of total steps' },
  batchSize: { type: 'int', default: 4, min: 1, aliases: ['per_device_train_batch_size'], describe: 'pairs per micro-batch' },
  gradientCheckpointing: { type: 'boolean', default: false, describe: 'recompute each decoder layer in the backward pass (less memory, ~1.3x compute)' },
  gradAccum: { type: 'int', default: 1, min: 1, aliases: ['gradient_accumulation_steps'], describe: 'micro-batches per optimizer step' },
  maxGradNorm: { type: 'number', default: 1.0, min: 0, describe: 'clip the global grad norm (0: off)' },
  epochs: { type: 'number', default: 1, above: 0, aliases: ['num_train_epochs'], describe: 'passes over the data' },
  maxSteps: { type: 'int', default: -1, describe: 'optimizer steps (overrides --epochs when > 0)' },
  seed: { type: 'int', default: 42, describe: 'seed for adapter init, order and dropout' },
  // Data order
  curriculum: { type: 'string', default: 'stages', choices: CURRICULA, describe: 'pair order: file order, seeded shuffle, easiest first, or percentile stages' },
  difficulty: { type: 'string', default: 'distance', choices: DIFFICULTIES, describe: 'difficulty score for distance/stages/pruning' },
  distanceMetric: { type: 'string', default: 'mean', choices: DISTANCE_METRICS, describe: 'reference log-prob distance per token (mean) or summed' },
  distanceSign: { type: 'string', default: 'abs', choices: DISTANCE_SIGNS, describe: 'abs: small |distance| is easy; signed: pairs the reference already prefers are easy' },
  stagePercentiles: { type: 'string', default: '10,50,90', describe: 'difficulty percentiles that split the stages' },
  pruneBelow: { type: 'number', default: null, nullable: true, describe: 'drop pairs below this difficulty percentile' },
  pruneAbove: { type: 'number', default: null, nullable: true, describe: 'drop pairs above this difficulty percentile' },
  pruneIncorrectChosen: { type: 'boolean', default: false, describe: 'drop pairs whose chosen did not pass all its tests (chosen_passed < tests_total, as `pairs` writes)' },
  pruneCommentOnly: { type: 'boolean', default: false, describe: 'drop pairs whose chosen and rejected have the same Python AST (only comments or formatting differ)' },
  scores: { type: 'string', default: null, nullable: true, describe: 'reuse a `score` output for the distance difficulty' },
  // Stage evaluation
  evalTasks: { type: 'string', default: null, nullable: true, describe: 'tasks file to evaluate pass@k after each stage' },
  evalFormat: { type: 'string', default: null, nullable: true, choices: TASK_FORMATS, describe: 'format of --eval-tasks [default: detected]' },
  evalSplit: { type: 'string', default: null, nullable: true, aliases: ['dataset_test_split'], describe: 'split of --eval-tasks when it holds several [default: train, or the only one]' },
  evalSamples: { type: 'int', default: SAMPLING_DEFAULTS.stage.nSamples, min: 1, describe: 'samples per eval task (pass@k for k <= this)' },
  evalSteps: { type: 'int', default: 0, min: 0, describe: 'also evaluate every N steps (0: only after stages)' },
  evalMaxNewTokens: { type: 'int', default: SAMPLING_DEFAULTS.stage.maxNewTokens, min: 1, describe: 'tokens generated per eval sample' },
  evalTemperature: { type: 'number', default: SAMPLING_DEFAULTS.stage.temperature, min: 0, describe: 'eval sampling temperature (0: greedy)' },
  evalTimeout: { type: 'number', default: DEFAULT_TIMEOUT_S, min: MIN_TIMEOUT_S, describe: 'sandbox limit per eval program run, seconds' },
  // Output
  outputDir: { type: 'string', default: null, nullable: true, describe: 'run folder [default: checkpoints/<run-name>]' },
  runName: { type: 'string', default: null, nullable: true, describe: 'run name [default: a timestamp]' },
  saveSteps: { type: 'int', default: 50, min: 0, describe: 'save a checkpoint every N steps (0: only at the end)' },
  saveTotalLimit: { type: 'int', default: null, nullable: true, min: 1, describe: 'keep at most N checkpoints' },
  loggingSteps: { type: 'int', default: 10, min: 1, describe: 'print a metrics line (and a log_history entry) every N steps, as TRL; metrics.jsonl has every step' },
  reportTo: { type: 'string', default: 'jsonl', list: true, describe: 'where metrics go (HF report_to): jsonl (metrics.jsonl), tensorboard (event files under runs/), all, none; a comma list' },
} satisfies Schema;

export type RunConfig = Values<typeof RUN_SCHEMA>;
export type RunKey = keyof RunConfig;

/** Named presets (litgpt-style: presets are data). */
export const PRESETS: Record<string, Partial<RunConfig>> = {
  // The embedded default: tiny model, fast, visible learning.
  tiny: { maxLength: 256, maxPromptLength: 128, loraR: 8, loraAlpha: 16, loraDropout: 0, learningRate: 5e-3, batchSize: 4, epochs: 6, saveSteps: 12, beta: 0.1 },
};

/**
 * Resolves defaults <- preset <- config file <- flags. `argv` is yargs' parsed object. `base` (a resumed run's stored
 * config) replaces the defaults, so `--resume latest --output-dir X` alone continues the run as it was asked for.
 */
export function resolveRunConfig(argv: Record<string, unknown>, only?: readonly RunKey[], base?: { config: Record<string, unknown>; source: string }): RunConfig {
  let cfg = defaults(RUN_SCHEMA);
  if (base) cfg = applyLayer(RUN_SCHEMA, cfg, base.config, base.source);
  // Where each loss setting was last set, so a bad loss list names its source like any other key.
  const at: { loss?: string; weights?: string; eps?: string } = {};
  const note = (layer: Record<string, unknown>, source: (k: string) => string) => {
    for (const [name, keys] of [['loss', ['loss', 'loss_type', 'loss-type', 'lossType']], ['weights', ['lossWeights', 'loss_weights', 'loss-weights']], ['eps', ['labelSmoothing', 'label_smoothing', 'label-smoothing']]] as const) {
      const k = keys.find((x) => x in layer);
      if (k) at[name] = source(k);
    }
  };
  const preset = argv.preset as string | undefined;
  if (preset !== undefined) {
    const p = PRESETS[preset];
    if (!p) throw new InputError(describe('--preset', JSON.stringify(preset), `one of ${Object.keys(PRESETS).join('|')}`));
    cfg = applyLayer(RUN_SCHEMA, cfg, p, `preset ${preset}`);
    note(p, (k) => `preset ${preset}: ${k}`);
  }
  if (typeof argv.config === 'string') {
    const file = argv.config;
    const layer = readConfigFile(file);
    cfg = applyLayer(RUN_SCHEMA, cfg, layer, file);
    note(layer, (k) => `${file}: ${k}`);
  }
  const flags = flagLayer(RUN_SCHEMA, argv, only);
  cfg = applyLayer(RUN_SCHEMA, cfg, flags, 'flags');
  note(flags, (k) => `--${flagName(k)}`);
  parseLossTerms(cfg.loss, cfg.lossWeights, cfg.labelSmoothing, at); // a bad loss list fails here, before any model loads
  parseReportTo(cfg.reportTo); // likewise a --report-to target we do not write
  // A Hub id (`meta-llama/Llama-3.1-8B-Instruct`) is its HF-cache snapshot folder, or an error saying where the files go.
  if (cfg.model) cfg.model = localModelDir(cfg.model);
  return cfg;
}

/** A word for a POSIX shell: quoted only when it needs to be. */
export function shellWord(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The settings that differ from the defaults, as the flags that would set them (`--max-length 64 --lora-r 4`). */
export function changedFlags(cfg: RunConfig): string[] {
  const d = defaults(RUN_SCHEMA) as Record<string, unknown>;
  return Object.entries(cfg).filter(([k, v]) => JSON.stringify(v) !== JSON.stringify(d[k]))
    .flatMap(([k, v]) => (typeof v === 'boolean' ? [v ? `--${flagName(k)}` : `--no-${flagName(k)}`] : [`--${flagName(k)}`, shellWord(String(v))]));
}

/** The tokenizer's length settings (TRL max_length + truncation_mode; max_prompt_length when set). */
export function pairLengths(cfg: Pick<RunConfig, 'maxLength' | 'maxPromptLength' | 'truncationMode'>): PairLengthOptions {
  return { maxLength: cfg.maxLength, maxPromptLength: cfg.maxPromptLength, truncationMode: cfg.truncationMode as TruncationMode };
}

/** `--lora-targets` as a list; `all-linear` expands to every projection. */
export function loraTargets(cfg: RunConfig): string[] {
  if (cfg.loraTargets === 'all-linear') return [...ALL_LINEAR];
  const list = cfg.loraTargets.split(',').map((s) => s.trim()).filter(Boolean);
  for (const t of list) {
    if (!ALL_LINEAR.includes(t)) throw new InputError(describe('--lora-targets', JSON.stringify(t), `a subset of ${ALL_LINEAR.join(',')} or all-linear`));
  }
  return list;
}

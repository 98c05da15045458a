// The SFT config: one typed object, defaults <- --config file <- flags (config/schema.ts), with TRL SFTConfig /
// HF TrainingArguments names as aliases. Stored in every SFT checkpoint; a resume must match its math-changing keys.
import { applyLayer, defaults, flagLayer, readConfigFile, type Schema, type Values } from '../config/schema.js';
import { BACKENDS } from '../backend/index.js';
import { ALL_LINEAR, ATTN_TARGETS } from '../model/lora.js';
import { SCHEDULERS } from '../train/schedule.js';
import { localModelDir } from '../io/hub-cache.js';

export const SFT_SCHEMA = {
  model: { type: 'string', default: null, nullable: true, describe: 'Hugging Face model directory (the base, or the model to train in full)' },
  data: { type: 'string', default: null, nullable: true, describe: 'prompt/completion JSONL, messages JSONL, or HumanEval tasks (prompt + canonical_solution)' },
  backend: { type: 'string', default: 'auto', choices: BACKENDS, describe: 'tfjs backend' },
  full: { type: 'boolean', default: false, describe: 'train every weight (AdamW, decay on matrices only) and write an HF model dir; else LoRA and a PEFT adapter' },
  maxLength: { type: 'int', default: 1024, min: 2, aliases: ['max_seq_length'], describe: 'max prompt + completion tokens (longer rows keep their start)' },
  completionOnlyLoss: { type: 'boolean', default: true, describe: 'loss on completion tokens only (TRL completion_only_loss); false: on every token after the first' },
  // LoRA (PEFT semantics), when not --full
  loraR: { type: 'int', default: 16, min: 1, aliases: ['r'], describe: 'LoRA rank r' },
  loraAlpha: { type: 'number', default: 32, describe: 'LoRA alpha' },
  loraDropout: { type: 'number', default: 0.05, min: 0, describe: 'LoRA dropout on the adapter input' },
  loraTargets: { type: 'string', default: ATTN_TARGETS.join(','), aliases: ['target_modules'], list: true, describe: 'comma list of modules, or all-linear' },
  // Optimizer (TRL SFTConfig defaults: lr 2e-5, linear schedule)
  learningRate: { type: 'number', default: 2e-5, min: 0, describe: 'AdamW learning rate' },
  weightDecay: { type: 'number', default: 0, min: 0, describe: 'decoupled weight decay (matrices only with --full, as nanoGPT)' },
  adamBeta1: { type: 'number', default: 0.9, describe: 'Adam beta1' },
  adamBeta2: { type: 'number', default: 0.999, describe: 'Adam beta2' },
  adamEpsilon: { type: 'number', default: 1e-8, describe: 'Adam epsilon' },
  lrScheduler: { type: 'string', default: 'linear', choices: SCHEDULERS, aliases: ['lr_scheduler_type'], describe: 'learning-rate schedule after warmup' },
  warmupSteps: { type: 'int', default: 0, min: 0, describe: 'linear warmup steps (wins over --warmup-ratio)' },
  warmupRatio: { type: 'number', default: 0, min: 0, describe: 'warmup as a fraction of total steps' },
  batchSize: { type: 'int', default: 8, min: 1, aliases: ['per_device_train_batch_size'], describe: 'sequences per micro-batch' },
  gradAccum: { type: 'int', default: 1, min: 1, aliases: ['gradient_accumulation_steps'], describe: 'micro-batches per optimizer step' },
  maxGradNorm: { type: 'number', default: 1.0, min: 0, describe: 'clip the global grad norm (0: off)' },
  epochs: { type: 'number', default: 1, above: 0, aliases: ['num_train_epochs'], describe: 'passes over the data' },
  maxSteps: { type: 'int', default: -1, describe: 'optimizer steps (overrides --epochs when > 0)' },
  seed: { type: 'int', default: 42, describe: 'seed for adapter init, data order and dropout' },
  // Output
  outputDir: { type: 'string', default: null, nullable: true, describe: 'run folder [default: checkpoints/sft-<timestamp>]' },
  saveSteps: { type: 'int', default: 500, min: 0, describe: 'save a checkpoint every N steps (0: only at the end)' },
  saveTotalLimit: { type: 'int', default: null, nullable: true, min: 1, describe: 'keep at most N checkpoints' },
  loggingSteps: { type: 'int', default: 10, min: 1, describe: 'print a metrics line every N steps; metrics.jsonl has every step' },
} satisfies Schema;

export type SftConfig = Values<typeof SFT_SCHEMA>;

/** Settings that may change on resume (they do not change the math). */
export const SFT_FREE_ON_RESUME: (keyof SftConfig)[] = ['backend', 'outputDir', 'saveSteps', 'saveTotalLimit', 'loggingSteps', 'model', 'data'];

export function resolveSftConfig(argv: Record<string, unknown>, base?: { config: Record<string, unknown>; source: string }): SftConfig {
  let cfg = defaults(SFT_SCHEMA);
  if (base) cfg = applyLayer(SFT_SCHEMA, cfg, base.config, base.source);
  if (typeof argv.config === 'string') cfg = applyLayer(SFT_SCHEMA, cfg, readConfigFile(argv.config), argv.config);
  cfg = applyLayer(SFT_SCHEMA, cfg, flagLayer(SFT_SCHEMA, argv), 'flags');
  if (cfg.model) cfg.model = localModelDir(cfg.model);
  return cfg;
}

export function sftLoraTargets(cfg: SftConfig): string[] {
  const t = cfg.loraTargets.split(',').map((s) => s.trim()).filter(Boolean);
  return t.length === 1 && t[0] === 'all-linear' ? [...ALL_LINEAR] : t;
}

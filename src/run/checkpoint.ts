// Checkpoints: `checkpoint-<step>/` = PEFT adapter + optimizer.safetensors (Adam moments) + trainer_state.json (only
// transformers' TrainerState fields, so TrainerState.load_from_json reads it) + resume_state.json (ours: versioned, checked
// on load). Checkpoints of version 1 (all of it in trainer_state.json) still resume. Each is built in a temp folder and
// renamed, so a crash never leaves a half checkpoint.
import * as tf from '@tensorflow/tfjs';
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { Lora } from '../model/lora.js';
import { loraTensors } from '../model/lora.js';
import { ADAM_MOMENTS, adapterHash, momentKey, saveAdapter } from '../io/peft.js';
import type { LoadedModel } from '../io/model-dir.js';
import { hashFile } from '../util/hash.js';
import { hashData } from '../data/formats.js';
import { writeDirAtomic, writeFileAtomic } from '../io/atomic.js';
import { readJsonObject } from '../io/json.js';
import { openSafetensors, writeSafetensors } from '../io/safetensors.js';
import { FormatError, InputError, MismatchError, describe } from '../util/errors.js';
import type { AdamWState } from '../train/optimizer.js';
import { RUN_SCHEMA, type RunConfig } from '../config/run.js';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, CHECKPOINT_FILES, checkpointDir, checkpointStep } from './layout.js';

export const STATE_FORMAT = 'dpo-trainer-state';
/** 2: resume_state.json beside an HF trainer_state.json. 1: everything in trainer_state.json (read, never written). */
export const STATE_VERSION = 2;
const LEGACY_STATE_VERSION = 1;
const { optimizer: OPTIMIZER_FILE, state: STATE_FILE, resume: RESUME_FILE } = CHECKPOINT_FILES;

export interface RunHashes {
  model: string;
  tokenizer: string;
  data: string;
  initAdapter: string | null;
  refAdapter: string | null;
  /** The --scores file, when the difficulty comes from it. */
  scores: string | null;
}

/** Hashes of everything outside the config that changes the math: resume and the reference cache check them. */
export function runHashes(model: LoadedModel, dataFile: string, cfg: RunConfig): RunHashes {
  const refDir = cfg.refAdapter ?? cfg.initAdapter;
  return {
    model: model.modelHash,
    tokenizer: model.tokenizerHash,
    data: hashData(dataFile, cfg.split ?? undefined),
    initAdapter: adapterHash(cfg.initAdapter),
    refAdapter: adapterHash(refDir),
    scores: cfg.scores ? hashFile(cfg.scores) : null,
  };
}

/** What resume needs, in memory: resume_state.json's fields plus trainer_state.json's log_history. */
export interface TrainerState {
  format: typeof STATE_FORMAT;
  version: number;
  global_step: number;
  /** Fractional epochs done (HF's `epoch`). */
  epoch: number;
  max_steps: number;
  steps_per_epoch: number;
  /** Where the next step starts in the data order. */
  position: { epoch: number; step_in_epoch: number; pairs_seen: number };
  /** The order is a pure function of (curriculum, seed, epoch), so storing those reproduces it. */
  order: { curriculum: string; seed: number; pairs: number; plan: string };
  /** Dropout seeds are a pure function of (seed, step): the RNG state needs nothing more to continue. */
  rng: { kind: 'derived'; seed: number };
  config: RunConfig;
  hashes: RunHashes;
  /** Metrics lines up to this step, as written to metrics.jsonl. */
  log_history: Record<string, number>[];
}

/**
 * transformers' TrainerState dataclass fields (v5.15.1 src/transformers/trainer_callback.py, class TrainerState), in
 * order. trainer_state.json holds only these: load_from_json is `cls(**json.loads(text))`.
 */
export const HF_TRAINER_STATE_FIELDS = ['epoch', 'global_step', 'max_steps', 'logging_steps', 'eval_steps', 'save_steps', 'train_batch_size',
  'num_train_epochs', 'num_input_tokens_seen', 'total_flos', 'log_history', 'best_metric', 'best_global_step', 'best_model_checkpoint',
  'is_local_process_zero', 'is_world_process_zero', 'is_hyper_param_search', 'trial_name', 'trial_params', 'stateful_callbacks'] as const;

/**
 * trainer_state.json as HF Trainer's save_to_json writes it (sorted keys, indent 2). Left out (so the dataclass defaults
 * apply, and transformers 4.3x, which lacks them, still loads it): best_global_step, stateful_callbacks; eval_steps and
 * save_steps when ours are 0 (no periodic evaluation / save: HF has no such value).
 */
export function hfTrainerState(s: TrainerState): Record<string, unknown> {
  const c = s.config;
  const out: Record<string, unknown> = {
    best_metric: null, best_model_checkpoint: null, epoch: s.epoch, global_step: s.global_step,
    is_hyper_param_search: false, is_local_process_zero: true, is_world_process_zero: true, log_history: s.log_history,
    logging_steps: c.loggingSteps, max_steps: s.max_steps, num_input_tokens_seen: 0, num_train_epochs: Math.ceil(s.max_steps / s.steps_per_epoch),
    total_flos: 0, train_batch_size: c.batchSize, trial_name: null, trial_params: null,
  };
  if (c.evalSteps > 0) out.eval_steps = c.evalSteps;
  if (c.saveSteps > 0) out.save_steps = c.saveSteps;
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : 1)));
}

/** resume_state.json: everything but log_history (which trainer_state.json has). */
function resumeState(s: TrainerState): Omit<TrainerState, 'log_history'> {
  const { log_history: _, ...rest } = s;
  return rest;
}

/** Complete checkpoints in `outputDir`, oldest first. Temp folders (dot-prefixed) are never listed. */
export function listCheckpoints(outputDir: string): { step: number; dir: string }[] {
  if (!existsSync(outputDir)) return [];
  return readdirSync(outputDir)
    .map((name) => ({ step: checkpointStep(name), dir: join(outputDir, name) }))
    .filter((c): c is { step: number; dir: string } => c.step !== null)
    .filter((c) => statSync(c.dir).isDirectory() && existsSync(join(c.dir, STATE_FILE)))
    .sort((a, b) => a.step - b.step);
}

/**
 * Writes checkpoint-<step>/ atomically. With a `keep` limit the oldest are pruned first, down to keep - 1 others, so a
 * run at its limit (often on a nearly full disk) still has room for the new one; as HF Trainer's save_total_limit.
 */
export async function saveCheckpoint(outputDir: string, state: TrainerState, lora: Lora, opt: AdamWState, baseModel: string, keep: number | null): Promise<string> {
  const dir = checkpointDir(outputDir, state.global_step);
  if (keep !== null) {
    const others = listCheckpoints(outputDir).filter((c) => c.dir !== dir);
    for (const c of others.slice(0, Math.max(0, others.length - Math.max(keep - 1, 0)))) rmSync(c.dir, { recursive: true, force: true });
  }
  await writeDirAtomic(dir, async (tmp) => {
    await saveAdapter(tmp, lora, baseModel, basename(resolve(outputDir)));
    const moments = Object.keys(loraTensors(lora)).flatMap((k) => ADAM_MOMENTS.map((m, i) => ({ name: momentKey(k, m), t: [opt.m, opt.v][i].get(k)! })));
    await writeSafetensors(join(tmp, OPTIMIZER_FILE), moments.map(({ name, t }) => ({ name, shape: t.shape as number[], data: () => t.data() as Promise<Float32Array> })),
      { dtype: 'F32', metadata: { format: 'pt', step: String(opt.step) } });
    writeFileAtomic(join(tmp, STATE_FILE), JSON.stringify(hfTrainerState(state), null, 2) + '\n');
    writeFileAtomic(join(tmp, RESUME_FILE), JSON.stringify(resumeState(state), null, 1) + '\n');
  });
  return dir;
}

/** Settings that do not change the math: they may differ on resume. */
const FREE_ON_RESUME: (keyof RunConfig)[] = ['backend', 'outputDir', 'runName', 'saveSteps', 'saveTotalLimit', 'loggingSteps', 'refMode', 'reportTo',
  'evalTasks', 'evalFormat', 'evalSamples', 'evalSteps', 'evalMaxNewTokens', 'evalTemperature', 'evalTimeout',
  // Paths: their contents are compared through the hashes, so a moved folder may still resume.
  'model', 'data', 'scores', 'initAdapter', 'refAdapter'];

/** Refuses a resume whose math-changing settings or input contents differ from the checkpoint's, naming each. */
export function checkResume(state: TrainerState, cfg: RunConfig, hashes: RunHashes, dir: string): void {
  const diffs: string[] = [];
  for (const k of Object.keys(cfg) as (keyof RunConfig)[]) {
    if (FREE_ON_RESUME.includes(k)) continue;
    // A key the checkpoint's trainer did not have yet ran with what is now its default.
    const stored = k in state.config ? state.config[k] : RUN_SCHEMA[k].default;
    if (JSON.stringify(stored) !== JSON.stringify(cfg[k])) diffs.push(`${k}: ${JSON.stringify(state.config[k])} -> ${JSON.stringify(cfg[k])}`);
  }
  for (const k of Object.keys(hashes) as (keyof RunHashes)[]) {
    if (state.hashes[k] !== hashes[k]) diffs.push(`${k} contents differ`);
  }
  if (diffs.length > 0) {
    throw new MismatchError(describe(`--resume ${dir}`, `the run differs from the checkpoint (${diffs.join('; ')})`, 'the same model, data and settings',
      `Resume with the settings stored in ${RESUME_FILE}, or start a new run with another --output-dir.`));
  }
}

/** `--resume latest` or a checkpoint folder -> the folder. */
export function resolveResume(resume: string, outputDir: string): string {
  if (resume === 'latest') {
    const all = listCheckpoints(outputDir);
    if (all.length === 0) throw new InputError(describe('--resume latest', `no checkpoint-N folder in ${outputDir}`, 'a run folder with checkpoints', 'Pass --output-dir of the run to resume, or a checkpoint folder.'));
    return all[all.length - 1].dir;
  }
  if (!existsSync(join(resume, STATE_FILE))) {
    // A run folder: take its latest checkpoint.
    const all = listCheckpoints(resume);
    if (all.length > 0) return all[all.length - 1].dir;
    throw new InputError(describe(`--resume ${resume}`, `no ${STATE_FILE} and no checkpoints`, 'a checkpoint-N folder, a run folder, or latest'));
  }
  return resume;
}

/**
 * A checkpoint's resume state: resume_state.json + trainer_state.json's log_history, or (version 1) trainer_state.json
 * alone. A trainer_state.json of HF Trainer without our file is refused, naming what is missing.
 */
export function readTrainerState(dir: string): TrainerState {
  const resumeFile = join(dir, RESUME_FILE);
  const stateFile = join(dir, STATE_FILE);
  let s: TrainerState;
  if (existsSync(resumeFile)) {
    const r = readJsonObject(resumeFile, `a ${RESUME_FILE} written by this trainer`) as unknown as TrainerState;
    checkFormat(r, resumeFile, STATE_VERSION);
    const hf = readJsonObject(stateFile, 'a trainer_state.json (transformers TrainerState)');
    s = { ...r, log_history: Array.isArray(hf.log_history) ? (hf.log_history as TrainerState['log_history']) : [] };
  } else {
    s = readJsonObject(stateFile, `a ${STATE_FILE} written by this trainer`) as unknown as TrainerState;
    if (s.format === undefined) {
      throw new FormatError(describe(resumeFile, 'missing', `the resume state this trainer writes beside ${STATE_FILE}`,
        'Is this a checkpoint of HF Trainer? Its adapter can start a new run: --init-adapter DIR.'));
    }
    checkFormat(s, stateFile, LEGACY_STATE_VERSION);
  }
  for (const f of [ADAPTER_CONFIG, ADAPTER_WEIGHTS, OPTIMIZER_FILE]) {
    if (!existsSync(join(dir, f))) throw new FormatError(describe(join(dir, f), 'missing', 'a complete checkpoint'));
  }
  return s;
}

function checkFormat(s: { format?: unknown; version?: unknown }, file: string, version: number): void {
  if (s.format !== STATE_FORMAT) throw new FormatError(describe(`${file}: format`, JSON.stringify(s.format), JSON.stringify(STATE_FORMAT), 'Is this a checkpoint of this trainer?'));
  if (s.version !== version) throw new FormatError(describe(`${file}: version`, String(s.version), String(version), 'It was written by another version of this trainer.'));
}

/** Restores Adam moments into `opt` (which must have the adapter's keys). */
export function loadOptimizer(dir: string, opt: AdamWState, step: number): void {
  const file = join(dir, OPTIMIZER_FILE);
  const st = openSafetensors(file);
  try {
    // Keys and shapes first: the loop replaces (and disposes) the tensors of the maps it fills.
    const shapes = [...opt.m].map(([k, t]) => [k, t.shape as number[]] as const);
    for (const [k, shape] of shapes) {
      for (const [i, moment] of ADAM_MOMENTS.entries()) {
        const map = [opt.m, opt.v][i];
        const name = momentKey(k, moment);
        if (!st.has(name)) throw new FormatError(describe(`${file}: ${name}`, 'missing', 'Adam moments for every adapter tensor'));
        const r = st.read(name);
        if (r.shape.join() !== shape.join()) throw new FormatError(describe(`${file}: ${name}`, `shape [${r.shape}]`, `[${shape}]`));
        map.get(k)!.dispose();
        map.set(k, tf.tensor(r.data, r.shape));
      }
    }
  } finally {
    st.close();
  }
  opt.step = step;
}

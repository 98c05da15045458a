// Checkpoints: `checkpoint-<step>/` = PEFT adapter + optimizer.safetensors (Adam moments) + trainer_state.json.
// Each is built in a temp folder and renamed, so a crash never leaves a half checkpoint. Versioned and checked on load.
import * as tf from '@tensorflow/tfjs';
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Lora } from '../model/lora.js';
import { loraTensors } from '../model/lora.js';
import { ADAM_MOMENTS, adapterHash, momentKey, saveAdapter } from '../io/peft.js';
import type { LoadedModel } from '../io/model-dir.js';
import { hashFile } from '../util/hash.js';
import { writeDirAtomic, writeFileAtomic } from '../io/atomic.js';
import { readJsonObject } from '../io/json.js';
import { openSafetensors, writeSafetensors } from '../io/safetensors.js';
import { FormatError, InputError, MismatchError, describe } from '../util/errors.js';
import type { AdamWState } from '../train/optimizer.js';
import type { RunConfig } from '../config/run.js';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, CHECKPOINT_FILES, checkpointDir, checkpointStep } from './layout.js';

export const STATE_FORMAT = 'dpo-trainer-state';
export const STATE_VERSION = 1;
const { optimizer: OPTIMIZER_FILE, state: STATE_FILE } = CHECKPOINT_FILES;

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
    data: hashFile(dataFile),
    initAdapter: adapterHash(cfg.initAdapter),
    refAdapter: adapterHash(refDir),
    scores: cfg.scores ? hashFile(cfg.scores) : null,
  };
}

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
    await saveAdapter(tmp, lora, baseModel);
    const moments = Object.keys(loraTensors(lora)).flatMap((k) => ADAM_MOMENTS.map((m, i) => ({ name: momentKey(k, m), t: [opt.m, opt.v][i].get(k)! })));
    await writeSafetensors(join(tmp, OPTIMIZER_FILE), moments.map(({ name, t }) => ({ name, shape: t.shape as number[], data: () => t.dataSync() as Float32Array })),
      { dtype: 'F32', metadata: { format: 'pt', step: String(opt.step) } });
    writeFileAtomic(join(tmp, STATE_FILE), JSON.stringify(state, null, 1) + '\n');
  });
  return dir;
}

/** Settings that do not change the math: they may differ on resume. */
const FREE_ON_RESUME: (keyof RunConfig)[] = ['backend', 'outputDir', 'runName', 'saveSteps', 'saveTotalLimit', 'loggingSteps', 'refMode',
  'evalTasks', 'evalFormat', 'evalSamples', 'evalSteps', 'evalMaxNewTokens', 'evalTemperature', 'evalTimeout',
  // Paths: their contents are compared through the hashes, so a moved folder may still resume.
  'model', 'data', 'scores', 'initAdapter', 'refAdapter'];

/** Refuses a resume whose math-changing settings or input contents differ from the checkpoint's, naming each. */
export function checkResume(state: TrainerState, cfg: RunConfig, hashes: RunHashes, dir: string): void {
  const diffs: string[] = [];
  for (const k of Object.keys(cfg) as (keyof RunConfig)[]) {
    if (FREE_ON_RESUME.includes(k)) continue;
    if (JSON.stringify(state.config[k]) !== JSON.stringify(cfg[k])) diffs.push(`${k}: ${JSON.stringify(state.config[k])} -> ${JSON.stringify(cfg[k])}`);
  }
  for (const k of Object.keys(hashes) as (keyof RunHashes)[]) {
    if (state.hashes[k] !== hashes[k]) diffs.push(`${k} contents differ`);
  }
  if (diffs.length > 0) {
    throw new MismatchError(describe(`--resume ${dir}`, `the run differs from the checkpoint (${diffs.join('; ')})`, 'the same model, data and settings',
      'Resume with the settings stored in trainer_state.json, or start a new run with another --output-dir.'));
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

export function readTrainerState(dir: string): TrainerState {
  const file = join(dir, STATE_FILE);
  const s = readJsonObject(file, `a ${STATE_FILE} written by this trainer`) as unknown as TrainerState;
  if (s.format !== STATE_FORMAT) throw new FormatError(describe(`${file}: format`, JSON.stringify(s.format), JSON.stringify(STATE_FORMAT), 'Is this a checkpoint of this trainer?'));
  if (s.version !== STATE_VERSION) throw new FormatError(describe(`${file}: version`, String(s.version), String(STATE_VERSION), 'It was written by another version of this trainer.'));
  for (const f of [ADAPTER_CONFIG, ADAPTER_WEIGHTS, OPTIMIZER_FILE]) {
    if (!existsSync(join(dir, f))) throw new FormatError(describe(join(dir, f), 'missing', 'a complete checkpoint'));
  }
  return s;
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

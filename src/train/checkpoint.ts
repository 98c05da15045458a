// Checkpoints: `checkpoint-<step>/` = PEFT adapter + optimizer.safetensors (Adam moments) + trainer_state.json.
// Each is built in a temp folder and renamed, so a crash never leaves a half checkpoint. Versioned and checked on load.
import * as tf from '@tensorflow/tfjs';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Lora } from '../model/lora.js';
import { loraTensors } from '../model/lora.js';
import { saveAdapter, peftKey, ADAPTER_CONFIG, ADAPTER_WEIGHTS } from '../io/adapter.js';
import { writeDirAtomic, writeFileAtomic } from '../io/atomic.js';
import { openSafetensors, writeSafetensors } from '../io/safetensors.js';
import { FormatError, InputError, describe } from '../util/errors.js';
import type { AdamWState } from './optimizer.js';
import type { RunConfig } from '../config/run.js';

export const STATE_FORMAT = 'dpo-trainer-state';
export const STATE_VERSION = 1;
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const STATE_FILE = 'trainer_state.json';

export interface RunHashes {
  model: string;
  tokenizer: string;
  data: string;
  initAdapter: string | null;
  refAdapter: string | null;
  /** The --scores file, when the difficulty comes from it. */
  scores: string | null;
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

export function checkpointDir(outputDir: string, step: number): string {
  return join(outputDir, `checkpoint-${step}`);
}

/** Complete checkpoints in `outputDir`, oldest first. Temp folders (dot-prefixed) are never listed. */
export function listCheckpoints(outputDir: string): { step: number; dir: string }[] {
  if (!existsSync(outputDir)) return [];
  return readdirSync(outputDir)
    .map((name) => /^checkpoint-(\d+)$/.exec(name))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ step: Number(m[1]), dir: join(outputDir, m[0]) }))
    .filter((c) => statSync(c.dir).isDirectory() && existsSync(join(c.dir, STATE_FILE)))
    .sort((a, b) => a.step - b.step);
}

export async function saveCheckpoint(outputDir: string, state: TrainerState, lora: Lora, opt: AdamWState, baseModel: string, keep: number | null): Promise<string> {
  const dir = checkpointDir(outputDir, state.global_step);
  await writeDirAtomic(dir, async (tmp) => {
    await saveAdapter(tmp, lora, baseModel);
    const moments = Object.keys(loraTensors(lora)).flatMap((k) => [
      { name: `${peftKey(k)}.exp_avg`, t: opt.m.get(k)! },
      { name: `${peftKey(k)}.exp_avg_sq`, t: opt.v.get(k)! },
    ]);
    await writeSafetensors(join(tmp, OPTIMIZER_FILE), moments.map(({ name, t }) => ({ name, shape: t.shape as number[], data: () => t.dataSync() as Float32Array })),
      { dtype: 'F32', metadata: { format: 'pt', step: String(opt.step) } });
    writeFileAtomic(join(tmp, STATE_FILE), JSON.stringify(state, null, 1) + '\n');
  });
  if (keep !== null) {
    const all = listCheckpoints(outputDir);
    for (const c of all.slice(0, Math.max(0, all.length - keep))) rmSync(c.dir, { recursive: true, force: true });
  }
  return dir;
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
  let s: TrainerState;
  try {
    s = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new FormatError(describe(file, `unreadable (${(e as Error).message})`, 'a trainer_state.json written by this trainer'));
  }
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
    for (const [k, t] of opt.m) {
      const shape = t.shape as number[];
      for (const [suffix, map] of [['exp_avg', opt.m], ['exp_avg_sq', opt.v]] as const) {
        const name = `${peftKey(k)}.${suffix}`;
        if (!st.has(name)) throw new FormatError(describe(`${file}: ${name}`, 'missing', 'Adam moments for every adapter tensor'));
        const r = st.read(name);
        if (r.shape.join() !== shape.join()) throw new FormatError(describe(`${file}: ${name}`, `shape [${r.shape}]`, `[${shape}]`));
        map.get(k)!.dispose();
        map.set(k, tf.keep(tf.tensor(r.data, r.shape)));
      }
    }
  } finally {
    st.close();
  }
  opt.step = step;
}

// SFT checkpoints: checkpoint-N/ holds the trained weights (an HF model dir with --full: config.json, tokenizer
// files, model.safetensors in F32; a PEFT adapter with LoRA), the Adam moments (optimizer.safetensors, keyed by the
// trained tensor's name) and sft_state.json (step, config, hashes, log history). Written atomically as one folder.
import * as tf from '@tensorflow/tfjs';
import { copyFileSync, existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeDirAtomic, writeFileAtomic } from '../io/atomic.js';
import { readJsonObject } from '../io/json.js';
import type { LoadedModel } from '../io/model-dir.js';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, saveAdapter } from '../io/peft.js';
import { openSafetensors, writeSafetensors } from '../io/safetensors.js';
import type { Lora } from '../model/lora.js';
import type { AdamWState } from '../train/optimizer.js';
import { checkpointDir, checkpointStep } from '../run/layout.js';
import { FormatError, InputError, MismatchError, describe } from '../util/errors.js';
import { SFT_FREE_ON_RESUME, type SftConfig } from './config.js';

export const SFT_STATE_FORMAT = 'dpo-trainer-sft-state';
export const SFT_STATE_VERSION = 1;
export const SFT_FILES = { state: 'sft_state.json', optimizer: 'optimizer.safetensors', weights: 'model.safetensors' } as const;
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'special_tokens_map.json', 'chat_template.jinja'];

export interface SftHashes {
  model: string;
  tokenizer: string;
  data: string;
}

export interface SftState {
  format: typeof SFT_STATE_FORMAT;
  version: number;
  global_step: number;
  epoch: number;
  max_steps: number;
  steps_per_epoch: number;
  /** Tokens trained on so far (TRL's cumulative num_tokens). */
  num_tokens: number;
  config: SftConfig;
  hashes: SftHashes;
  log_history: Record<string, number>[];
}

/** What is trained: every weight (full) or the adapters. */
export type Trained = { kind: 'full'; vars: Record<string, tf.Variable> } | { kind: 'lora'; lora: Lora; vars: Record<string, tf.Variable> };

/** An HF model directory of `weights` (F32) with the base's config and tokenizer files: what `--model` loads. */
export async function writeHfModel(dir: string, model: LoadedModel, weights: Record<string, tf.Tensor>): Promise<void> {
  const names = Object.keys(weights).sort();
  await writeSafetensors(join(dir, SFT_FILES.weights), names.map((name) => ({ name, shape: weights[name].shape as number[], data: () => weights[name].data() as Promise<Float32Array> })), { dtype: 'F32' });
  const config = readJsonObject(join(model.dir, 'config.json'), 'a Hugging Face config.json');
  if (model.cfg.configLayout === 'v5') config.dtype = 'float32';
  else config.torch_dtype = 'float32';
  writeFileAtomic(join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  for (const f of TOKENIZER_FILES) if (existsSync(join(model.dir, f))) copyFileSync(join(model.dir, f), join(dir, f));
}

/** The trained weights where `dir` is: an HF model dir (full) or a PEFT adapter (LoRA). */
export async function writeTrained(dir: string, model: LoadedModel, t: Trained): Promise<void> {
  if (t.kind === 'full') await writeHfModel(dir, model, t.vars);
  else await saveAdapter(dir, t.lora, model.dir);
}

export function listSftCheckpoints(outputDir: string): { step: number; dir: string }[] {
  if (!existsSync(outputDir)) return [];
  return readdirSync(outputDir)
    .map((name) => ({ step: checkpointStep(name), dir: join(outputDir, name) }))
    .filter((c): c is { step: number; dir: string } => c.step !== null && statSync(c.dir).isDirectory() && existsSync(join(c.dir, SFT_FILES.state)))
    .sort((a, b) => a.step - b.step);
}

export async function saveSftCheckpoint(outputDir: string, state: SftState, model: LoadedModel, t: Trained, opt: AdamWState, keep: number | null): Promise<string> {
  const dir = checkpointDir(outputDir, state.global_step);
  if (keep !== null) {
    const others = listSftCheckpoints(outputDir).filter((c) => c.dir !== dir);
    for (const c of others.slice(0, Math.max(0, others.length - Math.max(keep - 1, 0)))) rmSync(c.dir, { recursive: true, force: true });
  }
  await writeDirAtomic(dir, async (tmp) => {
    await writeTrained(tmp, model, t);
    const keys = Object.keys(t.vars).sort();
    const moments = keys.flatMap((k) => [{ name: `${k}.exp_avg`, t: opt.m.get(k)! }, { name: `${k}.exp_avg_sq`, t: opt.v.get(k)! }]);
    await writeSafetensors(join(tmp, SFT_FILES.optimizer), moments.map(({ name, t: x }) => ({ name, shape: x.shape as number[], data: () => x.data() as Promise<Float32Array> })),
      { dtype: 'F32', metadata: { format: 'pt', step: String(opt.step) } });
    writeFileAtomic(join(tmp, SFT_FILES.state), JSON.stringify(state, null, 1) + '\n');
  });
  return dir;
}

/** `latest` (in outputDir), a checkpoint folder, or a run folder -> the checkpoint folder. */
export function resolveSftResume(resume: string, outputDir: string): string {
  const from = resume === 'latest' ? outputDir : resume;
  if (existsSync(join(from, SFT_FILES.state))) return from;
  const all = listSftCheckpoints(from);
  if (all.length === 0) throw new InputError(describe(`--resume ${resume}`, `no ${SFT_FILES.state} and no checkpoint-N in ${from}`, 'an SFT checkpoint folder, its run folder, or latest with --output-dir'));
  return all[all.length - 1].dir;
}

export function readSftState(dir: string): SftState {
  const file = join(dir, SFT_FILES.state);
  const s = readJsonObject(file, `an ${SFT_FILES.state} written by this trainer`) as unknown as SftState;
  if (s.format !== SFT_STATE_FORMAT) throw new FormatError(describe(`${file}: format`, JSON.stringify(s.format), JSON.stringify(SFT_STATE_FORMAT)));
  if (s.version !== SFT_STATE_VERSION) throw new FormatError(describe(`${file}: version`, String(s.version), String(SFT_STATE_VERSION)));
  return s;
}

/** Refuses a resume whose math-changing settings or inputs differ from the checkpoint's, naming each. */
export function checkSftResume(s: SftState, cfg: SftConfig, hashes: SftHashes, dir: string): void {
  const diffs: string[] = [];
  for (const k of Object.keys(cfg) as (keyof SftConfig)[]) {
    if (!SFT_FREE_ON_RESUME.includes(k) && JSON.stringify(s.config[k]) !== JSON.stringify(cfg[k])) diffs.push(`${k}: ${JSON.stringify(s.config[k])} -> ${JSON.stringify(cfg[k])}`);
  }
  for (const k of Object.keys(hashes) as (keyof SftHashes)[]) if (s.hashes[k] !== hashes[k]) diffs.push(`${k} contents differ`);
  if (diffs.length > 0) {
    throw new MismatchError(describe(`--resume ${dir}`, `the run differs from the checkpoint (${diffs.join('; ')})`, 'the same model, data and settings',
      'Resume with the stored settings, or start a new run with another --output-dir.'));
  }
}

/** Restores the trained tensors (and, when `opt` is given, the Adam moments) from a checkpoint, strictly by name and shape. */
export function loadSftCheckpoint(dir: string, t: Trained, opt: AdamWState, step: number): void {
  const read = (file: string, pairs: { name: string; into: (x: tf.Tensor) => void; shape: number[] }[]) => {
    const st = openSafetensors(file);
    try {
      for (const p of pairs) {
        if (!st.has(p.name)) throw new FormatError(describe(`${file}: ${p.name}`, 'missing', 'every trained tensor'));
        const r = st.read(p.name);
        if (r.shape.join() !== p.shape.join()) throw new FormatError(describe(`${file}: ${p.name}`, `shape [${r.shape}]`, `[${p.shape}]`));
        p.into(tf.tensor(r.data, r.shape));
      }
    } finally {
      st.close();
    }
  };
  if (t.kind === 'full') {
    read(join(dir, SFT_FILES.weights), Object.entries(t.vars).map(([name, v]) => ({ name, shape: v.shape, into: (x) => { v.assign(x); x.dispose(); } })));
  } else if (!existsSync(join(dir, ADAPTER_WEIGHTS)) || !existsSync(join(dir, ADAPTER_CONFIG))) {
    throw new FormatError(describe(dir, 'no PEFT adapter', 'an SFT LoRA checkpoint'));
  }
  const swap = (map: Map<string, tf.Tensor>, k: string) => (x: tf.Tensor) => { map.get(k)!.dispose(); map.set(k, x); };
  read(join(dir, SFT_FILES.optimizer), Object.keys(t.vars).flatMap((k) => [
    { name: `${k}.exp_avg`, shape: t.vars[k].shape, into: swap(opt.m, k) },
    { name: `${k}.exp_avg_sq`, shape: t.vars[k].shape, into: swap(opt.v, k) },
  ]));
  opt.step = step;
}

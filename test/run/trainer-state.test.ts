// Issue 13 item 6: trainer_state.json loads with transformers' TrainerState.load_from_json (`cls(**json.loads(text))`),
// so it holds only TrainerState's fields; our resume state is resume_state.json; checkpoints of the old layout (all of it
// in trainer_state.json, version 1) still resume; train_results.json / all_results.json as Trainer.save_metrics.
// Item 5 in a run: the checkpoint and the final adapter carry README.md and base_model_name_or_path as given.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LoadedModel } from '../../src/io/model-dir.js';
import { HF_TRAINER_STATE_FIELDS, readTrainerState } from '../../src/run/checkpoint.js';
import { saveMetrics } from '../../src/run/files.js';
import { runTraining, type TrainOptions } from '../../src/train/loop.js';
import { FormatError } from '../../src/util/errors.js';
import { closeTinyRun, openTinyRun, readJsonl, runConfig, tokenized } from '../train/helpers.js';

const PYTHON = existsSync('/root/.pyenv/versions/3.11.7/bin/python3') ? '/root/.pyenv/versions/3.11.7/bin/python3' : 'python3';

/**
 * transformers v5.15.1 src/transformers/trainer_callback.py, `@dataclass class TrainerState` (line 35 of that file, per
 * the v5.15.1 API reference's [Source] link): its fields and defaults, transcribed by hand.
 */
const TRAINER_STATE_V5_15_1 = `
from dataclasses import dataclass
@dataclass
class TrainerState:
    epoch: float = 0
    global_step: int = 0
    max_steps: int = 0
    logging_steps: int = 500
    eval_steps: int = 500
    save_steps: int = 500
    train_batch_size: int = None
    num_train_epochs: int = 0
    num_input_tokens_seen: int = 0
    total_flos: float = 0
    log_history: list = None
    best_metric: float = None
    best_global_step: int = None
    best_model_checkpoint: str = None
    is_local_process_zero: bool = True
    is_world_process_zero: bool = True
    is_hyper_param_search: bool = False
    trial_name: str = None
    trial_params: dict = None
    stateful_callbacks: list = None

    @classmethod
    def load_from_json(cls, json_path):
        import json
        with open(json_path, encoding="utf-8") as f:
            text = f.read()
        return cls(**json.loads(text))
`;
const FIELDS = ['epoch', 'global_step', 'max_steps', 'logging_steps', 'eval_steps', 'save_steps', 'train_batch_size', 'num_train_epochs',
  'num_input_tokens_seen', 'total_flos', 'log_history', 'best_metric', 'best_global_step', 'best_model_checkpoint', 'is_local_process_zero',
  'is_world_process_zero', 'is_hyper_param_search', 'trial_name', 'trial_params', 'stateful_callbacks'];

/** TrainerState.load_from_json(path) in Python; returns the loaded fields (it raises TypeError on any other key). */
function hfLoad(path: string): Record<string, unknown> {
  const code = `${TRAINER_STATE_V5_15_1}\nimport dataclasses, json, sys\nprint(json.dumps(dataclasses.asdict(TrainerState.load_from_json(sys.argv[1]))))`;
  return JSON.parse(execFileSync(PYTHON, ['-c', code, path], { encoding: 'utf8' }));
}

let root: string;
let model: LoadedModel;
let modelDir: string;
let data: string;

beforeAll(async () => ({ root, modelDir, model, data } = await openTinyRun('trainer-state')));
afterAll(() => closeTinyRun({ root, model }));

const FLAGS = { 'max-steps': 4, 'save-steps': 2, 'logging-steps': 1, 'lora-dropout': 0.1, 'learning-rate': 2e-3, seed: 7 };

async function train(out: string, flags: Record<string, unknown> = {}, opts: Partial<TrainOptions> = {}) {
  const cfg = runConfig({ model: relative(process.cwd(), modelDir), data, 'output-dir': out, ...FLAGS, ...flags });
  return runTraining(model, tokenized(model, data, cfg), data, cfg, { log: () => {}, resume: null, ...opts });
}

const json = (f: string) => JSON.parse(readFileSync(f, 'utf8'));

describe('trainer_state.json, resume_state.json, train_results.json', () => {
  let out: string;
  beforeAll(async () => {
    out = join(root, 'straight');
    await train(out);
  });

  it('trainer_state.json has only TrainerState fields and loads with TrainerState.load_from_json (v5.15.1)', () => {
    expect(HF_TRAINER_STATE_FIELDS).toEqual(FIELDS); // the source's list is the transcription's
    for (const step of [2, 4]) {
      const file = join(out, `checkpoint-${step}`, 'trainer_state.json');
      const s = json(file);
      const extra = Object.keys(s).filter((k) => !FIELDS.includes(k));
      expect(extra, file).toEqual([]);
      const loaded = hfLoad(file);
      expect(loaded).toMatchObject({ global_step: step, max_steps: 4, epoch: step / 4, logging_steps: 1, save_steps: 2, train_batch_size: 2,
        num_train_epochs: 1, best_metric: null, is_world_process_zero: true });
      expect(Object.keys(s)).toEqual([...Object.keys(s)].sort()); // save_to_json's sort_keys=True
      // log_history: the logged metrics lines up to this step (every step here).
      // (metrics.jsonl lines also carry a timestamp, issue 13 item 7; log_history entries are HF's, without one.)
      expect(s.log_history).toEqual(readJsonl(join(out, 'metrics.jsonl')).slice(0, step).map(({ timestamp: _t, ...l }) => l));
    }
  });

  it('resume_state.json holds our resume state (format, version 2, position, order seed, hashes, config)', () => {
    const r = json(join(out, 'checkpoint-2', 'resume_state.json'));
    expect(r).toMatchObject({ format: 'dpo-trainer-state', version: 2, global_step: 2, steps_per_epoch: 4,
      position: { epoch: 0, step_in_epoch: 2, pairs_seen: 4 }, order: { curriculum: 'shuffle', seed: 7, pairs: 8 }, rng: { kind: 'derived', seed: 7 } });
    expect(Object.keys(r.hashes).sort()).toEqual(['data', 'initAdapter', 'model', 'refAdapter', 'scores', 'tokenizer']);
    expect(r.config.maxSteps).toBe(4);
    expect(r.log_history).toBeUndefined(); // that is trainer_state.json's
    expect(readTrainerState(join(out, 'checkpoint-2')).log_history.length).toBe(2);
  });

  it('train_results.json and all_results.json: train_runtime, train_samples_per_second, train_steps_per_second, train_loss, epoch', () => {
    const t = json(join(out, 'train_results.json'));
    expect(Object.keys(t)).toEqual(['epoch', 'train_loss', 'train_runtime', 'train_samples_per_second', 'train_steps_per_second']);
    const losses = readJsonl(join(out, 'metrics.jsonl')).map((m) => m.loss);
    expect(t.train_loss).toBeCloseTo(losses.reduce((a, b) => a + b, 0) / losses.length, 12);
    expect(t.epoch).toBe(1);
    expect(t.train_runtime).toBeGreaterThan(0);
    expect(t.train_runtime).toBe(Math.round(t.train_runtime * 1e4) / 1e4);
    // speed_metrics: 4 steps of 2 pairs over the runtime, rounded to 3 places.
    expect(Math.abs(t.train_steps_per_second - 4 / t.train_runtime)).toBeLessThanOrEqual(5e-4 + 4 / t.train_runtime * 1e-3);
    expect(Math.abs(t.train_samples_per_second - 8 / t.train_runtime)).toBeLessThanOrEqual(5e-4 + 8 / t.train_runtime * 1e-3);
    expect(json(join(out, 'all_results.json'))).toEqual(t);
    expect(readFileSync(join(out, 'train_results.json'), 'utf8')).toMatch(/^\{\n {4}"epoch": 1,\n/); // json.dump(indent=4, sort_keys)
  });

  it('all_results.json is updated, not replaced (save_metrics combined=True)', () => {
    const dir = join(root, 'combined');
    cpSync(out, dir, { recursive: true });
    writeFileSync(join(dir, 'all_results.json'), JSON.stringify({ eval_loss: 0.5, train_loss: 9 }));
    saveMetrics(dir, 'train', { train_loss: 0.25, epoch: 1 });
    expect(json(join(dir, 'all_results.json'))).toEqual({ epoch: 1, eval_loss: 0.5, train_loss: 0.25 });
  });

  it('checkpoints and the final adapter are PEFT folders: README.md, base_model_name_or_path as given (relative)', () => {
    const given = relative(process.cwd(), modelDir);
    for (const dir of [out, join(out, 'checkpoint-2')]) {
      expect(readdirSync(dir)).toContain('README.md');
      expect(json(join(dir, 'adapter_config.json')).base_model_name_or_path).toBe(given);
      expect(readFileSync(join(dir, 'README.md'), 'utf8')).toMatch(/^---\nbase_model: \S+\nlibrary_name: peft\nmodel_name: straight\n/);
    }
  });

  it('a checkpoint of the old layout (version 1, all in trainer_state.json, no reportTo key) resumes to the same adapter', async () => {
    const old = join(root, 'old');
    await train(old, {}, { stopAfterSteps: 2 });
    const ck = join(old, 'checkpoint-2');
    const hf = json(join(ck, 'trainer_state.json'));
    const r = json(join(ck, 'resume_state.json'));
    delete r.config.reportTo; // a key that trainer did not have yet
    writeFileSync(join(ck, 'trainer_state.json'), JSON.stringify({ ...r, version: 1, log_history: hf.log_history }, null, 1));
    rmSync(join(ck, 'resume_state.json'));
    expect(readTrainerState(ck)).toMatchObject({ version: 1, global_step: 2 });
    const res = await train(old, {}, { resume: 'latest' });
    expect(res).toMatchObject({ steps: 4, interrupted: false });
    expect(readFileSync(join(old, 'adapter_model.safetensors')).equals(readFileSync(join(out, 'adapter_model.safetensors')))).toBe(true);
    expect(readJsonl(join(old, 'metrics.jsonl')).map((m) => m.loss)).toEqual(readJsonl(join(out, 'metrics.jsonl')).map((m) => m.loss));
    // The new checkpoints it wrote are of the new layout.
    expect(json(join(old, 'checkpoint-4', 'resume_state.json')).version).toBe(2);
    // train_results.json of the resumed run is this invocation's (a deliberate deviation, issue 13 row 6.9: HF's
    // train() counts samples over the whole max_steps budget, trainer.py L5512): steps 3 and 4 only.
    const t = json(join(old, 'train_results.json'));
    const losses = readJsonl(join(old, 'metrics.jsonl')).map((m) => m.loss as number);
    expect(t.train_loss).toBeCloseTo((losses[2]! + losses[3]!) / 2, 12);
    expect(Math.abs(t.train_steps_per_second - 2 / t.train_runtime)).toBeLessThanOrEqual(5e-4 + 2 / t.train_runtime * 1e-3);
    expect(Math.abs(t.train_samples_per_second - 4 / t.train_runtime)).toBeLessThanOrEqual(5e-4 + 4 / t.train_runtime * 1e-3);
  });

  it('an HF Trainer checkpoint (TrainerState only, no resume_state.json) is refused, naming the missing file', () => {
    const ck = join(root, 'hf', 'checkpoint-2');
    cpSync(join(out, 'checkpoint-2'), ck, { recursive: true });
    rmSync(join(ck, 'resume_state.json'));
    expect(() => readTrainerState(ck)).toThrow(FormatError);
    expect(() => readTrainerState(ck)).toThrow(/resume_state\.json: missing.*--init-adapter/);
  });
});

// runTraining on a tiny model: ln 2 and zero rewards at step 0, batch 4 = 4 x accumulated batch 1, base weights
// byte-identical after training, no tensor leaked, exact resume (bytes and metrics lines), and refused resumes.
import * as tf from '@tensorflow/tfjs';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LoadedModel } from '../../src/io/model-dir.js';
import { runTraining } from '../../src/train/loop.js';
import { MismatchError } from '../../src/util/errors.js';
import { adapterDiff, pairsFile, readJsonl, readTensors, runConfig, tokenized, openTinyRun, closeTinyRun } from './helpers.js';

let root: string;
let modelDir: string;
let model: LoadedModel;
let data: string;
const quiet = () => {};

beforeAll(async () => ({ root, modelDir, model, data } = await openTinyRun('loop')));
afterAll(() => closeTinyRun({ root, model }));

async function train(flags: Record<string, unknown>, opts: { resume?: string; stopAfterSteps?: number; file?: string } = {}) {
  const file = opts.file ?? data;
  const cfg = runConfig({ model: modelDir, data: file, ...flags });
  return runTraining(model, tokenized(model, file, cfg), file, cfg, { log: quiet, resume: opts.resume ?? null, stopAfterSteps: opts.stopAfterSteps });
}

const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

describe('runTraining', () => {
  it('step 1 of a fresh adapter: loss ln 2, every reward 0, accuracy 0 (with dropout on)', async () => {
    const out = join(root, 'ln2');
    const before = tf.memory().numTensors;
    await train({ 'output-dir': out, 'max-steps': 1, 'batch-size': 4, 'lora-dropout': 0.1 });
    expect(tf.memory().numTensors).toBe(before); // cached reference: nothing left behind either
    const [m] = readJsonl(join(out, 'metrics.jsonl'));
    expect(m.step).toBe(1);
    expect(Math.abs(m.loss - Math.LN2)).toBeLessThan(1e-6);
    expect(m['rewards/chosen']).toBe(0);
    expect(m['rewards/rejected']).toBe(0);
    expect(m['rewards/margins']).toBe(0);
    expect(m['rewards/accuracies']).toBe(0);
    expect(m.grad_norm).toBeGreaterThan(0); // B = 0 but dL/dB is not: the first step moves the policy
    expect(m['logps/chosen']).toBeLessThan(0);
    const pl = readJsonl(join(out, 'pair_losses.jsonl'));
    expect(pl.length).toBe(4);
    for (const p of pl) {
      expect(Math.abs(p.loss - Math.LN2)).toBeLessThan(1e-6);
      expect(p.margin).toBe(0);
    }
  });

  it('1 step of batch 4 equals 4 micro-batches of 1 with grad-accum 4 (adapter, loss, grad_norm; 2 steps)', async () => {
    const common = { 'max-steps': 2, 'save-steps': 1, curriculum: 'none', 'lora-dropout': 0, 'learning-rate': 1e-3, 'lr-scheduler': 'constant' };
    const a = join(root, 'b4');
    const b = join(root, 'b1x4');
    await train({ ...common, 'output-dir': a, 'batch-size': 4 });
    await train({ ...common, 'output-dir': b, 'batch-size': 1, 'grad-accum': 4 });
    const ma = readJsonl(join(a, 'metrics.jsonl'));
    const mb = readJsonl(join(b, 'metrics.jsonl'));
    expect(ma.length).toBe(2);
    for (let s = 0; s < 2; s++) {
      for (const k of ['loss', 'rewards/chosen', 'rewards/margins', 'logps/chosen', 'logps/rejected']) {
        expect(Math.abs(ma[s][k] - mb[s][k])).toBeLessThan(1e-5 * Math.max(1, Math.abs(ma[s][k])));
      }
      expect(Math.abs(ma[s].grad_norm - mb[s].grad_norm)).toBeLessThan(1e-5 * ma[s].grad_norm);
      const file = (d: string) => join(d, `checkpoint-${s + 1}`, 'adapter_model.safetensors');
      const d = adapterDiff(readTensors(file(a)), readTensors(file(b)));
      if (d >= 1e-6) console.log(`step ${s + 1}: adapter max diff ${d}`);
      expect(d).toBeLessThan(1e-6);
    }
    // And the adapter moved: B left zero on step 1 (Adam's first step is about lr per value).
    const moved = readTensors(join(a, 'checkpoint-1', 'adapter_model.safetensors'));
    const B = [...moved].filter(([k]) => k.includes('lora_B'));
    expect(Math.max(...B.flatMap(([, t]) => Array.from(t.data, Math.abs)))).toBeGreaterThan(0.5e-3);
  });

  it('leaves the base weights and the model dir byte-identical, and leaks no tensor (online reference)', async () => {
    const weights = Object.fromEntries(Object.entries(model.weights).map(([k, t]) => [k, Buffer.from((t.dataSync() as Float32Array).slice().buffer)]));
    const files = Object.fromEntries(readdirSync(modelDir).map((f) => [f, sha(join(modelDir, f))]));
    const before = tf.memory().numTensors;
    const res = await train({ 'output-dir': join(root, 'frozen'), 'max-steps': 3, 'learning-rate': 1e-2, 'ref-mode': 'online', 'lora-dropout': 0.1 });
    expect(res.steps).toBe(3);
    expect(res.lastMetrics!.loss).not.toBeCloseTo(Math.LN2, 4); // it did train
    expect(tf.memory().numTensors).toBe(before);
    for (const [k, t] of Object.entries(model.weights)) {
      expect(Buffer.from((t.dataSync() as Float32Array).buffer).equals(weights[k]), k).toBe(true);
    }
    expect(Object.fromEntries(readdirSync(modelDir).map((f) => [f, sha(join(modelDir, f))]))).toEqual(files);
  });
});

describe('resume', () => {
  // 8 pairs, batch 2: 4 steps per epoch, so 6 steps cross an epoch boundary (a new shuffle).
  const flags = { 'max-steps': 6, 'save-steps': 2, curriculum: 'shuffle', 'lora-dropout': 0.1, 'lr-scheduler': 'linear', 'warmup-steps': 2, 'learning-rate': 2e-3, seed: 11 };
  let straight: string;
  let resumed: string;

  beforeAll(async () => {
    straight = join(root, 'straight');
    resumed = join(root, 'resumed');
    const full = await train({ ...flags, 'output-dir': straight });
    expect(full).toMatchObject({ steps: 6, interrupted: false });
    const first = await train({ ...flags, 'output-dir': resumed }, { stopAfterSteps: 3 });
    expect(first).toMatchObject({ steps: 3, interrupted: true });
  });

  it('6 steps straight = 3 steps + resume latest + 3 steps: identical adapter, optimizer and metrics bytes', async () => {
    expect(readdirSync(resumed).filter((f) => f.startsWith('checkpoint-')).sort()).toEqual(['checkpoint-2', 'checkpoint-3']);
    const second = await train({ ...flags, 'output-dir': resumed }, { resume: 'latest' });
    expect(second).toMatchObject({ steps: 6, interrupted: false });
    for (const f of ['checkpoint-6/adapter_model.safetensors', 'checkpoint-6/optimizer.safetensors', 'checkpoint-6/adapter_config.json',
      'adapter_model.safetensors', 'pair_losses.jsonl']) {
      const same = readFileSync(join(straight, f)).equals(readFileSync(join(resumed, f)));
      if (!same) console.log(`${f} differs`);
      expect(same, f).toBe(true);
    }
    // metrics.jsonl: the same lines but for each line's wall-clock timestamp (issue 13 item 7).
    const untimed = (d: string) => readJsonl(join(d, 'metrics.jsonl')).map(({ timestamp, ...l }) => {
      expect(timestamp).toBeGreaterThan(1.7e9); // Unix seconds
      return JSON.stringify(l);
    });
    expect(untimed(resumed)).toEqual(untimed(straight));
    const lines = readJsonl(join(resumed, 'metrics.jsonl'));
    expect(lines.map((l) => l.step)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(lines[0].learning_rate).toBe(0); // warmup from 0, as transformers
    expect(lines[2].learning_rate).toBeCloseTo(2e-3, 12);
    // trainer_state.json (HF's TrainerState) and our resume_state.json (issue 13 item 6) both.
    const state = (d: string) => {
      const s = JSON.parse(readFileSync(join(d, 'checkpoint-6', 'resume_state.json'), 'utf8'));
      delete s.config.outputDir;
      return { hf: JSON.parse(readFileSync(join(d, 'checkpoint-6', 'trainer_state.json'), 'utf8')), s };
    };
    expect(state(resumed)).toEqual(state(straight));
    // The checkpoint-4 of the straight run was written by the resumed run too, from the same state.
    expect(readFileSync(join(straight, 'checkpoint-4', 'optimizer.safetensors')).equals(readFileSync(join(resumed, 'checkpoint-4', 'optimizer.safetensors')))).toBe(true);
  });

  it('refuses a resume with a different --beta or different data, naming what differs', async () => {
    const out = join(root, 'refuse');
    await train({ ...flags, 'output-dir': out }, { stopAfterSteps: 1 });
    await expect(train({ ...flags, 'output-dir': out, beta: 0.2 }, { resume: 'latest' })).rejects.toThrow(MismatchError);
    await expect(train({ ...flags, 'output-dir': out, beta: 0.2 }, { resume: 'latest' })).rejects.toThrow(/beta: 0\.1 -> 0\.2/);
    const other = pairsFile(root, 8, 8, 'other.jsonl');
    await expect(train({ ...flags, 'output-dir': out }, { resume: 'latest', file: other })).rejects.toThrow(/data/);
    await expect(train({ ...flags, 'output-dir': out, 'lora-r': 8 }, { resume: 'latest' })).rejects.toThrow(/loraR/);
    // Nothing was written by the refused attempts: the run still resumes and finishes.
    expect(readdirSync(out).filter((f) => f.startsWith('checkpoint-'))).toEqual(['checkpoint-1']);
  });
});

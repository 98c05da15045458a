// Training features inside real runs on the tiny model: gradient checkpointing (same numbers, and across a resume),
// save_total_limit pruning, warmup_ratio, SIGTERM (finish the step, save, resume), the `tests` and `ast` difficulty
// orders, and label smoothing refused with the losses that do not define it.
import * as tf from '@tensorflow/tfjs';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readPairs } from '../../src/data/pairs.js';
import { testsDifficulties } from '../../src/curriculum/difficulty.js';
import { disposeModel, loadModel, type LoadedModel } from '../../src/io/model-dir.js';
import { runTraining, type TrainOptions } from '../../src/train/loop.js';
import { learningRateAt } from '../../src/train/schedule.js';
import { resolveRunConfig } from '../../src/config/run.js';
import { adapterDiff, pairsFile, readJsonl, readTensors, runConfig, tempDir, tinyModelDir, tokenized, runBytes } from './helpers.js';

let root: string;
let model: LoadedModel;
let data: string;
const quiet = () => {};

beforeAll(async () => {
  await tf.setBackend('cpu');
  root = tempDir('features');
  model = await loadModel(await tinyModelDir(root, { numLayers: 2 }));
  data = pairsFile(root, 8);
});

afterAll(() => disposeModel(model));

async function train(flags: Record<string, unknown>, opts: Partial<TrainOptions> = {}) {
  const cfg = runConfig({ model: model.dir, data, 'lora-dropout': 0, ...flags });
  return runTraining(model, tokenized(model, data, cfg), data, cfg, { log: quiet, sources: readPairs(data), ...opts });
}

const checkpoints = (dir: string) => readdirSync(dir).filter((f) => f.startsWith('checkpoint-')).sort();

describe('gradient checkpointing in a run', () => {
  const flags = { 'max-steps': 4, 'save-steps': 2, 'learning-rate': 1e-2, seed: 3 };

  it('gives the same losses, grad norms and adapters as the plain backward', async () => {
    const plain = join(root, 'gc-off');
    const ck = join(root, 'gc-on');
    await train({ ...flags, 'output-dir': plain });
    await train({ ...flags, 'output-dir': ck, 'gradient-checkpointing': true });
    const [a, b] = [readJsonl(join(plain, 'metrics.jsonl')), readJsonl(join(ck, 'metrics.jsonl'))];
    expect(b.map((l) => l.step)).toEqual([1, 2, 3, 4]);
    a.forEach((l, i) => {
      expect(Math.abs(b[i].loss - l.loss), `loss at step ${l.step}`).toBeLessThan(1e-5);
      expect(Math.abs(b[i].grad_norm - l.grad_norm), `grad_norm at step ${l.step}`).toBeLessThan(1e-5 * Math.max(1, l.grad_norm));
    });
    const d = adapterDiff(readTensors(join(plain, 'adapter_model.safetensors')), readTensors(join(ck, 'adapter_model.safetensors')));
    expect(d, `adapter max diff ${d}`).toBeLessThan(1e-5);
  });

  it('resumes exactly: 2 steps + resume + 2 steps equals 4 straight, byte for byte', async () => {
    const straight = join(root, 'gc-straight');
    const resumed = join(root, 'gc-resumed');
    const on = { ...flags, 'gradient-checkpointing': true };
    await train({ ...on, 'output-dir': straight });
    expect(await train({ ...on, 'output-dir': resumed }, { stopAfterSteps: 2 })).toMatchObject({ steps: 2, interrupted: true });
    expect(await train({ ...on, 'output-dir': resumed }, { resume: 'latest' })).toMatchObject({ steps: 4, interrupted: false });
    for (const f of ['adapter_model.safetensors', 'metrics.jsonl', join('checkpoint-4', 'optimizer.safetensors')]) {
      expect(runBytes(resumed, f).equals(runBytes(straight, f)), f).toBe(true);
    }
  });
});

describe('checkpoints and schedules', () => {
  it('save_total_limit keeps only the newest checkpoints', async () => {
    const out = join(root, 'limit');
    await train({ 'output-dir': out, 'max-steps': 5, 'save-steps': 1, 'save-total-limit': 2 });
    expect(checkpoints(out)).toEqual(['checkpoint-4', 'checkpoint-5']);
    expect(existsSync(join(out, 'checkpoint-5', 'trainer_state.json'))).toBe(true);
  });

  it('warmup_ratio sets the warmup as a fraction of the steps (transformers rounds it up)', async () => {
    const out = join(root, 'warmup');
    const lr = 1e-3;
    await train({ 'output-dir': out, 'max-steps': 4, 'warmup-ratio': 0.5, 'learning-rate': lr, 'lr-scheduler': 'linear' });
    const got = readJsonl(join(out, 'metrics.jsonl')).map((l) => l.learning_rate);
    // ceil(4 * 0.5) = 2 warmup steps: 0, lr/2, then linear decay from lr over the 2 steps left.
    expect(got).toEqual([0, lr / 2, lr, lr / 2]);
    expect(got).toEqual([0, 1, 2, 3].map((s) => learningRateAt(s, lr, 'linear', 4, 2)));
  });

  it('SIGTERM finishes the step in progress, saves a checkpoint there, and the run resumes to the same end', async () => {
    const flags = { 'max-steps': 4, 'save-steps': 0, seed: 9 };
    const straight = join(root, 'term-straight');
    await train({ ...flags, 'output-dir': straight });
    const out = join(root, 'term');
    // The signal arrives while step 2 is being evaluated, that is, inside the loop between two steps.
    const res = await train({ ...flags, 'output-dir': out }, {
      evalAtSteps: [2],
      evaluate: async (_lora, step) => {
        process.emit('SIGTERM');
        return { 'pass@1': step };
      },
    });
    expect(res).toMatchObject({ steps: 2, interrupted: true });
    expect(checkpoints(out)).toEqual(['checkpoint-2']);
    expect(process.listenerCount('SIGTERM')).toBe(0); // the guard is removed with the run
    expect(await train({ ...flags, 'output-dir': out }, { resume: 'latest' })).toMatchObject({ steps: 4, interrupted: false });
    expect(readFileSync(join(out, 'adapter_model.safetensors')).equals(readFileSync(join(straight, 'adapter_model.safetensors')))).toBe(true);
  });
});

describe('difficulty orders inside a run', () => {
  it('tests: the pass-count gap orders the pairs, as difficulty.json records', async () => {
    const out = join(root, 'tests-diff');
    await train({ 'output-dir': out, curriculum: 'distance', difficulty: 'tests', 'max-steps': 4, 'stage-percentiles': '50' });
    const file = JSON.parse(readFileSync(join(out, 'difficulty.json'), 'utf8'));
    expect(file.name).toBe('tests');
    expect(file.difficulty).toEqual(testsDifficulties(readPairs(data), data));
    // Easiest first: the first epoch's pairs in pair_losses.jsonl come in non-decreasing difficulty.
    const order = readJsonl<{ index: number }>(join(out, 'pair_losses.jsonl')).map((p) => file.difficulty[p.index] as number);
    expect(order).toEqual([...order].sort((a, b) => a - b));
  });

  it('ast: the AST edit distance (in the sandbox) orders the pairs', async () => {
    const { PythonPool } = await import('../../src/python/index.js');
    const pool = await PythonPool.create({ workers: 1, timeoutMs: 30_000 });
    try {
      const out = join(root, 'ast-diff');
      await train({ 'output-dir': out, curriculum: 'distance', difficulty: 'ast', 'max-steps': 4, 'stage-percentiles': '50' }, { pythonRunner: pool });
      const file = JSON.parse(readFileSync(join(out, 'difficulty.json'), 'utf8'));
      expect(file.name).toBe('ast');
      expect(file.difficulty).toHaveLength(8);
      expect(file.difficulty.every((d: number) => Number.isFinite(d) && d >= 0)).toBe(true);
      const order = readJsonl<{ index: number }>(join(out, 'pair_losses.jsonl')).map((p) => file.difficulty[p.index] as number);
      expect(order).toEqual([...order].sort((a, b) => a - b));
    } finally {
      await pool.close();
    }
  });
});

describe('label smoothing', () => {
  it('is refused with ipo and hinge, which do not define it, naming the flag', () => {
    for (const loss of ['ipo', 'hinge']) {
      expect(() => resolveRunConfig({ loss, 'label-smoothing': 0.1 })).toThrow(new RegExp(`^--label-smoothing: 0\\.1 \\(expected 0 with --loss ${loss}\\)`));
    }
  });
});

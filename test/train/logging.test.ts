// Issue 12 items 8, 10 and 11, in-process: off a TTY the run prints one HF Trainer-style dict every --logging-steps
// (default 10, as TRL) with the TRL metrics, epoch, step, elapsed and ETA; metrics.jsonl still has every step;
// `done:` gives the total time, the final metrics and where each file is; the config is logged as a short diff from
// the defaults. (Before: nothing was printed between start and end off a TTY, and `done:` named two paths only.)
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { changedFlags, resolveRunConfig, shellWord } from '../../src/config/run.js';
import type { LoadedModel } from '../../src/io/model-dir.js';
import { formatLogLine } from '../../src/train/hooks.js';
import { runTraining } from '../../src/train/loop.js';
import { readJsonl, runConfig, tokenized, openTinyRun, closeTinyRun } from './helpers.js';

let root: string;
let model: LoadedModel;
let modelDir: string;
let data: string;

beforeAll(async () => ({ root, modelDir, model, data } = await openTinyRun('logging')));
afterAll(() => closeTinyRun({ root, model }));

async function run(flags: Record<string, unknown>): Promise<{ lines: string[]; out: string }> {
  const out = join(root, `run${Math.random().toString(36).slice(2, 8)}`);
  const cfg = runConfig({ model: modelDir, data, 'output-dir': out, ...flags });
  const lines: string[] = [];
  await runTraining(model, tokenized(model, data, cfg), data, cfg, { log: (l) => lines.push(l), resume: null });
  return { lines, out };
}

const dicts = (lines: string[]) => lines.filter((l) => l.startsWith('{'));

describe('training log lines (items 8, 10)', () => {
  it('one dict line every --logging-steps and at the end, with TRL metrics, epoch, step, elapsed, ETA', async () => {
    const { lines, out } = await run({ 'max-steps': 7, 'logging-steps': 3 });
    const d = dicts(lines);
    expect(d.length, lines.join('\n')).toBe(3);
    expect(d.map((l) => /'step': (\d+)/.exec(l)![1])).toEqual(['3', '6', '7']);
    for (const l of d) {
      for (const k of ['loss', 'rewards/chosen', 'rewards/rejected', 'rewards/accuracies', 'rewards/margins', 'logps/chosen', 'logps/rejected', 'grad_norm', 'learning_rate', 'epoch', 'step']) {
        expect(l).toMatch(new RegExp(`'${k.replace('/', '\\/')}': -?[\\d.e+-]+`));
      }
      expect(l).toMatch(/'elapsed': '\d+s', 'eta': '(\d+s|\?)'\}$/);
    }
    expect(d[1]).toMatch(/'epoch': 1\.5,/); // 4 steps per epoch (8 pairs, batch 2)
    expect(d[2]).toMatch(/'eta': '0s'/);
    // metrics.jsonl keeps every step; the checkpoint's log_history has the logged ones.
    expect(readJsonl(join(out, 'metrics.jsonl')).map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    const state = JSON.parse(readFileSync(join(out, 'checkpoint-7', 'trainer_state.json'), 'utf8'));
    expect(state.log_history.map((m: { step: number }) => m.step)).toEqual([3, 6, 7]);
  });

  it('--logging-steps defaults to 10 (TRL)', async () => {
    expect(resolveRunConfig({}).loggingSteps).toBe(10);
    const { lines } = await run({ 'max-steps': 12 });
    expect(dicts(lines).map((l) => /'step': (\d+)/.exec(l)![1])).toEqual(['10', '12']);
  });

  it('done: total time, final metrics, and where the adapter, checkpoint, metrics and config are', async () => {
    const { lines, out } = await run({ 'max-steps': 2 });
    const done = lines.find((l) => l.startsWith('done:'))!;
    expect(done).toMatch(/^done: 2 steps in \d+s; final loss \d\.\d{4}, rewards\/chosen .*grad_norm \d/);
    for (const f of ['adapter_model.safetensors', 'checkpoint-2', 'metrics.jsonl', 'run_config.json']) expect(done).toContain(join(out, f));
  });

  it('formatLogLine prints a Python-style dict as HF Trainer does', () => {
    expect(formatLogLine({ loss: 0.693147, learning_rate: 5e-6, epoch: 0.5, step: 10, eta: '3s' })).toBe("{'loss': 0.69315, 'learning_rate': 5e-6, 'epoch': 0.5, 'step': 10, 'eta': '3s'}");
  });
});

describe('config printed as a short diff (item 11)', () => {
  it('changedFlags lists only what differs from the defaults, as flags, shell-quoted', () => {
    expect(changedFlags(resolveRunConfig({}))).toEqual([]);
    expect(changedFlags(resolveRunConfig({ 'batch-size': 2, model: '/m m', 'use-rslora': true, 'lora-r': 8 }))).toEqual(['--model', "'/m m'", '--lora-r', '8', '--use-rslora', '--batch-size', '2']);
    expect(shellWord("it's")).toBe(`'it'\\''s'`);
  });
});

// Issue 12 items 12 and 13. In-process: a finished (or stopped) run continued with a larger --max-steps or --epochs is
// byte-identical to a run asked for the larger budget from the start when the schedule allows (constant), and refused
// with a hint when it does not (linear decay). As a process: SIGINT prints a complete, copy-pasteable command, and
// `--resume latest --output-dir X` alone (the rest from the run folder) finishes the run as an uninterrupted one.
// (Before: the continued run was refused as "maxSteps: 6 -> 10", and --resume without --model/--data stopped at
// "--model: not set"; the printed command read "<same flags>".)
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveRunConfig } from '../../src/config/run.js';
import type { LoadedModel } from '../../src/io/model-dir.js';
import { storedRunConfig } from '../../src/pipeline/train.js';
import { runTraining } from '../../src/train/loop.js';
import { InputError, MismatchError } from '../../src/util/errors.js';
import { readJsonl, ROOT, runConfig, spawnTrain, tokenized, waitFor, openTinyRun, closeTinyRun, runBytes } from './helpers.js';

let root: string;
let modelDir: string;
let model: LoadedModel;
let data: string;

beforeAll(async () => ({ root, modelDir, model, data } = await openTinyRun('continue')));
afterAll(() => closeTinyRun({ root, model }));

async function train(flags: Record<string, unknown>, opts: { resume?: string; stopAfterSteps?: number; log?: (l: string) => void } = {}) {
  const cfg = runConfig({ model: modelDir, data, 'lora-dropout': 0.1, 'learning-rate': 1e-3, ...flags });
  return runTraining(model, tokenized(model, data, cfg), data, cfg, { log: opts.log ?? (() => {}), resume: opts.resume ?? null, stopAfterSteps: opts.stopAfterSteps });
}

const same = (a: string, b: string, f: string) => expect(runBytes(a, f).equals(runBytes(b, f)), f).toBe(true);

describe('continue a run with a larger budget (item 13)', () => {
  it('constant schedule: finished at 6, continued to 10, equals a 10-step run byte for byte; epochs too', async () => {
    const straight = join(root, 'straight');
    await train({ 'output-dir': straight, 'max-steps': 10, 'lr-scheduler': 'constant', 'save-steps': 5 });
    const cont = join(root, 'cont');
    const first = await train({ 'output-dir': cont, 'max-steps': 6, 'lr-scheduler': 'constant', 'save-steps': 5 });
    expect(first.interrupted).toBe(false);
    const lines: string[] = [];
    const res = await train({ 'output-dir': cont, 'max-steps': 10, 'lr-scheduler': 'constant', 'save-steps': 5 }, { resume: 'latest', log: (l) => lines.push(l) });
    expect(res.steps).toBe(10);
    expect(lines.join('\n')).toMatch(/continuing from step 6: budget 6 -> 10 steps/);
    for (const f of ['adapter_model.safetensors', 'checkpoint-10/adapter_model.safetensors', 'checkpoint-10/optimizer.safetensors', 'metrics.jsonl']) same(cont, straight, f);

    // --epochs: 4 pairs/step over 8 pairs is 2 steps per epoch; a stopped 1-epoch run continued to 3 epochs.
    const e3 = join(root, 'e3');
    await train({ 'output-dir': e3, epochs: 3, 'lr-scheduler': 'constant', 'batch-size': 4 });
    const e1 = join(root, 'e1');
    await train({ 'output-dir': e1, epochs: 1, 'lr-scheduler': 'constant', 'batch-size': 4 }, { stopAfterSteps: 1 });
    await train({ 'output-dir': e1, epochs: 3, 'lr-scheduler': 'constant', 'batch-size': 4 }, { resume: 'latest' });
    for (const f of ['adapter_model.safetensors', 'metrics.jsonl']) same(e1, e3, f);
  });

  it('linear decay: refused, saying why and asking for --lr-scheduler constant or a new run; constant then continues', async () => {
    const out = join(root, 'linear');
    await train({ 'output-dir': out, 'max-steps': 4 });
    const again = () => train({ 'output-dir': out, 'max-steps': 8 }, { resume: 'latest' });
    await expect(again()).rejects.toThrow(MismatchError);
    await expect(again()).rejects.toThrow(/linear schedule over 4 steps gave step 2 the learning rate .* one over 8 steps gives .*--lr-scheduler constant, or start a new run/);
    const lines: string[] = [];
    const res = await train({ 'output-dir': out, 'max-steps': 8, 'lr-scheduler': 'constant' }, { resume: 'latest', log: (l) => lines.push(l) });
    expect(res.steps).toBe(8);
    expect(lines.join('\n')).toMatch(/continuing linear run at step 4 with a constant learning rate/);
    expect(readJsonl(join(out, 'metrics.jsonl')).slice(4).map((m) => m.learning_rate)).toEqual([1e-3, 1e-3, 1e-3, 1e-3]);
    // A smaller budget than the steps taken is refused.
    await expect(train({ 'output-dir': out, 'max-steps': 2, 'lr-scheduler': 'constant' }, { resume: 'latest' })).rejects.toThrow(/already at step 8/);
  });
});

describe('--resume takes the rest from the run folder (item 12)', () => {
  it('storedRunConfig: the checkpoint config, flags over it; latest needs the run folder', async () => {
    const out = join(root, 'stored');
    await train({ 'output-dir': out, 'max-steps': 2, beta: 0.3 });
    const base = storedRunConfig('latest', out);
    const cfg = resolveRunConfig({ 'max-steps': 5 }, undefined, base);
    expect([cfg.model, cfg.data, cfg.beta, cfg.maxSteps, cfg.backend, cfg.outputDir]).toEqual([modelDir, data, 0.3, 5, 'cpu', out]);
    // The run folder itself, or a checkpoint in it, works without --output-dir.
    expect(resolveRunConfig({}, undefined, storedRunConfig(out, null)).outputDir).toBe(out);
    expect(resolveRunConfig({}, undefined, storedRunConfig(join(out, 'checkpoint-2'), null)).beta).toBe(0.3);
    expect(() => storedRunConfig('latest', null)).toThrow(InputError);
    expect(() => storedRunConfig('latest', null)).toThrow(/--resume latest: no run folder given \(expected --output-dir DIR/);
  });

  it('after SIGINT the printed command, run as printed in a shell, finishes the run like an uninterrupted one', async () => {
    if (!existsSync(join(ROOT, 'dist', 'src', 'cli', 'main.js'))) throw new Error('dist/ is missing: run `npx tsc -p tsconfig.json` (npm test does) first');
    const flags = (out: string) => ['train', '--model', modelDir, '--data', data, '--output-dir', out, '--backend', 'cpu', '--max-length', '64', '--max-prompt-length', '32',
      '--batch-size', '2', '--lora_r', '4', '--learning_rate', '1e-3', '--seed', '5', '--curriculum', 'shuffle', '--max-steps', '60', '--save-steps', '0'];
    const out = join(root, 'sig it'); // a space: the printed command must quote it
    const child = spawnTrain(flags(out));
    await waitFor(() => existsSync(join(out, 'metrics.jsonl')) && readFileSync(join(out, 'metrics.jsonl'), 'utf8').length > 0, 90_000, 'step 1');
    child.kill('SIGINT');
    const ended = await child.exited;
    const err = child.stderr();
    expect(ended.code, err).toBe(130);
    const m = /Resume with:\n {2}(node train\.js train .*)\n/.exec(err);
    expect(m, err).not.toBeNull();
    expect(m![1]).toBe(`node train.js train --resume latest --output-dir '${out}'`);
    const r = spawnSync('sh', ['-c', m![1].replace(/^node /, `'${process.execPath}' `)], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, CI: 'true' } });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/resuming from .*checkpoint-\d+ at step \d+/);
    expect(r.stderr).toMatch(/done: 60 steps/);
    // No tfjs banner, and the sandbox-free run prints the config as a short diff, not the whole object (item 11).
    for (const e of [err, r.stderr]) expect(e).not.toMatch(/looks like you are running TensorFlow/);
    expect(err).toMatch(/config: --model .* --lora-r 4 .*; the whole of it in .*run_config.json/);
    expect(err).not.toMatch(/"adamBeta1"/);
    const straight = join(root, 'sig-straight');
    const s = spawnSync(process.execPath, ['train.js', ...flags(straight)], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, CI: 'true' } });
    expect(s.status, s.stderr).toBe(0);
    for (const f of ['adapter_model.safetensors', 'metrics.jsonl']) same(out, straight, f);
  }, 120_000);
});

// --logging-steps N > 1 (issue 13 item 7): the logged lines (trainer_state.json's log_history) are the means of the
// window's metrics.jsonl lines, as HF Trainer averages the loss and TRL its metric lists on log(); step-level keys are
// the last step's; num_tokens counts every real token since step 0; each metrics.jsonl line carries a timestamp.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runTraining } from '../../src/train/loop.js';
import { windowMean } from '../../src/train/hooks.js';
import { closeTinyRun, openTinyRun, readJsonl, runConfig, tokenized, type TinyRun } from './helpers.js';

let run: TinyRun;
beforeAll(async () => {
  run = await openTinyRun('logwin', 8);
});
afterAll(() => closeTinyRun(run));

describe('logging windows', () => {
  it('7 steps, --logging-steps 3: log_history = means of steps 1-3, 4-6 and 7; num_tokens cumulative; timestamps', async () => {
    const out = join(run.root, 'w');
    const cfg = runConfig({ 'output-dir': out, 'max-steps': 7, 'logging-steps': 3, 'lora-dropout': 0.05, 'learning-rate': 5e-3 });
    const records = tokenized(run.model, run.data, cfg);
    const t0 = Date.now() / 1000;
    await runTraining(run.model, records, run.data, cfg, { log: () => {} });
    const lines = readJsonl(join(out, 'metrics.jsonl'));
    expect(lines.map((l) => l.step)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    for (const [i, l] of lines.entries()) {
      expect(l.timestamp).toBeGreaterThanOrEqual(Math.floor(t0));
      if (i > 0) expect(l.timestamp).toBeGreaterThanOrEqual(lines[i - 1].timestamp);
      for (const k of ['logits/chosen', 'logits/rejected', 'mean_token_accuracy', 'num_tokens']) expect(Number.isFinite(l[k]), k).toBe(true);
    }
    // num_tokens: the running sum of each step's real tokens (2 x prompt + chosen + rejected per pair, TRL's
    // attention_mask.sum()), here recomputed from the step sizes: 8 pairs, batch 2, so 4 steps per epoch.
    const perPair = records.map((r) => 2 * r.promptIds.length + r.chosenIds.length + r.rejectedIds.length);
    const total = perPair.reduce((a, b) => a + b, 0);
    expect(lines[3].num_tokens).toBe(total); // after one epoch every pair was seen once
    const state = JSON.parse(readFileSync(join(out, 'checkpoint-7', 'trainer_state.json'), 'utf8')) as { log_history: Record<string, number>[] };
    const w1 = windowMean(lines.slice(0, 3).map(({ timestamp: _t, ...l }) => l));
    const w2 = windowMean(lines.slice(3, 6).map(({ timestamp: _t, ...l }) => l));
    const w3 = windowMean(lines.slice(6).map(({ timestamp: _t, ...l }) => l));
    const logged = state.log_history.filter((h) => 'loss' in h);
    expect(logged.map((h) => h.step)).toEqual([3, 6, 7]);
    for (const [h, want] of [[logged[0], w1], [logged[1], w2], [logged[2], w3]] as const) {
      for (const [k, v] of Object.entries(want)) expect(h[k], `step ${h.step} ${k}`).toBeCloseTo(v as number, 10);
      expect('timestamp' in h).toBe(false);
    }
    // The window mean really averages: the loss logged at step 3 is the mean of three different per-step losses.
    expect(logged[0].loss).toBeCloseTo((lines[0].loss + lines[1].loss + lines[2].loss) / 3, 12);
    expect(logged[0].grad_norm).toBe(lines[2].grad_norm);
  });
});

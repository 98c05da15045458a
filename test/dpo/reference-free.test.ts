// --reference-free (TRL's reference_free): the loss sees reference log-probs of 0, so each reward is beta times the
// policy's own log-prob and the step-1 loss is -log sigmoid(beta * (logp_chosen - logp_rejected)), per pair, from the
// logged policy log-probs. The reference-based run of the same data differs (its rewards start at 0).
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LoadedModel } from '../../src/io/model-dir.js';
import { runTraining } from '../../src/train/loop.js';
import { closeTinyRun, openTinyRun, readJsonl, runConfig, tokenized } from '../train/helpers.js';

let root: string;
let model: LoadedModel;
let modelDir: string;
let data: string;
beforeAll(async () => ({ root, modelDir, model, data } = await openTinyRun('reference-free', 4)));
afterAll(() => closeTinyRun({ root, model }));

async function train(out: string, flags: Record<string, unknown>) {
  const cfg = runConfig({ model: relative(process.cwd(), modelDir), data, 'output-dir': out, 'max-steps': 2, 'logging-steps': 1,
    'batch-size': 1, 'lora-dropout': 0, beta: 0.5, 'ref-mode': 'online', seed: 3, ...flags });
  await runTraining(model, tokenized(model, data, cfg), data, cfg, { log: () => {}, resume: null });
  return readJsonl(join(out, 'metrics.jsonl'));
}

describe('--reference-free', () => {
  it('rewards are beta x the policy log-probs and the loss is -log sigmoid of their difference', async () => {
    const free = await train(join(root, 'free'), { 'reference-free': true });
    for (const m of free) {
      const pc = m['logps/chosen'] as number, pr = m['logps/rejected'] as number;
      expect(m['rewards/chosen']).toBeCloseTo(0.5 * pc, 4);
      expect(m['rewards/rejected']).toBeCloseTo(0.5 * pr, 4);
      // one pair per step: the loss is that pair's, in float64 from the logged values
      expect(m.loss).toBeCloseTo(Math.log1p(Math.exp(-0.5 * (pc - pr))), 4);
    }
    const withRef = await train(join(root, 'ref'), {});
    expect(withRef[0]!['rewards/chosen']).toBeCloseTo(0, 6); // policy = reference at step 1 (LoRA B = 0)
    expect(Math.abs(free[0]!['rewards/chosen'] as number)).toBeGreaterThan(1);
  });
});

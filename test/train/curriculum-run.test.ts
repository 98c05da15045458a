// The curriculum inside real runs: resume mid-stage is byte-identical to a straight run, stage-end evaluations land
// at the steps the plan predicts, pruning drops the counted pairs, and difficulty.json matches the reference pass.
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel, type LoadedModel } from '../../src/io/model-dir.js';
import { readPairs } from '../../src/data/pairs.js';
import { runTraining } from '../../src/train/loop.js';
import { epochSchedule } from '../../src/curriculum/order.js';
import { pairDistance } from '../../src/curriculum/difficulty.js';
import { writeFileSync } from 'node:fs';
import { MismatchError } from '../../src/util/errors.js';
import { tempDir, tinyModelDir, pairsFile, runConfig, tokenized, readJsonl, runBytes } from './helpers.js';

const quiet = () => {};
let root: string;
let model: LoadedModel;
let data: string;

beforeAll(async () => {
  await tf.setBackend('cpu');
  root = tempDir('curr');
  model = await loadModel(await tinyModelDir(root));
  data = pairsFile(root, 12);
});

async function train(flags: Record<string, unknown>, opts: { resume?: string; stopAfterSteps?: number; evaluate?: boolean } = {}) {
  const cfg = runConfig({ model: model.dir, data, curriculum: 'stages', 'lora-dropout': 0.1, 'max-steps': 6, ...flags });
  const evals: number[] = [];
  const res = await runTraining(model, tokenized(model, data, cfg), data, cfg, {
    log: quiet, sources: readPairs(data), resume: opts.resume ?? null, stopAfterSteps: opts.stopAfterSteps,
    evaluate: opts.evaluate ? async (_l, step) => (evals.push(step), { 'pass@1': step / 100 }) : undefined,
  });
  return { res, evals, cfg };
}

describe('curriculum runs', () => {
  it('resume mid-stage (stages curriculum) is byte-identical to a straight run', async () => {
    const straight = join(root, 'straight');
    const resumed = join(root, 'resumed');
    await train({ 'output-dir': straight });
    await train({ 'output-dir': resumed }, { stopAfterSteps: 2 });
    await train({ 'output-dir': resumed }, { resume: 'latest' });
    for (const f of ['adapter_model.safetensors', 'metrics.jsonl', 'pair_losses.jsonl', 'difficulty.json', join('checkpoint-6', 'optimizer.safetensors')]) {
      expect(runBytes(resumed, f).equals(runBytes(straight, f)), f).toBe(true);
    }
  });

  it('stage evaluations land at the stage ends the plan predicts, plus step 0 and the last step', async () => {
    const out = join(root, 'evals');
    const { evals, cfg } = await train({ 'output-dir': out, 'max-steps': -1, epochs: 1 }, { evaluate: true });
    const diff = JSON.parse(readFileSync(join(out, 'difficulty.json'), 'utf8')).difficulty as number[];
    const sched = epochSchedule(diff.length, { name: 'stages', difficulty: diff, stagePercentiles: [10, 50, 90] }, cfg.seed, 0);
    // Step s (1-based) trains order positions [(s-1)*B, s*B); a stage ends with the step holding its last pair.
    const ends = sched.ends.filter((e, k) => sched.sizes[k] > 0).map((e) => Math.ceil(e / cfg.batchSize));
    expect(evals).toEqual([...new Set([0, ...ends, Math.ceil(diff.length / cfg.batchSize)])].sort((a, b) => a - b));
    const lines = readJsonl<{ step: number; stage: number | null; 'pass@1': number }>(join(out, 'eval.jsonl'));
    expect(lines.map((l) => l.step)).toEqual(evals);
    expect(lines[0].stage).toBeNull();
  });

  it('difficulty.json holds |per-token distance| under the reference model, and pruning drops the counted tails', async () => {
    const out = join(root, 'pruned');
    await train({ 'output-dir': out, 'prune-below': 10, 'prune-above': 90 });
    const ref = JSON.parse(readFileSync(join(out, 'ref_logps.json'), 'utf8'));
    const all = ref.chosen.map((c: number, i: number) => Math.abs(pairDistance(c, ref.chosen_tokens[i], ref.rejected[i], ref.rejected_tokens[i])));
    const diff = JSON.parse(readFileSync(join(out, 'difficulty.json'), 'utf8')).difficulty as (number | null)[];
    // 12 pairs: ranks 0, 9.09, ..., 100; below 10 drops rank 0 and 9.09, above 90 drops 90.9 and 100.
    expect(diff.filter((d) => d === null)).toHaveLength(4);
    diff.forEach((d, i) => { if (d !== null) expect(d).toBeCloseTo(all[i], 12); });
    const sorted = [...all].sort((a, b) => a - b);
    for (const dropped of [sorted[0], sorted[1], sorted[10], sorted[11]]) expect(diff).not.toContain(dropped);
    const pairs = readJsonl<{ index: number; step: number }>(join(out, 'pair_losses.jsonl'));
    expect(new Set(pairs.map((p) => p.index)).size).toBe(8);
    expect(readdirSync(out)).toContain('checkpoint-6');
  });

  it('a fresh run never overwrites a run folder that holds checkpoints', async () => {
    const out = join(root, 'twice');
    await train({ 'output-dir': out, 'max-steps': 2, 'save-steps': 1 });
    const before = readFileSync(join(out, 'metrics.jsonl'));
    await expect(train({ 'output-dir': out, 'max-steps': 2 })).rejects.toThrow(MismatchError);
    await expect(train({ 'output-dir': out, 'max-steps': 2 })).rejects.toThrow(/--resume latest/);
    expect(readFileSync(join(out, 'metrics.jsonl')).equals(before)).toBe(true);
  });

  it('--scores: a score file of other pairs is refused by line, and the right one replaces the reference pass', async () => {
    const recs = readPairs(data);
    // Scores written by hand in the `score` layout (token counts as this run tokenizes): the ref cache then holds
    // exactly these numbers.
    const toks = tokenized(model, data, runConfig({ model: model.dir, data }));
    const lines = recs.map((r, i) => JSON.stringify({ ...r.raw, chosen_logp: -10 - i, rejected_logp: -20, chosen_tokens: toks[i].chosenIds.length,
      rejected_tokens: toks[i].rejectedIds.length, distance: 0, percentile: 0 }));
    const good = join(root, 'scores.jsonl');
    writeFileSync(good, lines.join('\n') + '\n');
    const out = join(root, 'scored');
    await train({ 'output-dir': out, scores: good, 'max-steps': 1 });
    const ref = JSON.parse(readFileSync(join(out, 'ref_logps.json'), 'utf8'));
    expect(ref.chosen).toEqual(recs.map((_, i) => -10 - i));
    const swapped = join(root, 'swapped.jsonl');
    writeFileSync(swapped, [lines[1], lines[0], ...lines.slice(2)].join('\n') + '\n');
    await expect(train({ 'output-dir': join(root, 'swapped'), scores: swapped, 'max-steps': 1 })).rejects.toThrow(/swapped\.jsonl:1: "prompt" differs/);
    // Scores of another tokenization (one more chosen token, as the old double <|eot_id|>) are refused, not reused.
    const stale = join(root, 'stale.jsonl');
    writeFileSync(stale, lines.map((l) => JSON.stringify({ ...JSON.parse(l), chosen_tokens: JSON.parse(l).chosen_tokens + 1 })).join('\n') + '\n');
    await expect(train({ 'output-dir': join(root, 'stale'), scores: stale, 'max-steps': 1 })).rejects.toThrow(/stale\.jsonl:1: chosen_tokens \d+, rejected_tokens \d+ \(expected \d+ and \d+, as this run tokenizes kept pair 1\)/);
  });
});

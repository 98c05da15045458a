// stepGradients against float64 central finite differences (scripts/reference/dpo_ref.py -> test/fixtures/dpo/grad.json):
// every LoRA A and B value, non-zero B, four loss settings, one batch or accumulated micro-batches; and a flat
// tf.memory() tensor count over 20 steps of stepGradients + adamwStep with dropout on.
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LlamaConfig } from '../../src/config/llama.js';
import type { LossType } from '../../src/dpo/losses.js';
import type { Weights } from '../../src/model/llama.js';
import { disposeLora, loraFromTensors, loraTensors, type Lora, type LoraConfig } from '../../src/model/lora.js';
import type { TokenizedPair } from '../../src/tokenizer/pair.js';
import { adamwStep, createAdamWState, disposeAdamWState } from '../../src/train/optimizer.js';
import type { MicroBatch, RefProvider } from '../../src/dpo/objective.js';
import { disposeStats, stepGradients } from '../../src/train/dpo-step.js';
import { Rng } from '../../src/util/rng.js';
import { disposeWeights, loadModel, readFixture, unpack, type ModelFixture, type Packed } from '../model/fixture.js';
import { maxAbsDiff } from './helpers.js';

interface GradCase {
  /** One TRL 1.x loss name or a comma list, weighted by loss_weights. */
  loss_type: string;
  loss_weights: number[];
  beta: number;
  label_smoothing: number;
  loss: number;
  losses: number[];
  chosen_rewards: number[];
  rejected_rewards: number[];
  grads: Record<string, number[]>;
}

interface GradFixture {
  lora: { r: number; lora_alpha: number; lora_dropout: number; use_rslora: boolean; target_modules: string[]; tensors: Record<string, Packed> };
  pairs: { prompt: number[]; chosen: number[]; rejected: number[] }[];
  policy_logps: number[];
  ref_logps: number[];
  cases: GradCase[];
}

let cfg: LlamaConfig;
let w: Weights;
let fx: GradFixture;
let lc: LoraConfig;
let values: Record<string, Float32Array>;
let pairs: TokenizedPair[];

beforeAll(async () => {
  await tf.setBackend('cpu');
  ({ cfg, w } = loadModel(readFixture<ModelFixture>('base.json')));
  fx = JSON.parse(readFileSync(fileURLToPath(new URL('../fixtures/dpo/grad.json', import.meta.url)), 'utf8')) as GradFixture;
  const l = fx.lora;
  lc = { r: l.r, alpha: l.lora_alpha, dropout: l.lora_dropout, targets: l.target_modules, useRslora: l.use_rslora };
  values = Object.fromEntries(Object.entries(l.tensors).map(([k, p]) => [k, unpack(p)]));
  pairs = fx.pairs.map((p) => ({ promptIds: p.prompt, chosenIds: p.chosen, rejectedIds: p.rejected, truncated: false }));
});

afterAll(() => disposeWeights(w));

const P = 4;
/** The float64 reference log-probs of the bare base model, looked up by position (what the cache provides). */
const ref: RefProvider = (_pairs, positions) => ({
  chosen: Float32Array.from(positions, (p) => fx.ref_logps[p]),
  rejected: Float32Array.from(positions, (p) => fx.ref_logps[P + p]),
});

function micro(groups: number[][]): MicroBatch[] {
  return groups.map((g) => ({ positions: g, pairs: g.map((i) => pairs[i]) }));
}

/** |got - want| <= rel * |want| + abs everywhere; prints the worst coordinate on failure. */
function expectGradClose(got: Float32Array, want: number[], rel: number, abs: number, what: string): void {
  let worst = -Infinity;
  let at = 0;
  for (let i = 0; i < want.length; i++) {
    const excess = Math.abs(got[i] - want[i]) - (rel * Math.abs(want[i]) + abs);
    if (excess > worst) [worst, at] = [excess, i];
  }
  if (worst > 0) console.log(`${what}: worst at ${at}: got ${got[at]}, FD ${want[at]} (max diff ${maxAbsDiff(got, want)})`);
  expect(worst).toBeLessThanOrEqual(0);
}

function gradsOf(lora: Lora, groups: number[][], c: GradCase): { grads: Map<string, Float32Array>; losses: Float32Array; rc: Float32Array; rr: Float32Array; pc: Float32Array } {
  const loss = c.loss_type.split(',').map((type, i) => ({ type: type as LossType, weight: c.loss_weights[i] }));
  const { grads, stats } = stepGradients(cfg, w, lora, micro(groups), ref, { loss, beta: c.beta, labelSmoothing: c.label_smoothing }, 0, new Rng(1));
  const out = new Map([...grads].map(([k, g]) => [k, g.dataSync() as Float32Array]));
  const r = { grads: out, losses: stats.losses.dataSync() as Float32Array, rc: stats.chosenRewards.dataSync() as Float32Array,
    rr: stats.rejectedRewards.dataSync() as Float32Array, pc: stats.policyChosen.dataSync() as Float32Array };
  tf.dispose([...grads.values()]);
  disposeStats(stats);
  return r;
}

describe('stepGradients vs float64 central finite differences', () => {
  it('fixture sanity: non-zero B, and the policy log-probs match the reference forward', () => {
    const lora = loraFromTensors(cfg, lc, values);
    try {
      const b = Object.entries(values).filter(([k]) => k.endsWith('lora_B'));
      expect(b.length).toBe(6);
      for (const [, v] of b) expect(Math.max(...Array.from(v, Math.abs))).toBeGreaterThan(0.1);
      const { pc } = gradsOf(lora, [[0, 1, 2, 3]], fx.cases[0]);
      expect(maxAbsDiff(pc, fx.policy_logps.slice(0, P))).toBeLessThan(1e-3);
    } finally {
      disposeLora(lora);
    }
  });

  it('the fixture has the TRL 1.x cases (sigmoid, cdpo, ipo, hinge, robust, sigmoid_norm, sigmoid+sft)', () => {
    expect(fx.cases.map((c) => c.loss_type)).toEqual(['sigmoid', 'cdpo', 'ipo', 'hinge', 'robust', 'sigmoid_norm', 'sigmoid,sft']);
  });

  for (let ci = 0; ci < 7; ci++) {
    it(`case ${ci}: loss, rewards and every A/B gradient; 1 x 4 = 2 x 2 = 4 x 1 micro-batches`, () => {
      const c = fx.cases[ci];
      const name = `${c.loss_type} (eps ${c.label_smoothing})`;
      const lora = loraFromTensors(cfg, lc, values);
      try {
        const one = gradsOf(lora, [[0, 1, 2, 3]], c);
        expect(Math.abs(one.losses.reduce((a, b) => a + b, 0) / P - c.loss)).toBeLessThan(1e-4 * Math.max(1, Math.abs(c.loss)));
        expect(maxAbsDiff(one.losses, c.losses)).toBeLessThan(2e-4);
        expect(maxAbsDiff(one.rc, c.chosen_rewards)).toBeLessThan(2e-4);
        expect(maxAbsDiff(one.rr, c.rejected_rewards)).toBeLessThan(2e-4);
        expect([...one.grads.keys()].sort()).toEqual(Object.keys(c.grads).sort());
        const gmax = Math.max(...Object.values(c.grads).map((g) => Math.max(...g.map(Math.abs))));
        let compared = 0;
        for (const [k, want] of Object.entries(c.grads)) {
          expectGradClose(one.grads.get(k)!, want, 1e-4, 1e-5 * gmax, `${name} ${k}`);
          compared += want.length;
        }
        expect(compared).toBe(768);
        // Accumulation: each micro-batch's mean is weighted by its share of the step's pairs.
        for (const groups of [[[0, 1], [2, 3]], [[0], [1], [2], [3]]]) {
          const acc = gradsOf(lora, groups, c);
          for (const [k, g] of one.grads) {
            const d = maxAbsDiff(acc.grads.get(k)!, g);
            if (d > 2e-6 * gmax) console.log(`${name} ${JSON.stringify(groups)} ${k}: max diff ${d}`);
            expect(d).toBeLessThan(2e-6 * gmax);
          }
          expect(maxAbsDiff(acc.losses, one.losses)).toBeLessThan(1e-5);
        }
      } finally {
        disposeLora(lora);
      }
    });
  }
});

describe('memory', () => {
  it('tf.memory().numTensors is flat over 20 steps of stepGradients + adamwStep (dropout on, 2 micro-batches)', () => {
    const lora = loraFromTensors(cfg, { ...lc, dropout: 0.1 }, values);
    const vars = new Map(Object.entries(loraTensors(lora)));
    const opt = createAdamWState(vars);
    const rng = new Rng(5);
    const start = tf.memory().numTensors;
    const counts: number[] = [];
    for (let i = 0; i < 20; i++) {
      const { grads, stats } = stepGradients(cfg, w, lora, micro([[i % 4, (i + 1) % 4], [(i + 2) % 4]]), ref, { loss: 'sigmoid', beta: 0.5, labelSmoothing: 0 }, 0, rng);
      const norm = adamwStep(vars, grads, opt, 1e-3, 1.0, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 });
      tf.dispose([...grads.values(), norm]);
      disposeStats(stats);
      counts.push(tf.memory().numTensors);
    }
    if (new Set(counts).size !== 1) console.log(`numTensors per step: ${counts.join(' ')} (start ${start})`);
    expect(new Set(counts.slice(1)).size).toBe(1);
    expect(counts[19]).toBe(start);
    disposeAdamWState(opt);
    disposeLora(lora);
  });
});

// planMemory: the predicted peak within 20% of the measured one (distinct buffers during a real stepGradients +
// adamwStep) on the bench tiny and small presets, with and without checkpointing; the terms and the advice.
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useMatMul } from '../../src/backend/kernels.js';
import { LLAMA_31_8B, maxBatchSize, planMemory, runPlan, type PlanSettings } from '../../src/plan/memory.js';
import { BENCH, configOf, measureStep, type Shape } from './measure.js';

const QKVO = ['q_proj', 'k_proj', 'v_proj', 'o_proj'];
const GiB = 1024 ** 3;

/** The OpenBLAS BatchMatMul makes the small preset's steps ~12 s instead of ~90 s; memory is the same either way. */
let blas = false;

beforeAll(async () => {
  await tf.setBackend('cpu');
  try {
    useMatMul('cpu', 'blas');
    blas = true;
  } catch {
    blas = false;
  }
});

afterAll(() => {
  if (blas) useMatMul('cpu', 'stock');
});

function settings(s: Shape, checkpointing: boolean, targets = QKVO): PlanSettings {
  return { maxLength: s.seq, batchSize: s.pairs, gradientCheckpointing: checkpointing, loraR: s.r, loraTargets: targets, logprobChunk: 64, gpu: false, deviceBytes: null };
}

function expectWithin(s: Shape, name: string, checkpointing: boolean, targets = QKVO): void {
  const m = measureStep(s, targets, checkpointing);
  const p = planMemory(configOf(s), settings(s, checkpointing, targets));
  const ratio = p.peakBytes / m.peakBytes;
  console.log(`${name} checkpointing ${checkpointing ? 'on' : 'off'}: predicted ${(p.peakBytes / 2 ** 20).toFixed(2)} MiB, measured ${(m.peakBytes / 2 ** 20).toFixed(2)} MiB ` +
    `(distinct buffers; tf.memory().numBytes peak ${(m.numBytesPeak / 2 ** 20).toFixed(2)} MiB), ratio ${ratio.toFixed(3)}, step ${m.stepMs.toFixed(0)} ms`);
  expect(ratio).toBeGreaterThan(0.8);
  expect(ratio).toBeLessThan(1.2);
}

describe('planMemory against the measured peak', () => {
  it('tiny preset, checkpointing off and on', () => {
    expectWithin(BENCH.tiny, 'tiny', false);
    expectWithin(BENCH.tiny, 'tiny', true);
  });

  it('tiny preset with LoRA on every linear', () => {
    expectWithin(BENCH.tiny, 'tiny all-linear', false, [...QKVO, 'gate_proj', 'up_proj', 'down_proj']);
  });

  // ~13 s each with the BLAS matmul, ~90 s with the stock cpu kernel (then only with DPO_SLOW_TESTS=1).
  // Measured: predicted/measured 1.019 (off) and 1.065 (on).
  for (const checkpointing of [false, true]) {
    it(`small preset, checkpointing ${checkpointing ? 'on' : 'off'}`, (ctx) => {
      if (!blas && process.env.DPO_SLOW_TESTS !== '1') ctx.skip('no BLAS matmul here; DPO_SLOW_TESTS=1 runs it on the stock kernel (~90 s)');
      expectWithin(BENCH.small, 'small', checkpointing);
    }, 900_000);
  }
});

describe('planMemory terms and advice', () => {
  const base: PlanSettings = { maxLength: 1024, batchSize: 4, gradientCheckpointing: false, loraR: 16, loraTargets: QKVO, logprobChunk: 64, gpu: true, deviceBytes: 80 * GiB };

  it('counts float32 weights and LoRA + Adam exactly for Llama 3.1 8B', () => {
    const p = planMemory(LLAMA_31_8B, base);
    const term = (n: string) => p.terms.find((t) => t.name === n)!.bytes;
    expect(term('weights')).toBe(8_030_261_248 * 4);
    // r * (in + out) per module: q, o 4096+4096; k, v 4096+1024; 32 layers; value, grad, m, v.
    expect(term('lora + adam')).toBe(32 * 16 * (2 * 8192 + 2 * 5120) * 16);
    expect(p.peakBytes).toBe(p.terms.reduce((a, t) => a + t.bytes, 0));
  });

  it('checkpointing shrinks activations and the advice makes the run fit', () => {
    const off = planMemory(LLAMA_31_8B, base);
    const on = planMemory(LLAMA_31_8B, { ...base, gradientCheckpointing: true });
    expect(on.peakBytes).toBeLessThan(off.peakBytes / 5);
    expect(off.fits).toBe(false);
    expect(off.suggestions[0]).toBe('--gradient-checkpointing');
    expect(on.fits).toBe(true);
    const long = planMemory(LLAMA_31_8B, { ...base, maxLength: 2048 });
    expect(long.suggestions[0]).toMatch(/^--gradient-checkpointing --batch-size 2 --grad-accum 2/);
  });

  it('batch size that fits grows with device memory and shrinks with length', () => {
    const ck = { ...base, gradientCheckpointing: true };
    const at = (len: number, gib: number) => maxBatchSize(LLAMA_31_8B, { ...ck, maxLength: len, deviceBytes: gib * GiB });
    expect(at(1024, 141)).toBeGreaterThan(at(1024, 80));
    expect(at(2048, 80)).toBeLessThan(at(1024, 80));
    expect(at(2048, 80)).toBeGreaterThanOrEqual(1);
    expect(maxBatchSize(LLAMA_31_8B, { ...base, deviceBytes: 80 * GiB })).toBe(0);
  });

  it('says when nothing fits', () => {
    const p = planMemory(LLAMA_31_8B, { ...base, deviceBytes: 16 * GiB });
    expect(p.suggestions).toEqual([expect.stringMatching(/^nothing: the float32 weights alone need 29\.92 GiB/)]);
  });

  it('`plan` text for llama-3.1-8b lists every term and the verdict', () => {
    const { text } = runPlan({ model: 'llama-3.1-8b', maxLength: 2048, batchSize: 4, gradientCheckpointing: true, loraR: 16, loraTargets: QKVO, deviceMemoryGB: 141, gpu: true });
    for (const t of ['weights', 'lora + adam', 'activations', 'recompute', 'logits chunk', 'gpu runtime', 'peak', 'fits in 141.00 GiB: yes', 'largest --batch-size']) expect(text).toContain(t);
  });
});

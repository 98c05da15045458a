// One whole DPO optimizer step on the wasm backend (the bench-step shapes, scaled down): with the addon's kernels
// (registerFastKernels 'auto': BLAS matmul, the fused ops, the LoRA linear and AdamW of kernels/lora-linear.ts and
// adamw.ts) against DPO_KERNELS=reference, two steps from the same start: the LoRA weights after each step agree to
// float32 rounding, the fast step runs the fused LoRA and AdamW kernels, and no tensor leaks. With 1 and 2 threads, on
// shapes whose products native/blas/gemm.h cuts into blocks, the weights agree bit for bit. Skips without the addon.
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asFusedAddon } from '../../kernels/native.js';
import { hasAdamw } from '../../kernels/adamw.js';
import { loadBlasAddon } from '../../kernels/matmul-blas.js';
import { registerFastKernels, setKernelThreads, useFusedKernels } from '../../src/backend/kernels.js';
import type { LlamaConfig } from '../../src/config/llama.js';
import { batchSequenceLogprobs } from '../../src/dpo/logprobs.js';
import { collatePairs } from '../../src/data/batch.js';
import { expectedWeightShapes } from '../../src/model/llama.js';
import { ATTN_TARGETS, createLora, disposeLora, loraTensors } from '../../src/model/lora.js';
import { disposeStats, stepGradients } from '../../src/train/dpo-step.js';
import { adamwStep, createAdamWState, disposeAdamWState } from '../../src/train/optimizer.js';
import { Rng } from '../../src/util/rng.js';
import { sameBits } from '../kernels/fused-suite.js';

const require = createRequire(import.meta.url);
const has = hasAdamw(asFusedAddon(loadBlasAddon().addon));

const tiny: LlamaConfig = {
  vocabSize: 64, hiddenSize: 32, intermediateSize: 88, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 8,
  rmsNormEps: 1e-5, ropeTheta: 500000, ropeScaling: null, maxPositionEmbeddings: 64, tieWordEmbeddings: false,
  attentionBias: false, mlpBias: false, bosTokenId: 0, eosTokenIds: [1], torchDtype: 'float32',
};

beforeAll(async () => {
  tf.env().set('PROD', true);
  setWasmPaths(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm')) + '/');
  await tf.setBackend('wasm');
  await tf.ready();
});

afterAll(async () => {
  useFusedKernels('wasm', false);
  await tf.setBackend('cpu');
});

/** Two DPO steps (clipping at 1) from a seeded start; the LoRA weights after each, and the kernels the 2nd ran. */
async function twoSteps(cfg: LlamaConfig = tiny, promptLen = 4): Promise<{ after: Float32Array[][]; kernels: Set<string> }> {
  const w: Record<string, tf.Tensor> = {};
  let seed = 3;
  for (const [name, shape] of Object.entries(expectedWeightShapes(cfg))) {
    w[name] = name.endsWith('norm.weight') ? tf.ones(shape) : tf.randomNormal(shape, 0, 0.2, 'float32', seed++);
  }
  const lora = createLora(cfg, { r: 4, alpha: 8, dropout: 0, targets: [...ATTN_TARGETS], useRslora: false }, 0);
  const vars = new Map(Object.entries(loraTensors(lora)));
  const opt = createAdamWState(vars);
  const rng = new Rng(0);
  const ids = (n: number) => Array.from({ length: n }, () => 2 + (rng.nextU32() % (cfg.vocabSize - 2)));
  const pairs = [0, 1].map(() => ({ promptIds: ids(promptLen), chosenIds: ids(9), rejectedIds: ids(7), truncated: false }));
  const refLora = { ...lora, enabled: false };
  const ref = (ps: readonly (typeof pairs)[number][]) => tf.tidy(() => {
    const l = batchSequenceLogprobs(cfg, w, collatePairs(ps, 0), { lora: refLora, training: false });
    return { chosen: tf.slice(l, [0], [ps.length]) as tf.Tensor1D, rejected: tf.slice(l, [ps.length], [ps.length]) as tf.Tensor1D };
  });
  const settings = { loss: 'sigmoid' as const, beta: 0.1, labelSmoothing: 0 };
  const after: Float32Array[][] = [];
  const step = () => {
    const { grads, stats } = stepGradients(cfg, w, lora, [{ pairs, positions: [0, 1] }], ref, settings, 0, new Rng(1));
    const norm = adamwStep(vars, grads, opt, 0.05, 1.0, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 });
    tf.dispose([norm, ...grads.values()]);
    disposeStats(stats);
    after.push([...vars.values()].map((v) => v.dataSync() as Float32Array));
  };
  step();
  const before = tf.memory().numTensors;
  const profile = await tf.profile(step);
  expect(tf.memory().numTensors).toBe(before);
  disposeAdamWState(opt);
  disposeLora(lora);
  tf.dispose(Object.values(w));
  return { after, kernels: new Set(profile.kernels.map((k) => k.name)) };
}

describe.skipIf(!has)('a DPO step on wasm with the fused kernels', () => {
  it('equals the DPO_KERNELS=reference step to float32 rounding over two steps, through the fused decoder-layer halves and DpoAdamW', async () => {
    registerFastKernels('wasm', 'reference');
    const plain = await twoSteps();
    registerFastKernels('wasm', 'auto');
    const fast = await twoSteps();
    // The decoder layers run as fused halves (kernels/decoder-layer.ts: the LoRA projections inside DpoAttnHalf).
    for (const k of ['DpoAttnHalf', 'DpoAttnHalfGrad', 'DpoMlpHalf', 'DpoMlpHalfGrad', 'DpoGlobalNorm', 'DpoAdamW']) {
      expect(fast.kernels.has(k), k).toBe(true);
      expect(plain.kernels.has(k), k).toBe(false);
    }
    fast.after.forEach((params, s) => params.forEach((p, i) => {
      const q = plain.after[s][i];
      let d = 0;
      let m = 0;
      p.forEach((x, j) => { d = Math.max(d, Math.abs(x - q[j])); m = Math.max(m, Math.abs(q[j])); });
      // 3e-5: the products round differently (the reference runs XNNPACK, the fast step OpenBLAS on gemm.h blocks), and
      // AdamW's first steps divide each gradient by its own size, so a gradient that cancels to near zero moves its
      // update by more than its rounding.
      expect(d / m, `step ${s + 1}, tensor ${i}: max diff ${d} of ${m}`).toBeLessThan(3e-5);
    }));
    // The B matrices start at zero: a step moved them (the comparison is not of two untouched tensors).
    expect(fast.after[1].some((p) => p.some((x) => x !== 0))).toBe(true);
  });
});

describe.skipIf(!has)('a DPO step with 1 and with 2 threads', () => {
  // The head's products are [~100 tokens, 64] x [64, 2048] (and back): over gemm.h's MIN_WORK, so cut into blocks of
  // columns, and the MLP's [~100, 64] x [64, 640] too. OpenBLAS's own threads gave other bits here (0.3.21).
  const wide: LlamaConfig = { ...tiny, vocabSize: 2048, hiddenSize: 64, intermediateSize: 640, headDim: 16 };

  it('gives bit-identical LoRA weights after two steps (the fused pool and the blocked GEMM do not depend on threads)', async () => {
    registerFastKernels('wasm', 'auto');
    try {
      setKernelThreads(1);
      const one = await twoSteps(wide, 12);
      setKernelThreads(2);
      const two = await twoSteps(wide, 12);
      one.after.forEach((params, s) => params.forEach((p, i) => {
        expect(sameBits(p, two.after[s][i]), `step ${s + 1}, tensor ${i}`).toBe(true);
      }));
      expect(one.after[1].some((p) => p.some((x) => x !== 0))).toBe(true);
    } finally {
      setKernelThreads(1);
    }
  });
});

// The non-wasm CPU path (issue 15 item 5): selectBackend('cpu') registers the BLAS BatchMatMul and every fused kernel
// of kernels/ for the cpu backend, a small Llama's forward + backward runs through them (the profile names each fused
// kernel), and its log-probs and LoRA gradients are those of the reference path (DPO_KERNELS=reference). Own file:
// selectBackend keeps module state. Skips without the addon unless DPO_REQUIRE_BLAS=1.
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { currentBackend, selectBackend } from '../../src/backend/index.js';
import { activeMatMul, FUSED_OPS, registerFastKernels } from '../../src/backend/kernels.js';
import type { LlamaConfig } from '../../src/config/llama.js';
import { expectedWeightShapes } from '../../src/model/llama.js';
import { ATTN_TARGETS, createLora, loraTensors, type Lora } from '../../src/model/lora.js';
import { sequenceLogprobs } from '../../src/dpo/logprobs.js';
import { loadBlasAddon } from '../../kernels/matmul-blas.js';
import { asFusedAddon } from '../../kernels/native.js';
import { attentionCoreOps } from '../../kernels/attention-core.js';
import { attnHalfOps, mlpHalfOps } from '../../kernels/decoder-layer.js';

const hasFused = asFusedAddon(loadBlasAddon().addon) !== null;
if (!hasFused && process.env.DPO_REQUIRE_BLAS === '1') throw new Error(`DPO_REQUIRE_BLAS=1 but the addon did not load: ${loadBlasAddon().reason}`);

const cfg: LlamaConfig = {
  vocabSize: 96, hiddenSize: 32, intermediateSize: 88, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 8,
  rmsNormEps: 1e-5, ropeTheta: 500000, ropeScaling: null, maxPositionEmbeddings: 64, tieWordEmbeddings: false,
  attentionBias: false, mlpBias: false, bosTokenId: 0, eosTokenIds: [1], torchDtype: 'float32',
};
const B = 4;
const T = 12;
let w: Record<string, tf.Tensor> = {};
let lora: Lora;
const lines: string[] = [];

beforeAll(async () => {
  await selectBackend('cpu', (l) => lines.push(l));
  let seed = 5;
  for (const [name, shape] of Object.entries(expectedWeightShapes(cfg))) {
    w[name] = name.endsWith('norm.weight') ? tf.ones(shape) : tf.randomNormal(shape, 0, 0.2, 'float32', seed++);
  }
  lora = createLora(cfg, { r: 4, alpha: 8, dropout: 0, targets: [...ATTN_TARGETS], useRslora: false }, 0);
  for (const { B: b } of lora.layers.values()) b.assign(tf.randomNormal(b.shape, 0, 0.1, 'float32', seed++));
});

afterAll(() => {
  tf.dispose(Object.values(w));
  w = {};
});

function step(): { logps: Float32Array; grads: Float32Array[] } {
  return tf.tidy(() => {
    const ids = tf.tensor2d(Array.from({ length: B * T }, (_, i) => (i * 37 + 5) % cfg.vocabSize), [B, T], 'int32');
    const attn = tf.tensor2d(Array.from({ length: B * T }, (_, i) => (i % T < T - (i < T ? 3 : 0) ? 1 : 0)), [B, T]);
    const loss = tf.tensor2d(Array.from({ length: B * T }, (_, i) => (i % T >= 4 ? 1 : 0)), [B, T]);
    const vars = Object.values(loraTensors(lora));
    let logps: Float32Array = new Float32Array();
    const { grads } = tf.variableGrads(() => {
      const lp = sequenceLogprobs(cfg, w, ids, attn, loss, { lora, training: true });
      logps = lp.dataSync() as Float32Array;
      return tf.sum(tf.mul(lp, tf.tensor1d([1, -0.5, 0.25, 2]))) as tf.Scalar;
    }, vars);
    return { logps, grads: vars.map((v) => grads[v.name].dataSync() as Float32Array) };
  });
}

function relDiff(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / Math.max(den, 1e-12);
}

describe.skipIf(!hasFused)('the cpu backend with the addon', () => {
  it('registers the BLAS BatchMatMul and every fused kernel for cpu, and says so', () => {
    expect(currentBackend()!.name).toBe('cpu');
    expect(lines[1]).toMatch(/^kernels: BatchMatMul=blas \(.*\); fused=native, \d thread\(s\)/);
    expect(activeMatMul('cpu')).toBe('blas');
    for (const op of FUSED_OPS) expect(tf.getKernel(op.kernelName, 'cpu'), op.kernelName).toBeDefined();
  });

  it('a forward + backward runs through the fused kernels and matches the reference path', async () => {
    const profiled = await tf.profile(() => { step(); });
    const ran = new Set(profiled.kernels.map((k) => k.name));
    // Forward and backward of the final RMSNorm, both halves of each decoder layer (kernels/decoder-layer.ts: their
    // RMSNorm, projections, attention core or SiLU*up inside), the log-prob pass (names from kernels/*.ts).
    const all = [...FUSED_OPS, ...attentionCoreOps, ...mlpHalfOps, ...attnHalfOps];
    const used = all.map((op) => op.kernelName).filter((n) => ran.has(n));
    expect(used.length, `fused kernels run: ${used.join(', ')}`).toBeGreaterThanOrEqual(8);
    for (const n of ['DpoRmsNorm', 'DpoRmsNormGrad', 'DpoMlpHalf', 'DpoMlpHalfGrad', 'DpoAttnHalf', 'DpoAttnHalfGrad']) expect(ran.has(n), n).toBe(true);
    const fast = step();
    registerFastKernels('cpu', 'reference');
    let plain: ReturnType<typeof step>;
    try {
      expect(activeMatMul('cpu')).toBe('stock');
      const ranRef = new Set((await tf.profile(() => { plain = step(); })).kernels.map((k) => k.name));
      expect([...FUSED_OPS, ...attentionCoreOps, ...mlpHalfOps, ...attnHalfOps].filter((op) => ranRef.has(op.kernelName))).toEqual([]);
    } finally {
      registerFastKernels('cpu', 'auto');
    }
    expect(activeMatMul('cpu')).toBe('blas');
    const d = relDiff(fast.logps, plain!.logps);
    expect(d, `log-probs: max relative diff ${d}`).toBeLessThan(1e-5);
    expect(plain!.grads.every((g) => g.some((x) => x !== 0))).toBe(true);
    plain!.grads.forEach((g, i) => {
      const dg = relDiff(fast.grads[i], g);
      expect(dg, `gradient ${i}: max relative diff ${dg}`).toBeLessThan(1e-4);
    });
  });
});

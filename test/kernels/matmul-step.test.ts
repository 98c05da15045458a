// End to end: the policy log-probs and their LoRA gradients of a small Llama on wasm are the same with every
// BatchMatMul implementation (stock, XNNPACK views, CBLAS addon when built), and with the fused kernels of the addon
// (RMSNorm, RoPE, SiLU*up, masked softmax, log-prob pass, Add, Gather, Identity). Covers every matmul shape the model uses.
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { LlamaConfig } from '../../src/config/llama.js';
import { expectedWeightShapes } from '../../src/model/llama.js';
import { ATTN_TARGETS, createLora, loraTensors, type Lora } from '../../src/model/lora.js';
import { sequenceLogprobs } from '../../src/dpo/logprobs.js';
import { loadBlasAddon } from '../../kernels/matmul-blas.js';
import { useFusedKernels, useMatMul, type MatMulImpl } from '../../src/backend/kernels.js';
import { asFusedAddon } from '../../kernels/native.js';

const require = createRequire(import.meta.url);

const cfg: LlamaConfig = {
  vocabSize: 96, hiddenSize: 32, intermediateSize: 88, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 8,
  rmsNormEps: 1e-5, ropeTheta: 500000, ropeScaling: null, maxPositionEmbeddings: 64, tieWordEmbeddings: false,
  attentionBias: false, mlpBias: false, bosTokenId: 0, eosTokenIds: [1], torchDtype: 'float32',
};
const B = 4;
const T = 12;
let w: Record<string, tf.Tensor> = {};
let lora: Lora;

beforeAll(async () => {
  tf.env().set('PROD', true);
  setWasmPaths(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm')) + '/');
  await tf.setBackend('wasm');
  let seed = 3;
  for (const [name, shape] of Object.entries(expectedWeightShapes(cfg))) {
    w[name] = name.endsWith('norm.weight') ? tf.ones(shape) : tf.randomNormal(shape, 0, 0.2, 'float32', seed++);
  }
  lora = createLora(cfg, { r: 4, alpha: 8, dropout: 0, targets: [...ATTN_TARGETS], useRslora: false }, 0);
  // Non-zero B, so gradients reach A as well.
  for (const { B: b } of lora.layers.values()) b.assign(tf.randomNormal(b.shape, 0, 0.1, 'float32', seed++));
});

afterAll(() => {
  useMatMul('wasm', 'stock');
  tf.dispose(Object.values(w));
  w = {};
});

function run(impl: MatMulImpl, fused = false): { logps: Float32Array; grads: Float32Array[] } {
  useMatMul('wasm', impl);
  useFusedKernels('wasm', fused);
  try {
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
  } finally {
    useMatMul('wasm', 'stock');
    useFusedKernels('wasm', false);
  }
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

it.for(['xnnpack', 'blas'] as const)('the %s BatchMatMul gives the stock log-probs and LoRA gradients', (impl, ctx) => {
  if (impl === 'blas' && !loadBlasAddon().addon) {
    // The addon is optional; a CI job that installed a CBLAS for it sets DPO_REQUIRE_BLAS=1, and then its absence fails.
    if (process.env.DPO_REQUIRE_BLAS === '1') throw new Error(`DPO_REQUIRE_BLAS=1 but the BLAS addon did not load: ${loadBlasAddon().reason}`);
    ctx.skip(`BLAS addon not built (${loadBlasAddon().reason})`);
  }
  const stock = run('stock');
  const fast = run(impl);
  const d = relDiff(fast.logps, stock.logps);
  expect(d, `log-probs: max relative diff ${d}`).toBeLessThan(1e-5);
  expect(stock.grads.every((g) => g.some((x) => x !== 0))).toBe(true);
  stock.grads.forEach((g, i) => {
    const dg = relDiff(fast.grads[i], g);
    expect(dg, `gradient ${i}: max relative diff ${dg}`).toBeLessThan(1e-4);
  });
});

it.skipIf(!asFusedAddon(loadBlasAddon().addon))('the fused kernels give the plain-ops log-probs and LoRA gradients', () => {
  const plain = run('stock');
  const fused = run('stock', true);
  const d = relDiff(fused.logps, plain.logps);
  expect(d, `log-probs: max relative diff ${d}`).toBeLessThan(1e-5);
  plain.grads.forEach((g, i) => {
    const dg = relDiff(fused.grads[i], g);
    expect(dg, `gradient ${i}: max relative diff ${dg}`).toBeLessThan(1e-4);
  });
});

// kernels/checkpoint.ts: a checkpointed function gives the values and gradients of the plain one (inputs, closure
// variables, finite differences), survives the outer tape, leaks nothing; and a checkpointed Llama forward gives
// the LoRA gradients of the plain forward, with and without dropout, at a lower peak memory.
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkpointed, uncheckpointed, type CheckpointFn } from '../../kernels/checkpoint.js';
import { parseLlamaConfig, type LlamaConfig } from '../../src/config/llama.js';
import { sequenceLogprobs } from '../../src/dpo/logprobs.js';
import { tinyConfigJson } from '../../src/io/tiny-model.js';
import { expectedWeightShapes, type Weights } from '../../src/model/llama.js';
import { createLora, disposeLora, loraTensors, type Lora } from '../../src/model/lora.js';
import { measurePeak } from '../../src/plan/peak.js';
import { Rng } from '../../src/util/rng.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('checkpointed(fn)', () => {
  const rng = new Rng(11);
  const xv = Float32Array.from({ length: 12 }, () => rng.normal(0, 1));
  const wv = Float32Array.from({ length: 16 }, () => rng.normal(0, 0.5));
  const cv = Float32Array.from({ length: 4 }, () => rng.normal(0, 1));
  let w: tf.Variable;

  beforeAll(() => {
    w = tf.variable(tf.tensor2d(wv, [4, 4]), true, 'ckpt_w');
  });
  afterAll(() => w.dispose());

  // A small nonlinear layer: reads a closure variable and a constant input.
  const layer: CheckpointFn = (x, c) => tf.tidy(() => {
    const h = tf.matMul(x as tf.Tensor2D, w);
    return tf.add(tf.mul(tf.tanh(h), tf.sigmoid(tf.add(h, c))), x);
  });

  function gradsOf(wrap: typeof checkpointed, x: tf.Tensor2D, c: tf.Tensor1D): { value: number; dx: Float32Array; dw: Float32Array } {
    const f = wrap(layer, { params: [w], constants: [1] });
    // Two stacked calls: the second's gradient flows through the first.
    const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(f(f(x, c), c))) as tf.Scalar, [w]);
    const dxT = tf.grad((xi: tf.Tensor) => tf.sum(tf.square(f(f(xi, c), c))))(x);
    const out = { value: value.dataSync()[0], dx: dxT.dataSync() as Float32Array, dw: grads[w.name].dataSync() as Float32Array };
    tf.dispose([value, dxT, ...Object.values(grads)]);
    return out;
  }

  it('gives the plain values and gradients (input and closure variable)', () => {
    const x = tf.tensor2d(xv, [3, 4]);
    const c = tf.tensor1d(cv);
    const plain = gradsOf(uncheckpointed, x, c);
    const ckpt = gradsOf(checkpointed, x, c);
    expect(Math.abs(plain.value - ckpt.value)).toBeLessThan(1e-6);
    expect(maxDiff(plain.dx, ckpt.dx)).toBeLessThan(1e-6);
    expect(maxDiff(plain.dw, ckpt.dw)).toBeLessThan(1e-6);
    tf.dispose([x, c]);
  });

  it('matches central finite differences (float64 JS of the same layer)', () => {
    const x = tf.tensor2d(xv, [3, 4]);
    const c = tf.tensor1d(cv);
    const { dw } = gradsOf(checkpointed, x, c);
    const f64 = (W: Float64Array): number => {
      const apply = (X: Float64Array): Float64Array => {
        const out = new Float64Array(12);
        for (let i = 0; i < 3; i++) for (let j = 0; j < 4; j++) {
          let h = 0;
          for (let k = 0; k < 4; k++) h += X[i * 4 + k] * W[k * 4 + j];
          out[i * 4 + j] = Math.tanh(h) / (1 + Math.exp(-(h + cv[j]))) + X[i * 4 + j];
        }
        return out;
      };
      return apply(apply(Float64Array.from(xv))).reduce((a, v) => a + v * v, 0);
    };
    const eps = 1e-6;
    let worst = 0;
    for (let i = 0; i < 16; i++) {
      const p = Float64Array.from(wv);
      const m = Float64Array.from(wv);
      p[i] += eps;
      m[i] -= eps;
      const fd = (f64(p) - f64(m)) / (2 * eps);
      worst = Math.max(worst, Math.abs(fd - dw[i]) / (1e-3 + Math.abs(fd)));
    }
    if (worst > 1e-4) console.log(`finite differences: worst relative diff ${worst}`);
    expect(worst).toBeLessThan(1e-4);
    tf.dispose([x, c]);
  });

  it('leaves the outer tape whole and leaks no tensors', () => {
    const x = tf.tensor2d(xv, [3, 4]);
    const c = tf.tensor1d(cv);
    gradsOf(checkpointed, x, c);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) gradsOf(checkpointed, x, c);
    expect(tf.memory().numTensors).toBe(before);
    // Without a tape it is just the function.
    const y = checkpointed(layer, { params: [w], constants: [1] })(x, c);
    const z = layer(x, c);
    expect(maxDiff(y.dataSync(), z.dataSync())).toBe(0);
    tf.dispose([x, c, y, z]);
  });
});

/** A random-weight Llama 3.1-shaped model: tiny config with the given sizes. */
function randomModel(hidden: number, layers: number, vocab: number, seed: number): { cfg: LlamaConfig; w: Weights } {
  const cfg = parseLlamaConfig({ ...tinyConfigJson(vocab, 1, [2], { hiddenSize: hidden, numLayers: layers }) }, 'test config');
  const rng = new Rng(seed);
  const w: Weights = {};
  for (const [k, shape] of Object.entries(expectedWeightShapes(cfg))) {
    const n = shape.reduce((a, b) => a * b, 1);
    w[k] = tf.tensor(k.endsWith('norm.weight') ? new Float32Array(n).fill(1) : Float32Array.from({ length: n }, () => rng.normal(0, 0.1)), shape);
  }
  return { cfg, w };
}

/** LoRA with B non-zero so every A and B gets a non-trivial gradient. */
function randomLora(cfg: LlamaConfig, dropout: number): Lora {
  const lora = createLora(cfg, { r: 4, alpha: 8, dropout, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], useRslora: false }, 5);
  const rng = new Rng(6);
  for (const { B } of lora.layers.values()) B.assign(tf.tensor(Float32Array.from({ length: B.size }, () => rng.normal(0, 0.1)), B.shape));
  return lora;
}

function batch(B: number, T: number, V: number, seed: number): { ids: tf.Tensor2D; attn: tf.Tensor2D; loss: tf.Tensor2D } {
  const rng = new Rng(seed);
  const ids = Int32Array.from({ length: B * T }, () => rng.int(V));
  const attn = new Float32Array(B * T).fill(1);
  const loss = new Float32Array(B * T);
  for (let b = 0; b < B; b++) {
    const pad = b === 1 ? 3 : 0; // right padding on one row
    for (let t = 0; t < T; t++) {
      if (t >= T - pad) attn[b * T + t] = 0;
      else if (t >= 4) loss[b * T + t] = 1;
    }
  }
  return { ids: tf.tensor2d(ids, [B, T], 'int32'), attn: tf.tensor2d(attn, [B, T]), loss: tf.tensor2d(loss, [B, T]) };
}

describe('Llama forward with gradientCheckpointing', () => {
  let cfg: LlamaConfig;
  let w: Weights;

  beforeAll(() => {
    ({ cfg, w } = randomModel(32, 3, 64, 1));
  });
  afterAll(() => tf.dispose(Object.values(w)));

  function loraGrads(lora: Lora, checkpointing: boolean, rng?: Rng): Map<string, Float32Array> {
    const vars = loraTensors(lora);
    const names = Object.keys(vars);
    const b = batch(4, 12, cfg.vocabSize, 2);
    const weights = tf.tensor1d([1, -0.5, 0.25, 2]);
    const { value, grads } = tf.variableGrads(() => {
      const logps = sequenceLogprobs(cfg, w, b.ids, b.attn, b.loss, { lora, training: true, dropoutRng: rng, gradientCheckpointing: checkpointing });
      return tf.sum(tf.mul(logps, weights)) as tf.Scalar;
    }, names.map((n) => vars[n]));
    const out = new Map(names.map((n) => [n, grads[vars[n].name].dataSync() as Float32Array]));
    tf.dispose([value, weights, ...Object.values(grads), ...Object.values(b)]);
    return out;
  }

  function expectSame(a: Map<string, Float32Array>, b: Map<string, Float32Array>): void {
    let worst = 0;
    let where = '';
    let scale = 0;
    for (const [k, g] of a) {
      const d = maxDiff(g, b.get(k)!);
      scale = Math.max(scale, maxDiff(g, new Float32Array(g.length)));
      if (d > worst) [worst, where] = [d, k];
    }
    if (worst > 1e-5) console.log(`max grad diff ${worst} at ${where}`);
    expect(scale).toBeGreaterThan(1e-3); // the gradients are not trivially zero
    expect(worst).toBeLessThan(1e-5);
  }

  it('gives the plain LoRA gradients (dropout 0)', () => {
    const lora = randomLora(cfg, 0);
    expectSame(loraGrads(lora, false), loraGrads(lora, true));
    disposeLora(lora);
  });

  it('replays the dropout seeds: same gradients and the same Rng state afterwards', () => {
    const lora = randomLora(cfg, 0.2);
    const r1 = new Rng(9);
    const r2 = new Rng(9);
    expectSame(loraGrads(lora, false, r1), loraGrads(lora, true, r2));
    expect(r2.getState()).toEqual(r1.getState());
    disposeLora(lora);
  });

  it('leaks no tensors over repeated steps', () => {
    const lora = randomLora(cfg, 0);
    loraGrads(lora, true);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) loraGrads(lora, true);
    expect(tf.memory().numTensors).toBe(before);
    disposeLora(lora);
  });

  it('lowers the peak memory of a step', () => {
    const big = randomModel(64, 6, 64, 3);
    const lora = randomLora(big.cfg, 0);
    const vars = Object.values(loraTensors(lora));
    const b = batch(4, 48, big.cfg.vocabSize, 4);
    const peak = (checkpointing: boolean): number => {
      const { result, peakBytes, startBytes } = measurePeak(() => tf.variableGrads(() =>
        tf.sum(sequenceLogprobs(big.cfg, big.w, b.ids, b.attn, b.loss, { lora, training: true, gradientCheckpointing: checkpointing })) as tf.Scalar, vars));
      tf.dispose([result.value, ...Object.values(result.grads)]);
      return peakBytes - startBytes;
    };
    const plain = peak(false);
    const ckpt = peak(true);
    console.log(`peak above start: plain ${plain} B, checkpointed ${ckpt} B`);
    expect(ckpt).toBeLessThan(plain / 2);
    disposeLora(lora);
    tf.dispose([...Object.values(big.w), ...Object.values(b)]);
  });
});

// The fused MLP half of a decoder layer (kernels/decoder-layer.ts, native/blas/layer.cc) on the cpu and wasm backends:
// value and dx1 against the plain-ops reference (autograd) and a float64 forward with central differences; 1 and 2
// threads give the same bits; no tensor leaks; a trainable weight is refused; model/llama.ts takes it only for a layer
// whose MLP has no adapter and whose weights are frozen, with the same logits and adapter gradients as the op-by-op
// path; DPO_KERNELS=reference switches it off. Skips when the addon is not built.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { asFusedAddon, fusedActive } from '../../kernels/native.js';
import { hasDecoderLayer, mlpHalfFused, mlpHalfReference, type MlpWeights } from '../../kernels/decoder-layer.js';
import { loadBlasAddon } from '../../kernels/matmul-blas.js';
import { registerFastKernels, setKernelThreads, useFusedKernels } from '../../src/backend/kernels.js';
import { forwardHidden } from '../../src/model/llama.js';
import { createLora, disposeLora, loraTensors } from '../../src/model/lora.js';
import { Rng } from '../../src/util/rng.js';
import { env } from '../../src/config/env.js';
import { batchOf, disposeWeights, loadModel, readFixture, type ModelFixture } from '../model/fixture.js';
import { withFusedKernelsOnWasm } from './fused-suite.js';

const has = hasDecoderLayer(asFusedAddon(loadBlasAddon(env().blasAddon).addon));

withFusedKernelsOnWasm();

const normal = (rng: Rng, n: number, sd = 1) => Float32Array.from({ length: n }, () => rng.normal(0, sd));
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

type Dims = { lead: number[]; H: number; I: number };
type Data = { x: Float32Array; norm: Float32Array; gate: Float32Array; up: Float32Array; down: Float32Array; probe: Float32Array };

function data(d: Dims, seed: number): Data {
  const rng = new Rng(seed);
  const M = d.lead.reduce((a, b) => a * b, 1);
  return {
    x: normal(rng, M * d.H), norm: Float32Array.from(normal(rng, d.H, 0.3), (v) => 1 + v), gate: normal(rng, d.I * d.H, 0.5),
    up: normal(rng, d.I * d.H, 0.5), down: normal(rng, d.H * d.I, 0.5), probe: normal(rng, M * d.H),
  };
}

type F = (x: tf.Tensor, w: MlpWeights, eps: number) => tf.Tensor;
const EPS = 1e-5;

/** y and d sum(y * probe) / dx1, as Float32Arrays. */
function valueAndGrad(f: F, d: Dims, v: Data): Float32Array[] {
  return tf.tidy(() => {
    const x = tf.tensor(v.x, [...d.lead, d.H]);
    const w: MlpWeights = {
      norm: tf.tensor1d(v.norm), gate: tf.tensor2d(v.gate, [d.I, d.H]), up: tf.tensor2d(v.up, [d.I, d.H]), down: tf.tensor2d(v.down, [d.H, d.I]),
    };
    const probe = tf.tensor(v.probe, [...d.lead, d.H]);
    const y = f(x, w, EPS);
    expect(y.shape).toEqual([...d.lead, d.H]);
    const [g] = tf.grads((a: tf.Tensor) => tf.sum(tf.mul(f(a, w, EPS), probe)))([x]);
    return [y, g].map((t) => t.dataSync() as Float32Array);
  });
}

/** The MLP half in float64: y = x + down(silu(gate(h)) * up(h)), h = rmsnorm(x). */
function forward64(d: Dims, x: Float64Array, v: Data): Float64Array {
  const { H, I } = d;
  const M = x.length / H;
  const y = new Float64Array(M * H);
  for (let m = 0; m < M; m++) {
    let ss = 0;
    for (let i = 0; i < H; i++) ss += x[m * H + i] ** 2;
    const r = 1 / Math.sqrt(ss / H + EPS);
    const h = Array.from({ length: H }, (_, i) => x[m * H + i] * r * v.norm[i]);
    const act = Array.from({ length: I }, (_, j) => {
      let g = 0, u = 0;
      for (let i = 0; i < H; i++) { g += h[i] * v.gate[j * H + i]; u += h[i] * v.up[j * H + i]; }
      return (g / (1 + Math.exp(-g))) * u;
    });
    for (let o = 0; o < H; o++) {
      let s = 0;
      for (let j = 0; j < I; j++) s += act[j] * v.down[o * I + j];
      y[m * H + o] = x[m * H + o] + s;
    }
  }
  return y;
}

const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

describe.each(['cpu', 'wasm'] as const)('fused MLP half on %s', (backend) => {
  beforeAll(async () => {
    await tf.setBackend(backend);
  });

  it.skipIf(!has)('value and dx1 = the reference (autograd) = float64 forward and central differences; no leaks', () => {
    // H = 20: rows longer than one 16-lane block, with a tail.
    const d: Dims = { lead: [2, 3], H: 20, I: 7 };
    const v = data(d, 4);
    const before = tf.memory().numTensors;
    const fused = valueAndGrad(mlpHalfFused, d, v);
    expect(tf.memory().numTensors).toBe(before);
    const ref = valueAndGrad(mlpHalfReference, d, v);
    expect(maxDiff(fused[0], ref[0])).toBeLessThan(1e-5);
    expect(maxDiff(fused[1], ref[1])).toBeLessThan(1e-5);
    const x64 = Float64Array.from(v.x);
    expect(maxDiff(fused[0], forward64(d, x64, v))).toBeLessThan(1e-5);
    const L = () => forward64(d, x64, v).reduce((s, y, i) => s + y * v.probe[i], 0);
    const h = 1e-4;
    const fd = Float64Array.from(x64, (x0, i) => {
      x64[i] = x0 + h; const p = L();
      x64[i] = x0 - h; const m = L();
      x64[i] = x0;
      return (p - m) / (2 * h);
    });
    const e = maxDiff(fused[1], fd);
    expect(e, `dx1 vs central differences: ${e}`).toBeLessThan(1e-4);
  });

  it.skipIf(!has)('no tensor is left behind without a tape either, and a trainable weight is refused', () => {
    const d: Dims = { lead: [3], H: 8, I: 5 };
    const v = data(d, 5);
    const x = tf.tensor2d(v.x, [3, 8]);
    const w: MlpWeights = { norm: tf.tensor1d(v.norm), gate: tf.tensor2d(v.gate, [5, 8]), up: tf.tensor2d(v.up, [5, 8]), down: tf.tensor2d(v.down, [8, 5]) };
    const before = tf.memory().numTensors;
    mlpHalfFused(x, w, EPS).dispose();
    expect(tf.memory().numTensors).toBe(before);
    const trainable = tf.variable(w.gate.clone());
    expect(() => mlpHalfFused(x, { ...w, gate: trainable }, EPS)).toThrow(/trainable variable/);
    tf.dispose([x, w.norm, w.gate, w.up, w.down, trainable]);
  });

  // Products of gemm.h cut into blocks ([384, 256] x [256, 768] and back) and elementwise work over several tasks.
  it.skipIf(!has)('with 1 and with 2 threads: the same bits, and = the reference to float32 rounding', () => {
    const d: Dims = { lead: [4, 96], H: 256, I: 768 };
    const v = data(d, 2);
    for (const a of [v.gate, v.up, v.down]) for (let i = 0; i < a.length; i++) a[i] *= 0.1;
    const runs = [1, 2].map((n) => {
      setKernelThreads(n);
      return valueAndGrad(mlpHalfFused, d, v);
    });
    setKernelThreads(1);
    const ref = valueAndGrad(mlpHalfReference, d, v);
    runs[0].forEach((a, i) => {
      expect(bits(a).equals(bits(runs[1][i])), `output ${i}`).toBe(true);
      const scale = ref[i].reduce((m, x) => Math.max(m, Math.abs(x)), 0);
      expect(maxDiff(a, ref[i]) / scale, `output ${i}`).toBeLessThan(2e-6);
    });
  });

  it.skipIf(!has)('forwardHidden takes it for layers whose MLP has no adapter: same hidden states and adapter gradients; DPO_KERNELS=reference switches it off', async () => {
    const { cfg, w } = loadModel(readFixture<ModelFixture>('base.json'));
    const { ids, mask } = batchOf(readFixture<ModelFixture>('base.json'));
    const kernelsOf = async (f: () => tf.Tensor) => (await tf.profile(() => { f().dispose(); })).kernels.map((k) => k.name);
    const attnOnly = createLora(cfg, { r: 2, alpha: 4, dropout: 0, targets: ['q_proj', 'v_proj'], useRslora: false }, 3);
    const withMlp = createLora(cfg, { r: 2, alpha: 4, dropout: 0, targets: ['q_proj', 'up_proj'], useRslora: false }, 3);
    // B = 0 at init; give the adapters values so their gradients depend on the MLP's backward.
    for (const l of [attnOnly, withMlp]) for (const ad of l.layers.values()) ad.B.assign(tf.fill(ad.B.shape, 0.05));
    const run = (lora: typeof attnOnly) => tf.tidy(() => {
      const vars = Object.values(loraTensors(lora));
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(forwardHidden(cfg, w, ids, mask, { lora, training: true }))) as tf.Scalar, vars);
      return [forwardHidden(cfg, w, ids, mask, { lora }).dataSync() as Float32Array, value.dataSync() as Float32Array,
        ...Object.values(grads).map((g) => g.dataSync() as Float32Array)];
    });
    try {
      expect(fusedActive('DpoMlpHalf')).toBe(true);
      const names = await kernelsOf(() => forwardHidden(cfg, w, ids, mask, { lora: attnOnly }));
      expect(names.filter((n) => n === 'DpoMlpHalf').length).toBe(cfg.numLayers);
      expect(await kernelsOf(() => forwardHidden(cfg, w, ids, mask, { lora: withMlp }))).not.toContain('DpoMlpHalf');
      const before = tf.memory().numTensors;
      const fused = run(attnOnly);
      expect(tf.memory().numTensors).toBe(before);
      useFusedKernels(backend, true);
      tf.unregisterKernel('DpoMlpHalf', backend); // the op-by-op path with every other fused kernel
      const plain = run(attnOnly);
      fused.forEach((a, i) => {
        const scale = plain[i].reduce((m, x) => Math.max(m, Math.abs(x)), 0);
        expect(maxDiff(a, plain[i]) / scale, `output ${i}`).toBeLessThan(1e-5);
      });
      registerFastKernels(backend, 'reference');
      expect(fusedActive('DpoMlpHalf')).toBe(false);
      expect(await kernelsOf(() => forwardHidden(cfg, w, ids, mask, { lora: attnOnly }))).not.toContain('DpoMlpHalf');
      const reference = run(attnOnly);
      fused.forEach((a, i) => {
        const scale = reference[i].reduce((m, x) => Math.max(m, Math.abs(x)), 0);
        expect(maxDiff(a, reference[i]) / scale, `output ${i} vs DPO_KERNELS=reference`).toBeLessThan(1e-5);
      });
    } finally {
      registerFastKernels(backend, 'auto');
      useFusedKernels(backend, true);
      disposeLora(attnOnly);
      disposeLora(withMlp);
      disposeWeights(w);
      tf.dispose([ids, mask]);
    }
  });
});

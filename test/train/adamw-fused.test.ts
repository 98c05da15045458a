// The fused AdamW (kernels/adamw.ts: DpoGlobalNorm + DpoAdamW through the addon) on the cpu and wasm backends against
// the plain-ops reference (adamwStepReference) over several steps of several tensors, clipping on and off, weight decay
// on a subset; against torch's AdamW formula in float64; the hand-worked torch values of optimizer.test.ts; no leaks;
// DPO_KERNELS=reference switches back to the reference. Skips when the addon is not built.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { asFusedAddon, fusedActive } from '../../kernels/native.js';
import { hasAdamw } from '../../kernels/adamw.js';
import { loadBlasAddon } from '../../kernels/matmul-blas.js';
import { registerFastKernels } from '../../src/backend/kernels.js';
import { adamwStep, adamwStepReference, createAdamWState, disposeAdamWState, type AdamWSettings } from '../../src/train/optimizer.js';
import { Rng } from '../../src/util/rng.js';
import { withFusedKernelsOnWasm } from '../kernels/fused-suite.js';

const has = hasAdamw(asFusedAddon(loadBlasAddon().addon));

withFusedKernelsOnWasm();

const SHAPES: [string, number[]][] = [['a.lora_A', [4, 33]], ['a.lora_B', [17, 4]], ['b.lora_A', [1, 5]], ['b.lora_B', [300]]];

interface Run { p: Float32Array[]; m: Float32Array[]; v: Float32Array[]; norms: number[] }

/** `steps` AdamW steps from the same seeded start and gradients with `step`; gradient scale 3 so step 2 clips. */
function run(step: typeof adamwStep, steps: number, maxGradNorm: number, s: AdamWSettings): Run {
  const rng = new Rng(7);
  const vars = new Map(SHAPES.map(([name, shape]) => [name, tf.tidy(() => tf.variable(tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal(0, 1)), shape), true))]));
  const state = createAdamWState(vars);
  const norms: number[] = [];
  for (let k = 0; k < steps; k++) {
    const sd = k === 1 ? 3 : 0.05;
    const grads = new Map([...vars].map(([name, p]) => [name, tf.tensor(Float32Array.from({ length: p.size }, () => rng.normal(0, sd)), p.shape)]));
    const n = step(vars, grads, state, 1e-2, maxGradNorm, s);
    norms.push(n.dataSync()[0]);
    tf.dispose([n, ...grads.values()]);
  }
  const out = {
    p: [...vars.values()].map((t) => t.dataSync() as Float32Array),
    m: [...state.m.values()].map((t) => t.dataSync() as Float32Array),
    v: [...state.v.values()].map((t) => t.dataSync() as Float32Array),
    norms,
  };
  disposeAdamWState(state);
  for (const p of vars.values()) p.dispose();
  return out;
}

/** The same steps in float64: torch.optim.AdamW's single-tensor update and clip_grad_norm_ (coef = max / (norm + 1e-6)). */
function run64(steps: number, maxGradNorm: number, s: AdamWSettings): Run {
  const rng = new Rng(7);
  const p = SHAPES.map(([, shape]) => Float64Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => Math.fround(rng.normal(0, 1))));
  const m = p.map((x) => new Float64Array(x.length));
  const v = p.map((x) => new Float64Array(x.length));
  const norms: number[] = [];
  for (let k = 1; k <= steps; k++) {
    const sd = k === 2 ? 3 : 0.05;
    const g = p.map((x) => Float64Array.from(x, () => Math.fround(rng.normal(0, sd))));
    const norm = Math.sqrt(g.reduce((a, x) => a + x.reduce((b, y) => b + y * y, 0), 0));
    norms.push(norm);
    const coef = maxGradNorm > 0 ? Math.min(maxGradNorm / (norm + 1e-6), 1) : 1;
    const lr = 1e-2;
    const bc1 = 1 - s.beta1 ** k;
    const bc2 = 1 - s.beta2 ** k;
    SHAPES.forEach(([name], i) => {
      const decay = s.weightDecay > 0 && (!s.decay || s.decay.has(name)) ? 1 - lr * s.weightDecay : 1;
      for (let j = 0; j < p[i].length; j++) {
        const gj = g[i][j] * coef;
        m[i][j] = s.beta1 * m[i][j] + (1 - s.beta1) * gj;
        v[i][j] = s.beta2 * v[i][j] + (1 - s.beta2) * gj * gj;
        p[i][j] = p[i][j] * decay - (lr / bc1) * m[i][j] / (Math.sqrt(v[i][j]) / Math.sqrt(bc2) + s.eps);
      }
    });
  }
  const f = (xs: Float64Array[]) => xs.map((x) => Float32Array.from(x));
  return { p: f(p), m: f(m), v: f(v), norms };
}

/** Max over tensors of max |a - b| / max |b|: float32 rounding differences (coef's last bit) relative to each tensor's scale. */
const maxRel = (a: Float32Array[], b: Float32Array[]) => {
  let e = 0;
  a.forEach((x, i) => {
    let d = 0;
    let s = 0;
    x.forEach((y, j) => { d = Math.max(d, Math.abs(y - b[i][j])); s = Math.max(s, Math.abs(b[i][j])); });
    e = Math.max(e, s > 0 ? d / s : d);
  });
  return e;
};

const SETTINGS: [string, number, AdamWSettings][] = [
  ['clipping at 1, decay on the A matrices only', 1, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, decay: new Set(['a.lora_A', 'b.lora_A']) }],
  ['no clipping, decay on all', 0, { beta1: 0.8, beta2: 0.99, eps: 1e-6, weightDecay: 0.01 }],
];

describe.each(['cpu', 'wasm'] as const)('fused AdamW on %s', (backend) => {
  beforeAll(async () => {
    await tf.setBackend(backend);
  });

  it.skipIf(!has).each(SETTINGS)('%s: = the plain-ops reference to float32 rounding, = float64 AdamW, no leaks', (_, clip, s) => {
    expect(fusedActive('DpoAdamW')).toBe(true);
    const before = tf.memory().numTensors;
    const fused = run(adamwStep, 4, clip, s);
    expect(tf.memory().numTensors).toBe(before);
    const ref = run(adamwStepReference, 4, clip, s);
    // The norms differ only in summation order (float64 here, float32 per tensor there): a few float32 ulps.
    fused.norms.forEach((n, i) => expect(Math.abs(n - ref.norms[i]) / ref.norms[i]).toBeLessThan(1e-6));
    if (clip > 0) expect(ref.norms[1]).toBeGreaterThan(clip); // step 2 clipped
    for (const k of ['p', 'm', 'v'] as const) {
      const e = maxRel(fused[k], ref[k]);
      expect(e, `${k} vs reference: max relative diff ${e}`).toBeLessThan(2e-6);
      // Without clipping the norm is not used: every element is the reference's float32 sequence, bit for bit.
      if (clip === 0) expect(e, `${k} without clipping`).toBe(0);
    }
    const r64 = run64(4, clip, s);
    fused.norms.forEach((n, i) => expect(Math.abs(n - r64.norms[i]) / r64.norms[i]).toBeLessThan(1e-6));
    const e64 = maxRel(fused.p, r64.p);
    expect(e64, `p vs float64: ${e64}`).toBeLessThan(2e-6);
  });

  it.skipIf(!has)('the hand-worked torch values of optimizer.test.ts (clipped step, then not)', () => {
    const p = tf.variable(tf.tensor1d([1, -2]), true);
    const vars = new Map([['p', p]]);
    const state = createAdamWState(vars);
    const S = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };
    const g1 = new Map([['p', tf.tensor1d([0.3, -0.4])]]);
    const n1 = adamwStep(vars, g1, state, 0.1, 0.25, S);
    expect(n1.dataSync()[0]).toBeCloseTo(0.5, 6);
    const near = (got: ArrayLike<number>, want: number[], tol: number) => want.forEach((w, i) => expect(Math.abs(got[i] - w)).toBeLessThanOrEqual(tol));
    near(p.dataSync(), [0.8990000066666796, -1.8980000050000096], 2e-7);
    const g2 = new Map([['p', tf.tensor1d([-0.1, 0.05])]]);
    const n2 = adamwStep(vars, g2, state, 0.1, 0.25, S);
    near(p.dataSync(), [0.8836490463050236, -1.8491552327367546], 2e-7);
    near(state.m.get('p')!.dataSync(), [0.0034999730000539967, -0.012999964000071999], 1e-9);
    near(state.v.get('p')!.dataSync(), [3.2477410090269754e-5, 4.245984016047956e-5], 1e-11);
    tf.dispose([n1, n2, g1.get('p')!, g2.get('p')!]);
    disposeAdamWState(state);
    p.dispose();
  });

  it.skipIf(!has)('DPO_KERNELS=reference unregisters the fused AdamW; the step is then the reference, bit for bit', () => {
    registerFastKernels(backend, 'reference');
    try {
      expect(fusedActive('DpoAdamW')).toBe(false);
      expect(fusedActive('DpoGlobalNorm')).toBe(false);
      const a = run(adamwStep, 2, 1, SETTINGS[0][2]);
      const b = run(adamwStepReference, 2, 1, SETTINGS[0][2]);
      expect(maxRel(a.p, b.p)).toBe(0);
    } finally {
      registerFastKernels(backend, 'auto');
    }
    expect(fusedActive('DpoAdamW')).toBe(true);
  });
});

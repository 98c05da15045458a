// webgpu against cpu on the float64-reference tiny model (test/fixtures): forward logits, completion log-probs, one DPO
// step's LoRA gradients, and two AdamW steps with a resume between them (state read back with `await data()`, rebuilt,
// stepped again) against two uninterrupted cpu steps. Every read is `await t.data()`: dataSync throws on webgpu.
// Skips, saying why, only where Dawn finds no adapter; DPO_REQUIRE_WEBGPU=1 (CI, after installing lavapipe) fails instead.
// DPO_PARITY_BACKEND=tensorflow runs the same comparisons on tfjs-node(-gpu) (scripts/gpu-check.sh, on every GPU backend).
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeBackend, selectBackend } from '../../src/backend/index.js';
import { probeWebGpu, webgpuAdapter, type WebGpuAdapter } from '../../src/backend/webgpu.js';
import { BackendError } from '../../src/util/errors.js';
import type { LlamaConfig } from '../../src/config/llama.js';
import { forwardLogits, type Weights } from '../../src/model/llama.js';
import { sequenceLogprobs } from '../../src/dpo/logprobs.js';
import { disposeLora, loraFromTensors, loraTensors, type Lora, type LoraConfig } from '../../src/model/lora.js';
import type { MicroBatch, RefProvider } from '../../src/dpo/objective.js';
import { disposeStats, stepGradients } from '../../src/train/dpo-step.js';
import { adamwStep, createAdamWState, disposeAdamWState, type AdamWState } from '../../src/train/optimizer.js';
import type { TokenizedPair } from '../../src/tokenizer/pair.js';
import { Rng } from '../../src/util/rng.js';
import { batchOf, disposeWeights, loadModel, maxAbsDiff, readFixture, unpack, type ModelFixture } from '../model/fixture.js';

interface GradFixture {
  lora: { r: number; lora_alpha: number; lora_dropout: number; use_rslora: boolean; target_modules: string[]; tensors: Record<string, { shape: number[]; scale: number; offset: number; int8: string }> };
  pairs: { prompt: number[]; chosen: number[]; rejected: number[] }[];
  ref_logps: number[];
  cases: { loss_type: string; beta: number; label_smoothing: number; grads: Record<string, number[]> }[];
}

tf.env().set('PROD', true);
const target = (process.env.DPO_PARITY_BACKEND ?? 'webgpu') as 'webgpu' | 'tensorflow';
const probe: { ok: true; adapter?: WebGpuAdapter } | { ok: false; reason: string } = target === 'webgpu' ? await probeWebGpu() : await tensorflowProbe();
const required = process.env.DPO_REQUIRE_WEBGPU === '1' && target === 'webgpu';
if (!probe.ok) {
  if (!required) console.log(`webgpu parity: SKIPPED on ${target}: ${probe.reason}`);
} else if (probe.adapter) {
  const a = probe.adapter;
  console.log(`webgpu parity: adapter ${a.description} (${a.vendor}, ${a.architecture}), maxStorageBufferBindingSize ${a.limits.maxStorageBufferBindingSize}`);
}

/** Whether tfjs-node(-gpu) resolves; selectBackend('tensorflow') then says the rest. */
async function tensorflowProbe(): Promise<{ ok: true } | { ok: false; reason: string }> {
  for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      createRequire(import.meta.url).resolve(pkg);
      return { ok: true };
    } catch {
      // next
    }
  }
  return { ok: false, reason: 'neither @tensorflow/tfjs-node-gpu nor @tensorflow/tfjs-node is installed' };
}

const base = readFixture<ModelFixture>('base.json');
const fx = JSON.parse(readFileSync(fileURLToPath(new URL('../fixtures/dpo/grad.json', import.meta.url)), 'utf8')) as GradFixture;
const lc: LoraConfig = { r: fx.lora.r, alpha: fx.lora.lora_alpha, dropout: fx.lora.lora_dropout, targets: fx.lora.target_modules, useRslora: fx.lora.use_rslora };
const loraValues = Object.fromEntries(Object.entries(fx.lora.tensors).map(([k, p]) => [k, unpack(p)]));
const P = fx.pairs.length;
const pairs: TokenizedPair[] = fx.pairs.map((p) => ({ promptIds: p.prompt, chosenIds: p.chosen, rejectedIds: p.rejected, truncated: false }));
const ref: RefProvider = (_p, positions) => ({
  chosen: Float32Array.from(positions, (i) => fx.ref_logps[i]),
  rejected: Float32Array.from(positions, (i) => fx.ref_logps[P + i]),
});
const micro: MicroBatch[] = [{ positions: [0, 1, 2, 3], pairs }];
const dpo = { loss: 'sigmoid' as const, beta: fx.cases[0].beta, labelSmoothing: 0 };
const adam = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };
const LR = 1e-2;

/** What each backend computes, read back as arrays. */
interface Results {
  logits: Float32Array;
  logps: Float32Array;
  grads: Map<string, Float32Array>;
  /** LoRA values after two AdamW steps (on webgpu: with a resume between them). */
  twoSteps: Map<string, Float32Array>;
}

async function read(m: Map<string, tf.Tensor> | Record<string, tf.Tensor>): Promise<Map<string, Float32Array>> {
  const entries = m instanceof Map ? [...m] : Object.entries(m);
  return new Map(await Promise.all(entries.map(async ([k, t]) => [k, (await t.data()) as Float32Array] as const)));
}

async function dpoStep(cfg: LlamaConfig, w: Weights, lora: Lora, state: AdamWState): Promise<void> {
  const { grads, stats } = stepGradients(cfg, w, lora, micro, ref, dpo, 0, new Rng(1));
  const norm = adamwStep(new Map(Object.entries(loraTensors(lora))), grads, state, LR, 1.0, adam);
  tf.dispose([norm, ...grads.values()]);
  disposeStats(stats);
}

/** Everything on the current backend. `resume`: after step 1, read LoRA and moments back, free them, rebuild, step 2. */
async function compute(resume: boolean): Promise<Results> {
  const { cfg, w } = loadModel(base);
  try {
    const { ids, mask } = batchOf(base);
    const T = ids.shape[1];
    const lossMask = tf.tensor2d(base.attention_mask.map((row, b) => row.map((m, t) => (m === 1 && t >= base.completion_start[b] ? 1 : 0))), [row0(), T], 'float32');
    const logitsT = forwardLogits(cfg, w, ids, mask);
    const logpsT = sequenceLogprobs(cfg, w, ids, mask, lossMask);
    const logits = (await logitsT.data()) as Float32Array;
    const logps = (await logpsT.data()) as Float32Array;
    tf.dispose([ids, mask, lossMask, logitsT, logpsT]);

    let lora = loraFromTensors(cfg, lc, loraValues);
    const { grads: g, stats } = stepGradients(cfg, w, lora, micro, ref, dpo, 0, new Rng(1));
    const grads = await read(g);
    tf.dispose([...g.values()]);
    disposeStats(stats);

    let state = createAdamWState(new Map(Object.entries(loraTensors(lora))));
    await dpoStep(cfg, w, lora, state);
    if (resume) {
      const saved = { lora: await read(loraTensors(lora)), m: await read(state.m), v: await read(state.v), step: state.step };
      disposeLora(lora);
      disposeAdamWState(state);
      lora = loraFromTensors(cfg, lc, Object.fromEntries(saved.lora));
      const back = (m: Map<string, Float32Array>) => new Map([...m].map(([k, a]) => [k, tf.tensor(a, loraValuesShape(k))]));
      state = { step: saved.step, m: back(saved.m), v: back(saved.v) };
    }
    await dpoStep(cfg, w, lora, state);
    const twoSteps = await read(loraTensors(lora));
    disposeLora(lora);
    disposeAdamWState(state);
    return { logits, logps, grads, twoSteps };
  } finally {
    disposeWeights(w);
  }
}

function row0(): number {
  return base.input_ids.length;
}

function loraValuesShape(k: string): number[] {
  return fx.lora.tensors[k].shape;
}

/** Max |a - b| over max(1, max |b|): one scale-free number per comparison, printed so CI shows the margins. */
function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 1;
  for (let i = 0; i < b.length; i++) m = Math.max(m, Math.abs(b[i]));
  return maxAbsDiff(a, b) / m;
}

let cpu: Results;
let gpu: Results;
let started = 0;

describe.skipIf(!probe.ok && !required)('webgpu parity with cpu (tiny fixture model)', () => {
  beforeAll(async () => {
    if (!probe.ok) throw new Error(`DPO_REQUIRE_WEBGPU=1 but there is no WebGPU adapter: ${probe.reason}`);
    await tf.setBackend('cpu');
    cpu = await compute(false);
    started = performance.now();
    const info = await selectBackend(target);
    expect(tf.getBackend()).toBe(target);
    expect(info.name).toBe(target);
    console.log(`webgpu parity: backend ${info.name} (${info.package}), GPU ${info.gpu ? 'yes' : 'no'}`);
    gpu = await compute(true);
  }, 300_000);

  afterAll(async () => {
    await closeBackend();
    expect((globalThis as { navigator?: { gpu?: unknown } }).navigator?.gpu).toBeUndefined();
  });

  it('forward logits match cpu, and both match the float64 reference', () => {
    const want = Float32Array.from(base.expected_logits.flat(2));
    const d = relDiff(gpu.logits, cpu.logits);
    console.log(`webgpu parity: logits max rel diff vs cpu ${d.toExponential(2)}, vs float64 ${relDiff(gpu.logits, want).toExponential(2)} (cpu ${relDiff(cpu.logits, want).toExponential(2)}), ${((performance.now() - started) / 1000).toFixed(1)} s on webgpu`);
    expect(gpu.logits.length).toBe(want.length);
    expect(d).toBeLessThan(1e-5);
    expect(relDiff(gpu.logits, want)).toBeLessThan(1e-4);
  });

  it('completion log-probs match cpu and the float64 reference', () => {
    const d = maxAbsDiff(gpu.logps, cpu.logps);
    console.log(`webgpu parity: log-probs max abs diff vs cpu ${d.toExponential(2)}, vs float64 ${maxAbsDiff(gpu.logps, base.expected_completion_logp).toExponential(2)}`);
    expect(d).toBeLessThan(1e-4);
    expect(maxAbsDiff(gpu.logps, base.expected_completion_logp)).toBeLessThan(1e-3);
  });

  it("a DPO step's LoRA gradients match cpu and the float64 finite differences", () => {
    const want = fx.cases[0].grads;
    expect([...gpu.grads.keys()].sort()).toEqual(Object.keys(want).sort());
    const gmax = Math.max(...Object.values(want).map((g) => Math.max(...g.map(Math.abs))));
    let worst = 0;
    let worstFd = 0;
    for (const [k, g] of gpu.grads) {
      worst = Math.max(worst, maxAbsDiff(g, cpu.grads.get(k)!) / gmax);
      worstFd = Math.max(worstFd, maxAbsDiff(g, want[k]) / gmax);
    }
    console.log(`webgpu parity: DPO gradients max diff / max |g| vs cpu ${worst.toExponential(2)}, vs finite differences ${worstFd.toExponential(2)}`);
    expect(worst).toBeLessThan(1e-5);
    expect(worstFd).toBeLessThan(1e-3);
  });

  it('two AdamW steps with a resume between them match two uninterrupted cpu steps', () => {
    let worst = 0;
    let moved = 0;
    for (const [k, v] of gpu.twoSteps) {
      worst = Math.max(worst, maxAbsDiff(v, cpu.twoSteps.get(k)!));
      moved = Math.max(moved, maxAbsDiff(cpu.twoSteps.get(k)!, loraValues[k]));
    }
    console.log(`webgpu parity: resumed LoRA after 2 steps max abs diff vs cpu ${worst.toExponential(2)} (the steps moved it by up to ${moved.toExponential(2)})`);
    expect(moved).toBeGreaterThan(1e-3); // the steps really changed the adapters (lr 1e-2)
    expect(worst).toBeLessThan(1e-5);
  });

  it.skipIf(target !== 'webgpu')('an AddN of more tensors than the device binds at once (globalNorm over many gradients) equals the cpu sum', async () => {
    const n = 40; // lavapipe binds 16 storage buffers per stage; the stock kernel would be an invalid pipeline
    const xs = Array.from({ length: n }, (_, i) => tf.fill([3, 5], i + 0.25));
    const sum = tf.addN(xs);
    const got = (await sum.data()) as Float32Array;
    tf.dispose([sum, ...xs]);
    const want = (n * (n - 1)) / 2 + 0.25 * n; // 800
    expect(Array.from(got)).toEqual(new Array(15).fill(want));
  });

  it.skipIf(target !== 'webgpu')('a tensor above maxStorageBufferBindingSize throws a BackendError instead of coming back as zeros', () => {
    const limit = webgpuAdapter()!.limits.maxStorageBufferBindingSize;
    const before = tf.memory().numTensors;
    let err: unknown;
    try {
      tf.fill([limit / 4 + 1], 1);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BackendError);
    expect((err as Error).message).toMatch(/^--backend webgpu: an intermediate tensor: float32 \[\d+\] is [\d.]+ (MiB|GiB) \(expected at most maxStorageBufferBindingSize = /);
    expect(tf.memory().numTensors).toBeLessThanOrEqual(before + 1);
  });

  it.skipIf(target !== 'webgpu')('dataSync of a GPU tensor is a BackendError naming the caller; host-resident values still read', () => {
    const y = tf.matMul(tf.ones([64, 64]), tf.ones([64, 64])); // computed on the GPU
    expect(() => y.dataSync()).toThrow(BackendError);
    expect(() => y.dataSync()).toThrow(/^--backend webgpu: test\/backend\/webgpu-parity\.test\.ts:\d+: a synchronous read \(dataSync\/arraySync\) of a tensor on the GPU \(expected await data\(\) or await array\(\)\)/);
    y.dispose();
    const x = tf.tensor1d([1, 2, 3]); // not uploaded yet
    expect(Array.from(x.dataSync())).toEqual([1, 2, 3]);
    x.dispose();
  });
});

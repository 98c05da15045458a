// The backends' ceilings (plan/ceilings.ts): Llama 3.2 1B's float32 weights are counted exactly and exceed the wasm
// heap; a tiny model exceeds a tiny injected heap by its weights or by its step's peak; `plan` prints every backend.
import { describe, expect, it } from 'vitest';
import { LLAMA_31_8B, LLAMA_32_1B, planMemory, runPlan, type PlanSettings } from '../../src/plan/memory.js';
import { backendVerdicts, machineCeilings, WASM_HEAP_BYTES, wasmVerdict, weightSizes } from '../../src/plan/ceilings.js';
import { BENCH, configOf } from './measure.js';

const QKVO = ['q_proj', 'k_proj', 'v_proj', 'o_proj'];
const GiB = 1024 ** 3;
const tiny = configOf(BENCH.tiny);
const settings = (maxLength: number, batchSize: number): PlanSettings => ({
  maxLength, batchSize, gradientCheckpointing: false, loraR: 8, loraTargets: QKVO, logprobChunk: 64, gpu: false, deviceBytes: null,
});

describe('backend ceilings', () => {
  it('the wasm heap is emscripten getHeapMax of tfjs-backend-wasm 4.22: 4 GiB less one 64 KiB page', () => {
    expect(WASM_HEAP_BYTES).toBe(4 * GiB - 65536);
    expect(machineCeilings().wasmHeapBytes).toBe(WASM_HEAP_BYTES);
    expect(machineCeilings({ wasmHeapBytes: 7 }).wasmHeapBytes).toBe(7);
  });

  it('Llama 3.2 1B: 1,235,814,400 params (tied head), 4.94 GB of float32, over the wasm heap', () => {
    // embed 128256*2048 + 16 layers * (q 2048^2 + k,v 2048*512 + o 2048^2 + 3 * 2048*8192 + 2 norms 2048) + final norm.
    const perLayer = 2048 * 2048 * 2 + 2048 * 512 * 2 + 3 * 2048 * 8192 + 2 * 2048;
    const w = weightSizes(LLAMA_32_1B);
    expect(w.params).toBe(128256 * 2048 + 16 * perLayer + 2048);
    expect(w.params).toBe(1_235_814_400);
    expect(w.bytes).toBe(4_943_257_600);
    expect(w.largest).toEqual({ name: 'model.embed_tokens.weight', shape: [128256, 2048], bytes: 128256 * 2048 * 4 });
    const v = wasmVerdict(LLAMA_32_1B, null, machineCeilings());
    expect(v).toMatchObject({ fits: false, weightsExceed: true });
    expect(v.why).toBe("the model's 4.60 GiB of float32 weights (1.236 B params) exceed wasm's 4 GiB heap");
  });

  it('a tiny model: its weights past a tiny heap, or only its step peak, or neither', () => {
    const w = weightSizes(tiny).bytes;
    const plan = planMemory(tiny, settings(64, 2));
    expect(plan.peakBytes).toBeGreaterThan(w);
    expect(wasmVerdict(tiny, plan, machineCeilings({ wasmHeapBytes: w - 1 }))).toMatchObject({ fits: false, weightsExceed: true });
    const peak = wasmVerdict(tiny, plan, machineCeilings({ wasmHeapBytes: w + 1 }));
    expect(peak).toMatchObject({ fits: false, weightsExceed: false });
    expect(peak.why).toMatch(/^the step's peak of [\d.]+ MiB \(weights [\d.]+ MiB, activations [\d.]+ MiB\) exceeds wasm's [\d.]+ MiB heap$/);
    expect(wasmVerdict(tiny, null, machineCeilings({ wasmHeapBytes: w + 1 })).fits).toBe(true); // weights alone fit
    expect(wasmVerdict(tiny, plan, machineCeilings({ wasmHeapBytes: plan.peakBytes })).fits).toBe(true);
  });

  it('every backend gets a verdict: cpu and tensorflow against RAM, webgpu per tensor at run time', () => {
    const plan = planMemory(LLAMA_32_1B, settings(256, 1));
    const vs = backendVerdicts(LLAMA_32_1B, plan, machineCeilings({ hostBytes: 24 * GiB, hostFreeBytes: 20 * GiB }));
    // webgpu splits the 0.98 GiB embedding by rows (model/row-blocks.ts): the bound is the largest other weight, an
    // MLP projection of 64 MiB, which any adapter binds.
    expect(vs.map((v) => [v.backend, v.fits])).toEqual([['wasm', false], ['cpu', true], ['tensorflow', true], ['webgpu', true]]);
    expect(vs[1].why).toContain('machine RAM (24.00 GiB, 20.00 GiB free now)');
    expect(vs[3].why).toMatch(/^the largest tensor not split by rows, model\.layers\.0\.mlp\.(gate|up|down)_proj\.weight \[(8192, 2048|2048, 8192)\], is 64\.00 MiB: within/);
    // Llama 3.1 8B's MLP projections (224 MiB) cannot be split: only the adapter's limit, at run time, decides.
    const big = backendVerdicts(LLAMA_31_8B, planMemory(LLAMA_31_8B, settings(256, 1)), machineCeilings({ hostBytes: 64 * GiB, hostFreeBytes: 60 * GiB }));
    expect(big[3].fits).toBe(null);
    expect(big[3].why).toMatch(/mlp\.(gate|up|down)_proj\.weight \[(14336, 4096|4096, 14336)\], is 0\.22 GiB, over WebGPU's default 128 MiB/);
    const small = backendVerdicts(LLAMA_32_1B, plan, machineCeilings({ hostBytes: 4 * GiB, hostFreeBytes: 1 * GiB }));
    expect(small[1].fits).toBe(false);
    // The tiny model's largest tensor (embed 512x64) is under WebGPU's default binding size: any adapter takes it.
    expect(backendVerdicts(tiny, planMemory(tiny, settings(64, 2)), machineCeilings())[3].fits).toBe(true);
  });

  it('`plan --model llama-3.2-1b` prints each backend and its ceiling', () => {
    const { text, backends } = runPlan({ model: 'llama-3.2-1b', maxLength: 256, batchSize: 1, gradientCheckpointing: false, loraR: 16, loraTargets: QKVO, deviceMemoryGB: null, gpu: false });
    expect(backends.find((b) => b.backend === 'wasm')!.fits).toBe(false);
    expect(text).toContain('1.236 B params x 4 bytes (frozen; held as float32 on every backend, bfloat16 on disk)');
    expect(text).toMatch(/\n {4}wasm {7}no {10}the model's 4\.60 GiB of float32 weights \(1\.236 B params\) exceed wasm's 4 GiB heap\n/);
    for (const b of ['cpu', 'tensorflow', 'webgpu']) expect(text).toMatch(new RegExp(`\\n {4}${b} +(yes|no|at run time) `));
  });
});

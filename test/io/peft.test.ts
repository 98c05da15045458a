// PEFT adapters on disk: the layout PEFT writes (keys, shapes, F32, adapter_config.json fields), save -> load gives
// identical values and logits, and strict loading (DoRA, missing / unexpected / misshapen tensors, wrong peft_type).
import * as tf from '@tensorflow/tfjs';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LlamaConfig } from '../../src/config/llama.js';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, loadAdapter, readAdapterConfig, saveAdapter } from '../../src/io/peft.js';
import { forwardLogits, type Weights } from '../../src/model/llama.js';
import { disposeLora, linearShape, loraFromTensors, loraTensors, modulePath, type Lora, type LoraConfig } from '../../src/model/lora.js';
import { FormatError } from '../../src/util/errors.js';
import { Rng } from '../../src/util/rng.js';
import { batchOf, disposeWeights, loadModel, readFixture, type ModelFixture } from '../model/fixture.js';
import { f32Safetensors, safetensorsHeader, tempDir } from '../train/helpers.js';

let cfg: LlamaConfig;
let w: Weights;
let fx: ModelFixture;
let root: string;

beforeAll(async () => {
  await tf.setBackend('cpu');
  fx = readFixture<ModelFixture>('base.json');
  ({ cfg, w } = loadModel(fx));
  root = tempDir('adapter');
});

afterAll(() => {
  disposeWeights(w);
  rmSync(root, { recursive: true, force: true });
});

/** Random non-zero A and B for every target, keyed `<module path>.lora_{A|B}`, with their shapes. */
function randomValues(lc: LoraConfig, seed: number): Record<string, { shape: number[]; data: Float32Array }> {
  const rng = new Rng(seed);
  const out: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (let l = 0; l < cfg.numLayers; l++) {
    for (const t of lc.targets) {
      const [o, i] = linearShape(cfg, t);
      for (const [side, shape] of [['A', [lc.r, i]], ['B', [o, lc.r]]] as const) {
        out[`${modulePath(l, t)}.lora_${side}`] = { shape: [...shape], data: Float32Array.from({ length: shape[0] * shape[1] }, () => rng.normal(0, 0.2)) };
      }
    }
  }
  return out;
}

function makeLora(lc: LoraConfig, seed: number): Lora {
  return loraFromTensors(cfg, lc, Object.fromEntries(Object.entries(randomValues(lc, seed)).map(([k, v]) => [k, v.data])));
}

const logitsOf = (lora: Lora) => tf.tidy(() => {
  const { ids, mask } = batchOf(fx);
  return forwardLogits(cfg, w, ids, mask, { lora }).dataSync() as Float32Array;
});

const LC: LoraConfig = { r: 4, alpha: 8, dropout: 0.05, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], useRslora: false };

describe('PEFT adapter files', () => {
  it('saves and loads back the same values: identical logits', async () => {
    const lora = makeLora(LC, 1);
    const dir = join(root, 'roundtrip');
    await saveAdapter(dir, lora, '/models/base');
    const back = loadAdapter(dir, cfg);
    try {
      expect([...back.layers.keys()]).toEqual([...lora.layers.keys()]);
      const a = loraTensors(lora);
      const b = loraTensors(back);
      for (const k of Object.keys(a)) expect(Buffer.from((b[k].dataSync() as Float32Array).buffer).equals(Buffer.from((a[k].dataSync() as Float32Array).buffer)), k).toBe(true);
      expect(back.scale).toBe(lora.scale);
      expect(back.config).toEqual(lora.config);
      const la = logitsOf(lora);
      const lb = logitsOf(back);
      expect(Buffer.from(lb.buffer).equals(Buffer.from(la.buffer))).toBe(true);
      // The adapter matters, so identical logits are not trivially the base model's.
      back.enabled = false;
      expect(Math.max(...Array.from(logitsOf(back), (v, i) => Math.abs(v - la[i])))).toBeGreaterThan(1e-2);
    } finally {
      disposeLora(lora);
      disposeLora(back);
    }
  });

  it('writes the PEFT layout: keys, A [r, in] and B [out, r], F32, and adapter_config.json fields', async () => {
    const lc: LoraConfig = { r: 2, alpha: 16, dropout: 0.1, targets: ['v_proj', 'q_proj', 'down_proj'], useRslora: true };
    const lora = makeLora(lc, 2);
    const dir = join(root, 'layout');
    await saveAdapter(dir, lora, 'meta-llama/Llama-3.1-8B-Instruct');
    disposeLora(lora);
    const h = safetensorsHeader(join(dir, ADAPTER_WEIGHTS));
    const names = Object.keys(h).filter((k) => k !== '__metadata__').sort();
    const want: string[] = [];
    for (let l = 0; l < 2; l++) {
      for (const [block, t] of [['self_attn', 'q_proj'], ['self_attn', 'v_proj'], ['mlp', 'down_proj']]) {
        for (const s of ['A', 'B']) want.push(`base_model.model.model.layers.${l}.${block}.${t}.lora_${s}.weight`);
      }
    }
    expect(names).toEqual(want.sort());
    expect(h['base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight']).toMatchObject({ dtype: 'F32', shape: [2, 32] });
    expect(h['base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight']).toMatchObject({ dtype: 'F32', shape: [32, 2] });
    expect(h['base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight']).toMatchObject({ dtype: 'F32', shape: [16, 2] }); // 2 kv heads x 8
    expect(h['base_model.model.model.layers.1.mlp.down_proj.lora_A.weight']).toMatchObject({ dtype: 'F32', shape: [2, 48] });
    expect(h['base_model.model.model.layers.1.mlp.down_proj.lora_B.weight']).toMatchObject({ dtype: 'F32', shape: [32, 2] });
    expect((h as Record<string, unknown>).__metadata__).toEqual({ format: 'pt' });
    const c = JSON.parse(readFileSync(join(dir, ADAPTER_CONFIG), 'utf8'));
    expect(c).toMatchObject({ peft_type: 'LORA', task_type: 'CAUSAL_LM', r: 2, lora_alpha: 16, lora_dropout: 0.1, use_rslora: true, use_dora: false,
      bias: 'none', fan_in_fan_out: false, base_model_name_or_path: 'meta-llama/Llama-3.1-8B-Instruct' });
    expect([...c.target_modules].sort()).toEqual(['down_proj', 'q_proj', 'v_proj']);
    expect(readAdapterConfig(dir)).toEqual({ r: 2, alpha: 16, dropout: 0.1, targets: ['q_proj', 'v_proj', 'down_proj'], useRslora: true });
    const back = loadAdapter(dir, cfg);
    expect(back.scale).toBeCloseTo(16 / Math.sqrt(2), 12); // rsLoRA
    disposeLora(back);
  });

  it('loads an adapter written by hand as PEFT would (target_modules as a string list, "all-linear")', () => {
    const dir = join(root, 'handmade');
    const lc: LoraConfig = { ...LC, targets: ['q_proj', 'v_proj'], dropout: 0 };
    const vals = randomValues(lc, 3);
    writeAdapter(dir, { peft_type: 'LORA', r: 4, lora_alpha: 8, lora_dropout: 0, target_modules: ['v_proj', 'q_proj'], use_rslora: false }, vals);
    const a = loadAdapter(dir, cfg);
    try {
      const t = loraTensors(a);
      for (const [k, v] of Object.entries(vals)) expect(Array.from(t[k].dataSync())).toEqual(Array.from(v.data));
      expect(a.scale).toBe(2);
    } finally {
      disposeLora(a);
    }
    const all = join(root, 'all-linear');
    writeAdapter(all, { peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: 'all-linear' }, randomValues(LC, 4));
    const b = loadAdapter(all, cfg);
    expect(b.layers.size).toBe(14);
    disposeLora(b);
  });

  describe('strict loading', () => {
    const good = { peft_type: 'LORA', r: 4, lora_alpha: 8, lora_dropout: 0, target_modules: ['q_proj', 'v_proj'], use_rslora: false };
    const lc: LoraConfig = { ...LC, targets: ['q_proj', 'v_proj'] };
    const expectFormat = (dir: string, pattern: RegExp) => {
      let err: unknown = null;
      try {
        disposeLora(loadAdapter(dir, cfg));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(FormatError);
      expect((err as Error).message).toMatch(pattern);
    };

    it('refuses DoRA, another peft_type, per-module ranks and biases', () => {
      const vals = randomValues(lc, 5);
      writeAdapter(join(root, 'dora'), { ...good, use_dora: true }, vals);
      expectFormat(join(root, 'dora'), /adapter_config\.json: use_dora: true \(expected false/);
      writeAdapter(join(root, 'ia3'), { ...good, peft_type: 'IA3' }, vals);
      expectFormat(join(root, 'ia3'), /peft_type: "IA3" \(expected "LORA"\)/);
      writeAdapter(join(root, 'rank'), { ...good, rank_pattern: { q_proj: 8 } }, vals);
      expectFormat(join(root, 'rank'), /rank_pattern/);
      writeAdapter(join(root, 'bias'), { ...good, bias: 'all' }, vals);
      expectFormat(join(root, 'bias'), /bias/);
    });

    it('refuses a missing tensor, an unexpected one, a wrong shape and a missing weights file', () => {
      const vals = randomValues(lc, 6);
      const missing = { ...vals };
      delete missing['model.layers.1.self_attn.v_proj.lora_B'];
      writeAdapter(join(root, 'missing'), good, missing);
      expectFormat(join(root, 'missing'), /adapter_model\.safetensors: adapter model\.layers\.1\.self_attn\.v_proj\.lora_B: missing/);
      writeAdapter(join(root, 'extra'), good, { ...vals, 'model.layers.0.mlp.up_proj.lora_A': { shape: [4, 32], data: new Float32Array(128) } });
      expectFormat(join(root, 'extra'), /unexpected keys model\.layers\.0\.mlp\.up_proj\.lora_A/);
      writeAdapter(join(root, 'shape'), { ...good, r: 2 }, vals);
      expectFormat(join(root, 'shape'), /lora_A: 128 values \(expected 64 for shape \[2,32\]\)/);
      writeAdapter(join(root, 'nofile'), good, vals);
      rmSync(join(root, 'nofile', ADAPTER_WEIGHTS));
      writeFileSync(join(root, 'nofile', 'adapter_model.bin'), '');
      expectFormat(join(root, 'nofile'), /adapter_model\.safetensors: missing.*adapter_model\.bin/);
    });
  });
});

/** An adapter folder as PEFT lays it out, written without src/io. */
function writeAdapter(dir: string, config: Record<string, unknown>, vals: Record<string, { shape: number[]; data: Float32Array }>): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const named = Object.fromEntries(Object.entries(vals).map(([k, v]) => [`base_model.model.${k}.weight`, v]));
  writeFileSync(join(dir, ADAPTER_CONFIG), JSON.stringify({ task_type: 'CAUSAL_LM', ...config }));
  writeFileSync(join(dir, ADAPTER_WEIGHTS), f32Safetensors(named));
}

// `--backend auto` against the wasm heap's ceiling, with a tiny model and a tiny injected heap: an explicit wasm whose
// weights cannot fit is refused before anything is chosen (never wasm's Aborted()); auto skips wasm when the step's
// plan exceeds the heap, picks cpu and says why in its one line. selectBackend keeps module state: own file, in order.
import * as tf from '@tensorflow/tfjs';
import { createRequire } from 'node:module';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { assertWeightsFit, currentBackend, selectBackend } from '../../src/backend/index.js';
import { expectedWeightShapes } from '../../src/model/llama.js';
import { planMemory } from '../../src/plan/memory.js';
import { weightSizes } from '../../src/plan/ceilings.js';
import { BackendError } from '../../src/util/errors.js';
import { openModel } from '../../src/io/model-dir.js';
import { BENCH, configOf } from '../plan/measure.js';

function resolves(pkg: string): boolean {
  try {
    createRequire(import.meta.url).resolve(pkg);
    return true;
  } catch {
    return false;
  }
}
const hasTfNode = resolves('@tensorflow/tfjs-node') || resolves('@tensorflow/tfjs-node-gpu');

const cfg = configOf(BENCH.tiny);
// embed + untied head 2 * 512*64, 2 layers * (q, o 64*64; k, v 64*32; gate, up, down 64*176; 2 norms 64), final norm 64.
const weights = weightSizes(cfg).bytes;
const step = { maxLength: 64, batchSize: 2, gradientCheckpointing: false, loraR: 8, loraTargets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'] };

describe.skipIf(hasTfNode)('auto and the wasm heap (no tfjs-node here, so auto would pick wasm)', () => {
  it('the tiny model: 158,016 params, and a step peak well over its weights', () => {
    expect(weights).toBe(4 * (2 * 512 * 64 + 2 * (2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * 176 + 2 * 64) + 64));
    expect(weights).toBe(158_016 * 4);
    const peak = planMemory(cfg, { ...step, logprobChunk: 64, gpu: false, deviceBytes: null }).peakBytes;
    expect(peak).toBeGreaterThan(2 * weights);
  });

  it('--backend wasm with weights past the heap is a BackendError naming the flag and both sizes, before any choice', async () => {
    const lines: string[] = [];
    const err = await selectBackend('wasm', (l) => lines.push(l), { cfg, source: 'tiny', ceilings: { wasmHeapBytes: 512 * 1024 } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect((err as Error).message).toBe("--backend wasm with tiny: the model's 0.60 MiB of float32 weights (0.158 M params) exceed wasm's 0.50 MiB heap" +
      " (expected a model whose float32 weights fit the 0.50 MiB wasm32 heap). Use --backend cpu (JS memory, bounded by the machine's RAM), or --backend auto, which picks it;" +
      ' `node train.js plan --model M` shows each backend\'s ceiling.');
    expect(lines).toEqual([]);
    expect(currentBackend()).toBeNull();
  });

  it('--backend wasm with a Llama-3.2-1B config.json (no weights at all) is refused by openModel before loading', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dpo-1b-'));
    // meta-llama/Llama-3.2-1B's config.json, the keys our parser reads.
    writeFileSync(join(dir, 'config.json'), JSON.stringify({
      architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 128256, hidden_size: 2048, intermediate_size: 8192,
      num_hidden_layers: 16, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 64, rms_norm_eps: 1e-5, rope_theta: 500000,
      rope_scaling: { rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
      max_position_embeddings: 131072, tie_word_embeddings: true, bos_token_id: 128000, eos_token_id: 128001, torch_dtype: 'bfloat16',
    }));
    const err = await openModel('wasm', dir, () => {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect((err as Error).message).toMatch(new RegExp(`^--backend wasm with ${dir}: the model's 4\\.60 GiB of float32 weights \\(1\\.236 B params\\) exceed wasm's 4 GiB heap`));
    expect(currentBackend()).toBeNull();
  });

  it('auto with weights that fit but a step peak past the heap picks cpu and says why in one line', async () => {
    const lines: string[] = [];
    const info = await selectBackend('auto', (l) => lines.push(l), { cfg, settings: step, ceilings: { wasmHeapBytes: weights + 4096 } });
    expect(info.name).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
    expect(lines[0]).toMatch(/^backend: cpu \(auto: the step's peak of [\d.]+ MiB \(weights 0\.60 MiB, activations [\d.]+ MiB\) exceeds wasm's 0\.61 MiB heap; @tensorflow\/tfjs-backend-cpu\), GPU not used$/);
    expect(lines[1]).toMatch(/^kernels: /);
  });

  it('cpu holds what wasm could not: assertWeightsFit passes, and the choice stays', async () => {
    expect(() => assertWeightsFit(expectedWeightShapes(cfg))).not.toThrow();
    expect(await selectBackend('auto', () => {}, { cfg, ceilings: { wasmHeapBytes: 1024 } })).toBe(currentBackend());
  });
});

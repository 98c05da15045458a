// Measures the peak device memory of one real training step (stepGradients + adamwStep) on random weights, for
// comparing with planMemory: static tensors (weights, LoRA, Adam moments) plus the step's peak growth.
import * as tf from '@tensorflow/tfjs';
import { parseLlamaConfig, type LlamaConfig } from '../../src/config/llama.js';
import { expectedWeightShapes, type Weights } from '../../src/model/llama.js';
import { createLora, disposeLora, loraTensors } from '../../src/model/lora.js';
import { adamwStep, createAdamWState, disposeAdamWState } from '../../src/train/optimizer.js';
import { measurePeak } from '../../src/plan/peak.js';
import type { RefProvider } from '../../src/dpo/objective.js';
import { disposeStats, stepGradients } from '../../src/train/dpo-step.js';
import type { TokenizedPair } from '../../src/tokenizer/pair.js';
import { Rng } from '../../src/util/rng.js';

export interface Shape {
  hidden: number; layers: number; heads: number; kv: number; inter: number; vocab: number; seq: number; pairs: number; r: number;
}

/** The presets of /work/shared/bench/torch_dpo_step.py (tiny is also src/io/tiny-model.ts's default shape). */
export const BENCH: Record<'tiny' | 'small', Shape> = {
  tiny: { hidden: 64, layers: 2, heads: 4, kv: 2, inter: 176, vocab: 512, seq: 64, pairs: 2, r: 8 },
  small: { hidden: 512, layers: 4, heads: 8, kv: 2, inter: 1408, vocab: 8192, seq: 256, pairs: 2, r: 16 },
};

export function configOf(s: Shape): LlamaConfig {
  return parseLlamaConfig({
    vocab_size: s.vocab, hidden_size: s.hidden, intermediate_size: s.inter, num_hidden_layers: s.layers, num_attention_heads: s.heads,
    num_key_value_heads: s.kv, rms_norm_eps: 1e-5, rope_theta: 500000,
    rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 },
  }, 'bench shape');
}

export interface Measured {
  staticBytes: number;
  stepPeakDelta: number;
  /** staticBytes + stepPeakDelta: what the device must hold. */
  peakBytes: number;
  /** Max of tf.memory().numBytes (counts views and saved clones again). */
  numBytesPeak: number;
  stepMs: number;
}

export function measureStep(s: Shape, targets: string[], checkpointing: boolean): Measured {
  const cfg = configOf(s);
  const rng = new Rng(1);
  const w: Weights = {};
  for (const [k, shape] of Object.entries(expectedWeightShapes(cfg))) w[k] = tf.randomNormal(shape, 0, 0.05, 'float32', rng.nextU32());
  const lora = createLora(cfg, { r: s.r, alpha: 2 * s.r, dropout: 0, targets, useRslora: false }, 2);
  const vars = new Map(Object.entries(loraTensors(lora)));
  const adam = createAdamWState(vars);
  // Full-length pairs: a quarter prompt, the rest completion, so the batch is [2P, seq].
  const prompt = Math.floor(s.seq / 4);
  const ids = (n: number) => Array.from({ length: n }, () => 3 + rng.int(s.vocab - 3));
  const pairs: TokenizedPair[] = Array.from({ length: s.pairs }, () => ({ promptIds: ids(prompt), chosenIds: ids(s.seq - prompt), rejectedIds: ids(s.seq - prompt), truncated: false }));
  const ref: RefProvider = (p) => ({ chosen: new Float32Array(p.length).fill(-50), rejected: new Float32Array(p.length).fill(-50) });
  let staticBytes = 0;
  for (const t of [...Object.values(w), ...vars.values(), ...adam.m.values(), ...adam.v.values()]) staticBytes += t.size * 4;
  const t0 = performance.now();
  const { peakBufferDelta, peakBytes } = measurePeak(() => {
    const { grads, stats } = stepGradients(cfg, w, lora, [{ pairs, positions: pairs.map((_, i) => i) }], ref,
      { loss: 'sigmoid', beta: 0.1, labelSmoothing: 0, gradientCheckpointing: checkpointing }, 0, new Rng(3));
    const norm = adamwStep(vars, grads, adam, 1e-4, 1, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 });
    tf.dispose([norm, ...grads.values()]);
    disposeStats(stats);
  });
  const stepMs = performance.now() - t0;
  disposeAdamWState(adam);
  disposeLora(lora);
  tf.dispose(Object.values(w));
  return { staticBytes, stepPeakDelta: peakBufferDelta, peakBytes: staticBytes + peakBufferDelta, numBytesPeak: peakBytes, stepMs };
}

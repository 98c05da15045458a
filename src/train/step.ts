// One optimizer step's gradients for any objective: each micro-batch's mean loss, weighted by its share of the step's
// items, through tf.variableGrads on the LoRA variables only, summed over `gradAccum` micro-batches. So k micro-batches
// of n/k items give exactly the gradient of one batch of n (HF Trainer's accumulation). AdamW is train/optimizer.ts.
import * as tf from '@tensorflow/tfjs';
import { type Lora, loraTensors } from '../model/lora.js';
import type { Rng } from '../util/rng.js';
import type { Objective, StepValues } from './objective.js';

export interface StepOutput {
  /** Keyed like loraTensors (module path + .lora_A / .lora_B). */
  grads: Map<string, tf.Tensor>;
  /** The micro-batches' per-item values, concatenated in step order; dispose with disposeValues. */
  values: StepValues;
  tokens: number;
}

/** `trainable`: the Variables to differentiate, keyed as the grads come back; default the adapters (full SFT passes the weights). */
export function objectiveStep<M>(objective: Objective<M>, lora: Lora, micro: readonly M[], dropoutRng: Rng, trainable?: Record<string, tf.Variable>): StepOutput {
  const vars = trainable ?? loraTensors(lora);
  const names = Object.keys(vars);
  const plans = micro.map((m) => objective.microBatch(m, micro, { lora, dropoutRng }));
  const total = plans.reduce((n, p) => n + p.size, 0);
  const grads = new Map<string, tf.Tensor>();
  const parts: StepValues[] = [];
  for (const plan of plans) {
    let kept: StepValues | null = null;
    const { value, grads: g } = tf.variableGrads(() => {
      const out = plan.loss();
      // variableGrads runs this in a tidy: keep the logged values past it.
      kept = Object.fromEntries(Object.entries(out.values).map(([k, t]) => [k, tf.keep(t.clone())]));
      return tf.mul(out.loss, plan.size / total) as tf.Scalar;
    }, names.map((n) => vars[n]));
    value.dispose();
    plan.dispose?.();
    parts.push(kept!);
    // variableGrads keys its result by tf.Variable.name, not by our module keys.
    for (const n of names) {
      const gn = g[vars[n].name];
      const prev = grads.get(n);
      if (prev) {
        grads.set(n, tf.add(prev, gn));
        tf.dispose([prev, gn]);
      } else grads.set(n, gn);
    }
  }
  const values: StepValues = {};
  for (const k of Object.keys(parts[0] ?? {})) values[k] = (parts.length === 1 ? parts[0][k].clone() : tf.concat(parts.map((p) => p[k]))) as tf.Tensor1D;
  for (const p of parts) tf.dispose(Object.values(p));
  return { grads, values, tokens: plans.reduce((n, p) => n + p.tokens, 0) };
}

export function disposeValues(v: StepValues): void {
  tf.dispose(Object.values(v));
}

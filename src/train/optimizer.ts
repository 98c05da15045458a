// AdamW on the LoRA variables only, with global-norm clipping. Matches torch.optim.AdamW (decoupled decay,
// bias-corrected moments) and torch.nn.utils.clip_grad_norm_ (coef = max / (norm + 1e-6), capped at 1). With the addon's
// kernels registered (kernels/adamw.ts) the whole step is two kernel calls; the plain-ops version is the reference.
import * as tf from '@tensorflow/tfjs';
import { fusedActive, runFused } from '../../kernels/native.js';

export interface AdamWSettings {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Names that weight decay applies to; absent: all (one torch param group). nanoGPT's configure_optimizers decays matrices only. */
  decay?: ReadonlySet<string>;
}

export interface AdamWState {
  /** Optimizer steps taken so far (torch's `step`). */
  step: number;
  m: Map<string, tf.Tensor>;
  v: Map<string, tf.Tensor>;
}

export function createAdamWState(vars: Map<string, tf.Variable>): AdamWState {
  const m = new Map<string, tf.Tensor>();
  const v = new Map<string, tf.Tensor>();
  for (const [name, x] of vars) {
    m.set(name, tf.zerosLike(x));
    v.set(name, tf.zerosLike(x));
  }
  return { step: 0, m, v };
}

export function disposeAdamWState(s: AdamWState): void {
  for (const t of s.m.values()) t.dispose();
  for (const t of s.v.values()) t.dispose();
}

/** Global L2 norm of all gradients, as a scalar tensor. */
export function globalNorm(grads: Map<string, tf.Tensor>): tf.Scalar {
  if (fusedActive('DpoGlobalNorm')) return globalNormFused([...grads.values()]);
  return globalNormReference(grads);
}

/** The plain-ops norm: float32 sums of squares per tensor, added. */
export function globalNormReference(grads: Map<string, tf.Tensor>): tf.Scalar {
  return tf.tidy(() => tf.sqrt(tf.addN([...grads.values()].map((g) => tf.sum(tf.square(g))))) as tf.Scalar);
}

/**
 * One AdamW update in place: clips by `maxGradNorm` (0 = off), then p <- p - lr*wd*p - lr * mhat / (sqrt(vhat) + eps).
 * Returns the pre-clip gradient norm (what HF Trainer logs as grad_norm). Gradients are not disposed here.
 */
export function adamwStep(vars: Map<string, tf.Variable>, grads: Map<string, tf.Tensor>, state: AdamWState, lr: number, maxGradNorm: number, s: AdamWSettings): tf.Scalar {
  return fusedActive('DpoAdamW') ? adamwStepFused(vars, grads, state, lr, maxGradNorm, s) : adamwStepReference(vars, grads, state, lr, maxGradNorm, s);
}

function globalNormFused(grads: tf.Tensor[]): tf.Scalar {
  const inputs: Record<string, tf.Tensor> = {};
  grads.forEach((g, i) => { inputs[`g${i}`] = g; });
  return runFused('DpoGlobalNorm', inputs)[0] as tf.Scalar;
}

/** adamwStep through the DpoGlobalNorm and DpoAdamW kernels: the same update, two kernel calls. */
export function adamwStepFused(vars: Map<string, tf.Variable>, grads: Map<string, tf.Tensor>, state: AdamWState, lr: number, maxGradNorm: number, s: AdamWSettings): tf.Scalar {
  const names = [...vars.keys()];
  const gs = names.map((name) => {
    const g = grads.get(name);
    if (!g) throw new Error(`adamwStep: no gradient for ${name}`);
    return g;
  });
  state.step += 1;
  const norm = globalNormFused(gs);
  const n = names.length;
  const inputs: Record<string, tf.Tensor> = { norm };
  names.forEach((name, i) => {
    inputs[`p${i}`] = vars.get(name)!;
    inputs[`g${i}`] = gs[i];
    inputs[`m${i}`] = state.m.get(name)!;
    inputs[`v${i}`] = state.v.get(name)!;
  });
  const attrs = { beta1: s.beta1, beta2: s.beta2, eps: s.eps, lr, weightDecay: s.weightDecay, step: state.step, maxGradNorm,
    decayMask: names.map((name) => (!s.decay || s.decay.has(name) ? 1 : 0)) };
  const out = runFused('DpoAdamW', inputs, attrs as unknown as tf.NamedAttrMap);
  names.forEach((name, i) => {
    const p = vars.get(name)!;
    p.assign(out[i]);
    out[i].dispose();
    state.m.get(name)!.dispose();
    state.v.get(name)!.dispose();
    state.m.set(name, out[n + i]);
    state.v.set(name, out[2 * n + i]);
  });
  return norm;
}

/** The plain-ops AdamW: ~12 tfjs ops per variable. */
export function adamwStepReference(vars: Map<string, tf.Variable>, grads: Map<string, tf.Tensor>, state: AdamWState, lr: number, maxGradNorm: number, s: AdamWSettings): tf.Scalar {
  state.step += 1;
  const t = state.step;
  const bc1 = 1 - Math.pow(s.beta1, t);
  const bc2 = 1 - Math.pow(s.beta2, t);
  const norm = globalNormReference(grads);
  tf.tidy(() => {
    // The clip coefficient stays on the device (no read of the norm). The step's constants are uploaded once, not once
    // per variable (the same float32 values as JS-number operands, so the same bits).
    const coef = maxGradNorm > 0 ? tf.minimum(tf.div(maxGradNorm, tf.add(norm, 1e-6)), 1) : tf.scalar(1);
    const [b1, c1, b2, c2, sbc2, eps, decay, rate] = tf.unstack(tf.tensor1d([s.beta1, 1 - s.beta1, s.beta2, 1 - s.beta2, Math.sqrt(bc2), s.eps, 1 - lr * s.weightDecay, lr / bc1]));
    for (const [name, p] of vars) {
      const g0 = grads.get(name);
      if (!g0) throw new Error(`adamwStep: no gradient for ${name}`);
      const g = tf.mul(g0, coef);
      const m = tf.add(tf.mul(state.m.get(name)!, b1), tf.mul(g, c1));
      const v = tf.add(tf.mul(state.v.get(name)!, b2), tf.mul(tf.square(g), c2));
      // torch: denom = sqrt(v) / sqrt(bc2) + eps; p -= (lr / bc1) * m / denom, after p *= 1 - lr * wd.
      const denom = tf.add(tf.div(tf.sqrt(v), sbc2), eps);
      const decayed = s.weightDecay > 0 && (!s.decay || s.decay.has(name)) ? tf.mul(p, decay) : p;
      p.assign(tf.sub(decayed, tf.mul(tf.div(m, denom), rate)));
      state.m.get(name)!.dispose();
      state.v.get(name)!.dispose();
      state.m.set(name, tf.keep(m));
      state.v.set(name, tf.keep(v));
    }
  });
  return norm;
}

// DPO losses as small pure functions of four log-prob vectors [P] (policy/reference x chosen/rejected) and, for the
// length-normalized ones, the completion token counts. Follows TRL 1.x `DPOTrainer._compute_loss` (reverse-KL
// scores, `loss_type` list with `loss_weights`; huggingface/trl@ab0e2f64 dpo_trainer.py L1412-L1593); rewards =
// beta (pi - ref) on summed log-probs, as TRL logs them. Leaves out TRL's aot/aot_unpaired (they sort across the
// batch), WPO weighting and the f-divergence variants. Deliberate deviation: label_smoothing is refused where no
// chosen loss reads it (TRL's sigmoid ignores it) and outside [0, 0.5) (TRL's robust only warns).
import * as tf from '@tensorflow/tfjs';
import { InputError, describe } from '../util/errors.js';

/**
 * TRL 1.x loss_type names, plus `cdpo`: TRL 0.x's label-smoothed sigmoid (conservative DPO), which TRL 1.x dropped
 * from `sigmoid`; TRL 1.x's unbiased form of it is `robust`.
 */
export const LOSS_NAMES = [
  'sigmoid', 'hinge', 'ipo', 'exo_pair', 'nca_pair', 'robust', 'bco_pair', 'sppo_hard',
  'apo_zero', 'apo_down', 'discopop', 'sigmoid_norm', 'sft', 'cdpo',
] as const;
export type LossType = (typeof LOSS_NAMES)[number];

/** Losses that read label_smoothing (TRL: robust, exo_pair; ours: cdpo). */
const SMOOTHED: readonly LossType[] = ['robust', 'exo_pair', 'cdpo'];
/** Losses that need the completion token counts. */
const NEEDS_LENGTHS: readonly LossType[] = ['ipo', 'sigmoid_norm', 'sft'];

export interface LossTerm {
  type: LossType;
  weight: number;
}

export interface LossSettings {
  /** One or more losses, summed with their weights (TRL loss_type + loss_weights). */
  terms: readonly LossTerm[];
  beta: number;
  /** TRL label_smoothing (epsilon) for robust, exo_pair and cdpo. */
  labelSmoothing?: number;
  /** TRL discopop_tau. */
  discopopTau?: number;
  /**
   * Pairs and chosen completion tokens that sft's token mean runs over: the whole optimizer step, so that
   * micro-batches add up to it exactly. Default: this batch (TRL without gradient accumulation).
   */
  sftTokens?: { pairs: number; tokens: number };
}

export interface PairLogps {
  policyChosen: tf.Tensor1D;
  policyRejected: tf.Tensor1D;
  refChosen: tf.Tensor1D;
  refRejected: tf.Tensor1D;
  /** Completion tokens per pair (EOS included), float; needed by ipo, sigmoid_norm and sft. */
  chosenLengths?: tf.Tensor1D;
  rejectedLengths?: tf.Tensor1D;
}

export interface DpoOutput {
  /** Per-pair loss [P]: the weighted sum of the terms. */
  losses: tf.Tensor1D;
  chosenRewards: tf.Tensor1D;
  rejectedRewards: tf.Tensor1D;
}

export const DEFAULT_DISCOPOP_TAU = 0.05;

/**
 * `--loss a,b --loss-weights 1,0.5` -> terms. Weights default to 1 each (TRL `loss_weights or [1.0] * n`).
 * Also checks label_smoothing against the losses (TRL raises for exo_pair with 0; robust needs it below 0.5), and
 * refuses a label_smoothing that no chosen loss reads: TRL 1.x's sigmoid ignores it silently, which is the trap.
 */
export function parseLossTerms(loss: string, weights: string | null, labelSmoothing = 0, where: { loss?: string; weights?: string; eps?: string } = {}): LossTerm[] {
  const at = { loss: '--loss', weights: '--loss-weights', eps: '--label-smoothing', ...where };
  const names = loss.split(',').map((s) => s.trim());
  for (const n of names) {
    if (!(LOSS_NAMES as readonly string[]).includes(n)) throw new InputError(describe(at.loss, JSON.stringify(n), `one of ${LOSS_NAMES.join('|')} (or a comma list of them)`));
  }
  if (new Set(names).size !== names.length) throw new InputError(describe(at.loss, JSON.stringify(loss), 'each loss at most once'));
  let w = names.map(() => 1);
  if (weights !== null && weights !== '') {
    w = weights.split(',').map((s) => Number(s.trim()));
    if (w.length !== names.length || w.some((x) => !Number.isFinite(x))) {
      throw new InputError(describe(at.weights, JSON.stringify(weights), `${names.length} comma-separated numbers, one per --loss term`));
    }
  }
  const terms = names.map((type, i) => ({ type: type as LossType, weight: w[i] }));
  const eps = labelSmoothing;
  if (!(eps >= 0 && eps < 0.5)) throw new InputError(describe(at.eps, String(eps), 'a number in [0, 0.5)'));
  if (names.includes('exo_pair') && eps === 0) {
    throw new InputError(describe(at.eps, '0', '> 0 with --loss exo_pair', 'The EXO paper recommends 1e-3 (TRL raises here too).'));
  }
  if (eps > 0 && !names.some((n) => SMOOTHED.includes(n as LossType))) {
    throw new InputError(describe(at.eps, String(eps), `0 with --loss ${loss}`,
      'Only robust, exo_pair and cdpo read it; TRL 1.x sigmoid ignores it. For the TRL 0.x label-smoothed sigmoid use --loss cdpo.'));
  }
  return terms;
}

/** Identity with a zero gradient (torch's `.detach()`; tfjs has no stop-gradient op, and `clone` passes gradients). */
const detach = tf.customGrad((x) => ({ value: (x as tf.Tensor).clone(), gradFunc: (dy) => tf.zerosLike(dy) })) as (x: tf.Tensor) => tf.Tensor;

// -log sigmoid(x) = softplus(-x). Not tf.logSigmoid: its gradient closes over an input that the tidy disposes before
// the backward pass, so tf.grads through dpoLoss would read a disposed tensor.
const nls = (x: tf.Tensor) => tf.softplus(tf.neg(x));

interface Parts {
  b: number;
  eps: number;
  tau: number;
  /** chosen and rejected log-ratios pi - ref, and delta = chosen - rejected (TRL chosen_scores etc., reverse KL). */
  cr: tf.Tensor1D;
  rr: tf.Tensor1D;
  d: tf.Tensor1D;
  l: PairLogps;
  sft?: { pairs: number; tokens: number };
}

function lengths(l: PairLogps, type: LossType): [tf.Tensor1D, tf.Tensor1D] {
  if (!l.chosenLengths || !l.rejectedLengths) throw new Error(`dpoLoss: loss ${type} needs chosenLengths and rejectedLengths`);
  // TRL: completion_mask.sum(dim=1).clamp(min=1.0)
  return [tf.maximum(l.chosenLengths, 1) as tf.Tensor1D, tf.maximum(l.rejectedLengths, 1) as tf.Tensor1D];
}

/** One loss type, per pair. Each line cites the TRL 1.x `_compute_loss` branch it transcribes. */
function term(type: LossType, p: Parts): tf.Tensor {
  const { b, eps, cr, rr, d } = p;
  const bd = tf.mul(d, b);
  switch (type) {
    case 'sigmoid': // -logsigmoid(beta delta)  (Rafailov et al. 2023)
      return nls(bd);
    case 'hinge': // relu(1 - beta delta)  (SLiC)
      return tf.relu(tf.sub(1, bd));
    case 'ipo': { // (delta_avg - 1/(2 beta))^2 on per-token mean scores (IPO Eq. 17; TRL normalizes by length)
      const [lc, lr] = lengths(p.l, type);
      return tf.square(tf.sub(tf.sub(tf.div(cr, lc), tf.div(rr, lr)), 1 / (2 * b)));
    }
    case 'exo_pair': { // qw (log qw - log(1 - eps)) + ql (log ql - log eps)  (EXO Eq. 16)
      const qw = tf.sigmoid(bd);
      const ql = tf.sigmoid(tf.neg(bd));
      return tf.add(tf.mul(qw, tf.sub(tf.neg(nls(bd)), Math.log1p(-eps))), tf.mul(ql, tf.sub(tf.neg(tf.softplus(bd)), Math.log(eps))));
    }
    case 'nca_pair': // -logsig(beta cr) - 0.5 logsig(-beta cr) - 0.5 logsig(-beta rr)  (NCA)
      return tf.add(tf.add(nls(tf.mul(cr, b)), tf.mul(tf.softplus(tf.mul(cr, b)), 0.5)), tf.mul(tf.softplus(tf.mul(rr, b)), 0.5));
    case 'robust': // ((1 - eps)(-logsig(bd)) - eps(-logsig(-bd))) / (1 - 2 eps)  (Robust DPO, unbiased)
      return tf.div(tf.sub(tf.mul(nls(bd), 1 - eps), tf.mul(tf.softplus(bd), eps)), 1 - 2 * eps);
    case 'cdpo': // (1 - eps)(-logsig(bd)) + eps(-logsig(-bd))  (TRL 0.x sigmoid with label_smoothing; cDPO report)
      return tf.add(tf.mul(nls(bd), 1 - eps), tf.mul(tf.softplus(bd), eps));
    case 'bco_pair': // -logsig(beta cr) - logsig(-beta rr)  (BCO, without its running-mean delta)
      return tf.add(nls(tf.mul(cr, b)), tf.softplus(tf.mul(rr, b)));
    case 'sppo_hard': // (cr - 1/(2 beta))^2 + (rr + 1/(2 beta))^2  (SPPO, hard labels)
      return tf.add(tf.square(tf.sub(cr, 0.5 / b)), tf.square(tf.add(rr, 0.5 / b)));
    case 'apo_zero': // 1 - sigmoid(beta cr) + sigmoid(beta rr)  (APO Eq. 7)
      return tf.add(tf.sub(1, tf.sigmoid(tf.mul(cr, b))), tf.sigmoid(tf.mul(rr, b)));
    case 'apo_down': // sigmoid(beta cr) + 1 - sigmoid(beta (cr - rr))  (APO Eq. 8)
      return tf.add(tf.sigmoid(tf.mul(cr, b)), tf.sub(1, tf.sigmoid(tf.mul(tf.sub(cr, rr), b))));
    case 'discopop': { // -logsig(x)(1 - m) + exp(-x) m, x = beta delta, m = sigmoid(x / tau)  (DiscoPOP Eq. 5)
      const m = tf.sigmoid(tf.div(bd, p.tau));
      return tf.add(tf.mul(nls(bd), tf.sub(1, m)), tf.mul(tf.exp(tf.neg(bd)), m));
    }
    case 'sigmoid_norm': { // -logsig(beta (cr / len_c - rr / len_r))  (length-normalized sigmoid)
      const [lc, lr] = lengths(p.l, type);
      return nls(tf.mul(tf.sub(tf.div(cr, lc), tf.div(rr, lr)), b));
    }
    case 'sft': { // cross-entropy over every chosen completion token of the batch (RPO's NLL term)
      // Pair i carries -pi_w,i N / T, so the mean over the N pairs is TRL's token mean -sum(pi_w) / T.
      if (p.sft) return tf.mul(p.l.policyChosen, -p.sft.pairs / p.sft.tokens);
      const [lc] = lengths(p.l, type);
      return tf.div(tf.mul(p.l.policyChosen, -cr.shape[0]), tf.sum(lc));
    }
  }
}

/** The per-pair loss sum_k w_k L_k and the rewards, from four log-prob vectors [P]. */
export function dpoLoss(l: PairLogps, s: LossSettings): DpoOutput {
  return tf.tidy(() => {
    const cr = tf.sub(l.policyChosen, l.refChosen) as tf.Tensor1D;
    const rr = tf.sub(l.policyRejected, l.refRejected) as tf.Tensor1D;
    const parts: Parts = { b: s.beta, eps: s.labelSmoothing ?? 0, tau: s.discopopTau ?? DEFAULT_DISCOPOP_TAU, cr, rr, d: tf.sub(cr, rr) as tf.Tensor1D, l, sft: s.sftTokens };
    let losses: tf.Tensor | null = null;
    for (const t of s.terms) {
      const x = t.weight === 1 ? term(t.type, parts) : tf.mul(term(t.type, parts), t.weight);
      losses = losses === null ? x : tf.add(losses, x);
    }
    if (losses === null) throw new Error('dpoLoss: no loss terms');
    return {
      losses: losses as tf.Tensor1D,
      // Rewards are reported without gradient, as TRL detaches them.
      chosenRewards: detach(tf.mul(cr, s.beta)) as tf.Tensor1D,
      rejectedRewards: detach(tf.mul(rr, s.beta)) as tf.Tensor1D,
    };
  });
}

/** True when some term needs completion token counts. */
export function needsLengths(terms: readonly LossTerm[]): boolean {
  return terms.some((t) => NEEDS_LENGTHS.includes(t.type));
}

// DPO losses as small pure functions of four log-prob vectors [P] (policy/reference x chosen/rejected).
// Follows TRL's DPOTrainer.dpo_loss: sigmoid (with conservative label smoothing), ipo, hinge; rewards = beta (pi - ref).
import * as tf from '@tensorflow/tfjs';

export type LossType = 'sigmoid' | 'ipo' | 'hinge';

export interface PairLogps {
  policyChosen: tf.Tensor1D;
  policyRejected: tf.Tensor1D;
  refChosen: tf.Tensor1D;
  refRejected: tf.Tensor1D;
}

export interface DpoOutput {
  /** Per-pair loss [P]. */
  losses: tf.Tensor1D;
  chosenRewards: tf.Tensor1D;
  rejectedRewards: tf.Tensor1D;
}

/** Identity with a zero gradient (torch's `.detach()`; tfjs has no stop-gradient op, and `clone` passes gradients). */
const detach = tf.customGrad((x) => ({ value: (x as tf.Tensor).clone(), gradFunc: (dy) => tf.zerosLike(dy) })) as (x: tf.Tensor) => tf.Tensor;

/**
 * z = (pi_w - ref_w) - (pi_l - ref_l).
 * sigmoid: -(1 - eps) log sigmoid(beta z) - eps log sigmoid(-beta z)  (Rafailov et al. 2023; cDPO, Mitchell 2023)
 * ipo:     (z - 1 / (2 beta))^2  (Azar et al. 2023); TRL feeds it per-token mean log-probs, so callers pass those
 * hinge:   relu(1 - beta z)  (SLiC, Zhao et al. 2023)
 */
export function dpoLoss(l: PairLogps, lossType: LossType, beta: number, labelSmoothing = 0): DpoOutput {
  return tf.tidy(() => {
    const chosenRatio = tf.sub(l.policyChosen, l.refChosen);
    const rejectedRatio = tf.sub(l.policyRejected, l.refRejected);
    const z = tf.sub(chosenRatio, rejectedRatio);
    let losses: tf.Tensor1D;
    if (lossType === 'sigmoid') {
      const bz = tf.mul(z, beta);
      // -log sigmoid(x) = softplus(-x). Not tf.logSigmoid: its gradient closes over an input that this tidy disposes
      // before the backward pass, so tf.grads through dpoLoss would read a disposed tensor.
      losses = tf.add(tf.mul(tf.softplus(tf.neg(bz)), 1 - labelSmoothing), tf.mul(tf.softplus(bz), labelSmoothing)) as tf.Tensor1D;
    } else if (lossType === 'ipo') {
      losses = tf.square(tf.sub(z, 1 / (2 * beta))) as tf.Tensor1D;
    } else {
      losses = tf.relu(tf.sub(1, tf.mul(z, beta))) as tf.Tensor1D;
    }
    return {
      losses,
      // Rewards are reported without gradient, as TRL detaches them.
      chosenRewards: detach(tf.mul(chosenRatio, beta)) as tf.Tensor1D,
      rejectedRewards: detach(tf.mul(rejectedRatio, beta)) as tf.Tensor1D,
    };
  });
}

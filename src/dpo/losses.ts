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
      losses = tf.sub(tf.mul(tf.logSigmoid(bz), -(1 - labelSmoothing)), tf.mul(tf.logSigmoid(tf.neg(bz)), labelSmoothing)) as tf.Tensor1D;
    } else if (lossType === 'ipo') {
      losses = tf.square(tf.sub(z, 1 / (2 * beta))) as tf.Tensor1D;
    } else {
      losses = tf.relu(tf.sub(1, tf.mul(z, beta))) as tf.Tensor1D;
    }
    return {
      losses,
      // Rewards are reported without gradient, as TRL detaches them.
      chosenRewards: tf.mul(chosenRatio, beta).clone() as tf.Tensor1D,
      rejectedRewards: tf.mul(rejectedRatio, beta).clone() as tf.Tensor1D,
    };
  });
}

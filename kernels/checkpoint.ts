// Gradient checkpointing: run a function without recording its intermediates, recompute it in the backward pass.
// Semantics of `torch.utils.checkpoint`: same values and gradients, the tape holds only the inputs. Not nestable
// inside higher-order gradients; the recompute must be deterministic (replay dropout seeds).
import * as tf from '@tensorflow/tfjs';

/** A function of tensors that must return the same value when called twice with the same inputs. */
export type CheckpointFn = (...inputs: tf.Tensor[]) => tf.Tensor;

export interface CheckpointOptions {
  /**
   * Trainable tensors `fn` reads from its closure (LoRA A and B). They join the tape node as extra inputs, so the
   * outer gradient reaches them; without this a closure variable would silently get no gradient.
   */
  params?: readonly tf.Tensor[];
  /**
   * Indices of `fn`'s inputs that need no gradient (masks, rope tables). They must not depend on what is being
   * differentiated: tfjs prunes such inputs from the tape (tape.ts getFilteredNodesXToY), so their gradient is never
   * read and a scalar zero stands in for it.
   */
  constants?: readonly number[];
}

/** The engine state that `tf.customGrad` and `engine.gradients` share. Typed loosely: it is not public API. */
interface TapeState {
  activeTape: unknown[] | null;
}

/**
 * The reference: `fn` itself, every intermediate on the tape. Same signature as `checkpointed(fn)` so a test or a
 * switch can swap the two.
 */
export function uncheckpointed(fn: CheckpointFn, _opts: CheckpointOptions = {}): CheckpointFn {
  return (...inputs) => fn(...inputs);
}

/**
 * Wraps `fn` so that under a gradient tape only its inputs are saved; the backward pass runs `fn` again under a
 * fresh inner tape and takes its gradient there.
 *
 * Why the tape juggling: `tf.customGrad` runs its backward inside the outer `engine.gradients`, after the outer
 * forward has ended (gradientDepth back to 0). An inner `engine.gradients` at depth 0 replaces `state.activeTape`
 * with its own and sets it to null when done, so the outer pass would then crash disposing a null tape (and leak
 * its saved tensors). Saving the outer tape before, and restoring it after, keeps both passes whole.
 */
export function checkpointed(fn: CheckpointFn, opts: CheckpointOptions = {}): CheckpointFn {
  const params = opts.params ?? [];
  const constants = new Set(opts.constants ?? []);
  return (...inputs) => {
    const n = inputs.length;
    const run = tf.customGrad((...args: unknown[]) => {
      const xs = args.slice(0, n) as tf.Tensor[];
      const save = args[args.length - 1] as tf.GradSaveFunc;
      // Saved clones share the data of the inputs and are freed with the outer tape.
      save(xs);
      const value = fn(...xs);
      const gradFunc = (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor[] => {
        const wrt = saved.filter((_, i) => !constants.has(i));
        const engine = tf.engine();
        const state = engine.state as unknown as TapeState;
        const outerTape = state.activeTape;
        let grads: tf.Tensor[];
        try {
          const res = engine.gradients(() => fn(...saved), [...wrt, ...params], dy, true);
          res.value.dispose();
          grads = res.grads;
        } finally {
          state.activeTape = outerTape;
        }
        const out: tf.Tensor[] = [];
        let k = 0;
        for (let i = 0; i < n; i++) {
          if (constants.has(i)) out.push(tf.scalar(0));
          else out.push(grads[k++] ?? tf.zerosLike(saved[i]));
        }
        for (let j = 0; j < params.length; j++) out.push(grads[k++] ?? tf.zerosLike(params[j]));
        return out;
      };
      return { value, gradFunc };
    });
    return run(...inputs, ...params) as tf.Tensor;
  };
}

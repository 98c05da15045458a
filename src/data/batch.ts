// Collates tokenized pairs into one right-padded [chosen; rejected] batch: rows 0..P-1 are prompt+chosen, rows
// P..2P-1 prompt+rejected (TRL `concatenated_inputs`). Returns plain typed arrays so the caller owns tensor lifetime.
// lossMask marks the completion tokens, EOS included: the caller sums log p(ids[t] | ids[<t]), read from logits at t-1.

import type { TokenizedPair } from '../tokenizer/pair.js';

export type { TokenizedPair };

export interface PairBatch {
  /** P pairs, so 2P rows. */
  numPairs: number;
  /** [2P, T] */
  shape: [number, number];
  /** [2P, T] row-major, right-padded with padId. */
  inputIds: Int32Array;
  /** [2P, T] 1 on real tokens, 0 on padding. */
  attentionMask: Float32Array;
  /** [2P, T] 1 where ids[t] is a completion token. Always 0 at t = 0, since a prompt is never empty. */
  lossMask: Float32Array;
  /** [2P] real tokens per row (prompt + completion). */
  lengths: Int32Array;
  /** [2P] prompt tokens per row. */
  promptLengths: Int32Array;
  /** [2P] completion tokens per row, EOS included: the row sum of lossMask. */
  completionLengths: Int32Array;
}

export interface CollateOptions {
  /** Round T up to a multiple of this (fewer distinct shapes for the backend to compile). Default 1. */
  padToMultipleOf?: number;
  /** Pad T to at least this many positions. */
  minLength?: number;
}

/** Builds the batch; throws on an empty list or a pair with an empty prompt or completion (tokenizePair drops those). */
export function collatePairs(pairs: readonly TokenizedPair[], padId: number, opts: CollateOptions = {}): PairBatch {
  const P = pairs.length;
  if (P === 0) throw new Error('collatePairs: no pairs');
  const multiple = opts.padToMultipleOf ?? 1;
  if (!Number.isInteger(multiple) || multiple < 1) throw new Error(`collatePairs: padToMultipleOf ${multiple} (expected an integer >= 1)`);

  const rows: { prompt: readonly number[]; completion: readonly number[] }[] = [];
  for (const p of pairs) rows.push({ prompt: p.promptIds, completion: p.chosenIds });
  for (const p of pairs) rows.push({ prompt: p.promptIds, completion: p.rejectedIds });

  let T = opts.minLength ?? 1;
  for (const [r, row] of rows.entries()) {
    if (row.prompt.length === 0 || row.completion.length === 0) {
      throw new Error(`collatePairs: row ${r} has ${row.prompt.length} prompt and ${row.completion.length} completion tokens (expected both > 0)`);
    }
    T = Math.max(T, row.prompt.length + row.completion.length);
  }
  T = Math.ceil(T / multiple) * multiple;

  const R = 2 * P;
  const inputIds = new Int32Array(R * T).fill(padId);
  const attentionMask = new Float32Array(R * T);
  const lossMask = new Float32Array(R * T);
  const lengths = new Int32Array(R);
  const promptLengths = new Int32Array(R);
  const completionLengths = new Int32Array(R);
  rows.forEach((row, r) => {
    const base = r * T;
    const np = row.prompt.length;
    const nc = row.completion.length;
    inputIds.set(row.prompt, base);
    inputIds.set(row.completion, base + np);
    attentionMask.fill(1, base, base + np + nc);
    lossMask.fill(1, base + np, base + np + nc);
    lengths[r] = np + nc;
    promptLengths[r] = np;
    completionLengths[r] = nc;
  });
  return { numPairs: P, shape: [R, T], inputIds, attentionMask, lossMask, lengths, promptLengths, completionLengths };
}

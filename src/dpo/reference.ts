// Completion log-probs for every pair of a dataset, batched, with no gradient: `score` and the reference cache
// of `train` both use it. Pairs are batched by length to cut padding; results come back in input order.
import type { LlamaConfig } from '../config/llama.js';
import type { Weights } from '../model/llama.js';
import type { Lora } from '../model/lora.js';

import { collatePairs, type PairBatch, type TokenizedPair } from '../data/batch.js';
import { batchSequenceLogprobs } from './logprobs.js';

export interface PairLogpTable {
  chosen: Float64Array;
  rejected: Float64Array;
  chosenTokens: Int32Array;
  rejectedTokens: Int32Array;
}

/** [2P] summed completion log-probs of one collated batch, read back to JS with one `await data()`. */
export async function batchLogps(cfg: LlamaConfig, w: Weights, b: PairBatch, lora: Lora | null): Promise<Float32Array> {
  const out = batchSequenceLogprobs(cfg, w, b, { lora, training: false });
  try {
    return (await out.data()) as Float32Array;
  } finally {
    out.dispose();
  }
}

/**
 * Log-probs of all pairs under `lora` (null: the bare base model). `onBatch(done)` reports pairs finished.
 * Sorting by length only changes which pairs share a batch; each row's value does not depend on its neighbours.
 */
export async function computePairLogps(cfg: LlamaConfig, w: Weights, pairs: readonly TokenizedPair[], padId: number, batchSize: number,
  lora: Lora | null, onBatch: (done: number) => void = () => {}): Promise<PairLogpTable> {
  const n = pairs.length;
  const table: PairLogpTable = { chosen: new Float64Array(n), rejected: new Float64Array(n), chosenTokens: new Int32Array(n), rejectedTokens: new Int32Array(n) };
  const len = (p: TokenizedPair) => p.promptIds.length + Math.max(p.chosenIds.length, p.rejectedIds.length);
  const order = [...pairs.keys()].sort((a, b) => len(pairs[a]) - len(pairs[b]) || a - b);
  let done = 0;
  for (let i = 0; i < n; i += batchSize) {
    const idx = order.slice(i, i + batchSize);
    const batch = collatePairs(idx.map((j) => pairs[j]), padId);
    const logps = await batchLogps(cfg, w, batch, lora);
    const P = idx.length;
    idx.forEach((j, r) => {
      table.chosen[j] = logps[r];
      table.rejected[j] = logps[P + r];
      table.chosenTokens[j] = batch.completionLengths[r];
      table.rejectedTokens[j] = batch.completionLengths[P + r];
    });
    done += P;
    onBatch(done);
  }
  return table;
}

// Tokenizes every record of a pairs file with TRL's DPO rules (see tokenizer/pair.ts), keeping each pair's
// index and line, and counting the pairs dropped (prompt fills max_length, empty prompt) with their reasons.

import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { tokenizePair, type PairLengthOptions, type TokenizedPair } from '../tokenizer/pair.js';
import type { PairRecord } from './pairs.js';

export interface TokenizedRecord extends TokenizedPair {
  index: number;
  line: number;
}

export interface DroppedRecord {
  index: number;
  line: number;
  reason: string;
}

export interface TokenizedDataset {
  pairs: TokenizedRecord[];
  dropped: DroppedRecord[];
  /** How many kept pairs lost tokens to the length limits. */
  truncated: number;
  /** How many kept pairs had a prompt whose ids are not a prefix of prompt + completion's (TRL warns about these). */
  mismatched: number;
}

/** `file` only names the source in messages (`file:line`). */
export function tokenizeRecords(tok: Tokenizer, records: PairRecord[], opts: PairLengthOptions = {}, file = 'pairs'): TokenizedDataset {
  const pairs: TokenizedRecord[] = [];
  const dropped: DroppedRecord[] = [];
  let truncated = 0;
  let mismatched = 0;
  for (const rec of records) {
    const res = tokenizePair(tok, rec, opts, `${file}:${rec.line}`);
    if (res.pair === null) {
      dropped.push({ index: rec.index, line: rec.line, reason: res.reason });
      continue;
    }
    if (res.pair.truncated) truncated++;
    if (res.pair.promptMismatch) mismatched++;
    pairs.push({ ...res.pair, index: rec.index, line: rec.line });
  }
  return { pairs, dropped, truncated, mismatched };
}

// A pairs file (or datasets folder, or cached Hub dataset: data/formats.ts), read and tokenized with TRL's rules for
// one model: what score, train and experiment start from.
// Logs how many pairs were kept, dropped (prompt fills max_length, empty prompt) and truncated.
import { existsSync } from 'node:fs';
import { isHubId } from '../io/hub-cache.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { InputError, describe } from '../util/errors.js';
import { readPairs, type PairRecord } from './pairs.js';
import { tokenizeRecords, type TokenizedDataset } from './tokenize.js';
import type { PairLengthOptions } from '../tokenizer/pair.js';

export interface LoadedPairs {
  records: PairRecord[];
  data: TokenizedDataset;
}

/** `split` picks a split of a DatasetDict folder or a cached Hub dataset (default train). */
export function loadPairsFile(file: string | null, tokenizer: Tokenizer, lengths: PairLengthOptions, log: (line: string) => void, split?: string): LoadedPairs {
  if (!file) throw new InputError(describe('--data', 'missing', 'a pairs file (JSONL, JSON, Parquet), a datasets folder or a cached Hub dataset id'));
  if (!existsSync(file) && !isHubId(file)) throw new InputError(describe(`--data ${file}`, 'file not found'));
  const records = readPairs(file, split);
  const data = tokenizeRecords(tokenizer, records, lengths, file);
  log(`data: ${file}: ${records.length} pairs, ${data.pairs.length} kept, ${data.dropped.length} dropped (prompt fills max_length, or empty), ${data.truncated} truncated, ${data.mismatched} with a prompt/completion token merge`);
  for (const d of data.dropped.slice(0, 5)) log(`  dropped ${file}:${d.line}: ${d.reason}`);
  if (data.pairs.length === 0) throw new InputError(describe(file, 'no pair left after tokenization', 'at least one', 'Raise --max-length or shorten prompts.'));
  return { records, data };
}

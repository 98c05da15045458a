// Shared pieces of the command files: logging to stderr, the backend + model + data set-up every command repeats.
// Logs go to stderr so that stdout stays for results (tables, paths).
import { selectBackend, type BackendName } from '../backend/index.js';
import { loadModel, type LoadedModel } from '../io/model-dir.js';
import { readPairs, type PairRecord } from '../data/pairs.js';
import { tokenizeRecords, type TokenizedDataset } from '../data/tokenize.js';
import { InputError, describe } from '../util/errors.js';
import { existsSync } from 'node:fs';

export const log = (line: string): void => {
  process.stderr.write(line + '\n');
};

export async function setup(backend: BackendName, modelDir: string | null): Promise<LoadedModel> {
  if (!modelDir) throw new InputError(describe('--model', 'missing', 'a Hugging Face model directory', 'Run `node train.js init-tiny --out tiny` for a tiny one.'));
  await selectBackend(backend, log);
  return loadModel(modelDir, log);
}

export interface LoadedPairs {
  records: PairRecord[];
  data: TokenizedDataset;
}

/** Reads + tokenizes a pairs file with TRL's rules, logging drops and truncations. */
export function loadPairs(file: string | null, model: LoadedModel, maxLength: number, maxPromptLength: number): LoadedPairs {
  if (!file) throw new InputError(describe('--data', 'missing', 'a pairs JSONL file'));
  if (!existsSync(file)) throw new InputError(describe(`--data ${file}`, 'file not found'));
  const records = readPairs(file);
  const data = tokenizeRecords(model.tokenizer, records, { maxLength, maxPromptLength }, file);
  log(`data: ${file}: ${records.length} pairs, ${data.pairs.length} kept, ${data.dropped.length} dropped (empty completion after truncation), ${data.truncated} truncated`);
  for (const d of data.dropped.slice(0, 5)) log(`  dropped ${file}:${d.line}: ${d.reason}`);
  if (data.pairs.length === 0) throw new InputError(describe(file, 'no pair left after tokenization', 'at least one', 'Raise --max-length or shorten prompts.'));
  return { records, data };
}

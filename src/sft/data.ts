// SFT data -> token ids, as TRL's SFTTrainer prepares it: prompt/completion records (plain strings or message lists),
// `messages` records (the last assistant message is the completion), and HumanEval tasks (prompt + canonical_solution,
// so a world's train.jsonl is SFT data as it is). Tokenized like a DPO pair's prompt and chosen (tokenizer/pair.ts):
// BOS once, EOS after the completion, rows longer than --max-length keep their start.
import { parseRecords, readText } from '../eval/tasks.js';
import type { ChatMessage, Tokenizer } from '../tokenizer/tokenizer.js';
import { tokenizePair, type PairText } from '../tokenizer/pair.js';
import { InputError, describe } from '../util/errors.js';

export interface SftExample {
  /** Line (0-based record number) in the data file. */
  index: number;
  promptIds: number[];
  /** EOS included unless truncation cut it. */
  completionIds: number[];
}

function isMessages(v: unknown): v is ChatMessage[] {
  return Array.isArray(v) && v.every((m) => typeof m === 'object' && m !== null && typeof (m as ChatMessage).role === 'string' && typeof (m as ChatMessage).content === 'string');
}

/** One record -> (prompt, completion) text or messages; an unknown layout is an InputError at its line. */
export function sftText(o: unknown, where: string): { prompt: PairText; completion: PairText } {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new InputError(describe(where, 'not a JSON object', 'a prompt/completion, messages or HumanEval record'));
  const r = o as Record<string, unknown>;
  if (typeof r.prompt === 'string' && typeof r.canonical_solution === 'string') return { prompt: r.prompt, completion: r.canonical_solution };
  if (typeof r.prompt === 'string' && typeof r.completion === 'string') return { prompt: r.prompt, completion: r.completion };
  if (isMessages(r.prompt) && isMessages(r.completion)) return { prompt: r.prompt, completion: r.completion };
  if (isMessages(r.messages)) {
    const last = r.messages[r.messages.length - 1];
    if (r.messages.length < 2 || last.role !== 'assistant') {
      throw new InputError(describe(where, `"messages" ending with a "${last?.role}" message`, 'at least two messages, the last from the assistant (the completion)'));
    }
    return { prompt: r.messages.slice(0, -1), completion: [last] };
  }
  throw new InputError(describe(where, `keys ${Object.keys(r).slice(0, 5).join(', ')}`, '"prompt" + "completion" (strings or message lists), "messages", or HumanEval "prompt" + "canonical_solution"'));
}

export interface SftDataset {
  examples: SftExample[];
  /** Records dropped (an empty prompt or completion, or a prompt that fills max_length), with the reason. */
  dropped: { index: number; reason: string }[];
  truncated: number;
}

export function tokenizeSft(tok: Tokenizer, text: string, file: string, maxLength: number): SftDataset {
  const out: SftDataset = { examples: [], dropped: [], truncated: 0 };
  const records = parseRecords(text, file);
  records.forEach((rec, index) => {
    const { prompt, completion } = sftText(rec.value, rec.where);
    const r = tokenizePair(tok, { prompt, chosen: completion, rejected: completion }, { maxLength, truncationMode: 'keep_start' }, rec.where);
    if (r.pair === null) out.dropped.push({ index, reason: r.reason });
    else {
      if (r.pair.truncated) out.truncated++;
      out.examples.push({ index, promptIds: r.pair.promptIds, completionIds: r.pair.chosenIds });
    }
  });
  if (out.examples.length === 0) throw new InputError(describe(`--data ${file}`, records.length === 0 ? 'no records' : `all ${records.length} records dropped (${out.dropped[0].reason})`, 'at least one prompt/completion example'));
  return out;
}

export function loadSftFile(tok: Tokenizer, file: string, maxLength: number): SftDataset {
  return tokenizeSft(tok, readText(file), file, maxLength);
}

// Reads preference pairs in TRL's formats: standard {prompt, chosen, rejected} strings, or conversational lists of
// {role, content} messages. Extra fields (task ids, pass counts) are kept in `raw`. From JSONL, or any layout of
// data/formats.ts (JSON, Parquet such as trl-lib/ultrafeedback_binarized, save_to_disk, a cached Hub dataset + split).
// Strict: a bad record is an InputError `file:line: ...` (`file[i]: ...` for row i of a table) naming the field.
// Leaves out TRL's implicit-prompt format.

import { existsSync } from 'node:fs';
import { isHubId } from '../io/hub-cache.js';
import { isJsonFile, readRecords, readText, type Located } from './formats.js';
import { InputError, describe } from '../util/errors.js';
import type { PairInput, PairText } from '../tokenizer/pair.js';
import type { ChatMessage } from '../tokenizer/tokenizer.js';

export interface PairRecord extends PairInput {
  /** 0-based position among the data (non-blank) lines: the pair's id in scores and orders. */
  index: number;
  /** 1-based line in a JSONL file (1-based row of a table), for messages. */
  line: number;
  /** True for message lists, false for plain strings. */
  conversational: boolean;
  /** The whole parsed object, extra fields included, for passthrough to outputs. */
  raw: Record<string, unknown>;
}

const FIELDS = ['prompt', 'chosen', 'rejected'] as const;
const TEXT_EXPECTED = 'a string, or a list of {"role", "content"} messages';

function typeName(x: unknown): string {
  if (x === null) return 'null';
  if (Array.isArray(x)) return 'a list';
  return `a ${typeof x}`;
}

function checkMessages(value: unknown[], field: string, where: string): ChatMessage[] {
  if (value.length === 0) throw new InputError(describe(where, `"${field}" is an empty list`, 'at least one message'));
  return value.map((m, i) => {
    const at = `"${field}"[${i}]`;
    if (typeof m !== 'object' || m === null || Array.isArray(m)) {
      throw new InputError(describe(where, `${at} is ${typeName(m)}`, 'a {"role", "content"} message'));
    }
    const msg = m as Record<string, unknown>;
    if (!('role' in msg)) throw new InputError(describe(where, `${at} has no "role"`, 'a {"role", "content"} message'));
    if (typeof msg.role !== 'string') throw new InputError(describe(where, `${at}.role is ${typeName(msg.role)}`, 'a string such as "user"'));
    if (!('content' in msg)) throw new InputError(describe(where, `${at} has no "content"`, 'a {"role", "content"} message'));
    if (typeof msg.content !== 'string') {
      throw new InputError(describe(where, `${at}.content is ${typeName(msg.content)}`, 'a string', 'Multimodal content parts are not supported.'));
    }
    return { role: msg.role, content: msg.content };
  });
}

/** Checks one parsed line; `where` is `file:line`. */
export function parsePairObject(obj: unknown, where: string): { input: PairInput; conversational: boolean; raw: Record<string, unknown> } {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
    throw new InputError(describe(where, `the line is ${typeName(obj)}`, 'a JSON object with "prompt", "chosen" and "rejected"'));
  }
  const raw = obj as Record<string, unknown>;
  const values: Partial<Record<(typeof FIELDS)[number], PairText>> = {};
  for (const field of FIELDS) {
    if (!(field in raw)) {
      const hint = field === 'prompt' && 'chosen' in raw ? 'Implicit-prompt pairs are not supported: move the shared prompt into "prompt".' : undefined;
      throw new InputError(describe(where, `missing "${field}"`, TEXT_EXPECTED, hint));
    }
    const v = raw[field];
    if (typeof v === 'string') values[field] = v;
    else if (Array.isArray(v)) values[field] = checkMessages(v, field, where);
    else throw new InputError(describe(where, `"${field}" is ${typeName(v)}`, TEXT_EXPECTED));
  }
  const { prompt, chosen, rejected } = values as PairInput;
  const conversational = Array.isArray(prompt);
  for (const field of ['chosen', 'rejected'] as const) {
    if (Array.isArray(values[field]) !== conversational) {
      throw new InputError(
        describe(where, `"prompt" is ${conversational ? 'a message list' : 'a string'} but "${field}" is ${conversational ? 'a string' : 'a message list'}`, 'all three strings or all three message lists'),
      );
    }
  }
  if (conversational) {
    const last = (prompt as ChatMessage[])[(prompt as ChatMessage[]).length - 1] as ChatMessage;
    if (last.role !== 'user' && last.role !== 'assistant') {
      throw new InputError(describe(where, `the last "prompt" message has role "${last.role}"`, '"user" (or "assistant" to continue it)'));
    }
  }
  return { input: { prompt, chosen, rejected }, conversational, raw };
}

/** Parses JSONL text; `file` is only used in messages. Blank lines are skipped. */
export function parsePairs(text: string, file: string): PairRecord[] {
  const records: PairRecord[] = [];
  const lines = text.replace(/^\uFEFF/, '').split('\n');
  lines.forEach((rawLine, i) => {
    const lineText = rawLine.endsWith('\r') ? rawLine.slice(0, -1) : rawLine;
    if (lineText.trim() === '') return;
    const where = `${file}:${i + 1}`;
    let obj: unknown;
    try {
      obj = JSON.parse(lineText);
    } catch (e) {
      throw new InputError(describe(where, `invalid JSON: ${(e as Error).message}`, 'one JSON object per line'));
    }
    const { input, conversational, raw } = parsePairObject(obj, where);
    records.push({ ...input, index: records.length, line: i + 1, conversational, raw });
  });
  if (records.length === 0) throw new InputError(describe(file, 'no pairs', 'at least one JSON line with "prompt", "chosen" and "rejected"'));
  return records;
}

/** Checks records read from any source; `file` names it in messages. */
export function pairsFromRecords(located: Located[], file: string): PairRecord[] {
  const records = located.map((r, index) => {
    const { input, conversational, raw } = parsePairObject(r.value, r.where);
    return { ...input, index, line: r.line, conversational, raw };
  });
  if (records.length === 0) throw new InputError(describe(file, 'no pairs', 'at least one record with "prompt", "chosen" and "rejected"'));
  return records;
}

/** Reads and checks pairs: a JSONL file line by line, else any data/formats.ts source (`split`: default train). */
export function readPairs(file: string, split?: string): PairRecord[] {
  if (isJsonFile(file)) {
    const text = readText(file);
    if (!text.replace(/^\uFEFF/, '').trimStart().startsWith('[')) return parsePairs(text, file);
  }
  if (!existsSync(file) && !isHubId(file)) {
    throw new InputError(describe(file, 'file not found', 'a pairs file (JSONL, JSON, Parquet), a datasets folder or a cached Hub dataset', 'Build one with the `pairs` command, or pass --data.'));
  }
  return pairsFromRecords(readRecords(file, { split }).records, file);
}

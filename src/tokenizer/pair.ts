// Turns one DPO pair (prompt, chosen, rejected) into token ids as TRL 1.x's DPOTrainer does (`_prepare_dataset`:
// add_eos, tokenize_fn, the drop of prompts that fill max_length; `DataCollatorForPreference` truncation).
// Plain text: EOS text appended to each completion unless already there, then prompt and prompt + completion are
// tokenized with the tokenizer's special tokens (BOS) and the completion is the joint ids past the prompt's.
// Conversational: the chat template renders prompt (with the generation prompt) and prompt + completion, tokenized
// without special tokens (the template writes BOS; its end-of-turn token ends the completion, no EOS is added).
// Deliberate deviations (README "TRL fidelity"): a prompt that already starts with BOS keeps one, not two; a prompt
// ending with an assistant message is continued; keep_end cuts the shared prompt once for both completions; an
// empty prompt or completion is dropped; maxPromptLength (TRL 0.x max_prompt_length, off by default) may cut the prompt first.
// Leaves out: TRL's implicit-prompt format (a prompt is required) and tool calls.

import { InputError, describe } from '../util/errors.js';
import type { ChatMessage, Tokenizer } from './tokenizer.js';

export type PairText = string | ChatMessage[];

export interface PairInput {
  prompt: PairText;
  chosen: PairText;
  rejected: PairText;
}

export type TruncationMode = 'keep_start' | 'keep_end';
export const TRUNCATION_MODES: readonly TruncationMode[] = ['keep_start', 'keep_end'];

export interface PairLengthOptions {
  /** Prompt + completion tokens per row (TRL max_length, default 1024); null: no truncation. */
  maxLength?: number | null;
  /** TRL truncation_mode: keep_start (TRL 1.x default) keeps each row's first maxLength tokens, keep_end its last. */
  truncationMode?: TruncationMode;
  /** Prompt tokens, BOS included (TRL 0.x max_prompt_length; TRL 1.x has none). null or absent: off. */
  maxPromptLength?: number | null;
}

export const DEFAULT_MAX_LENGTH = 1024;

export interface TokenizedPair {
  /** The prompt's ids (BOS first when the tokenizer or template writes one). Never empty. */
  promptIds: number[];
  /** Completion ids only: the joint tokenization past the prompt; EOS included unless truncation cut it. Never empty. */
  chosenIds: number[];
  rejectedIds: number[];
  /** True when any of the three lost tokens to the length limits. */
  truncated: boolean;
  /**
   * True when the prompt's ids are not a prefix of prompt + completion's (a BPE merge across the boundary); the
   * completion is then still the joint ids past the prompt's length, as TRL does (it only warns).
   */
  promptMismatch?: boolean;
}

export type TokenizePairResult = { pair: TokenizedPair; reason: null } | { pair: null; reason: string };

function checkLengths(opts: PairLengthOptions): { maxLength: number | null; mode: TruncationMode; maxPromptLength: number | null } {
  const maxLength = opts.maxLength === undefined ? DEFAULT_MAX_LENGTH : opts.maxLength;
  const maxPromptLength = opts.maxPromptLength ?? null;
  const mode = opts.truncationMode ?? 'keep_start';
  if (maxLength !== null && (!Number.isInteger(maxLength) || maxLength < 2)) {
    throw new InputError(describe('maxLength', String(maxLength), 'an integer >= 2'));
  }
  if (maxPromptLength !== null && (!Number.isInteger(maxPromptLength) || maxPromptLength < 1)) {
    throw new InputError(describe('maxPromptLength', String(maxPromptLength), 'an integer >= 1'));
  }
  if (!TRUNCATION_MODES.includes(mode)) throw new InputError(describe('truncationMode', JSON.stringify(mode), TRUNCATION_MODES.join(' or ')));
  return { maxLength, mode, maxPromptLength };
}

/** The three token sequences of TRL's tokenize_fn, before truncation: prompt, prompt + chosen, prompt + rejected. */
interface Joint {
  prompt: number[];
  chosen: number[];
  rejected: number[];
}

/** TRL 1.x add_eos: the EOS token's text is appended to a plain completion that does not already end with it. */
function withEos(tok: Tokenizer, text: string): string {
  const eos = tok.idToToken(tok.eosId);
  return eos === undefined || text.endsWith(eos) ? text : text + eos;
}

/** BOS written in the text and by the post-processor would give two; keep one (a deliberate deviation from TRL). */
function oneBos(tok: Tokenizer, ids: number[]): number[] {
  return tok.bosId !== null && ids[0] === tok.bosId && ids[1] === tok.bosId ? ids.slice(1) : ids;
}

function jointPlain(tok: Tokenizer, prompt: string, chosen: string, rejected: string): Joint {
  const enc = (s: string) => oneBos(tok, tok.encode(s)); // special tokens on, as TRL's processing_class(text=...)
  return { prompt: enc(prompt), chosen: enc(prompt + withEos(tok, chosen)), rejected: enc(prompt + withEos(tok, rejected)) };
}

function jointChat(tok: Tokenizer, input: { prompt: ChatMessage[]; chosen: ChatMessage[]; rejected: ChatMessage[] }, where: string): Joint {
  if (!tok.hasChatTemplate) {
    throw new InputError(
      describe(where, 'conversational pair, but the tokenizer has no chat_template', 'a tokenizer_config.json with a chat template', 'Use plain-string pairs, or an instruct model.'),
    );
  }
  const lastRole = input.prompt[input.prompt.length - 1]?.role;
  if (lastRole !== 'user' && lastRole !== 'assistant') {
    throw new InputError(describe(where, `prompt ends with a "${String(lastRole)}" message`, 'a last prompt message with role "user" or "assistant"'));
  }
  const render = (messages: ChatMessage[], addGenerationPrompt: boolean, continueFinalMessage: boolean): string => {
    try {
      return tok.applyChatTemplate(messages, { addGenerationPrompt, continueFinalMessage });
    } catch (e) {
      throw new InputError(`${where}: ${(e as Error).message}`);
    }
  };
  // apply_chat_template(tokenize=True) tokenizes the render without special tokens: the template writes BOS.
  const enc = (s: string) => tok.encode(s, { addSpecialTokens: false });
  if (lastRole === 'assistant') {
    // Deviation: TRL always adds a generation prompt, which opens a second assistant turn here. We continue the
    // final message, and the completion is the text that the full render adds to it.
    const promptText = render(input.prompt, false, true);
    const full = (c: ChatMessage[]) => {
      const merged = [...input.prompt.slice(0, -1), { ...input.prompt[input.prompt.length - 1], content: input.prompt[input.prompt.length - 1].content + c.map((m) => m.content).join('') }];
      return render(merged, false, false);
    };
    return { prompt: enc(promptText), chosen: enc(full(input.chosen)), rejected: enc(full(input.rejected)) };
  }
  return {
    prompt: enc(render(input.prompt, true, false)),
    chosen: enc(render([...input.prompt, ...input.chosen], false, false)),
    rejected: enc(render([...input.prompt, ...input.rejected], false, false)),
  };
}

/** prompt, prompt + chosen and prompt + rejected ids of a pair, plain or conversational. */
function jointIds(tok: Tokenizer, input: PairInput, where: string): Joint {
  const { prompt, chosen, rejected } = input;
  if (typeof prompt === 'string' && typeof chosen === 'string' && typeof rejected === 'string') return jointPlain(tok, prompt, chosen, rejected);
  if (!Array.isArray(prompt) || !Array.isArray(chosen) || !Array.isArray(rejected)) {
    throw new InputError(describe(where, 'prompt, chosen and rejected mix strings and message lists', 'all strings or all message lists'));
  }
  return jointChat(tok, { prompt, chosen, rejected }, where);
}

const isPrefix = (p: number[], xs: number[]) => p.length <= xs.length && p.every((v, i) => xs[i] === v);

/**
 * Tokenizes one pair as TRL 1.x, then truncates:
 * - keep_start (TRL's default): a pair whose prompt alone has maxLength tokens or more is dropped (TRL drops it in
 *   _prepare_dataset); otherwise each completion keeps its first maxLength - prompt tokens.
 * - keep_end: the rows keep their last maxLength tokens. The prompt is shared, so it loses its first tokens by the
 *   longer row's overflow, keeping at least one; a completion still too long then loses its start.
 * A pair left with an empty prompt is dropped with a reason, never scored.
 */
export function tokenizePair(tok: Tokenizer, input: PairInput, opts: PairLengthOptions = {}, where = 'pair'): TokenizePairResult {
  const { maxLength, mode, maxPromptLength } = checkLengths(opts);
  const j = jointIds(tok, input, where);
  let promptIds = j.prompt;
  if (promptIds.length === 0) return { pair: null, reason: 'empty prompt (no BOS to condition the first completion token on)' };
  const promptMismatch = !isPrefix(promptIds, j.chosen) || !isPrefix(promptIds, j.rejected);
  let chosenIds = j.chosen.slice(promptIds.length);
  let rejectedIds = j.rejected.slice(promptIds.length);
  if (chosenIds.length === 0 || rejectedIds.length === 0) return { pair: null, reason: 'empty completion after the prompt' };

  let truncated = false;
  if (maxPromptLength !== null && promptIds.length > maxPromptLength) {
    truncated = true;
    const hasBos = tok.bosId !== null && promptIds[0] === tok.bosId;
    promptIds = hasBos && maxPromptLength > 1
      ? [promptIds[0], ...promptIds.slice(promptIds.length - (maxPromptLength - 1))]
      : promptIds.slice(promptIds.length - maxPromptLength);
  }
  if (maxLength !== null) {
    if (mode === 'keep_start') {
      if (promptIds.length >= maxLength) {
        return { pair: null, reason: `prompt fills max_length: prompt has ${promptIds.length} tokens, maxLength is ${maxLength}` };
      }
      const budget = maxLength - promptIds.length;
      if (chosenIds.length > budget || rejectedIds.length > budget) truncated = true;
      chosenIds = chosenIds.slice(0, budget);
      rejectedIds = rejectedIds.slice(0, budget);
    } else {
      const overflow = promptIds.length + Math.max(chosenIds.length, rejectedIds.length) - maxLength;
      if (overflow > 0) {
        truncated = true;
        promptIds = promptIds.slice(Math.min(overflow, promptIds.length - 1));
        const budget = maxLength - promptIds.length;
        chosenIds = chosenIds.slice(Math.max(0, chosenIds.length - budget));
        rejectedIds = rejectedIds.slice(Math.max(0, rejectedIds.length - budget));
      }
    }
  }
  return { pair: { promptIds, chosenIds, rejectedIds, truncated, ...(promptMismatch ? { promptMismatch } : {}) }, reason: null };
}

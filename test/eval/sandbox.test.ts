// Real Python through the sandbox pool: our own tasks' references pass and broken completions fail in every
// format, the MBPP assert count, and the --strict-results guard against __eq__-overriding return values.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PythonPool } from '../../src/python/index.js';
import { evaluateCompletions, referenceSamples } from '../../src/eval/execute.js';
import { loadTasks, parseSamples, parseTasks, type Sample, type Task } from '../../src/eval/tasks.js';
import { runEval } from '../../src/eval/run.js';
import { openSandbox } from '../../src/config/sandbox.js';
import { SAMPLING_DEFAULTS } from '../../src/config/sampling.js';

let runner: PythonPool;

beforeAll(async () => {
  runner = await PythonPool.create({ workers: 2, timeoutMs: 10_000 });
});
afterAll(async () => {
  await runner?.close();
});

const files = {
  humaneval: 'data/tasks/humaneval-sample.jsonl',
  mbpp: 'data/tasks/mbpp-sample.jsonl',
  stdio: 'data/tasks/stdio-sample.jsonl',
} as const;

const sample = (taskId: string, completion: string, i: number): Sample => ({
  taskId,
  completion,
  record: { task_id: taskId, completion },
  where: `broken ${i}`,
});

/** Wrong-but-runnable completions for a task: wrong answers, an exception, a syntax error. */
function broken(t: Task): string[] {
  if (t.format === 'humaneval') return ['    return None\n', '    raise ValueError("no")\n', '    return (\n'];
  if (t.format === 'mbpp') {
    const fn = /^def (\w+)/m.exec(t.reference!)![1];
    return [`${t.reference}\ndef ${fn}(*args, **kwargs):\n    return None\n`, '', `def ${fn}(:\n    pass\n`];
  }
  return ['print(-1)\n', 'raise SystemExit(3)\n', 'print(int(input()) +\n'];
}

describe.each(Object.entries(files))('our %s tasks', (_, file) => {
  const tasks = loadTasks(file);

  it('every reference solution passes every test', async () => {
    const results = await evaluateCompletions(tasks, referenceSamples(tasks), runner);
    expect(results.map((r) => `${r.taskId}: ${r.result}`)).toEqual(tasks.map((t) => `${t.taskId}: passed`));
    expect(results.every((r) => r.passedTests === r.totalTests && r.totalTests >= 1)).toBe(true);
  });

  it('every broken completion fails', async () => {
    const samples = tasks.flatMap((t) => broken(t).map((c, i) => sample(t.taskId, c, i)));
    const results = await evaluateCompletions(tasks, samples, runner);
    const passing = results.filter((r) => r.passed || !r.result.startsWith('failed: ')).map((r) => `${r.taskId}: ${r.result}`);
    expect(passing).toEqual([]);
    expect(results.every((r) => r.passedTests < r.totalTests)).toBe(true);
  });
});

const HE_TASK = parseTasks(
  JSON.stringify({
    task_id: 'T/0',
    prompt: 'def add(a, b):\n    """Return a + b."""\n',
    test: '\n\ndef check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(2, 2) == 4\n',
    entry_point: 'add',
  }),
  't.jsonl',
);
const MBPP_TASK = parseTasks(
  JSON.stringify({
    task_id: 7,
    text: 'Add two numbers.',
    code: '',
    test_list: ['assert add(1, 2) == 3', 'assert add(2, 2) == 4', 'assert add(0, 5) == 5'],
    test_setup_code: '',
  }),
  'm.jsonl',
);
const LIST_TASK = parseTasks(
  JSON.stringify({
    task_id: 'T/1',
    prompt: 'def pair(a, b):\n    """Return [a, b]."""\n',
    test: '\n\ndef check(candidate):\n    assert candidate(1, 2) == [1, 2]\n',
    entry_point: 'pair',
  }),
  't.jsonl',
);
const HACK = 'class AlwaysEqual:\n    def __eq__(self, other):\n        return True\n';

async function score(tasks: Task[], completions: string[], strict: boolean) {
  const samples = parseSamples(completions.map((c) => JSON.stringify({ task_id: tasks[0]!.taskId, completion: c })).join('\n'), 's');
  const results = await evaluateCompletions(tasks, samples, runner, { strict });
  return results.map((r) => [r.result, r.passedTests]);
}

describe('MBPP counts passing asserts in one run', () => {
  it('2 of 3, with the first failure as the result; a swapped sys.stdout does not hide the count', async () => {
    const out = await score(
      MBPP_TASK,
      [
        'def add(a, b):\n    return a + b',
        'def add(a, b):\n    return a + b + (a == 2)',
        'import io, sys\nsys.stdout = io.StringIO()\ndef add(a, b):\n    return 3',
      ],
      false,
    );
    expect(out[0]).toEqual(['passed', 3]);
    expect(out[1]![0]).toMatch(/^failed: /);
    expect(out[1]![1]).toBe(2);
    expect(out[2]![1]).toBe(1);
  });
});

describe('--strict-results', () => {
  const strictFail = (fn: string, cls: string) => `failed: strict-results: ${fn} returned ${cls} overriding __eq__`;

  it('HumanEval: without the guard the __eq__ hack passes; with it, it fails by name', async () => {
    const hacks = [
      `    ${HACK.replaceAll('\n', '\n    ')}return AlwaysEqual()\n`,
      '    class Sneaky(int):\n        def __eq__(self, other):\n            return True\n    return Sneaky(0)\n',
    ];
    expect(await score(HE_TASK, hacks, false)).toEqual(hacks.map(() => ['passed', 1]));
    expect(await score(HE_TASK, hacks, true)).toEqual([
      [strictFail('add', 'add.<locals>.AlwaysEqual'), 0],
      [strictFail('add', 'add.<locals>.Sneaky'), 0],
    ]);
    // Inside a returned container: list.__eq__ calls each element's __eq__.
    const inList = '    return [Hack(), Hack()]\nclass Hack:\n    __eq__ = lambda self, other: True\n';
    expect(await score(LIST_TASK, [inList], false)).toEqual([['passed', 1]]);
    expect(await score(LIST_TASK, [inList], true)).toEqual([[strictFail('pair', 'Hack'), 0]]);
  });

  it('HumanEval: honest answers pass, stdlib classes and helpers that return such objects included', async () => {
    const honest = [
      '    return a + b\n',
      '    from fractions import Fraction\n    return Fraction(a) + b\n',
      '    return helper(a) + b\nclass Box:\n    def __init__(self, v): self.v = v\n    def __eq__(self, o): return True\ndef helper(x):\n    return Box(x).v\n',
      '    return a + b if a < 1 else add(a - 1, b) + 1\n',
    ];
    expect(await score(HE_TASK, honest, true)).toEqual(honest.map(() => ['passed', 1]));
  });

  it('MBPP: wraps the functions the asserts call; honest and Counter-returning code passes', async () => {
    const out = await score(
      MBPP_TASK,
      [
        `${HACK}def add(a, b):\n    return AlwaysEqual()`,
        'def add(a, b):\n    return a + b',
        'from collections import Counter\ndef add(a, b):\n    return a + b + sum(Counter("ab").values()) - 2',
      ],
      true,
    );
    expect(out).toEqual([
      [strictFail('add', 'AlwaysEqual'), 0],
      ['passed', 3],
      ['passed', 3],
    ]);
  });
});

describe('eval --samples end to end, with its own pool', () => {
  it('references pass and broken completions fail, under --strict-results, in the results file and the summary', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'eval-e2e-'));
    const tasks = loadTasks(files.mbpp);
    const lines = tasks.flatMap((t) => [
      { task_id: Number(t.taskId), completion: t.reference },
      { task_id: Number(t.taskId), completion: broken(t)[0] },
    ]);
    const samples = join(dir, 'samples.jsonl');
    writeFileSync(samples, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
    const printed: string[] = [];
    const out = join(dir, 'results.jsonl');
    await runEval(
      { samples, tasks: files.mbpp, out, sandbox: { timeoutS: 10, workers: 2, strictResults: true }, sampling: SAMPLING_DEFAULTS.eval },
      { openRunner: openSandbox, print: (l) => printed.push(l), log: () => {} },
    );
    const rows = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(rows.map((r) => r.passed)).toEqual(lines.map((_, i) => i % 2 === 0));
    expect(rows[0]).toEqual({ ...lines[0], result: 'passed', passed: true, passed_tests: 3, total_tests: 3 });
    expect(rows[1]).toMatchObject({ task_id: 1, result: 'failed: ', error: 'AssertionError', passed: false, passed_tests: 0 });
    expect(printed.join('\n')).toContain(`${lines.length} samples over ${tasks.length} tasks (n = 2 per task): passed ${tasks.length}, failed ${tasks.length}`);
    expect(printed.join('\n')).toContain('  1      0.5000');
  });
});

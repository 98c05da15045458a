// Task and sample formats: HumanEval jsonl(.gz), MBPP original jsonl and sanitized json, CodeContests stdio.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { loadSamples, loadTasks, parseSamples, parseTasks } from '../../src/eval/tasks.js';
import { InputError } from '../../src/util/errors.js';

const HE = {
  task_id: 'HumanEval/0',
  prompt: 'def add(a, b):\n    """Add."""\n',
  canonical_solution: '    return a + b\n',
  test: '\n\ndef check(candidate):\n    assert candidate(1, 2) == 3\n',
  entry_point: 'add',
};
const MBPP_ORIGINAL = {
  task_id: 11,
  text: 'Write a function to add two numbers.',
  code: 'def add(a, b):\n    return a + b',
  test_list: ['assert add(1, 2) == 3', 'assert add(0, 0) == 0'],
  test_setup_code: 'import math',
  challenge_test_list: [],
};
const MBPP_SANITIZED = {
  source_file: 'x.ipynb',
  task_id: 12,
  prompt: 'Write a function to add two numbers.',
  code: 'def add(a, b):\n    return a + b',
  test_imports: ['import math', 'import re'],
  test_list: ['assert add(1, 2) == 3'],
};
const STDIO = {
  name: 'sum',
  description: 'Print a + b.',
  public_tests: { input: ['1 2\n'], output: ['3\n'] },
  private_tests: { input: ['2 2\n', '0 0\n'], output: ['4\n', '0\n'] },
  generated_tests: { input: [], output: [] },
  solutions: { language: [2, 3], solution: ['int main(){}', 'print(sum(map(int, input().split())))'] },
};

const jsonl = (...rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
const dir = mkdtempSync(join(tmpdir(), 'eval-tasks-'));

function thrown(fn: () => unknown): InputError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    return e as InputError;
  }
  throw new Error('expected an InputError');
}

describe('task formats', () => {
  it('reads HumanEval jsonl and keeps the prompt as the model sees it', () => {
    const [t] = parseTasks(jsonl(HE), 'he.jsonl');
    expect(t).toEqual({
      format: 'humaneval',
      taskId: 'HumanEval/0',
      prompt: HE.prompt,
      test: HE.test,
      entryPoint: 'add',
      reference: HE.canonical_solution,
    });
  });

  it('reads HumanEval jsonl.gz (detected by the gzip magic bytes)', () => {
    const file = join(dir, 'HumanEval.jsonl.gz');
    writeFileSync(file, gzipSync(jsonl(HE, { ...HE, task_id: 'HumanEval/1' })));
    const tasks = loadTasks(file);
    expect(tasks.map((t) => t.taskId)).toEqual(['HumanEval/0', 'HumanEval/1']);
    expect(tasks[0]!.format).toBe('humaneval');
  });

  it('reads original MBPP jsonl: text, test_setup_code, string task ids, first assert in the prompt', () => {
    const [t] = parseTasks(jsonl(MBPP_ORIGINAL), 'mbpp.jsonl');
    expect(t).toEqual({
      format: 'mbpp',
      taskId: '11',
      text: MBPP_ORIGINAL.text,
      prompt: `"""\n${MBPP_ORIGINAL.text}\nassert add(1, 2) == 3\n"""\n`,
      setup: 'import math',
      asserts: MBPP_ORIGINAL.test_list,
      reference: MBPP_ORIGINAL.code,
    });
  });

  it('reads sanitized MBPP json arrays: prompt, test_imports', () => {
    const file = join(dir, 'sanitized-mbpp.json');
    writeFileSync(file, JSON.stringify([MBPP_SANITIZED], null, 1));
    const [t] = loadTasks(file);
    expect(t).toMatchObject({ format: 'mbpp', taskId: '12', text: MBPP_SANITIZED.prompt, setup: 'import math\nimport re' });
  });

  it('reads CodeContests-style stdio tasks: all three test groups, the PYTHON3 solution', () => {
    const [t] = parseTasks(jsonl(STDIO), 'cc.jsonl');
    expect(t).toEqual({
      format: 'stdio',
      taskId: 'sum',
      prompt: 'Print a + b.',
      tests: [
        { input: '1 2\n', output: '3\n' },
        { input: '2 2\n', output: '4\n' },
        { input: '0 0\n', output: '0\n' },
      ],
      reference: 'print(sum(map(int, input().split())))',
    });
    const [u] = parseTasks(jsonl({ ...STDIO, task_id: 'x/1', solutions: ['print(1)'] }), 'cc.jsonl');
    expect(u).toMatchObject({ taskId: 'x/1', reference: 'print(1)' });
  });

  it('detects the format from content, and --format overrides', () => {
    expect(parseTasks(jsonl(STDIO), 'a')[0]!.format).toBe('stdio');
    const e = thrown(() => parseTasks(jsonl(HE), 'he.jsonl', 'mbpp'));
    expect(e.message).toMatch(/^he\.jsonl:1: no "test_list"/);
    expect(thrown(() => parseTasks(jsonl({ foo: 1 }), 'x.jsonl')).message).toMatch(/^x\.jsonl:1: .*Pass --format/);
  });

  it('our own task files parse, each with a reference for every task', () => {
    for (const [file, format] of [
      ['data/tasks/humaneval-sample.jsonl', 'humaneval'],
      ['data/tasks/mbpp-sample.jsonl', 'mbpp'],
      ['data/tasks/stdio-sample.jsonl', 'stdio'],
    ] as const) {
      const tasks = loadTasks(file);
      expect(tasks.length).toBeGreaterThanOrEqual(8);
      expect(tasks.every((t) => t.format === format && t.reference !== undefined)).toBe(true);
    }
  });
});

describe('malformed input names file:line', () => {
  it('bad JSON', () => {
    const e = thrown(() => parseTasks(jsonl(HE) + '{"task_id": \n', 'he.jsonl'));
    expect(e.message).toMatch(/^he\.jsonl:2: not valid JSON/);
  });
  it('a missing field, after a blank line', () => {
    const { entry_point: _, ...broken } = HE;
    const e = thrown(() => parseTasks(jsonl(HE) + '\n' + jsonl(broken), 'he.jsonl'));
    expect(e.message).toMatch(/^he\.jsonl:3: no "entry_point" \(expected a string "entry_point" in a HumanEval task/);
  });
  it('a wrong type, a non-object line, a duplicate id, unequal stdio lists', () => {
    expect(thrown(() => parseTasks(jsonl(MBPP_ORIGINAL, { ...MBPP_ORIGINAL, task_id: 2, test_list: 'x' }), 'm.jsonl')).message).toMatch(
      /^m\.jsonl:2: "test_list" is not a list of strings/,
    );
    expect(thrown(() => parseTasks(jsonl(HE, [1, 2]), 'he.jsonl')).message).toMatch(/^he\.jsonl:2: an array \(expected a JSON object\)/);
    expect(thrown(() => parseTasks(jsonl(HE, HE), 'he.jsonl')).message).toMatch(/^he\.jsonl:2: task_id HumanEval\/0 again \(first at he\.jsonl:1\)/);
    const bad = { ...STDIO, private_tests: { input: ['1'], output: [] } };
    expect(thrown(() => parseTasks(jsonl(bad), 'cc.jsonl')).message).toMatch(/^cc\.jsonl:1: "private_tests" has 1 inputs and 0 outputs/);
  });
  it('a JSON array names the item', () => {
    const e = thrown(() => parseTasks(JSON.stringify([MBPP_SANITIZED, { task_id: 3 }]), 'mbpp.json'));
    expect(e.message).toMatch(/^mbpp\.json\[1\]: /);
  });
});

describe('samples', () => {
  it('reads task_id + completion and keeps every other field', () => {
    const s = parseSamples(jsonl({ task_id: 'HumanEval/0', completion: '    return 1\n', extra: 7 }, { task_id: 11, completion: 'x' }), 's.jsonl');
    expect(s[0]).toEqual({
      taskId: 'HumanEval/0',
      completion: '    return 1\n',
      record: { task_id: 'HumanEval/0', completion: '    return 1\n', extra: 7 },
      where: 's.jsonl:1',
    });
    expect(s[1]!.taskId).toBe('11');
  });
  it('reads gzip and names the bad line', () => {
    const file = join(dir, 'samples.jsonl.gz');
    writeFileSync(file, gzipSync(jsonl({ task_id: 'a', completion: 'x' }, { task_id: 'b' })));
    expect(thrown(() => loadSamples(file)).message).toMatch(/samples\.jsonl\.gz:2: no "completion"/);
  });
});

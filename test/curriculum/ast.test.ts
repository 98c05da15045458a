// The `ast` difficulty on hand-made pairs, through the real Python sandbox (CURRICULUM_TEST_RUNNER=native runs the
// same program under the local python3 as a cross-check). Goldens are counted by hand from the node sequences.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { astDistances, astInputOf, codeOf, type AstInput, type PythonRunner } from '../../src/curriculum/ast.js';

let runner: PythonRunner & { close(): unknown };

beforeAll(async () => {
  if (process.env.CURRICULUM_TEST_RUNNER === 'native') {
    const { NativeRunner } = await import('../../src/eval/native.js');
    runner = new NativeRunner();
  } else {
    const { PythonPool } = await import('../../src/python/index.js');
    runner = await PythonPool.create({ workers: 2, timeoutMs: 30_000 });
  }
});
afterAll(async () => {
  await runner?.close();
});

const SUMSQ = `def sum_of_squares(nums):
    total = 0
    for n in nums:
        total += n * n
    return total
`;
const SUMSQ_RENAMED = SUMSQ.replaceAll('total', 'acc').replaceAll('n * n', 'x * x').replace('for n in', 'for x in');
const SUMSQ_COMMENTED = `def sum_of_squares(nums):
    # running total
    total = 0

    for n in nums:   # each number
        total += n * n
    return total
`;
const SUMSQ_ONE_OFF = SUMSQ.replace('total = 0', 'total = 1');
const SUMSQ_BUILTIN = `def sum_of_squares(nums):
    return sum(map(lambda v: v ** 2, nums))
`;
const FIB_LOOP = `def fib(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a
`;
const FIB_REC = `def fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)
`;
const ADD_PROMPT = 'def add(a, b):\n    """Return the sum of a and b.\n    >>> add(2, 3)\n    5\n    """\n';

async function distances(inputs: AstInput[], batchSize?: number) {
  return astDistances(inputs, runner, batchSize ? { batchSize } : {});
}

describe('ast difficulty', () => {
  it('identical code is 0; comments and blank lines do not count', async () => {
    const got = await distances([
      { prompt: '', chosen: SUMSQ, rejected: SUMSQ },
      { prompt: '', chosen: SUMSQ, rejected: SUMSQ_COMMENTED },
      { prompt: ADD_PROMPT, chosen: '    return a + b\n', rejected: '    return a + b\n' },
    ]);
    expect(got).toEqual([
      { distance: 0, method: 'ast' },
      { distance: 0, method: 'ast' },
      { distance: 0, method: 'ast' },
    ]);
  });

  it('a renamed variable is small (names are normalized: 0); a changed constant is small but not 0', async () => {
    const [renamed, oneOff] = await distances([
      { prompt: '', chosen: SUMSQ, rejected: SUMSQ_RENAMED },
      { prompt: '', chosen: SUMSQ, rejected: SUMSQ_ONE_OFF },
    ]);
    expect(renamed!.distance).toBeLessThan(0.15);
    expect(renamed!.distance).toBe(0);
    expect(oneOff!.distance).toBeGreaterThan(0);
    expect(oneOff!.distance).toBeLessThan(0.15);
  });

  it('a different algorithm is large', async () => {
    const got = await distances([
      { prompt: '', chosen: FIB_LOOP, rejected: FIB_REC },
      { prompt: '', chosen: SUMSQ, rejected: SUMSQ_BUILTIN },
    ]);
    for (const g of got) {
      expect(g.method).toBe('ast');
      expect(g.distance).toBeGreaterThan(0.4);
      expect(g.distance).toBeLessThanOrEqual(1);
    }
  });

  it('a body is parsed after its prompt and only its own nodes count: return a+b vs a-b is 1/5', async () => {
    // Completion nodes: Return, BinOp, Name:@new, Add|Sub, Name:@new -> one substitution in five.
    const [d] = await distances([{ prompt: ADD_PROMPT, chosen: '    return a + b\n', rejected: '    return a - b\n' }]);
    expect(d).toEqual({ distance: 0.2, method: 'ast' });
    // A body alone (no prompt) parses dedented, and gives the same sequence.
    const [alone] = await distances([{ prompt: '', chosen: '    return a + b\n', rejected: '    return a - b\n' }]);
    expect(alone).toEqual({ distance: 0.2, method: 'ast' });
  });

  it('a side that does not parse falls back to normalized tokens: 1 token of 10 missing is 0.1', async () => {
    // def @new ( @new ) : return @0 + 1   vs   the same without the final 1
    const [d] = await distances([{ prompt: '', chosen: 'def f(x):\n    return x + 1\n', rejected: 'def f(x):\n    return x +\n' }]);
    expect(d!.method).toBe('tokens');
    expect(d!.distance).toBeCloseTo(0.1, 12);
  });

  it('keeps input order across batches and handles non-ASCII text', async () => {
    const inputs: AstInput[] = [];
    for (let i = 0; i < 7; i++) inputs.push({ prompt: '', chosen: SUMSQ, rejected: i % 2 ? FIB_REC : `s = "héllo ✓ ${i}"\n` + SUMSQ });
    const batched = await distances(inputs, 2);
    const single = await distances(inputs, 100);
    expect(batched).toEqual(single);
    expect(batched.map((d) => d.distance > 0.4)).toEqual([false, true, false, true, false, true, false]);
  });

  it('a program that keeps failing names the pair', async () => {
    const failing: PythonRunner = { run: async () => ({ passed: false, result: 'timed out', stdout: '', stderr: '' }) };
    await expect(astDistances([{ prompt: '', chosen: 'x', rejected: 'y', where: 'pairs.jsonl:3' }], failing)).rejects.toThrow(/^pairs\.jsonl:3: .*timed out/);
  });
});

describe('astInputOf', () => {
  it('plain pairs keep their prompt; fenced answers and chats stand alone', () => {
    expect(astInputOf({ prompt: ADD_PROMPT, chosen: '    return a + b\n', rejected: '    return a\n' })).toEqual({ prompt: ADD_PROMPT, chosen: '    return a + b\n', rejected: '    return a\n' });
    expect(astInputOf({ prompt: 'Write add.', chosen: 'Sure:\n```python\ndef add(a, b):\n    return a + b\n```\nDone.', rejected: 'def add(a, b): pass' }, 'f:1')).toEqual({
      prompt: '',
      chosen: 'def add(a, b):\n    return a + b\n',
      rejected: 'def add(a, b): pass',
      where: 'f:1',
    });
    const chat = astInputOf({
      prompt: [{ role: 'user', content: 'Write add.' }],
      chosen: [{ role: 'assistant', content: '```py\nreturn 1\n```' }],
      rejected: [{ role: 'assistant', content: 'return 2' }],
    });
    expect(chat).toEqual({ prompt: '', chosen: 'return 1\n', rejected: 'return 2' });
    expect(codeOf('no fence here')).toBe('no fence here');
    expect(codeOf('```\nx = 1\n```')).toBe('x = 1\n');
  });

  it('a conversational pair through the sandbox: identical fenced code is 0', async () => {
    const input = astInputOf({
      prompt: [{ role: 'user', content: 'Sum of squares?' }],
      chosen: [{ role: 'assistant', content: 'Here:\n```python\n' + SUMSQ + '```' }],
      rejected: [{ role: 'assistant', content: 'Try this:\n```python\n' + SUMSQ_COMMENTED + '```\nIt loops.' }],
    });
    expect(await distances([input])).toEqual([{ distance: 0, method: 'ast' }]);
  });
});

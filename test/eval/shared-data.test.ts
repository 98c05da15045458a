// Local check against the public sets in ../shared/data (never committed; this file skips itself without them):
// all 164 HumanEval canonical solutions and 427 sanitized-MBPP reference solutions pass through our code path.
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PythonPool } from '../../src/python/index.js';
import { evaluateCompletions, referenceSamples } from '../../src/eval/execute.js';
import { loadTasks } from '../../src/eval/tasks.js';

const HE = '../shared/data/HumanEval.jsonl';
const MBPP = '../shared/data/sanitized-mbpp.json';
const present = existsSync(HE) && existsSync(MBPP);

describe.skipIf(!present)('public sets in ../shared/data', () => {
  let runner: PythonPool;
  beforeAll(async () => {
    runner = await PythonPool.create({ workers: 2, timeoutMs: 20_000 });
  });
  afterAll(async () => {
    await runner?.close();
  });

  it.each([
    [HE, 164],
    [MBPP, 427],
  ])('%s: all %i reference solutions pass', async (file, count) => {
    const tasks = loadTasks(file);
    expect(tasks).toHaveLength(count);
    // Mbpp/123 needs about 6 s in Pyodide, so the limit is generous.
    const results = await evaluateCompletions(tasks, referenceSamples(tasks), runner, { timeoutMs: 20_000, concurrency: 16 });
    expect(results.filter((r) => !r.passed).map((r) => `${r.taskId}: ${r.result}`)).toEqual([]);
    expect(results.every((r) => r.passedTests === r.totalTests)).toBe(true);
  });
});

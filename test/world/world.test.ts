// The task world: deterministic for a seed, split by combination, and every task's test is right in our sandbox
// (its canonical solution passes, a single-op mutant fails), on every task of a small world.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PythonPool } from '../../src/python/index.js';
import { evaluateCompletions, referenceSamples } from '../../src/eval/execute.js';
import { loadTasks, type Sample } from '../../src/eval/tasks.js';
import { generateWorld, writeWorld } from '../../src/world/world.js';
import { floorDiv, pyMod } from '../../src/world/ops.js';
import { mutantsOf, solutionOf, TESTS_PER_TASK } from '../../src/world/tasks.js';
import { Rng } from '../../src/util/rng.js';

const small = { seed: 7, size: 45, heldout: 15 };

describe('world generation', () => {
  it('is byte-identical for a seed, and another seed gives another world', () => {
    const a = mkdtempSync(join(tmpdir(), 'world-a-'));
    const b = mkdtempSync(join(tmpdir(), 'world-b-'));
    writeWorld(a, generateWorld(small));
    writeWorld(b, generateWorld(small));
    for (const f of ['train.jsonl', 'heldout.jsonl']) expect(readFileSync(join(a, f))).toEqual(readFileSync(join(b, f)));
    const other = generateWorld({ ...small, seed: 8 });
    expect(other.train.map((t) => t.record.prompt)).not.toEqual(generateWorld(small).train.map((t) => t.record.prompt));
  });

  it('splits by combination: no held-out combination (nor prompt) is in train', () => {
    const w = generateWorld({ seed: 3, size: 600, heldout: 150 });
    const trainCombos = new Set(w.train.map((t) => t.record.combination));
    const trainPrompts = new Set(w.train.map((t) => t.record.prompt));
    expect(w.heldout.filter((t) => trainCombos.has(t.record.combination)).map((t) => t.record.combination)).toEqual([]);
    expect(w.heldout.filter((t) => trainPrompts.has(t.record.prompt))).toEqual([]);
    // All three families and levels on both sides.
    for (const side of [w.train, w.heldout]) {
      expect(new Set(side.map((t) => t.record.family))).toEqual(new Set(['list', 'string', 'int']));
      expect(new Set(side.map((t) => t.record.level))).toEqual(new Set([1, 2, 3]));
    }
  });

  it('has 5 asserts per task and never names a function after a builtin it calls', () => {
    const w = generateWorld(small);
    for (const t of [...w.train, ...w.heldout]) {
      expect(t.record.test.match(/assert candidate/g)?.length).toBe(TESTS_PER_TASK);
      expect(['sum', 'max', 'min', 'len', 'abs', 'prod']).not.toContain(t.record.entry_point);
      expect(t.record.prompt).toContain(`def ${t.record.entry_point}(`);
    }
  });

  it("evaluates // and % as Python does (values from python3's -7 // 2, -7 % 3, 7 % -3)", () => {
    expect([floorDiv(-7n, 2n), floorDiv(7n, 2n), floorDiv(-8n, 4n), pyMod(-7n, 3n), pyMod(7n, -3n), pyMod(-9n, 3n)]).toEqual([-4n, 3n, -2n, 2n, -2n, 0n]);
  });
});

describe('world tasks in the sandbox', () => {
  let runner: PythonPool;
  let dir: string;
  beforeAll(async () => {
    runner = await PythonPool.create({ workers: 2, timeoutMs: 10_000 });
    dir = mkdtempSync(join(tmpdir(), 'world-sandbox-'));
  });
  afterAll(async () => {
    await runner?.close();
  });

  it('every canonical solution passes its test and a mutated one fails, on every task', async () => {
    const world = generateWorld(small);
    const files = writeWorld(dir, world);
    for (const split of ['train', 'heldout'] as const) {
      const tasks = loadTasks(files[split]);
      expect(tasks.length).toBe(world[split].length);
      const ok = await evaluateCompletions(tasks, referenceSamples(tasks), runner);
      expect(ok.filter((r) => !r.passed).map((r) => `${r.taskId}: ${r.result}`)).toEqual([]);
      const rng = new Rng(1);
      const mutated: Sample[] = world[split].map((t) => {
        const ms = mutantsOf(t.spec, rng);
        const completion = solutionOf(ms[rng.int(ms.length)], t.naming);
        return { taskId: t.record.task_id, completion, record: { task_id: t.record.task_id, completion }, where: `mutant of ${t.record.task_id}` };
      });
      const bad = await evaluateCompletions(tasks, mutated, runner);
      expect(bad.filter((r) => r.passed).map((r) => `${r.taskId}: ${mutated.find((m) => m.taskId === r.taskId)!.completion}`)).toEqual([]);
      expect(bad.every((r) => r.result.startsWith('failed: '))).toBe(true);
    }
  }, 60_000);
});

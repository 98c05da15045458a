// The host's queue (src/python/schedule.ts): first in, first out, except that a program whose work took long last
// time goes ahead, the longest first; and through a pool, that this order changes no result and that a long
// program queued behind short ones starts before them once its duration is known.
import { describe, it, expect, afterAll } from 'vitest';
import { JobQueue, LONG_MS, workKey } from '../../src/python/schedule.js';
import { PythonPool, type RunRequest } from '../../src/python/index.js';

const drain = (q: JobQueue): number[] => {
  const out: number[] = [];
  for (let id = q.shift(); id !== undefined; id = q.shift()) out.push(id);
  return out;
};

describe('JobQueue', () => {
  it('is first in, first out while no duration is known, or none is long', () => {
    const q = new JobQueue(20);
    q.learn('short', 19.9);
    for (let i = 1; i <= 5; i++) q.push(i, i % 2 ? 'short' : 'unknown');
    expect(q.size).toBe(5);
    expect(drain(q)).toEqual([1, 2, 3, 4, 5]);
    expect(q.size).toBe(0);
    expect(q.shift()).toBeUndefined();
  });

  it('puts a program whose work took long ahead, the longest first, ties in arrival order', () => {
    const q = new JobQueue(20);
    q.learn('a', 20);
    q.learn('b', 300);
    q.learn('c', 5);
    const keys = ['c', 'a', 'c', 'b', 'a', 'x', 'b'];
    keys.forEach((k, i) => q.push(i + 1, k));
    // b (300 ms): 4, 7; a (20 ms): 2, 5; then the rest as they came.
    expect(drain(q)).toEqual([4, 7, 2, 5, 1, 3, 6]);
  });

  it('takes the last duration of a key (a long one that became short goes back in line)', () => {
    const q = new JobQueue(20);
    q.learn('a', 100);
    q.learn('a', 2);
    q.push(1, 'b');
    q.push(2, 'a');
    expect(drain(q)).toEqual([1, 2]);
    q.learn('a', Number.NaN); // ignored
    q.learn('a', -1); // ignored
    q.push(3, 'b');
    q.push(4, 'a');
    expect(drain(q)).toEqual([3, 4]);
  });

  it('a program still running is learnt long at once, but never hides a longer duration already known', () => {
    const q = new JobQueue(20);
    [1, 2, 3].forEach((id) => q.push(id, id === 3 ? 'a' : 's'));
    q.stillRunning('a', 21); // the first sample of 'a' runs: its later one (id 3) goes ahead now
    expect(q.shift()).toBe(3);
    q.learn('a', 300);
    q.learn('b', 100);
    q.stillRunning('a', 21); // another sample of 'a' runs: 'a' stays the longer of the two
    q.push(4, 'b');
    q.push(5, 'a');
    expect(drain(q)).toEqual([5, 4, 1, 2]);
  });

  it('a work found long sends its programs that already wait ahead (a later round of samples), the longest first', () => {
    const q = new JobQueue(20);
    ['a', 'b', 'c', 'a', 'b', 'c', 'a'].forEach((k, i) => q.push(i + 1, k));
    expect(q.shift()).toBe(1); // a, duration unknown
    q.learn('c', 30);
    q.learn('a', 50); // 4 and 7 go ahead of 6 (c, 30 ms), which went ahead of the rest
    q.learn('a', 60); // already long: nothing moves again
    q.push(8, 'b');
    expect(drain(q)).toEqual([4, 7, 3, 6, 2, 5, 8]);
  });

  it('a re-queued job goes first of all; clear returns what waited, in dispatch order', () => {
    const q = new JobQueue(20);
    q.learn('long', 50);
    q.push(1, 'x');
    q.push(2, 'long');
    q.unshift(9);
    expect(q.clear()).toEqual([9, 2, 1]);
    expect(q.size).toBe(0);
    q.push(3, 'x');
    expect(drain(q)).toEqual([3]);
  });

  it('keeps its order over many pushes and shifts (the array is compacted as it goes)', () => {
    const q = new JobQueue(20);
    const got: number[] = [];
    for (let i = 0; i < 5000; i++) {
      q.push(i, 'k');
      if (i % 3 === 2) got.push(q.shift()!, q.shift()!);
    }
    got.push(...drain(q));
    expect(got).toEqual(Array.from({ length: 5000 }, (_, i) => i));
  });

  it('keys a program by its test, else by its code and stdin', () => {
    expect(workKey({ code: 'a', suffix: 'check(f)' })).toBe(workKey({ code: 'b', suffix: 'check(f)' }));
    expect(workKey({ code: 'a', tests: ['assert f(1)'] })).toBe(workKey({ code: 'b', tests: ['assert f(1)'] }));
    expect(workKey({ code: 'a', stdin: '1' })).not.toBe(workKey({ code: 'a', stdin: '2' }));
    expect(workKey({ code: 'a' })).not.toBe(workKey({ code: 'a', suffix: 'a' }));
  });
});

describe('through a pool', () => {
  let pool: PythonPool | undefined;
  afterAll(async () => {
    await pool?.close();
  });

  it('a long program queued behind short ones starts before them once its duration is known; every result is the same', async () => {
    pool = await PythonPool.create({ workers: 1, timeoutMs: 20000 });
    // About 100-300 ms in Pyodide: far past LONG_MS on any machine.
    const long: RunRequest = { code: 'def f(n):\n    s = 0\n    for i in range(n):\n        s += i % 7\n    return s\n',
      suffix: 'assert f(1_000_000) == 2999997\nprint(f(10))' };
    const short = (i: number): RunRequest => ({ code: `def g(x):\n    return x * ${i}\n`, suffix: `assert g(2) == ${2 * i}\nprint(g(3))` });
    const first = await pool.run(long);
    expect(first.result).toBe('passed');
    expect(first.durationMs).toBeGreaterThan(LONG_MS);
    const alone = await Promise.all(Array.from({ length: 24 }, (_, i) => pool!.run(short(i))));
    const order: string[] = [];
    const runs = [...Array.from({ length: 24 }, (_, i) => ['short' + i, short(i)] as const), ['long', long] as const]
      .map(([name, req]) => pool!.run(req).then((r) => {
        order.push(name);
        return r;
      }));
    const results = await Promise.all(runs);
    // The sandbox holds a few jobs per worker already (pool.ts DEPTH); the long one goes next after them.
    expect(order.indexOf('long')).toBeLessThan(12);
    const strip = (r: { result: string; stdout: string; stderr: string; testsPassed?: number }) =>
      [r.result, r.stdout, r.stderr, r.testsPassed];
    expect(results.map(strip)).toEqual([...alone, first].map(strip));
    expect(results.at(-1)!.stdout).toBe('24\n');
    expect(results[5]!.stdout).toBe('15\n');
  }, 60_000);

  it("a long program's later samples go ahead while its first still runs, not once it ends", async () => {
    const two = await PythonPool.create({ workers: 2, timeoutMs: 20000 });
    try {
      // Never seen by this pool: nothing is known of it until its first sample runs (250-800 ms, far past LONG_MS).
      const long: RunRequest = { code: 'def h(n):\n    s = 0\n    for i in range(n):\n        s += i % 5\n    return s\n',
        suffix: 'assert h(3_000_000) == 6000000' };
      const short = (i: number): RunRequest => ({ code: `def g(x):\n    return x + ${i}\n`, suffix: `assert g(1) == ${i + 1}` });
      const order: string[] = [];
      const reqs = [['long1', long] as const, ...Array.from({ length: 150 }, (_, i) => ['short' + i, short(i)] as const),
        ['long2', long] as const];
      const results = await Promise.all(reqs.map(([name, req]) => two.run(req).then((r) => {
        order.push(name);
        return r;
      })));
      expect(results.every((r) => r.result === 'passed')).toBe(true);
      // Heard of LONG_MS into its first run, the second sample starts on the other worker a few short programs
      // later, and ends about when the first does: 27-28th alone, 78th with another test file running beside this
      // one (the host answers the notice later, and each short program takes longer). Learnt only from the first
      // one's end, it would start after that, once the other worker had run all the short ones, and end last.
      expect(order.indexOf('long2')).toBeLessThan(120);
    } finally {
      await two.close();
    }
  }, 60_000);
});

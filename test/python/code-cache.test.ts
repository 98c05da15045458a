// The worker's code cache (realm.ts CodeCache, guard.py unit): a program or test seen before is loaded from the
// marshal text the runner made the first time, and every verdict is the one a fresh compile gives: the same
// result, the same count of passed asserts, the same errors in the same order. A program cannot change the code
// that later programs get: the text is made before it runs, and keyed by the exact source.
// Runs Pyodide in this process (no worker, no pool), with the guard installed as in production.
import { describe, it, expect, beforeAll } from 'vitest';
import { bootRealm, readPyodideFiles, type Realm, type RealmJob } from '../../src/python/realm.js';
import { guardConfig, guardSource } from '../../src/python/guard.js';

const TEST = 'def check(candidate):\n    assert candidate(2) == 4\n    assert candidate(3) == 9\n';
const job = (code: string, extra: Partial<RealmJob> = {}): RealmJob => ({
  code, stdin: '', asMain: false, maxOutput: 1000, tests: [], suffix: TEST + 'check(square)', strictNames: [], ...extra,
});

describe('code cache', () => {
  let realm: Realm;
  beforeAll(async () => {
    realm = await bootRealm(readPyodideFiles(), { memoryMb: 256 });
    realm.install(guardSource(), guardConfig(1000));
    realm.attach();
  });

  /** Runs `j` twice (a compile, then a load from the cache) and returns both results. */
  const twice = (j: RealmJob) => {
    const before = realm.codeCache().hits;
    const first = realm.run(j);
    const second = realm.run(j);
    return { first, second, hits: realm.codeCache().hits - before };
  };

  it('gives the same verdicts from the cache as from a fresh compile', () => {
    const right = twice(job('def square(x):\n    return x * x\n'));
    expect([right.first.result, right.second.result, right.hits]).toEqual(['passed', 'passed', 2]);
    // The same test after a wrong completion: loaded from the cache, still run, still failing.
    const wrong = twice(job('def square(x):\n    return x + 2\n'));
    expect([wrong.first.result, wrong.second.result, wrong.hits]).toEqual(['failed: AssertionError', 'failed: AssertionError', 3]);
  });

  it('keeps the count of passed asserts, and each assert on its own (MBPP)', () => {
    const mbpp = job('def f(x):\n    return 1 if x < 3 else 0\n', {
      suffix: '', tests: ['assert f(1) == 1', 'assert f(2) == 1', 'assert f(5) == 1'],
    });
    const r = twice(mbpp);
    expect([r.first.result, r.first.testsPassed, r.second.result, r.second.testsPassed, r.hits])
      .toEqual(['failed: AssertionError', 2, 'failed: AssertionError', 2, 2]);
  });

  it('leaves a source that does not compile to the run, in order and uncached', () => {
    const badTest = job("print('ran')\ndef square(x):\n    return x * x\n", { suffix: 'def check(:\n' });
    const a = twice(badTest);
    for (const r of [a.first, a.second]) {
      expect(r.result).toMatch(/^failed: SyntaxError: /);
      expect(r.stdout).toBe('ran\n'); // the program ran before the test's error, as without the cache
    }
    expect(a.hits).toBe(1); // the program only
    // A source that warns is compiled on every run, so its warning reaches stderr every time.
    const warns = twice(job("import re\ndef square(x):\n    return x * x if re.match('\\d', '1') else 0\n"));
    expect([warns.first.result, warns.second.result]).toEqual(['passed', 'passed']);
    expect(warns.first.stderr).toMatch(/SyntaxWarning: .*escape sequence/);
    expect(warns.second.stderr).toBe(warns.first.stderr);
    const badProgram = twice(job('def square(x) return x\n'));
    expect(badProgram.first.result).toMatch(/^failed: SyntaxError: /);
    expect(badProgram.second.result).toBe(badProgram.first.result);
  });

  it('does not let a program change the code that a later program gets', () => {
    // The program tries what it can reach: the compile and exec builtins, and its own source's code object.
    const hostile = job(
      'import builtins\n' +
      "builtins.compile = lambda *a, **k: (lambda: None).__code__\n" +
      'builtins.exec = lambda *a, **k: None\n' +
      'def square(x):\n    return 0\n',
    );
    expect(realm.run(hostile).result).toMatch(/^(failed|blocked): /);
    const wrong = realm.run(job('def square(x):\n    return x + 2\n'));
    expect(wrong.result).toBe('failed: AssertionError');
    expect(realm.run(job('def square(x):\n    return x * x\n')).result).toBe('passed');
    // A program that differs from a cached one by a byte is compiled, not served the other's code.
    expect(realm.run(job('def square(x):\n    return x * x \n')).result).toBe('passed');
    expect(realm.run(job('def square(x):\n    return x * x + 1\n')).result).toBe('failed: AssertionError');
  });
});

// The warm-up (warmup.ts): its programs pass in the sandbox's runner, the rounds after the first are served from the
// code cache (the same sources), and they leave nothing for the first real program: each is rewound like any other.
import { it, expect } from 'vitest';
import { warmUp } from '../../src/python/warmup.js';
import { bootRealm, readPyodideFiles } from '../../src/python/realm.js';
import { guardConfig, guardSource } from '../../src/python/guard.js';

it('warm-up programs pass, hit the code cache after the first round, and leave no state', async () => {
  const files = readPyodideFiles();
  const cold = await bootRealm(files, { memoryMb: 256 });
  cold.install(guardSource(), guardConfig(1000));
  const realm = await bootRealm(files, { memoryMb: 256, snapshot: cold.makeSnapshot() });
  realm.attach();
  const before = realm.codeCache();
  warmUp(realm, 3);
  const after = realm.codeCache();
  // Three programs; two share their code (the function module), two have tests: 2 code entries + 2 test entries.
  expect(after.entries - before.entries).toBe(4);
  // Rounds 2 and 3: each of the 3 programs hits for its code, and the 2 with tests for them too; round 1's second
  // program hits for the code the first one cached.
  expect(after.hits - before.hits).toBe(2 * 5 + 1);
  const r = realm.run({ code: "assert 'primes' not in globals() and 'spread' not in globals()\nimport sys\n" +
    "assert 'functools' not in sys.modules or not hasattr(sys.modules['functools'], 'fib')",
    stdin: '', asMain: false, maxOutput: 1000, tests: [], suffix: '', strictNames: [] });
  expect(r.result).toBe('passed');
  expect(() => warmUp(realm, 0)).not.toThrow();
}, 120_000);

// The pristine image (image.ts): restore copies exactly the range asked for, from the image's bytes, to the same
// addresses; an image is refused when it is not this instance's pristine memory (one byte off, or shorter); two
// instances restored from one snapshot start with the same bytes, so one image serves every worker; and a pool
// rewinds from the shared image, with programs still seeing nothing of each other.
import { describe, it, expect } from 'vitest';
import { imageModuleBytes, imageRestorer } from '../../src/python/image.js';
import { bootRealm, readPyodideFiles } from '../../src/python/realm.js';
import { guardConfig, guardSource } from '../../src/python/guard.js';
import { PythonPool } from '../../src/python/index.js';

/** Bytes that differ from their neighbours and from zero: a misplaced copy shows. */
function pattern(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = (x >>> 16) & 255;
  }
  return out;
}

describe('image', () => {
  it('restores exactly the range asked for, and nothing else', () => {
    const pristine = pattern(3 * 65536 + 100, 7);
    const image = new WebAssembly.Module(imageModuleBytes(pristine));
    const memory = new WebAssembly.Memory({ initial: 4 });
    const view = new Uint8Array(memory.buffer);
    view.set(pristine);
    const r = imageRestorer(image, memory, pristine);
    expect('restore' in r).toBe(true);
    if (!('restore' in r)) return;
    view.fill(0xee);
    r.restore(70_000, 5000);
    expect(Array.from(view.subarray(70_000, 75_000))).toEqual(Array.from(pristine.subarray(70_000, 75_000)));
    expect(view[69_999]).toBe(0xee);
    expect(view[75_000]).toBe(0xee);
    r.restore(0, pristine.length);
    expect(Buffer.from(view.subarray(0, pristine.length)).equals(Buffer.from(pristine))).toBe(true);
    // Past the image's end: a trap, not bytes from elsewhere.
    expect(() => r.restore(pristine.length - 10, 20)).toThrow();
  });

  it('is refused when it is not this pristine memory: one byte off, a shorter image', () => {
    const pristine = pattern(65536 + 3, 11);
    const memory = new WebAssembly.Memory({ initial: 2 });
    for (const at of [0, 4097, 65536 + 2]) {
      const other = pristine.slice();
      other[at] ^= 1;
      const r = imageRestorer(new WebAssembly.Module(imageModuleBytes(other)), memory, pristine);
      expect(r).toEqual({ differs: `at byte ${at}` });
    }
    const short = imageRestorer(new WebAssembly.Module(imageModuleBytes(pristine.subarray(0, 65536))), memory, pristine);
    expect('differs' in short && short.differs).toMatch(/shorter/);
  });

  it('two instances restored from one snapshot start with the same bytes: one image serves both', async () => {
    const files = readPyodideFiles();
    const cold = await bootRealm(files, { memoryMb: 256 });
    cold.install(guardSource(), guardConfig(1000));
    const snapshot = cold.makeSnapshot();
    const a = await bootRealm(files, { memoryMb: 256, snapshot });
    a.attach();
    const image = new WebAssembly.Module(imageModuleBytes(a.pristine()));
    const b = await bootRealm(files, { memoryMb: 256, snapshot, image });
    b.attach();
    expect(b.rewindsFrom()).toBe('the shared image');
    const job = (code: string) => ({ code, stdin: '', asMain: false, maxOutput: 1000, tests: [], suffix: '', strictNames: [] });
    expect(b.run(job('import math\nmath.leak = 1\nimport sys\nsys.modules["leak"] = 2')).result).toBe('passed');
    expect(b.run(job('import math, sys\nassert not hasattr(math, "leak") and "leak" not in sys.modules')).result).toBe('passed');
    // An image of another start (one byte of a's pristine memory changed) is refused, and the instance rewinds from
    // its own copy.
    const other = a.pristine().slice();
    other[other.length >> 1] ^= 1;
    const c = await bootRealm(files, { memoryMb: 256, snapshot, image: new WebAssembly.Module(imageModuleBytes(other)) });
    c.attach();
    expect(c.rewindsFrom()).toBe(`its own copy (the shared image differs: at byte ${other.length >> 1})`);
    expect(c.run(job('import math\nmath.leak = 1')).result).toBe('passed');
    expect(c.run(job('import math\nassert not hasattr(math, "leak")')).result).toBe('passed');
  }, 120_000);

  it('a pool rewinds from the shared image', async () => {
    const logs: string[] = [];
    const pool = await PythonPool.create({ workers: 2, timeoutMs: 5000, log: (l) => logs.push(l) });
    try {
      expect(logs.find((l) => l.includes('layers'))).toMatch(/rewinds from: the shared image$/);
      const runs = await Promise.all(Array.from({ length: 6 }, (_, i) =>
        pool.run({ code: `import json\njson.leak = ${i}\nassert json.dumps([1]) == '[1]'` })));
      expect(runs.map((r) => r.result)).toEqual(Array(6).fill('passed'));
      const after = await Promise.all(Array.from({ length: 4 }, () => pool.run({ code: 'import json\nassert not hasattr(json, "leak")' })));
      expect(after.map((r) => r.result)).toEqual(Array(4).fill('passed'));
    } finally {
      await pool.close();
    }
  }, 120_000);
});

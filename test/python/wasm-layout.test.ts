// Pyodide's module laid out for the rewind (wasm-layout.ts): the memory's minimum and the stack's size are what the
// patch says, as a booted and a restored instance report them; a module laid out otherwise is refused, not half
// patched; C recursion past the smaller stack is a RecursionError, and the instance serves the next program.
import { describe, it, expect, beforeAll } from 'vitest';
import { PythonPool } from '../../src/python/index.js';
import fs from 'node:fs';
import path from 'node:path';
import { bootRealm, pyodideDir, readPyodideFiles, type Realm } from '../../src/python/realm.js';
import { guardConfig, guardSource } from '../../src/python/guard.js';
import { layoutForRewind, MEMORY_MIN_PAGES, STACK_BYTES } from '../../src/python/wasm-layout.js';

/** The minimum pages of the module's one memory, read from its bytes (count, flags, then LEB128). */
function memoryMinimum(wasm: Uint8Array): number {
  let p = 8;
  const leb = (): number => {
    let v = 0;
    for (let s = 0; ; s += 7) {
      const b = wasm[p++]!;
      v += (b & 127) * 2 ** s;
      if (!(b & 128)) return v;
    }
  };
  for (;;) {
    const id = wasm[p++]!;
    const size = leb();
    if (id === 5) {
      p += 2;
      return leb();
    }
    p += size;
  }
}

let restored: Realm;
let coldStack: number;

beforeAll(async () => {
  const files = readPyodideFiles();
  const cold = await bootRealm(files, { memoryMb: 1024 });
  const m = (cold.api as { _module: Record<string, () => number> })._module;
  coldStack = m._emscripten_stack_get_base!() - m._emscripten_stack_get_end!();
  cold.install(guardSource(), guardConfig(100_000));
  restored = await bootRealm(files, { memoryMb: 1024, snapshot: cold.makeSnapshot() });
  restored.attach();
}, 120_000);

describe('the module laid out for the rewind', () => {
  it('starts its memory at MEMORY_MIN_PAGES (Pyodide: 480) and its stack is STACK_BYTES (Pyodide: 10 MiB)', () => {
    const original = new Uint8Array(fs.readFileSync(path.join(pyodideDir(), 'pyodide.asm.wasm')));
    expect(memoryMinimum(original)).toBe(480);
    expect(memoryMinimum(layoutForRewind(original))).toBe(MEMORY_MIN_PAGES);
    expect(coldStack).toBe(STACK_BYTES);
    const m = (restored.api as { _module: Record<string, (n?: number) => number> })._module;
    expect(m._emscripten_stack_get_base!() - m._emscripten_stack_get_end!()).toBe(STACK_BYTES);
    // The restored memory ends within a page of the heap's end: nothing above it to zero after each program.
    const heapEnd = m._sbrk!(0);
    const bytes = (m.HEAPU8 as unknown as Uint8Array).length;
    expect(bytes - heapEnd).toBeGreaterThanOrEqual(0);
    expect(bytes - heapEnd).toBeLessThan(65536);
  });

  it('refuses a module laid out otherwise (here: one already patched) instead of patching half of it', () => {
    const original = new Uint8Array(fs.readFileSync(path.join(pyodideDir(), 'pyodide.asm.wasm')));
    expect(() => layoutForRewind(layoutForRewind(original))).toThrow(/not the Pyodide build this sandbox lays out/);
  });

  it('C recursion past the stack is a RecursionError, and the next program runs', async () => {
    // In a pool worker (its thread's own stack is 256 MB: the interpreter's 4 MiB runs out first).
    const pool = await PythonPool.create({ workers: 1, timeoutMs: 20_000 });
    try {
      const sortKey = (n: number) => 'import sys\nsys.setrecursionlimit(100000)\n' +
        `def g(n):\n    return n if n == 0 else sorted([n], key=lambda v: g(n - 1))[0]\nprint(g(${n}))`;
      expect((await pool.run({ code: sortKey(20_000) })).result).toMatch(/^failed: RecursionError: Stack overflow/);
      expect((await pool.run({ code: sortKey(1500) })).stdout).toBe('1500\n');
      expect((await pool.run({ code: 'print(sum(range(10)))' })).stdout).toBe('45\n');
    } finally {
      await pool.close();
    }
  }, 60_000);
});

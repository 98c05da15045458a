// The realm invariant (realm.ts): after boot, nothing reachable from the sandbox's global is an object of the
// outer (Node) realm, so a program that reaches JS finds no way to Node's Function constructor or `process`.
// Runs Pyodide in this process (no worker, no pool), with the guard installed as in production.
import { describe, it, expect, beforeAll } from 'vitest';
import vm from 'node:vm';
import { types } from 'node:util';
import { bootRealm, readPyodideFiles, type Realm } from '../../src/python/realm.js';
import { guardConfig, guardSource } from '../../src/python/guard.js';

/** Objects reachable from the roots through own properties, accessors' functions, prototypes and Map/Set entries. */
function outerObjectsReachable(roots: Record<string, object>, limit = 300_000): { found: string[]; visited: number } {
  const seen = new Set<unknown>();
  const found: string[] = [];
  const stack: [unknown, string][] = Object.entries(roots).map(([k, v]) => [v, k]);
  const push = (v: unknown, where: string): void => {
    if ((typeof v === 'object' && v !== null) || typeof v === 'function') {
      if (!seen.has(v)) stack.push([v, where]);
    }
  };
  while (stack.length > 0 && seen.size < limit) {
    const [obj, where] = stack.pop()!;
    if (seen.has(obj)) continue;
    seen.add(obj);
    if (types.isProxy(obj)) continue; // PyProxy (made inside): its target and handler are unreachable from JS
    // An object of this (outer) realm has Object.prototype of this realm on its prototype chain.
    if (obj instanceof Object) found.push(where);
    push(Object.getPrototypeOf(obj), `${where}.__proto__`);
    if (types.isArrayBufferView(obj) || types.isAnyArrayBuffer(obj)) continue; // millions of index keys
    if (types.isMap(obj)) Map.prototype.forEach.call(obj, (v: unknown, k: unknown) => (push(k, `${where}<k>`), push(v, `${where}<v>`)));
    if (types.isSet(obj)) Set.prototype.forEach.call(obj, (v: unknown) => push(v, `${where}<e>`));
    for (const key of Reflect.ownKeys(obj as object)) {
      const d = Reflect.getOwnPropertyDescriptor(obj as object, key);
      const name = `${where}.${String(key)}`;
      if (!d) continue;
      if ('value' in d) push(d.value, name);
      push(d.get, `${name}<get>`);
      push(d.set, `${name}<set>`);
    }
  }
  return { found, visited: seen.size };
}

describe('sandbox realm', () => {
  let realm: Realm;
  let global: object;
  beforeAll(async () => {
    realm = await bootRealm(readPyodideFiles(), { memoryMb: 256 });
    realm.install(guardSource(), guardConfig(1000));
    realm.attach();
    realm.run({ code: "print('x')", stdin: '', asMain: false, maxOutput: 100, tests: [], suffix: '', strictNames: [] });
    global = vm.runInContext('globalThis', realm.context) as object;
  });

  it('offers no Node globals and no code generation from strings', () => {
    const probe = vm.runInContext(
      `[typeof process, typeof require, typeof Buffer, typeof fetch, typeof setImmediate,
        (() => { try { return String([].constructor.constructor('return 1')()); } catch (e) { return e.name; } })()]`,
      realm.context,
    ) as string[];
    expect([...probe]).toEqual(['undefined', 'undefined', 'undefined', 'undefined', 'undefined', 'EvalError']);
  });

  it('reaches no object of the outer realm from its global (Pyodide, Emscripten module, glue)', () => {
    const { found, visited } = outerObjectsReachable({ globalThis: global, pyodide_js: realm.api });
    expect(found.slice(0, 5)).toEqual([]);
    expect(visited).toBeGreaterThan(5000); // the walk went through Pyodide's API and the Emscripten module
  });

  it('the walk does find an outer object when one is planted (control)', () => {
    const planted = vm.runInContext('({})', realm.context) as Record<string, unknown>;
    planted.leak = { outer: true };
    expect(outerObjectsReachable({ planted }).found[0]).toBe('planted.leak');
  });

  it('code that reached the inner realm (the Python layer fallen) cannot compile code', () => {
    // Python no longer reaches JS at all (the bridges are cut: sandbox.test.ts); here the realm holds alone.
    const attempt = vm.runInContext(
      `(() => { const api = globalThis.loadPyodide; try { return String(api.constructor('return process')()); }
        catch (e) { return e.name + ': ' + e.message; } })()`,
      realm.context,
    ) as string;
    expect(attempt).toBe('EvalError: Code generation from strings disallowed for this context');
    const r = realm.run({ code: "import sys\nsys.modules['pyodide.ffi']", stdin: '', asMain: false, maxOutput: 100,
      tests: [], suffix: '', strictNames: [] });
    expect(r.result).toBe("failed: KeyError: 'pyodide.ffi'");
  });

  it("locks the built-ins: a method is read-only; an overridable name stays writable, inherited or own, and is seen", () => {
    const job = { code: 'pass', stdin: '', asMain: false, maxOutput: 100, tests: [], suffix: '', strictNames: [] };
    // Read-only: the assignment fails (throws in strict code) and the built-in is untouched; nothing to replace.
    const push = vm.runInContext(`(() => { 'use strict'; try { Array.prototype.push = () => 0; return 'assigned'; }
      catch (e) { return e.name + ' ' + (Object.getOwnPropertyDescriptor(Array.prototype, 'push').value.name); } })()`,
    realm.context) as string;
    expect(push).toBe('TypeError push');
    expect(realm.run(job).dirty).toBe('');
    // Overridable names stay writable on prototypes, so that code shadows them on its own objects as it always has
    // (an Error subclass setting this.name, a prototype's own toString), and that changes no built-in.
    const own = vm.runInContext(`(() => { 'use strict'; class E extends Error { constructor() { super('m'); this.name = 'E'; } }
      function F() {} F.prototype = Object.create(Error.prototype); F.prototype.constructor = F; F.prototype.toString = () => 'f';
      const o = {}; o.toString = () => 'o'; return new E().name + String(new F()) + String(o); })()`, realm.context) as string;
    expect(own).toBe('Efo');
    expect(realm.run(job).dirty).toBe('');
    // Assigning one on the built-in itself is seen after the program, and the instance must be replaced.
    vm.runInContext("Object.prototype.toString = function () { return 'passed'; }", realm.context);
    expect(realm.run(job).dirty).toBe('JS realm changed');
  });
});

describe('snapshot', () => {
  /** Whole 4 KiB pages of zero below the heap's end. */
  const zeroPages = (heap: Uint8Array, end: number): number => {
    const words = new Float64Array(heap.buffer, 0, Math.floor(end / 8));
    let n = 0;
    for (let page = 0; page + 4096 <= end; page += 4096) {
      let zero = true;
      for (let w = page / 8; zero && w < (page + 4096) / 8; w++) zero = words[w] === 0;
      if (zero) n++;
    }
    return n;
  };

  it("is taken with the heap's free memory zeroed, the heap no larger, and a restored instance still grows", async () => {
    const files = readPyodideFiles();
    const cold = await bootRealm(files, { memoryMb: 256 });
    cold.install(guardSource(), guardConfig(1000));
    const m = (cold.api as { _module: { HEAPU8: Uint8Array; _sbrk(n: number): number } })._module;
    const end = m._sbrk(0);
    const before = zeroPages(m.HEAPU8, end);
    const snapshot = cold.makeSnapshot();
    expect(m._sbrk(0)).toBe(end);
    // 1.21-1.23 MB of the boot's free chunks span whole pages (none without the zeroing); at least half a MB.
    expect((zeroPages(m.HEAPU8, end) - before) * 4096).toBeGreaterThan(1 << 19);
    const warm = await bootRealm(files, { memoryMb: 256, snapshot });
    warm.attach();
    const job = { stdin: '', asMain: false, maxOutput: 100, tests: [], suffix: '', strictNames: [] };
    // Past the snapshot's footprint (its limit was put back), and the program after it runs as usual.
    expect(warm.run({ ...job, code: 'b = bytearray(64 << 20)\nprint(len(b) >> 20)' })).toMatchObject({ result: 'passed', stdout: '64\n' });
    expect(warm.run({ ...job, code: 'print(sum(range(10)))' })).toMatchObject({ result: 'passed', stdout: '45\n' });
  });
});

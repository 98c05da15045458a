// One sandbox worker thread: boots Pyodide in an empty realm (cold, or from the pool's memory snapshot), installs
// the Python guard, and runs one program at a time for the pool process, rewinding the interpreter after each.
// Leaves out: timeouts and respawning (pool-process.ts owns the clock and terminates this thread), and any file
// or network access (it has none).
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import vm from 'node:vm';
import { imageModuleBytes } from './image.js';
import { bootRealm, type PyodideFiles, type Realm } from './realm.js';
import { startClock, type FromWorker, type ToWorker, type WorkerInit } from './protocol.js';
import { warmUp } from './warmup.js';

const init = workerData as WorkerInit;
const port = parentPort!;
// What the serving loop calls once programs run, taken now: a program that escaped into this context can replace
// the port's own methods and `process`'s, but not these references (and the built-ins they use are frozen, see
// lockdown()).
const postMessage = port.postMessage;
const receive = receiveMessageOnPort;
const exit = process.exit;
const now = performance.now.bind(performance);
const post = (msg: FromWorker): void => Reflect.apply(postMessage, port, [msg]);

// Node reads the stack of an unhandled rejection from this (outer) context; with a listener it reads nothing (and
// once programs run, the thread never returns to its event loop, see serve()).
process.on('unhandledRejection', () => {});

/** Checks, from outside, that the realm offers nothing: no Node globals and no code generation from strings. */
function probeRealm(realm: Realm): boolean {
  const probe = vm.runInContext(
    `(() => {
      const names = ['process', 'require', 'module', 'Buffer', 'fetch', 'setImmediate', 'WebSocket', 'Deno', 'Bun'];
      if (names.some((n) => typeof globalThis[n] !== 'undefined')) return 'global';
      try { (0, Object.getPrototypeOf(function () {}).constructor)('return 1'); return 'function'; } catch (e) {}
      try { [].constructor.constructor('return 1'); return 'function'; } catch (e) {}
      if (Error.prepareStackTrace !== undefined) return 'prepareStackTrace';
      try { Error.prepareStackTrace = () => 1; } catch (e) {}
      if (Error.prepareStackTrace !== undefined) return 'prepareStackTrace';
      return 'ok';
    })()`,
    realm.context,
  );
  return probe === 'ok';
}

/** The layer self-tests of the first worker: each is an attack that must fail. */
function probeGuard(realm: Realm): string[] {
  const layers: string[] = [];
  const attempt = (code: string): string =>
    realm.run({ code, stdin: '', asMain: false, maxOutput: 1000, tests: [], suffix: '', strictNames: [] }).result;
  const cut = attempt("import sys\nassert not any(m in sys.modules for m in ('js', 'pyodide_js', 'pyodide'))\n" +
    "assert not any(type(f).__name__ == 'JsFinder' for f in sys.meta_path)");
  if (attempt('import ctypes') === 'blocked: import ctypes' && cut === 'passed') layers.push('python-guard');
  const leak = attempt('import math\nmath.leak = 1');
  if (leak === 'passed' && attempt("import math\nassert not hasattr(math, 'leak')") === 'passed') layers.push('rewind');
  else attempt("import math\ndel math.leak"); // no rewind (benchmarks only): leave no trace of the probe
  return layers;
}

/** A test hook, only when the host asked for it at start-up: JS run in this thread's own context, as if the
 * program had escaped the realm. It has no more power than such a program; the layers below must hold. Its result is
 * reported dirty (the pool replaces this thread) unless the source calls `hideFromPool()`, as an escape that goes
 * unnoticed would. */
async function outerJs(source: string): Promise<{ result: string; hidden: boolean }> {
  const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor as new (...a: string[]) => (hide: () => void) => Promise<unknown>;
  let hidden = false;
  try {
    return { result: String(await new AsyncFunction('hideFromPool', source)(() => { hidden = true; })), hidden };
  } catch (e) {
    const text = String(e instanceof Error ? e.message : e);
    return { result: /allocation failed|out of memory/i.test(text) ? 'failed: MemoryError' : `failed: ${text}`, hidden };
  }
}

async function main(): Promise<void> {
  const t0 = now();
  const files = init.files as PyodideFiles;
  const realm = await bootRealm(files, { memoryMb: init.memoryMb, snapshot: init.snapshot, noRewind: init.noRewind,
    noCodeCache: init.noCodeCache, image: init.image });
  let snapshot: Uint8Array | undefined;
  let image: WebAssembly.Module | undefined;
  if (!init.snapshot) {
    realm.install(init.guardSource, init.guardConfig);
    snapshot = realm.makeSnapshot();
    image = await pristineImage(files, init.memoryMb, snapshot);
  }
  realm.attach();
  warmUp(realm, init.warmUpRounds);
  const layers: string[] = [];
  if (init.probe) {
    if (probeRealm(realm)) layers.push('realm');
    layers.push(...probeGuard(realm));
    if (Object.keys(process.env).length === 0) layers.push('empty-env');
  }
  if (lockdown()) layers.push('frozen-js');
  // Written by this thread only (the words are reachable from nothing a program can reach): the job it has taken
  // (its id) and when (startClock), from which the pool process counts the job's time, and the job whose result it
  // is about to post, without which the pool process takes no result (one a program posts itself is not).
  const clock = new SharedArrayBuffer(16);
  const takenId = new Int32Array(clock, 0, 1);
  const doneId = new Int32Array(clock, 4, 1);
  const takenAt = new Float64Array(clock, 8, 1);
  const answer = (msg: FromWorker & { id: number }): void => {
    Atomics.store(doneId, 0, msg.id);
    post(msg);
  };
  post({ type: 'ready', irq: realm.interruptBuffer(), clock, snapshot, image, bootMs: now() - t0, layers,
    rewindsFrom: realm.rewindsFrom() });
  const wake = new Int32Array(init.wake);
  // The serving loop never returns to this thread's event loop: nothing a program leaves behind (a timer, a
  // listener, a promise) ever runs, so a program that escaped the realm holds nothing once its run ends. Jobs are
  // read from the port directly; the pool process bumps `wake` after each.
  const next = (): ToWorker => {
    for (;;) {
      const seen = Atomics.load(wake, 0);
      const m = receive(port);
      if (m) return m.message as ToWorker;
      Atomics.wait(wake, 0, seen);
    }
  };
  const runOne = (msg: ToWorker, t: number): void => {
    let posted = false;
    try {
      const inner = msg.innerJs !== undefined && init.testHooks ? innerJs(realm, msg.innerJs, msg.innerJsPyodide === true) : '';
      // The result goes out before the rewind: the pool process sends the next job meanwhile, and this thread takes
      // it once the interpreter is rewound.
      realm.run(msg, (r) => {
        if (inner) r.stdout = inner + '\n' + r.stdout;
        answer({ type: 'result', id: msg.id, ...r, grownBytes: realm.grownBytes(), ms: now() - t });
        posted = true;
      });
    } catch (e) {
      // The rewind failed after the verdict went out: this instance must run nothing more (the pool replaces it,
      // and the job it may have sent meanwhile goes to another worker). Should exit be made to return, the thread
      // waits forever, and the pool replaces it as a thread that does not take its job.
      if (posted) {
        Reflect.apply(exit, process, [1]);
        for (;;) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
      }
      // The instance died under the program (exit, wasm trap, fatal error): report it; the pool replaces us.
      answer({ type: 'crashed', id: msg.id, reason: crashReason(e), ms: now() - t });
    }
  };
  const serve = (): void => {
    for (;;) {
      const msg = next();
      const t = now();
      takenAt[0] = startClock();
      Atomics.store(takenId, 0, msg.id);
      if (msg.outerJs !== undefined && init.testHooks) {
        // The test hook may await: only here does the thread return to its event loop, until the hook's promise
        // settles (it stands for a program that escaped and runs whatever it likes during its own run).
        void outerJs(msg.outerJs).then(({ result, hidden }) => {
          answer({ type: 'result', id: msg.id, result, stdout: '', stderr: '', testsPassed: 0,
            dirty: hidden ? '' : 'outer js', grownBytes: 0, ms: now() - t });
          serve();
        });
        return;
      }
      runOne(msg, t);
    }
  };
  serve();
}

/** The memory that every instance restored from `snapshot` starts with, as the image the serving workers rewind
 * from (image.ts): made here, on an instance of its own, by the cold worker (its own instance grew as it booted).
 * attach() runs the same steps on every instance, so each starts with these bytes; each checks that it does. */
async function pristineImage(files: PyodideFiles, memoryMb: number, snapshot: Uint8Array): Promise<WebAssembly.Module> {
  const twin = await bootRealm(files, { memoryMb, snapshot });
  twin.attach();
  return new WebAssembly.Module(imageModuleBytes(twin.pristine()));
}

/** The ECMAScript built-ins of this context, from which lockdown() freezes everything reachable. */
const INTRINSICS: unknown[] = [Object, Function, Array, Number, String, Boolean, Symbol, BigInt, Date, RegExp, Error,
  TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError, AggregateError, Map, Set, WeakMap, WeakSet,
  WeakRef, FinalizationRegistry, Promise, Proxy, Reflect, JSON, Math, Atomics, ArrayBuffer, SharedArrayBuffer,
  DataView, Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, Float32Array,
  Float64Array, BigInt64Array, BigUint64Array, WebAssembly, Intl, parseInt, parseFloat, isNaN, isFinite, encodeURI,
  encodeURIComponent, decodeURI, decodeURIComponent, Object.getPrototypeOf(function* () {}),
  Object.getPrototypeOf(async function () {}), Object.getPrototypeOf(async function* () {}),
  Object.getPrototypeOf([][Symbol.iterator]()), Object.getPrototypeOf(new Map().entries()),
  Object.getPrototypeOf(new Set().values()), Object.getPrototypeOf(''[Symbol.iterator]()),
  Object.getPrototypeOf(/a/[Symbol.matchAll]('')), Buffer];

/**
 * Before the first program: the built-ins (and Buffer, which realm.ts calls) frozen, with everything reachable from
 * them, and every global binding of this context made read-only, so that a program that escaped the realm cannot
 * swap what the loop calls after its run. (Node's --frozen-intrinsics would do the first part for the whole process,
 * but it turns common properties into accessors, and every program ran about a tenth slower.) True when it held.
 */
function lockdown(): boolean {
  const seen = new Set<unknown>();
  const freeze = (o: unknown): void => {
    if ((typeof o !== 'object' && typeof o !== 'function') || o === null || seen.has(o)) return;
    seen.add(o);
    if (ArrayBuffer.isView(o)) return; // a view with elements cannot be frozen (none is reachable here but by name)
    Object.freeze(o);
    for (const k of Reflect.ownKeys(o)) {
      const d = Reflect.getOwnPropertyDescriptor(o, k)!;
      freeze(d.value);
      freeze(d.get);
      freeze(d.set);
    }
    freeze(Object.getPrototypeOf(o));
  };
  for (const o of INTRINSICS) freeze(o);
  for (const key of Reflect.ownKeys(globalThis)) {
    const d = Reflect.getOwnPropertyDescriptor(globalThis, key)!;
    // Lazy accessors (fetch, crypto, navigator) are left: the loop reads none of them.
    if ('value' in d) Reflect.defineProperty(globalThis, key, { value: d.value, writable: false, configurable: false });
  }
  return INTRINSICS.every((o) => Object.isFrozen(o)) && Object.isFrozen(Object.prototype) && Object.isFrozen(Buffer.prototype);
}

/** A test hook, only when the host asked for it at start-up: JS run inside the realm before the program, as a
 * program holding a JS proxy would; with `pyodide`, it sees Pyodide's API as that global while it runs (what
 * `pyodide_js` would give it: the interpreter's memory among the rest). */
function innerJs(realm: Realm, source: string, pyodide: boolean): string {
  if (!pyodide) return String(vm.runInContext(source, realm.context));
  const g = vm.runInContext('globalThis', realm.context) as Record<string, unknown>;
  Object.defineProperty(g, 'pyodide', { value: realm.api, configurable: true });
  try {
    return String(vm.runInContext(source, realm.context));
  } finally {
    delete g.pyodide;
  }
}

function crashReason(e: unknown): string {
  const text = errorText(e);
  const line = text.split('\n').find((l) => l.trim() !== '') ?? 'unknown error';
  return line.slice(0, 200);
}

/** Text of an error from either realm (an inner error is no outer `Error`, and may not convert to a string). */
function errorText(e: unknown): string {
  try {
    const stack = (e as { stack?: unknown })?.stack;
    return typeof stack === 'string' ? stack : String((e as { message?: unknown })?.message ?? e);
  } catch {
    return Object.prototype.toString.call(e);
  }
}

main().catch((e: unknown) => {
  post({ type: 'boot-failed', reason: errorText(e) });
});

// The fingerprint of Pyodide's own JavaScript inside the sandbox realm (its API object, Emscripten's Module, the file
// system and the standard streams, the proxies' prototypes): a program that reached JS (a JS proxy, once the Python
// guard has fallen) can replace any function there with one of its own, or with a built-in bound to its arguments
// (`proto.toJs = Array.of.bind(null, 'passed', ...)`), and the rewind, which restores the interpreter's memory, leaves
// such a change in place for every later program on that worker. The check after each program sees it, and the
// pool replaces the instance. realm.ts seals and checks the realm's built-ins; this file covers what Pyodide adds,
// and the instance's globals and function table (outside the memory the rewind restores).
// Leaves out: the built-ins (realm.ts sealIntrinsics) and the file system's tree (inner.ts fsChanged).
import { types } from 'node:util';

/** Objects whose own properties are Pyodide's state, not its behaviour: followed no further (and not checked). */
const TABLES = new Set(['wasmTableMirror', 'GOT', 'LDSO', 'lockfile_packages', 'miniTempWebGLIntBuffers',
  'miniTempWebGLFloatBuffers', 'tempFixedLengthArray', 'streams', 'nameTable', 'root', 'contents']);

const viewBuffer = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(Uint8Array.prototype), 'buffer')!.get!;

interface Watched {
  o: Record<PropertyKey, unknown>;
  /** Own data properties holding a function or an object (not a typed array), with their values. */
  keys: PropertyKey[];
  values: unknown[];
  /** Own accessors that could not be pinned, with their getter and setter. */
  accessors: { key: PropertyKey; get: unknown; set: unknown }[];
  /** Own data properties holding a typed array: each must view the interpreter's memory. */
  views: PropertyKey[];
  proto: unknown;
  /** Made non-extensible at boot (see add): for good, prototype included. */
  closed: boolean;
}

/**
 * Records `roots`, the objects their own properties hold (two levels), and each one's prototypes up to the realm's
 * built-ins (`stop`). Every function and accessor they hold is pinned (no longer writable or configurable), and
 * prototypes and tables of functions are closed to new properties (which also fixes their prototypes): the engine
 * keeps all of that, and the check reads none of it. Returns the check run after each program: true when an own
 * property that held an object now holds another (or none), an accessor that could not be pinned was replaced, an
 * open object's prototype was swapped, or one of Module's views no longer views `buffer()` (the memory's current
 * buffer).
 * Proxies are not followed (that would run Python). Run with this realm's functions: inner code may have replaced
 * the inner ones.
 */
export function watchPyodide(roots: object[], stop: Set<unknown>, buffer: () => ArrayBuffer): () => boolean {
  const watched: Watched[] = [];
  const seen = new Set<unknown>(stop);
  const add = (o: unknown, depth: number): void => {
    for (let p = o; (typeof p === 'object' || typeof p === 'function') && p !== null && !seen.has(p);
      p = Object.getPrototypeOf(p)) {
      seen.add(p);
      if (types.isProxy(p)) continue; // a PyProxy: its prototypes are Pyodide's classes (asked for once, at boot)
      if (ArrayBuffer.isView(p) || types.isAnyArrayBuffer(p) || Array.isArray(p)) return;
      const w: Watched = { o: p as Record<PropertyKey, unknown>, keys: [], values: [], accessors: [], views: [],
        proto: Object.getPrototypeOf(p), closed: false };
      const next: unknown[] = [];
      let state = 0; // own properties that hold data rather than behaviour
      for (const k of Reflect.ownKeys(p)) {
        const d = Reflect.getOwnPropertyDescriptor(p, k)!;
        if (d.get || d.set) {
          // Pinned too (no longer configurable): no program redefines it, so the check need not read it.
          if (!Reflect.defineProperty(p, k, { configurable: false })) w.accessors.push({ key: k, get: d.get, set: d.set });
        } else if (typeof d.value === 'function') {
          // Pinned: no program replaces it (Pyodide never reassigns a function it holds once booted).
          Reflect.defineProperty(p, k, { writable: false, configurable: false });
        } else {
          state++;
          if (ArrayBuffer.isView(d.value) && viewBuffer.call(d.value) === buffer()) w.views.push(k);
          else if (typeof d.value === 'object' && d.value !== null) {
            w.keys.push(k);
            w.values.push(d.value);
            if (!TABLES.has(String(k))) next.push(d.value);
          }
        }
      }
      // A prototype, or a table of functions (stream and node operations), gains no property from now on, and keeps
      // its prototype. Objects that also hold state (Module, FS, streams, nodes) stay extensible: Pyodide adds to
      // them as it runs (a stream's timestamp, Module.exitCode).
      if (p !== o || state === 0) {
        Object.preventExtensions(p);
        w.closed = true;
      }
      watched.push(w);
      if (depth > 0) for (const v of next) add(v, depth - 1);
    }
  };
  for (const r of roots) add(r, 2);
  return () => {
    const now = buffer();
    for (const w of watched) {
      const o = w.o;
      // A closed object stays closed (preventExtensions cannot be undone) and keeps its prototype (a non-extensible
      // object's prototype cannot be set).
      if (!w.closed && Object.getPrototypeOf(o) !== w.proto) return true;
      for (let i = 0; i < w.keys.length; i++) if (o[w.keys[i]!] !== w.values[i]) return true;
      for (const a of w.accessors) {
        const d = Reflect.getOwnPropertyDescriptor(o, a.key);
        if (d === undefined || d.get !== a.get || d.set !== a.set) return true;
      }
      for (const k of w.views) {
        const d = Reflect.getOwnPropertyDescriptor(o, k);
        if (d === undefined || !ArrayBuffer.isView(d.value) || viewBuffer.call(d.value) !== now) return true;
      }
    }
    return false;
  };
}

const globalValue = Object.getOwnPropertyDescriptor(WebAssembly.Global.prototype, 'value')!.get!;

/**
 * The instance's state that lives outside its memory, so that the rewind does not restore it: `globals` (mutable
 * WebAssembly globals: the stack pointer, the function indices the module imports through GOT.func) keep their
 * values, and `tableWrites` (the realm's count of writes to any function table, inner.ts) does not move. A program
 * that set one could steer the C code of every later program (a function pointer swapped for another).
 */
export function watchInstance(globals: WebAssembly.Global[], tableWrites: () => number): () => boolean {
  const values = globals.map((g) => globalValue.call(g) as unknown);
  const writes = tableWrites();
  return () => {
    if (tableWrites() !== writes) return true;
    for (let i = 0; i < globals.length; i++) if (globalValue.call(globals[i]) !== values[i]) return true;
    return false;
  };
}

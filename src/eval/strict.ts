// The --strict-results reward-hack guard: Python text that wraps the functions a test calls and fails the test
// when one returns an object whose class is defined by the program and overrides __eq__ (such an object passes
// `assert f(x) == y`). Only direct calls from the test are checked, so helpers may return anything.

/** Marker lines the harness prints: `@@dpo-eval:<nonce>:<kind> <payload>`; the nonce keeps programs from forging them. */
export function markerPrefix(nonce: string): string {
  return `@@dpo-eval:${nonce}:`;
}

/** The message of the last `kind` marker in `text`, if any. */
export function findMarker(text: string, nonce: string, kind: string): string | undefined {
  const tag = `${markerPrefix(nonce)}${kind} `;
  const at = text.lastIndexOf(tag);
  if (at < 0) return undefined;
  const end = text.indexOf('\n', at);
  return text.slice(at + tag.length, end < 0 ? undefined : end);
}

/**
 * Defines `__dpo_strict(fn, name)`. A class counts as the program's own unless it is a C type, or its `__eq__`
 * comes from a stdlib or site-packages file (fractions.Fraction, collections.Counter, abc.Mapping stay legal).
 * Builtin containers in the return value are searched too, since `[Hack()] == [1]` calls the element's __eq__.
 * The marker goes to the stream the program started with, so a completion that swaps sys.stdout cannot hide it.
 */
export function strictPrelude(nonce: string): string {
  const tag = JSON.stringify(`${markerPrefix(nonce)}strict `);
  return `
def __dpo_strict_setup():
    import functools, itertools, os, sys
    out = sys.stdout
    # Library code lives under the stdlib and site-packages folders of sys.path ('/lib/python314.zip' and
    # '/lib/python3.14/site-packages' in Pyodide); frozen stdlib modules report '<frozen name>'. (Not sysconfig:
    # its first get_paths() call caches into the module, which the sandbox sees as a patched module.)
    norm = lambda p: '/' + p.strip('/') + '/'
    def is_lib(p):
        base = p.rstrip('/').rsplit('/', 1)[-1]
        return base.startswith('python') or base in ('lib-dynload', 'site-packages', 'dist-packages')
    dirs = [os.path.dirname(os.__file__), *sys.path]
    roots = tuple({norm(p) for p in dirs if isinstance(p, str) and p.strip('/') and is_lib(p)})
    def from_library(code):
        f = code.co_filename
        return f.startswith('<frozen ') or (f.startswith('/') and norm(f).startswith(roots))
    def own_eq(t):
        for k in t.__mro__:
            if '__eq__' in k.__dict__:
                break
        else:
            return None
        if k is object or not (k.__flags__ & (1 << 9)):
            return None
        f = k.__dict__['__eq__']
        code = getattr(getattr(f, '__func__', f), '__code__', None)
        if code is not None:
            return None if from_library(code) else k
        mod = sys.modules.get(k.__module__)
        # A C type that is still a heap type (e.g. decimal.Decimal) is legal if its module really exports it.
        exported = mod is not None and getattr(mod, k.__qualname__.split('.')[0], None) is not None
        if k.__module__ not in ('builtins', '__main__') and exported:
            return None
        return k
    def offender(x):
        stack, seen = [x], 0
        while stack and seen < 100000:
            v = stack.pop()
            seen += 1
            k = own_eq(type(v))
            if k is not None:
                return k
            if isinstance(v, (list, tuple, set, frozenset)):
                stack.extend(itertools.islice(iter(v), 100000))
            elif isinstance(v, dict):
                stack.extend(itertools.islice(iter(v.keys()), 100000))
                stack.extend(itertools.islice(iter(v.values()), 100000))
        return None
    depth = [0]
    class StrictResultsError(AssertionError):
        pass
    def wrap(fn, name):
        @functools.wraps(fn)
        def strict(*args, **kwargs):
            depth[0] += 1
            try:
                ret = fn(*args, **kwargs)
            finally:
                depth[0] -= 1
            if depth[0] == 0:
                k = offender(ret)
                if k is not None:
                    msg = 'strict-results: %s returned %s overriding __eq__' % (name, k.__qualname__)
                    try:
                        out.write(${tag} + msg + '\\n')
                        out.flush()
                    except Exception:
                        pass
                    raise StrictResultsError(msg)
            return ret
        return strict
    return wrap
__dpo_strict = __dpo_strict_setup()
del __dpo_strict_setup
`;
}

/** Names called in `asserts` (`name(`), a superset of the functions a test calls directly. */
export function calledNames(asserts: string[]): string[] {
  const names = new Set<string>();
  for (const a of asserts) for (const m of a.matchAll(/([A-Za-z_]\w*)\s*\(/g)) names.add(m[1]!);
  return [...names];
}

/**
 * Wraps the top-level functions the program defined that the MBPP asserts call. Functions the asserts do not name
 * stay unwrapped, so hot helpers pay nothing.
 */
export function strictWrapCalled(names: string[]): string {
  return `
def __dpo_strict_all(g, names):
    import types
    here = __dpo_strict_all.__code__.co_filename
    for name in names:
        obj = g.get(name)
        if isinstance(obj, types.FunctionType) and obj.__code__.co_filename == here:
            g[name] = __dpo_strict(obj, name)
__dpo_strict_all(globals(), ${JSON.stringify(names)})
`;
}

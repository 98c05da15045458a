// The guard's runner, hook and wrappers look up no global or builtin name once a program may have run: a program
// can rewrite `builtins` (`builtins.dict = ...`) and reach the guard file's namespace (`_imp.create_builtin.__globals__`),
// so a name looked up there at run time would be the program's to choose. Checked on the bytecode, with the host's
// CPython (LOAD_GLOBAL and LOAD_NAME are the instructions of both lookups in every CPython 3).
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../train/helpers.js';

const PYTHON = ['/root/.pyenv/versions/3.11.7/bin/python3', '/usr/bin/python3'].find((p) => existsSync(p)) ?? 'python3';
const SCRIPT = String.raw`
import dis, json, sys, types
top = compile(open(sys.argv[1]).read(), 'guard.py', 'exec')
found = {}
def walk(code, path):
    names = sorted({i.argval for i in dis.get_instructions(code) if i.opname in ('LOAD_GLOBAL', 'LOAD_NAME')})
    if names and path:
        found[path] = names
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            walk(c, (path + '.' if path else '') + c.co_name)
walk(top, '')
print(json.dumps(found))
`;

/** Code that runs only at install (before any program), or on the program's own output (the sinks). */
const INSTALL_OR_SINK = new Set(['install', 'install.trust', 'install.cut_js', 'install.scrub_js_proxies', 'install.refuse_js_constructors', 'install.scrub_js_proxies.is_core', 'install.scrub_js_proxies.is_js', 'install.scrub_js_proxies.never', 'install.scrub_js_proxies.stand_in', 'install.Blocked', 'install.classes_of',
  'install.<dictcomp>', 'install.<listcomp>', 'Sink', 'Sink.__init__', 'Sink.write', 'ByteSink', 'ByteSink.__init__',
  'ByteSink.write', 'StdinBytes']);

describe('the guard binds every name at install', () => {
  it('no function that runs after a program starts loads a global', () => {
    const r = spawnSync(PYTHON, ['-c', SCRIPT, join(ROOT, 'src', 'python', 'py', 'guard.py')], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const found = JSON.parse(r.stdout) as Record<string, string[]>;
    const atRunTime = Object.fromEntries(Object.entries(found).filter(([path]) => !INSTALL_OR_SINK.has(path)));
    expect(atRunTime).toEqual({});
    // The check sees what it must: install's own body loads builtins (bound there into locals).
    expect(found['install']).toEqual(expect.arrayContaining(['dict', 'any', 'isinstance']));
  });
});

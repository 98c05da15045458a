// --strict-results: which functions the sandbox's runner wraps (src/python/py/guard.py holds the check itself:
// a function the test calls must not return an object whose class the program made and that overrides __eq__,
// since such an object passes `assert f(x) == y`).

export const STRICT_PREFIX = 'failed: AssertionError: strict-results: ';

/** Names called in `asserts` (`name(`), a superset of the functions a test calls directly. */
export function calledNames(asserts: string[]): string[] {
  const names = new Set<string>();
  for (const a of asserts) for (const m of a.matchAll(/([A-Za-z_]\w*)\s*\(/g)) names.add(m[1]!);
  return [...names];
}


// The Python sandbox's public API: a pool of sandboxed Pyodide workers (see pool.ts for the isolation layers).
// Everything else under src/python is internal to the pool.
export { PythonPool, type PoolOptions, type RunRequest, type RunResult } from './pool.js';
export { ALLOWED_MODULES } from './guard.js';

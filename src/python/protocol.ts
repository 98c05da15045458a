// Messages between the host (pool.ts), the sandbox process (pool-process.ts) and its worker threads (worker.ts).
// Types, and the clock that the threads share.
import type { PyodideFiles, RealmJob, RealmResult } from './realm.js';

// Taken when the module loads, before any program runs: a program that escaped into a worker's context cannot swap
// the clock its thread reads.
const hrtime = process.hrtime.bigint;

/** Milliseconds on the monotonic clock that every thread of the process reads alike (a worker thread's
 * performance.now() counts from that thread's own start). */
export const startClock = (): number => Number(hrtime()) / 1e6;

/** Settings the host passes to the sandbox process (in its first IPC message, with the reply key). */
export interface SandboxConfig {
  workers: number;
  memoryMb: number;
  maxOutputBytes: number;
  recursionCap: number;
  /** After the soft interrupt, how long a program has to unwind before its worker is terminated. */
  graceMs: number;
  /** A worker whose WASM memory grew by more than this is replaced after its program (WASM memory never shrinks,
   * and the rewind zeroes all of it after every program). */
  recycleGrownMb: number;
  stackSizeMb: number;
  /** Accept `outerJs` jobs (tests of the layers below the realm). Fixed at start-up by the host. */
  testHooks: boolean;
  /** Benchmarks only: skip the rewind (see PoolOptions.benchmarkOnly). */
  noRewind: boolean;
  /** Benchmarks only: compile every program and test (no code cache, realm.ts). */
  noCodeCache: boolean;
  /** Rounds of the warm-up (warmup.ts) each serving worker runs before it serves. */
  warmUpRounds: number;
}

export interface WorkerInit {
  files: PyodideFiles;
  snapshot?: Uint8Array;
  /** The pristine memory every worker restored from `snapshot` starts with (image.ts), made by the cold worker. */
  image?: WebAssembly.Module;
  memoryMb: number;
  guardSource: string;
  guardConfig: string;
  /** Run the layer self-tests after boot (the first worker). */
  probe: boolean;
  testHooks: boolean;
  noRewind: boolean;
  noCodeCache: boolean;
  /** Rounds of the warm-up (warmup.ts) before serving. */
  warmUpRounds: number;
  /** The pool process adds 1 to word 0 and notifies it after each message it posts to the thread (worker.ts). */
  wake: SharedArrayBuffer;
}

export type ToWorker = RealmJob & { id: number; outerJs?: string; innerJs?: string; innerJsPyodide?: boolean };

export type FromWorker =
  | { type: 'ready'; irq: SharedArrayBuffer; clock: SharedArrayBuffer; snapshot?: Uint8Array;
      image?: WebAssembly.Module; bootMs: number; layers: string[]; rewindsFrom: string }
  | { type: 'boot-failed'; reason: string }
  | ({ type: 'result'; id: number; grownBytes: number; ms: number } & RealmResult)
  | { type: 'crashed'; id: number; reason: string; ms: number };

/** A program as the host sends it. */
export type Job = Omit<RealmJob, 'maxOutput'> & { id: number; timeoutMs: number; outerJs?: string; innerJs?: string;
  innerJsPyodide?: boolean };

/**
 * The first message carries the reply-signing key and the job-sealing key (both base64); every job after it is
 * sealed: AES-256-GCM of the JSON of a batch of Jobs, base64 of iv (12 bytes) | tag (16) | ciphertext. The IPC fd is
 * shared by every thread of the sandbox process: a worker that reads it gets no other program's code or stdin.
 */
export type ToSandbox =
  | { type: 'init'; key: string; sealKey: string; config: SandboxConfig; guardSource: string; guardConfig: string }
  | { type: 'sealed'; data: string }
  | { type: 'close' };

export interface Reply {
  id: number;
  result: string;
  passed: boolean;
  stdout: string;
  stderr: string;
  testsPassed: number;
  durationMs: number;
}

/** Every message from the sandbox process carries `mac`: HMAC-SHA256 under the host's key of `body`. */
export type SandboxBody =
  | { type: 'ready'; layers: string[]; coldMs: number; restoreMs: number[]; rewindsFrom: string[] }
  | { type: 'fatal'; reason: string }
  | { type: 'log'; line: string }
  | { type: 'replies'; replies: Reply[] }
  /** A job still running LONG_MS after a worker was handed it (schedule.ts: its later samples go ahead now). */
  | { type: 'running'; id: number; ms: number };

export interface FromSandbox {
  body: string;
  mac: string;
}

// Messages between the host (pool.ts), the sandbox process (pool-process.ts) and its worker threads (worker.ts).
// Types only, plus the defaults both sides agree on; nothing here runs code.
import type { PyodideFiles } from './realm.js';

/** Settings the host passes to the sandbox process (as JSON in argv). */
export interface SandboxConfig {
  workers: number;
  memoryMb: number;
  maxOutputBytes: number;
  recursionCap: number;
  /** After the soft interrupt, how long a program has to unwind before its worker is terminated. */
  graceMs: number;
  /** A worker whose WASM memory grew past this is replaced after its program (WASM memory never shrinks). */
  recycleAboveMb: number;
  stackSizeMb: number;
}

export interface WorkerInit {
  files: PyodideFiles;
  snapshot?: Uint8Array;
  memoryMb: number;
  recursionCap: number;
  /** Run the layer self-tests after boot (the first worker). */
  probe: boolean;
}

export type ToWorker = { id: number; code: string; stdin: string; asMain: boolean; maxOutput: number };

export type FromWorker =
  | { type: 'ready'; irq: SharedArrayBuffer; snapshot?: Uint8Array; bootMs: number; layers: string[] }
  | { type: 'boot-failed'; reason: string }
  | {
      type: 'result';
      id: number;
      result: string;
      stdout: string;
      stderr: string;
      dirty: string | null;
      memoryBytes: number;
      ms: number;
    }
  | { type: 'crashed'; id: number; reason: string; ms: number };

export type ToSandbox =
  | { type: 'run'; id: number; code: string; stdin: string; asMain: boolean; timeoutMs: number }
  | { type: 'close' };

export interface Reply {
  id: number;
  result: string;
  passed: boolean;
  stdout: string;
  stderr: string;
  durationMs: number;
}

export type FromSandbox =
  | { type: 'ready'; layers: string[]; coldMs: number; restoreMs: number[] }
  | { type: 'fatal'; reason: string }
  | { type: 'log'; line: string }
  | ({ type: 'reply' } & Reply);

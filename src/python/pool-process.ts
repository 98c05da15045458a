// The sandbox process: started by pool.ts (under `unshare` and Node's permission model where available), it reads
// Pyodide once, boots one worker cold to make a memory snapshot, restores the others from it, and serves programs
// from the host over the IPC channel: a queue, one program per worker, a soft then hard timeout, and respawn.
// Leaves out: anything the host decides (which OS layers to use); it only measures and reports the ones it is in.
import { Worker } from 'node:worker_threads';
import net from 'node:net';
import { readPyodideFiles, type PyodideFiles } from './realm.js';
import type { FromSandbox, FromWorker, Reply, SandboxConfig, ToSandbox, WorkerInit } from './protocol.js';

type Job = Extract<ToSandbox, { type: 'run' }>;

interface Slot {
  worker: Worker;
  irq?: Int32Array;
  job?: Job;
  started: number;
  timedOut: boolean;
  timers: NodeJS.Timeout[];
  ready: boolean;
}

const config = JSON.parse(process.argv[2] ?? '{}') as SandboxConfig;
const send = (msg: FromSandbox): void => {
  process.send?.(msg);
};
const log = (line: string): void => send({ type: 'log', line });

let files: PyodideFiles;
let snapshot: Uint8Array | undefined;
const slots: Slot[] = [];
const queue: Job[] = [];
let closing = false;

function reply(job: Job, r: Omit<Reply, 'id'>): void {
  send({ type: 'reply', id: job.id, ...r });
}

function spawn(index: number, probe: boolean): Promise<FromWorker & { type: 'ready' }> {
  const init: WorkerInit = {
    files,
    snapshot,
    memoryMb: config.memoryMb,
    recursionCap: config.recursionCap,
    probe,
  };
  const worker = new Worker(new URL('./worker.js', import.meta.url), {
    workerData: init,
    env: {},
    stdout: true,
    stderr: true,
    resourceLimits: { maxOldGenerationSizeMb: 512, stackSizeMb: config.stackSizeMb },
  });
  worker.stdout.resume();
  worker.stderr.resume();
  const slot: Slot = { worker, started: 0, timedOut: false, timers: [], ready: false };
  slots[index] = slot;
  return new Promise((resolve, reject) => {
    worker.on('message', (msg: FromWorker) => {
      if (msg.type === 'ready') {
        slot.irq = new Int32Array(msg.irq);
        slot.ready = true;
        resolve(msg);
        dispatch();
      } else if (msg.type === 'boot-failed') {
        reject(new Error(msg.reason));
      } else {
        finish(index, slot, msg);
      }
    });
    worker.on('error', (e) => {
      if (!slot.ready) reject(e);
      else lost(index, slot, `worker error: ${e.message}`);
    });
    worker.on('exit', (code) => {
      if (!slot.ready) reject(new Error(`worker exited during boot (code ${code})`));
      else lost(index, slot, `worker exited (code ${code})`);
    });
  });
}

/** A worker that died or was terminated: answer its job, then put a fresh one (from the snapshot) in its place. */
function lost(index: number, slot: Slot, reason: string): void {
  if (slots[index] !== slot) return;
  const job = slot.job;
  clear(slot);
  if (job) {
    const result = slot.timedOut ? 'timed out' : crashResult(reason);
    reply(job, { result, passed: false, stdout: '', stderr: '', durationMs: performance.now() - slot.started });
  }
  replace(index, slot);
}

function replace(index: number, slot: Slot): void {
  slot.ready = false;
  slot.worker.removeAllListeners('exit');
  slot.worker.removeAllListeners('error');
  void slot.worker.terminate();
  if (closing) return;
  spawn(index, false).catch((e: unknown) => {
    log(`sandbox worker ${index} failed to restart: ${String(e)}`);
    setTimeout(() => replace(index, slots[index]!), 1000);
  });
}

function clear(slot: Slot): void {
  for (const t of slot.timers) clearTimeout(t);
  slot.timers = [];
  slot.job = undefined;
}

/** An instance that died under a program. A native stack overflow is a recursion bomb, so it reads as one. */
function crashResult(reason: string): string {
  if (reason.includes('Maximum call stack size exceeded')) {
    return 'failed: RecursionError: maximum recursion depth exceeded (stack overflow)';
  }
  return `failed: sandbox crashed (${reason})`;
}

function finish(index: number, slot: Slot, msg: FromWorker): void {
  if (msg.type !== 'result' && msg.type !== 'crashed') return;
  const job = slot.job;
  if (!job || job.id !== msg.id) return;
  const timedOut = slot.timedOut;
  clear(slot);
  if (msg.type === 'crashed') {
    const result = timedOut ? 'timed out' : crashResult(msg.reason);
    reply(job, { result, passed: false, stdout: '', stderr: '', durationMs: msg.ms });
    replace(index, slot);
    return;
  }
  const result = timedOut ? 'timed out' : msg.result;
  reply(job, { result, passed: result === 'passed', stdout: msg.stdout, stderr: msg.stderr, durationMs: msg.ms });
  if (msg.dirty || timedOut || msg.memoryBytes > config.recycleAboveMb * 1024 * 1024) {
    if (msg.dirty) log(`sandbox worker ${index} recycled: program changed ${msg.dirty}`);
    replace(index, slot);
  } else {
    dispatch();
  }
}

function dispatch(): void {
  for (let i = 0; i < slots.length && queue.length > 0; i++) {
    const slot = slots[i]!;
    if (!slot.ready || slot.job) continue;
    const job = queue.shift()!;
    slot.job = job;
    slot.started = performance.now();
    slot.timedOut = false;
    const soft = setTimeout(() => {
      // KeyboardInterrupt at the next bytecode; a program that swallows it, sleeps or sits in C gets terminated.
      slot.timedOut = true;
      Atomics.store(slot.irq!, 0, 2);
      slot.timers.push(setTimeout(() => lost(i, slot, 'timeout'), config.graceMs));
    }, job.timeoutMs);
    slot.timers.push(soft);
    slot.worker.postMessage({
      id: job.id,
      code: job.code,
      stdin: job.stdin,
      asMain: job.asMain,
      maxOutput: config.maxOutputBytes,
    });
  }
}

/** Which OS layers this process is really in, measured: network reachability, pid namespace, permissions. */
async function probeOs(): Promise<string[]> {
  const layers: string[] = ['process'];
  const code = await new Promise<string>((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port: 9 });
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    s.on('connect', () => {
      s.destroy();
      resolve('connected');
    });
  });
  if (code === 'ENETUNREACH') layers.push('netns');
  if (process.pid === 1) layers.push('pidns');
  const perm = (process as { permission?: { has(scope: string, ref?: string): boolean } }).permission;
  if (perm && !perm.has('fs.write') && !perm.has('child')) layers.push('permission');
  return layers;
}

async function start(): Promise<void> {
  const layers = await probeOs();
  const t0 = performance.now();
  files = readPyodideFiles(process.argv[3]);
  const first = await spawn(0, true);
  snapshot = first.snapshot;
  const coldMs = performance.now() - t0;
  const rest = await Promise.all(Array.from({ length: config.workers - 1 }, (_, i) => spawn(i + 1, false)));
  send({ type: 'ready', layers: [...layers, ...first.layers], coldMs, restoreMs: rest.map((r) => r.bootMs) });
}

process.on('message', (msg: ToSandbox) => {
  if (msg.type === 'close') {
    closing = true;
    for (const s of slots) void s.worker.terminate();
    process.disconnect?.();
    return;
  }
  queue.push(msg);
  dispatch();
});
process.on('disconnect', () => process.exit(0));

start().catch((e: unknown) => {
  send({ type: 'fatal', reason: String(e instanceof Error ? e.stack : e) });
  setTimeout(() => process.exit(1), 100);
});

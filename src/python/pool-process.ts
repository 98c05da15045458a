// The sandbox process: started by pool.ts inside the OS layers (os-layers.ts), it waits for the host's first
// message (the reply key and the settings), reads Pyodide and compiles its wasm once (every worker instantiates that
// one module, see realm.ts PyodideFiles.module), boots one worker cold to make a memory snapshot and the pristine
// image that every rewind copies from (image.ts), restores the others from private copies of the snapshot, and
// runs the programs the host dispatches: one per worker, a soft then hard timeout counted from when the worker
// thread takes the program (it may get the next one while it still rewinds the last, see worker.ts), and respawn.
// Every message to the host is signed with the key, which only this thread holds: a worker thread that writes to
// the IPC channel itself cannot forge a verdict; jobs arrive sealed with a second key, so one that reads the channel
// learns no other program's code or stdin. A program still running LONG_MS after its worker got it is reported then
// (schedule.ts), as well as when it ends.
// Leaves out: the queue (the host's), and anything the host decides (which OS layers to use).
import { Worker } from 'node:worker_threads';
import { createDecipheriv, createHmac } from 'node:crypto';
import { readPyodideFiles, type PyodideFiles } from './realm.js';
import { LONG_MS } from './schedule.js';
import { startClock, type FromWorker, type Job, type Reply, type SandboxBody, type SandboxConfig, type ToSandbox,
  type WorkerInit } from './protocol.js';

interface Slot {
  worker: Worker;
  irq?: Int32Array;
  /** The id of the job the worker thread has taken, and when (startClock): written by the worker (worker.ts). */
  takenId?: Int32Array;
  takenAt?: Float64Array;
  /** The id of the job whose result the thread is posting: a result for any other id is not the thread's own. */
  doneId?: Int32Array;
  /** Word 0 goes up by one after each job posted to the thread, which waits on it (worker.ts). */
  wake: Int32Array;
  job?: Job;
  started: number;
  timedOut: boolean;
  timers: NodeJS.Timeout[];
  ready: boolean;
  /** The tests (testKey) of the jobs this worker has run: its code cache holds their compiled code (realm.ts). */
  tests: Set<string>;
}

let sign: (body: SandboxBody) => void = () => {};
let unseal: (data: string) => Job[] = () => {
  throw new Error('no key yet');
};
const log = (line: string): void => sign({ type: 'log', line });

let config: SandboxConfig;
let guardSource = '';
let guardConfig = '';
let files: PyodideFiles;
let snapshot: Uint8Array | undefined;
let image: WebAssembly.Module | undefined;
const slots: Slot[] = [];
const queue: Job[] = [];
/** Jobs put back once because their worker died before taking them (see lost). */
const requeued = new Set<number>();
let closing = false;

// Replies go out in batches, one signed message each: while jobs wait here, a reply may wait up to FLUSH_MS for
// others (the host refills in batches too), which saves an IPC round of work per program in both processes. With
// nothing waiting here the host may be waiting on this reply, and it goes at once.
const FLUSH_MS = 2;
let outbox: Reply[] = [];
let flushTimer: NodeJS.Timeout | undefined;

function reply(job: Job, r: Omit<Reply, 'id' | 'testsPassed'> & { testsPassed?: number }): void {
  requeued.delete(job.id);
  outbox.push({ id: job.id, testsPassed: 0, ...r });
  if (queue.length === 0 || outbox.length >= config.workers) flush();
  else flushTimer ??= setTimeout(flush, FLUSH_MS);
}

function flush(): void {
  clearTimeout(flushTimer);
  flushTimer = undefined;
  if (outbox.length === 0) return;
  const replies = outbox;
  outbox = [];
  sign({ type: 'replies', replies });
}

function spawn(index: number, probe: boolean): Promise<FromWorker & { type: 'ready' }> {
  const init: WorkerInit = {
    files,
    snapshot,
    image,
    memoryMb: config.memoryMb,
    guardSource,
    guardConfig,
    probe,
    testHooks: config.testHooks,
    noRewind: config.noRewind,
    noCodeCache: config.noCodeCache,
    warmUpRounds: snapshot ? config.warmUpRounds : 0,
    wake: new SharedArrayBuffer(4),
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
  const slot: Slot = { worker, started: 0, timedOut: false, timers: [], ready: false, tests: new Set(),
    wake: new Int32Array(init.wake) };
  slots[index] = slot;
  return new Promise((resolve, reject) => {
    worker.on('message', (msg: FromWorker) => {
      if (msg.type === 'ready') {
        // Only the first: a later one comes from a program holding the thread, which would hand us its own interrupt
        // and clock words.
        if (slot.ready) return;
        slot.irq = new Int32Array(msg.irq);
        slot.takenId = new Int32Array(msg.clock, 0, 1);
        slot.doneId = new Int32Array(msg.clock, 4, 1);
        slot.takenAt = new Float64Array(msg.clock, 8, 1);
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
  // A job the thread had not taken yet (it was still rewinding the last program) goes to the next free worker, once.
  if (job && !slot.timedOut && takenAt(slot, job) === undefined && !requeued.has(job.id)) {
    requeued.add(job.id);
    queue.unshift(job);
  } else if (job) {
    const result = slot.timedOut ? 'timed out' : crashResult(reason);
    reply(job, { result, passed: false, stdout: '', stderr: '', durationMs: performance.now() - slot.started });
  }
  replace(index, slot);
  dispatch();
}

function replace(index: number, slot: Slot): void {
  slot.ready = false;
  slot.worker.removeAllListeners('exit');
  slot.worker.removeAllListeners('error');
  slot.worker.removeAllListeners('message');
  // The old thread's memory is freed before the new one is made (under RLIMIT_DATA both may not fit).
  void slot.worker.terminate().finally(() => {
    if (closing) return;
    Promise.resolve()
      .then(() => spawn(index, false))
      .catch((e: unknown) => {
        log(`sandbox worker ${index} failed to restart: ${String(e)}`);
        setTimeout(() => replace(index, slots[index]!), 1000);
      });
  });
}

function clear(slot: Slot): void {
  for (const t of slot.timers) clearTimeout(t);
  slot.timers = [];
  slot.job = undefined;
}

/** An instance that died under a program. A native stack overflow is a recursion bomb, an OOM a memory bomb. */
function crashResult(reason: string): string {
  if (reason.includes('Maximum call stack size exceeded')) {
    return 'failed: RecursionError: maximum recursion depth exceeded (stack overflow)';
  }
  if (/out of memory|allocation failed|ERR_WORKER_OUT_OF_MEMORY/i.test(reason)) return 'failed: MemoryError';
  return `failed: sandbox crashed (${reason})`;
}

function finish(index: number, slot: Slot, msg: FromWorker): void {
  if (msg.type !== 'result' && msg.type !== 'crashed') return;
  const job = slot.job;
  // Only the thread's own answer to its current job: one posted by a program (an escape holding the port, before
  // the real answer) carries an id the thread has not marked.
  if (!job || job.id !== msg.id || Atomics.load(slot.doneId!, 0) !== msg.id) return;
  const timedOut = slot.timedOut;
  clear(slot);
  if (msg.type === 'crashed') {
    const result = timedOut ? 'timed out' : crashResult(msg.reason);
    reply(job, { result, passed: false, stdout: '', stderr: '', durationMs: msg.ms });
    replace(index, slot);
    return;
  }
  const result = timedOut ? 'timed out' : msg.result;
  reply(job, { result, passed: result === 'passed', stdout: msg.stdout, stderr: msg.stderr,
    testsPassed: msg.testsPassed, durationMs: timedOut ? performance.now() - slot.started : msg.ms });
  if (msg.dirty || timedOut || msg.grownBytes > config.recycleGrownMb * 1024 * 1024) {
    if (msg.dirty && msg.dirty !== 'outer js') log(`sandbox worker ${index} replaced: program ${msg.dirty}`);
    replace(index, slot);
  } else {
    dispatch();
  }
}

/** When the slot's worker thread took `job` (startClock), or undefined if it has not taken it yet. */
function takenAt(slot: Slot, job: Job): number | undefined {
  return slot.takenId && Atomics.load(slot.takenId, 0) === job.id ? slot.takenAt![0] : undefined;
}

/** What a job's test is, for the affinity below: the same key means the same compiled test. */
const testKey = (job: Job): string => job.suffix + '\0' + job.tests.join('\0');

// Affinity: a free worker takes the first waiting job whose test it has run before (its code cache then loads the
// test instead of compiling it: about 0.3 ms of a HumanEval run), else the oldest. The oldest job is passed over at
// most SKIP_LIMIT times, so the order changes only among the few jobs waiting here (at most DEPTH per worker, see
// pool.ts), and a job's clock still starts when a worker takes it.
const SKIP_LIMIT = 4;
let headSkips = 0;

function take(slot: Slot): Job {
  if (headSkips < SKIP_LIMIT && !slot.tests.has(testKey(queue[0]!))) {
    const k = queue.findIndex((j) => slot.tests.has(testKey(j)));
    if (k > 0) {
      headSkips++;
      return queue.splice(k, 1)[0]!;
    }
  }
  headSkips = 0;
  return queue.shift()!;
}

function dispatch(): void {
  for (let i = 0; i < slots.length && queue.length > 0; i++) {
    const slot = slots[i]!;
    if (!slot.ready || slot.job) continue;
    const job = take(slot);
    if (slot.tests.size >= 4096) slot.tests.clear();
    slot.tests.add(testKey(job));
    slot.job = job;
    slot.started = performance.now();
    slot.timedOut = false;
    // Still running LONG_MS after it was handed over: the host hears it now, not when it ends, and sends the later
    // samples of the same task ahead (schedule.ts), to run beside this one rather than after everything else.
    slot.timers.push(setTimeout(() => sign({ type: 'running', id: job.id, ms: performance.now() - slot.started }), LONG_MS));
    // The clock counts from when the thread takes the job: it may still be rewinding the last one (worker.ts).
    const soft = (): void => {
      const taken = takenAt(slot, job);
      // A thread that has not taken its job a timeout and a grace after it was sent (its rewind hangs, or an escaped
      // program's JS holds the thread) is replaced; the job, never started, goes to the next free worker once.
      if (taken === undefined && performance.now() - slot.started > job.timeoutMs + config.graceMs) {
        lost(i, slot, 'the worker did not take its job');
        return;
      }
      // The taken-at word is the thread's own to write: the deadline never lies past the latest moment a thread may
      // take its job (a timeout and a grace after it was sent, see above) plus its timeout.
      const latest = 2 * job.timeoutMs + config.graceMs - (performance.now() - slot.started);
      const left = taken === undefined ? Math.min(job.timeoutMs, 20) : Math.min(taken + job.timeoutMs - startClock(), latest);
      if (taken === undefined || left > 1) {
        slot.timers.push(setTimeout(soft, Math.max(1, left)));
        return;
      }
      // KeyboardInterrupt at the next bytecode; a program that swallows it, sleeps or sits in C gets terminated.
      slot.timedOut = true;
      Atomics.store(slot.irq!, 0, 2);
      slot.timers.push(setTimeout(() => lost(i, slot, 'timeout'), config.graceMs));
    };
    slot.timers.push(setTimeout(soft, job.timeoutMs));
    slot.worker.postMessage({
      id: job.id,
      code: job.code,
      stdin: job.stdin,
      asMain: job.asMain,
      maxOutput: config.maxOutputBytes,
      tests: job.tests,
      suffix: job.suffix,
      strictNames: job.strictNames,
      outerJs: job.outerJs,
      innerJs: job.innerJs,
      innerJsPyodide: job.innerJsPyodide,
    });
    Atomics.add(slot.wake, 0, 1);
    Atomics.notify(slot.wake, 0);
  }
}

async function start(): Promise<void> {
  const t0 = performance.now();
  files = readPyodideFiles(process.argv[2]);
  const first = await spawn(0, true);
  snapshot = first.snapshot;
  image = first.image;
  const coldMs = performance.now() - t0;
  // The cold instance serves no program: its memory grew while it booted, with room above its heap that its rewind
  // would zero after every program. Every worker is restored from the snapshot, whose memory ends at its heap's end.
  const cold = slots[0]!;
  cold.worker.removeAllListeners();
  await cold.worker.terminate();
  const rest = await Promise.all(Array.from({ length: config.workers }, (_, i) => spawn(i, false)));
  sign({ type: 'ready', layers: first.layers, coldMs, restoreMs: rest.map((r) => r.bootMs),
    rewindsFrom: rest.map((r) => r.rewindsFrom) });
}

process.on('message', (msg: ToSandbox) => {
  if (msg.type === 'init') {
    if (config) return;
    const key = Buffer.from(msg.key, 'base64');
    const sealKey = Buffer.from(msg.sealKey, 'base64');
    unseal = (data) => {
      const raw = Buffer.from(data, 'base64');
      const decipher = createDecipheriv('aes-256-gcm', sealKey, raw.subarray(0, 12));
      decipher.setAuthTag(raw.subarray(12, 28));
      return JSON.parse(Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8')) as Job[];
    };
    sign = (body) => {
      const text = JSON.stringify(body);
      process.send?.({ body: text, mac: createHmac('sha256', key).update(text).digest('base64') });
    };
    config = msg.config;
    guardSource = msg.guardSource;
    guardConfig = msg.guardConfig;
    start().catch((e: unknown) => {
      sign({ type: 'fatal', reason: String(e instanceof Error ? e.stack : e) });
      setTimeout(() => process.exit(1), 100);
    });
  } else if (msg.type === 'close') {
    closing = true;
    for (const s of slots) void s.worker.terminate();
    process.disconnect?.();
  } else if (msg.type === 'sealed' && config) {
    let jobs: Job[];
    try {
      jobs = unseal(msg.data);
    } catch {
      return; // not from the host: a forged or damaged batch is dropped
    }
    queue.push(...jobs);
    dispatch();
  }
});
process.on('disconnect', () => process.exit(0));

// One sandbox worker thread: boots Pyodide in an empty realm (cold, or from the pool's memory snapshot), installs
// the Python guard, and runs one program at a time for the pool process. Leaves out: timeouts and respawning
// (pool-process.ts owns the clock and terminates this thread), and any file or network access (it has none).
import { parentPort, workerData } from 'node:worker_threads';
import vm from 'node:vm';
import { bootRealm, type PyodideFiles, type Realm } from './realm.js';
import { installSource, RUNNER_EXPR } from './guard.js';
import type { FromWorker, ToWorker, WorkerInit } from './protocol.js';

const init = workerData as WorkerInit;
const port = parentPort!;
const post = (msg: FromWorker): void => port.postMessage(msg);

/** Checks, from outside, that the realm offers nothing: no Node globals and no code generation from strings. */
function probeRealm(realm: Realm): boolean {
  const probe = vm.runInContext(
    `(() => {
      const names = ['process', 'require', 'module', 'Buffer', 'fetch', 'setImmediate', 'WebSocket', 'Deno', 'Bun'];
      if (names.some((n) => typeof globalThis[n] !== 'undefined')) return 'global';
      try { (0, Object.getPrototypeOf(function () {}).constructor)('return 1'); return 'function'; } catch (e) {}
      try { [].constructor.constructor('return 1'); return 'function'; } catch (e) {}
      return 'ok';
    })()`,
    realm.context,
  );
  return probe === 'ok';
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const files = init.files as PyodideFiles;
  const realm = await bootRealm(files, { memoryMb: init.memoryMb, snapshot: init.snapshot });
  let snapshot: Uint8Array | undefined;
  if (!init.snapshot) {
    const ok = realm.exec(installSource(init.recursionCap));
    if (ok !== 'ok') throw new Error(`guard install returned ${ok}`);
    snapshot = realm.makeSnapshot();
  }
  realm.attach(RUNNER_EXPR);
  const layers: string[] = [];
  if (init.probe) {
    if (probeRealm(realm)) layers.push('realm');
    const [json] = realm.run('import ctypes', '', false, 1000);
    if ((JSON.parse(json) as string[])[0] === 'blocked: import ctypes') layers.push('python-guard');
    if (Object.keys(process.env).length === 0) layers.push('empty-env');
  }
  post({
    type: 'ready',
    irq: realm.interruptBuffer(),
    snapshot,
    bootMs: performance.now() - t0,
    layers,
  });
  port.on('message', (msg: ToWorker) => {
    const t = performance.now();
    try {
      const [json, fdOut, fdErr] = realm.run(msg.code, msg.stdin, msg.asMain, msg.maxOutput);
      const [result, stdout, stderr, dirty] = JSON.parse(json) as [string, string, string, string | null];
      post({
        type: 'result',
        id: msg.id,
        result,
        stdout: stdout + fdOut,
        stderr: stderr + fdErr,
        dirty,
        memoryBytes: realm.memoryBytes(),
        ms: performance.now() - t,
      });
    } catch (e) {
      // The instance died under the program (exit, wasm trap, fatal error): report it; the pool replaces us.
      post({ type: 'crashed', id: msg.id, reason: crashReason(e), ms: performance.now() - t });
    }
  });
}

function crashReason(e: unknown): string {
  const text = e instanceof Object && 'message' in e ? String((e as { message: unknown }).message) : String(e);
  const line = text.split('\n').find((l) => l.trim() !== '') ?? 'unknown error';
  return line.slice(0, 200);
}

main().catch((e: unknown) => {
  post({ type: 'boot-failed', reason: String(e instanceof Error ? e.stack : e) });
});

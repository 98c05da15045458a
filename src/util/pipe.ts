// A closed stdout or stderr (`node train.js | head`): Node reports EPIPE as an 'error' event that would crash the
// process with a stack mid-write. Here it is swallowed once per stream and announced, so a run can stop cleanly.
const listeners = new Set<() => void>();
let closed = false;
let installed = false;

/** Installs the EPIPE guard on stdout and stderr (idempotent). Other stream errors are rethrown as before. */
export function guardPipes(): void {
  if (installed) return;
  installed = true;
  for (const s of [process.stdout, process.stderr]) {
    s.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE') throw e;
      if (closed) return;
      closed = true;
      for (const l of [...listeners]) l();
    });
  }
}

/** True once a reader of stdout or stderr went away. */
export function pipeClosed(): boolean {
  return closed;
}

/** Calls `cb` when stdout or stderr is closed by its reader; returns the unsubscribe. */
export function onPipeClosed(cb: () => void): () => void {
  listeners.add(cb);
  return () => listeners.delete(cb);
}

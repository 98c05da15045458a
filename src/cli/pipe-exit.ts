// `node train.js <command> | head`: when the reader of stdout or stderr goes away (EPIPE), a command stops at once
// with exit 0, as a Unix tool stops on SIGPIPE, instead of crashing with a stack in the middle of a write.
// Nothing is half-written: every output file is a temp renamed whole (io/atomic.ts, the rename is synchronous) or a
// JSONL log appended line by line, and a temp left by the stop is removed at the next start. A training run (train,
// experiment, the default pipeline) stops its own way instead: it finishes the step, saves a checkpoint
// (train/hooks.ts SignalGuard) and exits 130 with the command that resumes it.
import type { Arguments } from 'yargs';
import { guardPipes, onPipeClosed } from '../util/pipe.js';

/** Commands that save before they stop on a closed pipe; '' is `node train.js` with no command (train's flags, or the default run). */
const SAVE_THEN_STOP = new Set(['', 'train', 'experiment']);

let stopsItself = false;
let installed = false;

/** Installs the EPIPE guard (util/pipe.ts) and the stop for commands without their own (idempotent). */
export function installPipeExit(quit: (code: number) => void = (c) => process.exit(c)): void {
  if (installed) return;
  installed = true;
  guardPipes();
  onPipeClosed(() => {
    if (!stopsItself) quit(0);
  });
}

/** yargs middleware: records whether the command being run saves and stops by itself on a closed pipe. */
export function notePipeCommand(argv: Arguments): void {
  stopsItself = SAVE_THEN_STOP.has(String(argv._[0] ?? ''));
}

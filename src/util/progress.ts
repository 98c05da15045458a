// Progress for long work: a one-line TTY status with rate and ETA; silent when stdout is not a TTY.
// Machine-readable logs are separate (JSONL files); this is only for people watching.

import { env } from '../config/env.js';

export interface Progress {
  tick(done: number, extra?: string): void;
  done(summary?: string): void;
}

function fmtTime(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = Math.floor(s % 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(sec).padStart(2, '0')}s` : `${sec}s`;
}

/** `label 12/40 (3.1 it/s, ETA 9s) extra`. `unit` names the rate (steps, pairs, tasks). */
export function progress(label: string, total: number, unit = 'it', stream: NodeJS.WriteStream = process.stderr): Progress {
  const start = Date.now();
  const tty = Boolean(stream.isTTY) && !env().ci;
  let last = 0;
  return {
    tick(done, extra = '') {
      if (!tty) return;
      const now = Date.now();
      if (now - last < 100 && done < total) return;
      last = now;
      const secs = (now - start) / 1000;
      const rate = done / Math.max(secs, 1e-9);
      const eta = (total - done) / Math.max(rate, 1e-9);
      stream.write(`\r\x1b[K${label} ${done}/${total} (${rate.toFixed(2)} ${unit}/s, ETA ${fmtTime(eta)}) ${extra}`);
    },
    done(summary) {
      if (tty) stream.write('\r\x1b[K');
      if (summary) stream.write(summary + '\n');
    },
  };
}

// Progress for long work: on a TTY, one cli-progress bar (rate, elapsed, ETA) that log lines print above, never onto;
// off a TTY (nohup, slurm, tee) no bar: a plain line every 30 s, or, for train, the logger's HF Trainer-style dicts.
// The ETA is a moving average over the last steps after warm-up, so the first step's compile time does not skew it.
import cliProgress from 'cli-progress';
import { env } from '../config/env.js';

export interface Progress {
  tick(done: number, extra?: string): void;
  done(summary?: string): void;
  /** Seconds left (moving average after warm-up), or null while unknown. */
  eta(): number | null;
}

/** `1h02m`, `3m05s`, `12s`; `?` when unknown. */
export function fmtTime(s: number | null): string {
  if (s === null || !Number.isFinite(s) || s < 0) return '?';
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = Math.floor(s % 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(sec).padStart(2, '0')}s` : `${sec}s`;
}

/**
 * Rate and ETA from the last `window` ticks, ignoring the first `warmup` ticks (they hold tfjs' kernel compile and
 * the first allocations). Until two ticks after warm-up exist the ETA is unknown (null), never a guess.
 */
export class EtaMeter {
  private readonly t0: number;
  private seen = 0;
  private readonly samples: { done: number; t: number }[] = [];

  constructor(private readonly total: number, private readonly o: { warmup?: number; window?: number; now?: () => number } = {}) {
    this.t0 = this.now();
  }

  private now(): number {
    return (this.o.now ?? Date.now)();
  }

  tick(done: number): void {
    this.seen += 1;
    const t = this.now();
    // The end of the last warm-up tick is the first sample: the rate counts only ticks after it.
    if (this.seen < (this.o.warmup ?? 1)) return;
    this.samples.push({ done, t });
    if (this.samples.length > (this.o.window ?? 20) + 1) this.samples.shift();
  }

  /** Seconds since the meter was made. */
  elapsed(): number {
    return (this.now() - this.t0) / 1000;
  }

  /** Items per second over the window, or null before enough ticks. */
  rate(): number | null {
    if (this.samples.length < 2) return null;
    const a = this.samples[0];
    const b = this.samples[this.samples.length - 1];
    return b.t > a.t ? ((b.done - a.done) * 1000) / (b.t - a.t) : null;
  }

  /** Seconds left, or null when unknown. */
  eta(): number | null {
    const r = this.rate();
    const last = this.samples[this.samples.length - 1];
    return r === null || r <= 0 || !last ? null : Math.max(0, this.total - last.done) / r;
  }
}

/** A long list of numbers (stage ends, eval steps) for a log line: `3, 6, 9, ... 66, 69, 72 (24 in all)`. */
export function shortList(xs: readonly (number | string)[], head = 3, tail = 3): string {
  if (xs.length === 0) return '-';
  if (xs.length <= head + tail + 1) return xs.join(', ');
  return `${xs.slice(0, head).join(', ')}, ... ${xs.slice(-tail).join(', ')} (${xs.length} in all)`;
}

// The bar now on screen, if any: log lines clear it, print, and draw it again below them.
let active: { stream: NodeJS.WritableStream; bar: cliProgress.SingleBar } | null = null;

/** Prints one log line on `stream`; with a bar on screen the line goes above the bar, on a line of its own. */
export function printLine(line: string, stream: NodeJS.WritableStream = process.stderr): void {
  if (active && active.stream === stream) {
    stream.write('\r\x1b[K' + line + '\n');
    active.bar.render();
  } else {
    stream.write(line + '\n');
  }
}

/** `label [bar] 12/40 steps | 3.1 steps/s | 41s | ETA 9s | extra`. `unit` names the rate (steps, pairs, tasks). */
export function progress(label: string, total: number, unit = 'it', stream: NodeJS.WriteStream = process.stderr,
  o: { now?: () => number; tty?: boolean; /** Off a TTY: a plain line every this many seconds (0: none; train prints its own). */ everyS?: number } = {}): Progress {
  const meter = new EtaMeter(total, { now: o.now });
  const tty = o.tty ?? (Boolean(stream.isTTY) && !env().ci);
  const everyS = o.everyS ?? 30;
  let lastLine = 0;
  let bar: cliProgress.SingleBar | null = null;
  const payload = (extra: string) => {
    const r = meter.rate();
    return { label, unit, rate: r === null ? '?' : r.toFixed(2), elapsed: fmtTime(meter.elapsed()), left: fmtTime(meter.eta()), extra };
  };
  return {
    tick(done, extra = '') {
      meter.tick(done);
      if (!tty) {
        // nohup, slurm, tee: a long stage still shows it is alive, one plain line at a time.
        if (everyS > 0 && meter.elapsed() - lastLine >= everyS && done < total) {
          lastLine = meter.elapsed();
          const p = payload(extra);
          printLine(`${label} ${done}/${total} ${unit} (${p.rate} ${unit}/s, ${p.elapsed}, ETA ${p.left})${extra ? ` ${extra}` : ''}`, stream);
        }
        return;
      }
      if (!bar) {
        if (active) return; // one bar at a time: a nested one (reference log-probs inside train) stays quiet
        bar = new cliProgress.SingleBar({
          stream, format: '{label} {bar} {value}/{total} {unit} | {rate} {unit}/s | {elapsed} | ETA {left} | {extra}',
          barsize: 20, hideCursor: false, linewrap: false, forceRedraw: true, gracefulExit: false,
        }, cliProgress.Presets.shades_classic);
        bar.start(total, done, payload(extra));
        // cli-progress redraws on a timer; it must never keep Node alive after an error skipped done().
        const b = bar as unknown as { render(): void; timer?: NodeJS.Timeout | null };
        const render = b.render.bind(bar);
        b.render = () => { render(); b.timer?.unref(); };
        b.timer?.unref();
        active = { stream, bar };
        return;
      }
      bar.update(done, payload(extra));
    },
    eta: () => meter.eta(),
    done(summary) {
      if (bar) {
        bar.stop();
        stream.write('\n');
        if (active?.bar === bar) active = null;
        bar = null;
      }
      if (summary) printLine(summary, stream);
    },
  };
}

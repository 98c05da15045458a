// Issue 12 item 9 through the progress display itself (the API both the old and the new code have): after a slow first
// step (30 s of compile) and then 1 s per step, the ETA shown at step 10 of 100 is the recent rate's 90 s ("1m30s"),
// not elapsed/done over the whole run (39 s / 10 steps x 90 left = 351 s, "5m51s", what it showed before).
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { progress } from '../../src/util/progress.js';

afterEach(() => vi.useRealTimers());

describe('the ETA on the progress line (item 9)', () => {
  it('follows the rate after warm-up, not the average since the start', () => {
    vi.useFakeTimers();
    let t = 0;
    const at = (s: number) => { t = s * 1000; vi.setSystemTime(t); };
    at(0);
    let out = '';
    const stream = Object.assign(new Writable({ write(chunk, _e, cb) { out += String(chunk); cb(); } }), { isTTY: true, columns: 120 });
    const bar = progress('train', 100, 'steps', stream as unknown as NodeJS.WriteStream, { now: () => t, tty: true } as never);
    at(30);
    bar.tick(1);
    for (let s = 2; s <= 10; s++) {
      at(30 + (s - 1));
      bar.tick(s);
    }
    const shown = [...out.matchAll(/ETA ([0-9hms?]+)/g)].map((m) => m[1]);
    expect(shown.at(-1), out).toBe('1m30s');
    bar.done();
  });
});

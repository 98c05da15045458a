// Issue 12 items 8 and 9: the ETA is a moving average after warm-up (the first step's compile time does not skew it,
// a change of speed shows within the window); on a TTY one cli-progress bar that log lines print above, never onto;
// off a TTY no bar at all. (Before: the ETA was elapsed/done over the whole run, and a log line written during a bar
// landed on the bar's line.)
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { EtaMeter, fmtTime, printLine, progress, shortList } from '../../src/util/progress.js';

/** A fake clock: `at(s)` sets the time in seconds. */
function clock() {
  let t = 0;
  return { now: () => t * 1000, at: (s: number) => void (t = s) };
}

/** What a terminal shows after `out`: \r, \n, ESC[K (clear right) and ESC[nG (column n) interpreted; other CSI ignored. */
function screen(out: string): string[] {
  const lines: string[] = [''];
  let col = 0;
  for (let i = 0; i < out.length; i++) {
    const ch = out[i];
    const row = lines.length - 1;
    if (ch === '\r') col = 0;
    else if (ch === '\n') { lines.push(''); col = 0; }
    else if (ch === '\x1b') {
      const m = /^\x1b(\[[?\d;]*[A-Za-z]|[78])/.exec(out.slice(i));
      if (!m) continue;
      i += m[0].length - 1;
      if (m[1].endsWith('K')) lines[row] = lines[row].slice(0, col);
      else if (m[1].endsWith('G')) col = Math.max(0, Number(m[1].slice(1, -1) || 1) - 1);
    } else {
      lines[row] = lines[row].slice(0, col).padEnd(col) + ch + lines[row].slice(col + 1);
      col += 1;
    }
  }
  return lines;
}

function fakeStream(tty: boolean) {
  let out = '';
  const s = new Writable({ write(chunk, _e, cb) { out += String(chunk); cb(); } }) as Writable & { isTTY?: boolean; columns?: number };
  if (tty) { s.isTTY = true; s.columns = 120; }
  return { stream: s as unknown as NodeJS.WriteStream, out: () => out };
}

describe('EtaMeter (item 9)', () => {
  it('ignores the warm-up step and follows the recent rate', () => {
    const c = clock();
    const m = new EtaMeter(100, { window: 5, now: c.now });
    c.at(30); m.tick(1); // step 1: 30 s of compile
    expect(m.eta()).toBeNull(); // one sample: unknown, not a guess
    for (let s = 2; s <= 10; s++) { c.at(30 + (s - 1)); m.tick(s); } // then 1 s per step
    expect(m.rate()).toBeCloseTo(1, 12);
    expect(m.eta()).toBeCloseTo(90, 9); // an overall average would say 90 * 39/10 = 351 s
    for (let s = 11; s <= 20; s++) { c.at(39 + 2 * (s - 10)); m.tick(s); } // slows to 2 s per step
    expect(m.eta()).toBeCloseTo(160, 9); // 80 steps left at the window's 2 s
    expect(m.elapsed()).toBe(59);
  });

  it('fmtTime and shortList', () => {
    expect([fmtTime(5), fmtTime(65), fmtTime(3720), fmtTime(null)]).toEqual(['5s', '1m05s', '1h02m', '?']);
    expect(shortList([3, 6])).toBe('3, 6');
    expect(shortList(Array.from({ length: 24 }, (_, i) => 3 * (i + 1)))).toBe('3, 6, 9, ... 66, 69, 72 (24 in all)');
    expect(shortList([])).toBe('-');
  });
});

describe('progress bar (item 8)', () => {
  it('on a TTY: one bar; a log line printed meanwhile stands on its own line, and the bar is drawn again below it', () => {
    const { stream, out } = fakeStream(true);
    const c = clock();
    const bar = progress('train', 10, 'steps', stream, { now: c.now, tty: true }); // tty: whatever CI says
    for (let s = 1; s <= 4; s++) { c.at(s); bar.tick(s, `step ${s}`); }
    printLine("{'loss': 0.6931, 'step': 4}", stream);
    for (let s = 5; s <= 10; s++) { c.at(s); bar.tick(s, `step ${s}`); }
    bar.done();
    printLine('done: 10 steps', stream);
    const lines = screen(out()).filter((l) => l.trim());
    expect(lines).toContain("{'loss': 0.6931, 'step': 4}");
    expect(lines.at(-1)).toBe('done: 10 steps');
    const bars = lines.filter((l) => l.startsWith('train '));
    expect(bars.length, lines.join('\n')).toBe(1); // one bar on screen, at the end at 10/10
    expect(bars[0]).toMatch(/^train .* 10\/10 steps \| 1\.00 steps\/s \| 10s \| ETA 0s \| step 10$/);
    expect(lines.indexOf("{'loss': 0.6931, 'step': 4}")).toBeLessThan(lines.indexOf(bars[0]));
  });

  it('off a TTY: a plain line at most every 30 s for a long stage (none for train, which prints its dicts)', () => {
    const { stream, out } = fakeStream(false);
    const c = clock();
    const bar = progress('reference log-probs', 100, 'pairs', stream, { now: c.now, tty: false });
    for (let s = 1; s <= 100; s++) { c.at(s); bar.tick(s); } // 1 pair per second
    bar.done();
    expect(out().split('\n').filter(Boolean)).toEqual([
      'reference log-probs 30/100 pairs (1.00 pairs/s, 30s, ETA 1m10s)', 'reference log-probs 60/100 pairs (1.00 pairs/s, 1m00s, ETA 40s)',
      'reference log-probs 90/100 pairs (1.00 pairs/s, 1m30s, ETA 10s)']);
    const quiet = fakeStream(false);
    const train = progress('train', 100, 'steps', quiet.stream, { now: c.now, tty: false, everyS: 0 });
    for (let s = 1; s <= 100; s++) { c.at(100 + s); train.tick(s); }
    expect(quiet.out()).toBe('');
  });

  it('off a TTY: no bar, no escapes; log lines are plain lines', () => {
    const { stream, out } = fakeStream(false);
    const bar = progress('train', 10, 'steps', stream, { tty: false });
    for (let s = 1; s <= 10; s++) bar.tick(s);
    printLine('a line', stream);
    bar.done('summary');
    expect(out()).toBe('a line\nsummary\n');
  });
});

// Issue 12 item 11: opening the sandbox prints one line (workers, layers, boot time and the per-run limit), not two.
// (Before: `python sandbox: 1 workers, layers ...` and then `sandbox: 1 workers, 5 s per run; layers: ...`.)
import { describe, expect, it } from 'vitest';
import { defaultSandbox, openPool } from '../../src/config/sandbox.js';

describe('sandbox start-up line', () => {
  it('is printed once, with the per-run limit', async () => {
    const lines: string[] = [];
    const pool = await openPool({ ...defaultSandbox(), workers: 1, timeoutS: 3 }, (l) => lines.push(l));
    try {
      const about = lines.filter((l) => /sandbox/.test(l) && /layers/.test(l));
      expect(about.length, lines.join('\n')).toBe(1);
      expect(about[0]).toMatch(/^python sandbox: 1 workers, layers .*; 3 s per run$/);
    } finally {
      await pool.close();
    }
  }, 60_000);
});

// Issue 12 item 19: bench-step runs from a clean clone. Without ../shared/bench (the PyTorch peer script) or without
// torch it still times our backends and prints one line saying why PyTorch was skipped. (Before: a table row of dashes
// that blamed torch even when the script was what was missing, and a hard-coded /usr/bin/python3.)
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, tempDir } from '../train/helpers.js';

const SCRIPT = join(ROOT, 'dist', 'scripts', 'bench-step.js');
let dir: string;

beforeAll(() => {
  if (!existsSync(SCRIPT)) throw new Error('dist/ is missing: run `npx tsc -p tsconfig.json` (npm test does) first');
  dir = tempDir('bench');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function bench(extra: string[]): { code: number | null; out: string } {
  const r = spawnSync(process.execPath, [SCRIPT, '--preset', 'tiny', '--steps', '1', '--backends', 'cpu', ...extra], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, out: r.stdout + r.stderr };
}

describe('bench-step without the PyTorch peer', () => {
  it('no peer script (a clean clone has no ../shared/bench): our rows, then one line saying why torch was skipped', () => {
    const missing = join(dir, 'shared', 'bench', 'torch_dpo_step.py');
    const r = bench(['--torch-script', missing]);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/^cpu +\d+\.\d{3} +\d+\.\d/m);
    expect(r.out).toContain(`skipping PyTorch: ${missing} not found (the peer script lives in ../shared/bench/`);
    expect(r.out).not.toMatch(/^torch /m);
  }, 120_000);

  it('no torch (here: a python that does not exist): the line names the python', () => {
    const script = join(dir, 'peer.py');
    writeFileSync(script, 'raise SystemExit(3)\n');
    const r = bench(['--torch-script', script, '--python', join(dir, 'no-python3')]);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain(`skipping PyTorch: ${join(dir, 'no-python3')}: not found`);
  }, 120_000);
});

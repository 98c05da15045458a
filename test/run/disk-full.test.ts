// Issue 12 item 4: a full disk. ENOSPC while a checkpoint is written prints one line naming the file (no stack), the
// earlier checkpoint stays intact and no temp folder is left; --save-total-limit prunes before writing, so a run at
// its limit can still save; stale `.tmp-*` siblings of a crashed run are removed when the next run starts.
// The full disk is simulated: a preload makes writeSync fail with ENOSPC on files under `.checkpoint-6.tmp-*`.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { readTrainerState } from '../../src/run/checkpoint.js';
import { ROOT, TRAIN_JS, pairsFile, runTrain, tempDir, tinyModelDir } from '../train/helpers.js';

let root: string;
let model: string;
let data: string;
let preload: string;

const FULL_DISK = `
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
const full = new Set();
const open = fs.openSync, write = fs.writeSync;
fs.openSync = (p, ...rest) => { const fd = open(p, ...rest); if (String(p).includes('.checkpoint-6.tmp-')) full.add(fd); return fd; };
fs.writeSync = (fd, ...rest) => {
  if (full.has(fd)) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' });
  return write(fd, ...rest);
};
syncBuiltinESMExports();
`;

function run(args: string[], execArgv: string[] = []): Promise<{ code: number | null; out: string }> {
  return new Promise((res) => {
    const c = spawn(process.execPath, [...execArgv, TRAIN_JS, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CI: 'true' } });
    let out = '';
    c.stdout.on('data', (d) => (out += String(d)));
    c.stderr.on('data', (d) => (out += String(d)));
    c.on('exit', (code) => res({ code, out }));
  });
}

const flags = () => ['train', '--model', model, '--data', data, '--backend', 'cpu', '--max-length', '64', '--max-prompt-length', '32', '--batch-size', '2',
  '--lora-r', '4', '--curriculum', 'shuffle', '--max-steps', '8', '--save-steps', '2', '--save-total-limit', '2'];

beforeAll(async () => {
  root = tempDir('diskfull');
  model = await tinyModelDir(root);
  data = pairsFile(root, 8);
  preload = join(root, 'full-disk.mjs');
  writeFileSync(preload, FULL_DISK);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('a full disk', () => {
  it('ENOSPC on checkpoint-6: one line naming the file, checkpoint-4 intact, no temp folder left', async () => {
    const out = join(root, 'run');
    const r = await run([...flags(), '--output-dir', out], ['--import', pathToFileURL(preload).href]);
    expect(r.code, r.out).toBe(1);
    const errLines = r.out.split('\n').filter((l) => l.startsWith('error:'));
    expect(errLines, r.out).toHaveLength(1);
    expect(errLines[0]).toMatch(new RegExp(`error: ${join(out, 'checkpoint-6').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/\\S+: no space left on device \\(ENOSPC\\)\\. Free some space`));
    expect(r.out).not.toMatch(/\n\s+at /);
    // Pruned before the write (limit 2: checkpoint-2 went to make room), checkpoint-4 complete and loadable.
    expect(readdirSync(out).filter((n) => n.startsWith('checkpoint-')).sort()).toEqual(['checkpoint-4']);
    expect(readTrainerState(join(out, 'checkpoint-4')).global_step).toBe(4);
    expect(readdirSync(out).filter((n) => n.startsWith('.'))).toEqual([]);

    // The disk has room again: the resumed run finishes, at its limit of 2 checkpoints.
    const again = await runTrain([...flags(), '--output-dir', out, '--resume', 'latest']);
    expect(again.code, again.stderr).toBe(0);
    expect(readdirSync(out).filter((n) => n.startsWith('checkpoint-')).sort()).toEqual(['checkpoint-6', 'checkpoint-8']);
  }, 120_000);

  it('stale .tmp-* siblings from a crashed run are removed at start-up', async () => {
    const out = join(root, 'crashed');
    const stale = join(out, '.checkpoint-2.tmp-999999999-0badcafe');
    mkdirSync(stale, { recursive: true });
    writeFileSync(join(stale, 'adapter_model.safetensors'), 'half');
    const r = await runTrain([...flags().slice(0, -6), '--max-steps', '2', '--save-steps', '0', '--output-dir', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(stale)).toBe(false);
    expect(r.stderr).toMatch(/removed .*\.checkpoint-2\.tmp-999999999-0badcafe, left by an interrupted run/);
  }, 120_000);
});

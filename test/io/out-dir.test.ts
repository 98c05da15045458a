// Issue 12 item 1: `merge --out` and `init-tiny --out` never delete files they did not write (as save_pretrained),
// `--out` equal to or inside `--model` is always refused, and writeDirAtomic keeps an old folder's foreign files.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OUTPUT_MANIFEST, removeStaleTemps, tempSibling, writeDirAtomic } from '../../src/io/atomic.js';
import { tempDir, tinyModelDir, runTrain } from '../train/helpers.js';

let root: string;

/** sha256 of every file under `dir`, by relative path: the evidence that nothing changed. */
function snapshot(dir: string, rel = ''): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(join(dir, rel)).sort()) {
    const p = join(rel, name);
    if (statSync(join(dir, p)).isDirectory()) Object.assign(out, snapshot(dir, p));
    else out[p] = createHash('sha256').update(readFileSync(join(dir, p))).digest('hex');
  }
  return out;
}

beforeAll(() => {
  root = tempDir('outdir');
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('init-tiny --out', () => {
  it('refuses a non-empty folder it did not write, and leaves every byte in place', async () => {
    const dir = join(root, 'work');
    mkdirSync(join(dir, 'src'), { recursive: true });
    writeFileSync(join(dir, 'notes.txt'), 'my notes\n');
    writeFileSync(join(dir, 'config.json'), '{"mine": true}\n');
    writeFileSync(join(dir, 'src', 'a.py'), 'print(1)\n');
    const before = snapshot(dir);
    const r = await runTrain(['init-tiny', '--out', dir]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/--out .*non-empty folder this tool did not write.*--overwrite/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(snapshot(dir)).toEqual(before);
  });

  it('--overwrite replaces only the files it writes; a rewrite of its own output keeps what the user added', async () => {
    const dir = join(root, 'over');
    mkdirSync(dir);
    writeFileSync(join(dir, 'notes.txt'), 'keep me\n');
    const r = await runTrain(['init-tiny', '--out', dir, '--overwrite']);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(dir, 'notes.txt'), 'utf8')).toBe('keep me\n');
    expect(existsSync(join(dir, 'model.safetensors.index.json'))).toBe(true);
    expect(existsSync(join(dir, OUTPUT_MANIFEST))).toBe(true);
    // Its own output is replaced without --overwrite; a file added since stays.
    writeFileSync(join(dir, 'later.txt'), 'added later\n');
    const again = await runTrain(['init-tiny', '--out', dir, '--seed', '1']);
    expect(again.code, again.stderr).toBe(0);
    expect(readFileSync(join(dir, 'later.txt'), 'utf8')).toBe('added later\n');
    expect(readFileSync(join(dir, 'notes.txt'), 'utf8')).toBe('keep me\n');
  });

  it('refuses a file as --out', async () => {
    const f = join(root, 'file.txt');
    writeFileSync(f, 'x');
    const r = await runTrain(['init-tiny', '--out', f]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/is a file/);
    expect(readFileSync(f, 'utf8')).toBe('x');
  });
});

describe('merge --out', () => {
  it('--out equal to --model or inside it is refused, even with --overwrite, before the model loads', async () => {
    const model = await tinyModelDir(join(root, 'm'));
    const before = snapshot(model);
    for (const out of [model, join(model, 'merged'), model + '/']) {
      for (const extra of [[], ['--overwrite']]) {
        const r = await runTrain(['merge', '--model', model, '--adapter', join(root, 'no-adapter'), '--out', out, '--backend', 'cpu', ...extra]);
        expect(r.code, r.stderr).toBe(1);
        expect(r.stderr).toMatch(/--out .* is (inside )?--model/);
        expect(r.stderr).not.toMatch(/^model: .* layers/m);
      }
    }
    expect(snapshot(model)).toEqual(before);
  });
});

describe('writeDirAtomic', () => {
  it('keeps the old folder\'s foreign files and drops only what its manifest says an earlier write made', async () => {
    const d = join(root, 'atomic');
    await writeDirAtomic(d, (t) => {
      writeFileSync(join(t, 'a.txt'), 'old');
      writeFileSync(join(t, 'stale.txt'), 'ours');
    }, { manifest: 'test' });
    writeFileSync(join(d, 'user.txt'), 'foreign');
    await writeDirAtomic(d, (t) => writeFileSync(join(t, 'a.txt'), 'new'), { manifest: 'test' });
    expect(readdirSync(d).sort()).toEqual([OUTPUT_MANIFEST, 'a.txt', 'user.txt'].sort());
    expect(readFileSync(join(d, 'user.txt'), 'utf8')).toBe('foreign');
    // Without a manifest nothing is known to be ours: every old entry the new tree does not replace stays.
    const e = join(root, 'plain');
    mkdirSync(e);
    writeFileSync(join(e, 'x.txt'), 'x');
    await writeDirAtomic(e, (t) => writeFileSync(join(t, 'y.txt'), 'y'));
    expect(readdirSync(e).sort()).toEqual(['x.txt', 'y.txt']);
    expect(readdirSync(root).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('removeStaleTemps removes temp siblings of dead processes only', () => {
    const d = join(root, 'stale');
    mkdirSync(d);
    const mine = tempSibling(join(d, 'f.json'));
    writeFileSync(mine, 'live');
    const dead = join(d, '.checkpoint-4.tmp-999999999-0a1b2c3d');
    mkdirSync(dead);
    writeFileSync(join(dead, 'x'), 'x');
    writeFileSync(join(d, '.keep.tmp-notapid'), 'x');
    expect(removeStaleTemps(d)).toEqual([dead]);
    expect(existsSync(mine)).toBe(true);
    expect(existsSync(join(d, '.keep.tmp-notapid'))).toBe(true);
  });
});

// Issue 12 item 17 end to end: `--model org/name` on the real CLI. With the snapshot in the HF cache (HF_HOME, the layout
// huggingface_hub writes: blobs/, snapshots/<rev>/ symlinks, refs/main) it is read offline; without it, one error line
// that says where the files go. (Before: "--model meta-llama/...: not a directory" in both cases.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeTinyModel } from '../../src/io/tiny-model.js';
import { ROOT, TRAIN_JS, pairsFile, readJsonl, tempDir } from '../train/helpers.js';

const ID = 'tiny-org/Tiny-Llama-3.1';
let root: string;
let home: string;

function cli(args: string[], env: Record<string, string>): { code: number | null; err: string } {
  const r = spawnSync(process.execPath, [TRAIN_JS, ...args], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, CI: 'true', ...env }, timeout: 90_000 });
  return { code: r.status, err: r.stderr + r.stdout };
}

beforeAll(async () => {
  root = tempDir('hub-cli');
  home = join(root, 'hf-home');
  const repo = join(home, 'hub', `models--${ID.replace('/', '--')}`);
  const tmp = join(root, 'tmp-model');
  await writeTinyModel(tmp, { seed: 1, hiddenSize: 32, numLayers: 1 });
  const snap = join(repo, 'snapshots', 'abc123');
  mkdirSync(join(repo, 'blobs'), { recursive: true });
  mkdirSync(snap, { recursive: true });
  for (const [i, f] of readdirSync(tmp).entries()) {
    renameSync(join(tmp, f), join(repo, 'blobs', `blob${i}`));
    symlinkSync(join('..', '..', 'blobs', `blob${i}`), join(snap, f));
  }
  mkdirSync(join(repo, 'refs'));
  writeFileSync(join(repo, 'refs', 'main'), 'abc123');
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('a Hub id as --model on the CLI (item 17)', () => {
  it('score --model org/name reads the cached snapshot offline', () => {
    const out = join(root, 'scores.jsonl');
    const r = cli(['score', '--model', ID, '--data', pairsFile(root, 4), '--out', out, '--backend', 'cpu', '--max-length', '64'], { HF_HOME: home });
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(/snapshots[/\\]abc123/);
    expect(readJsonl(out)).toHaveLength(4);
  });

  it('not cached: one error line naming the download command and the cache folder, nothing written', () => {
    const out = join(root, 'merged');
    const r = cli(['merge', '--model', 'meta-llama/Llama-3.1-8B-Instruct', '--adapter', join(root, 'none'), '--out', out, '--backend', 'cpu'], { HF_HOME: join(root, 'empty') });
    expect(r.code).toBe(1);
    const errs = r.err.split('\n').filter((l) => l.startsWith('error:'));
    expect(errs).toHaveLength(1);
    expect(errs[0]).toMatch(/huggingface-cli download meta-llama\/Llama-3\.1-8B-Instruct/);
    expect(errs[0]).toContain(join(root, 'empty', 'hub', 'models--meta-llama--Llama-3.1-8B-Instruct'));
    expect(existsSync(out)).toBe(false);
  });
});

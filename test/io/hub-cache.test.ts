// Issue 12 item 17: a Hub id as --model is read offline from the HF cache when its snapshot is there (HF_HUB_CACHE,
// else HF_HOME/hub, else ~/.cache/huggingface/hub; models--org--name/snapshots/<refs/main>/, files symlinked into
// blobs/ as huggingface_hub writes them), and otherwise fails with a message that says where to put the files.
// (Before: `--model meta-llama/Llama-3.1-8B-Instruct` was "not a directory" and a cached snapshot was never found.)
import * as tf from '@tensorflow/tfjs';
import { mkdirSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveRunConfig } from '../../src/config/run.js';
import { hubCacheDir, isHubId, localModelDir } from '../../src/io/hub-cache.js';
import { disposeModel, loadModel } from '../../src/io/model-dir.js';
import { writeTinyModel } from '../../src/io/tiny-model.js';
import { InputError } from '../../src/util/errors.js';
import { tempDir } from '../train/helpers.js';

let root: string;
let home: string;
const ID = 'tiny-org/Tiny-Llama-3.1';

/** A cache as huggingface_hub lays it out: blobs/<hash>, snapshots/<rev>/<file> -> ../../blobs/<hash>, refs/main. */
async function cachedModel(cache: string, rev: string): Promise<string> {
  const repo = join(cache, `models--${ID.replace('/', '--')}`);
  const tmp = join(repo, 'tmp-model');
  await writeTinyModel(tmp, { seed: 1, hiddenSize: 32, numLayers: 1 });
  mkdirSync(join(repo, 'blobs'), { recursive: true });
  const snap = join(repo, 'snapshots', rev);
  mkdirSync(snap, { recursive: true });
  for (const [i, f] of readdirSync(tmp).entries()) {
    renameSync(join(tmp, f), join(repo, 'blobs', `blob${i}`));
    symlinkSync(join('..', '..', 'blobs', `blob${i}`), join(snap, f));
  }
  rmSync(tmp, { recursive: true });
  mkdirSync(join(repo, 'refs'), { recursive: true });
  writeFileSync(join(repo, 'refs', 'main'), rev);
  return snap;
}

beforeAll(async () => {
  await tf.setBackend('cpu');
  root = tempDir('hub');
  home = join(root, 'hf-home');
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('Hub ids as --model', () => {
  it('the cache folder follows huggingface_hub: HF_HUB_CACHE, then HF_HOME/hub, then ~/.cache/huggingface/hub', () => {
    expect(hubCacheDir({ HF_HUB_CACHE: '/c', HF_HOME: '/h' })).toBe('/c');
    expect(hubCacheDir({ HF_HOME: '/h' })).toBe(join('/h', 'hub'));
    expect(hubCacheDir({ HOME: '/x' })).toMatch(/\.cache[/\\]huggingface[/\\]hub$/);
    expect(isHubId('meta-llama/Llama-3.1-8B-Instruct')).toBe(true);
    expect(isHubId('/abs/path')).toBe(false);
    expect(isHubId('../up/dir')).toBe(false);
    expect(isHubId('llama-3.1-8b')).toBe(false);
  });

  it('a cached snapshot (refs/main) is found offline and loads, through HF_HOME and through HF_HUB_CACHE', async () => {
    const snap = await cachedModel(join(home, 'hub'), 'abc123');
    await cachedModel(join(root, 'other-cache'), 'def456');
    expect(localModelDir(ID, '--model', { HF_HOME: home })).toBe(snap);
    expect(localModelDir(ID, '--model', { HF_HOME: home, HF_HUB_CACHE: join(root, 'other-cache') })).toMatch(/snapshots[/\\]def456$/);
    const saved = process.env.HF_HOME;
    process.env.HF_HOME = home;
    try {
      expect(resolveRunConfig({ model: ID }).model).toBe(snap);
      const m = await loadModel(ID);
      expect(m.cfg.numLayers).toBe(1);
      disposeModel(m);
    } finally {
      if (saved === undefined) delete process.env.HF_HOME;
      else process.env.HF_HOME = saved;
    }
  });

  it('without the snapshot: a clear message naming the download command and the exact cache folder', () => {
    const e = { HF_HOME: join(root, 'empty') };
    expect(() => localModelDir('meta-llama/Llama-3.1-8B-Instruct', '--model', e)).toThrow(InputError);
    expect(() => localModelDir('meta-llama/Llama-3.1-8B-Instruct', '--model', e)).toThrow(
      /--model meta-llama\/Llama-3\.1-8B-Instruct: no such folder here, and as a Hugging Face Hub id not in the HF cache .*never downloads.*huggingface-cli download meta-llama\/Llama-3\.1-8B-Instruct.*empty[/\\]hub[/\\]models--meta-llama--Llama-3\.1-8B-Instruct[/\\]snapshots[/\\]<rev>\/.*HF_HUB_CACHE, else HF_HOME/);
  });
});

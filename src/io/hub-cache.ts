// A Hugging Face Hub id given as --model (`meta-llama/Llama-3.1-8B-Instruct`), or as a dataset (data/formats.ts): read offline from the HF cache when
// the snapshot is there (huggingface_hub's layout: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub,
// then models--<org>--<name>/snapshots/<rev>/, the revision named by refs/main). This trainer never downloads.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { InputError, describe } from '../util/errors.js';

/** `org/name` as the Hub spells repo ids (and not a path that exists). */
export function isHubId(s: string): boolean {
  return /^[A-Za-z0-9][\w.-]*\/[A-Za-z0-9][\w.-]*$/.test(s) && !s.includes('..') && !existsSync(s);
}

/** The hub cache folder, as huggingface_hub resolves it. */
export function hubCacheDir(e: Record<string, string | undefined> = process.env): string {
  if (e.HF_HUB_CACHE) return e.HF_HUB_CACHE;
  if (e.HF_HOME) return join(e.HF_HOME, 'hub');
  return join(e.XDG_CACHE_HOME || join(homedir(), '.cache'), 'huggingface', 'hub');
}

/** The cached snapshot folder of `id` (refs/main's revision first, else the newest), or null. A model's must hold a
 * config.json; a dataset's (`datasets--org--name`) any file. */
export function hubSnapshot(id: string, cache: string, kind: 'models' | 'datasets' = 'models'): string | null {
  const repo = join(cache, `${kind}--${id.replace('/', '--')}`);
  const snaps = join(repo, 'snapshots');
  if (!existsSync(snaps)) return null;
  const ref = join(repo, 'refs', 'main');
  const main = existsSync(ref) ? readFileSync(ref, 'utf8').trim() : null;
  const usable = (r: string) => (kind === 'models' ? existsSync(join(snaps, r, 'config.json')) : readdirSync(join(snaps, r)).length > 0);
  const revs = readdirSync(snaps).filter(usable)
    .sort((a, b) => statSync(join(snaps, b)).mtimeMs - statSync(join(snaps, a)).mtimeMs);
  const rev = main && revs.includes(main) ? main : revs[0];
  return rev ? join(snaps, rev) : null;
}

/**
 * `--model` as a local folder: an existing path as is; a Hub id as its cached snapshot, or an InputError that says where
 * to put the files. Anything else is returned unchanged for the usual checks to name.
 */
export function localModelDir(model: string, flag = '--model', e: Record<string, string | undefined> = process.env): string {
  if (!isHubId(model)) return model;
  const cache = hubCacheDir(e);
  const snap = hubSnapshot(model, cache);
  if (snap) return snap;
  const where = join(cache, `models--${model.replace('/', '--')}`, 'snapshots', '<rev>');
  throw new InputError(describe(`${flag} ${model}`, 'no such folder here, and as a Hugging Face Hub id not in the HF cache', 'a model folder (config.json, tokenizer.json, *.safetensors)',
    `This trainer reads files only and never downloads. Either download it where you have internet access ` +
    `(\`huggingface-cli download ${model}\`; gated models need \`huggingface-cli login\` first) so that it lands in ${where}/ ` +
    `(read offline from the HF cache: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub), ` +
    `or copy the files into a folder and pass that folder: ${flag} ./${model.split('/')[1]}.`));
}

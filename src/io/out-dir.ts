// The check an output folder passes before `merge` or `init-tiny` does any work: as HF's save_pretrained, we never
// delete files we did not write. A folder is ours when writeDirAtomic's manifest (atomic.ts OUTPUT_MANIFEST) is in it.
import { existsSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { dirname, relative, resolve, sep } from 'node:path';
import { InputError, describe } from '../util/errors.js';
import { OUTPUT_MANIFEST, readOutputManifest, removeStaleTemps } from './atomic.js';

export interface OutDirCheck {
  /** The flag that named the folder, for the message. */
  flag: string;
  /** Write into a non-empty folder that is not ours, replacing only the files we write. */
  overwrite: boolean;
  /** Input folders (`--model`) that the output may not be, nor be inside. */
  inputs?: { flag: string; dir: string }[];
}

/** The real path of `p`, through its nearest existing ancestor (so `out/new` under a symlinked `out` resolves too). */
function realPath(p: string): string {
  const abs = resolve(p);
  if (existsSync(abs)) return realpathSync(abs);
  const parent = dirname(abs);
  return parent === abs ? abs : resolve(realPath(parent), relative(parent, abs));
}

function inside(child: string, parent: string): boolean {
  return child === parent || child.startsWith(parent.endsWith(sep) ? parent : parent + sep);
}

/**
 * Refuses an output folder that would lose someone's files: one equal to or inside an input folder (always), a path
 * that is a file, and a non-empty folder without our manifest unless `overwrite`. Missing and empty folders are fine.
 */
export function checkOutDir(out: string, o: OutDirCheck): void {
  const real = realPath(out);
  for (const inp of o.inputs ?? []) {
    if (existsSync(inp.dir) && inside(real, realPath(inp.dir))) {
      throw new InputError(describe(`${o.flag} ${out}`, `is ${real === realPath(inp.dir) ? '' : 'inside '}${inp.flag} ${inp.dir}`,
        `a folder outside ${inp.flag}`, `Writing there would replace the ${inp.flag} files. Pick another ${o.flag}.`));
    }
  }
  if (!existsSync(out)) return;
  if (!statSync(out).isDirectory()) throw new InputError(describe(`${o.flag} ${out}`, 'is a file', 'a folder (new, empty, or one this tool wrote)'));
  const names = readdirSync(out);
  if (names.length === 0 || o.overwrite || readOutputManifest(out) !== null) return;
  const shown = names.filter((n) => n !== OUTPUT_MANIFEST).slice(0, 3).join(', ');
  throw new InputError(describe(`${o.flag} ${out}`, `a non-empty folder this tool did not write (${shown}${names.length > 3 ? ', ...' : ''})`,
    'a new or empty folder', `Pick another ${o.flag}, or pass --overwrite to replace only the files this command writes and keep the rest.`));
}

/**
 * Removes the `.<name>.tmp-<pid>-*` folders and files that a crashed or killed write left beside `out` (writeDirAtomic
 * and writeFileAtomic stage there), of dead processes only: a live writer's temp stays. Returns the removed paths.
 */
export function removeStaleOutTemps(out: string): string[] {
  return removeStaleTemps(dirname(resolve(out)));
}

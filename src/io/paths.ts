// Path checks a command runs before any work: an input that must exist, an output whose folder must exist. Each
// throws an InputError naming the flag (util/errors' format); pipeline/preflight.ts combines them per command.
import { existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { InputError, describe } from '../util/errors.js';
import { isHubId } from './hub-cache.js';

/** An input file that must exist (and be a file). */
export function checkInputFile(flag: string, file: string, expected: string): void {
  if (!existsSync(file)) throw new InputError(describe(`${flag} ${file}`, 'file not found', expected));
  if (statSync(file).isDirectory()) throw new InputError(describe(`${flag} ${file}`, 'is a folder', expected));
}

/** A data source that must exist: a file or a folder here, or a Hub id (the reader then looks in the HF cache). */
export function checkInputSource(flag: string, spec: string, expected: string): void {
  if (!existsSync(spec) && !isHubId(spec)) throw new InputError(describe(`${flag} ${spec}`, 'file not found', expected));
}

/** An input folder that must exist. */
export function checkInputDir(flag: string, dir: string, expected: string): void {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new InputError(describe(`${flag} ${dir}`, 'not a directory', expected));
}

/** An output file: its folder exists, and it is not itself a folder. */
export function checkOutputFile(flag: string, file: string): void {
  const parent = dirname(resolve(file));
  if (!existsSync(parent) || !statSync(parent).isDirectory()) {
    throw new InputError(describe(`${flag} ${file}`, `the folder ${parent} does not exist`, 'a file in an existing folder', `Create it first (mkdir -p ${parent}).`));
  }
  if (existsSync(file) && statSync(file).isDirectory()) throw new InputError(describe(`${flag} ${file}`, 'is a folder', 'a file path'));
}

/** An output folder: it may be missing (it is created), but not a file. */
export function checkOutputDir(flag: string, dir: string): void {
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw new InputError(describe(`${flag} ${dir}`, 'is a file', 'a folder (new or existing)'));
}


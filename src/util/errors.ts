// Named error classes. Every message reads `<where>: <found> (expected <x>). <hint>`.
// Only cli/main.ts prints them and sets the exit code; everything below throws.

/** Bad user input: a data file line, a flag, a config key. `where` is `file:line`, `--flag` or `key`. */
export class InputError extends Error {
  override name = 'InputError';
}

/** A file on disk that breaks its format: safetensors, HF model dir, adapter, checkpoint. */
export class FormatError extends Error {
  override name = 'FormatError';
}

/** A requested backend is missing or unusable. */
export class BackendError extends Error {
  override name = 'BackendError';
}

/** A resume or cache that does not match the current run. */
export class MismatchError extends Error {
  override name = 'MismatchError';
}

/** Builds the house message format. */
export function describe(where: string, found: string, expected?: string, hint?: string): string {
  let msg = `${where}: ${found}`;
  if (expected) msg += ` (expected ${expected})`;
  msg += '.';
  if (hint) msg += ` ${hint}`;
  return msg;
}

/** A run stopped by SIGINT/SIGTERM after saving; main exits 130. */
export class InterruptedError extends Error {
  override name = 'InterruptedError';
}

/** What a disk-side failure means, and what to do: these are the user's to fix, so they print as one line, no stack. */
const SYSTEM_ERRORS: Record<string, [string, string]> = {
  ENOSPC: ['no space left on device', 'Free some space and run the same command again; files written before are intact (a run resumes with --resume latest).'],
  EDQUOT: ['disk quota exceeded', 'Free some space and run the same command again; files written before are intact.'],
  EROFS: ['read-only file system', 'Write to another folder.'],
  EACCES: ['permission denied', 'Check the permissions, or write to another folder.'],
  EPERM: ['operation not permitted', 'Check the permissions, or write to another folder.'],
};

/** `<file>: <what> (<CODE>). <hint>` for a file system error we can explain (util/errors' house format), else null. */
export function systemErrorLine(e: unknown): string | null {
  const err = e as NodeJS.ErrnoException | null;
  if (!err || typeof err !== 'object' || typeof err.code !== 'string' || !(err.code in SYSTEM_ERRORS)) return null;
  const [what, hint] = SYSTEM_ERRORS[err.code];
  return describe(err.path ?? `(${err.syscall ?? 'a write'})`, `${what} (${err.code})`, undefined, hint);
}

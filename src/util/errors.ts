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

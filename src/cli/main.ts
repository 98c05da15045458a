// The CLI entry: registers one yargs command per file and is the only place that prints errors and exits.
// `node train.js` with no command runs the embedded default pipeline (see default.ts).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import yargs from 'yargs';
import type { CommandModule } from 'yargs';
import { closest } from '../config/schema.js';
import { InputError, FormatError, BackendError, MismatchError, InterruptedError, systemErrorLine } from '../util/errors.js';
import { commands } from './commands.js';
import { installPipeExit, notePipeCommand } from './pipe-exit.js';
import { closeBackend } from '../backend/index.js';

const KNOWN = [InputError, FormatError, BackendError, MismatchError];

/** A yargs usage failure (unknown flag, missing argument): thrown from `.fail` so no command handler runs after it. */
class UsageError extends Error {}

/** package.json's version, found upward from this file (src/cli/ under vitest, dist/src/cli/ when built). */
function packageVersion(): string {
  for (let d = dirname(fileURLToPath(import.meta.url)); d !== dirname(d); d = dirname(d)) {
    const f = join(d, 'package.json');
    if (existsSync(f)) return String((JSON.parse(readFileSync(f, 'utf8')) as { version?: string }).version ?? 'unknown');
  }
  return 'unknown';
}

/** yargs' "Unknown argument(s): a, b" as our message: a bare word is an unknown command (listed), a flag gets "did you mean". */
function usageMessage(msg: string, argv: string[], flags: string[]): string {
  const m = /^Unknown arguments?: (.*)$/.exec(msg);
  if (!m) return msg;
  const typed = (n: string) => argv.some((a) => a.replace(/^-+/, '').split('=')[0] === n);
  // yargs also reports the camelCase twin of each kebab flag; keep only what was typed.
  const names = m[1].split(', ').filter((n) => !/[A-Z]/.test(n) || typed(n));
  const cmds = commands.map((c) => String(Array.isArray(c.command) ? c.command[0] : c.command).split(' ')[0]);
  const bare = names.find((n) => argv.includes(n));
  if (bare !== undefined) {
    const guess = closest(bare, cmds);
    return `unknown command ${JSON.stringify(bare)} (expected one of ${cmds.join(', ')}).${guess ? ` Did you mean ${guess}?` : ''}`;
  }
  return names.map((n) => {
    const guess = closest(n, flags);
    return `--${n}: unknown flag.${guess ? ` Did you mean --${guess}?` : ''}`;
  }).join('\n');
}

export async function main(argv: string[]): Promise<void> {
  // Before any command touches tf: PROD silences tfjs' "looks like you are running TensorFlow.js in Node.js" banner.
  tf.env().set('PROD', true);
  installPipeExit(); // `<command> | head`: a closed reader stops the command with exit 0, no stack (pipe-exit.ts)
  const cli = yargs(argv)
    .scriptName('node train.js')
    .strict()
    .recommendCommands()
    .wrap(Math.min(110, process.stdout.columns || 110))
    .fail((msg, err) => {
      // yargs' own validation errors (YError: `--max-steps` with no value) are usage errors too; a handler's are not.
      if (err && err.name !== 'YError') throw err;
      msg = msg ?? err?.message ?? 'usage error';
      // The options of the command being parsed (yargs resets them per command on this one instance).
      const o = (cli as unknown as { getOptions(): { key: Record<string, unknown>; alias: Record<string, string[]> } }).getOptions();
      const flags = [...Object.keys(o.key), ...Object.values(o.alias).flat()].filter((k) => !/[A-Z]/.test(k) && k.length > 1);
      throw new UsageError(usageMessage(msg, argv, flags));
    })
    .middleware(notePipeCommand)
    .help()
    .version(packageVersion());
  for (const c of commands) cli.command(c as CommandModule);
  try {
    await cli.parseAsync();
  } catch (e) {
    const err = e as Error;
    if (err instanceof UsageError) {
      console.error(`error: ${err.message}\nRun \`node train.js --help\` for usage.`);
      process.exitCode = 2;
      return;
    }
    if (err instanceof InterruptedError) {
      console.error(err.message);
      process.exitCode = 130;
      return;
    }
    const sys = systemErrorLine(err);
    if (KNOWN.some((k) => err instanceof k)) console.error(`error: ${err.message}`);
    else if (sys) console.error(`error: ${sys}`);
    else console.error(err.stack ?? String(err));
    process.exitCode = 1;
  } finally {
    await closeBackend(); // webgpu: Node does not exit while Dawn's navigator.gpu is referenced
  }
}

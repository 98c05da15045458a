// The CLI entry: registers one yargs command per file and is the only place that prints errors and exits.
// `node train.js` with no command runs the embedded default pipeline (see default.ts).
import yargs from 'yargs';
import type { CommandModule } from 'yargs';
import { InputError, FormatError, BackendError, MismatchError, InterruptedError } from '../util/errors.js';
import { commands } from './commands.js';

const KNOWN = [InputError, FormatError, BackendError, MismatchError];

/** A yargs usage failure (unknown flag, missing argument): thrown from `.fail` so no command handler runs after it. */
class UsageError extends Error {}

export async function main(argv: string[]): Promise<void> {
  const cli = yargs(argv)
    .scriptName('node train.js')
    .strict()
    .recommendCommands()
    .wrap(Math.min(110, process.stdout.columns || 110))
    .fail((msg, err) => {
      if (err) throw err;
      throw new UsageError(msg);
    })
    .help()
    .version(false);
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
    if (KNOWN.some((k) => err instanceof k)) console.error(`error: ${err.message}`);
    else console.error(err.stack ?? String(err));
    process.exitCode = 1;
  }
}

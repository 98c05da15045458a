// The CLI entry: registers one yargs command per file and is the only place that prints errors and exits.
// `node train.js` with no command runs the embedded default pipeline (see default.ts).
import yargs from 'yargs';
import type { CommandModule } from 'yargs';
import { InputError, FormatError, BackendError, MismatchError, InterruptedError } from '../util/errors.js';
import { commands } from './commands.js';

const KNOWN = [InputError, FormatError, BackendError, MismatchError];

export async function main(argv: string[]): Promise<void> {
  let failed = false;
  const cli = yargs(argv)
    .scriptName('node train.js')
    .strict()
    .recommendCommands()
    .wrap(Math.min(110, process.stdout.columns || 110))
    .fail((msg, err, y) => {
      failed = true;
      if (err) throw err;
      console.error(`${y.help() && ''}error: ${msg}\nRun \`node train.js --help\` for usage.`);
      process.exitCode = 2;
    })
    .help()
    .version(false);
  for (const c of commands) cli.command(c as CommandModule);
  try {
    await cli.parseAsync();
  } catch (e) {
    failed = true;
    const err = e as Error;
    if (err instanceof InterruptedError) {
      console.error(err.message);
      process.exitCode = 130;
      return;
    }
    if (KNOWN.some((k) => err instanceof k)) console.error(`error: ${err.message}`);
    else console.error(err.stack ?? String(err));
    process.exitCode = 1;
  }
  void failed;
}

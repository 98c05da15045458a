// The CLI's one shared piece: logs go to stderr, so that stdout stays for results (tables, paths).
// With a progress bar on screen, a line prints above it (util/progress.ts), never glued onto it.
import { printLine } from '../util/progress.js';

export const log = (line: string): void => {
  printLine(line, process.stderr);
};

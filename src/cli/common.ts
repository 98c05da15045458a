// The CLI's one shared piece: logs go to stderr, so that stdout stays for results (tables, paths).
export const log = (line: string): void => {
  process.stderr.write(line + '\n');
};

// The whole suite writes its temporary folders under one fresh folder (TMPDIR, which os.tmpdir() reads), removed
// when the suite ends: no `dpo-*`, `eval-*` or `pairs-*` folder is left in /tmp, whichever test forgot its own.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'dpo-suite-'));
  process.env.TMPDIR = dir;
  return () => rmSync(dir, { recursive: true, force: true });
}

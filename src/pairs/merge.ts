// Joins the pair files of `pairs --shard i/n` runs into one: one line per task_id (identical duplicates dropped,
// conflicting ones refused), in tasks-file order when given, else in input order. Torn shards are refused.
import { existsSync } from 'node:fs';
import { parsePairObject } from '../data/pairs.js';
import { writeFileAtomic } from '../io/atomic.js';
import { checkOutputFile } from '../io/paths.js';
import { InputError, describe } from '../util/errors.js';
import { readJsonl, type JsonlLine } from '../io/json.js';
import { canonicalJson } from '../util/hash.js';
import { taskIdOf } from './build.js';

export interface MergeSummary {
  pairs: number;
  /** Lines equal to one already taken (the same task in two shards, same result). */
  duplicates: number;
  files: number;
}

/**
 * Joins pair files: one line per task_id, in the order of `taskOrder` (the tasks file's ids) when given, else in input
 * order. The same task_id twice with the same pair is taken once; with a different pair it is an InputError. Every
 * line must be a pair `train` reads. The output is written atomically.
 */
export function mergePairFiles(files: string[], out: string, taskOrder?: string[]): MergeSummary {
  if (files.length === 0) throw new InputError(describe('pairs merge', 'no input files', 'one or more pairs files'));
  checkOutputFile('--out', out);
  const taken = new Map<string, { line: JsonlLine; key: string }>();
  let duplicates = 0;
  for (const file of files) {
    if (!existsSync(file)) throw new InputError(describe(file, 'file not found', 'a pairs file written by `pairs`'));
    const f = readJsonl(file, InputError);
    if (f.torn || f.missingNewline) {
      throw new InputError(describe(file, 'a torn last line', 'whole lines', `Re-run \`pairs\` with --out ${file} to repair and finish it.`));
    }
    for (const line of f.rows) {
      parsePairObject(line.value, line.where);
      const id = taskIdOf(line);
      const key = canonicalJson(line.value);
      const prev = taken.get(id);
      if (!prev) taken.set(id, { line, key });
      else if (prev.key === key) duplicates++;
      else throw new InputError(describe(line.where, `task_id ${id} differs from its line at ${prev.line.where}`, 'shards of one job (the same task gives the same pair)', 'Check that the shards used the same flags.'));
    }
  }
  let rows = [...taken.entries()];
  if (taskOrder) {
    const pos = new Map(taskOrder.map((id, i) => [id, i]));
    for (const [id, { line }] of rows) {
      if (!pos.has(id)) throw new InputError(describe(line.where, `task_id ${id} is not in the tasks file`, 'pairs of the given --tasks'));
    }
    rows = rows.sort((a, b) => pos.get(a[0])! - pos.get(b[0])!);
  }
  writeFileAtomic(out, rows.map(([, { line }]) => JSON.stringify(line.value) + '\n').join(''));
  return { pairs: rows.length, duplicates, files: files.length };
}

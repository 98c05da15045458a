// Pruning the tails of the difficulty distribution before training: `--prune-below P` drops pairs whose
// difficulty percentile rank is strictly below P, `--prune-above P` those strictly above P (a rank equal to P is
// kept on both sides). Ranks are percentileRanks' over all the pairs given, so equal difficulties share a fate.
import { InputError, describe } from '../util/errors.js';
import { percentileRanks } from './difficulty.js';
import { astInputOf, type AstInput, type PythonRunner } from './ast.js';
import type { PairRecord } from '../data/pairs.js';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';

export interface PruneOptions {
  /** Drop pairs with percentile rank < below; null keeps the bottom tail. */
  below: number | null;
  /** Drop pairs with percentile rank > above; null keeps the top tail. */
  above: number | null;
}

export interface PruneCounts {
  below: number;
  above: number;
  kept: number;
}

export interface PruneResult {
  /** Positions (indices into the difficulty array) that survive, ascending. */
  kept: number[];
  counts: PruneCounts;
}

function checkPercentile(p: number | null, flag: string): void {
  if (p !== null && !(Number.isFinite(p) && p >= 0 && p <= 100)) throw new InputError(describe(flag, `${p}`, 'a percentile in [0, 100]'));
}

/** Splits pairs into kept / dropped-below / dropped-above by the percentile rank of their difficulty. */
export function prunePairs(difficulty: readonly number[], opts: PruneOptions): PruneResult {
  checkPercentile(opts.below, '--prune-below');
  checkPercentile(opts.above, '--prune-above');
  if (opts.below !== null && opts.above !== null && opts.below > opts.above) {
    throw new InputError(describe(`--prune-below ${opts.below} --prune-above ${opts.above}`, 'below is above the upper cut', '--prune-below <= --prune-above'));
  }
  const ranks = percentileRanks(difficulty);
  const kept: number[] = [];
  const counts: PruneCounts = { below: 0, above: 0, kept: 0 };
  ranks.forEach((p, i) => {
    if (opts.below !== null && p < opts.below) counts.below++;
    else if (opts.above !== null && p > opts.above) counts.above++;
    else kept.push(i);
  });
  counts.kept = kept.length;
  if (difficulty.length > 0 && kept.length === 0) {
    throw new InputError(
      describe(`--prune-below ${opts.below ?? 'none'} --prune-above ${opts.above ?? 'none'}`, `drops all ${difficulty.length} pairs`, 'at least one pair kept', 'Widen the range.'),
    );
  }
  return { kept, counts };
}

/** One log line, e.g. `pruned 3 pairs (2 below p10, 1 above p95); 95 kept`. */
export function formatPruneCounts(c: PruneCounts, opts: PruneOptions): string {
  const parts: string[] = [];
  if (opts.below !== null) parts.push(`${c.below} below p${opts.below}`);
  if (opts.above !== null) parts.push(`${c.above} above p${opts.above}`);
  return `pruned ${c.below + c.above} pairs (${parts.join(', ') || 'no cuts'}); ${c.kept} kept`;
}

// ---- Pruning by content (issue 16 item 7), as the seed did it: before any difficulty is computed ----
// `--prune-incorrect-chosen` drops a pair whose chosen did not pass every test (`pairs`' chosen_passed < tests_total):
// in the seed most low-distance pairs were two wrong completions. `--prune-comment-only` drops a pair whose chosen and
// rejected parse to the same Python AST (ast.dump, so comments, blank lines and formatting vanish; docstrings stay):
// in the seed many high-distance pairs only added comments. Counts go to the log and to the run's pruning.json.

/** The run folder's record of content pruning, read by the report. */
export const PRUNE_FILE = 'pruning.json';

export interface ContentPruneOptions {
  incorrectChosen: boolean;
  commentOnly: boolean;
}

export interface ContentPruneCounts {
  total: number;
  incorrectChosen: number;
  commentOnly: number;
  kept: number;
}

/** Which pairs have a chosen that failed a test; fields are `pairs`' (chosen_passed, tests_total), an error names the line. */
export function incorrectChosen(raws: readonly { raw: Record<string, unknown>; where: string }[]): boolean[] {
  return raws.map(({ raw, where }) => {
    const [passed, total] = [raw.chosen_passed, raw.tests_total];
    if (typeof total !== 'number' || !Number.isInteger(total) || total < 1 || typeof passed !== 'number' || !Number.isInteger(passed) || passed < 0 || passed > total) {
      throw new InputError(describe(`${where}: "chosen_passed"/"tests_total"`, `${JSON.stringify(passed)}/${JSON.stringify(total)}`,
        'integers 0 <= chosen_passed <= tests_total, tests_total >= 1', '--prune-incorrect-chosen reads the pass counts the `pairs` command writes.'));
    }
    return passed < total;
  });
}

const SAME_AST = `
import ast, base64, json, textwrap
def tree(prompt, code):
    # A HumanEval body parses only after its prompt (the def); else the completion alone, then dedented.
    for src in ([prompt + code] if prompt else []) + [code, textwrap.dedent(code)]:
        try:
            return ast.dump(ast.parse(src))
        except Exception:
            pass
    return None
out = []
for p, c, r in json.loads(base64.b64decode(DATA).decode('utf-8')):
    a, b = tree(p, c), tree(p, r)
    out.append(a is not None and a == b)
print(json.dumps(out))
`;

/** The program that prints, for each pair, whether chosen and rejected have the same AST (a JSON list of booleans). */
export function sameAstProgram(inputs: readonly AstInput[]): string {
  const data = Buffer.from(JSON.stringify(inputs.map((p) => [p.prompt, p.chosen, p.rejected])), 'utf8').toString('base64');
  return `DATA = '${data}'\n${SAME_AST}`;
}

/** Whether each pair's chosen and rejected differ only in comments and formatting; batches run concurrently on the runner. */
export async function commentOnly(inputs: readonly AstInput[], runner: PythonRunner, batchSize = 64, timeoutMs = 60_000): Promise<boolean[]> {
  const jobs: Promise<boolean[]>[] = [];
  for (let i = 0; i < inputs.length; i += batchSize) {
    const batch = inputs.slice(i, i + batchSize);
    jobs.push(runner.run({ code: sameAstProgram(batch), timeoutMs }).then((res) => {
      let rows: unknown = null;
      try {
        rows = JSON.parse(res.stdout.trimEnd().split('\n').pop() ?? '');
      } catch { /* reported below */ }
      if (!res.passed || !Array.isArray(rows) || rows.length !== batch.length) {
        throw new Error(`${batch[0]?.where ?? `pair ${i}`}: --prune-comment-only: the AST comparison failed in the Python sandbox: ${res.result}${res.stderr ? `\n${res.stderr.slice(-2000)}` : ''}`);
      }
      return rows.map((x) => x === true);
    }));
  }
  return (await Promise.all(jobs)).flat();
}

/**
 * The pairs content pruning keeps, in input order, and the counts. A pair failing both tests counts as incorrect-chosen
 * only. `runner` is needed for --prune-comment-only. Every pair dropped is an error: nothing would be left to train on.
 */
export async function pruneByContent<T extends { index: number }>(pairs: readonly T[], sources: readonly PairRecord[], opts: ContentPruneOptions,
  runner: PythonRunner | null, dataFile: string): Promise<{ kept: T[]; counts: ContentPruneCounts }> {
  const counts: ContentPruneCounts = { total: pairs.length, incorrectChosen: 0, commentOnly: 0, kept: 0 };
  if (!opts.incorrectChosen && !opts.commentOnly) return { kept: [...pairs], counts: { ...counts, kept: pairs.length } };
  const src = pairs.map((p) => {
    const s = sources[p.index];
    if (!s) throw new Error(`pruneByContent: no source record for pair ${p.index} of ${dataFile}`);
    return s;
  });
  const where = (s: PairRecord) => `${dataFile}:${s.line}`;
  const wrong = opts.incorrectChosen ? incorrectChosen(src.map((s) => ({ raw: s.raw, where: where(s) }))) : pairs.map(() => false);
  let same = pairs.map(() => false);
  if (opts.commentOnly) {
    if (!runner) throw new InputError(describe('--prune-comment-only', 'no Python sandbox open', 'a run with a sandbox (stage evaluation or the ast difficulty)'));
    same = await commentOnly(src.map((s) => astInputOf(s, where(s))), runner);
  }
  const kept: T[] = [];
  pairs.forEach((p, i) => {
    if (wrong[i]) counts.incorrectChosen++;
    else if (same[i]) counts.commentOnly++;
    else kept.push(p);
  });
  counts.kept = kept.length;
  if (pairs.length > 0 && kept.length === 0) {
    throw new InputError(describe(pruneFlags(opts), `drops all ${pairs.length} pairs of ${dataFile}`, 'at least one pair kept'));
  }
  return { kept, counts };
}

function pruneFlags(opts: ContentPruneOptions): string {
  return [opts.incorrectChosen ? '--prune-incorrect-chosen' : '', opts.commentOnly ? '--prune-comment-only' : ''].filter(Boolean).join(' ');
}

/** One log line, e.g. `content pruning: 12 of 40 pairs dropped (9 incorrect chosen, 3 comment-only); 28 kept`. */
export function formatContentPrune(c: ContentPruneCounts): string {
  return `content pruning: ${c.total - c.kept} of ${c.total} pairs dropped (${c.incorrectChosen} incorrect chosen, ${c.commentOnly} comment-only); ${c.kept} kept`;
}

/** A run's content pruning as `train` and `experiment` apply it: the kept pairs, the counts logged and in <run>/pruning.json. */
export async function contentPrunedPairs<T extends { index: number }>(pairs: readonly T[], sources: readonly PairRecord[],
  cfg: { pruneIncorrectChosen: boolean; pruneCommentOnly: boolean; data: string | null }, runner: PythonRunner | null, runDir: string,
  log: (l: string) => void): Promise<T[]> {
  if (!cfg.pruneIncorrectChosen && !cfg.pruneCommentOnly) return [...pairs];
  const r = await pruneByContent(pairs, sources, { incorrectChosen: cfg.pruneIncorrectChosen, commentOnly: cfg.pruneCommentOnly }, runner, cfg.data ?? 'pairs');
  log(formatContentPrune(r.counts));
  mkdirSync(runDir, { recursive: true });
  writeFileAtomic(join(runDir, PRUNE_FILE), JSON.stringify({ ...r.counts, pruneIncorrectChosen: cfg.pruneIncorrectChosen, pruneCommentOnly: cfg.pruneCommentOnly }) + '\n');
  return r.kept;
}

/** A run folder's pruning.json, or null. */
export function readPruneCounts(runDir: string): (ContentPruneCounts & { pruneIncorrectChosen: boolean; pruneCommentOnly: boolean }) | null {
  const file = join(runDir, PRUNE_FILE);
  if (!existsSync(file)) return null;
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return null;
  }
}

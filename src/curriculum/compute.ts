// Difficulty of every kept pair for the run's --difficulty: reference distance (from the run's reference
// log-probs or a `score` file), the AST edit distance (in the sandbox), or the pass-count gap from metadata.
import { existsSync, readFileSync } from 'node:fs';
import { InputError, describe } from '../util/errors.js';
import { astDistances, astInputOf, type PythonRunner } from './ast.js';
import { distanceDifficulties, readPairLogps, testsDifficulties, type DifficultyName, type DistanceMetric, type DistanceSign, type PairLogps } from './difficulty.js';

export interface DifficultyInputs {
  name: DifficultyName;
  metric: DistanceMetric;
  sign: DistanceSign;
  /** Per kept pair: the reference log-probs (from the run's reference pass or a `score` output). */
  refLogps: () => PairLogps[];
  /** Per kept pair: the pair as read from the data file. */
  records: { prompt: unknown; chosen: unknown; rejected: unknown; raw: Record<string, unknown>; line: number }[];
  dataFile: string;
  /** Needed for `ast`. */
  runner?: PythonRunner;
}

/**
 * Reads a `score` output as the log-probs of the kept pairs, line i for pair i. Each line's prompt/chosen/rejected must
 * equal its pair's (when the pair's source record is known), so scores of other data or other truncation settings
 * are refused rather than silently misassigned.
 */
/**
 * A `score` output's log-probs for the kept pairs, checked line by line: same pair texts, and, when `tokens` is given,
 * the same completion token counts as this run's tokenization (a file scored with other length settings or by an
 * older tokenization, such as the double <|eot_id|> on chat pairs before ref cache v2, is refused, not reused).
 */
export function scoresLogps(file: string, sources: readonly ({ raw: Record<string, unknown> } | null)[], tokens?: readonly { chosen: number; rejected: number }[]): PairLogps[] {
  const n = sources.length;
  if (!existsSync(file)) throw new InputError(describe(`--scores ${file}`, 'file not found'));
  const lines = readFileSync(file, 'utf8').split('\n').map((l, i) => [l, i + 1] as const).filter(([l]) => l.trim() !== '');
  if (lines.length !== n) {
    throw new InputError(describe(`--scores ${file}`, `${lines.length} lines`, `${n}, one per kept pair`, 'Score the same data with the same --max-length/--max-prompt-length.'));
  }
  return lines.map(([l, line], i) => {
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(l);
    } catch (e) {
      throw new InputError(describe(`${file}:${line}`, `invalid JSON (${(e as Error).message})`));
    }
    const src = sources[i];
    for (const f of ['prompt', 'chosen', 'rejected']) {
      if (src && JSON.stringify(o[f]) !== JSON.stringify(src.raw[f])) {
        throw new InputError(describe(`${file}:${line}`, `"${f}" differs from kept pair ${i + 1} of the data`, 'the `score` output of this data file',
          'Rerun `score` on the same --data with the same --max-length/--max-prompt-length.'));
      }
    }
    const logps = readPairLogps(o, `${file}:${line}`);
    const t = tokens?.[i];
    if (t && (logps.chosenTokens !== t.chosen || logps.rejectedTokens !== t.rejected)) {
      throw new InputError(describe(`${file}:${line}`, `chosen_tokens ${logps.chosenTokens}, rejected_tokens ${logps.rejectedTokens}`,
        `${t.chosen} and ${t.rejected}, as this run tokenizes kept pair ${i + 1}`,
        'Rerun `score` on this data with this version and the same --max-length/--truncation-mode/--max-prompt-length.'));
    }
    return logps;
  });
}

export async function computeDifficulty(d: DifficultyInputs): Promise<number[]> {
  if (d.name === 'tests') return testsDifficulties(d.records, d.dataFile);
  if (d.name === 'ast') {
    if (!d.runner) throw new Error('computeDifficulty: ast needs a Python runner');
    const inputs = d.records.map((r) => astInputOf(r as never, `${d.dataFile}:${r.line}`));
    return (await astDistances(inputs, d.runner)).map((x) => x.distance);
  }
  return distanceDifficulties(d.refLogps(), d.metric, d.sign);
}

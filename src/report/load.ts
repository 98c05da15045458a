// What a report is drawn from: one run folder, or an experiment folder (experiment.json) with a run per arm.
// Only metrics.jsonl is required (per arm); every other input is optional and its absence becomes a note.
import { existsSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { InputError, describe } from '../util/errors.js';
import { findDifficulty, type Difficulty } from './difficulty.js';
import { readEvals, readExperimentArms, readMetrics, readPairLosses, readRunConfig, type EvalRow, type MetricsLine, type PairLoss } from '../run/files.js';
import { RUN_FILES, runFile } from '../run/layout.js';
import { readJsonObject } from '../io/json.js';
import { readPruneCounts } from '../curriculum/prune.js';

export interface ArmData {
  name: string;
  dir: string;
  metrics: MetricsLine[];
  pairLosses: PairLoss[] | null;
  /** Evaluations of this arm, sorted by step. */
  evals: EvalRow[] | null;
  config: Record<string, unknown> | null;
  /** The experiment arm this run belongs to (its name when the experiment had one seed), and its seed. */
  group: string;
  seed: number | null;
  /** Content pruning of the run (pruning.json), when it pruned. */
  pruning: ReturnType<typeof readPruneCounts>;
}

export interface ReportData {
  kind: 'run' | 'experiment';
  dir: string;
  arms: ArmData[];
  /** Shared by all arms: they train on the same pairs. */
  difficulty: Difficulty | null;
  /** Skipped inputs and caveats, shown on the page and logged. */
  notes: string[];
}

function readArm(name: string, dir: string, notes: string[], extraEvals: EvalRow[] = [], group = name, seed: number | null = null): ArmData {
  const evals = readEvals(dir, notes);
  const config = readRunConfig(dir);
  // The arm's own eval.jsonl wins over the experiment's lines for the same step.
  const merged = new Map<number, EvalRow>();
  for (const e of [...extraEvals, ...(evals ?? [])]) merged.set(e.step, { ...e, arm: name });
  return {
    name,
    dir,
    metrics: readMetrics(dir, notes),
    pairLosses: readPairLosses(dir, notes),
    evals: merged.size ? [...merged.values()].sort((a, b) => a.step - b.step) : null,
    config,
    group,
    seed: seed ?? (typeof config?.seed === 'number' ? config.seed : null),
    pruning: readPruneCounts(dir),
  };
}

/**
 * Loads a run folder or an experiment folder. In an experiment, an arm whose folder has no metrics.jsonl yet
 * (not trained, or resumed arm by arm) is left out with a note; at least one arm must have metrics.
 */
export function loadReportData(dir: string): ReportData {
  if (!existsSync(dir)) throw new InputError(describe(dir, 'folder not found', 'a run folder or an experiment folder'));
  const notes: string[] = [];
  const expFile = runFile(dir, 'experiment');
  if (!existsSync(expFile)) {
    const arm = readArm(basename(resolve(dir)), dir, notes);
    return { kind: 'run', dir, arms: [arm], difficulty: findDifficulty([dir], arm.config, notes), notes };
  }
  const specs = readExperimentArms(dir);
  // experiment --seeds writes each run's arm and seed beside its name (runs of one arm share the arm).
  const raw = readJsonObject(expFile, 'an experiment.json written by `experiment`', InputError).arms as { name?: unknown; arm?: unknown; seed?: unknown }[];
  const groupOf = new Map(raw.map((r) => [String(r.name), { arm: typeof r.arm === 'string' ? r.arm : String(r.name), seed: typeof r.seed === 'number' ? r.seed : null }]));
  // An experiment-level eval.jsonl names its arm on each line; lines for an arm not listed are ignored.
  const shared = readEvals(dir, notes) ?? [];
  const arms: ArmData[] = [];
  for (const s of specs) {
    if (!existsSync(runFile(s.runDir, 'metrics'))) {
      notes.push(`arm "${s.name}": ${runFile(s.runDir, 'metrics')} not found (not trained yet?); left out.`);
      continue;
    }
    const g = groupOf.get(s.name);
    arms.push(readArm(s.name, s.runDir, notes, shared.filter((e) => e.arm === s.name), g?.arm ?? s.name, g?.seed ?? null));
  }
  if (arms.length === 0) throw new InputError(describe(expFile, `no arm has a ${RUN_FILES.metrics}`, 'at least one trained arm', 'Run or resume the experiment first.'));
  const difficulty = findDifficulty([dir, ...arms.map((a) => a.dir)], arms[0].config, notes);
  return { kind: 'experiment', dir, arms, difficulty, notes };
}

// The default pipeline's stage cache and its whole-pipeline ETA. Each stage writes into `<root>/<stage>-<key>/`, key a
// hash of its settings and its inputs' keys, and marks the folder complete with stage.json, written last. A complete
// folder is reused and never touched; an incomplete one is resumed (the stage's own resume) or rebuilt; nothing is deleted.
import { existsSync, mkdirSync, readdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { readJsonObject } from '../io/json.js';
import { ADAPTER_WEIGHTS, RUN_FILES } from '../run/layout.js';
import { FormatError } from '../util/errors.js';
import { hashJson } from '../util/hash.js';
import { fmtTime } from '../util/progress.js';

export const STAGE_FILE = 'stage.json';
export const STAGE_FORMAT = 'dpo-default-stage';
/** Bump when a stage's code changes what it writes for the same settings: every cached folder then misses. */
export const STAGE_VERSION = 1;

export interface StageRecord {
  format: typeof STAGE_FORMAT;
  version: number;
  stage: string;
  key: string;
  settings: unknown;
  seconds: number;
  /** What the stage reports (pair yield, pass@1, ...), for the summary of a run that reuses it. */
  result: Record<string, unknown>;
}

/** The key of a stage: its name, settings and the keys of the stages it reads. */
export function stageKey(stage: string, settings: unknown, inputs: readonly string[]): string {
  return hashJson({ stage, version: STAGE_VERSION, settings, inputs }).slice(0, 12);
}

export function stageDir(root: string, stage: string, key: string): string {
  return join(root, `${stage}-${key}`);
}

/** The record of a complete stage folder with this key, or null (missing, incomplete, or another key). */
export function readStage(dir: string, key: string): StageRecord | null {
  const file = join(dir, STAGE_FILE);
  if (!existsSync(file)) return null;
  const r = readJsonObject(file, 'a stage.json written by the default pipeline', FormatError) as unknown as StageRecord;
  return r.format === STAGE_FORMAT && r.version === STAGE_VERSION && r.key === key ? r : null;
}

export function writeStage(dir: string, r: Omit<StageRecord, 'format' | 'version'>): StageRecord {
  const rec: StageRecord = { format: STAGE_FORMAT, version: STAGE_VERSION, ...r };
  writeFileAtomic(join(dir, STAGE_FILE), JSON.stringify(rec, null, 1) + '\n');
  return rec;
}

/** The first of `<base>`, `<base>-2`, ... that does not exist. */
export function freeName(base: string): string {
  if (!existsSync(base)) return base;
  for (let i = 2; ; i++) if (!existsSync(`${base}-${i}`)) return `${base}-${i}`;
}

/**
 * The root as an earlier version of the default left it (one DPO run folder: an adapter, checkpoints or scores at its
 * top) is renamed to a free `<root>.prev` name, never deleted. Returns that name, or null when the root is not one.
 */
export function keepLegacyRoot(root: string): string | null {
  if (!existsSync(root)) return null;
  const top = readdirSync(root);
  const legacy = top.some((n) => n === ADAPTER_WEIGHTS || n === RUN_FILES.scores || n === RUN_FILES.metrics || /^checkpoint-\d+$/.test(n));
  if (!legacy) return null;
  const keptAs = freeName(`${root}.prev`);
  renameSync(root, keptAs);
  mkdirSync(root, { recursive: true });
  return keptAs;
}

/**
 * The whole pipeline's ETA: each stage has an estimate in seconds (from its budget and per-unit costs measured on
 * 2 cores); finished stages replace theirs with the time they took, and scale the rest by how far off they were.
 */
export class PipelineEta {
  private readonly actual = new Map<string, number>();
  private readonly reused = new Set<string>();
  private current: { stage: string; t0: number; done: number } | null = null;

  constructor(private readonly estimates: ReadonlyMap<string, number>, private readonly now: () => number = Date.now) {}

  start(stage: string): void {
    this.current = { stage, t0: this.now(), done: 0 };
  }

  /** The running stage's fraction done (its steps), when it reports one: its rate then replaces its estimate. */
  progress(fraction: number): void {
    if (this.current) this.current.done = Math.min(1, Math.max(0, fraction));
  }

  /** Seconds since the running stage started. */
  running(): number {
    return this.current ? (this.now() - this.current.t0) / 1000 : 0;
  }

  finish(stage: string, seconds: number, reused: boolean): void {
    this.actual.set(stage, seconds);
    if (reused) this.reused.add(stage);
    this.current = null;
  }

  /**
   * Seconds left: the unfinished stages' estimates times (time taken / estimate) over the stages that ran; for the
   * running stage, its own rate once 5% is done, else its estimate less its time so far (at least a tenth of it).
   */
  left(): number {
    let est = 0;
    let took = 0;
    for (const [s, e] of this.estimates) {
      if (this.actual.has(s) && !this.reused.has(s)) {
        est += e;
        took += this.actual.get(s)!;
      }
    }
    // A ratio from a few seconds of work is noise: it applies once a minute of estimated work has run.
    const scale = est >= 60 ? took / est : 1;
    let left = 0;
    for (const [s, e] of this.estimates) {
      if (this.actual.has(s)) continue;
      if (this.current?.stage !== s) left += e * scale;
      else if (this.current.done >= 0.05) left += (this.running() * (1 - this.current.done)) / this.current.done;
      else left += Math.max(e * scale - this.running(), 0.1 * e * scale);
    }
    return left;
  }

  line(): string {
    return `pipeline ETA ${fmtTime(this.left())}`;
  }
}

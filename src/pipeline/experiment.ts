// An experiment: arms (a curriculum, optionally with content pruning) x seeds, every run from the same model and pairs,
// the same step budget, evaluated at the same steps (the union of all runs' stage ends); per-task completions of each
// evaluation saved; experiment.json and a report written. Resumable run by run, keyed by (arm, seed).
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { RunConfig } from '../config/run.js';
import { pairLengths, shellWord } from '../config/run.js';
import { CURRICULA, type CurriculumName } from '../curriculum/order.js';
import { PRUNE_FILE, formatContentPrune, pruneByContent, type ContentPruneCounts } from '../curriculum/prune.js';
import { loadPairsFile } from '../data/load.js';
import type { TokenizedRecord } from '../data/tokenize.js';
import { evaluateCompletions, resultRecord } from '../eval/execute.js';
import { generateSamples } from '../eval/sampling.js';
import { openRunServices, stageMetrics, stageSampling, type Evaluate } from '../eval/stage.js';
import { loadTasks, type Task } from '../eval/tasks.js';
import { writeFileAtomic } from '../io/atomic.js';
import { readJsonl, readJsonObject } from '../io/json.js';
import type { LoadedModel } from '../io/model-dir.js';
import { disposeModel, openModel } from '../io/model-dir.js';
import { writeCompletions } from '../report/completions.js';
import { runReport } from '../report/run.js';
import { listCheckpoints, runHashes } from '../run/checkpoint.js';
import { readExperimentArms, writeExperiment, type ExperimentArm } from '../run/files.js';
import { checkpointDir, defaultRunDir, runFile } from '../run/layout.js';
import { runTraining } from '../train/loop.js';
import { prepareRun, type RunPrep } from '../train/prepare.js';
import { InputError, InterruptedError, describe } from '../util/errors.js';
import { checkRunPaths } from './preflight.js';
import { guardPipes } from '../util/pipe.js';
import { shortList } from '../util/progress.js';

/** Modifiers an arm name may carry after its curriculum, e.g. `stages+prune-incorrect-chosen`. */
const MODIFIERS = { 'prune-incorrect-chosen': 'pruneIncorrectChosen', 'prune-comment-only': 'pruneCommentOnly' } as const;

export interface ArmSpec {
  /** As given, e.g. `stages+prune-comment-only`; the arm's folder name. */
  name: string;
  curriculum: CurriculumName;
  /** Settings the arm sets over the experiment's. */
  overrides: Partial<Pick<RunConfig, 'pruneIncorrectChosen' | 'pruneCommentOnly'>>;
}

export function parseArmSpecs(spec: string): ArmSpec[] {
  const names = spec.split(',').map((a) => a.trim()).filter(Boolean);
  const expected = `a list from ${CURRICULA.join(', ')}, each optionally with ${Object.keys(MODIFIERS).map((m) => `+${m}`).join(' or ')}`;
  const arms = names.map((name) => {
    const [curriculum, ...mods] = name.split('+');
    if (!(CURRICULA as readonly string[]).includes(curriculum)) throw new InputError(describe('--arms', JSON.stringify(name), expected));
    const overrides: ArmSpec['overrides'] = {};
    for (const m of mods) {
      const key = (MODIFIERS as Record<string, (typeof MODIFIERS)[keyof typeof MODIFIERS]>)[m];
      if (!key) throw new InputError(describe('--arms', `${JSON.stringify(name)}: unknown modifier +${m}`, expected));
      overrides[key] = true;
    }
    return { name, curriculum: curriculum as CurriculumName, overrides };
  });
  if (arms.length === 0 || new Set(names).size !== names.length) throw new InputError(describe('--arms', JSON.stringify(spec), 'distinct arms, e.g. stages,shuffle'));
  return arms;
}

/** The curricula of `--arms` (modifiers allowed, dropped). */
export function parseArms(spec: string): CurriculumName[] {
  return parseArmSpecs(spec).map((a) => a.curriculum);
}

/** `--seeds K`: K seeds from the config's seed up. */
export function seedList(base: number, k: number): number[] {
  if (!Number.isInteger(k) || k < 1) throw new InputError(describe('--seeds', String(k), 'an integer >= 1 (seeds --seed, --seed + 1, ...)'));
  return Array.from({ length: k }, (_, i) => base + i);
}

/** The folder of one (arm, seed) run inside the experiment: `<arm>` with one seed (as before seeds), else `<arm>/seed-<s>`. */
export function runDirName(arm: string, seed: number, seeds: number): string {
  return seeds === 1 ? arm : `${arm}/seed-${seed}`;
}

/** The command that continues an experiment: the rest comes from its experiment.json (storedExperiment). */
export function experimentResumeCommand(expDir: string): string {
  return `node train.js experiment --resume latest --output-dir ${shellWord(resolve(expDir))}`;
}

/**
 * What `experiment --resume` continues: experiment.json's config, arms and seed count. `latest` needs the experiment
 * folder (--output-dir, or --run-name under checkpoints/); any other value is that folder. Flags given with it apply over it.
 */
export function storedExperiment(resume: string, outputDir: string | null): { base: { config: Record<string, unknown>; source: string }; arms: string; seeds: number; commonEvalSeed: boolean } {
  if (resume === 'latest' && outputDir === null) {
    throw new InputError(describe('--resume latest', 'no experiment folder given', '--output-dir DIR (or --run-name NAME)', 'Or pass the experiment folder itself: --resume DIR.'));
  }
  const dir = resolve(resume === 'latest' ? outputDir! : resume);
  const file = runFile(dir, 'experiment');
  if (!existsSync(file)) {
    throw new InputError(describe(`--resume ${resume}`, `${dir} has no ${basename(file)}`, 'an experiment folder (written by `experiment`)',
      'A single run resumes with `node train.js train --resume`.'));
  }
  const obj = readJsonObject(file, 'an experiment.json written by `experiment`', InputError);
  const config = obj.config;
  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new InputError(describe(`${file}: "config"`, 'missing', 'the settings the experiment ran with'));
  const arms = Array.isArray(obj.arm_names) && obj.arm_names.every((a) => typeof a === 'string') ? (obj.arm_names as string[]).join(',') : readExperimentArms(dir).map((a) => a.name).join(',');
  const seeds = Array.isArray(obj.seeds) && obj.seeds.length > 0 ? obj.seeds.length : 1;
  // The experiment folder is where experiment.json is, wherever the experiment was started from.
  return { base: { config: { ...(config as Record<string, unknown>), outputDir: dir }, source: file }, arms, seeds, commonEvalSeed: obj.common_eval_seed === true };
}

/** Each eval task's `level` (the world's tasks carry one), read from a JSONL tasks file; empty for other files. */
function taskLevels(file: string): Map<string, number> {
  const out = new Map<string, number>();
  if (!/\.jsonl$/i.test(file)) return out;
  for (const { value } of readJsonl(file, InputError).rows) if (typeof value.level === 'number') out.set(String(value.task_id), value.level);
  return out;
}

/**
 * The stage evaluator of one run, as eval/stage.ts's (pass@k and tests_passed), that also writes every sample to
 * `<run>/completions/step-<N>.jsonl`. Step 0 is the SFT model itself in every arm (LoRA B starts at 0): it is
 * evaluated once per sampling seed (once in all for greedy) and shared.
 */
function recordingEvaluator(model: LoadedModel, tasks: Task[], levels: Map<string, number>, pool: Parameters<typeof evaluateCompletions>[2],
  shared: Map<string, { lines: Record<string, unknown>[]; metrics: Record<string, number> }>, commonSeed = false) {
  return (cfg: RunConfig, runDir: string): Evaluate => async (lora, step) => {
    const key = step === 0 && !cfg.initAdapter ? (cfg.evalTemperature === 0 ? 'greedy' : `seed ${cfg.seed}`) : null;
    const hit = key ? shared.get(key) : undefined;
    if (hit) {
      writeCompletions(runDir, step, hit.lines);
      return hit.metrics;
    }
    const { samples } = await generateSamples(model, lora, tasks, stageSampling(cfg, step, commonSeed));
    const results = await evaluateCompletions(tasks, samples, pool);
    const metrics = stageMetrics(results, cfg.evalSamples);
    const lines = results.map((r) => ({ ...resultRecord(r), ...(levels.has(r.taskId) ? { level: levels.get(r.taskId) } : {}) }));
    writeCompletions(runDir, step, lines);
    if (key) shared.set(key, { lines, metrics });
    return metrics;
  };
}

interface Planned {
  arm: ArmSpec;
  seed: number;
  cfg: RunConfig;
  prep: RunPrep;
  pairs: TokenizedRecord[];
  dir: string;
}

export interface ExperimentOptions {
  /** Seeds per arm (`--seeds K`): the config's seed and the K - 1 after it. Default 1. */
  seeds?: number;
  /** `--eval-common-seed`: every evaluation of a run samples with the run's seed (eval/stage.ts stageSampling), so the
   * gain over step 0 is measured with common random numbers. Default false: the seed moves with the step. */
  commonEvalSeed?: boolean;
}

/** Trains and evaluates every (arm, seed) run (resuming run by run), writes the manifest and the report; returns the experiment folder. */
export async function runExperiment(base: RunConfig, armsSpec: string, log: (l: string) => void, opts: ExperimentOptions = {}): Promise<string> {
  const arms = parseArmSpecs(armsSpec);
  const seeds = seedList(base.seed, opts.seeds ?? 1);
  if (!base.evalTasks) throw new InputError(describe('--eval-tasks', 'missing', 'a tasks file to evaluate each arm on'));
  const expDir = base.outputDir ?? defaultRunDir(base.runName ?? `experiment-${new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)}`);
  guardPipes(); // `| head` closing the pipe stops the arm after a save instead of crashing it (util/pipe.ts)
  checkRunPaths(base, null, expDir);
  mkdirSync(expDir, { recursive: true });
  log(`experiment: arms ${arms.map((a) => a.name).join(', ')} x ${seeds.length} seed${seeds.length > 1 ? 's' : ''} (${shortList(seeds)}) in ${expDir}`);
  const model = await openModel(base.backend, base.model, log);
  let services: Awaited<ReturnType<typeof openRunServices>> | null = null;
  try {
    services = await openRunServices(model, base, log);
    const pool = services.pool!;
    const { records, data } = loadPairsFile(base.data, model.tokenizer, pairLengths(base), log, base.split ?? undefined);
    const tasks = loadTasks(base.evalTasks, base.evalFormat ?? undefined, base.evalSplit ?? undefined);
    const evaluator = recordingEvaluator(model, tasks, taskLevels(base.evalTasks), pool, new Map(), opts.commonEvalSeed ?? false);
    // Content pruning depends only on the arm's prune settings: done once per setting, shared by its seeds.
    const pruned = new Map<string, { pairs: TokenizedRecord[]; counts: ContentPruneCounts }>();
    const pairsFor = async (cfg: RunConfig) => {
      const key = `${cfg.pruneIncorrectChosen}/${cfg.pruneCommentOnly}`;
      if (!pruned.has(key)) {
        const r = await pruneByContent(data.pairs, records, { incorrectChosen: cfg.pruneIncorrectChosen, commentOnly: cfg.pruneCommentOnly }, pool, base.data!);
        if (cfg.pruneIncorrectChosen || cfg.pruneCommentOnly) log(formatContentPrune(r.counts));
        pruned.set(key, { pairs: r.kept, counts: r.counts });
      }
      return { key, ...pruned.get(key)! };
    };
    const hashes = runHashes(model, base.data!, base);
    // Plan every run first: all are evaluated at the union of their stage ends, with one step budget.
    const plans: Planned[] = [];
    const firstDirFor = new Map<string, string>();
    for (const seed of seeds) {
      for (const arm of arms) {
        const dir = join(expDir, runDirName(arm.name, seed, seeds.length));
        const cfg: RunConfig = { ...base, ...arm.overrides, curriculum: arm.curriculum, seed, outputDir: dir, runName: arm.name };
        mkdirSync(dir, { recursive: true });
        const p = await pairsFor(cfg);
        if (cfg.pruneIncorrectChosen || cfg.pruneCommentOnly) writeFileAtomic(join(dir, PRUNE_FILE), JSON.stringify({ ...p.counts, pruneIncorrectChosen: cfg.pruneIncorrectChosen, pruneCommentOnly: cfg.pruneCommentOnly }) + '\n');
        // The reference pass depends on neither order nor seed: the first run over the same pairs serves the others.
        const first = firstDirFor.get(p.key);
        if (!first) firstDirFor.set(p.key, dir);
        const [from, to] = [first && runFile(first, 'refLogps'), runFile(dir, 'refLogps')];
        if (from && existsSync(from) && !existsSync(to)) copyFileSync(from, to);
        const prep = await prepareRun(model, p.pairs, base.data!, cfg, hashes, dir, { log, sources: records, pythonRunner: pool });
        plans.push({ arm, seed, cfg, prep, pairs: p.pairs, dir });
      }
    }
    // The same budget for every run: --max-steps, or the longest run's --epochs (a pruned arm takes more passes).
    const maxSteps = base.maxSteps > 0 ? base.maxSteps : Math.max(...plans.map((p) => p.prep.maxSteps));
    for (const p of plans) {
      if (p.prep.maxSteps === maxSteps) continue;
      p.cfg = { ...p.cfg, maxSteps };
      p.prep = await prepareRun(model, p.pairs, base.data!, p.cfg, hashes, p.dir, { log, sources: records, pythonRunner: pool });
      log(`arm ${p.arm.name} seed ${p.seed}: ${p.pairs.length} pairs, run for the common budget of ${maxSteps} steps`);
    }
    const evalSteps = [...new Set([0, maxSteps, ...plans.flatMap((p) => [...p.prep.stageEnds.keys()])])].sort((a, b) => a - b);
    log(`experiment: ${maxSteps} steps per run; evaluations at steps ${shortList(evalSteps)}`);
    const label = (p: Planned) => (seeds.length > 1 ? `arm ${p.arm.name} seed ${p.seed}` : `arm ${p.arm.name}`);
    const status = (p: Planned): ExperimentArm & { arm: string; seed: number } => ({
      name: runDirName(p.arm.name, p.seed, seeds.length), arm: p.arm.name, seed: p.seed, run_dir: runDirName(p.arm.name, p.seed, seeds.length),
      status: existsSync(checkpointDir(p.dir, maxSteps)) ? 'done' : 'pending',
    });
    const writeManifest = () => writeExperiment(expDir, {
      arms: plans.map(status), eval_steps: evalSteps, max_steps: maxSteps, config: base,
      ...{ arm_names: arms.map((a) => a.name), seeds, common_eval_seed: opts.commonEvalSeed ?? false, budget: { max_steps: maxSteps, batch_size: base.batchSize, grad_accum: base.gradAccum, pairs: Object.fromEntries(arms.map((a) => [a.name, plans.find((p) => p.arm === a)!.pairs.length])) } },
    } as Parameters<typeof writeExperiment>[1]);
    writeManifest();
    for (const p of plans) {
      if (status(p).status === 'done') {
        log(`${label(p)}: already done, skipping`);
        continue;
      }
      const resume = listCheckpoints(p.dir).length > 0 ? 'latest' : null;
      log(`${label(p)}: ${resume ? 'resuming' : 'training'}`);
      const res = await runTraining(model, p.pairs, base.data!, p.cfg, {
        log, sources: records, pythonRunner: pool, evaluate: evaluator(p.cfg, p.dir), evalAtSteps: evalSteps, prepared: p.prep, resume,
      });
      writeManifest();
      if (res.interrupted) throw new InterruptedError(`${label(p)} stopped at step ${res.steps}. Resume with:\n  ${experimentResumeCommand(expDir)}`);
    }
  } finally {
    // The sandbox pool's workers keep Node alive: every way out closes it.
    await services?.close();
    disposeModel(model);
  }
  await runReport(expDir, (l) => console.log(l), log);
  return expDir;
}

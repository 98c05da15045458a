// The embedded default: `node train.js` with no flags runs the seed's whole pipeline on a learnable world (issue 16):
// world -> init (init-tiny --preset world) -> SFT --full -> best-of-N pairs on train prompts, scored by the sandbox ->
// score -> LoRA DPO with the `stages` curriculum, held-out pass@1 at step 0 (the SFT model) and each stage end -> report.
// Each stage calls its command's library function and is cached under checkpoints/default/ (default-cache.ts).
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BackendName } from '../backend/index.js';
import { resolveRunConfig, type RunConfig } from '../config/run.js';
import { defaultSandbox, openSandbox } from '../config/sandbox.js';
import { runScore } from '../dpo/score.js';
import { writeFileAtomic } from '../io/atomic.js';
import { openModel } from '../io/model-dir.js';
import { writeTinyModel } from '../io/tiny-model.js';
import { runPairs } from '../pairs/job.js';
import { runReport } from '../report/run.js';
import { listCheckpoints } from '../run/checkpoint.js';
import { readEvals, readMetrics } from '../run/files.js';
import { ADAPTER_WEIGHTS, runFile } from '../run/layout.js';
import { resolveSftConfig } from '../sft/config.js';
import { sft } from '../sft/train.js';
import { InputError, InterruptedError, describe } from '../util/errors.js';
import { guardPipes } from '../util/pipe.js';
import { fmtTime } from '../util/progress.js';
import { generateWorld, worldSummary, writeWorld, WORLD_FILES } from '../world/world.js';
import { train } from './train.js';
import { DEFAULT_BUDGET, sftStepsFor, type DefaultBudget } from './default-budget.js';
import { PipelineEta, freeName, keepLegacyRoot, readStage, stageDir, stageKey, writeStage, type StageRecord } from './default-cache.js';

/** The repo root (dist/src/pipeline -> ../../..), where checkpoints/ lives. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export const DEFAULT_PATHS = {
  /** Every stage's folder goes under here. */
  run: join(ROOT, 'checkpoints', 'default'),
};

export interface DefaultOptions {
  /** The cache root (default DEFAULT_PATHS.run). */
  root?: string;
  budget?: DefaultBudget;
}

/**
 * What the default does with a DPO stage folder that is not marked complete: a finished run in it (its final adapter
 * is there, stage.json is not: a crash between the two) is renamed to a free `.prev` name, never deleted; an
 * unfinished one is resumed from its latest checkpoint, or, with no checkpoint yet, started again in place.
 */
export function prepareDefaultRun(runDir: string): { resume: 'latest' | null; keptAs: string | null } {
  if (!existsSync(runDir)) return { resume: null, keptAs: null };
  if (existsSync(join(runDir, ADAPTER_WEIGHTS))) {
    const keptAs = freeName(`${runDir}.prev`);
    renameSync(runDir, keptAs);
    return { resume: null, keptAs };
  }
  return { resume: listCheckpoints(runDir).length > 0 ? 'latest' : null, keptAs: null };
}

// Seconds per unit of work on 2 cores (wasm), measured with scripts in issue16-default.md; the ETA corrects them as stages finish.
const COST = { worldTask: 0.002, sftToken: 1 / 4000, sampleToken: 1 / 3000, scorePair: 0.05, dpoPairEpoch: 0.25, evalToken: 1 / 1600, fixed: 8 };

/** Each stage's estimated seconds for a budget (the ETA's starting point). */
function estimates(b: DefaultBudget): Map<string, number> {
  const pairs = b.pairs.tasks * 0.45;
  const evals = 5 * Math.min(b.evalTasks, b.world.heldout) * b.evalMaxNewTokens * 0.4;
  return new Map([
    ['world', COST.worldTask * (b.world.size + b.world.heldout)],
    ['init', 1],
    ['sft', COST.fixed + b.sftTokens * COST.sftToken],
    ['pairs', COST.fixed + b.pairs.tasks * b.pairs.n * b.pairs.maxNewTokens * 0.5 * COST.sampleToken],
    ['score', COST.fixed + pairs * COST.scorePair],
    ['dpo', COST.fixed + pairs * Number(b.dpo.epochs ?? 1) * COST.dpoPairEpoch + evals * COST.evalToken],
  ]);
}

/** The held-out tasks each stage end is evaluated on, in the DPO folder. */
const EVAL_TASKS = 'eval-tasks.jsonl';

/** How often a running stage prints the pipeline's ETA. */
const ETA_EVERY_MS = 60_000;

interface Ctx {
  root: string;
  log: (l: string) => void;
  eta: PipelineEta;
  index: number;
  total: number;
}

/** Runs `build` into the stage's folder unless a complete one with this key is there; returns the folder and its record. */
async function stage(ctx: Ctx, name: string, settings: unknown, inputs: string[], what: string,
  build: (dir: string) => Promise<Record<string, unknown>>): Promise<{ dir: string; rec: StageRecord }> {
  const key = stageKey(name, settings, inputs);
  const dir = stageDir(ctx.root, name, key);
  const step = `[${++ctx.index}/${ctx.total}] ${name}`;
  const hit = readStage(dir, key);
  if (hit) {
    ctx.eta.finish(name, 0, true);
    ctx.log(`${step}: cached in ${dir} (built in ${fmtTime(hit.seconds)})`);
    return { dir, rec: hit };
  }
  ctx.log(`${step}: ${what} -> ${dir} (${ctx.eta.line()})`);
  mkdirSync(dir, { recursive: true });
  const t0 = Date.now();
  ctx.eta.start(name);
  // The stage's own progress (bar, logger lines) says how far it is; this line says how far the whole pipeline is.
  const timer = setInterval(() => ctx.log(`      ${name}: ${fmtTime(ctx.eta.running())} so far; ${ctx.eta.line()}`), ETA_EVERY_MS);
  timer.unref();
  let result: Record<string, unknown>;
  try {
    result = await build(dir);
  } finally {
    clearInterval(timer);
  }
  const seconds = (Date.now() - t0) / 1000;
  const rec = writeStage(dir, { stage: name, key, settings, seconds, result });
  ctx.eta.finish(name, seconds, false);
  ctx.log(`${step} done in ${fmtTime(seconds)}; ${ctx.eta.line()}`);
  return { dir, rec };
}

function lines(file: string): string[] {
  return readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '');
}

export async function runDefaultPipeline(backend: string, log: (l: string) => void, o: DefaultOptions = {}): Promise<void> {
  const t0 = Date.now();
  const b = o.budget ?? DEFAULT_BUDGET;
  const root = o.root ?? DEFAULT_PATHS.run;
  guardPipes(); // `node train.js | head`: a stage stops after a save, the report is still written (util/pipe.ts)
  const kept = keepLegacyRoot(root);
  if (kept) log(`the previous default run (one DPO run folder) is kept in ${kept}`);
  mkdirSync(root, { recursive: true });
  const ctx: Ctx = { root, log, eta: new PipelineEta(estimates(b)), index: 0, total: 6 };
  log(`default pipeline in ${root}: world -> init -> sft -> pairs -> score -> dpo (stages) + held-out eval -> report; ${ctx.eta.line()}`);

  const world = await stage(ctx, 'world', { seed: b.seed, ...b.world }, [], `${b.world.size} train + ${b.world.heldout} held-out tasks`, async (dir) => {
    const w = generateWorld({ seed: b.seed, size: b.world.size, heldout: b.world.heldout });
    writeWorld(dir, w);
    log(`      ${worldSummary(w)}`);
    return { train: w.train.length, heldout: w.heldout.length };
  });
  const trainFile = join(world.dir, WORLD_FILES.train);
  const heldoutFile = join(world.dir, WORLD_FILES.heldout);

  const init = await stage(ctx, 'init', { ...b.model, seed: b.seed }, [], 'init-tiny --preset world', async (dir) => {
    await writeTinyModel(join(dir, 'model'), { ...b.model, seed: b.seed, overwrite: true });
    return {};
  });

  // SFT --full from scratch on the train split (prompt + canonical solution, loss on the solution), for a token budget.
  const trainRecords = lines(trainFile).map((l) => JSON.parse(l) as { prompt: string; canonical_solution: string });
  const sftSteps = sftStepsFor(b, trainRecords.map((r) => Buffer.byteLength(r.prompt + r.canonical_solution) + 2));
  const sftFlags = { ...b.sft, full: true, 'max-steps': sftSteps, seed: b.seed };
  const sftStage = await stage(ctx, 'sft', sftFlags, [world.rec.key, init.rec.key], `SFT --full, ${sftSteps} steps (~${b.sftTokens} tokens)`, async (dir) => {
    const cfg = resolveSftConfig({ ...sftFlags, model: join(init.dir, 'model'), data: trainFile, 'output-dir': dir, backend });
    const resume = listCheckpoints(dir).length > 0 ? 'latest' : null;
    if (resume) log(`      resuming the interrupted SFT in ${dir}`);
    const res = await interruptible(() => sft(cfg, resume, stepsLog(ctx, log, sftSteps)));
    return { steps: res.steps, loss: res.lastMetrics?.loss ?? null, mean_token_accuracy: res.lastMetrics?.mean_token_accuracy ?? null, num_tokens: res.lastMetrics?.num_tokens ?? null };
  });
  const model = sftStage.dir;

  // Best-of-N on the first train prompts: the sandbox runs each sample's tests; best passing vs worst failing is a pair.
  const pairSettings = { ...b.pairs, seed: b.seed };
  const pairs = await stage(ctx, 'pairs', pairSettings, [world.rec.key, sftStage.rec.key], `best-of-${b.pairs.n} on ${b.pairs.tasks} train prompts`, async (dir) => {
    const tasks = join(dir, 'tasks.jsonl');
    if (!existsSync(tasks)) writeFileAtomic(tasks, lines(trainFile).slice(0, b.pairs.tasks).map((l) => l + '\n').join(''));
    await interruptible(() => runPairs({
      model, tasks, out: join(dir, 'pairs.jsonl'), backend: backend as BackendName, minGap: 0, requireChosenPass: b.pairs.requireChosenPass,
      sampling: { nSamples: b.pairs.n, temperature: b.pairs.temperature, topP: b.pairs.topP, topK: 0, maxNewTokens: b.pairs.maxNewTokens, seed: b.seed, chat: false, batchSize: null },
      sandbox: defaultSandbox(),
    }, { openRunner: openSandbox, print: log, log: tasksLog(ctx, log), loadModel: (be, d) => openModel(be, d, log) }));
    const n = lines(join(dir, 'pairs.jsonl')).length;
    return { tasks: b.pairs.tasks, pairs: n, yield: n / b.pairs.tasks };
  });
  const pairsFile = join(pairs.dir, 'pairs.jsonl');
  if (Number(pairs.rec.result.pairs) === 0) {
    throw new InputError(describe(pairsFile, `no pair from ${b.pairs.tasks} train prompts (no prompt had a passing and a failing sample)`,
      'at least one pair for DPO', 'The SFT model is too weak for this budget: raise sftTokens or pairs.tasks in src/pipeline/default-budget.ts.'));
  }

  const dpoArgs = (dir: string, scores: string | null): RunConfig => resolveRunConfig({
    ...b.dpo, model, data: pairsFile, ...(scores ? { scores, 'eval-tasks': join(dir, EVAL_TASKS) } : {}), 'eval-max-new-tokens': b.evalMaxNewTokens,
    'eval-temperature': 0, 'output-dir': dir, backend, seed: b.seed,
  });
  const scores = await stage(ctx, 'score', { maxLength: b.dpo['max-length'] ?? null }, [pairs.rec.key, sftStage.rec.key], 'reference log-probs and distances of every pair', async (dir) => {
    await runScore(dpoArgs(dir, null), join(dir, 'scores.jsonl'), log);
    return { pairs: lines(join(dir, 'scores.jsonl')).length };
  });
  const scoresFile = join(scores.dir, 'scores.jsonl');

  const dpo = await stage(ctx, 'dpo', { ...b.dpo, evalTasks: b.evalTasks, evalMaxNewTokens: b.evalMaxNewTokens }, [world.rec.key, sftStage.rec.key, pairs.rec.key, scores.rec.key],
    `LoRA DPO, ${b.dpo.curriculum ?? 'stages'} curriculum, held-out pass@1 after each stage`, async (dir) => {
      const { resume, keptAs } = prepareDefaultRun(dir);
      if (keptAs) log(`      a finished DPO run without its stage.json is kept in ${keptAs}`);
      if (resume) log(`      resuming the interrupted DPO run in ${dir}`);
      mkdirSync(dir, { recursive: true });
      writeFileAtomic(join(dir, EVAL_TASKS), lines(heldoutFile).slice(0, b.evalTasks).map((l) => l + '\n').join(''));
      const dpoSteps = Math.ceil(Number(pairs.rec.result.pairs) / Number(b.dpo['batch-size'] ?? 4)) * Number(b.dpo.epochs ?? 1);
      const res = await interruptible(() => train(dpoArgs(dir, scoresFile), resume, stepsLog(ctx, log, dpoSteps)));
      await runReport(dir, (l) => console.log(l), log);
      const notes: string[] = [];
      const evals = (readEvals(dir, notes) ?? []).map((e) => ({ step: e.step, stage: e.stage, 'pass@1': e.passAtK['pass@1'] ?? null }));
      const m = readMetrics(dir, notes).at(-1) ?? null;
      return { steps: res.steps, evals, loss: m?.loss ?? null, margins: m?.['rewards/margins'] ?? null, accuracies: m?.['rewards/accuracies'] ?? null };
    });

  summary(log, b, { world, sft: sftStage, pairs, dpo }, (Date.now() - t0) / 1000);
}

/** The stage's log, read for the step its logger reached (`'step': N` in HF Trainer's dict lines), for the ETA. */
function stepsLog(ctx: Ctx, log: (l: string) => void, total: number): (l: string) => void {
  return (l) => {
    const m = /'step': (\d+)/.exec(l);
    if (m) ctx.eta.progress(Number(m[1]) / total);
    log(l);
  };
}

/** The pairs job's status lines off a TTY (`pairs: 123/200 tasks, ...`), read for the ETA. */
function tasksLog(ctx: Ctx, log: (l: string) => void): (l: string) => void {
  return (l) => {
    const m = /^pairs:? (\d+)\/(\d+) tasks/.exec(l);
    if (m) ctx.eta.progress(Number(m[1]) / Number(m[2]));
    log(l);
  };
}

/** A stage stopped by a signal says how to continue: the same `node train.js` resumes it from its cache folder. */
async function interruptible<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof InterruptedError) throw new InterruptedError(`${e.message.split('\n')[0]}; run \`node train.js\` again to resume the default pipeline`);
    throw e;
  }
}

type Stages = Record<'world' | 'sft' | 'pairs' | 'dpo', { dir: string; rec: StageRecord }>;

function summary(log: (l: string) => void, b: DefaultBudget, s: Stages, seconds: number): void {
  const r = (x: { rec: StageRecord }) => x.rec.result;
  const f = (v: unknown, d = 3) => (typeof v === 'number' ? v.toFixed(d) : '-');
  const evals = (r(s.dpo).evals ?? []) as { step: number; stage: unknown; 'pass@1': number | null }[];
  log(`default pipeline done in ${fmtTime(seconds)}.`);
  log(`  world:  ${r(s.world).train} train / ${r(s.world).heldout} held-out tasks (seed ${b.seed})      ${s.world.dir}`);
  log(`  sft:    ${r(s.sft).steps} steps, ${r(s.sft).num_tokens} tokens, loss ${f(r(s.sft).loss, 4)}, mean_token_accuracy ${f(r(s.sft).mean_token_accuracy)}      ${s.sft.dir}`);
  log(`  pairs:  ${r(s.pairs).pairs} of ${r(s.pairs).tasks} train prompts (yield ${f(r(s.pairs).yield, 2)}), best-of-${b.pairs.n} at T ${b.pairs.temperature}      ${s.pairs.dir}`);
  log(`  dpo:    ${r(s.dpo).steps} steps, final loss ${f(r(s.dpo).loss, 4)}, rewards/margins ${f(r(s.dpo).margins, 4)}, rewards/accuracies ${f(r(s.dpo).accuracies, 2)}      ${s.dpo.dir}`);
  const held = evals.map((e) => `${e.step === 0 ? 'SFT' : `step ${e.step}`} ${f(e['pass@1'])}`).join(', ');
  log(`  held-out greedy pass@1 (${Math.min(b.evalTasks, Number(r(s.world).heldout))} tasks): ${held || '-'}`);
  if (evals.length >= 2 && evals[0]['pass@1'] !== null && evals.at(-1)!['pass@1'] !== null) {
    const d = evals.at(-1)!['pass@1']! - evals[0]['pass@1']!;
    log(`  DPO - SFT: ${d >= 0 ? '+' : ''}${d.toFixed(3)} (one seed; \`node train.js experiment\` measures it over seeds with CIs)`);
  }
  log(`  report: ${runFile(s.dpo.dir, 'report')}`);
}

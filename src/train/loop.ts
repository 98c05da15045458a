// The training loop: for each step, schedule -> objective step -> AdamW -> hooks (log, evaluate, checkpoint, signals).
// Every step's content (pairs, dropout seeds) is a pure function of (seed, step), so a resumed run repeats bytes.
import * as tf from '@tensorflow/tfjs';
import { mkdirSync } from 'node:fs';
import { basename } from 'node:path';
import { loraTargets, type RunConfig } from '../config/run.js';
import { planFingerprint } from '../curriculum/order.js';
import type { TokenizedRecord } from '../data/tokenize.js';
import { runObjective, type MicroBatch } from '../dpo/objective.js';
import type { LoadedModel } from '../io/model-dir.js';
import { baseModelName, loadAdapter } from '../io/peft.js';
import { removeStaleTemps } from '../io/atomic.js';
import { createLora, disposeLora, loraTensors, type Lora } from '../model/lora.js';
import { checkResume, listCheckpoints, loadOptimizer, readTrainerState, resolveResume, runHashes, STATE_FORMAT, STATE_VERSION, type RunHashes, type TrainerState } from '../run/checkpoint.js';
import { evaluatedAt, resetRunLogs, writeRunConfig } from '../run/files.js';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, checkpointDir, defaultRunDir, runFile } from '../run/layout.js';
import { MismatchError, describe } from '../util/errors.js';
import { fmtTime, shortList } from '../util/progress.js';
import { Rng } from '../util/rng.js';
import { Checkpointer, Evaluator, Logger, SignalGuard, type Evaluate, type MetricsLine } from './hooks.js';
import { adamwStep, createAdamWState, disposeAdamWState, type AdamWState } from './optimizer.js';
import { prepareRun, usesDifficultyFor, type PrepareOptions, type RunPrep } from './prepare.js';
import { learningRateAt, warmupSteps } from './schedule.js';
import { objectiveStep } from './step.js';

export interface TrainOptions extends PrepareOptions {
  /** `latest`, a checkpoint folder or a run folder. */
  resume?: string | null;
  /** Stop (and save) after this many steps of this invocation, as an interruption would. For tests. */
  stopAfterSteps?: number;
  /** Evaluates the current policy (pass@k...); called after each stage, every --eval-steps, and at step 0. */
  evaluate?: Evaluate;
  /** The run's preparation, when the caller already made it (the experiment plans every arm first). */
  prepared?: RunPrep;
  /** Evaluate at exactly these steps instead of stage ends (the experiment aligns arms with it). */
  evalAtSteps?: number[];
}

export interface TrainResult {
  outputDir: string;
  steps: number;
  interrupted: boolean;
  lastMetrics: MetricsLine | null;
}

export function defaultOutputDir(cfg: RunConfig): string {
  return cfg.outputDir ?? defaultRunDir(cfg.runName);
}

/** Dropout seeds for a step: derived, so resume needs no stored RNG stream. */
function stepRng(seed: number, step: number): Rng {
  return new Rng((Math.imul(seed >>> 0, 0x27d4eb2f) ^ Math.imul(step + 1, 0x165667b1)) >>> 0);
}

/** The checkpoint to resume (checked against this run), or none; a fresh run never overwrites another run's checkpoints. */
function resumePoint(resume: string | null | undefined, outputDir: string, cfg: RunConfig, hashes: RunHashes): { dir: string; state: TrainerState } | null {
  if (resume) {
    const dir = resolveResume(resume, outputDir);
    const state = readTrainerState(dir);
    // The budget may grow (continueBudget checks the schedule once the new step count is known); a continued run may
    // also switch to a constant learning rate. Everything else that changes the math must match.
    const budget = { maxSteps: state.config.maxSteps, epochs: state.config.epochs };
    const sched = cfg.lrScheduler === 'constant' ? { lrScheduler: state.config.lrScheduler } : {};
    checkResume(state, { ...cfg, ...budget, ...sched }, hashes, dir);
    return { dir, state };
  }
  if (listCheckpoints(outputDir).length > 0) {
    throw new MismatchError(describe(`--output-dir ${outputDir}`, 'already holds checkpoints of a run', 'an empty or new run folder',
      'Continue it with --resume latest, or pass another --output-dir / --run-name.'));
  }
  return null;
}

/** Policy adapters (fresh with B = 0, --init-adapter, or the checkpoint's) and AdamW state over them. */
function openPolicy(model: LoadedModel, cfg: RunConfig, from: { dir: string; state: TrainerState } | null): { policy: Lora; vars: Map<string, tf.Variable>; opt: AdamWState } {
  const policy = from ? loadAdapter(from.dir, model.cfg) : cfg.initAdapter ? loadAdapter(cfg.initAdapter, model.cfg)
    : createLora(model.cfg, { r: cfg.loraR, alpha: cfg.loraAlpha, dropout: cfg.loraDropout, targets: loraTargets(cfg), useRslora: cfg.useRslora }, cfg.seed);
  const vars = new Map(Object.entries(loraTensors(policy)));
  const opt = createAdamWState(vars);
  if (from) loadOptimizer(from.dir, opt, from.state.global_step);
  return { policy, vars, opt };
}

/** `done:` as HF Trainer's end of train: total time, the final metrics, and where each file is. */
function doneLine(step: number, logger: Logger<MicroBatch>, outputDir: string, lastSaved: number): string {
  const m = logger.last ?? {};
  const shown = Object.entries(m).filter(([k]) => !['epoch', 'step', 'learning_rate'].includes(k)).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(', ');
  return `done: ${step} steps in ${fmtTime(logger.elapsed())}${shown ? `; final ${shown}` : ''}\n`
    + `  adapter (PEFT): ${outputDir}/${ADAPTER_WEIGHTS} + ${ADAPTER_CONFIG}\n`
    + `  checkpoint:     ${checkpointDir(outputDir, lastSaved)}\n`
    + `  metrics:        ${runFile(outputDir, 'metrics')}\n`
    + `  config:         ${runFile(outputDir, 'config')}`;
}

/**
 * A resumed run asked for another step budget (HF's resume_from_checkpoint with a larger max_steps). The steps already
 * taken used the old budget's learning rates; the continued run equals one asked for the new budget from the start
 * only when those are the same (the data order and dropout do not depend on the budget). Otherwise it is refused,
 * unless --lr-scheduler constant is asked for explicitly (then the rest of the run is constant, and it is said).
 */
function continueBudget(from: { dir: string; state: TrainerState }, cfg: RunConfig, maxSteps: number, warmup: number, log: (l: string) => void): void {
  const st = from.state;
  const done = st.global_step;
  if (maxSteps === st.max_steps && cfg.lrScheduler === st.config.lrScheduler) return;
  if (maxSteps < done) {
    throw new MismatchError(describe(`--max-steps ${maxSteps}`, `the run in ${from.dir} is already at step ${done}`, `a budget of at least ${done} steps`));
  }
  const oldWarmup = warmupSteps(st.max_steps, st.config.warmupSteps, st.config.warmupRatio);
  for (let s = 0; s < done; s++) {
    const was = learningRateAt(s, st.config.learningRate, st.config.lrScheduler, st.max_steps, oldWarmup);
    const now = learningRateAt(s, cfg.learningRate, cfg.lrScheduler, maxSteps, warmup);
    if (was === now) continue;
    if (cfg.lrScheduler === 'constant' && st.config.lrScheduler !== 'constant') {
      log(`continuing ${st.config.lrScheduler} run at step ${done} with a constant learning rate ${cfg.learningRate} up to step ${maxSteps} (not the same as any single run)`);
      return;
    }
    throw new MismatchError(describe(`--max-steps/--epochs`, `${maxSteps} steps; the ${st.config.lrScheduler} schedule over ${st.max_steps} steps gave step ${s + 1} the learning rate ${was.toPrecision(4)}, one over ${maxSteps} steps gives ${now.toPrecision(4)}`,
      'a schedule that does not depend on the budget',
      'So the continued run would not match a run asked for the larger budget. Continue with --lr-scheduler constant, or start a new run (another --output-dir) with the larger budget.'));
  }
  log(`continuing from step ${done}: budget ${st.max_steps} -> ${maxSteps} steps (the ${cfg.lrScheduler} schedule gives the steps taken the same learning rates)`);
}

export async function runTraining(model: LoadedModel, allRecords: TokenizedRecord[], dataFile: string, cfg: RunConfig, opts: TrainOptions): Promise<TrainResult> {
  const { log } = opts;
  const outputDir = defaultOutputDir(cfg);
  mkdirSync(outputDir, { recursive: true });
  // A crash or a full disk leaves `.checkpoint-N.tmp-*` siblings (io/atomic.ts): dead weight, never a checkpoint.
  for (const p of removeStaleTemps(outputDir)) log(`removed ${p}, left by an interrupted run`);
  const hashes = runHashes(model, dataFile, cfg);
  const from = resumePoint(opts.resume, outputDir, cfg, hashes);
  const prep = opts.prepared ?? (await prepareRun(model, allRecords, dataFile, cfg, hashes, outputDir, opts));
  const { records, plan, schedule, n, spe, maxSteps, warmup, stageEnds } = prep;
  const startStep = from?.state.global_step ?? 0;
  if (from) continueBudget(from, cfg, maxSteps, warmup, log);
  writeRunConfig(outputDir, cfg, { max_steps: maxSteps, steps_per_epoch: spe });
  resetRunLogs(outputDir, startStep);

  const { policy, vars, opt } = openPolicy(model, cfg, from);
  // DPO today; the objective is the one thing a new training method replaces (train/objective.ts).
  const run = runObjective(model, cfg, prep.fullTable, prep.keptIdx);
  const { objective } = run;
  const adam = { beta1: cfg.adamBeta1, beta2: cfg.adamBeta2, eps: cfg.adamEpsilon, weightDecay: cfg.weightDecay };

  const evalSteps = new Set<number>(opts.evalAtSteps ?? [0, ...stageEnds.keys(), maxSteps]);
  if (!opts.evalAtSteps && cfg.evalSteps > 0) for (let s = cfg.evalSteps; s <= maxSteps; s += cfg.evalSteps) evalSteps.add(s);
  const history: MetricsLine[] = from?.state.log_history ?? [];
  const state = (step: number): TrainerState => ({
    format: STATE_FORMAT, version: STATE_VERSION, global_step: step, epoch: step / spe, max_steps: maxSteps, steps_per_epoch: spe,
    position: { epoch: Math.floor(step / spe), step_in_epoch: step % spe, pairs_seen: Math.min(n, (step % spe) * cfg.batchSize * cfg.gradAccum) },
    order: { curriculum: cfg.curriculum, seed: cfg.seed, pairs: n, plan: planFingerprint(plan) },
    rng: { kind: 'derived', seed: cfg.seed }, config: cfg, hashes, log_history: history,
  });
  // TRL's num_tokens counts every real token since step 0: a resumed run adds the steps it skips (host lengths only).
  let tokensBefore = 0;
  for (let s = 0; s < startStep; s++) {
    for (const pos of schedule.microBatches(s)) for (const p of pos) tokensBefore += 2 * records[p].promptIds.length + records[p].chosenIds.length + records[p].rejectedIds.length;
  }
  const logger = new Logger<MicroBatch>(outputDir, objective, { spe, maxSteps, startStep, loggingSteps: cfg.loggingSteps, reportTo: cfg.reportTo, history, log, tokensBefore, itemIndex: (micro) => micro.flatMap((m) => m.pairs.map((p) => (p as TokenizedRecord).index)) });
  const evaluator = new Evaluator(outputDir, opts.evaluate, evalSteps, stageEnds, spe, log, (s, res) => logger.evalScalars(s, res));
  const checkpointer = new Checkpointer(outputDir, { saveSteps: cfg.saveSteps, maxSteps, keep: cfg.saveTotalLimit, baseModel: baseModelName(cfg.model ?? model.dir, model.dir), startStep, state, lora: policy, opt });
  const signals = new SignalGuard(log);

  log(`curriculum: ${cfg.curriculum}${usesDifficultyFor(cfg) ? ` by ${cfg.difficulty}` : ''}; stage ends at steps ${shortList([...stageEnds.keys()])}`);
  log(`train: ${n} pairs, ${spe} steps/epoch, ${maxSteps} steps (batch ${cfg.batchSize} x accum ${cfg.gradAccum}), LoRA r=${policy.config.r} alpha=${policy.config.alpha} on ${policy.config.targets.join(',')}, reference ${run.reference}`);
  if (from) log(`resuming from ${from.dir} at step ${startStep}`);
  let step = startStep;
  try {
    // No evaluation starts after a signal; a run stopped before its evaluation at a step does it first on resume.
    if ((step === 0 || (from && !evaluatedAt(outputDir, step))) && !(await signals.poll())) await evaluator.at(step, policy);
    while (step < maxSteps) {
      const micro: MicroBatch[] = schedule.microBatches(step).map((pos) => ({ positions: pos, pairs: pos.map((p) => records[p]) }));
      const lr = learningRateAt(step, cfg.learningRate, cfg.lrScheduler, maxSteps, warmup);
      const out = objectiveStep(objective, policy, micro, stepRng(cfg.seed, step));
      const gradNorm = adamwStep(vars, out.grads, opt, lr, cfg.maxGradNorm, adam);
      tf.dispose([...out.grads.values()]);
      step += 1;
      // No read-back here: the logger reads every step of a --logging-steps window at once (hooks.ts).
      await logger.step(step, lr, gradNorm, out, micro);
      // Evaluate before saving: a crash during the evaluation then repeats the step (deterministically) on resume.
      if (!(await signals.poll())) await evaluator.at(step, policy);
      const stop = (await signals.poll()) || (opts.stopAfterSteps !== undefined && step - startStep >= opts.stopAfterSteps);
      if (checkpointer.willSave(step, stop)) await logger.flush();
      await checkpointer.after(step, stop);
      if (stop) break;
    }
    logger.done();
    if (step === maxSteps) {
      await checkpointer.final();
      logger.saveTrainResults(cfg.batchSize * cfg.gradAccum);
      log(doneLine(step, logger, outputDir, checkpointer.lastSaved));
    } else {
      log(`stopped at step ${step} (${basename(checkpointDir(outputDir, checkpointer.lastSaved))} saved); --resume latest continues it`);
    }
  } finally {
    logger.done(); // an error must not leave the bar on screen for main's message to land on (a no-op after the first)
    signals.dispose();
    disposeAdamWState(opt);
    disposeLora(policy);
    run.dispose();
  }
  return { outputDir, steps: step, interrupted: step < maxSteps, lastMetrics: logger.last };
}

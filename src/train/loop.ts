// The training loop: data order -> micro-batches -> DPO step -> AdamW -> metrics -> checkpoints, with exact resume.
// Every step's content (pairs, dropout seeds) is a pure function of (seed, step), so a resumed run repeats bytes.
import * as tf from '@tensorflow/tfjs';
import { mkdirSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import type { RunConfig } from '../config/run.js';
import { loraTargets } from '../config/run.js';
import type { LoadedModel } from '../io/model-dir.js';
import { loadAdapter, saveAdapter } from '../io/peft.js';
import { writeFileAtomic } from '../io/atomic.js';
import { createLora, disposeLora, loraTensors, type Lora, type LoraConfig } from '../model/lora.js';
import type { TokenizedRecord } from '../data/tokenize.js';
import { batchLogps } from '../dpo/reference.js';
import { parseLossTerms } from '../dpo/losses.js';
import { collatePairs } from '../data/batch.js';
import { epochOrder, planFingerprint, type CurriculumName, type CurriculumPlan } from '../curriculum/order.js';
import { MismatchError, describe } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { progress } from '../util/progress.js';
import { adamwStep, createAdamWState, disposeAdamWState } from './optimizer.js';
import { learningRateAt } from './schedule.js';
import { stepGradients, disposeStats, type MicroBatch, type RefProvider } from './step.js';
import { readStep, type MetricsLine } from './metrics.js';
import { appendRunLines, resetRunLogs, writeRunConfig } from '../run/files.js';
import { checkpointDir, defaultRunDir, runFile } from '../run/layout.js';
import { prepareRun, stepsPerEpoch, usesDifficultyFor, type PrepareOptions, type RunPrep } from './prepare.js';
import { type TrainerState, checkResume, listCheckpoints, runHashes, saveCheckpoint, readTrainerState, loadOptimizer, resolveResume, STATE_FORMAT, STATE_VERSION } from '../run/checkpoint.js';

export { stepsPerEpoch };

export interface TrainOptions extends PrepareOptions {
  /** `latest`, a checkpoint folder or a run folder. */
  resume?: string | null;
  /** Stop (and save) after this many steps of this invocation, as an interruption would. For tests. */
  stopAfterSteps?: number;
  /** Evaluates the current policy (pass@k...); called after each stage, every --eval-steps, and at step 0. */
  evaluate?: (lora: Lora, step: number) => Promise<Record<string, number>>;
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


/** The micro-batches of optimizer step `step` (0-based), as positions among the kept pairs. */
export function stepPositions(step: number, n: number, cfg: RunConfig, spe: number, plan?: CurriculumPlan): number[][] {
  const epoch = Math.floor(step / spe);
  const j = step % spe;
  const order = epochOrder(n, cfg.curriculum as CurriculumName, cfg.seed, epoch, plan);
  const out: number[][] = [];
  for (let m = j * cfg.gradAccum; m < (j + 1) * cfg.gradAccum; m++) {
    const chunk = order.slice(m * cfg.batchSize, (m + 1) * cfg.batchSize);
    if (chunk.length > 0) out.push(chunk);
  }
  return out;
}

/** Dropout seeds for a step: derived, so resume needs no stored RNG stream. */
function stepRng(seed: number, step: number): Rng {
  return new Rng((Math.imul(seed >>> 0, 0x27d4eb2f) ^ Math.imul(step + 1, 0x165667b1)) >>> 0);
}

function loraConfigOf(cfg: RunConfig): LoraConfig {
  return { r: cfg.loraR, alpha: cfg.loraAlpha, dropout: cfg.loraDropout, targets: loraTargets(cfg), useRslora: cfg.useRslora };
}


export async function runTraining(model: LoadedModel, allRecords: TokenizedRecord[], dataFile: string, cfg: RunConfig, opts: TrainOptions): Promise<TrainResult> {
  const { log } = opts;
  const outputDir = defaultOutputDir(cfg);
  mkdirSync(outputDir, { recursive: true });
  const refDir = cfg.refAdapter ?? cfg.initAdapter;
  const hashes = runHashes(model, dataFile, cfg);


  // Policy adapters: fresh (B = 0), from --init-adapter, or from the checkpoint being resumed.
  let resumeDir: string | null = null;
  let state: TrainerState | null = null;
  if (opts.resume) {
    resumeDir = resolveResume(opts.resume, outputDir);
    state = readTrainerState(resumeDir);
    checkResume(state, cfg, hashes, resumeDir);
  } else if (listCheckpoints(outputDir).length > 0) {
    // A fresh run would empty the old run's logs and interleave its checkpoints with ours: never lose them silently.
    throw new MismatchError(describe(`--output-dir ${outputDir}`, 'already holds checkpoints of a run', 'an empty or new run folder',
      'Continue it with --resume latest, or pass another --output-dir / --run-name.'));
  }
  const prep = opts.prepared ?? (await prepareRun(model, allRecords, dataFile, cfg, hashes, outputDir, opts));
  const { fullTable, keptIdx, records, plan, n, spe, maxSteps, warmup, stageEnds } = prep;
  const evalSteps = new Set<number>(opts.evalAtSteps ?? [0, ...stageEnds.keys(), maxSteps]);
  if (!opts.evalAtSteps && cfg.evalSteps > 0) for (let s = cfg.evalSteps; s <= maxSteps; s += cfg.evalSteps) evalSteps.add(s);

  const policy: Lora = resumeDir ? loadAdapter(resumeDir, model.cfg)
    : cfg.initAdapter ? loadAdapter(cfg.initAdapter, model.cfg) : createLora(model.cfg, loraConfigOf(cfg), cfg.seed);
  // The reference: base + the initial adapter frozen (as TRL with an SFT adapter), or the bare base with `none`.
  // Loaded from disk, never from the policy: on resume the policy has moved, the reference has not.
  const refLora: Lora | null = !refDir || refDir === 'none' ? null : loadAdapter(refDir, model.cfg);
  const vars = new Map(Object.entries(loraTensors(policy)));
  const opt = createAdamWState(vars);
  if (resumeDir && state) loadOptimizer(resumeDir, opt, state.global_step);
  const startStep = state?.global_step ?? 0;

  writeRunConfig(outputDir, cfg, { max_steps: maxSteps, steps_per_epoch: spe });
  resetRunLogs(outputDir, startStep);
  const refTable = cfg.refMode === 'cache' ? fullTable : null;
  const ref: RefProvider = (pairs, positions) => {
    if (refTable) return { chosen: Float32Array.from(positions, (p) => refTable.chosen[keptIdx[p]]), rejected: Float32Array.from(positions, (p) => refTable.rejected[keptIdx[p]]) };
    const l = batchLogps(model.cfg, model.weights, collatePairs(pairs, model.tokenizer.padId), refLora);
    return { chosen: l.slice(0, pairs.length), rejected: l.slice(pairs.length) };
  };
  const runEval = async (s: number) => {
    if (!opts.evaluate || !evalSteps.has(s)) return;
    const stage = s === 0 ? null : stageEnds.get(s) ?? null;
    const res = await opts.evaluate(policy, s);
    const line = { step: s, epoch: s / spe, stage, ...res };
    appendRunLines(outputDir, 'eval', [line]);
    log(`eval at step ${s}${stage !== null ? ` (end of stage ${stage})` : ''}: ${Object.entries(res).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(', ')}`);
  };
  log(`curriculum: ${cfg.curriculum}${usesDifficultyFor(cfg) ? ` by ${cfg.difficulty}` : ''}; stage ends at steps ${[...stageEnds.keys()].join(', ') || '-'}`);
  log(`train: ${n} pairs, ${spe} steps/epoch, ${maxSteps} steps (batch ${cfg.batchSize} x accum ${cfg.gradAccum}), LoRA r=${policy.config.r} alpha=${policy.config.alpha} on ${policy.config.targets.join(',')}, reference ${refLora ? 'base + ' + refDir : 'base'}`);
  if (startStep > 0) log(`resuming from ${resumeDir} at step ${startStep}`);

  let interrupted = false;
  const onSignal = (sig: string) => {
    if (interrupted) return;
    interrupted = true;
    log(`\n${sig}: finishing the current step, then saving a checkpoint`);
  };
  const onInt = () => onSignal('SIGINT');
  const onTerm = () => onSignal('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);

  let lastMetrics: MetricsLine | null = null;
  let lastSaved = startStep;
  const history: MetricsLine[] = state?.log_history ?? [];
  const bar = progress('train', maxSteps, 'steps');
  const t0 = Date.now();
  let tokens = 0;
  let step = startStep;
  const lossTerms = parseLossTerms(cfg.loss, cfg.lossWeights, cfg.labelSmoothing);
  const baseName = resolve(model.dir);
  const makeState = (): TrainerState => ({
    format: STATE_FORMAT,
    version: STATE_VERSION,
    global_step: step,
    epoch: step / spe,
    max_steps: maxSteps,
    steps_per_epoch: spe,
    position: { epoch: Math.floor(step / spe), step_in_epoch: step % spe, pairs_seen: Math.min(n, (step % spe) * cfg.batchSize * cfg.gradAccum) },
    order: { curriculum: cfg.curriculum, seed: cfg.seed, pairs: n, plan: planFingerprint(plan) },
    rng: { kind: 'derived', seed: cfg.seed },
    config: cfg,
    hashes,
    log_history: history,
  });
  try {
    if (step === 0) await runEval(0);
    while (step < maxSteps) {
      const micro: MicroBatch[] = stepPositions(step, n, cfg, spe, plan).map((pos) => ({ positions: pos, pairs: pos.map((p) => records[p]) }));
      const lr = learningRateAt(step, cfg.learningRate, cfg.lrScheduler as never, maxSteps, warmup);
      const { grads, stats } = stepGradients(model.cfg, model.weights, policy, micro, ref, { loss: lossTerms, beta: cfg.beta, labelSmoothing: cfg.labelSmoothing, discopopTau: cfg.discopopTau, gradientCheckpointing: cfg.gradientCheckpointing }, model.tokenizer.padId, stepRng(cfg.seed, step));
      const normT = adamwStep(vars, grads, opt, lr, cfg.maxGradNorm, { beta1: cfg.adamBeta1, beta2: cfg.adamBeta2, eps: cfg.adamEpsilon, weightDecay: cfg.weightDecay });
      tf.dispose([...grads.values()]);
      const gradNorm = normT.dataSync()[0];
      normT.dispose();
      step += 1;
      const r = readStep(stats, gradNorm, lr, step, step / spe);
      tokens += stats.tokens;
      disposeStats(stats);
      lastMetrics = r.line;
      if (step % cfg.loggingSteps === 0 || step === maxSteps) {
        history.push(r.line);
        appendRunLines(outputDir, 'metrics', [r.line]);
      }
      if (step <= spe) {
        const order = micro.flatMap((m) => m.positions);
        appendRunLines(outputDir, 'pairLosses', order.map((p, i) => ({ index: records[p].index, step, loss: r.pairLosses[i], margin: r.pairMargins[i] })));
      }
      const secs = (Date.now() - t0) / 1000;
      bar.tick(step - startStep, `step ${step} loss ${r.line.loss.toFixed(4)} margin ${r.line['rewards/margins'].toFixed(4)} ${(tokens / secs).toFixed(0)} tok/s`);
      // Evaluate before saving: a crash during the evaluation then repeats the step (deterministically) on resume.
      await runEval(step);
      // A step is synchronous: yield once so a SIGINT/SIGTERM that arrived during it is handled now (else only at a save).
      await new Promise<void>((r) => setImmediate(r));
      const stopNow = interrupted || (opts.stopAfterSteps !== undefined && step - startStep >= opts.stopAfterSteps);
      if ((cfg.saveSteps > 0 && step % cfg.saveSteps === 0) || step === maxSteps || stopNow) {
        await saveCheckpoint(outputDir, makeState(), policy, opt, baseName, cfg.saveTotalLimit);
        lastSaved = step;
      }
      if (stopNow) break;
    }
    bar.done();
    if (step === maxSteps) {
      await saveAdapter(outputDir, policy, baseName);
      log(`done: ${step} steps; adapter in ${outputDir}, metrics in ${runFile(outputDir, 'metrics')}`);
    } else {
      log(`stopped at step ${step} (${basename(checkpointDir(outputDir, lastSaved))} saved). Resume with: node train.js train <same flags> --output-dir ${outputDir} --resume latest`);
    }
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    disposeAdamWState(opt);
    disposeLora(policy);
    if (refLora) disposeLora(refLora);
  }
  return { outputDir, steps: step, interrupted: step < maxSteps, lastMetrics };
}


// The `sft` loop: the DPO loop's parts (train/: objectiveStep, AdamW, schedules, Logger, SignalGuard) around the SFT
// objective. Each epoch is a seeded shuffle (HF Trainer's RandomSampler); a step's examples and dropout are a pure
// function of (seed, step), so a resumed run repeats bytes. --full trains every weight as a Variable (AdamW decay
// on matrices only, as nanoGPT) and writes an HF model dir; LoRA trains adapters and writes a PEFT adapter.
import * as tf from '@tensorflow/tfjs';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { removeStaleTemps } from '../io/atomic.js';
import { disposeModel, openModel, type LoadedModel } from '../io/model-dir.js';
import { loadAdapter } from '../io/peft.js';
import { createLora, disposeLora, loraTensors, type Lora } from '../model/lora.js';
import { resetRunLogs, writeRunConfig } from '../run/files.js';
import { checkpointDir, defaultRunDir, runFile } from '../run/layout.js';
import { Logger, SignalGuard, type MetricsLine } from '../train/hooks.js';
import { adamwStep, createAdamWState, disposeAdamWState } from '../train/optimizer.js';
import { learningRateAt, warmupSteps } from '../train/schedule.js';
import { objectiveStep } from '../train/step.js';
import { InputError, InterruptedError, MismatchError, describe } from '../util/errors.js';
import { hashFile } from '../util/hash.js';
import { fmtTime } from '../util/progress.js';
import { Rng } from '../util/rng.js';
import { sftLoraTargets, type SftConfig } from './config.js';
import { checkSftResume, listSftCheckpoints, loadSftCheckpoint, readSftState, resolveSftResume, saveSftCheckpoint, SFT_STATE_FORMAT, SFT_STATE_VERSION, writeTrained, type SftHashes, type SftState, type Trained } from './checkpoint.js';
import { loadSftFile, type SftDataset, type SftExample } from './data.js';
import { sftObjective, type SftMicroBatch } from './objective.js';

export interface SftOptions {
  log: (line: string) => void;
  /** `latest`, a checkpoint folder or a run folder. */
  resume?: string | null;
  /** Stop (and save) after this many steps of this invocation, as an interruption would. For tests. */
  stopAfterSteps?: number;
}

export interface SftResult {
  outputDir: string;
  steps: number;
  interrupted: boolean;
  lastMetrics: MetricsLine | null;
}

/** The step budget: --max-steps, or epochs x steps per epoch (the last step of an epoch may be short). */
export function sftSteps(n: number, cfg: SftConfig): { spe: number; maxSteps: number } {
  const spe = Math.ceil(n / (cfg.batchSize * cfg.gradAccum));
  return { spe, maxSteps: cfg.maxSteps > 0 ? cfg.maxSteps : Math.ceil(spe * cfg.epochs) };
}

/** The examples of step `step`, as gradAccum micro-batches: epoch e's order is a shuffle seeded by (seed, e). */
export function sftMicroBatches(examples: readonly SftExample[], cfg: SftConfig, spe: number, step: number): SftMicroBatch[] {
  const epoch = Math.floor(step / spe);
  const order = new Rng((Math.imul(cfg.seed >>> 0, 0x9e3779b1) ^ Math.imul(epoch + 1, 0x85ebca6b)) >>> 0).shuffle(examples.map((_, i) => i));
  const per = cfg.batchSize * cfg.gradAccum;
  const at = (step % spe) * per;
  const picked = order.slice(at, at + per);
  const out: SftMicroBatch[] = [];
  for (let i = 0; i < picked.length; i += cfg.batchSize) out.push({ examples: picked.slice(i, i + cfg.batchSize).map((j) => examples[j]) });
  return out;
}

function stepRng(seed: number, step: number): Rng {
  return new Rng((Math.imul(seed >>> 0, 0x27d4eb2f) ^ Math.imul(step + 1, 0x165667b1)) >>> 0);
}

/** Every weight as a Variable, in place in model.weights (the loaded tensors are replaced, not copied). */
function weightsAsVariables(model: LoadedModel): Record<string, tf.Variable> {
  const vars: Record<string, tf.Variable> = {};
  for (const [k, t] of Object.entries(model.weights)) {
    vars[k] = tf.variable(t, true, `sft/${k}`);
    t.dispose();
    model.weights[k] = vars[k];
  }
  return vars;
}

/** No adapters: the forward runs the (trainable) base weights exactly. */
const NO_LORA = (): Lora => ({ config: { r: 1, alpha: 1, dropout: 0, targets: [], useRslora: false }, scale: 1, layers: new Map(), enabled: false });

function openTrained(model: LoadedModel, cfg: SftConfig, from: string | null): Trained {
  if (cfg.full) return { kind: 'full', vars: weightsAsVariables(model) };
  const lora = from ? loadAdapter(from, model.cfg)
    : createLora(model.cfg, { r: cfg.loraR, alpha: cfg.loraAlpha, dropout: cfg.loraDropout, targets: sftLoraTargets(cfg), useRslora: false }, cfg.seed);
  return { kind: 'lora', lora, vars: loraTensors(lora) };
}

export async function runSft(model: LoadedModel, data: SftDataset, dataFile: string, cfg: SftConfig, opts: SftOptions): Promise<SftResult> {
  const { log } = opts;
  const outputDir = cfg.outputDir ?? defaultRunDir(null);
  mkdirSync(outputDir, { recursive: true });
  for (const p of removeStaleTemps(outputDir)) log(`removed ${p}, left by an interrupted run`);
  const hashes: SftHashes = { model: model.modelHash, tokenizer: model.tokenizerHash, data: hashFile(dataFile) };
  const { spe, maxSteps } = sftSteps(data.examples.length, cfg);
  const warmup = warmupSteps(maxSteps, cfg.warmupSteps, cfg.warmupRatio);
  let from: { dir: string; state: SftState } | null = null;
  if (opts.resume) {
    const dir = resolveSftResume(opts.resume, outputDir);
    const state = readSftState(dir);
    checkSftResume(state, cfg, hashes, dir);
    from = { dir, state };
  } else if (listSftCheckpoints(outputDir).length > 0) {
    throw new MismatchError(describe(`--output-dir ${outputDir}`, 'already holds checkpoints of an SFT run', 'an empty or new run folder', 'Continue it with --resume latest, or pass another --output-dir.'));
  }
  const startStep = from?.state.global_step ?? 0;
  writeRunConfig(outputDir, cfg, { max_steps: maxSteps, steps_per_epoch: spe });
  resetRunLogs(outputDir, startStep);

  const trained = openTrained(model, cfg, from?.dir ?? null);
  const vars = new Map(Object.entries(trained.vars));
  const opt = createAdamWState(vars);
  if (from) loadSftCheckpoint(from.dir, trained, opt, startStep);
  const lora = trained.kind === 'lora' ? trained.lora : NO_LORA();
  // nanoGPT configure_optimizers: weight decay on tensors of 2+ dims (matrices, embeddings), none on norms and biases.
  const decay = new Set([...vars].filter(([, v]) => v.rank >= 2).map(([k]) => k));
  const adam = { beta1: cfg.adamBeta1, beta2: cfg.adamBeta2, eps: cfg.adamEpsilon, weightDecay: cfg.weightDecay, decay };
  const objective = sftObjective(model.cfg, model.weights, model.tokenizer.padId, { completionOnly: cfg.completionOnlyLoss, full: cfg.full, tokensSeen: from?.state.num_tokens ?? 0 });
  const history: MetricsLine[] = from?.state.log_history ?? [];
  let tokensSeen = from?.state.num_tokens ?? 0;
  // tokensBefore: a Logger that counts num_tokens itself continues the count on resume.
  const loggerOptions = { spe, maxSteps, startStep, loggingSteps: cfg.loggingSteps, history, log, tokensBefore: tokensSeen, itemIndex: (micro: readonly SftMicroBatch[]) => micro.flatMap((m) => m.examples.map((e) => e.index)) };
  const logger = new Logger<SftMicroBatch>(outputDir, objective, loggerOptions);
  // A Logger that reads step values back once per logging window must write them all before a checkpoint is saved.
  const flushLogs = async () => { await (logger as unknown as { flush?: () => Promise<void> }).flush?.(); };
  const signals = new SignalGuard(log);
  const state = (step: number): SftState => ({
    format: SFT_STATE_FORMAT, version: SFT_STATE_VERSION, global_step: step, epoch: step / spe, max_steps: maxSteps, steps_per_epoch: spe,
    num_tokens: tokensSeen, config: cfg, hashes, log_history: history,
  });
  const params = [...vars.values()].reduce((n, v) => n + v.size, 0);
  log(`sft: ${data.examples.length} examples, ${spe} steps/epoch, ${maxSteps} steps (batch ${cfg.batchSize} x accum ${cfg.gradAccum}), `
    + `${cfg.full ? 'full' : `LoRA r=${cfg.loraR} on ${sftLoraTargets(cfg).join(',')}`}: ${(params / 1e6).toFixed(3)}M trained parameters`);
  if (from) log(`resuming from ${from.dir} at step ${startStep}`);
  let step = startStep;
  let lastSaved = startStep;
  try {
    while (step < maxSteps) {
      const micro = sftMicroBatches(data.examples, cfg, spe, step);
      const lr = learningRateAt(step, cfg.learningRate, cfg.lrScheduler, maxSteps, warmup);
      const out = objectiveStep(objective, lora, micro, stepRng(cfg.seed, step), trained.vars);
      const gradNorm = adamwStep(vars, out.grads, opt, lr, cfg.maxGradNorm, adam);
      tf.dispose([...out.grads.values()]);
      step += 1;
      tokensSeen += out.tokens;
      await logger.step(step, lr, gradNorm, out, micro);
      const stop = (await signals.poll()) || (opts.stopAfterSteps !== undefined && step - startStep >= opts.stopAfterSteps);
      if ((cfg.saveSteps > 0 && step % cfg.saveSteps === 0) || step === maxSteps || stop) {
        await flushLogs();
        await saveSftCheckpoint(outputDir, state(step), model, trained, opt, cfg.saveTotalLimit);
        lastSaved = step;
      }
      if (stop) break;
    }
    logger.done();
    if (step === maxSteps) {
      await writeTrained(outputDir, model, trained);
      const m = logger.last ?? {};
      log(`done: ${step} steps in ${fmtTime(logger.elapsed())}; final loss ${(m.loss ?? NaN).toFixed(4)}, mean_token_accuracy ${(m.mean_token_accuracy ?? NaN).toFixed(4)}\n`
        + `  ${trained.kind === 'full' ? 'model (HF dir)' : 'adapter (PEFT)'}: ${outputDir}\n  checkpoint: ${checkpointDir(outputDir, lastSaved)}\n  metrics: ${runFile(outputDir, 'metrics')}`);
    } else {
      log(`stopped at step ${step} (checkpoint-${lastSaved} saved); --resume latest continues it`);
    }
  } finally {
    logger.done();
    signals.dispose();
    disposeAdamWState(opt);
    if (trained.kind === 'lora') disposeLora(trained.lora);
  }
  return { outputDir, steps: step, interrupted: step < maxSteps, lastMetrics: logger.last };
}

/** The `sft` command as a library call: backend and model, the data, the loop; a stop by signal is an InterruptedError. */
export async function sft(cfg: SftConfig, resume: string | null, log: (l: string) => void): Promise<SftResult> {
  if (!cfg.data) throw new InputError(describe('--data', 'missing', 'a prompt/completion, messages or HumanEval JSONL file'));
  const model = await openModel(cfg.backend, cfg.model, log);
  try {
    const data = loadSftFile(model.tokenizer, cfg.data, cfg.maxLength);
    if (data.dropped.length > 0) log(`sft data: dropped ${data.dropped.length} records (first: record ${data.dropped[0].index}: ${data.dropped[0].reason})`);
    if (data.truncated > 0) log(`sft data: ${data.truncated} records cut to --max-length ${cfg.maxLength}`);
    const res = await runSft(model, data, cfg.data, cfg, { log, resume });
    if (res.interrupted) throw new InterruptedError(`sft stopped at step ${res.steps}. Resume with:\n  node train.js sft --resume latest --output-dir ${resolve(res.outputDir)}`);
    return res;
  } finally {
    disposeModel(model);
  }
}


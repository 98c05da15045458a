// What happens around each optimizer step, one small class each: the logger (the one place step values are read back
// from the device; metrics.jsonl and TensorBoard as --report-to says), the evaluator (eval.jsonl), the checkpointer
// (checkpoint-N/ and the final adapter) and the signal guard (SIGINT/SIGTERM finish the step, then save). The loop calls
// them in that order.
import * as tf from '@tensorflow/tfjs';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { saveAdapter } from '../io/peft.js';
import type { Lora } from '../model/lora.js';
import { saveCheckpoint, type TrainerState } from '../run/checkpoint.js';
import { appendRunLines, readMetrics, saveMetrics } from '../run/files.js';
import { TENSORBOARD_DIR, runFile } from '../run/layout.js';
import { EventFileWriter } from '../run/tensorboard.js';
import { parseReportTo } from '../run/report-to.js';
import { guardPipes, onPipeClosed, pipeClosed } from '../util/pipe.js';
import { fmtTime, progress, type Progress } from '../util/progress.js';
import type { Objective } from './objective.js';
import type { AdamWState } from './optimizer.js';
import type { StepOutput } from './step.js';

export type MetricsLine = Record<string, number>;

/** HF's rewrite_logs (integration_utils.py): `eval_x` -> `eval/x`, everything else -> `train/x`; `step` is the event's. */
export function tensorboardTags(line: Record<string, number>, split: 'train' | 'eval' = 'train'): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(line)) {
    if (k === 'step' || k === 'timestamp' || typeof v !== 'number') continue;
    out[split === 'eval' ? `eval/${k.replace(/^eval_/, '')}` : k.startsWith('eval_') ? `eval/${k.slice(5)}` : `train/${k}`] = v;
  }
  return out;
}

/**
 * The logged line of a window of per-step lines: the mean of each metric, as HF Trainer logs the loss (tr_loss over the
 * steps since the last log) and TRL its `_metrics` lists (`sum(val) / len(val)` in DPOTrainer.log); the step-level keys
 * (step, epoch, learning_rate, grad_norm, num_tokens) are the last step's, as HF logs them at the logging step.
 */
export function windowMean(lines: readonly MetricsLine[]): MetricsLine {
  const last = lines[lines.length - 1];
  const out: MetricsLine = {};
  for (const k of Object.keys(last)) {
    out[k] = ['step', 'epoch', 'learning_rate', 'grad_norm', 'num_tokens'].includes(k) ? last[k] : lines.reduce((s, l) => s + (l[k] ?? NaN), 0) / lines.length;
  }
  return out;
}

/** A metrics line as HF Trainer prints it: a Python-style dict (`{'loss': 0.6931, ..., 'epoch': 0.5}`). */
export function formatLogLine(line: Record<string, number | string>): string {
  const v = (x: number | string) => (typeof x === 'string' ? `'${x}'` : Number.isInteger(x) ? String(x) : Math.abs(x) < 1e-3 && x !== 0 ? Number(x.toPrecision(5)).toExponential() : String(Number(x.toPrecision(5))));
  return `{${Object.entries(line).map(([k, x]) => `'${k}': ${v(x)}`).join(', ')}}`;
}

/**
 * Metrics: metrics.jsonl gets every step (the report draws it); every --logging-steps (and at the end) the line joins
 * trainer_state's log_history and is printed as HF Trainer does, with elapsed time and ETA; first-epoch per-item rows;
 * the TTY progress bar.
 */
export class Logger<M> {
  last: MetricsLine | null = null;
  private readonly bar: Progress;
  private readonly t0 = Date.now();
  private tokens = 0;
  private lossSum = 0;
  private steps = 0;
  /** Steps taken whose values are still on the device (read at the next logging step or flush). */
  private pending: { step: number; lr: number; gradNorm: tf.Scalar; values: StepOutput['values']; tokens: number; items: number[] | null }[] = [];
  /** Read lines of the current logging window (seeded on resume from metrics.jsonl, so the means match a straight run). */
  private window: MetricsLine[] = [];
  /** TRL's num_tokens: real tokens (prompt + completion, chosen and rejected) trained on since step 0. */
  private numTokens: number;
  private readonly jsonl: boolean;
  private tb: EventFileWriter | null = null;

  constructor(private readonly dir: string, private readonly objective: Objective<M>, private readonly o: {
    spe: number; maxSteps: number; startStep: number; loggingSteps: number;
    /** --report-to: metrics.jsonl (every step) and/or TensorBoard scalars (every --logging-steps, as HF's callback). */
    reportTo?: string;
    /** The data-file index of each item the step trained, in order (pair_losses.jsonl's `index`). */
    itemIndex: (micro: readonly M[]) => number[];
    /** Logged lines so far (trainer_state.json's log_history), appended to. */
    history: MetricsLine[];
    /** Where the printed metrics line goes. */
    log?: (l: string) => void;
    /** Tokens of the steps before startStep (a resumed run's num_tokens continues from it). */
    tokensBefore?: number;
  }) {
    this.numTokens = o.tokensBefore ?? 0;
    // Resuming inside a logging window: its earlier steps' lines, so the window mean covers all of them.
    const windowStart = Math.floor(o.startStep / o.loggingSteps) * o.loggingSteps;
    if (o.startStep > windowStart && existsSync(runFile(dir, 'metrics'))) {
      this.window = readMetrics(dir, []).filter((l) => l.step > windowStart && l.step <= o.startStep).map(({ timestamp: _t, ...l }) => l);
    }
    this.bar = progress('train', o.maxSteps - o.startStep, 'steps', process.stderr, { everyS: 0 }); // off a TTY the dict lines say it
    const targets = parseReportTo(o.reportTo ?? 'jsonl');
    this.jsonl = targets.has('jsonl');
    if (targets.has('tensorboard')) {
      this.tb = new EventFileWriter(join(dir, TENSORBOARD_DIR));
      if (o.startStep > 0) this.tb.sessionStart(o.startStep);
    }
  }

  /**
   * Takes a step's device values (and disposes them once read). Nothing is read back here except on a logging step
   * (every --logging-steps and the last) or when `flush` is set (a checkpoint or a stop follows): then every pending
   * step's values and grad norm are packed into one tensor and read with one `await data()`. metrics.jsonl still gets
   * one line per step (with a timestamp, Unix seconds); the logged line (printed, log_history, TensorBoard) holds the
   * window means since the last logged step, as HF Trainer averages the loss and TRL its metric lists on log().
   * Returns the logged line on a logging step, else null.
   */
  async step(step: number, lr: number, gradNorm: tf.Scalar, out: StepOutput, micro: readonly M[], flush = false): Promise<MetricsLine | null> {
    this.pending.push({ step, lr, gradNorm, values: out.values, tokens: out.tokens, items: step <= this.o.spe ? this.o.itemIndex(micro) : null });
    this.tokens += out.tokens;
    this.numTokens += out.tokens;
    const logging = step % this.o.loggingSteps === 0 || step === this.o.maxSteps;
    if (logging || flush) await this.readPending();
    const secs = (Date.now() - this.t0) / 1000;
    const seen = this.window[this.window.length - 1] ?? this.last;
    const shown = seen ? ' ' + ['loss', ...this.objective.progressKeys].map((k) => `${k} ${(seen[k] ?? NaN).toFixed(4)}`).join(' ') : '';
    this.bar.tick(step - this.o.startStep, `step ${step}${shown} ${(this.tokens / secs).toFixed(0)} tok/s`);
    if (!logging) return null;
    const line = windowMean(this.window);
    this.window = [];
    this.last = line;
    this.o.history.push(line);
    this.tb?.scalars(step, tensorboardTags(line));
    const eta = this.bar.eta();
    this.o.log?.(formatLogLine({ ...line, epoch: Number(line.epoch.toFixed(4)), elapsed: fmtTime(secs), eta: step === this.o.maxSteps ? '0s' : fmtTime(eta) }));
    return line;
  }

  /** The one read of the pending steps: pack, `await data()`, then each step's metrics.jsonl line and pair rows. */
  private async readPending(): Promise<void> {
    const pending = this.pending;
    this.pending = [];
    if (pending.length === 0) return;
    const keys = Object.keys(pending[0].values).sort();
    const packed = tf.tidy(() => tf.concat(pending.flatMap((p) => [...keys.map((k) => p.values[k]), tf.reshape(p.gradNorm, [1])])));
    let host: Float32Array;
    try {
      host = (await packed.data()) as Float32Array;
    } finally {
      packed.dispose();
      for (const p of pending) tf.dispose([p.gradNorm, ...Object.values(p.values)]);
    }
    let at = 0;
    const take = (n: number) => {
      const a = host.subarray(at, (at += n));
      return Object.assign(a, { dataSync: () => a });
    };
    for (const p of pending) {
      const values = Object.fromEntries(keys.map((k) => [k, take(p.values[k].size)]));
      const gradNorm = take(1)[0];
      const r = this.objective.readout(values);
      const line: MetricsLine = { ...r.metrics, num_tokens: this.numTokens - pending.slice(pending.indexOf(p) + 1).reduce((n, q) => n + q.tokens, 0),
        grad_norm: gradNorm, learning_rate: p.lr, epoch: p.step / this.o.spe, step: p.step };
      this.lossSum += line.loss;
      this.steps += 1;
      this.window.push(line);
      if (this.jsonl) appendRunLines(this.dir, 'metrics', [{ ...line, timestamp: Date.now() / 1000 }]);
      if (p.items) appendRunLines(this.dir, 'pairLosses', p.items.map((index, i) => ({ index, step: p.step, ...r.items[i] })));
    }
  }

  /** Reads the pending steps now (before a checkpoint or a stop), so metrics.jsonl is complete up to the saved step. */
  async flush(): Promise<void> {
    await this.readPending();
  }

  /** Seconds since the logger started (this invocation's training time). */
  elapsed(): number {
    return (Date.now() - this.t0) / 1000;
  }

  /** An evaluation's values as TensorBoard `eval/<key>` scalars at `step`. */
  evalScalars(step: number, res: Record<string, number>): void {
    this.tb?.scalars(step, tensorboardTags(res, 'eval'));
  }

  /**
   * train_results.json + all_results.json at the end of a run, as HF Trainer's train() metrics and save_metrics:
   * speed_metrics("train", ...) (runtime rounded to 4 places, rates to 3) + train_loss + epoch. Runtime, samples, steps
   * and the loss mean are this invocation's (HF counts a resumed run's samples over the whole budget).
   */
  saveTrainResults(pairsPerStep: number): Record<string, number> {
    const secs = this.elapsed();
    const r = (x: number, d: number) => Math.round(x * 10 ** d) / 10 ** d;
    const m: Record<string, number> = { train_runtime: r(secs, 4) };
    if (secs > 0) {
      m.train_samples_per_second = r((this.steps * pairsPerStep) / secs, 3);
      m.train_steps_per_second = r(this.steps / secs, 3);
    }
    m.train_loss = this.steps > 0 ? this.lossSum / this.steps : NaN;
    m.epoch = this.o.maxSteps / this.o.spe;
    saveMetrics(this.dir, 'train', m);
    return m;
  }

  done(): void {
    // Steps an error left unread: their tensors are freed, not read.
    for (const p of this.pending) tf.dispose([p.gradNorm, ...Object.values(p.values)]);
    this.pending = [];
    this.bar.done();
    this.tb?.close();
    this.tb = null;
  }
}

export type Evaluate = (lora: Lora, step: number) => Promise<Record<string, number>>;

/** Evaluates the policy at the chosen steps (step 0, stage ends, every --eval-steps, the end) into eval.jsonl. */
export class Evaluator {
  constructor(private readonly dir: string, private readonly evaluate: Evaluate | undefined, private readonly steps: Set<number>,
    private readonly stageEnds: Map<number, number>, private readonly spe: number, private readonly log: (l: string) => void,
    /** Also told each result (the logger's TensorBoard `eval/` scalars). */
    private readonly onResult?: (step: number, res: Record<string, number>) => void) {}

  async at(step: number, lora: Lora): Promise<void> {
    if (!this.evaluate || !this.steps.has(step)) return;
    const stage = step === 0 ? null : this.stageEnds.get(step) ?? null;
    const res = await this.evaluate(lora, step);
    appendRunLines(this.dir, 'eval', [{ step, epoch: step / this.spe, stage, ...res }]);
    this.onResult?.(step, res);
    this.log(`eval at step ${step}${stage !== null ? ` (end of stage ${stage})` : ''}: ${Object.entries(res).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(', ')}`);
  }
}

/** Saves checkpoint-N every --save-steps, at the end and when stopping; the final adapter at the run root when done. */
export class Checkpointer {
  lastSaved: number;

  constructor(private readonly dir: string, private readonly o: {
    saveSteps: number; maxSteps: number; keep: number | null; baseModel: string; startStep: number;
    state: (step: number) => TrainerState; lora: Lora; opt: AdamWState;
  }) {
    this.lastSaved = o.startStep;
  }

  /** True when after(step, stopping) saves a checkpoint. */
  willSave(step: number, stopping: boolean): boolean {
    return (this.o.saveSteps > 0 && step % this.o.saveSteps === 0) || step === this.o.maxSteps || stopping;
  }

  async after(step: number, stopping: boolean): Promise<void> {
    if (this.willSave(step, stopping)) {
      await saveCheckpoint(this.dir, this.o.state(step), this.o.lora, this.o.opt, this.o.baseModel, this.o.keep);
      this.lastSaved = step;
    }
  }

  /** The PEFT adapter at the top of the run folder: what `eval --adapter` and `merge` take. */
  async final(): Promise<void> {
    await saveAdapter(this.dir, this.o.lora, this.o.baseModel);
  }
}

/**
 * SIGINT / SIGTERM during a run: the step in progress finishes, a checkpoint is saved, the loop ends. A second signal
 * quits at once (exit 130): a checkpoint being written is a temp folder renamed in one synchronous step (io/atomic.ts),
 * so it is whole or absent, and the next run removes the temp. A closed stdout/stderr (EPIPE, `| head`) stops like a
 * first signal.
 */
export class SignalGuard {
  interrupted = false;
  private readonly onInt = () => this.on('SIGINT');
  private readonly onTerm = () => this.on('SIGTERM');
  private readonly offPipe: () => void;

  constructor(private readonly log: (l: string) => void, private readonly quit: (code: number) => void = (c) => process.exit(c)) {
    process.on('SIGINT', this.onInt);
    process.on('SIGTERM', this.onTerm);
    guardPipes();
    this.offPipe = onPipeClosed(() => this.on('EPIPE'));
    if (pipeClosed()) this.on('EPIPE');
  }

  private on(sig: string): void {
    if (this.interrupted) {
      if (sig === 'EPIPE') return;
      this.log(`\n${sig} again: quitting now (the last saved checkpoint is intact)`);
      this.quit(130);
      return;
    }
    this.interrupted = true;
    this.log(`\n${sig}: finishing the current step, then saving a checkpoint (${sig === 'EPIPE' ? 'output closed' : 'press Ctrl-C again to quit now'})`);
  }

  /** A step is synchronous: yield once so a signal that arrived during it is handled now (else only at a save). */
  async poll(): Promise<boolean> {
    await new Promise<void>((r) => setImmediate(r));
    return this.interrupted;
  }

  dispose(): void {
    process.off('SIGINT', this.onInt);
    process.off('SIGTERM', this.onTerm);
    this.offPipe();
  }
}

// What happens around each optimizer step, one small class each: the logger (the one place step values are read back
// from the device; metrics.jsonl and TensorBoard as --report-to says), the evaluator (eval.jsonl), the checkpointer
// (checkpoint-N/ and the final adapter) and the signal guard (SIGINT/SIGTERM finish the step, then save). The loop calls
// them in that order.
import * as tf from '@tensorflow/tfjs';
import { join } from 'node:path';
import { saveAdapter } from '../io/peft.js';
import type { Lora } from '../model/lora.js';
import { saveCheckpoint, type TrainerState } from '../run/checkpoint.js';
import { appendRunLines, saveMetrics } from '../run/files.js';
import { TENSORBOARD_DIR } from '../run/layout.js';
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
  }) {
    this.bar = progress('train', o.maxSteps - o.startStep, 'steps', process.stderr, { everyS: 0 }); // off a TTY the dict lines say it
    const targets = parseReportTo(o.reportTo ?? 'jsonl');
    this.jsonl = targets.has('jsonl');
    if (targets.has('tensorboard')) {
      this.tb = new EventFileWriter(join(dir, TENSORBOARD_DIR));
      if (o.startStep > 0) this.tb.sessionStart(o.startStep);
    }
  }

  /** Reads the step back (and disposes what it read), writes its lines; `step` is the 1-based step just taken. */
  step(step: number, lr: number, gradNorm: tf.Scalar, out: StepOutput, micro: readonly M[]): MetricsLine {
    const r = this.objective.readout(out.values);
    const line: MetricsLine = { ...r.metrics, grad_norm: gradNorm.dataSync()[0], learning_rate: lr, epoch: step / this.o.spe, step };
    tf.dispose([gradNorm, ...Object.values(out.values)]);
    this.tokens += out.tokens;
    this.lossSum += line.loss;
    this.steps += 1;
    this.last = line;
    if (this.jsonl) appendRunLines(this.dir, 'metrics', [line]);
    const secs = (Date.now() - this.t0) / 1000;
    const shown = ['loss', ...this.objective.progressKeys].map((k) => `${k} ${(line[k] ?? NaN).toFixed(4)}`).join(' ');
    this.bar.tick(step - this.o.startStep, `step ${step} ${shown} ${(this.tokens / secs).toFixed(0)} tok/s`);
    if (step % this.o.loggingSteps === 0 || step === this.o.maxSteps) {
      this.o.history.push(line);
      this.tb?.scalars(step, tensorboardTags(line));
      const eta = this.bar.eta();
      this.o.log?.(formatLogLine({ ...line, epoch: Number(line.epoch.toFixed(4)), elapsed: fmtTime(secs), eta: step === this.o.maxSteps ? '0s' : fmtTime(eta) }));
    }
    if (step <= this.o.spe) appendRunLines(this.dir, 'pairLosses', this.o.itemIndex(micro).map((index, i) => ({ index, step, ...r.items[i] })));
    return line;
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

  async after(step: number, stopping: boolean): Promise<void> {
    if ((this.o.saveSteps > 0 && step % this.o.saveSteps === 0) || step === this.o.maxSteps || stopping) {
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

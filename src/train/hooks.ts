// What happens around each optimizer step, one small class each: the logger (the one place step values are read back
// from the device), the evaluator (eval.jsonl), the checkpointer (checkpoint-N/ and the final adapter) and the signal
// guard (SIGINT/SIGTERM finish the step, then save). The loop calls them in that order.
import * as tf from '@tensorflow/tfjs';
import { saveAdapter } from '../io/peft.js';
import type { Lora } from '../model/lora.js';
import { saveCheckpoint, type TrainerState } from '../run/checkpoint.js';
import { appendRunLines } from '../run/files.js';
import { guardPipes, onPipeClosed, pipeClosed } from '../util/pipe.js';
import { fmtTime, progress, type Progress } from '../util/progress.js';
import type { Objective } from './objective.js';
import type { AdamWState } from './optimizer.js';
import type { StepOutput } from './step.js';

export type MetricsLine = Record<string, number>;

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

  constructor(private readonly dir: string, private readonly objective: Objective<M>, private readonly o: {
    spe: number; maxSteps: number; startStep: number; loggingSteps: number;
    /** The data-file index of each item the step trained, in order (pair_losses.jsonl's `index`). */
    itemIndex: (micro: readonly M[]) => number[];
    /** Logged lines so far (trainer_state.json's log_history), appended to. */
    history: MetricsLine[];
    /** Where the printed metrics line goes. */
    log?: (l: string) => void;
  }) {
    this.bar = progress('train', o.maxSteps - o.startStep, 'steps', process.stderr, { everyS: 0 }); // off a TTY the dict lines say it
  }

  /** Reads the step back (and disposes what it read), writes its lines; `step` is the 1-based step just taken. */
  step(step: number, lr: number, gradNorm: tf.Scalar, out: StepOutput, micro: readonly M[]): MetricsLine {
    const r = this.objective.readout(out.values);
    const line: MetricsLine = { ...r.metrics, grad_norm: gradNorm.dataSync()[0], learning_rate: lr, epoch: step / this.o.spe, step };
    tf.dispose([gradNorm, ...Object.values(out.values)]);
    this.tokens += out.tokens;
    this.last = line;
    appendRunLines(this.dir, 'metrics', [line]);
    const secs = (Date.now() - this.t0) / 1000;
    const shown = ['loss', ...this.objective.progressKeys].map((k) => `${k} ${(line[k] ?? NaN).toFixed(4)}`).join(' ');
    this.bar.tick(step - this.o.startStep, `step ${step} ${shown} ${(this.tokens / secs).toFixed(0)} tok/s`);
    if (step % this.o.loggingSteps === 0 || step === this.o.maxSteps) {
      this.o.history.push(line);
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

  done(): void {
    this.bar.done();
  }
}

export type Evaluate = (lora: Lora, step: number) => Promise<Record<string, number>>;

/** Evaluates the policy at the chosen steps (step 0, stage ends, every --eval-steps, the end) into eval.jsonl. */
export class Evaluator {
  constructor(private readonly dir: string, private readonly evaluate: Evaluate | undefined, private readonly steps: Set<number>,
    private readonly stageEnds: Map<number, number>, private readonly spe: number, private readonly log: (l: string) => void) {}

  async at(step: number, lora: Lora): Promise<void> {
    if (!this.evaluate || !this.steps.has(step)) return;
    const stage = step === 0 ? null : this.stageEnds.get(step) ?? null;
    const res = await this.evaluate(lora, step);
    appendRunLines(this.dir, 'eval', [{ step, epoch: step / this.spe, stage, ...res }]);
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

// Every file name in a run folder and an experiment folder, and where checkpoints go: the only place they are spelled.
// The PEFT adapter's two file names belong to io/peft.ts (PEFT's contract) and are re-exported here for the layout.
//
//   <run>/run_config.json  metrics.jsonl  pair_losses.jsonl  eval.jsonl  difficulty.json  ref_logps.json
//   <run>/adapter_config.json  adapter_model.safetensors  README.md  (the final adapter, when the run finished)
//   <run>/train_results.json  all_results.json                     (Trainer.save_metrics, when the run finished)
//   <run>/runs/events.out.tfevents.*                               (--report-to tensorboard)
//   <run>/checkpoint-<step>/  adapter_config.json  adapter_model.safetensors  README.md  optimizer.safetensors
//                             trainer_state.json (transformers' TrainerState)  resume_state.json (ours: order, hashes, config)
//   <run>/report.html + figures;  <experiment>/experiment.json  eval.jsonl  <arm>/ (a run folder per arm)
//   <out>.progress.jsonl beside a `pairs` output, <out>.partial.jsonl beside an `eval` one: the resumable jobs' sidecars
import { join } from 'node:path';
import { ADAPTER_CARD, ADAPTER_CONFIG, ADAPTER_WEIGHTS } from '../io/peft.js';

export { ADAPTER_CARD, ADAPTER_CONFIG, ADAPTER_WEIGHTS };

/** Files at the top of a run folder. */
export const RUN_FILES = {
  /** The resolved config, plus max_steps and steps_per_epoch. */
  config: 'run_config.json',
  /** One TRL-named metrics line per step. */
  metrics: 'metrics.jsonl',
  /** First-epoch loss and margin of every pair. */
  pairLosses: 'pair_losses.jsonl',
  /** pass@k at each evaluation. */
  eval: 'eval.jsonl',
  /** The curriculum's difficulty of every pair. */
  difficulty: 'difficulty.json',
  /** The reference log-prob cache (dpo/ref-table.ts). */
  refLogps: 'ref_logps.json',
  /** A `score` output kept in the run folder (the default pipeline writes one). */
  scores: 'scores.jsonl',
  /** The experiment manifest (experiment folders only). */
  experiment: 'experiment.json',
  report: 'report.html',
  /** Trainer.save_metrics("train", ...): train_runtime, train_samples_per_second, ..., train_loss, epoch. */
  trainResults: 'train_results.json',
  /** Trainer.save_metrics's combined file: all_results.json updated with each split's metrics. */
  allResults: 'all_results.json',
} as const;

/** TensorBoard event files (--report-to tensorboard) go under here, as HF's default logging_dir `output_dir/runs/`. */
export const TENSORBOARD_DIR = 'runs';

export type RunFile = keyof typeof RUN_FILES;

/** The report's figures, beside report.html. */
export const FIGURE_FILES = {
  histogram: 'difficulty_histogram.svg',
  scatter: 'pair_loss_vs_difficulty.svg',
  curves: 'training_curves.svg',
  pass: 'pass_at_1.svg',
} as const;

/** Files inside checkpoint-<step>/ besides the PEFT adapter. */
export const CHECKPOINT_FILES = {
  optimizer: 'optimizer.safetensors',
  /** transformers' TrainerState (TrainerState.load_from_json reads it): only its fields. */
  state: 'trainer_state.json',
  /** This trainer's resume state (format, version, position, order, seeds, hashes, config). */
  resume: 'resume_state.json',
} as const;

/** Path of a run-folder file. */
export function runFile(dir: string, f: RunFile): string {
  return join(dir, RUN_FILES[f]);
}

export function checkpointDir(outputDir: string, step: number): string {
  return join(outputDir, `checkpoint-${step}`);
}

/** The step of a checkpoint folder name (`checkpoint-12` -> 12), or null for any other name. */
export function checkpointStep(name: string): number | null {
  const m = /^checkpoint-(\d+)$/.exec(name);
  return m ? Number(m[1]) : null;
}

/** The sidecar of a `pairs` output that records finished tasks. */
export function progressPath(out: string): string {
  return `${out}.progress.jsonl`;
}

/** The sidecar of an `eval` results file that records judged samples until the results are written. */
export function partialPath(out: string): string {
  return `${out}.partial.jsonl`;
}

/** A run folder under checkpoints/ when none is given: the run name, or a timestamp. */
export function defaultRunDir(runName: string | null, now = new Date()): string {
  return join('checkpoints', runName ?? now.toISOString().replace(/[:.]/g, '-').replace('T', '_').slice(0, 19));
}

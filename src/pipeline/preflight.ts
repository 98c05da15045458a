// Checks every input and output path of a command before any work starts (before the model loads, before the
// sandbox opens): a late failure after minutes of generation or training is the thing this file exists to prevent.
import type { RunConfig } from '../config/run.js';
import { readPairs } from '../data/pairs.js';
import { loadTasks, type TaskFormat } from '../eval/tasks.js';
import { resolveResume } from '../run/checkpoint.js';
import { InputError, describe } from '../util/errors.js';
import { checkInputDir, checkInputFile, checkInputSource, checkOutputDir } from '../io/paths.js';

/** Tasks (a file, a datasets folder or a cached Hub id), parsed whole: a wrong format fails here, not after training. */
export function checkTasksFile(flag: string, file: string, format?: TaskFormat | null, split?: string | null): void {
  checkInputSource(flag, file, 'a HumanEval, MBPP or stdio tasks file, a datasets folder or a cached Hub dataset id');
  loadTasks(file, format ?? undefined, split ?? undefined);
}

/**
 * `train` / `experiment` / the default run: the model folder, the data file read through to its last line, the tasks,
 * scores and adapter paths, `--output-dir`, and `--resume` (resolved to a checkpoint now).
 */
export function checkRunPaths(cfg: RunConfig, resume: string | null, outputDir: string | null = cfg.outputDir): void {
  if (cfg.model) checkInputDir('--model', cfg.model, 'a Hugging Face model directory');
  if (!cfg.data) throw new InputError(describe('--data', 'missing', 'a pairs JSONL file'));
  checkInputSource('--data', cfg.data, 'a pairs file (JSONL, JSON, Parquet), a datasets folder or a cached Hub dataset id');
  readPairs(cfg.data, cfg.split ?? undefined); // read through to the last row; an uncached Hub id says where to put it
  if (cfg.evalTasks) checkTasksFile('--eval-tasks', cfg.evalTasks, cfg.evalFormat, cfg.evalSplit);
  if (cfg.scores) checkInputFile('--scores', cfg.scores, 'a scores JSONL file written by `score`');
  if (cfg.initAdapter) checkInputDir('--init-adapter', cfg.initAdapter, 'a PEFT adapter directory');
  if (cfg.refAdapter && cfg.refAdapter !== 'none') checkInputDir('--ref-adapter', cfg.refAdapter, 'a PEFT adapter directory (or none: the base model)');
  if (outputDir) checkOutputDir('--output-dir', outputDir);
  if (resume) {
    if (resume === 'latest' && !outputDir) throw new InputError(describe('--resume latest', 'no --output-dir', 'the run folder to resume', 'Pass --output-dir of the run.'));
    resolveResume(resume, outputDir ?? '');
  }
}

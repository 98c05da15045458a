// An experiment: each curriculum arm trained from the same initial adapter, seed and step budget, every arm evaluated at
// the same steps (the union of all arms' stage ends), experiment.json and a report written; resumable arm by arm.
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { RunConfig } from '../config/run.js';
import { pairLengths, shellWord } from '../config/run.js';
import { CURRICULA, type CurriculumName } from '../curriculum/order.js';
import { loadPairsFile } from '../data/load.js';
import { openRunServices } from '../eval/stage.js';
import { readJsonObject } from '../io/json.js';
import { disposeModel, openModel } from '../io/model-dir.js';
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

export function parseArms(spec: string): CurriculumName[] {
  const arms = spec.split(',').map((a) => a.trim()).filter(Boolean);
  for (const a of arms) if (!(CURRICULA as readonly string[]).includes(a)) throw new InputError(describe('--arms', JSON.stringify(a), `a list from ${CURRICULA.join(', ')}`));
  if (arms.length === 0 || new Set(arms).size !== arms.length) throw new InputError(describe('--arms', JSON.stringify(spec), 'distinct curricula, e.g. stages,shuffle'));
  return arms as CurriculumName[];
}

/** The command that continues an experiment: the rest comes from its experiment.json (storedExperiment). */
export function experimentResumeCommand(expDir: string): string {
  return `node train.js experiment --resume latest --output-dir ${shellWord(resolve(expDir))}`;
}

/**
 * What `experiment --resume` continues: experiment.json's config and arms. `latest` needs the experiment folder
 * (--output-dir, or --run-name under checkpoints/); any other value is that folder. Flags given with it apply over it.
 */
export function storedExperiment(resume: string, outputDir: string | null): { base: { config: Record<string, unknown>; source: string }; arms: string } {
  if (resume === 'latest' && outputDir === null) {
    throw new InputError(describe('--resume latest', 'no experiment folder given', '--output-dir DIR (or --run-name NAME)', 'Or pass the experiment folder itself: --resume DIR.'));
  }
  const dir = resolve(resume === 'latest' ? outputDir! : resume);
  const file = runFile(dir, 'experiment');
  if (!existsSync(file)) {
    throw new InputError(describe(`--resume ${resume}`, `${dir} has no ${basename(file)}`, 'an experiment folder (written by `experiment`)',
      'A single run resumes with `node train.js train --resume`.'));
  }
  const config = readJsonObject(file, 'an experiment.json written by `experiment`', InputError).config;
  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new InputError(describe(`${file}: "config"`, 'missing', 'the settings the experiment ran with'));
  const arms = readExperimentArms(dir).map((a) => a.name).join(',');
  // The experiment folder is where experiment.json is, wherever the experiment was started from.
  return { base: { config: { ...(config as Record<string, unknown>), outputDir: dir }, source: file }, arms };
}

/** Trains and evaluates every arm (resuming arm by arm), writes the manifest and the report; returns the experiment folder. */
export async function runExperiment(base: RunConfig, armsSpec: string, log: (l: string) => void): Promise<string> {
  const arms = parseArms(armsSpec);
  if (!base.evalTasks) throw new InputError(describe('--eval-tasks', 'missing', 'a tasks file to evaluate each arm on'));
  const expDir = base.outputDir ?? defaultRunDir(base.runName ?? `experiment-${new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)}`);
  guardPipes(); // `| head` closing the pipe stops the arm after a save instead of crashing it (util/pipe.ts)
  checkRunPaths(base, null, expDir);
  mkdirSync(expDir, { recursive: true });
  log(`experiment: arms ${arms.join(', ')} in ${expDir}`);
  const model = await openModel(base.backend, base.model, log);
  let services: Awaited<ReturnType<typeof openRunServices>> | null = null;
  try {
    services = await openRunServices(model, base, log);
    const { records, data } = loadPairsFile(base.data, model.tokenizer, pairLengths(base), log);
    const hashes = runHashes(model, base.data!, base);
    // Plan every arm first: the step budget must agree, and all arms are evaluated at the union of their stage ends.
    const plans: { arm: string; cfg: RunConfig; prep: RunPrep }[] = [];
    for (const arm of arms) {
      const cfg: RunConfig = { ...base, curriculum: arm, outputDir: join(expDir, arm), runName: arm };
      mkdirSync(cfg.outputDir!, { recursive: true });
      // The reference pass does not depend on the order: the first arm's cache serves the others.
      const first = plans[0]?.cfg.outputDir;
      const [from, to] = [first && runFile(first, 'refLogps'), runFile(cfg.outputDir!, 'refLogps')];
      if (from && existsSync(from) && !existsSync(to)) copyFileSync(from, to);
      const prep = await prepareRun(model, data.pairs, base.data!, cfg, hashes, cfg.outputDir!, { log, sources: records, pythonRunner: services.pool ?? undefined });
      plans.push({ arm, cfg, prep });
    }
    const maxSteps = plans[0].prep.maxSteps;
    const evalSteps = [...new Set([0, maxSteps, ...plans.flatMap((p) => [...p.prep.stageEnds.keys()])])].sort((a, b) => a - b);
    log(`experiment: ${maxSteps} steps per arm; evaluations at steps ${shortList(evalSteps)}`);
    const status = (p: (typeof plans)[number]): ExperimentArm => ({ name: p.arm, run_dir: p.arm, status: existsSync(checkpointDir(p.cfg.outputDir!, maxSteps)) ? 'done' : 'pending' });
    const writeManifest = () => writeExperiment(expDir, { arms: plans.map(status), eval_steps: evalSteps, max_steps: maxSteps, config: base });
    writeManifest();
    for (const p of plans) {
      if (status(p).status === 'done') {
        log(`arm ${p.arm}: already done, skipping`);
        continue;
      }
      const resume = listCheckpoints(p.cfg.outputDir!).length > 0 ? 'latest' : null;
      log(`arm ${p.arm}: ${resume ? 'resuming' : 'training'}`);
      const res = await runTraining(model, data.pairs, base.data!, p.cfg, {
        log, sources: records, pythonRunner: services.pool ?? undefined, evaluate: services.evaluate, evalAtSteps: evalSteps, prepared: p.prep, resume,
      });
      writeManifest();
      if (res.interrupted) throw new InterruptedError(`arm ${p.arm} stopped at step ${res.steps}. Resume with:\n  ${experimentResumeCommand(expDir)}`);
    }
  } finally {
    // The sandbox pool's workers keep Node alive: every way out closes it.
    await services?.close();
    disposeModel(model);
  }
  await runReport(expDir, (l) => console.log(l), log);
  return expDir;
}


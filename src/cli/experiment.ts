// `experiment`: trains each curriculum arm from the same initial adapter, seed and step budget, evaluates every
// arm at the same steps (the union of all arms' stage ends), writes experiment.json and a report; resumable by arm.
import type { CommandModule } from 'yargs';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { resolveRunConfig, RUN_SCHEMA, PRESETS, type RunConfig } from '../config/run.js';
import { yargsOptions } from '../config/schema.js';
import { CURRICULA } from '../curriculum/order.js';
import { writeFileAtomic } from '../io/atomic.js';
import { disposeModel } from '../io/model-dir.js';
import { defaultOutputDir, runTraining } from '../train/loop.js';
import { prepareRun, type RunPrep } from '../train/prepare.js';
import { listCheckpoints, runHashes } from '../run/checkpoint.js';
import { checkpointDir, runFile } from '../run/layout.js';
import { writeExperiment, type ExperimentArm } from '../run/files.js';
import { InputError, InterruptedError, describe } from '../util/errors.js';
import { log, setup, loadPairs } from './common.js';
import { openRunServices } from './stage-eval.js';
import { runReport } from './report.js';

export function parseArms(spec: string): string[] {
  const arms = spec.split(',').map((a) => a.trim()).filter(Boolean);
  for (const a of arms) if (!(CURRICULA as readonly string[]).includes(a)) throw new InputError(describe('--arms', JSON.stringify(a), `a list from ${CURRICULA.join(', ')}`));
  if (arms.length === 0 || new Set(arms).size !== arms.length) throw new InputError(describe('--arms', JSON.stringify(spec), 'distinct curricula, e.g. stages,shuffle'));
  return arms;
}

export async function runExperiment(argv: Record<string, unknown>): Promise<string> {
  const base = resolveRunConfig(argv);
  const arms = parseArms((argv.arms as string | undefined) ?? 'stages,shuffle');
  if (!base.evalTasks) throw new InputError(describe('--eval-tasks', 'missing', 'a tasks file to evaluate each arm on'));
  const expDir = defaultOutputDir({ ...base, runName: base.runName ?? `experiment-${new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)}` });
  mkdirSync(expDir, { recursive: true });
  log(`experiment: arms ${arms.join(', ')} in ${expDir}`);
  const model = await setup(base.backend as never, base.model);
  const services = await openRunServices(model, base, log);
  try {
    const { records, data } = loadPairs(base.data, model, base.maxLength, base.maxPromptLength);
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
    log(`experiment: ${maxSteps} steps per arm; evaluations at steps ${evalSteps.join(', ')}`);
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
      if (res.interrupted) throw new InterruptedError(`arm ${p.arm} stopped at step ${res.steps}; rerun the same command with --output-dir ${expDir} to resume arm by arm`);
    }
  } finally {
    await services.close();
    disposeModel(model);
  }
  await runReport({ dir: expDir });
  return expDir;
}

export const experimentCommand: CommandModule<object, Record<string, unknown>> = {
  command: 'experiment',
  describe: 'train several curriculum arms with the same seed and budget, evaluate them at the same steps, report',
  builder: (y) => y.options({
    ...yargsOptions(RUN_SCHEMA),
    arms: { type: 'string', default: 'stages,shuffle', describe: `comma list of curricula (${CURRICULA.join(', ')})` },
    config: { type: 'string', describe: 'JSON file of settings (applied before flags)' },
    preset: { type: 'string', choices: Object.keys(PRESETS), describe: 'named settings (applied before --config)' },
  }),
  handler: async (argv) => {
    await runExperiment(argv);
  },
};

// `report RUN_OR_EXPERIMENT_DIR`: writes report.html and SVG figures into the folder, then prints where they
// are and the final-metrics and pass@1 tables (report/run.ts).
import type { CommandModule } from 'yargs';
import { runReport } from '../report/run.js';
import { log } from './common.js';

export const reportCommand: CommandModule<object, { dir: string }> = {
  command: 'report <dir>',
  describe: 'report.html + SVG figures (difficulty, per-pair loss, training curves, pass@1 per stage) for a run or experiment folder',
  builder: (y) => y.positional('dir', { type: 'string', demandOption: true, describe: 'a run folder (metrics.jsonl) or an experiment folder (experiment.json)' }) as never,
  handler: (argv) => runReport(argv.dir, (l) => console.log(l), log),
};

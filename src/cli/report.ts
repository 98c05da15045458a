// `report RUN_OR_EXPERIMENT_DIR`: writes report.html and SVG figures into the folder, then prints where they
// are and the final-metrics and pass@1 tables. The work is in report/report.ts.
import type { CommandModule } from 'yargs';
import { formatPassTable, formatSummaryTable } from '../report/summary.js';
import { log } from './common.js';

export interface ReportArgs {
  dir: string;
}

/** Writes the report and prints its tables; `print` is stdout, `note` is stderr (for tests, as eval.ts does). */
export async function runReport(args: ReportArgs, print: (l: string) => void = (l) => console.log(l), note: (l: string) => void = log): Promise<void> {
  // Loaded here, not at start-up: vega costs ~0.2 s to import and only this command needs it.
  const { writeReport } = await import('../report/report.js');
  const r = await writeReport(args.dir);
  for (const n of r.notes) note(`note: ${n}`);
  for (const f of r.figures) note(f.file ? `figure: ${f.file}` : `figure skipped (${f.title}): ${f.skipped}`);
  print(formatSummaryTable(r.summaries));
  const pass = formatPassTable(r.pass);
  if (pass) print('\n' + pass);
  print(`\nwrote ${r.html}`);
}

export const reportCommand: CommandModule<object, ReportArgs> = {
  command: 'report <dir>',
  describe: 'report.html + SVG figures (difficulty, per-pair loss, training curves, pass@1 per stage) for a run or experiment folder',
  builder: (y) => y.positional('dir', { type: 'string', demandOption: true, describe: 'a run folder (metrics.jsonl) or an experiment folder (experiment.json)' }) as never,
  handler: async (argv) => {
    await runReport({ dir: argv.dir });
  },
};

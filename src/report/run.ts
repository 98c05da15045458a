// The `report` command as a library call: writes report.html and the figures (report.ts), then prints the
// final-metrics and pass@1 tables to `print` and where things are to `note`.
import { formatPassTable, formatSummaryTable } from './summary.js';
import { formatOutcome } from './outcome.js';

export async function runReport(dir: string, print: (l: string) => void, note: (l: string) => void): Promise<void> {
  // Loaded here, not at start-up: vega costs ~0.2 s to import and only the report needs it.
  const { writeReport } = await import('./report.js');
  const r = await writeReport(dir);
  for (const n of r.notes) note(`note: ${n}`);
  for (const f of r.figures) note(f.file ? `figure: ${f.file}` : `figure skipped (${f.title}): ${f.skipped}`);
  print(formatSummaryTable(r.summaries));
  const pass = formatPassTable(r.pass);
  if (pass) print('\n' + pass);
  if (r.outcome) print('\n' + formatOutcome(r.outcome));
  print(`\nwrote ${r.html}`);
}

// `--report-to` (HF TrainingArguments / TRL report_to): which metric sinks a run writes. jsonl is metrics.jsonl (what
// the report command reads), tensorboard the event files of run/tensorboard.ts. HF's other integrations are refused.
import { InputError, describe } from '../util/errors.js';

export type ReportTarget = 'jsonl' | 'tensorboard';
/** HF TrainingArguments.report_to integrations that we do not write, with what to do instead. */
const HF_INTEGRATIONS = ['wandb', 'trackio', 'mlflow', 'comet_ml', 'neptune', 'clearml', 'dvclive', 'swanlab', 'azure_ml', 'codecarbon', 'dagshub', 'flyte'];

/**
 * `--report-to` (HF/TRL report_to: one value or a list) -> the targets. `all` is every one we have, `none` nothing;
 * metrics.jsonl is `jsonl` (the report command reads it). Unknown names are refused, never ignored.
 */
export function parseReportTo(value: string, where = '--report-to'): Set<ReportTarget> {
  const names = value.split(',').map((v) => v.trim()).filter(Boolean);
  const out = new Set<ReportTarget>();
  for (const n of names) {
    if (n === 'jsonl' || n === 'tensorboard') out.add(n);
    else if (n === 'all') ['jsonl', 'tensorboard'].forEach((t) => out.add(t as ReportTarget));
    else if (n !== 'none') {
      throw new InputError(describe(`${where} ${value}`, `"${n}"`, 'jsonl, tensorboard, all or none (one, or a comma list)',
        HF_INTEGRATIONS.includes(n) ? `This trainer writes no ${n} runs; write TensorBoard event files (--report-to tensorboard) and import them into ${n}.` : undefined));
    }
  }
  if (out.size > 0 && names.includes('none')) throw new InputError(describe(`${where} ${value}`, '"none" with other targets', 'none alone, or a list of targets'));
  return out;
}

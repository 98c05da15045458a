// `score`: reference log-probs of each pair, their distance and percentile -> a scores JSONL (dpo/score.ts).
import type { CommandModule } from 'yargs';
import { resolveRunConfig, RUN_SCHEMA } from '../config/run.js';
import { yargsOptions } from '../config/schema.js';
import { runScore } from '../dpo/score.js';
import { log } from './common.js';

const KEYS = ['model', 'data', 'split', 'backend', 'maxLength', 'maxPromptLength', 'truncationMode', 'batchSize'] as const;

export const scoreCommand: CommandModule<object, Record<string, unknown>> = {
  command: 'score',
  describe: 'reference log-probs of each pair, their distance and percentile -> scores.jsonl',
  builder: (y) => y.options({ ...yargsOptions(RUN_SCHEMA, KEYS), out: { type: 'string', describe: 'output JSONL', demandOption: true }, config: { type: 'string', describe: 'YAML or JSON config file' } }),
  handler: (argv) => runScore(resolveRunConfig(argv, KEYS), argv.out as string, log),
};

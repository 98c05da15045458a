// `score`: reference log-probs of every pair (no adapter), their per-token distance and its percentile.
// Writes one JSONL line per kept pair in input order, every input field passed through.
import type { CommandModule } from 'yargs';
import { resolveRunConfig, RUN_SCHEMA } from '../config/run.js';
import { yargsOptions } from '../config/schema.js';
import { computePairLogps } from '../dpo/reference.js';
import { pairDistance, percentileRanks, quantile } from '../curriculum/difficulty.js';
import { writeFileAtomic } from '../io/atomic.js';
import { disposeModel, type LoadedModel } from '../io/model-dir.js';
import type { PairRecord } from '../data/pairs.js';
import type { TokenizedRecord } from '../data/tokenize.js';
import { progress } from '../util/progress.js';
import { log, setup, loadPairs } from './common.js';

const KEYS = ['model', 'data', 'backend', 'maxLength', 'maxPromptLength', 'batchSize'] as const;

/**
 * One `score` line per kept pair, in input order: the input fields, then the bare base model's log-probs, token
 * counts, the per-token distance and the percentile of |distance|. Logs p10/p50/p90 of |distance|.
 */
export function scorePairs(model: LoadedModel, records: PairRecord[], pairs: TokenizedRecord[], batchSize: number): string[] {
  const bar = progress('scoring', pairs.length, 'pairs');
  const t = computePairLogps(model.cfg, model.weights, pairs, model.tokenizer.padId, batchSize, null, (d) => bar.tick(d));
  bar.done();
  const distances = pairs.map((_, i) => pairDistance(t.chosen[i], t.chosenTokens[i], t.rejected[i], t.rejectedTokens[i]));
  const abs = distances.map(Math.abs);
  const pct = percentileRanks(abs);
  log(`|distance| p10 ${quantile(abs, 10).toFixed(4)}  p50 ${quantile(abs, 50).toFixed(4)}  p90 ${quantile(abs, 90).toFixed(4)}`);
  return pairs.map((p, i) => JSON.stringify({
    ...records[p.index].raw,
    chosen_logp: t.chosen[i],
    rejected_logp: t.rejected[i],
    chosen_tokens: t.chosenTokens[i],
    rejected_tokens: t.rejectedTokens[i],
    distance: distances[i],
    percentile: pct[i],
  }));
}

export const scoreCommand: CommandModule<object, Record<string, unknown>> = {
  command: 'score',
  describe: 'reference log-probs of each pair, their distance and percentile -> scores.jsonl',
  builder: (y) => y.options({ ...yargsOptions(RUN_SCHEMA, KEYS), out: { type: 'string', describe: 'output JSONL', demandOption: true }, config: { type: 'string', describe: 'JSON config file' } }),
  handler: async (argv) => {
    const cfg = resolveRunConfig(argv, KEYS);
    const out = argv.out as string;
    const model = await setup(cfg.backend as never, cfg.model);
    try {
      const { records, data } = loadPairs(cfg.data, model, cfg.maxLength, cfg.maxPromptLength);
      const lines = scorePairs(model, records, data.pairs, cfg.batchSize);
      writeFileAtomic(out, lines.join('\n') + '\n');
      log(`wrote ${lines.length} scores to ${out}`);
    } finally {
      disposeModel(model);
    }
  },
};

// `score`: reference log-probs of every pair under the bare base model (no adapter), their per-token distance and the
// percentile of |distance|. One output line per kept pair, in input order, every input field passed through.
import { checkInputSource, checkOutputFile } from '../io/paths.js';
import { readPairs } from '../data/pairs.js';
import type { RunConfig } from '../config/run.js';
import { pairLengths } from '../config/run.js';
import { pairDistance, percentileRanks, quantile } from '../curriculum/difficulty.js';
import { loadPairsFile } from '../data/load.js';
import type { PairRecord } from '../data/pairs.js';
import type { TokenizedRecord } from '../data/tokenize.js';
import { writeFileAtomic } from '../io/atomic.js';
import { disposeModel, openModel, type LoadedModel } from '../io/model-dir.js';
import { progress } from '../util/progress.js';
import { computePairLogps } from './reference.js';

/** One `score` line per kept pair: the input fields, then log-probs, token counts, distance and percentile. Logs p10/p50/p90. */
export async function scorePairs(model: LoadedModel, records: PairRecord[], pairs: TokenizedRecord[], batchSize: number, log: (l: string) => void): Promise<string[]> {
  const bar = progress('scoring', pairs.length, 'pairs');
  const t = await computePairLogps(model.cfg, model.weights, pairs, model.tokenizer.padId, batchSize, null, (d) => bar.tick(d));
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

/** Scores `cfg.data` under `model` and writes the lines to `out` atomically; returns how many. */
export async function writeScores(model: LoadedModel, cfg: RunConfig, out: string, log: (l: string) => void): Promise<number> {
  const { records, data } = loadPairsFile(cfg.data, model.tokenizer, pairLengths(cfg), log, cfg.split ?? undefined);
  const lines = await scorePairs(model, records, data.pairs, cfg.batchSize, log);
  writeFileAtomic(out, lines.join('\n') + '\n');
  return lines.length;
}

/** The `score` command: backend, model, scores file. */
export async function runScore(cfg: RunConfig, out: string, log: (l: string) => void): Promise<void> {
  // Every path before the model loads: the data read to its last line, and a folder for --out.
  checkOutputFile('--out', out);
  if (cfg.data) {
    checkInputSource('--data', cfg.data, 'a pairs file (JSONL, JSON, Parquet), a datasets folder or a cached Hub dataset id');
    readPairs(cfg.data, cfg.split ?? undefined);
  }
  const model = await openModel(cfg.backend, cfg.model, log);
  try {
    log(`wrote ${await writeScores(model, cfg, out, log)} scores to ${out}`);
  } finally {
    disposeModel(model);
  }
}

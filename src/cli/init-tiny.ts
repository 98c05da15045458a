// `init-tiny`: writes a tiny Llama 3.1-shaped HF model directory (deterministic for a seed) for tests and demos.
// The weights are random: the model exercises every code path but writes no useful text.
import type { CommandModule } from 'yargs';
import { checkOutDir, removeStaleOutTemps } from '../io/out-dir.js';
import { TINY_PRESETS, writeTinyModel } from '../io/tiny-model.js';
import { InputError, describe } from '../util/errors.js';
import { log } from './common.js';

export const initTinyCommand: CommandModule<object, { out: string; seed: number; tied: boolean; overwrite: boolean; preset?: string }> = {
  command: 'init-tiny',
  describe: 'write a tiny Llama 3.1-shaped model directory (BF16 shards, tokenizer, chat template)',
  builder: (y) =>
    y.options({
      out: { type: 'string', demandOption: true, describe: 'output directory' },
      seed: { type: 'number', default: 0, describe: 'weight seed' },
      tied: { type: 'boolean', default: false, describe: 'tie the LM head to the embeddings' },
      preset: { type: 'string', choices: Object.keys(TINY_PRESETS), describe: 'a named model shape (world: byte-level, d 96, 4 layers, 4 heads, for the task world)' },
      overwrite: { type: 'boolean', default: false, describe: 'write into a non-empty folder this tool did not write, replacing only the files init-tiny writes' },
    }) as never,
  handler: async (argv) => {
    if (!Number.isSafeInteger(argv.seed)) throw new InputError(describe('--seed', String(argv.seed), 'an integer'));
    // The same check writeTinyModel runs, first here so that a refused --out is left exactly as it was.
    checkOutDir(argv.out, { flag: '--out', overwrite: argv.overwrite });
    for (const p of removeStaleOutTemps(argv.out)) log(`removed ${p}, left by an interrupted write`);
    await writeTinyModel(argv.out, { ...(argv.preset ? TINY_PRESETS[argv.preset] : {}), seed: argv.seed, tieWordEmbeddings: argv.tied, overwrite: argv.overwrite });
    log(`wrote tiny model to ${argv.out}`);
  },
};

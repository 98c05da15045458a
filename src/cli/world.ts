// `world`: writes a seeded world of small Python tasks in HumanEval format (train.jsonl, heldout.jsonl), split by
// op combination (world/world.ts). Deterministic for --seed, --size and --heldout.
import type { CommandModule } from 'yargs';
import { defaultHeldout, generateWorld, worldSummary, writeWorld } from '../world/world.js';
import { InputError, describe } from '../util/errors.js';
import { log } from './common.js';

export const worldCommand: CommandModule<object, { out: string; seed: number; size: number; heldout?: number }> = {
  command: 'world',
  describe: 'write a seeded world of HumanEval-format Python tasks: train.jsonl and heldout.jsonl (split by op combination)',
  builder: (y) =>
    y.options({
      out: { type: 'string', demandOption: true, describe: 'output directory' },
      seed: { type: 'number', default: 0, describe: 'world seed' },
      size: { type: 'number', default: 4000, describe: 'train tasks' },
      heldout: { type: 'number', describe: 'held-out tasks (default: a quarter of --size, at most 200)' },
    }) as never,
  handler: (argv) => {
    if (!Number.isSafeInteger(argv.seed)) throw new InputError(describe('--seed', String(argv.seed), 'an integer'));
    if (!Number.isSafeInteger(argv.size) || argv.size < 1) throw new InputError(describe('--size', String(argv.size), 'a positive integer'));
    const heldout = argv.heldout ?? defaultHeldout(argv.size);
    if (!Number.isSafeInteger(heldout) || heldout < 1) throw new InputError(describe('--heldout', String(argv.heldout), 'a positive integer'));
    const world = generateWorld({ seed: argv.seed, size: argv.size, heldout });
    const files = writeWorld(argv.out, world);
    log(`world (seed ${argv.seed}): ${worldSummary(world)}`);
    log(`wrote ${files.train} and ${files.heldout}`);
  },
};

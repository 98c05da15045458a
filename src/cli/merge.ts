// `merge`: base model + PEFT adapter -> a full HF model directory with the adapter folded in.
// Same result as PEFT's merge_and_unload + save_pretrained (sharded safetensors + index).
import type { CommandModule } from 'yargs';
import { BACKENDS, type BackendName } from '../backend/index.js';
import { loadAdapter } from '../io/peft.js';
import { disposeModel, openModel } from '../io/model-dir.js';
import { writeMergedModel } from '../io/merge.js';
import { checkOutDir, removeStaleOutTemps } from '../io/out-dir.js';
import { disposeLora } from '../model/lora.js';
import { InputError, describe } from '../util/errors.js';
import { log } from './common.js';

interface MergeArgs { model: string; adapter: string; out: string; dtype: string; backend: string; 'max-shard-size': number; overwrite: boolean }

export const mergeCommand: CommandModule<object, MergeArgs> = {
  command: 'merge',
  describe: 'fold a LoRA adapter into the base weights and write a full HF model directory',
  builder: (y) => y.options({
    model: { type: 'string', demandOption: true, describe: 'base HF model directory' },
    adapter: { type: 'string', demandOption: true, describe: 'PEFT adapter directory' },
    out: { type: 'string', demandOption: true, describe: 'output directory' },
    dtype: { type: 'string', choices: ['bf16', 'f32'], default: 'bf16', describe: 'weight dtype on disk' },
    'max-shard-size': { type: 'number', default: 5e9, describe: 'bytes per safetensors shard' },
    backend: { type: 'string', choices: BACKENDS, default: 'auto', describe: 'tfjs backend' },
    overwrite: { type: 'boolean', default: false, describe: 'write into a non-empty folder this tool did not write, replacing only the files merge writes' },
  }) as never,
  handler: async (argv) => {
    if (!(argv['max-shard-size'] > 0)) throw new InputError(describe('--max-shard-size', String(argv['max-shard-size']), 'a positive number of bytes'));
    // Before the model loads: a refused --out costs nothing.
    checkOutDir(argv.out, { flag: '--out', overwrite: argv.overwrite, inputs: [{ flag: '--model', dir: argv.model }] });
    for (const p of removeStaleOutTemps(argv.out)) log(`removed ${p}, left by an interrupted write`);
    const model = await openModel(argv.backend as BackendName, argv.model, log);
    try {
      const lora = loadAdapter(argv.adapter, model.cfg);
      try {
        await writeMergedModel(model, lora, argv.out, argv.dtype === 'bf16' ? 'BF16' : 'F32', argv['max-shard-size'], argv.overwrite);
      } finally {
        disposeLora(lora);
      }
      log(`wrote merged model to ${argv.out}`);
    } finally {
      disposeModel(model);
    }
  },
};

// `sft`: supervised fine-tuning with TRL SFTTrainer's semantics (loss on completion tokens only): LoRA by default,
// every weight with --full (sft/train.ts). Data: prompt/completion or messages JSONL, or HumanEval tasks (a world).
import type { CommandModule } from 'yargs';
import { yargsOptions } from '../config/schema.js';
import { resolveSftConfig, SFT_SCHEMA } from '../sft/config.js';
import { readSftState, resolveSftResume } from '../sft/checkpoint.js';
import { sft } from '../sft/train.js';
import { InputError, describe } from '../util/errors.js';
import { dirname, resolve } from 'node:path';
import { log } from './common.js';

export const sftCommand: CommandModule<object, Record<string, unknown>> = {
  command: 'sft',
  describe: 'supervised fine-tuning on prompt/completion data (loss on completions): LoRA -> PEFT adapter, --full -> HF model dir',
  builder: (y) => y.options({
    ...yargsOptions(SFT_SCHEMA),
    config: { type: 'string', describe: 'YAML or JSON file of settings, TRL SFTConfig keys welcome (applied before flags)' },
    resume: { type: 'string', describe: 'continue a run: latest (in --output-dir), a checkpoint folder, or a run folder; its stored settings apply, then any flags given' },
  }),
  handler: async (argv) => {
    const resume = (argv.resume as string | undefined) ?? null;
    const asked = resolveSftConfig(argv);
    if (resume === 'latest' && !asked.outputDir) throw new InputError(describe('--resume latest', 'no run folder given', '--output-dir DIR'));
    let cfg = asked;
    if (resume) {
      const dir = resolveSftResume(resume, asked.outputDir ?? '.');
      cfg = resolveSftConfig(argv, { config: { ...readSftState(dir).config, outputDir: dirname(resolve(dir)) }, source: dir });
    }
    await sft(cfg, resume, log);
  },
};

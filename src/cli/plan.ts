// `plan`: predicts the peak device memory of a training step term by term, says whether it fits, and what would.
// Reads only config.json (or a named shape such as llama-3.1-8b); loads no weights and starts no backend.
import type { CommandModule } from 'yargs';
import { loraTargets, resolveRunConfig, RUN_SCHEMA } from '../config/run.js';
import { yargsOptions } from '../config/schema.js';
import { runPlan, type PlanRequest } from '../plan/memory.js';

export const PLAN_KEYS = ['model', 'maxLength', 'batchSize', 'gradientCheckpointing', 'loraR', 'loraTargets'] as const;

/** The request from parsed flags: run-config keys go through the typed config (defaults, --config, checks). */
export function planRequest(argv: Record<string, unknown>): PlanRequest {
  const cfg = resolveRunConfig(argv, PLAN_KEYS);
  const mem = argv['device-memory'];
  return {
    model: cfg.model, maxLength: cfg.maxLength, batchSize: cfg.batchSize, gradientCheckpointing: cfg.gradientCheckpointing,
    loraR: cfg.loraR, loraTargets: loraTargets(cfg), deviceMemoryGB: typeof mem === 'number' ? mem : null, gpu: argv.device !== 'cpu',
  };
}

export const planCommand: CommandModule<object, Record<string, unknown>> = {
  command: 'plan',
  describe: 'predict peak device memory of a training step (weights, LoRA + Adam, activations, logits) and what fits',
  builder: (y) => y.options({
    ...yargsOptions(RUN_SCHEMA, PLAN_KEYS),
    'device-memory': { type: 'number', describe: 'device memory in GiB, e.g. 80 for an H100, 141 for an H200 (nvidia-smi: 79.6 and 140.4)' },
    device: { type: 'string', choices: ['gpu', 'cpu'], default: 'gpu', describe: 'gpu adds the CUDA runtime and allocator terms' },
    config: { type: 'string', describe: 'YAML or JSON config file' },
  }),
  handler: (argv) => {
    process.stdout.write(runPlan(planRequest(argv)).text + '\n');
  },
};

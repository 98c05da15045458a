// `doctor`: checks the environment before a long run (backend/doctor.ts does the work) and prints the report.
import type { CommandModule } from 'yargs';
import { BACKENDS, type BackendName } from '../backend/index.js';
import { runDoctor } from '../backend/doctor.js';

export const doctorCommand: CommandModule<object, Record<string, unknown>> = {
  command: 'doctor',
  describe: 'check the environment before a long run: backend, GPU use, WebGPU adapter and Vulkan ICDs, CUDA/cuDNN, JIT cache, tfjs-node, memory plan',
  builder: (y) => y.options({
    backend: { type: 'string', choices: [...BACKENDS], default: 'auto', describe: 'tfjs backend to check' },
    model: { type: 'string', describe: 'HF model directory or llama-3.1-8b: end with its memory plan at the default settings' },
    'matmul-size': { type: 'number', default: 1024, describe: 'size of the timed square matmul' },
  }),
  handler: async (argv) => {
    const lines = await runDoctor({ backend: argv.backend as BackendName, model: (argv.model as string | undefined) ?? null, matmulSize: argv['matmul-size'] as number });
    process.stdout.write(lines.join('\n').trimStart() + '\n');
  },
};

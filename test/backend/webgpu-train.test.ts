// `train --backend webgpu` end to end (issue 14 items 1 and 4): steps, checkpoints (written with await data(): a
// synchronous read throws on webgpu) and a resume that continues the run. Compared with the same run on cpu: the
// adapters agree to float32 noise. Skips, saying why, only where Dawn finds no adapter (DPO_REQUIRE_WEBGPU=1 fails).
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeWebGpu } from '../../src/backend/webgpu.js';
import { maxAbsDiff, readJsonl, readTensors, runTrain, SAMPLE_PAIRS, tempDir, tinyModelDir } from '../train/helpers.js';

const probe = await probeWebGpu();
const required = process.env.DPO_REQUIRE_WEBGPU === '1';
if (!probe.ok && !required) console.log(`webgpu train: SKIPPED: ${probe.reason}`);

let root: string;
let model: string;
beforeAll(async () => {
  root = tempDir('webgpu-train');
  model = await tinyModelDir(root);
}, 60_000);
afterAll(() => rmSync(root, { recursive: true, force: true }));

const flags = (out: string, backend: string, steps: number) => ['train', '--model', model, '--data', SAMPLE_PAIRS, '--backend', backend,
  '--max-steps', String(steps), '--save-steps', '1', '--batch-size', '2', '--max-length', '64', '--lora-r', '4',
  '--curriculum', 'shuffle', '--lr-scheduler', 'constant', '--learning-rate', '1e-3', '--output-dir', out];

describe.skipIf(!probe.ok && !required)('train --backend webgpu', () => {
  it('saves checkpoints, resumes, and ends where the cpu run ends', async () => {
    const gpu = join(root, 'gpu');
    const first = await runTrain(flags(gpu, 'webgpu', 2));
    expect(first.code, first.stderr).toBe(0);
    expect(existsSync(join(gpu, 'checkpoint-2', 'adapter_model.safetensors'))).toBe(true);
    const resumed = await runTrain([...flags(gpu, 'webgpu', 4), '--resume', 'latest']);
    expect(resumed.code, resumed.stderr).toBe(0);
    const cpu = join(root, 'cpu');
    const ref = await runTrain(flags(cpu, 'cpu', 4));
    expect(ref.code, ref.stderr).toBe(0);
    expect(readJsonl(join(gpu, 'metrics.jsonl')).map((l) => l.step)).toEqual([1, 2, 3, 4]);
    const a = readTensors(join(gpu, 'adapter_model.safetensors'));
    const b = readTensors(join(cpu, 'adapter_model.safetensors'));
    let worst = 0;
    let moved = 0;
    for (const [k, t] of b) {
      worst = Math.max(worst, maxAbsDiff(a.get(k)!.data, t.data));
      if (k.includes('lora_B')) moved = Math.max(moved, ...Array.from(t.data, Math.abs));
    }
    console.log(`webgpu train: 4 steps with a resume at 2, adapter max |webgpu - cpu| ${worst.toExponential(2)} (lora_B moved up to ${moved.toExponential(2)})`);
    expect(moved).toBeGreaterThan(1e-4);
    expect(worst).toBeLessThan(1e-2 * moved);
  }, 180_000);
});

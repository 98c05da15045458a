// Issue 12 item 11 on the real CLI: `train` prints the resolved config as a short diff from the defaults (the whole of it
// goes to run_config.json), a long stage-end list shortened, and no tfjs banner. (Before: the whole config as one JSON
// line, and every stage end listed.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pairsFile, runTrain, tempDir, tinyModelDir } from '../train/helpers.js';

let root: string;
beforeAll(() => {
  root = tempDir('quiet');
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('train start-up lines (item 11)', () => {
  it('config as a flag diff, stage ends shortened, no banner', async () => {
    const model = await tinyModelDir(root);
    const out = join(root, 'run');
    // 2 pairs at batch 2: one step per epoch, so 8 steps have 8 stage (epoch) ends.
    const r = await runTrain(['train', '--model', model, '--data', pairsFile(root, 2), '--backend', 'cpu', '--max-length', '64', '--batch-size', '2',
      '--lora-r', '4', '--curriculum', 'shuffle', '--max-steps', '8', '--save-steps', '0', '--output-dir', out]);
    expect(r.code, r.stderr).toBe(0);
    const config = r.stderr.split('\n').find((l) => l.startsWith('config: '));
    expect(config).toBe(`config: --model ${model} --data ${join(root, 'pairs.jsonl')} --backend cpu --max-length 64 --lora-r 4 --batch-size 2 --max-steps 8 `
      + `--curriculum shuffle --output-dir ${out} --save-steps 0; the whole of it in ${join(out, 'run_config.json')}`);
    expect(JSON.parse(readFileSync(join(out, 'run_config.json'), 'utf8'))).toMatchObject({ maxSteps: 8, batchSize: 2, loraR: 4, beta: 0.1 });
    expect(r.stderr).toMatch(/^curriculum: shuffle; stage ends at steps 1, 2, 3, \.\.\. 6, 7, 8 \(8 in all\)$/m);
    expect(r.stderr).not.toMatch(/looks like you are running TensorFlow/);
  });
});

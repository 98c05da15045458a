// `node train.js world` and `sft` on the real CLI (dist/ built): the files, the summary line, a bad flag's message.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runTrain, tempDir } from '../train/helpers.js';

describe('world and sft commands', () => {
  it('world writes train.jsonl and heldout.jsonl, byte-identical for a seed; a bad --size is a usage error', async () => {
    const a = join(tempDir('world-cli'), 'w');
    const r = await runTrain(['world', '--out', a, '--seed', '4', '--size', '30', '--heldout', '10']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/world \(seed 4\): train 30 tasks .*held-out 10 tasks/);
    const b = join(tempDir('world-cli'), 'w');
    expect((await runTrain(['world', '--out', b, '--seed', '4', '--size', '30', '--heldout', '10'])).code).toBe(0);
    for (const f of ['train.jsonl', 'heldout.jsonl']) expect(readFileSync(join(b, f)).equals(readFileSync(join(a, f)))).toBe(true);
    const bad = await runTrain(['world', '--out', join(a, 'x'), '--size', '0']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('--size: 0 (expected a positive integer)');
  });

  it('sft --full on a world writes an HF model dir; without --data it says so', async () => {
    const root = tempDir('sft-cli');
    const model = join(root, 'model');
    expect((await runTrain(['init-tiny', '--out', model, '--preset', 'world'])).code).toBe(0);
    expect((await runTrain(['world', '--out', join(root, 'w'), '--size', '6', '--heldout', '2'])).code).toBe(0);
    const out = join(root, 'sft');
    const r = await runTrain(['sft', '--model', model, '--data', join(root, 'w', 'train.jsonl'), '--full', '--max-steps', '2', '--batch-size', '2', '--backend', 'cpu', '--output-dir', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('full: 0.493M trained parameters');
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'checkpoint-2/optimizer.safetensors']) expect(existsSync(join(out, f))).toBe(true);
    const missing = await runTrain(['sft', '--model', model, '--backend', 'cpu']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('--data: missing');
  }, 60_000);
});

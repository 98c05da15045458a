// Issue 12 item 3, through the default pipeline itself (not only prepareDefaultRun): Ctrl-C in the first seconds of
// `node train.js` leaves a folder holding only scores.jsonl; the next run must keep the complete run in `.prev`.
// The run is stopped right after it decided what to do with the old folders: its data file is missing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_PATHS, runDefaultPipeline } from '../../src/pipeline/default.js';
import { tempDir, tinyModelDir } from '../train/helpers.js';

const ADAPTER = 'adapter_model.safetensors';
let root: string;
const saved = { ...DEFAULT_PATHS };

beforeAll(async () => {
  root = tempDir('default-pipe');
  DEFAULT_PATHS.model = await tinyModelDir(root);
  DEFAULT_PATHS.data = join(root, 'no-such-pairs.jsonl');
  DEFAULT_PATHS.run = join(root, 'default');
});
afterAll(() => {
  Object.assign(DEFAULT_PATHS, saved);
  rmSync(root, { recursive: true, force: true });
});

describe('node train.js after a Ctrl-C while scoring', () => {
  it('keeps the complete run in default.prev byte for byte and leaves the interrupted folder in place', async () => {
    const prev = `${DEFAULT_PATHS.run}.prev`;
    mkdirSync(prev, { recursive: true });
    writeFileSync(join(prev, ADAPTER), 'complete run');
    writeFileSync(join(prev, 'metrics.jsonl'), '{"step": 8}\n');
    mkdirSync(DEFAULT_PATHS.run);
    writeFileSync(join(DEFAULT_PATHS.run, 'scores.jsonl'), '{}\n');

    await expect(runDefaultPipeline('cpu', () => {})).rejects.toThrow(/no-such-pairs\.jsonl/);
    expect(readdirSync(prev).sort()).toEqual([ADAPTER, 'metrics.jsonl']);
    expect(readFileSync(join(prev, ADAPTER), 'utf8')).toBe('complete run');
    expect(readdirSync(DEFAULT_PATHS.run)).toEqual(['scores.jsonl']);
  });
});

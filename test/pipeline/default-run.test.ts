// Issue 12 item 3 on the staged default (issue 16 item 4), through the pipeline itself: a complete earlier run is never
// deleted, and a stage that Ctrl-C stopped is done again (or resumed) in its own folder. The run is made to fail at
// the init stage (a model shape that is not valid), right after the world stage, so this takes a second.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runDefaultPipeline } from '../../src/pipeline/default.js';
import { DEFAULT_BUDGET, type DefaultBudget } from '../../src/pipeline/default-budget.js';
import { STAGE_FILE, stageDir, stageKey } from '../../src/pipeline/default-cache.js';
import { tempDir } from '../train/helpers.js';

const BAD_INIT: DefaultBudget = { ...DEFAULT_BUDGET, world: { size: 8, heldout: 2 }, model: { hiddenSize: 30, numHeads: 4, numKvHeads: 4 } };
let base: string;
beforeAll(() => {
  base = tempDir('default-run');
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

describe('node train.js after a Ctrl-C', () => {
  it('keeps old-layout runs in .prev and .prev-2 byte for byte, rebuilds the interrupted world stage, keeps it once complete', async () => {
    const root = join(base, 'default');
    // An earlier complete run in the old layout is already in .prev; the root holds another (Ctrl-C'd while scoring).
    mkdirSync(`${root}.prev`, { recursive: true });
    writeFileSync(join(`${root}.prev`, 'adapter_model.safetensors'), 'complete run');
    mkdirSync(root);
    writeFileSync(join(root, 'scores.jsonl'), '{}\n');
    // And a world stage that Ctrl-C stopped: its folder exists with a torn file and no stage.json.
    const key = stageKey('world', { seed: BAD_INIT.seed, ...BAD_INIT.world }, []);
    await expect(runDefaultPipeline('cpu', () => {}, { root, budget: BAD_INIT })).rejects.toThrow(/head_dim: 7.5/);
    expect(readFileSync(join(`${root}.prev`, 'adapter_model.safetensors'), 'utf8')).toBe('complete run');
    expect(readdirSync(`${root}.prev-2`)).toEqual(['scores.jsonl']);

    const world = stageDir(root, 'world', key);
    const complete = readFileSync(join(world, 'train.jsonl'), 'utf8');
    rmSync(join(world, STAGE_FILE));
    writeFileSync(join(world, 'train.jsonl'), complete.slice(0, 100));
    const log: string[] = [];
    await expect(runDefaultPipeline('cpu', (l) => log.push(l), { root, budget: BAD_INIT })).rejects.toThrow(/head_dim: 7.5/);
    expect(readFileSync(join(world, 'train.jsonl'), 'utf8')).toBe(complete);
    expect(existsSync(join(world, STAGE_FILE))).toBe(true);
    expect(log.some((l) => l.startsWith('[1/6] world: 8 train'))).toBe(true);
    // Now complete, it is reused as it is.
    const again: string[] = [];
    await expect(runDefaultPipeline('cpu', (l) => again.push(l), { root, budget: BAD_INIT })).rejects.toThrow(/head_dim: 7.5/);
    expect(again.some((l) => l.startsWith('[1/6] world: cached in'))).toBe(true);
    expect(readdirSync(base).sort()).toEqual(['default', 'default.prev', 'default.prev-2']);
  }, 60_000);
});

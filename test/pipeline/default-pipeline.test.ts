// Issue 16 item 4: `node train.js` with no flags runs world -> init -> sft -> pairs -> score -> dpo (stages, held-out
// eval) -> report through the library, on a budget of seconds here. Every stage writes its outputs into a folder keyed
// by the hash of its settings; a second call reuses them all (no stage runs, no file is rewritten). Issue 12 item 3's
// guarantees on the new layout: a complete earlier run is never deleted (a root in the old one-folder layout is kept
// as .prev; a finished DPO folder whose stage.json is missing is kept as .prev and the stage runs again).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runDefaultPipeline } from '../../src/pipeline/default.js';
import { DEFAULT_BUDGET, type DefaultBudget } from '../../src/pipeline/default-budget.js';
import { STAGE_FILE } from '../../src/pipeline/default-cache.js';
import { runTrain, tempDir } from '../train/helpers.js';

// A 40k-parameter model overfits 8 train tasks, so best-of-6 at T 1.2 has passing and failing samples to pair.
const BUDGET: DefaultBudget = {
  ...DEFAULT_BUDGET,
  world: { size: 8, heldout: 4 },
  model: { hiddenSize: 32, numLayers: 2, numHeads: 2, numKvHeads: 2, intermediateSize: 64, merges: 0 },
  sftTokens: 150_000,
  sft: { ...DEFAULT_BUDGET.sft, 'learning-rate': 0.01, 'logging-steps': 1000, 'max-length': 256 },
  pairs: { tasks: 8, n: 6, temperature: 1.2, topP: 1, maxNewTokens: 64, requireChosenPass: true },
  dpo: { ...DEFAULT_BUDGET.dpo, epochs: 1, 'save-steps': 1, 'logging-steps': 1 },
  evalMaxNewTokens: 32,
};
const STAGES = ['world', 'init', 'sft', 'pairs', 'score', 'dpo'];

let root: string;
let base: string;
beforeAll(() => {
  base = tempDir('default-pipeline');
  root = join(base, 'default');
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

const stageDirs = () => Object.fromEntries(STAGES.map((s) => [s, readdirSync(root).filter((n) => n.startsWith(`${s}-`) && !n.includes('.prev')).map((n) => join(root, n))]));
const lines = (f: string) => readFileSync(f, 'utf8').split('\n').filter(Boolean);

async function run(): Promise<string[]> {
  const out: string[] = [];
  await runDefaultPipeline('wasm', (l) => out.push(l), { root, budget: BUDGET });
  return out;
}

describe('the default pipeline', () => {
  it('writes every stage into a keyed folder, then a second call reuses all six and rewrites nothing', async () => {
    // The root as the old default left it: one DPO run folder. It is kept byte for byte, never deleted.
    mkdirSync(root, { recursive: true });
    writeFileSync(join(root, 'adapter_model.safetensors'), 'old complete run');
    const first = await run();
    expect(readFileSync(join(`${root}.prev`, 'adapter_model.safetensors'), 'utf8')).toBe('old complete run');

    const dirs = stageDirs();
    for (const s of STAGES) {
      expect(dirs[s], s).toHaveLength(1);
      expect(existsSync(join(dirs[s][0], STAGE_FILE)), s).toBe(true);
      expect(dirs[s][0]).toMatch(new RegExp(`${s}-[0-9a-f]{12}$`));
    }
    const [world, init, sft, pairs, score, dpo] = STAGES.map((s) => dirs[s][0]);
    expect(lines(join(world, 'train.jsonl'))).toHaveLength(8);
    expect(lines(join(world, 'heldout.jsonl'))).toHaveLength(4);
    expect(existsSync(join(init, 'model', 'config.json'))).toBe(true);
    expect(existsSync(join(sft, 'config.json')) && existsSync(join(sft, 'model.safetensors'))).toBe(true);
    const nPairs = lines(join(pairs, 'pairs.jsonl')).length;
    expect(nPairs).toBeGreaterThan(0);
    expect(lines(join(pairs, 'tasks.jsonl'))).toHaveLength(8);
    expect(lines(join(score, 'scores.jsonl'))).toHaveLength(nPairs);
    for (const f of ['adapter_model.safetensors', 'adapter_config.json', 'eval.jsonl', 'metrics.jsonl', 'report.html']) expect(existsSync(join(dpo, f)), f).toBe(true);
    // Held-out pass@1 at step 0 (the SFT model) and after the last stage.
    const evalSteps = lines(join(dpo, 'eval.jsonl')).map((l) => JSON.parse(l).step as number);
    expect(evalSteps[0]).toBe(0);
    expect(evalSteps.length).toBeGreaterThanOrEqual(2);
    expect(first.filter((l) => / done in /.test(l) && /^\[\d\/6\]/.test(l))).toHaveLength(6);
    expect(first.some((l) => /pipeline ETA/.test(l))).toBe(true);
    expect(first.some((l) => /held-out greedy pass@1 \(4 tasks\): SFT \d\.\d{3}/.test(l))).toBe(true);

    // The second call: six cache hits, no stage built, every file's mtime as it was.
    const mtimes = (d: string) => readdirSync(d, { recursive: true }).map(String).sort().map((f) => `${f} ${statSync(join(d, f)).mtimeMs}`);
    const before = STAGES.map((s) => mtimes(dirs[s][0]));
    const second = await run();
    expect(second.filter((l) => /^\[\d\/6\] \w+: cached in /.test(l))).toHaveLength(6);
    expect(second.filter((l) => / done in /.test(l) && /^\[\d\/6\]/.test(l))).toHaveLength(0);
    expect(STAGES.map((s) => mtimes(dirs[s][0]))).toEqual(before);
    expect(stageDirs()).toEqual(dirs);
    expect(second.find((l) => /held-out greedy pass@1/.test(l))).toBe(first.find((l) => /held-out greedy pass@1/.test(l)));
  }, 240_000);

  it('the SFT model solves train tasks (greedy pass@1 above 0), and its SFT is deterministic for the seed', async () => {
    // Issue 16's small world test: a tiny world, a short SFT, pass@1 on the train split. The SFT stage rebuilt from
    // scratch (its stage.json removed) writes the same model bytes.
    const { world, sft } = Object.fromEntries(Object.entries(stageDirs()).map(([k, v]) => [k, v[0]!]));
    const out = join(base, 'train-eval.jsonl');
    const r = await runTrain(['eval', '--model', sft!, '--tasks', join(world!, 'train.jsonl'), '--backend', 'wasm', '--temperature', '0',
      '--max-new-tokens', '64', '--workers', '1', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    const results = lines(out).map((l) => JSON.parse(l) as { passed: boolean });
    expect(results).toHaveLength(8);
    const pass1 = results.filter((x) => x.passed).length / results.length;
    console.log(`world test: SFT greedy pass@1 on the 8 train tasks ${pass1.toFixed(3)}`);
    expect(pass1).toBeGreaterThan(0);
    const weights = readFileSync(join(sft!, 'model.safetensors'));
    rmSync(sft!, { recursive: true, force: true });
    await run();
    expect(readFileSync(join(stageDirs().sft[0]!, 'model.safetensors'))).toEqual(weights);
  }, 240_000);

  it('a finished DPO folder without its stage.json is kept as .prev and the stage alone runs again', async () => {
    const dpo = stageDirs().dpo[0];
    const adapter = readFileSync(join(dpo, 'adapter_model.safetensors'));
    unlinkSync(join(dpo, STAGE_FILE));
    const out = await run();
    expect(out.filter((l) => /: cached in /.test(l)).map((l) => l.split(':')[0])).toEqual(['[1/6] world', '[2/6] init', '[3/6] sft', '[4/6] pairs', '[5/6] score']);
    expect(readFileSync(join(`${dpo}.prev`, 'adapter_model.safetensors'))).toEqual(adapter);
    expect(existsSync(join(dpo, STAGE_FILE))).toBe(true);
    // Same settings, same seed: the new run's adapter is the old one's bytes.
    expect(readFileSync(join(dpo, 'adapter_model.safetensors'))).toEqual(adapter);
  }, 240_000);
});

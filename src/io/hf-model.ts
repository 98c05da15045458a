// Loads the weights of a Hugging Face model directory (`model.safetensors`, or shards + index) into float32 tensors.
// Strict like transformers' `from_pretrained` with no missing/unexpected keys allowed; the expected names and
// shapes come from the model module. Every header is checked before any data is read; data is read shard by shard.
import * as tf from '@tensorflow/tfjs';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { LlamaConfig } from '../config/llama.js';
import { FormatError, describe } from '../util/errors.js';
import { type Dtype, type TensorEntry, openSafetensors } from './safetensors.js';
import { type SafetensorsIndex, checkShardAgainstIndex, readSafetensorsIndex } from './shards.js';
import { rowSplitLimit } from '../backend/webgpu.js';
import { hostRowBlocks } from '../model/row-blocks.js';

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';
const LOADABLE: readonly Dtype[] = ['BF16', 'F16', 'F32'];

export interface ModelFiles {
  dir: string;
  kind: 'single' | 'sharded';
  /** The parsed index when sharded. */
  index: SafetensorsIndex | null;
  /** Full paths of the safetensors files, in read order. */
  files: string[];
}

const CONVERT_HINT =
  'We read safetensors only. Convert once with transformers: ' +
  `python -c "from transformers import AutoModelForCausalLM as M; M.from_pretrained('IN', torch_dtype='auto').save_pretrained('OUT')" ` +
  '(save_pretrained writes safetensors), then copy the tokenizer files; or download the safetensors revision from the Hub.';

/** Finds `model.safetensors` or `model.safetensors.index.json` (+ its shards) in an HF model directory. */
export function listModelFiles(dir: string): ModelFiles {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new FormatError(describe(dir, 'not a directory', 'an HF model directory', 'Point --model at a folder with config.json and model.safetensors.'));
  }
  const single = join(dir, SINGLE_FILE);
  const indexPath = join(dir, INDEX_FILE);
  const hasSingle = existsSync(single);
  const hasIndex = existsSync(indexPath);
  if (hasSingle && hasIndex) {
    throw new FormatError(describe(dir, `both ${SINGLE_FILE} and ${INDEX_FILE}`, 'one of them', 'One is left over from an older save; remove the stale one.'));
  }
  if (hasSingle) return { dir, kind: 'single', index: null, files: [single] };
  if (hasIndex) {
    const index = readSafetensorsIndex(indexPath);
    if (index.shards.length === 0) throw new FormatError(describe(indexPath, 'empty weight_map', 'at least one tensor'));
    for (const s of index.shards) {
      if (!existsSync(join(dir, s))) {
        throw new FormatError(describe(join(dir, s), `missing (listed in ${INDEX_FILE})`, 'every shard the index names', 'The download is incomplete; fetch the missing shard.'));
      }
    }
    return { dir, kind: 'sharded', index, files: index.shards.map((s) => join(dir, s)) };
  }
  const present = readdirSync(dir).filter((f) => /^pytorch_model.*\.bin(\.index\.json)?$|\.(pth|pt|bin|gguf|h5|msgpack)$/.test(f));
  const found = present.length ? `no ${SINGLE_FILE} or ${INDEX_FILE}; found ${present.slice(0, 4).join(', ')}` : `no ${SINGLE_FILE} or ${INDEX_FILE}`;
  const hint = present.some((f) => /^consolidated\..*\.pth$/.test(f))
    ? "These are Meta's original weights: convert them with transformers' convert_llama_weights_to_hf.py first."
    : CONVERT_HINT;
  throw new FormatError(describe(dir, found, 'safetensors weights', hint));
}

/**
 * Tensors a checkpoint may carry that the model does not use: `lm_head.weight` of a tied model (transformers
 * sometimes saves it) and the `rotary_emb.inv_freq` buffers of pre-4.31 checkpoints (recomputed from config).
 */
export function isIgnoredTensor(name: string, cfg: LlamaConfig, expected: Record<string, number[]>): boolean {
  if (name in expected) return false;
  if (name === 'lm_head.weight' && cfg.tieWordEmbeddings) return true;
  return /(^|\.)rotary_emb\.inv_freq$/.test(name);
}

export interface TensorLoadInfo {
  name: string;
  file: string;
  dtype: Dtype;
  shape: number[];
  /** 1-based position of this tensor among those loaded, and their count (for progress lines). */
  index: number;
  total: number;
}

export interface LoadOptions {
  /** Called after each tensor is converted, in file order. */
  onTensor?: (info: TensorLoadInfo) => void;
  /**
   * Bytes above which the embedding and lm_head are loaded as row blocks (model/row-blocks.ts), or null for whole
   * tensors. Default: the backend's binding limit (webgpu; DPO_MAX_BINDING_BYTES on any backend), else null.
   */
  rowLimit?: number | null;
}

const list = (names: string[]): string => names.slice(0, 5).map((n) => `"${n}"`).join(', ') + (names.length > 5 ? ` and ${names.length - 5} more` : '');
const sameShape = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((v, i) => v === b[i]);

function configSummary(cfg: LlamaConfig): string {
  return `num_hidden_layers=${cfg.numLayers}, hidden_size=${cfg.hiddenSize}, intermediate_size=${cfg.intermediateSize}, ` +
    `num_attention_heads=${cfg.numHeads}, num_key_value_heads=${cfg.numKvHeads}, vocab_size=${cfg.vocabSize}, tie_word_embeddings=${cfg.tieWordEmbeddings}`;
}

/** Reads every header and checks names, shapes and dtypes against `expected` before any tensor data is read. */
function planLoad(mf: ModelFiles, cfg: LlamaConfig, expected: Record<string, number[]>): { file: string; entries: TensorEntry[] }[] {
  const where = mf.index ? mf.index.path : mf.files[0]!;
  const found = new Map<string, { file: string; entry: TensorEntry }>();
  const plan: { file: string; entries: TensorEntry[] }[] = [];
  for (const file of mf.files) {
    const st = openSafetensors(file);
    try {
      if (mf.index) checkShardAgainstIndex(mf.index, file, st);
      const keep: TensorEntry[] = [];
      for (const e of st.entries) {
        const dup = found.get(e.name);
        if (dup) throw new FormatError(describe(`${file}: tensor "${e.name}"`, `also in ${basename(dup.file)}`, 'each tensor in one shard'));
        found.set(e.name, { file, entry: e });
        if (!isIgnoredTensor(e.name, cfg, expected)) keep.push(e);
      }
      plan.push({ file, entries: keep });
    } finally {
      st.close();
    }
  }
  const unexpected = [...found.keys()].filter((n) => !(n in expected) && !isIgnoredTensor(n, cfg, expected));
  if (unexpected.length) {
    const first = found.get(unexpected[0]!)!;
    const bare = unexpected.some((n) => n.startsWith('layers.') || n === 'embed_tokens.weight');
    throw new FormatError(describe(
      `${first.file}: tensor ${list(unexpected)}`,
      'unexpected',
      'only LlamaForCausalLM weights for config.json',
      bare
        ? 'Keys lack the "model." prefix: this looks like a bare LlamaModel save; re-save it as LlamaForCausalLM.'
        : `Check that config.json matches the weights (${configSummary(cfg)}).`,
    ));
  }
  const missing = Object.keys(expected).filter((n) => !found.has(n));
  if (missing.length) {
    const hint = missing.includes('lm_head.weight') && !cfg.tieWordEmbeddings && missing.length === 1
      ? 'config.json says tie_word_embeddings=false but the checkpoint has no lm_head.weight; set tie_word_embeddings to true if the model shares its embedding.'
      : `The checkpoint does not match config.json (${configSummary(cfg)}); check --model, or re-download an incomplete checkpoint.`;
    throw new FormatError(describe(`${where}: tensor ${list(missing)}`, 'missing', 'present in the checkpoint', hint));
  }
  for (const [name, { file, entry }] of found) {
    const want = expected[name];
    if (!want) continue;
    if (!sameShape(entry.shape, want)) {
      throw new FormatError(describe(`${file}: tensor "${name}"`, `shape ${JSON.stringify(entry.shape)}`, JSON.stringify(want), `config.json disagrees with the weights (${configSummary(cfg)}).`));
    }
    if (!LOADABLE.includes(entry.dtype)) {
      throw new FormatError(describe(`${file}: tensor "${name}"`, `dtype ${entry.dtype}`, LOADABLE.join(', '), 'Quantized or integer weights are not supported; use a BF16/F16/F32 checkpoint.'));
    }
  }
  return plan;
}

/**
 * Loads the checkpoint in `dir` as float32 tensors keyed by their HF names (the embedding and lm_head as row blocks
 * `key#i` above opts.rowLimit). Every name in `expected` must be present
 * with that shape and nothing else (bar the ignored tensors above); errors name the file and tensor. Each tensor is
 * converted as soon as it is read, so host memory peaks at about one tensor beyond the result.
 */
export async function loadModelWeights(
  dir: string,
  cfg: LlamaConfig,
  expected: Record<string, number[]>,
  opts: LoadOptions = {},
): Promise<Record<string, tf.Tensor>> {
  const mf = listModelFiles(dir);
  const plan = planLoad(mf, cfg, expected);
  const total = plan.reduce((n, p) => n + p.entries.length, 0);
  const out: Record<string, tf.Tensor> = {};
  const rowLimit = opts.rowLimit === undefined ? rowSplitLimit() : opts.rowLimit;
  let i = 0;
  try {
    for (const { file, entries } of plan) {
      const st = openSafetensors(file);
      try {
        for (const e of entries) {
          const t = st.read(e.name);
          // Split on the host, so no tensor above the device's binding limit is ever made.
          for (const b of hostRowBlocks(e.name, t.data, t.shape, rowLimit)) out[b.key] = tf.tensor(b.data, b.shape, 'float32');
          opts.onTensor?.({ name: e.name, file, dtype: e.dtype, shape: t.shape, index: ++i, total });
        }
      } finally {
        st.close();
      }
      // Let the event loop breathe between shards (progress output, signals) on a long load.
      await new Promise((r) => setImmediate(r));
    }
  } catch (e) {
    for (const t of Object.values(out)) t.dispose();
    throw e;
  }
  return out;
}

// Loads a whole Hugging Face model directory: config.json, safetensors weights, tokenizer files.
// The one entry point commands use; it logs what it loaded and computes the hash that keys caches and resume.
import * as tf from '@tensorflow/tfjs';
import { existsSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { type LlamaConfig, loadLlamaConfig } from '../config/llama.js';
import { expectedWeightShapes, type Weights } from '../model/llama.js';
import { loadTokenizer, type Tokenizer } from '../tokenizer/tokenizer.js';
import { hashModelDir, hashFile } from '../util/hash.js';
import { InputError, describe } from '../util/errors.js';
import { listModelFiles, loadModelWeights } from './hf-model.js';
import { localModelDir } from './hub-cache.js';
import { progress } from '../util/progress.js';
import { assertWeightsFit, selectBackend, type BackendName, type BackendNeed } from '../backend/index.js';
import { rowSplitLimit } from '../backend/webgpu.js';
import { describeRowSplit } from '../model/row-blocks.js';

export interface LoadedModel {
  dir: string;
  cfg: LlamaConfig;
  weights: Weights;
  tokenizer: Tokenizer;
  /** Identity of the weights + config (see util/hash.ts). */
  modelHash: string;
  /** Identity of tokenizer.json + tokenizer_config.json. */
  tokenizerHash: string;
}

export async function loadModel(dir: string, log: (line: string) => void = () => {}, flag = '--model'): Promise<LoadedModel> {
  dir = localModelDir(dir, flag); // a Hub id: its HF-cache snapshot, or an error saying where the files go
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new InputError(describe(`${flag} ${dir}`, 'not a directory', 'a Hugging Face model directory', 'Run `node train.js init-tiny --out DIR` for a tiny test model.'));
  }
  const cfg = loadLlamaConfig(dir);
  const tokenizer = await loadTokenizer(dir);
  if (tokenizer.vocabSize > cfg.vocabSize) {
    throw new InputError(describe(`${dir}: tokenizer`, `${tokenizer.vocabSize} ids`, `at most vocab_size=${cfg.vocabSize} of config.json`));
  }
  const files = listModelFiles(dir);
  const modelHash = hashModelDir(dir, files.files.map((f) => basename(f)));
  const tokenizerHash = hashFile(join(dir, 'tokenizer.json')).slice(0, 16) + hashFile(join(dir, 'tokenizer_config.json')).slice(0, 16);
  const expected = expectedWeightShapes(cfg);
  assertWeightsFit(expected); // webgpu: a weight above the binding limit is refused by name before reading (embedding/lm_head: split by rows)
  const bar = progress('loading weights', Object.keys(expected).length, 'tensors');
  const weights = await loadModelWeights(dir, cfg, expected, { onTensor: (i) => bar.tick(i.index + 1) });
  const params = Object.values(weights).reduce((n, t) => n + t.size, 0);
  bar.done();
  log(`model: ${dir} (${cfg.numLayers} layers, hidden ${cfg.hiddenSize}, vocab ${cfg.vocabSize}, ${(params / 1e6).toFixed(2)}M params, ${files.kind})`);
  const split = describeRowSplit(weights, rowSplitLimit());
  if (split) log(split);
  return { dir, cfg, weights, tokenizer, modelHash, tokenizerHash };
}

export function disposeModel(m: LoadedModel): void {
  tf.dispose(Object.values(m.weights));
}

/**
 * Picks the backend (once per process) and loads the model: what every command that needs weights starts with.
 * The backend is sized against the model's config.json (and the step's `settings` when given): auto never picks wasm
 * for weights past its heap, and --backend wasm with such a model is refused before any weight is read.
 */
export async function openModel(backend: BackendName, dir: string | null, log: (line: string) => void, settings?: BackendNeed['settings']): Promise<LoadedModel> {
  if (!dir) throw new InputError(describe('--model', 'missing', 'a Hugging Face model directory', 'Run `node train.js init-tiny --out tiny` for a tiny one.'));
  await selectBackend(backend, log, modelNeed(dir, settings));
  return loadModel(dir, log);
}

/** What selectBackend sizes against for the model in `dir` (its config.json); undefined without one (loadModel then says what is missing). */
function modelNeed(dir: string, settings?: BackendNeed['settings'], flag = '--model'): BackendNeed | undefined {
  const local = localModelDir(dir, flag);
  return existsSync(join(local, 'config.json')) ? { cfg: loadLlamaConfig(local), source: dir, settings } : undefined;
}


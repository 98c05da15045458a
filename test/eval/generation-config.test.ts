// --generation-config model (issue 13 item 13): the model's generation_config.json as transformers' GenerationConfig
// reads it (generation/configuration_utils.py __init__, v4.x: do_sample False, temperature 1.0, top_p 1.0, top_k 50
// when unset), between our defaults and the flags. Llama 3.1 8B Instruct's generation_config.json is copied as published.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SAMPLING_DEFAULTS, modelSampling, samplingFromFlags, samplingOptions } from '../../src/config/sampling.js';
import { InputError } from '../../src/util/errors.js';

const LLAMA31_INSTRUCT = { bos_token_id: 128000, do_sample: true, eos_token_id: [128001, 128008, 128009], temperature: 0.6, top_p: 0.9, transformers_version: '4.42.3' };

function modelDir(gen?: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'gen-config-'));
  if (gen !== undefined) writeFileSync(join(dir, 'generation_config.json'), JSON.stringify(gen));
  return dir;
}

describe('--generation-config model', () => {
  it("Llama 3.1 Instruct's file: T 0.6, top-p 0.9, HF's top_k 50; max_new_tokens and the sample count stay ours", () => {
    const s = samplingFromFlags({ model: modelDir(LLAMA31_INSTRUCT), 'generation-config': 'model' }, SAMPLING_DEFAULTS.eval, 'n-samples');
    expect(s).toEqual({ ...SAMPLING_DEFAULTS.eval, temperature: 0.6, topP: 0.9, topK: 50 });
  });

  it('flags the user passed win over the file', () => {
    const s = samplingFromFlags({ model: modelDir(LLAMA31_INSTRUCT), 'generation-config': 'model', temperature: 0.2, 'top-k': 0 }, SAMPLING_DEFAULTS.pairs, 'n');
    expect(s).toEqual({ ...SAMPLING_DEFAULTS.pairs, temperature: 0.2, topP: 0.9, topK: 0 });
  });

  it('do_sample unset or false is greedy, whatever temperature says; max_new_tokens is read when set', () => {
    expect(modelSampling(SAMPLING_DEFAULTS.pairs, { temperature: 0.7 }, 'g.json')).toEqual({ ...SAMPLING_DEFAULTS.pairs, temperature: 0, topP: 1, topK: 0 });
    expect(modelSampling(SAMPLING_DEFAULTS.eval, { do_sample: true, max_new_tokens: 64 }, 'g.json')).toEqual({ ...SAMPLING_DEFAULTS.eval, temperature: 1, topP: 1, topK: 50, maxNewTokens: 64 });
  });

  it('without the flag our defaults stand, whatever the model folder holds', () => {
    expect(samplingFromFlags({ model: modelDir(LLAMA31_INSTRUCT) }, SAMPLING_DEFAULTS.eval, 'n-samples')).toEqual(SAMPLING_DEFAULTS.eval);
  });

  it('errors name the flag or the file and key', () => {
    expect(() => samplingFromFlags({ 'generation-config': 'model' }, SAMPLING_DEFAULTS.eval, 'n-samples')).toThrow(/^--generation-config model: no --model/);
    const missing = modelDir();
    expect(() => samplingFromFlags({ model: missing, 'generation-config': 'model' }, SAMPLING_DEFAULTS.eval, 'n-samples')).toThrow(`${join(missing, 'generation_config.json')} not found`);
    const bad = modelDir({ do_sample: true, top_k: 2.5 });
    expect(() => samplingFromFlags({ model: bad, 'generation-config': 'model' }, SAMPLING_DEFAULTS.eval, 'n-samples')).toThrow(`${join(bad, 'generation_config.json')}: top_k: 2.5 (expected an integer)`);
    expect(() => samplingFromFlags({ 'generation-config': 'vllm' }, SAMPLING_DEFAULTS.eval, 'n-samples')).toThrow(InputError);
  });

  it('the yargs options carry no defaults, so an unpassed flag cannot hide the file', () => {
    const opts = samplingOptions(SAMPLING_DEFAULTS.eval, 'n-samples');
    expect(Object.values(opts).some((o) => 'default' in o)).toBe(false);
    expect(opts.temperature!.describe).toContain('[default: 0.2]');
    expect(opts['generation-config']!.choices).toEqual(['ours', 'model']);
  });
});

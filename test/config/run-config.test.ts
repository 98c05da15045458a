// The strict run config: defaults <- preset <- --config file <- flags; unknown keys and wrong types name the key
// or flag; LoRA targets expand; the score command's subset of flags is honoured.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loraTargets, PRESETS, resolveRunConfig, RUN_SCHEMA } from '../../src/config/run.js';
import { defaults, flagName, yargsOptions } from '../../src/config/schema.js';
import { InputError } from '../../src/util/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'run-cfg-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function file(obj: unknown): string {
  const p = join(dir, `cfg${n++}.json`);
  writeFileSync(p, typeof obj === 'string' ? obj : JSON.stringify(obj));
  return p;
}

describe('resolveRunConfig', () => {
  it('with no layers gives the schema defaults', () => {
    const c = resolveRunConfig({});
    expect(c).toEqual(defaults(RUN_SCHEMA));
    expect(c.maxLength).toBe(1024);
    // TRL 1.x DPOConfig: max_length 1024, truncation_mode keep_start, and no max_prompt_length.
    expect(c.maxPromptLength).toBeNull();
    expect(c.truncationMode).toBe('keep_start');
    expect(c.beta).toBe(0.1);
    expect(c.model).toBeNull();
  });

  it('precedence: defaults < preset < config file < flags, key by key', () => {
    const tiny = PRESETS.tiny!;
    const p = resolveRunConfig({ preset: 'tiny' });
    expect(p.maxLength).toBe(tiny.maxLength);
    expect(p.learningRate).toBe(tiny.learningRate);
    expect(p.weightDecay).toBe(0); // untouched by the preset: default

    const f = file({ max_length: 200, learningRate: 1e-3, 'batch-size': 2 });
    const c = resolveRunConfig({ preset: 'tiny', config: f, 'batch-size': 8 });
    expect(c.maxLength).toBe(200); // file over preset
    expect(c.learningRate).toBe(1e-3); // file over preset, camelCase key
    expect(c.batchSize).toBe(8); // flag over file
    expect(c.maxPromptLength).toBe(tiny.maxPromptLength); // preset over default
    expect(c.adamBeta2).toBe(0.999); // default
    // Without the preset the file still wins over defaults.
    expect(resolveRunConfig({ config: f }).maxPromptLength).toBeNull();
    expect(() => resolveRunConfig({ 'truncation-mode': 'keep_middle' })).toThrow(/--truncation-mode: "keep_middle" \(expected one of keep_start\|keep_end\)/);
  });

  it('an unknown key in a --config file is an InputError naming the file and the key', () => {
    const f = file({ max_length: 100, lerning_rate: 0.1 });
    expect(() => resolveRunConfig({ config: f })).toThrow(InputError);
    expect(() => resolveRunConfig({ config: f })).toThrow(new RegExp(`${f}: lerning_rate: unknown key \\(expected one of .*learning-rate`));
  });

  it('a wrong type in a --config file names the file and the key', () => {
    const f = file({ batch_size: 'four' });
    expect(() => resolveRunConfig({ config: f })).toThrow(new RegExp(`${f}: batch_size: "four" \\(expected a number\\)`));
    expect(() => resolveRunConfig({ config: file({ use_rslora: 'yes' }) })).toThrow(/use_rslora: "yes" \(expected true or false\)/);
    // The loss names are dpo/losses.ts's LOSS_NAMES (TRL 1.x loss_type values + cdpo).
    const kto = file({ loss: 'kto' });
    expect(() => resolveRunConfig({ config: kto })).toThrow(new RegExp(`${kto}: loss: "kto" \\(expected one of sigmoid\\|hinge\\|ipo\\|exo_pair`));
    expect(() => resolveRunConfig({ loss: 'sigmoid', 'label-smoothing': 0.1 })).toThrow(/--label-smoothing: 0\.1 \(expected 0 with --loss sigmoid\)/);
    expect(() => resolveRunConfig({ loss: 'sigmoid,sft', 'loss-weights': '1' })).toThrow(/--loss-weights: "1"/);
    expect(resolveRunConfig({ loss: 'sigmoid,sft', 'loss-weights': '1,0.5' }).lossWeights).toBe('1,0.5');
    expect(() => resolveRunConfig({ config: file({ lora_r: 2.5 }) })).toThrow(/lora_r: 2\.5 \(expected an integer\)/);
  });

  it('a wrong flag value names the flag', () => {
    expect(() => resolveRunConfig({ 'batch-size': 'abc' })).toThrow(/--batch-size: "abc" \(expected a number\)/);
    expect(() => resolveRunConfig({ 'batch-size': 0 })).toThrow(/--batch-size: 0 \(expected >= 1\)/);
    expect(() => resolveRunConfig({ 'max-length': 1.5 })).toThrow(/--max-length: 1\.5 \(expected an integer\)/);
    expect(() => resolveRunConfig({ backend: 'gpu' })).toThrow(/--backend: "gpu" \(expected one of auto\|tensorflow\|wasm\|cpu\)/);
    expect(() => resolveRunConfig({ 'use-rslora': 'true' })).toThrow(/--use-rslora/);
    // Numeric strings from yargs are numbers.
    expect(resolveRunConfig({ beta: '0.25' }).beta).toBe(0.25);
  });

  it('bad config files and presets are named', () => {
    expect(() => resolveRunConfig({ config: join(dir, 'nope.json') })).toThrow(/--config .*nope\.json: file not found/);
    expect(() => resolveRunConfig({ config: file('[1, 2]') })).toThrow(/not a JSON object/);
    expect(() => resolveRunConfig({ config: file('{"beta": ') })).toThrow(/--config .*: invalid/);
    expect(() => resolveRunConfig({ preset: 'huge' })).toThrow(/--preset: "huge" \(expected one of tiny\)/);
  });

  it('`only` restricts which flags are read (the score command ignores training flags)', () => {
    const c = resolveRunConfig({ beta: 0.5, 'batch-size': 3 }, ['batchSize']);
    expect(c.batchSize).toBe(3);
    expect(c.beta).toBe(0.1);
  });

  it('nullable fields accept null; others refuse it', () => {
    expect(resolveRunConfig({ config: file({ model: null }) }).model).toBeNull();
    expect(() => resolveRunConfig({ config: file({ beta: null }) })).toThrow(/beta: null \(expected a number\)/);
  });
});

describe('schema helpers', () => {
  it('flagName is kebab case; yargs options carry no defaults (so absent flags do not override the file)', () => {
    expect(flagName('maxPromptLength')).toBe('max-prompt-length');
    const opts = yargsOptions(RUN_SCHEMA, ['batchSize', 'backend']);
    expect(Object.keys(opts)).toEqual(['backend', 'batch-size']);
    expect(opts['batch-size']).not.toHaveProperty('default');
    expect(opts.backend!.choices).toEqual(['auto', 'tensorflow', 'wasm', 'cpu']);
  });

  it('loraTargets expands all-linear and rejects unknown modules', () => {
    const base = defaults(RUN_SCHEMA);
    expect(loraTargets(base)).toEqual(['q_proj', 'k_proj', 'v_proj', 'o_proj']);
    expect(loraTargets({ ...base, loraTargets: 'all-linear' })).toEqual(['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']);
    expect(loraTargets({ ...base, loraTargets: ' q_proj , v_proj ' })).toEqual(['q_proj', 'v_proj']);
    expect(() => loraTargets({ ...base, loraTargets: 'q_proj,lm_head' })).toThrow(/--lora-targets: "lm_head"/);
  });
});

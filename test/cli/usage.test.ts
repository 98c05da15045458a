// The CLI's usage errors, in-process through main() (issue 12 items 14-16): --version, an unknown command lists the
// commands, an unknown flag says "did you mean", a bad number names the flag and the value, HF flag spellings parse.
// (Before: `--version` was "Unknown argument: version", `trian` was "Unknown argument: trian", `--batch-size abc` was
// "--batch-size: null", and `--per_device_train_batch_size` was unknown.)
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { commands } from '../../src/cli/commands.js';
import { main } from '../../src/cli/main.js';

async function run(args: string[]): Promise<{ out: string; err: string; code: number }> {
  let out = '';
  let err = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((out += String(s)), true));
  const e = vi.spyOn(console, 'error').mockImplementation((...a) => { err += a.join(' ') + '\n'; });
  const l = vi.spyOn(console, 'log').mockImplementation((...a) => { out += a.join(' ') + '\n'; });
  const before = process.exitCode;
  process.exitCode = 0;
  try {
    await main(args);
    return { out, err, code: Number(process.exitCode ?? 0) };
  } finally {
    process.exitCode = before;
    o.mockRestore();
    e.mockRestore();
    l.mockRestore();
  }
}

afterEach(() => vi.restoreAllMocks());

describe('cli usage (issue 12, items 14-16)', () => {
  it('--version prints package.json version', async () => {
    const r = await run(['--version']);
    expect(r.out.trim()).toBe((JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version);
  });

  it('an unknown command says so and lists the commands', async () => {
    const r = await run(['trian']);
    expect(r.code).toBe(2);
    // Every registered command, in help order (a command added to commands.ts joins the list).
    const names = commands.map((c) => String([c.command].flat()[0]).split(' ')[0]);
    expect(names).toEqual(expect.arrayContaining(['train', 'score', 'eval', 'pairs', 'experiment', 'merge', 'report', 'init-tiny', 'plan', 'doctor']));
    expect(r.err.split('\n')[0]).toBe(`error: unknown command "trian" (expected one of ${names.join(', ')}). Did you mean train?`);
  });

  it('an unknown flag says "did you mean", in either spelling', async () => {
    expect((await run(['train', '--lerning-rate', '1'])).err).toMatch(/--lerning-rate: unknown flag\. Did you mean --learning-rate\?/);
    expect((await run(['train', '--per_device_train_batch_siz', '2'])).err).toMatch(/Did you mean --per_device_train_batch_size\?/);
    expect((await run(['train', '--lerning-rate', '1'])).code).toBe(2);
  });

  it('--batch-size abc and --epochs 0 are refused before any model loads, naming the flag and the value', async () => {
    const a = await run(['train', '--model', 'nowhere', '--data', 'nothing.jsonl', '--batch-size', 'abc']);
    expect(a.err).toMatch(/error: --batch-size: "abc" \(expected a number\)/);
    expect(a.code).toBe(1);
    expect((await run(['train', '--model', 'nowhere', '--data', 'nothing.jsonl', '--per_device_train_batch_size', 'abc'])).err).toMatch(/--batch-size: "abc"/);
    expect((await run(['train', '--model', 'nowhere', '--data', 'nothing.jsonl', '--num_train_epochs', '0'])).err).toMatch(/--epochs: 0 \(expected > 0\)/);
    // A number flag with no value is a usage error naming it (yargs' own error, not a stack trace).
    const n = await run(['train', '--max-steps']);
    expect([n.code, n.err.split('\n')[0]]).toEqual([2, 'error: Not enough arguments following: max-steps']);
  });
});

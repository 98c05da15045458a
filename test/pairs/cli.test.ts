// `pairs` end to end with the real sandbox: --samples on hand-made completions with known pass counts in all three
// task formats (every chosen/rejected pick checked) and `train` taking one step on the result; a `pairs` process
// SIGKILLed mid-run resumes to the uninterrupted file; and `pairs --model` on the tiny model with our sample tasks.
// The process test runs the compiled command (dist/, built by `npm test`).
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import yargs from 'yargs';
import type { CommandModule } from 'yargs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pairsCommand } from '../../src/cli/pairs.js';
import { runPairs, runPairsMerge, type PairsJob, type PairsDeps } from '../../src/pairs/job.js';
import { readPairs } from '../../src/data/pairs.js';
import { chatPrompt } from '../../src/eval/prompting.js';
import { generateSamples, sampleTask, taskPrompt } from '../../src/eval/sampling.js';
import { loadTasks } from '../../src/eval/tasks.js';
import type { Runner } from '../../src/eval/execute.js';
import { disposeModel, loadModel, type LoadedModel } from '../../src/io/model-dir.js';
import { writeTinyModel } from '../../src/io/tiny-model.js';
import { progressPath } from '../../src/pairs/build.js';
import { PythonPool } from '../../src/python/index.js';
import { runTraining } from '../../src/train/loop.js';
import { runConfig, tokenized } from '../train/helpers.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'pairs-cli-'));
const HE = join(ROOT, 'data/tasks/humaneval-sample.jsonl');
const MBPP = join(ROOT, 'data/tasks/mbpp-sample.jsonl');
const STDIO = join(ROOT, 'data/tasks/stdio-sample.jsonl');

let pool: PythonPool;
let modelDir: string;
let model: LoadedModel | undefined;

beforeAll(async () => {
  await tf.setBackend('cpu');
  modelDir = join(dir, 'tiny');
  [pool] = await Promise.all([PythonPool.create({ workers: 2, timeoutMs: 20_000 }), writeTinyModel(modelDir, { seed: 0 })]);
});

afterAll(async () => {
  await pool?.close();
  if (model) disposeModel(model);
});

/** The shared pool, kept open across runs (close is a no-op); runPairs disposes the model it loads, so each run loads its own. */
function deps(printed: string[] = [], logged: string[] = []): PairsDeps {
  const runner: Runner & { close(): Promise<void> } = { run: (req) => pool.run(req), close: async () => {} };
  return {
    openRunner: async () => runner,
    print: (l) => printed.push(l),
    log: (l) => logged.push(l),
    loadModel: (_backend, d) => loadModel(d),
  };
}

/** Flat test settings -> a job: sampling and sandbox fields go to their typed configs (timeout in seconds). */
type FlatArgs = Omit<PairsJob, 'sampling' | 'sandbox'> & { n: number; temperature: number; topP: number; topK: number; maxNewTokens: number; seed: number;
  chat: boolean; batchSize?: number; timeout: number; workers: number; strictResults: boolean };
function args(over: Partial<FlatArgs>): PairsJob {
  const a: FlatArgs = {
    n: 4, temperature: 0.8, topP: 0.95, topK: 0, maxNewTokens: 24, seed: 0, chat: false, timeout: 20, workers: 2,
    backend: 'cpu', minGap: 0, requireChosenPass: false, strictResults: false, ...over,
  };
  return {
    ...a,
    sampling: { nSamples: a.n, temperature: a.temperature, topP: a.topP, topK: a.topK, maxNewTokens: a.maxNewTokens, seed: a.seed, chat: a.chat, batchSize: a.batchSize ?? null },
    sandbox: { timeoutS: a.timeout, workers: a.workers, strictResults: a.strictResults },
  };
}

function writeSamples(file: string, rows: [string | number, string][]): string {
  writeFileSync(file, rows.map(([task_id, completion]) => JSON.stringify({ task_id, completion })).join('\n') + '\n');
  return file;
}

const lines = (file: string) => readFileSync(file, 'utf8').split('\n').filter((l) => l).map((l) => JSON.parse(l) as Record<string, unknown>);
const pick = (r: Record<string, unknown>) => [r.task_id, r.chosen, r.rejected, r.chosen_passed, r.rejected_passed, r.tests_total, r.n_samples];

describe('pairs --samples (real sandbox, known pass counts)', () => {
  const mbppDef = 'def max_of_three(a, b, c):\n    return ';
  const outs: string[] = [];

  it('HumanEval: best vs worst, duplicates counted once, all-equal tasks skipped, tasks without samples left out', async () => {
    const samples = writeSamples(join(dir, 'he-samples.jsonl'), [
      ['HumanEvalSample/0', '    return a + b\n'], // 1/1
      ['HumanEvalSample/0', '    return a - b\n'], // 0/1
      ['HumanEvalSample/1', '    return True\n'], // 0/1 ('abc')
      ['HumanEvalSample/0', '    return a + b\n'], // duplicate
      ['HumanEvalSample/0', '    return (a + b)\n'], // 1/1, longer
      ['HumanEvalSample/1', '    return text == text[::-1]\n'], // 1/1
      ['HumanEvalSample/2', '    return 0\n'], // 0/1
      ['HumanEvalSample/2', '    return -1\n'], // 0/1
    ]);
    const out = join(dir, 'he.jsonl');
    const printed: string[] = [];
    const logged: string[] = [];
    await runPairs(args({ samples, tasks: HE, out }), deps(printed, logged));
    const tasks = loadTasks(HE);
    expect(lines(out).map(pick)).toEqual([
      ['HumanEvalSample/0', '    return a + b\n', '    return a - b\n', 1, 0, 1, 4],
      ['HumanEvalSample/1', '    return text == text[::-1]\n', '    return True\n', 1, 0, 1, 2],
    ]);
    expect(lines(out)[0]!.prompt).toBe(tasks[0]!.prompt);
    expect(lines(out)[0]!.n_unique).toBe(3);
    expect(printed.join('\n')).toContain('3 tasks: 2 pairs kept, 1 skipped (all samples score the same: 1)');
    expect(logged.join('\n')).toContain('7 of 10 tasks have no samples');
    expect(lines(progressPath(out)).slice(1).map((p) => [p.task_id, p.status])).toEqual([
      ['HumanEvalSample/0', 'kept'], ['HumanEvalSample/1', 'kept'], ['HumanEvalSample/2', 'skipped'],
    ]);
    outs.push(out);
  });

  it('MBPP: partial pass counts, tie rules, --min-gap and --require-chosen-pass', async () => {
    const samples = writeSamples(join(dir, 'mbpp-samples.jsonl'), [
      [1, `${mbppDef}c`], // 1/3
      [1, `${mbppDef}max(a, b, c)`], // 3/3
      [1, `${mbppDef}a`], // 2/3
      [1, `${mbppDef}b`], // 0/3
      [1, 'def max_of_three(a, b, c)\n    return max(a, b, c)'], // 0/3 (syntax error), longer: rejected
      [2, "def reverse_words(s):\n    return ' '.join(s.split()[::-1])"], // 3/3
      [2, "def reverse_words(s):\n    return ' '.join(s.split()[::-1]) if ' ' in s else ''"], // 2/3: gap 1/3 < 0.5
      [3, 'def is_prime(n):\n    return n == 2'], // 3/4
      [3, 'def is_prime(n):\n    return n'], // 0/4: gap 0.75, but chosen fails a test
    ]);
    const out = join(dir, 'mbpp.jsonl');
    const printed: string[] = [];
    await runPairs(args({ samples, tasks: MBPP, out, minGap: 0.5, requireChosenPass: true }), deps(printed));
    // MBPP ids stay integers, as in the MBPP files
    expect(lines(out).map(pick)).toEqual([[1, `${mbppDef}max(a, b, c)`, 'def max_of_three(a, b, c)\n    return max(a, b, c)', 3, 0, 3, 5]]);
    expect(printed.join('\n')).toContain('3 tasks: 1 pairs kept, 2 skipped (gap below --min-gap: 1, chosen fails a test: 1)');
    const prog = lines(progressPath(out)).slice(1);
    expect(prog.map((p) => [p.task_id, p.reason ?? p.status])).toEqual([[1, 'kept'], [2, 'gap below --min-gap'], [3, 'chosen fails a test']]);
    outs.push(out);
  });

  it('stdio: scored over public + private + generated tests; equal length falls back to first occurrence', async () => {
    const samples = writeSamples(join(dir, 'stdio-samples.jsonl'), [
      ['sum-two', 'a, b = map(int, input().split())\nprint(a + b)\n'], // 4/4
      ['sum-two', 'print(3)\n'], // 1/4
      ['sum-two', 'print(sum(map(int,input().split())))\n'], // 4/4, shorter: chosen
      ['sum-two', 'print(0)\n'], // 1/4, same length as print(3), later
      ['max-of-list', 'input()\nprint(5)\n'], // 1/3
      ['max-of-list', 'input()\nprint(2)\n'], // 1/3, same length, later
      ['max-of-list', 'n = int(input())\nprint(max(map(int, input().split())))\n'], // 3/3
    ]);
    const out = join(dir, 'stdio.jsonl');
    await runPairs(args({ samples, tasks: STDIO, out }), deps());
    expect(lines(out).map(pick)).toEqual([
      ['sum-two', 'print(sum(map(int,input().split())))\n', 'print(3)\n', 4, 1, 4, 4],
      ['max-of-list', 'n = int(input())\nprint(max(map(int, input().split())))\n', 'input()\nprint(5)\n', 3, 1, 3, 3],
    ]);
    outs.push(out);
  });

  it('`train` reads the pairs and takes a step on them', async () => {
    const all = join(dir, 'all-pairs.jsonl');
    writeFileSync(all, outs.map((f) => readFileSync(f, 'utf8')).join(''));
    expect(readPairs(all)).toHaveLength(5);
    const m = (model ??= await loadModel(modelDir));
    const cfg = runConfig({ model: modelDir, data: all, 'output-dir': join(dir, 'run'), 'max-steps': 1, 'max-length': 128, 'max-prompt-length': 96 });
    const recs = tokenized(m, all, cfg);
    expect(recs).toHaveLength(5);
    const res = await runTraining(m, recs, all, cfg, { log: () => {}, resume: null });
    expect(res.steps).toBe(1);
    const metrics = lines(join(dir, 'run', 'metrics.jsonl'));
    expect(Math.abs((metrics[0]!.loss as number) - Math.LN2)).toBeLessThan(1e-5);
  });

  it('a samples line may carry the prompt the model saw; lines of one task must agree on it', async () => {
    const msgs = [{ role: 'user', content: 'Reverse the line.' }];
    const file = join(dir, 'conv-samples.jsonl');
    const rows = [
      { task_id: 'reverse-line', completion: 'print(input()[::-1])\n', prompt: msgs, response: 'Sure:\n```python\nprint(input()[::-1])\n```' },
      { task_id: 'reverse-line', completion: 'print(input())\n', prompt: msgs, response: '```python\nprint(input())\n```' },
    ];
    writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const out = join(dir, 'conv.jsonl');
    await runPairs(args({ samples: file, tasks: STDIO, out }), deps());
    expect(lines(out)[0]).toMatchObject({
      prompt: msgs,
      chosen: [{ role: 'assistant', content: rows[0]!.response }],
      rejected: [{ role: 'assistant', content: rows[1]!.response }],
      chosen_passed: 3, rejected_passed: 1,
    });
    expect(readPairs(out)[0]!.conversational).toBe(true);
    writeFileSync(file, [rows[0], { ...rows[1], prompt: 'other' }].map((r) => JSON.stringify(r)).join('\n') + '\n');
    await expect(runPairs(args({ samples: file, tasks: STDIO, out: join(dir, 'conv2.jsonl') }), deps())).rejects.toThrow(
      /conv-samples\.jsonl:2: a "prompt" different from the one at .*conv-samples\.jsonl:1/,
    );
  });

  it('flag errors name the flag', async () => {
    await expect(runPairs(args({ tasks: HE, out: 'x' }), deps())).rejects.toThrow(/^--model \/ --samples: neither given/);
    await expect(runPairs(args({ samples: 's', model: 'm', tasks: HE, out: 'x' }), deps())).rejects.toThrow(/both given/);
    await expect(runPairs(args({ samples: 's', tasks: HE, out: 'x', minGap: 2 }), deps())).rejects.toThrow(/^--min-gap: 2 \(expected/);
    await expect(runPairs(args({ samples: 's', tasks: HE, out: 'x', rejected: 'likely' as 'frequent' }), deps())).rejects.toThrow(/^--rejected: likely \(expected one of longest\|frequent/);
    await expect(runPairs(args({ samples: 's', tasks: HE, out: 'x', shard: '3/3' }), deps())).rejects.toThrow(/^--shard: "3\/3"/);
  });
});

describe('pairs process', () => {
  /** A HumanEval body that busy-waits inside the function, so each checked sample takes about 0.6 s. */
  const slow = (body: string) => `    import time\n    __t = time.time()\n    while time.time() - __t < 0.15: pass\n${body}`;

  it('SIGKILL mid-run, then a torn line: the re-run finishes with no task duplicated or missing', async () => {
    for (const f of ['src/cli/pairs.ts', 'src/pairs/job.ts', 'src/pairs/build.ts', 'src/pairs/rank.ts', 'src/eval/sampling.ts']) {
      const js = join(ROOT, 'dist', f.replace(/\.ts$/, '.js'));
      if (!existsSync(js) || statSync(js).mtimeMs < statSync(join(ROOT, f)).mtimeMs) throw new Error(`${js} is missing or stale: run \`npx tsc -p tsconfig.json\` (npm test does)`);
    }
    const tasks = readFileSync(HE, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, string>);
    const samples = writeSamples(
      join(dir, 'slow-samples.jsonl'),
      tasks.flatMap((t) => [[t.task_id!, slow(t.canonical_solution!)], [t.task_id!, '    return None\n']] as [string, string][]),
    );
    const out = join(dir, 'killed.jsonl');
    const flags = ['pairs', '--samples', samples, '--tasks', HE, '--out', out, '--workers', '1'];
    const entry = pathToFileURL(join(ROOT, 'dist/src/cli/pairs.js')).href;
    const script = `const { default: yargs } = await import('yargs'); const { pairsCommand } = await import(${JSON.stringify(entry)});
      await yargs(process.argv.slice(1)).command(pairsCommand).strict().parseAsync();`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, '--', ...flags], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
    const done = () => (existsSync(progressPath(out)) ? lines(progressPath(out)).length - 1 : 0);
    const t0 = Date.now();
    while (done() < 3) {
      if (child.exitCode !== null || Date.now() - t0 > 60_000) throw new Error(`the pairs process ended or stalled before 3 tasks:\n${stderr}`);
      await new Promise((r) => setTimeout(r, 25));
    }
    child.kill('SIGKILL');
    await exited;
    // Done = a progress line or a pair line (the kill may fall between the two writes of a task).
    const ids = (f: string) =>
      readFileSync(f, 'utf8').split('\n').flatMap((l) => {
        try {
          return [String(JSON.parse(l).task_id)];
        } catch {
          return [];
        }
      });
    const before = new Set([...ids(out), ...ids(progressPath(out))].filter((id) => id !== 'undefined')).size;
    expect(before, 'killed mid-run').toBeLessThan(10);
    appendFileSync(out, '{"prompt": "def f', 'utf8'); // a torn write

    const logged: string[] = [];
    const printed: string[] = [];
    await runPairs(args({ samples, tasks: HE, out }), deps(printed, logged));
    expect(logged.join('\n')).toContain('removed a torn last line');
    expect(logged.join('\n')).toContain(`resuming ${out}: ${before} of 10 tasks already done`);

    const whole = join(dir, 'unkilled.jsonl');
    await runPairs(args({ samples, tasks: HE, out: whole }), deps());
    expect(readFileSync(out, 'utf8')).toBe(readFileSync(whole, 'utf8'));
    expect(lines(out).map((r) => r.task_id)).toEqual(tasks.map((t) => t.task_id));
    const prog = lines(progressPath(out)).slice(1).map((p) => p.task_id);
    expect(prog).toEqual(tasks.map((t) => t.task_id));
  });
});

describe('pairs --model on the tiny model', () => {
  it('runs end to end on our sample tasks; counts agree between the summary, the pairs file and the progress file', async () => {
    const out = join(dir, 'tiny.jsonl');
    const printed: string[] = [];
    await runPairs(args({ model: modelDir, tasks: HE, out, n: 4, maxNewTokens: 24 }), deps(printed));
    const prog = lines(progressPath(out));
    expect(prog[0]).toMatchObject({ format: 'dpo-pairs-progress', settings: { source: 'model', n: 4, max_new_tokens: 24, chat: false } });
    const status = prog.slice(1);
    expect(status).toHaveLength(10);
    const kept = status.filter((s) => s.status === 'kept').length;
    expect(lines(out)).toHaveLength(kept);
    expect(printed.join('\n')).toContain(`10 tasks: ${kept} pairs kept, ${10 - kept} skipped`);
    expect(status.every((s) => s.n_samples === 4)).toBe(true);
    if (kept > 0) {
      const recs = readPairs(out);
      expect(recs.every((r) => r.raw.chosen_passed as number > (r.raw.rejected_passed as number))).toBe(true);
    }
  });

  it('shard 0/2 + 1/2 merged equals one run (sampling streams are per task), in chat mode', async () => {
    const base = { model: modelDir, tasks: MBPP, n: 2, maxNewTokens: 8, chat: true };
    const whole = join(dir, 'chat-whole.jsonl');
    await runPairs(args({ ...base, out: whole }), deps());
    const parts = [0, 1].map((i) => join(dir, `chat-part${i}.jsonl`));
    for (let i = 0; i < 2; i++) await runPairs(args({ ...base, out: parts[i], shard: `${i}/2` }), deps());
    const merged = join(dir, 'chat-merged.jsonl');
    const printed: string[] = [];
    await runPairsMerge({ files: parts, out: merged, tasks: MBPP }, { print: (l) => printed.push(l), log: () => {} });
    expect(readFileSync(merged, 'utf8')).toBe(readFileSync(whole, 'utf8'));
    expect(printed.join('\n')).toContain('tasks: 10 done');
    // the progress lines agree too, task by task
    const strip = (f: string) => lines(progressPath(f)).slice(1).sort((a, b) => String(a.task_id).localeCompare(String(b.task_id)));
    expect([...strip(parts[0]!), ...strip(parts[1]!)].sort((a, b) => String(a.task_id).localeCompare(String(b.task_id)))).toEqual(strip(whole));
  });

  it("a task's samples do not depend on the other tasks sampled with it", async () => {
    const m = (model ??= await loadModel(modelDir));
    const tasks = loadTasks(MBPP).slice(0, 3);
    const opts = { nSamples: 3, temperature: 1, topP: 1, maxNewTokens: 6, seed: 7 };
    const before = tf.memory().numTensors;
    const all = await generateSamples(m, null, tasks, opts);
    const alone = await sampleTask(m, null, tasks[2]!, opts);
    expect(tf.memory().numTensors).toBe(before);
    expect(all.samples.slice(6).map((s) => s.completion)).toEqual(alone.samples.map((s) => s.completion));
    expect(all.samples.map((s) => s.taskId)).toEqual(tasks.flatMap((t) => [t.taskId, t.taskId, t.taskId]));
    expect(all.prompts.get(tasks[0]!.taskId)).toBe(tasks[0]!.prompt);
    expect(new Set(all.samples.map((s) => s.completion)).size).toBeGreaterThan(1);
  });

  it('the chat prompt recorded is the one chatPrompt renders', async () => {
    const m = (model ??= await loadModel(modelDir));
    const task = loadTasks(HE)[0]!;
    const tp = taskPrompt(m.tokenizer, task, true);
    expect(tp.rendered).toBe(chatPrompt(m.tokenizer, task.prompt));
    expect(m.tokenizer.applyChatTemplate(tp.prompt as never, { addGenerationPrompt: true })).toBe(tp.rendered);
  });
});

describe('yargs wiring', () => {
  it('`pairs merge --out ALL --tasks FILE a b` runs the merge', async () => {
    const a = join(dir, 'ya.jsonl');
    const b = join(dir, 'yb.jsonl');
    writeFileSync(a, JSON.stringify({ prompt: 'p', chosen: 'x', rejected: 'y', task_id: 'HumanEvalSample/3' }) + '\n');
    writeFileSync(b, JSON.stringify({ prompt: 'p', chosen: 'x', rejected: 'y', task_id: 'HumanEvalSample/1' }) + '\n');
    const out = join(dir, 'ymerged.jsonl');
    const log = console.log;
    console.log = () => {};
    try {
      await yargs(['pairs', 'merge', '--out', out, '--tasks', HE, a, b])
        .command(pairsCommand as unknown as CommandModule)
        .strict()
        .fail((msg, err) => {
          throw err ?? new Error(msg);
        })
        .exitProcess(false)
        .parseAsync();
    } finally {
      console.log = log;
    }
    expect(lines(out).map((r) => r.task_id)).toEqual(['HumanEvalSample/1', 'HumanEvalSample/3']);
  });
});

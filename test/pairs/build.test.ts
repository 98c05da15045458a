// The resumable pair job with a scripted runner: pair lines in task order that `train` reads (standard and
// conversational), the progress sidecar, an interrupted run (injected failure + torn last line) that resumes to the
// uninterrupted bytes, the crash between a pair line and its progress line, settings mismatch, and shard + merge.
import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readPairs } from '../../src/data/pairs.js';
import { tokenizeRecords } from '../../src/data/tokenize.js';
import type { RunRequest, RunResult, Runner } from '../../src/eval/execute.js';
import type { PromptText } from '../../src/eval/sampling.js';
import { parseTasks, type Sample, type Task } from '../../src/eval/tasks.js';
import { progressPath, runPairJob, type PairJobOptions } from '../../src/pairs/build.js';
import { repairJsonl } from '../../src/io/json.js';
import { mergePairFiles } from '../../src/pairs/merge.js';
import { makeTinyTokenizer } from '../../src/tokenizer/tiny.js';
import { tokenizerFromFiles } from '../../src/tokenizer/tokenizer.js';
import { FormatError, InputError, MismatchError } from '../../src/util/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'pairs-build-'));
const quiet = () => {};

// 12 stdio tasks with 4 tests each: input "i\n" expects "ok". A completion "k=<n> ..." prints ok for inputs < n.
const TASKS: Task[] = parseTasks(
  Array.from({ length: 12 }, (_, t) =>
    JSON.stringify({ name: `t${t}`, description: `task ${t}`, public_tests: { input: ['0\n', '1\n'], output: ['ok\n', 'ok\n'] }, private_tests: { input: ['2\n', '3\n'], output: ['ok\n', 'ok\n'] } }),
  ).join('\n'),
  'tasks.jsonl',
);

/** Passes `k` of the 4 tests for "k=<k>"; a random delay makes tasks finish out of order. */
function fakeRunner(): Runner & { runs: number } {
  const r = {
    runs: 0,
    async run(req: RunRequest): Promise<RunResult> {
      r.runs++;
      await new Promise((res) => setTimeout(res, Math.random() * 5));
      const k = Number(/^k=(\d)/.exec(req.code)?.[1] ?? 0);
      const ok = Number(req.stdin) < k;
      return { result: 'passed', passed: true, stdout: ok ? 'ok\n' : 'no\n', stderr: '', durationMs: 1 };
    },
  };
  return r;
}

/** Per task t: a varied set of completions; task 3k+2 has all-equal scores (skipped), task 3k+1 a single unique one. */
function completionsFor(t: number): string[] {
  if (t % 3 === 2) return ['k=2 a', 'k=2 bb', 'k=2 a'];
  if (t % 3 === 1 && t % 2 === 1) return ['k=4 same', 'k=4 same'];
  return [`k=1 worst-long-${t}`, `k=4 best-${t}`, 'k=1 w', `k=4 best-longer-${t}`, `k=3 mid`, `k=4 best-${t}`];
}

function samplesFor(task: Task, idx: number): Sample[] {
  return completionsFor(idx).map((completion, i) => ({ taskId: task.taskId, completion, record: { task_id: task.taskId, completion }, where: `s${i}` }));
}

function job(out: string, over: Partial<PairJobOptions> = {}): PairJobOptions {
  return {
    out,
    tasks: TASKS,
    source: async (task) => ({ samples: samplesFor(task, TASKS.indexOf(task)), prompt: task.prompt }),
    runner: fakeRunner(),
    settings: { n: 6 },
    taskConcurrency: 4,
    log: quiet,
    ...over,
  };
}

const lines = (file: string) => readFileSync(file, 'utf8').split('\n').filter((l) => l).map((l) => JSON.parse(l) as Record<string, unknown>);

describe('runPairJob', () => {
  it('writes one TRL pair per kept task in task order, a progress line per task, and counts skips', async () => {
    const out = join(dir, 'one.jsonl');
    const summary = await runPairJob(job(out));
    const rows = lines(out);
    const keptIds = TASKS.filter((_, t) => !(t % 3 === 2 || (t % 3 === 1 && t % 2 === 1))).map((t) => t.taskId);
    expect(rows.map((r) => r.task_id)).toEqual(keptIds);
    expect(rows[0]).toEqual({
      prompt: 'task 0', chosen: 'k=4 best-0', rejected: 'k=1 worst-long-0',
      task_id: 't0', chosen_passed: 4, rejected_passed: 1, tests_total: 4, n_samples: 6, n_unique: 5,
    });
    expect(summary).toMatchObject({ tasks: 12, resumed: 0, processed: 12, kept: keptIds.length, samples: 6 * keptIds.length + 3 * 4 + 2 * 2 });
    expect(summary.skipped).toMatchObject({ 'all samples score the same': 4, 'single unique sample': 2 });

    const prog = lines(progressPath(out));
    expect(prog[0]).toEqual({ format: 'dpo-pairs-progress', version: 1, settings: { n: 6 } });
    expect(prog.slice(1).map((p) => p.task_id)).toEqual(TASKS.map((t) => t.taskId));
    expect(prog[3]).toMatchObject({ task_id: 't2', status: 'skipped', reason: 'all samples score the same', n_samples: 3, n_unique: 2 });

    // `train` reads it: readPairs + TRL tokenization with the tiny tokenizer (EOS appended, nothing dropped)
    const recs = readPairs(out);
    expect(recs).toHaveLength(keptIds.length);
    expect(recs[0]!.raw.chosen_passed).toBe(4);
    const tok = tokenizerFromFiles(makeTinyTokenizer());
    const data = tokenizeRecords(tok, recs, { maxLength: 256, maxPromptLength: 128 }, out);
    expect(data.pairs).toHaveLength(keptIds.length);
    expect(data.dropped).toEqual([]);

    // a second run finds everything done and writes nothing
    const again = await runPairJob(job(out, { runner: fakeRunner() }));
    expect(again).toMatchObject({ resumed: 12, processed: 0, kept: keptIds.length });
    expect(lines(out)).toEqual(rows);
  });

  it('conversational prompts give message-list pairs of the raw answers that the chat template renders', async () => {
    const out = join(dir, 'chat.jsonl');
    const prompt: PromptText = [{ role: 'user', content: 'Write it.' }];
    await runPairJob(
      job(out, {
        tasks: TASKS.slice(0, 1),
        source: async (task) => ({
          prompt,
          samples: ['k=4', 'k=0'].map((completion, i) => ({
            taskId: task.taskId, completion, record: { task_id: task.taskId, completion, response: `Here:\n\`\`\`python\n${completion}\n\`\`\`${'!'.repeat(i)}` }, where: 'x',
          })),
        }),
      }),
    );
    const [row] = lines(out);
    expect(row).toMatchObject({
      prompt,
      chosen: [{ role: 'assistant', content: 'Here:\n```python\nk=4\n```' }],
      rejected: [{ role: 'assistant', content: 'Here:\n```python\nk=0\n```!' }],
      chosen_passed: 4, rejected_passed: 0,
    });
    const recs = readPairs(out);
    expect(recs[0]!.conversational).toBe(true);
    const data = tokenizeRecords(tokenizerFromFiles(makeTinyTokenizer()), recs, { maxLength: 256, maxPromptLength: 128 }, out);
    expect(data.pairs).toHaveLength(1);
  });

  it('an interrupted run (failure after k tasks, then a torn last line) resumes to exactly the uninterrupted file', async () => {
    const whole = join(dir, 'whole.jsonl');
    await runPairJob(job(whole));
    const out = join(dir, 'broken.jsonl');
    let calls = 0;
    const failing = job(out, {
      source: async (task) => {
        if (++calls > 7) throw new Error('injected crash');
        return { samples: samplesFor(task, TASKS.indexOf(task)), prompt: task.prompt };
      },
    });
    await expect(runPairJob(failing)).rejects.toThrow('injected crash');
    const doneBefore = lines(progressPath(out)).length - 1;
    expect(doneBefore).toBeGreaterThan(0);
    expect(doneBefore).toBeLessThanOrEqual(7);
    // the crash tore the next line half-way through the write
    const next = JSON.stringify({ prompt: 'task 9', chosen: 'k=4', rejected: 'k=0', task_id: 't9' });
    appendFileSync(out, next.slice(0, 25));
    const logged: string[] = [];
    const summary = await runPairJob(job(out, { log: (l) => logged.push(l) }));
    expect(logged.join('\n')).toMatch(/broken\.jsonl: removed a torn last line \(25 bytes\)/);
    expect(summary).toMatchObject({ resumed: doneBefore, processed: 12 - doneBefore });
    expect(readFileSync(out, 'utf8')).toBe(readFileSync(whole, 'utf8'));
    const ids = lines(progressPath(out)).slice(1).map((p) => p.task_id);
    expect([...ids].sort()).toEqual(TASKS.map((t) => t.taskId).sort());
  });

  it('a crash between a pair line and its progress line: the task is not redone, its progress line comes back', async () => {
    const whole = join(dir, 'whole2.jsonl');
    await runPairJob(job(whole));
    const out = join(dir, 'gap.jsonl');
    writeFileSync(out, readFileSync(whole, 'utf8'));
    const prog = readFileSync(progressPath(whole), 'utf8').split('\n');
    // keep the header and the first task's progress line only, then a torn half line
    writeFileSync(progressPath(out), prog.slice(0, 2).join('\n') + '\n' + prog[2]!.slice(0, 10));
    const runner = fakeRunner();
    const logged: string[] = [];
    const summary = await runPairJob(job(out, { runner, log: (l) => logged.push(l) }));
    expect(readFileSync(out, 'utf8')).toBe(readFileSync(whole, 'utf8'));
    // kept tasks were recovered from the pairs file; only the skipped ones (no pair line) ran again
    expect(summary.resumed).toBe(1 + lines(whole).length - 1);
    expect(runner.runs).toBe((3 * 4 + 2 * 2) * 4);
    expect(logged.filter((l) => l.includes('has a pair line but no progress line'))).toHaveLength(lines(whole).length - 1);
    const statuses = lines(progressPath(out)).slice(1);
    expect(new Set(statuses.map((s) => s.task_id)).size).toBe(12);
  });

  it('refuses to resume with other settings, and a damaged middle line', async () => {
    const out = join(dir, 'settings.jsonl');
    await runPairJob(job(out, { tasks: TASKS.slice(0, 2) }));
    await expect(runPairJob(job(out, { settings: { n: 8 } }))).rejects.toThrow(MismatchError);
    await expect(runPairJob(job(out, { settings: { n: 8 } }))).rejects.toThrow(/was written with other settings \(n: 6 -> 8\)/);
    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, '{"task_id":"t0","prompt":"p","chosen":"a","rejected":"b"}\nnot json\n{"task_id":"t1"}\n');
    await expect(runPairJob(job(bad))).rejects.toThrow(FormatError);
  });

  it('repairJsonl completes a whole last object that lacks its newline and cuts a torn one', () => {
    const f = join(dir, 'log.jsonl');
    writeFileSync(f, '{"a":1}\n{"b":2}');
    expect(repairJsonl(f).map((l) => l.value)).toEqual([{ a: 1 }, { b: 2 }]);
    expect(readFileSync(f, 'utf8')).toBe('{"a":1}\n{"b":2}\n');
    writeFileSync(f, '{"a":1}\n{"b":2}\n{"c":');
    expect(repairJsonl(f).map((l) => l.value)).toEqual([{ a: 1 }, { b: 2 }]);
    expect(readFileSync(f, 'utf8')).toBe('{"a":1}\n{"b":2}\n');
    writeFileSync(f, '{"a":1}\n\0\0\0\n');
    expect(repairJsonl(f).map((l) => l.value)).toEqual([{ a: 1 }]);
    expect(readFileSync(f, 'utf8')).toBe('{"a":1}\n');
  });
});

describe('shards and merge', () => {
  it('shards i/3 merged in the tasks order equal one run, byte for byte; input order keeps the same set', async () => {
    const whole = join(dir, 'merge-whole.jsonl');
    await runPairJob(job(whole));
    const parts = [0, 1, 2].map((i) => join(dir, `shard${i}.jsonl`));
    for (let i = 0; i < 3; i++) await runPairJob(job(parts[i]!, { tasks: TASKS.filter((_, j) => j % 3 === i) }));
    const merged = join(dir, 'merged.jsonl');
    const order = TASKS.map((t) => t.taskId);
    expect(mergePairFiles([parts[2]!, parts[0]!, parts[1]!], merged, order)).toEqual({ pairs: lines(whole).length, duplicates: 0, files: 3 });
    expect(readFileSync(merged, 'utf8')).toBe(readFileSync(whole, 'utf8'));

    const unordered = join(dir, 'merged-input-order.jsonl');
    mergePairFiles([parts[2]!, parts[0]!, parts[1]!, parts[0]!], unordered);
    const got = lines(unordered);
    expect(got.map((r) => r.task_id)).toEqual([...lines(parts[2]!), ...lines(parts[0]!), ...lines(parts[1]!)].map((r) => r.task_id));
    expect([...got].sort((a, b) => String(a.task_id).localeCompare(String(b.task_id)))).toEqual(
      lines(whole).sort((a, b) => String(a.task_id).localeCompare(String(b.task_id))),
    );
  });

  it('merge drops identical duplicates and refuses conflicting ones, torn shards and unknown tasks', () => {
    const a = join(dir, 'ma.jsonl');
    const b = join(dir, 'mb.jsonl');
    const line = { prompt: 'p', chosen: 'x', rejected: 'y', task_id: 't0', chosen_passed: 1 };
    writeFileSync(a, JSON.stringify(line) + '\n');
    writeFileSync(b, JSON.stringify({ task_id: 't0', chosen_passed: 1, prompt: 'p', chosen: 'x', rejected: 'y' }) + '\n');
    expect(mergePairFiles([a, b], join(dir, 'm1.jsonl'))).toMatchObject({ pairs: 1, duplicates: 1 });
    writeFileSync(b, JSON.stringify({ ...line, chosen: 'z' }) + '\n');
    expect(() => mergePairFiles([a, b], join(dir, 'm2.jsonl'))).toThrow(/mb\.jsonl:1: task_id t0 differs from its line at .*ma\.jsonl:1/);
    writeFileSync(b, JSON.stringify(line).slice(0, 9));
    expect(() => mergePairFiles([a, b], join(dir, 'm3.jsonl'))).toThrow(/a torn last line/);
    expect(() => mergePairFiles([a], join(dir, 'm4.jsonl'), ['t1'])).toThrow(InputError);
    expect(() => mergePairFiles([a], join(dir, 'm4.jsonl'), ['t1'])).toThrow(/task_id t0 is not in the tasks file/);
  });
});


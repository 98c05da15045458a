// The learnable world's first measurement (issue 16): generate a world, init the `world` preset model, SFT it from
// scratch (--full, loss on solutions only), then held-out pass@1 (greedy and T = 0.8) in the sandbox, by level.
// Prints one table with the config, the SFT time and tokens/s (the PyTorch prototype: 8.3k tokens/s, 2M tokens,
// held-out greedy pass@1 0.33). Build with `npx tsc -p tsconfig.json`, then:
//   node dist/scripts/world-experiment.js [--tokens N] [--out DIR] [--backend wasm] [--heldout N] [--help]
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { selectBackend, type BackendName } from '../src/backend/index.js';
import { evaluateCompletions } from '../src/eval/execute.js';
import { generateSamples } from '../src/eval/sampling.js';
import { loadTasks } from '../src/eval/tasks.js';
import { disposeModel, loadModel } from '../src/io/model-dir.js';
import { TINY_PRESETS, writeTinyModel } from '../src/io/tiny-model.js';
import { PythonPool } from '../src/python/index.js';
import { resolveSftConfig } from '../src/sft/config.js';
import { loadSftFile } from '../src/sft/data.js';
import { runSft } from '../src/sft/train.js';
import { generateWorld, writeWorld } from '../src/world/world.js';

const USAGE = `node dist/scripts/world-experiment.js [options]
  --out DIR          work folder (default checkpoints/world-experiment; replaced)
  --seed N           world, model and SFT seed (default 0)
  --size N           train tasks (default 8000)
  --heldout N        held-out tasks evaluated (default 100)
  --tokens N         SFT token budget (prompt + solution tokens; default 2000000, the prototype's)
  --batch-size N     sequences per step (default 4: the prototype found 4 better than 8 at a fixed budget)
  --lr X             peak learning rate (default 2e-3; cosine, 2% warmup, weight decay 0.1 on matrices)
  --backend B        tfjs backend (default wasm: about 2x cpu here)
  --max-new-tokens N per held-out sample (default 160)`;

const { values: a } = parseArgs({
  options: {
    out: { type: 'string', default: 'checkpoints/world-experiment' }, seed: { type: 'string', default: '0' }, size: { type: 'string', default: '8000' },
    heldout: { type: 'string', default: '100' }, tokens: { type: 'string', default: '2000000' }, 'batch-size': { type: 'string', default: '4' },
    lr: { type: 'string', default: '2e-3' }, backend: { type: 'string', default: 'wasm' }, 'max-new-tokens': { type: 'string', default: '160' }, help: { type: 'boolean' },
  },
});
if (a.help) {
  console.log(USAGE);
  process.exit(0);
}
const log = (l: string) => console.error(l);
const seed = Number(a.seed);
const out = a.out!;
if (existsSync(out)) rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

// 1. The world and the model.
const world = generateWorld({ seed, size: Number(a.size), heldout: Number(a.heldout) });
const files = writeWorld(join(out, 'world'), world);
const modelDir = join(out, 'init');
await writeTinyModel(modelDir, { ...TINY_PRESETS.world, seed });
await selectBackend(a.backend as BackendName, log);

// 2. SFT from scratch, for the token budget.
const base = await loadModel(modelDir, log);
const data = loadSftFile(base.tokenizer, files.train, 1024);
const perStep = Number(a['batch-size']) * (data.examples.reduce((n, e) => n + e.promptIds.length + e.completionIds.length, 0) / data.examples.length);
const maxSteps = Math.max(1, Math.round(Number(a.tokens) / perStep));
const sftDir = join(out, 'sft');
const cfg = resolveSftConfig({
  model: modelDir, data: files.train, full: true, 'batch-size': a['batch-size'], 'max-steps': maxSteps, 'learning-rate': a.lr, 'lr-scheduler': 'cosine',
  'warmup-ratio': 0.02, 'weight-decay': 0.1, 'save-steps': 0, 'logging-steps': Math.max(1, Math.round(maxSteps / 20)), 'output-dir': sftDir, seed,
});
const t0 = Date.now();
const res = await runSft(base, data, files.train, cfg, { log });
const sftSeconds = (Date.now() - t0) / 1000;
disposeModel(base);
const tokens = res.lastMetrics?.num_tokens ?? 0;

// 3. Held-out pass@1 in the sandbox, greedy and at T = 0.8, by level.
const model = await loadModel(sftDir, log);
const tasks = loadTasks(files.heldout);
const levels = new Map(world.heldout.map((t) => [t.record.task_id, t.record.level]));
const pool = await PythonPool.create({ workers: 2, timeoutMs: 10_000 });
const rows: Record<string, string>[] = [];
try {
  for (const temperature of [0, 0.8]) {
    const t1 = Date.now();
    const { samples } = await generateSamples(model, null, tasks, { nSamples: 1, temperature, topP: 1, maxNewTokens: Number(a['max-new-tokens']), seed });
    const results = await evaluateCompletions(tasks, samples, pool);
    const rate = (ok: boolean[]) => (ok.length ? (ok.filter(Boolean).length / ok.length).toFixed(3) : '-');
    const byLevel = [1, 2, 3].map((l) => rate(results.filter((r) => levels.get(r.taskId) === l).map((r) => r.passed)));
    rows.push({ sampling: temperature === 0 ? 'greedy' : `T=${temperature}`, 'pass@1': rate(results.map((r) => r.passed)), 'L1/L2/L3': byLevel.join('/'), 'eval s': ((Date.now() - t1) / 1000).toFixed(0) });
    if (temperature === 0) for (const s of samples.slice(0, 3)) log(`sample ${s.taskId}:\n${s.completion}`);
  }
} finally {
  await pool.close();
  disposeModel(model);
}

console.log(`world seed ${seed}: ${world.train.length} train / ${world.heldout.length} held-out tasks; model: world preset (d 96, 4 layers, 4 heads), backend ${a.backend}`);
console.log(`SFT --full: ${res.steps} steps x batch ${a['batch-size']}, lr ${a.lr} cosine, ${tokens} tokens in ${sftSeconds.toFixed(0)} s = ${(tokens / sftSeconds).toFixed(0)} tokens/s (prototype: 8.3k tokens/s); final loss ${res.lastMetrics?.loss.toFixed(4)}, mean_token_accuracy ${res.lastMetrics?.mean_token_accuracy.toFixed(4)}`);
console.log('| sampling | held-out pass@1 | L1/L2/L3 | eval s |\n|---|---|---|---|');
for (const r of rows) console.log(`| ${r.sampling} | ${r['pass@1']} | ${r['L1/L2/L3']} | ${r['eval s']} |`);

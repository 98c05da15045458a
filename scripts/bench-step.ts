// Times one full DPO optimizer step (reference log-probs without grad, policy forward + backward into LoRA, clipping,
// AdamW) with our code on each backend, and the PyTorch peer script (../shared/bench/torch_dpo_step.py) on the same shapes.
// Each backend runs in its own child process (the backend is chosen once per process). Prints one table of tokens/s.
// Build with `npx tsc -p tsconfig.json`, then: node dist/scripts/bench-step.js [--preset small|tiny|1b] [--help]
// The 1b preset (Llama 3.2 1B's shapes, untied head as in the peer script: 6.0 GB of float32 weights) runs on the
// backend `--backend auto` picks for it (cpu: past wasm's 4 GiB heap); it needs ~8 GB of RAM and minutes a step.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const USAGE = `node dist/scripts/bench-step.js [options]
  --preset P         small (default), tiny or 1b: the shapes of torch_dpo_step.py's presets
  --steps N          timed steps after one warm-up step (default 3; 1 when the warm-up takes over 20 s)
  --lora-dropout P   LoRA dropout in the timed steps (default 0; PEFT's usual 0.05 makes a mask per adapter input)
  --backends LIST    comma-separated, of auto,cpu,wasm,tensorflow (default: cpu,wasm,tensorflow, tensorflow only when
                     installed; for 1b: auto, which sizes the backend against the model and the step's plan)
  --kernels MODE     DPO_KERNELS for our children: auto (default), blas, xnnpack or reference
  --torch-script F   the PyTorch peer (default: ../shared/bench/torch_dpo_step.py next to this repository)
  --threads L        DPO_THREADS for our children, one row per count (e.g. 1,2; default: the idle cores)
  --torch-threads L  thread counts to try, best kept (default 1,2)
  --checkpointing L  off (default), on, or a list (on,off): one row each, with --gradient-checkpointing as train's
  --torch-steps N    timed steps of the peer script (default: its own 5; 1 for 1b, ~70 s a step)
  --python P         the Python with torch (default: python3 on PATH)
  --no-torch         skip PyTorch (it is skipped anyway, with a line saying why, when the script or torch is absent)
  --profile          after timing, profile one more step per backend and print its 12 costliest kernels
  --timeout S        per child process, seconds (default 1200)`;

/** torch_dpo_step.py's PRESETS: hidden, layers, heads, kv heads, intermediate, vocab, seq, pairs per step, LoRA r. */
const PRESETS = {
  tiny: { hidden: 64, layers: 2, heads: 4, kv: 2, inter: 176, vocab: 512, seq: 64, pairs: 2, r: 8 },
  small: { hidden: 512, layers: 4, heads: 8, kv: 2, inter: 1408, vocab: 8192, seq: 256, pairs: 2, r: 16 },
  '1b': { hidden: 2048, layers: 16, heads: 32, kv: 8, inter: 8192, vocab: 128256, seq: 256, pairs: 1, r: 16 },
} as const;
type PresetName = keyof typeof PRESETS;

interface ChildResult {
  backend: string;
  /** selectBackend's line (for auto: what it chose and why). */
  chose: string;
  kernels: string;
  stepS: number;
  tokensPerStep: number;
  tokensPerS: number;
  steps: number;
  loss: number;
  /** Peak resident set of the child process, MiB (process.resourceUsage().maxRSS). */
  peakRssMiB: number;
}

const here = dirname(fileURLToPath(import.meta.url));
/** The repository root from the source (scripts/) or compiled (dist/scripts/) location. */
const root = existsSync(join(here, '..', 'package.json')) ? join(here, '..') : join(here, '..', '..');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Child: one backend, the preset's model built in memory, warm-up + timed steps; prints `RESULT <json>`. */
async function child(backend: 'auto' | 'cpu' | 'wasm' | 'tensorflow', presetName: PresetName, steps: number, profile: boolean, dropout = 0, checkpointing = false): Promise<void> {
  const tf = await import('@tensorflow/tfjs');
  const { selectBackend } = await import('../src/backend/index.js');
  const { expectedWeightShapes } = await import('../src/model/llama.js');
  const { createLora, loraTensors, ATTN_TARGETS } = await import('../src/model/lora.js');
  const { stepGradients, disposeStats } = await import('../src/train/dpo-step.js');
  const { adamwStep, createAdamWState } = await import('../src/train/optimizer.js');
  const { batchSequenceLogprobs } = await import('../src/dpo/logprobs.js');
  const { collatePairs } = await import('../src/data/batch.js');
  const { Rng } = await import('../src/util/rng.js');
  type LlamaConfig = import('../src/config/llama.js').LlamaConfig;

  const p = PRESETS[presetName];
  const cfg: LlamaConfig = {
    vocabSize: p.vocab, hiddenSize: p.hidden, intermediateSize: p.inter, numLayers: p.layers, numHeads: p.heads,
    numKvHeads: p.kv, headDim: p.hidden / p.heads, rmsNormEps: 1e-5, ropeTheta: 500000, ropeScaling: null,
    maxPositionEmbeddings: 4 * p.seq, tieWordEmbeddings: false, attentionBias: false, mlpBias: false,
    bosTokenId: 0, eosTokenIds: [1], torchDtype: 'float32',
  };
  let kernels = '';
  let chose = '';
  // Sized as train sizes it: the model's weights and this step's plan (auto never picks wasm past its heap).
  const need = { cfg, source: `preset ${presetName}`, settings: { maxLength: p.seq, batchSize: p.pairs, gradientCheckpointing: checkpointing, loraR: p.r, loraTargets: [...ATTN_TARGETS] } };
  const info = await selectBackend(backend, (l) => {
    if (l.startsWith('kernels:')) kernels = l.slice('kernels: '.length);
    if (l.startsWith('backend:')) chose = l;
  }, need);
  // Same init as the torch script: N(0, 0.02) weights, unit norms, LoRA scale 2 (alpha = 2r) on q/k/v/o.
  const shapes = expectedWeightShapes(cfg);
  const w: Record<string, import('@tensorflow/tfjs').Tensor> = {};
  let seed = 1;
  for (const [name, shape] of Object.entries(shapes)) {
    w[name] = name.endsWith('norm.weight') ? tf.ones(shape)
      : presetName === '1b' ? tf.tensor(normals(shape.reduce((a, b) => a * b, 1), 0.02, seed++), shape) : tf.randomNormal(shape, 0, 0.02, 'float32', seed++);
  }
  const lora = createLora(cfg, { r: p.r, alpha: 2 * p.r, dropout, targets: [...ATTN_TARGETS], useRslora: false }, 0);
  const vars = new Map(Object.entries(loraTensors(lora)));
  const opt = createAdamWState(vars);
  // The torch script's batch: P pairs of seq tokens, the first quarter prompt, the rest completion.
  const rng = new Rng(0);
  const ids = (n: number) => Array.from({ length: n }, () => rng.nextU32() % p.vocab);
  const promptLen = p.seq / 4;
  const pairs = Array.from({ length: p.pairs }, () => ({
    promptIds: ids(promptLen), chosenIds: ids(p.seq - promptLen), rejectedIds: ids(p.seq - promptLen), truncated: false,
  }));
  const padId = 0;
  const refLora = { ...lora, enabled: false };
  // The online reference as train's --ref-mode online computes it: on the device, never read back inside the step.
  const ref = (ps: readonly (typeof pairs)[number][]) => tf.tidy(() => {
    const l = batchSequenceLogprobs(cfg, w, collatePairs(ps, padId), { lora: refLora, training: false });
    return { chosen: tf.slice(l, [0], [ps.length]) as import('@tensorflow/tfjs').Tensor1D, rejected: tf.slice(l, [ps.length], [ps.length]) as import('@tensorflow/tfjs').Tensor1D };
  });
  const settings = { loss: 'sigmoid' as const, beta: 0.1, labelSmoothing: 0, gradientCheckpointing: checkpointing };
  const adam = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 };
  let tokensPerStep = 0;
  let loss = NaN;
  const step = (): number => {
    const t0 = performance.now();
    const { grads, stats } = stepGradients(cfg, w, lora, [{ pairs, positions: pairs.map((_, i) => i) }], ref, settings, padId, new Rng(1));
    const norm = adamwStep(vars, grads, opt, 1e-4, 1.0, adam);
    norm.dataSync(); // the step is done when its last value can be read
    loss = (stats.losses.dataSync() as Float32Array).reduce((a, b) => a + b, 0) / p.pairs;
    tokensPerStep = stats.tokens;
    norm.dispose();
    tf.dispose([...grads.values()]);
    disposeStats(stats);
    return (performance.now() - t0) / 1000;
  };
  const warm = step();
  const n = warm > 20 ? 1 : steps;
  const times = Array.from({ length: n }, step);
  const stepS = median(times);
  const peakRssMiB = process.resourceUsage().maxRSS / 1024;
  const out: ChildResult = { backend: backend === 'auto' ? `auto:${info.name}` : backend, chose, kernels, stepS, tokensPerStep, tokensPerS: tokensPerStep / stepS, steps: n, loss, peakRssMiB };
  console.log(`RESULT ${JSON.stringify(out)}`);
  if (profile) {
    const info = await tf.profile(() => { step(); });
    const byName = new Map<string, { ms: number; n: number }>();
    for (const k of info.kernels) {
      const e = byName.get(k.name) ?? { ms: 0, n: 0 };
      e.ms += typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
      e.n += 1;
      byName.set(k.name, e);
    }
    const top = [...byName.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, 12);
    for (const [name, e] of top) console.log(`PROFILE ${name.padEnd(22)} ${e.ms.toFixed(1).padStart(9)} ms ${String(e.n).padStart(6)} calls`);
  }
}

/**
 * N(0, sd) floats by Box-Muller on two xorshift32 generators (Marsaglia) XORed: the 1b preset's 1.5 B weights in
 * seconds, where tf.randomNormal (seedrandom's alea and a rejection loop) takes ~2 minutes. Any normal init does for timing.
 */
function normals(n: number, sd: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let a = Math.imul(seed, 0x9e3779b9) | 1;
  let b = Math.imul(seed ^ 0x5bd1e995, 0x85ebca6b) | 1;
  const uniform = (): number => {
    a ^= a << 13; a ^= a >>> 17; a ^= a << 5;
    b ^= b << 17; b ^= b >>> 15; b ^= b << 26;
    return (((a ^ b) >>> 0) + 0.5) / 4294967296; // (0, 1): the log below stays finite
  };
  for (let i = 0; i < n; i += 2) {
    const r = sd * Math.sqrt(-2 * Math.log(uniform()));
    const t = 2 * Math.PI * uniform();
    out[i] = r * Math.cos(t);
    if (i + 1 < n) out[i + 1] = r * Math.sin(t);
  }
  return out;
}

function tensorflowInstalled(): boolean {
  const require = createRequire(import.meta.url);
  for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      require.resolve(pkg);
      return true;
    } catch { /* not installed */ }
  }
  return false;
}

/** Profile lines of the children, printed below the table. */
const profiles: string[] = [];

type Row = { name: string; detail: string; stepS: number | null; tokensPerS: number | null; rssMiB?: number };

function runChild(backend: string, preset: string, steps: number, kernels: string, timeoutS: number, profile: boolean, dropout = 0, threads?: string, checkpointing = false): Row {
  const args = [fileURLToPath(import.meta.url), '--child', backend, '--preset', preset, '--steps', String(steps), '--lora-dropout', String(dropout),
    ...(profile ? ['--profile'] : []), ...(checkpointing ? ['--checkpointing', 'on'] : [])];
  const r = spawnSync(process.execPath, args, {
    encoding: 'utf8', timeout: timeoutS * 1000, env: { ...process.env, DPO_KERNELS: kernels, ...(threads ? { DPO_THREADS: threads } : {}) }, maxBuffer: 1 << 26,
  });
  const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) {
    const why = r.error?.message ?? (r.stderr ?? '').trim().split('\n').slice(-1)[0] ?? `exit ${r.status}`;
    return { name: backend, detail: `failed: ${why}`, stepS: null, tokensPerS: null };
  }
  const c = JSON.parse(line.slice(7)) as ChildResult;
  const prof = r.stdout.split('\n').filter((l) => l.startsWith('PROFILE ')).map((l) => `  ${backend} ${l.slice(8)}`);
  if (prof.length) profiles.push(...prof);
  const name = `${c.backend}${threads ? ` ${threads}t` : ''}${checkpointing ? ' ckpt' : ''}`;
  if (backend === 'auto') console.log(c.chose);
  return { name, detail: `${c.kernels}; ${c.steps} steps, loss ${c.loss.toFixed(4)}`, stepS: c.stepS, tokensPerS: c.tokensPerS, rssMiB: c.peakRssMiB };
}

/**
 * Why the PyTorch peer cannot run here, or null. A clean clone has no ../shared/bench, and most machines no torch:
 * both are reasons to skip it, not to fail the benchmark.
 */
function torchSkipReason(script: string, py: string): string | null {
  if (!existsSync(script)) return `${script} not found (the peer script lives in ../shared/bench/, next to this repository; a clean clone has none: pass --torch-script FILE)`;
  const r = spawnSync(py, ['-c', 'import torch'], { encoding: 'utf8' });
  if (r.error) return `${py}: ${(r.error as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : r.error.message} (pass --python, or install python3)`;
  if (r.status !== 0) return `${py} cannot import torch (apt-get install -y python3-torch libopenblas0-pthread, or pip install torch)`;
  return null;
}

function runTorch(script: string, py: string, preset: string, threads: number[], timeoutS: number, steps?: number): Row {
  let best: Row | null = null;
  const seen: string[] = [];
  for (const t of threads) {
    // The peer script prints one JSON line; the wrapper adds its process's peak RSS (ru_maxrss, KiB on Linux) after it.
    const wrap = 'import resource, runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name="__main__"); ' +
      'print("RSS", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)';
    const args = [script, '--preset', preset, '--threads', String(t), ...(steps ? ['--steps', String(steps)] : [])];
    const r = spawnSync(py, ['-c', wrap, ...args], { encoding: 'utf8', timeout: timeoutS * 1000 });
    const lines = (r.stdout ?? '').trim().split('\n');
    const rss = Number(lines.find((l) => l.startsWith('RSS '))?.slice(4)) / 1024;
    const line = lines.filter((l) => l.startsWith('{')).pop() ?? '';
    try {
      const j = JSON.parse(line) as { step_s_median: number; tokens_per_s: number; torch: string; threads: number };
      seen.push(`${t}t ${j.tokens_per_s.toFixed(0)}`);
      if (!best || j.tokens_per_s > (best.tokensPerS ?? 0)) {
        best = { name: 'torch', detail: `torch ${j.torch}, best of threads`, stepS: j.step_s_median, tokensPerS: j.tokens_per_s, rssMiB: rss };
      }
    } catch {
      seen.push(`${t}t failed`);
    }
  }
  if (!best) return { name: 'torch', detail: `torch: failed (${seen.join(', ')})`, stepS: null, tokensPerS: null };
  best.detail += ` (tokens/s: ${seen.join(', ')})`;
  return best;
}

function printTable(preset: PresetName, rows: Row[]): void {
  const p = PRESETS[preset];
  const torch = rows.find((r) => r.name === 'torch')?.tokensPerS ?? null;
  console.log(`DPO step, preset ${preset}: hidden ${p.hidden}, ${p.layers} layers, ${p.heads}/${p.kv} heads, inter ${p.inter}, vocab ${p.vocab}, ` +
    `seq ${p.seq}, ${p.pairs} pairs (${2 * p.pairs * p.seq} tokens/step), LoRA r=${p.r} on q/k/v/o, float32`);
  console.log(`${'backend'.padEnd(14)} ${'step s'.padStart(8)} ${'tokens/s'.padStart(9)} ${'vs torch'.padStart(8)} ${'peak MiB'.padStart(8)}  details`);
  for (const r of rows) {
    const step = r.stepS === null ? '-' : r.stepS.toFixed(3);
    const tps = r.tokensPerS === null ? '-' : r.tokensPerS.toFixed(1);
    const ratio = r.tokensPerS !== null && torch ? `${(r.tokensPerS / torch).toFixed(2)}x` : '-';
    const rss = r.rssMiB === undefined || !Number.isFinite(r.rssMiB) ? '-' : r.rssMiB.toFixed(0);
    console.log(`${r.name.padEnd(14)} ${step.padStart(8)} ${tps.padStart(9)} ${ratio.padStart(8)} ${rss.padStart(8)}  ${r.detail}`);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      preset: { type: 'string', default: 'small' }, steps: { type: 'string', default: '3' }, backends: { type: 'string' },
      kernels: { type: 'string', default: process.env.DPO_KERNELS ?? 'auto' }, 'torch-script': { type: 'string' },
      'torch-threads': { type: 'string', default: '1,2' }, 'no-torch': { type: 'boolean', default: false }, python: { type: 'string', default: 'python3' },
      timeout: { type: 'string', default: '1200' }, child: { type: 'string' }, help: { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false }, threads: { type: 'string' }, 'lora-dropout': { type: 'string', default: '0' },
      'torch-steps': { type: 'string' }, checkpointing: { type: 'string', default: 'off' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const preset = values.preset as PresetName;
  if (!(preset in PRESETS)) throw new Error(`--preset ${values.preset}: unknown (expected small, tiny or 1b)`);
  const torchSteps = values['torch-steps'] !== undefined ? Number(values['torch-steps']) : preset === '1b' ? 1 : undefined;
  if (torchSteps !== undefined && !(Number.isInteger(torchSteps) && torchSteps >= 1)) throw new Error(`--torch-steps ${values['torch-steps']}: expected an integer >= 1`);
  const steps = Number(values.steps);
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`--steps ${values.steps}: expected an integer >= 1`);
  const dropout = Number(values['lora-dropout']);
  if (!(dropout >= 0 && dropout < 1)) throw new Error(`--lora-dropout ${values['lora-dropout']}: expected a number in [0, 1)`);
  const ckpts = values.checkpointing!.split(',').map((c) => c.trim());
  if (!ckpts.every((c) => c === 'on' || c === 'off')) throw new Error(`--checkpointing ${values.checkpointing}: expected on, off or a list of them`);
  if (values.child) {
    await child(values.child as 'auto' | 'cpu' | 'wasm' | 'tensorflow', preset, steps, values.profile!, dropout, ckpts[0] === 'on');
    return;
  }
  const timeoutS = Number(values.timeout);
  const wanted = (values.backends ?? (preset === '1b' ? 'auto' : 'cpu,wasm,tensorflow')).split(',').map((s) => s.trim()).filter(Boolean);
  const rows: Row[] = [];
  for (const b of wanted) {
    if (!['auto', 'cpu', 'wasm', 'tensorflow'].includes(b)) throw new Error(`--backends: ${b} unknown (expected auto, cpu, wasm, tensorflow)`);
    if (b === 'tensorflow' && !tensorflowInstalled()) {
      if (values.backends) rows.push({ name: b, detail: 'not installed', stepS: null, tokensPerS: null });
      continue;
    }
    const counts = values.threads ? values.threads.split(',').map((t) => t.trim()).filter(Boolean) : [undefined];
    for (const c of ckpts) for (const t of counts) rows.push(runChild(b, preset, steps, values.kernels!, timeoutS, values.profile!, dropout, t, c === 'on'));
  }
  let skipped: string | null = values['no-torch'] ? 'skipping PyTorch: --no-torch' : null;
  if (!values['no-torch']) {
    const script = values['torch-script'] ?? resolve(root, '..', 'shared', 'bench', 'torch_dpo_step.py');
    const why = torchSkipReason(script, values.python!);
    if (why) skipped = `skipping PyTorch: ${why}`;
    else {
      const threads = values['torch-threads']!.split(',').map(Number).filter((t) => Number.isInteger(t) && t > 0);
      rows.push(runTorch(script, values.python!, preset, threads, timeoutS, torchSteps));
    }
  }
  printTable(preset, rows);
  if (skipped) console.log(skipped);
  if (profiles.length) console.log(['kernel time of one profiled step (ms, calls):', ...profiles].join('\n'));
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exitCode = 1;
});

// Times batched generation (prefill + one token per step through the KV cache) with our code on each backend, and the
// cost of growing the KV cache by concatenation at the final length. Each backend runs in its own child process.
// Build with `npx tsc -p tsconfig.json`, then: node dist/scripts/bench-generate.js [--help]
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const USAGE = `node dist/scripts/bench-generate.js [options]
  --backends LIST    comma-separated, of cpu,wasm,tensorflow (default cpu,wasm)
  --batch B          rows per generate call (default 4)
  --prompt N         prompt tokens per row (default 32)
  --new N            new tokens per row (default 32)
  --vocab V          vocabulary size (default 32768; Llama 3 has 128256)
  --hidden H         hidden size (default 256; 4 layers, 4/2 heads, intermediate 2.75 H)
  --temperature T    0 = greedy (default); > 0 samples
  --top-p P          nucleus (default 1)
  --top-k K          (default 0 = off)
  --repeats N        timed generate calls after one warm-up (default 2, median kept)
  --timeout S        per child process, seconds (default 600)`;

interface Opts { batch: number; prompt: number; fresh: number; vocab: number; hidden: number; temperature: number; topP: number; topK: number; repeats: number }

interface ChildResult { backend: string; prefillS: number; decodeS: number; decodeTokS: number; totalTokS: number; concatMs: number; stepMs: number }

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function child(backend: 'cpu' | 'wasm' | 'tensorflow', o: Opts): Promise<void> {
  const tf = await import('@tensorflow/tfjs');
  const { selectBackend } = await import('../src/backend/index.js');
  const { expectedWeightShapes } = await import('../src/model/llama.js');
  const { generate } = await import('../src/model/generate.js');
  const { Rng } = await import('../src/util/rng.js');
  type LlamaConfig = import('../src/config/llama.js').LlamaConfig;
  await selectBackend(backend, () => {});
  const heads = 4;
  const cfg: LlamaConfig = {
    vocabSize: o.vocab, hiddenSize: o.hidden, intermediateSize: Math.round(2.75 * o.hidden), numLayers: 4, numHeads: heads,
    numKvHeads: 2, headDim: o.hidden / heads, rmsNormEps: 1e-5, ropeTheta: 500000, ropeScaling: null,
    maxPositionEmbeddings: 4 * (o.prompt + o.fresh), tieWordEmbeddings: false, attentionBias: false, mlpBias: false,
    bosTokenId: 0, eosTokenIds: [1], torchDtype: 'float32',
  };
  const w: Record<string, import('@tensorflow/tfjs').Tensor> = {};
  let seed = 1;
  for (const [name, shape] of Object.entries(expectedWeightShapes(cfg))) {
    w[name] = name.endsWith('norm.weight') ? tf.ones(shape) : tf.randomNormal(shape, 0, 0.02, 'float32', seed++);
  }
  const rng = new Rng(0);
  const prompts = Array.from({ length: o.batch }, () => Array.from({ length: o.prompt }, () => 2 + (rng.nextU32() % (o.vocab - 2))));
  const sampling = { temperature: o.temperature, topP: o.topP, topK: o.topK, stopIds: [], seed: 0 };
  // Prefill alone (one new token), then the whole call: decode time is the difference.
  const time = async (maxNewTokens: number): Promise<number> => {
    const t0 = performance.now();
    await generate(cfg, w, null, prompts, { ...sampling, maxNewTokens });
    return (performance.now() - t0) / 1000;
  };
  await time(o.fresh); // warm-up
  const prefill = median(await seq(o.repeats, () => time(1)));
  const total = median(await seq(o.repeats, () => time(o.fresh)));
  const decodeS = Math.max(1e-9, total - prefill);
  // The KV cache grows by concatenation: at the final length S, one step copies every layer's [B, K, S, D] keys and
  // values. Timed alone here, beside a decode step.
  const S = o.prompt + o.fresh;
  const D = cfg.headDim;
  const K = cfg.numKvHeads;
  const past = Array.from({ length: 2 * cfg.numLayers }, () => tf.zeros([o.batch, K, S - 1, D]));
  const one = tf.zeros([o.batch, K, 1, D]);
  const concatOnce = async (): Promise<number> => {
    const t0 = performance.now();
    const outs = past.map((p) => tf.concat([p, one], 2));
    await outs[outs.length - 1].data();
    const ms = performance.now() - t0;
    tf.dispose(outs);
    return ms;
  };
  await concatOnce();
  const concatMs = median(await seq(5, concatOnce));
  const out: ChildResult = {
    backend, prefillS: prefill, decodeS, decodeTokS: (o.batch * (o.fresh - 1)) / decodeS, totalTokS: (o.batch * o.fresh) / total,
    concatMs, stepMs: (decodeS / (o.fresh - 1)) * 1000,
  };
  console.log(`RESULT ${JSON.stringify(out)}`);
}

async function seq(n: number, f: () => Promise<number>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(await f());
  return out;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      backends: { type: 'string', default: 'cpu,wasm' }, batch: { type: 'string', default: '4' }, prompt: { type: 'string', default: '32' },
      new: { type: 'string', default: '32' }, vocab: { type: 'string', default: '32768' }, hidden: { type: 'string', default: '256' },
      temperature: { type: 'string', default: '0' }, 'top-p': { type: 'string', default: '1' }, 'top-k': { type: 'string', default: '0' },
      repeats: { type: 'string', default: '2' }, timeout: { type: 'string', default: '600' }, child: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const num = (k: keyof typeof values, ok: (x: number) => boolean, what: string): number => {
    const x = Number(values[k]);
    if (!ok(x)) throw new Error(`--${k} ${values[k]}: expected ${what}`);
    return x;
  };
  const posInt = (x: number) => Number.isInteger(x) && x >= 1;
  const o: Opts = {
    batch: num('batch', posInt, 'an integer >= 1'), prompt: num('prompt', posInt, 'an integer >= 1'),
    fresh: num('new', (x) => Number.isInteger(x) && x >= 2, 'an integer >= 2'), vocab: num('vocab', (x) => Number.isInteger(x) && x >= 16, 'an integer >= 16'),
    hidden: num('hidden', (x) => Number.isInteger(x) && x % 8 === 0 && x >= 8, 'a multiple of 8'),
    temperature: num('temperature', (x) => x >= 0, 'a number >= 0'), topP: num('top-p', (x) => x > 0 && x <= 1, 'a number in (0, 1]'),
    topK: num('top-k', (x) => Number.isInteger(x) && x >= 0, 'an integer >= 0'), repeats: num('repeats', posInt, 'an integer >= 1'),
  };
  if (values.child) {
    await child(values.child as 'cpu' | 'wasm' | 'tensorflow', o);
    return;
  }
  console.log(`generate: B=${o.batch}, prompt ${o.prompt}, ${o.fresh} new tokens, vocab ${o.vocab}, hidden ${o.hidden}, 4 layers, ` +
    `temperature ${o.temperature}${o.topP < 1 ? `, top-p ${o.topP}` : ''}${o.topK > 0 ? `, top-k ${o.topK}` : ''}, float32`);
  console.log(`${'backend'.padEnd(11)} ${'prefill s'.padStart(9)} ${'decode tok/s'.padStart(12)} ${'step ms'.padStart(8)} ${'kv concat ms'.padStart(12)}`);
  for (const b of values.backends!.split(',').map((s) => s.trim()).filter(Boolean)) {
    const args = [fileURLToPath(import.meta.url), '--child', b, ...process.argv.slice(2).filter((a, i, all) => a !== '--backends' && all[i - 1] !== '--backends')];
    const r = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: Number(values.timeout) * 1000, maxBuffer: 1 << 26 });
    const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('RESULT '));
    if (!line) {
      console.log(`${b.padEnd(11)} failed: ${r.error?.message ?? (r.stderr ?? '').trim().split('\n').slice(-1)[0]}`);
      continue;
    }
    const c = JSON.parse(line.slice(7)) as ChildResult;
    console.log(`${b.padEnd(11)} ${c.prefillS.toFixed(3).padStart(9)} ${c.decodeTokS.toFixed(1).padStart(12)} ${c.stepMs.toFixed(1).padStart(8)} ${c.concatMs.toFixed(2).padStart(12)}`);
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exitCode = 1;
});

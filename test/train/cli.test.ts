// `node train.js train` as a process (needs dist/, built by `npm test`): SIGKILL mid-run leaves only complete
// checkpoints and `--resume latest` finishes the run; SIGINT saves, says how to resume and exits 130; and the
// independent-check invocation (`--init-adapter ... --ref-adapter none --max-steps 1 ...`) against dpo_ref.py.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readPairs } from '../../src/data/pairs.js';
import { tokenizeRecords } from '../../src/data/tokenize.js';
import { openSafetensors } from '../../src/io/safetensors.js';
import { loadTokenizer } from '../../src/tokenizer/tokenizer.js';
import { Rng } from '../../src/util/rng.js';
import { f32Safetensors, pairsFile, python, readJsonl, readTensors, ROOT, runTrain, spawnTrain, tempDir, tinyModelDir, waitFor, runBytes } from './helpers.js';

let root: string;
let modelDir: string;
let data: string;

beforeAll(async () => {
  if (!existsSync(join(ROOT, 'dist', 'src', 'cli', 'main.js'))) throw new Error('dist/ is missing: run `npx tsc -p tsconfig.json` (npm test does) first');
  root = tempDir('cli');
  modelDir = await tinyModelDir(root);
  data = pairsFile(root, 8);
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

// As PEFT's save_pretrained (README.md card) + HF Trainer (trainer_state.json) + ours (resume_state.json): issue 13 items 5, 6.
const CHECKPOINT_FILES = ['README.md', 'adapter_config.json', 'adapter_model.safetensors', 'optimizer.safetensors', 'resume_state.json', 'trainer_state.json'];

function args(out: string, extra: string[] = []): string[] {
  return ['train', '--model', modelDir, '--data', data, '--output-dir', out, '--backend', 'cpu', '--max-length', '64', '--max-prompt-length', '32',
    '--batch-size', '2', '--lora-r', '4', '--lora-alpha', '8', '--learning-rate', '1e-3', '--seed', '5', '--curriculum', 'shuffle', ...extra];
}

/** Every visible checkpoint-N is complete and readable; returns their steps in order. */
function checkCheckpoints(out: string): number[] {
  const steps: number[] = [];
  for (const name of readdirSync(out)) {
    if (name.startsWith('.')) continue; // temp folders of an interrupted save are hidden, never named checkpoint-N
    const m = /^checkpoint-(\d+)$/.exec(name);
    if (!m) {
      expect(name, 'a checkpoint-like name that is not checkpoint-N').not.toMatch(/^checkpoint/);
      continue;
    }
    const dir = join(out, name);
    expect(statSync(dir).isDirectory()).toBe(true);
    expect(readdirSync(dir).sort(), name).toEqual(CHECKPOINT_FILES);
    const state = JSON.parse(readFileSync(join(dir, 'trainer_state.json'), 'utf8'));
    expect(state.global_step).toBe(Number(m[1]));
    for (const f of ['adapter_model.safetensors', 'optimizer.safetensors']) openSafetensors(join(dir, f)).close();
    JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
    steps.push(Number(m[1]));
  }
  return steps.sort((a, b) => a - b);
}

describe('train process', () => {
  it('SIGKILL mid-run leaves only complete checkpoints; --resume latest finishes like an uninterrupted run', async () => {
    const out = join(root, 'killed');
    // 24 steps, each saved, and the kill 50 ms after the first checkpoint: it must land before the run ends (with 12
    // steps and 150 ms, all 12 once finished first, after the fused kernels made steps fast).
    const MAX = 24;
    const flags = ['--max-steps', String(MAX), '--save-steps', '1', '--lora-dropout', '0.1'];
    const child = spawnTrain(args(out, flags));
    await waitFor(() => existsSync(join(out, 'checkpoint-1')), 90_000, 'checkpoint-1');
    await new Promise((r) => setTimeout(r, 50)); // land somewhere in a later step or save
    child.kill('SIGKILL');
    const ended = await child.exited;
    expect(ended.signal, child.stderr()).toBe('SIGKILL');
    const steps = checkCheckpoints(out);
    expect(steps.length).toBeGreaterThan(0);
    expect(steps.at(-1)!).toBeLessThan(MAX);
    const res = await runTrain(args(out, [...flags, '--resume', 'latest']));
    expect(res.code, res.stderr).toBe(0);
    expect(res.stderr).toMatch(new RegExp(`resuming from .*checkpoint-${steps.at(-1)} at step ${steps.at(-1)}`));
    expect(checkCheckpoints(out).at(-1)).toBe(MAX);
    expect(readJsonl(join(out, 'metrics.jsonl')).map((l) => l.step)).toEqual([...Array(MAX).keys()].map((i) => i + 1));
    // The same run without a kill gives the same adapter bytes and metrics lines.
    const straight = join(root, 'straight');
    const ref = await runTrain(args(straight, flags));
    expect(ref.code, ref.stderr).toBe(0);
    for (const f of [`checkpoint-${MAX}/adapter_model.safetensors`, `checkpoint-${MAX}/optimizer.safetensors`, 'metrics.jsonl']) {
      expect(runBytes(out, f).equals(runBytes(straight, f)), f).toBe(true);
    }
  });

  it('SIGINT finishes the step, saves a checkpoint there, says how to resume and exits 130', async () => {
    const out = join(root, 'interrupted');
    // --logging-steps 1: metrics.jsonl gets each step's line at its end (the default window of 10 writes them in
    // batches, so `done` below would trail the running step by up to 9).
    const child = spawnTrain(args(out, ['--max-steps', '200', '--save-steps', '50', '--logging-steps', '1']));
    await waitFor(() => existsSync(join(out, 'metrics.jsonl')) && readFileSync(join(out, 'metrics.jsonl'), 'utf8').length > 0, 90_000, 'step 1');
    const done = readJsonl(join(out, 'metrics.jsonl')).length;
    child.kill('SIGINT');
    const ended = await child.exited;
    const err = child.stderr();
    expect(ended.code, err).toBe(130);
    const m = /stopped at step (\d+) \(checkpoint-(\d+) saved\)/.exec(err);
    expect(m, err).not.toBeNull();
    const step = Number(m![1]);
    expect(Number(m![2])).toBe(step);
    // The step that was running when the signal came is finished, and no other: `done` lines were written before it.
    expect(step).toBeGreaterThanOrEqual(done);
    expect(step).toBeLessThanOrEqual(done + 1);
    expect(err).toMatch(/--resume latest/);
    expect(err).toContain('SIGINT');
    expect(checkCheckpoints(out)).toEqual([step]);
    expect(readJsonl(join(out, 'metrics.jsonl')).at(-1)!.step).toBe(step);
  });
});

describe('independent check: one step from a PEFT adapter written here, against float64 numpy', () => {
  const LR = 1e-3;
  let out: string;
  let adapter: string;
  let data6: string;
  let init: Map<string, { shape: number[]; data: Float32Array }>;

  beforeAll(async () => {
    adapter = join(root, 'peft-init');
    mkdirSync(adapter, { recursive: true });
    writeFileSync(join(adapter, 'adapter_config.json'), JSON.stringify({
      peft_type: 'LORA', task_type: 'CAUSAL_LM', r: 4, lora_alpha: 8, lora_dropout: 0, target_modules: ['q_proj', 'v_proj'], use_rslora: false, bias: 'none',
    }));
    // tiny model: hidden 32, 4 heads of 8, 2 kv heads: q_proj [32, 32], v_proj [16, 32].
    const rng = new Rng(77);
    const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
    for (const [t, o] of [['q_proj', 32], ['v_proj', 16]] as const) {
      const p = `base_model.model.model.layers.0.self_attn.${t}`;
      tensors[`${p}.lora_A.weight`] = { shape: [4, 32], data: Float32Array.from({ length: 128 }, () => rng.normal(0, 0.6)) };
      tensors[`${p}.lora_B.weight`] = { shape: [o, 4], data: Float32Array.from({ length: o * 4 }, () => rng.normal(0, 0.6)) };
    }
    writeFileSync(join(adapter, 'adapter_model.safetensors'), f32Safetensors(tensors));
    init = new Map(Object.entries(tensors));
    data6 = pairsFile(root, 6, 10, 'six.jsonl');
    out = join(root, 'independent');
    const res = await runTrain(['train', '--model', modelDir, '--data', data6, '--backend', 'cpu', '--max-length', '64', '--max-prompt-length', '32',
      '--init-adapter', adapter, '--ref-adapter', 'none', '--max-steps', '1', '--batch-size', '6', '--learning-rate', String(LR), '--weight-decay', '0',
      '--beta', '0.1', '--lr-scheduler', 'constant', '--warmup-steps', '0', '--curriculum', 'none', '--save-steps', '1', '--output-dir', out]);
    expect(res.code, res.stderr).toBe(0);
  });

  it('checkpoint-1 holds the adapter in the same layout, each value moved by at most lr (Adam step 1)', () => {
    const after = readTensors(join(out, 'checkpoint-1', 'adapter_model.safetensors'));
    expect([...after.keys()].sort()).toEqual([...init.keys()].sort());
    let atLr = 0;
    let total = 0;
    for (const [k, t0] of init) {
      const t1 = after.get(k)!;
      expect(t1.shape).toEqual(t0.shape);
      expect(t1.dtype).toBe('F32');
      for (let i = 0; i < t0.data.length; i++) {
        const d = Math.abs(t1.data[i] - t0.data[i]);
        expect(d).toBeLessThanOrEqual(LR * (1 + 1e-3) + 1e-7);
        if (Math.abs(d - LR) < 1e-3 * LR + 1e-7) atLr++;
        total++;
      }
    }
    // Adam's first step is lr * g / (|g| + eps): lr for every value whose gradient is far above eps.
    expect(atLr / total).toBeGreaterThan(0.95);
    const cfg = JSON.parse(readFileSync(join(out, 'checkpoint-1', 'adapter_config.json'), 'utf8'));
    expect(cfg).toMatchObject({ peft_type: 'LORA', r: 4, lora_alpha: 8, lora_dropout: 0, use_rslora: false });
    expect([...cfg.target_modules].sort()).toEqual(['q_proj', 'v_proj']);
  });

  it.skipIf(python() === null)('step 1 loss, rewards, grad_norm and the updated adapter match dpo_ref.py (float64, FD gradients)', async () => {
    const tok = await loadTokenizer(modelDir);
    const pairs = tokenizeRecords(tok, readPairs(data6), { maxLength: 64, maxPromptLength: 32 }).pairs;
    expect(pairs.length).toBe(6);
    const ids = join(root, 'ids.json');
    writeFileSync(ids, JSON.stringify(pairs.map((p) => ({ prompt: p.promptIds, chosen: p.chosenIds, rejected: p.rejectedIds }))));
    const py = spawnSync(python()!, [join(ROOT, 'scripts', 'reference', 'dpo_ref.py'), 'check', '--model', modelDir, '--adapter', adapter, '--ref-adapter', 'none',
      '--ids', ids, '--beta', '0.1', '--lr', String(LR), '--weight-decay', '0', '--max-grad-norm', '1.0'], { encoding: 'utf8', maxBuffer: 1 << 26 });
    expect(py.status, py.stderr).toBe(0);
    const want = JSON.parse(py.stdout) as { loss: number; grad_norm: number; clip_coef: number; grads: Record<string, number[]>; adapter_after: Record<string, number[]> } & Record<string, number>;
    const [m] = readJsonl(join(out, 'metrics.jsonl'));
    const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);
    if (rel(m.loss, want.loss) > 1e-4) console.log(`loss ${m.loss} vs float64 ${want.loss}`);
    expect(rel(m.loss, want.loss)).toBeLessThan(1e-4);
    expect(Math.abs(m.loss - Math.LN2)).toBeGreaterThan(1e-3); // the init adapter makes policy != reference
    for (const k of ['rewards/chosen', 'rewards/rejected']) expect(Math.abs(m[k] - want[k])).toBeLessThan(1e-4);
    for (const k of ['logps/chosen', 'logps/rejected']) expect(rel(m[k], want[k])).toBeLessThan(1e-4);
    expect(rel(m.grad_norm, want.grad_norm)).toBeLessThan(1e-3);
    const after = readTensors(join(out, 'checkpoint-1', 'adapter_model.safetensors'));
    const gmax = Math.max(...Object.values(want.grads).map((g) => Math.max(...g.map(Math.abs))));
    let compared = 0;
    for (const [k, exp] of Object.entries(want.adapter_after)) {
      const got = after.get(k)!.data;
      exp.forEach((e, i) => {
        // Where |g| is near float32 noise its sign (and so the Adam step) is not determined; elsewhere it is exact.
        if (Math.abs(want.grads[k][i]) < 1e-4 * gmax) return;
        const d = Math.abs(got[i] - e);
        if (d > 1e-3 * LR + 1e-7) console.log(`${k}[${i}]: got ${got[i]}, float64 ${e}, g ${want.grads[k][i]}`);
        expect(d).toBeLessThanOrEqual(1e-3 * LR + 1e-7);
        compared++;
      });
    }
    expect(compared).toBeGreaterThan(400); // of 448
  });
});

// SFT: the completion-only loss and its gradient against float64 central finite differences
// (scripts/reference/sft_ref.py -> test/fixtures/sft/grad.json) on every kind of weight, accumulation equal to one
// batch, a byte-identical resume (full and LoRA), overfitting one batch to near-zero loss, and the data formats.
import * as tf from '@tensorflow/tfjs';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel as loadHfModel, disposeModel } from '../../src/io/model-dir.js';
import { writeTinyModel } from '../../src/io/tiny-model.js';
import type { Lora } from '../../src/model/lora.js';
import { resolveSftConfig, type SftConfig } from '../../src/sft/config.js';
import { loadSftFile, tokenizeSft, type SftExample } from '../../src/sft/data.js';
import { sftObjective } from '../../src/sft/objective.js';
import { runSft } from '../../src/sft/train.js';
import { objectiveStep, disposeValues } from '../../src/train/step.js';
import { Rng } from '../../src/util/rng.js';
import { disposeWeights, loadModel, readFixture, type ModelFixture } from '../model/fixture.js';
import { readJsonl, tempDir } from '../train/helpers.js';

interface SftFixture {
  examples: { prompt: number[]; completion: number[] }[];
  picks: Record<string, number[]>;
  cases: { completion_only: boolean; loss: number; grads: Record<string, number[]> }[];
}

const NO_LORA: Lora = { config: { r: 1, alpha: 1, dropout: 0, targets: [], useRslora: false }, scale: 1, layers: new Map(), enabled: false };

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('SFT loss and gradient vs float64 finite differences', () => {
  const fx = readFixture<ModelFixture>('base.json');
  const sft = JSON.parse(readFileSync(new URL('../fixtures/sft/grad.json', import.meta.url), 'utf8')) as SftFixture;
  const examples: SftExample[] = sft.examples.map((e, index) => ({ index, promptIds: e.prompt, completionIds: e.completion }));

  for (const c of sft.cases) {
    it(`matches at 4 entries of every weight tensor (completion_only ${c.completion_only}), one batch or two micro-batches`, () => {
      const { cfg, w } = loadModel(fx);
      const vars = Object.fromEntries(Object.entries(w).map(([k, t]) => [k, tf.variable(t, true, `fd/${c.completion_only}/${k}`)]));
      disposeWeights(w);
      try {
        const objective = sftObjective(cfg, vars, 0, { completionOnly: c.completion_only, full: true });
        for (const micro of [[{ examples }], [{ examples: examples.slice(0, 2) }, { examples: examples.slice(2) }]]) {
          const out = objectiveStep(objective, NO_LORA, micro, new Rng(0), vars);
          const loss = objective.readout(out.values).metrics.loss;
          expect(Math.abs(loss - c.loss)).toBeLessThan(1e-4);
          let worst = 0;
          for (const [k, idx] of Object.entries(sft.picks)) {
            const g = out.grads.get(k)!.dataSync();
            idx.forEach((i, j) => (worst = Math.max(worst, Math.abs(g[i] - c.grads[k][j]) / (1e-3 + Math.abs(c.grads[k][j])))));
          }
          if (worst > 2e-3) console.log(`worst relative gradient difference ${worst}`);
          expect(worst).toBeLessThan(2e-3);
          tf.dispose([...out.grads.values()]);
          disposeValues(out.values);
        }
      } finally {
        tf.dispose(Object.values(vars));
      }
    });
  }
});

describe('SFT runs', () => {
  let root: string;
  let modelDir: string;
  let data: string;
  beforeAll(async () => {
    root = tempDir('sft');
    modelDir = join(root, 'model');
    await writeTinyModel(modelDir, { seed: 5, hiddenSize: 16, numLayers: 1, merges: 0, ropeTheta: 10000 });
    data = join(root, 'data.jsonl');
    const rows = [
      { prompt: 'def inc(x):\n', completion: '    return x + 1\n' },
      { prompt: 'def dbl(x):\n', completion: '    return x * 2\n' },
      { prompt: 'def neg(x):\n', completion: '    return -x\n' },
      { prompt: 'def sq(x):\n', completion: '    return x * x\n' },
      { prompt: 'def one(x):\n', completion: '    return 1\n' },
    ];
    writeFileSync(data, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  });
  afterAll(() => {});

  const cfgOf = (flags: Record<string, unknown>): SftConfig => resolveSftConfig({ backend: 'cpu', model: modelDir, data, 'batch-size': 2, 'save-steps': 0, 'logging-steps': 100, ...flags });

  async function run(cfg: SftConfig, o: { resume?: string; stopAfterSteps?: number } = {}) {
    const model = await loadHfModel(cfg.model!);
    try {
      return await runSft(model, loadSftFile(model.tokenizer, data, cfg.maxLength), data, cfg, { log: () => {}, ...o });
    } finally {
      disposeModel(model);
    }
  }

  for (const full of [true, false]) {
    it(`resumes byte-identically (${full ? 'full: HF model dir' : 'LoRA: PEFT adapter'})`, async () => {
      const flags = { full, 'max-steps': 4, 'learning-rate': 1e-2, 'weight-decay': 0.1, 'lora-dropout': 0.1 };
      const a = join(root, `straight-${full}`);
      const b = join(root, `resumed-${full}`);
      await run(cfgOf({ ...flags, 'output-dir': a }));
      const first = await run(cfgOf({ ...flags, 'output-dir': b }), { stopAfterSteps: 2 });
      expect(first.interrupted).toBe(true);
      const second = await run(cfgOf({ ...flags, 'output-dir': b }), { resume: 'latest' });
      expect(second.steps).toBe(4);
      const file = full ? 'model.safetensors' : 'adapter_model.safetensors';
      expect(readFileSync(join(b, file)).equals(readFileSync(join(a, file)))).toBe(true);
      const strip = (rows: Record<string, number>[]) => rows.map(({ loss, mean_token_accuracy, num_tokens, grad_norm, step }) => ({ loss, mean_token_accuracy, num_tokens, grad_norm, step }));
      expect(strip(readJsonl(join(b, 'metrics.jsonl')))).toEqual(strip(readJsonl(join(a, 'metrics.jsonl'))));
      if (full) {
        // The output is an HF model dir: it loads as --model, with the trained weights.
        const m = await loadHfModel(b);
        expect(m.cfg.hiddenSize).toBe(16);
        disposeModel(m);
      }
    });
  }

  const STEPS = 80;
  it('overfits one batch to near-zero loss (full)', async () => {
    const out = join(root, 'overfit');
    const cfg = cfgOf({ full: true, 'batch-size': 5, 'max-steps': STEPS, 'learning-rate': 2e-2, 'lr-scheduler': 'constant', 'logging-steps': 1, 'output-dir': out });
    const res = await run(cfg);
    expect(res.steps).toBe(STEPS);
    const rows = readJsonl(join(out, 'metrics.jsonl'));
    const last = rows[rows.length - 1];
    expect(rows[0].loss).toBeGreaterThan(4); // ~ln 261 from random weights
    expect(last.loss).toBeLessThan(0.05);
    expect(last.mean_token_accuracy).toBe(1);
    // num_tokens is cumulative: STEPS steps of the same 5 rows.
    expect(last.num_tokens).toBe(STEPS * rows[0].num_tokens);
  }, 60_000);
});

describe('SFT data', () => {
  it('reads prompt/completion, messages and HumanEval records; the loss covers the completion and EOS only', async () => {
    const root = tempDir('sft-data');
    const dir = join(root, 'model');
    await writeTinyModel(dir, { hiddenSize: 16, numLayers: 1, merges: 0 });
    const m = await loadHfModel(dir);
    try {
      const text = [
        { prompt: 'ab', completion: 'cd' },
        { task_id: 'T/0', prompt: 'ab', canonical_solution: 'cd', test: '', entry_point: 'f' },
        { messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'yo' }] },
      ].map((r) => JSON.stringify(r)).join('\n');
      const d = tokenizeSft(m.tokenizer, text, 'x.jsonl', 64);
      const bos = m.tokenizer.bosId!;
      const eos = m.tokenizer.eosId;
      // Byte-level: 'a' 'b' 'c' 'd' are their GPT-2 byte ids (the printable bytes from 33 come first).
      const byte = (c: string) => c.charCodeAt(0) - 33;
      expect(d.examples[0]).toEqual({ index: 0, promptIds: [bos, byte('a'), byte('b')], completionIds: [byte('c'), byte('d'), eos] });
      expect(d.examples[1]).toEqual({ ...d.examples[0], index: 1 });
      expect(d.examples[2].completionIds.at(-1)).toBe(m.tokenizer.eosId);
      expect(() => tokenizeSft(m.tokenizer, '{"text": "x"}\n', 'bad.jsonl', 64)).toThrow(/bad\.jsonl:1/);
    } finally {
      disposeModel(m);
    }
  });
});

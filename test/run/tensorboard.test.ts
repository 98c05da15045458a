// Issue 13 item 8: --report-to tensorboard|jsonl|none (HF/TRL report_to, one value or a list). The event files are read
// back by an independent decoder (tfevents_decode.py: its own table-driven CRC-32C, TFRecord framing and protobuf
// varints by hand, field numbers from tensorflow event.proto / summary.proto), and their scalars equal metrics.jsonl's
// values (as float32, simple_value's type) under the tags HF's TensorBoardCallback gives them (rewrite_logs in
// transformers integration_utils.py: train/loss, train/rewards/chosen, ...; eval/...).
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveRunConfig } from '../../src/config/run.js';
import type { LoadedModel } from '../../src/io/model-dir.js';
import { FILE_VERSION, maskedCrc32c, tfRecord } from '../../src/run/tensorboard.js';
import { readMetrics } from '../../src/run/files.js';
import { parseReportTo } from '../../src/run/report-to.js';
import { tensorboardTags } from '../../src/train/hooks.js';
import { runTraining, type TrainOptions } from '../../src/train/loop.js';
import { InputError } from '../../src/util/errors.js';
import { closeTinyRun, openTinyRun, readJsonl, runConfig, tokenized } from '../train/helpers.js';

const DECODER = fileURLToPath(new URL('./tfevents_decode.py', import.meta.url));
const PYTHON = existsSync('/root/.pyenv/versions/3.11.7/bin/python3') ? '/root/.pyenv/versions/3.11.7/bin/python3' : 'python3';

interface TbEvent { wall_time: number; step: number; file_version?: string; summary?: { tag: string; simple_value: number }[]; session_log?: { status: number } }

function decode(files: string[]): TbEvent[][] {
  return JSON.parse(execFileSync(PYTHON, [DECODER, ...files], { encoding: 'utf8' })) as TbEvent[][];
}

const f32 = (x: number) => Math.fround(x);

let root: string;
let model: LoadedModel;
let modelDir: string;
let data: string;

beforeAll(async () => ({ root, modelDir, model, data } = await openTinyRun('tensorboard')));
afterAll(() => closeTinyRun({ root, model }));

async function train(out: string, flags: Record<string, unknown>, opts: Partial<TrainOptions> = {}) {
  const cfg = runConfig({ model: modelDir, data, 'output-dir': out, ...flags });
  return runTraining(model, tokenized(model, data, cfg), data, cfg, { log: () => {}, resume: null, ...opts });
}

const eventFiles = (out: string) => readdirSync(join(out, 'runs')).filter((f) => f.startsWith('events.out.tfevents.')).sort().map((f) => join(out, 'runs', f));

describe('--report-to (HF report_to)', () => {
  it('takes one value or a list; all, none; unknown and HF-only integrations are refused by name', () => {
    expect([...parseReportTo('jsonl')]).toEqual(['jsonl']);
    expect([...parseReportTo('tensorboard,jsonl')].sort()).toEqual(['jsonl', 'tensorboard']);
    expect([...parseReportTo('all')].sort()).toEqual(['jsonl', 'tensorboard']);
    expect([...parseReportTo('none')]).toEqual([]);
    expect(resolveRunConfig({}).reportTo).toBe('jsonl');
    // A YAML --config list (TRL recipes write `report_to: [tensorboard]`), a repeated flag; refused at config time.
    const yaml = join(root, 'recipe.yaml');
    writeFileSync(yaml, 'report_to:\n  - tensorboard\n  - jsonl\n');
    expect(resolveRunConfig({ config: yaml }).reportTo).toBe('tensorboard,jsonl');
    expect(resolveRunConfig({ 'report-to': ['tensorboard', 'jsonl'] }).reportTo).toBe('tensorboard,jsonl');
    writeFileSync(yaml, 'report_to: wandb\n');
    expect(() => resolveRunConfig({ config: yaml })).toThrow(/--report-to wandb/);
    expect(() => parseReportTo('wandb')).toThrow(InputError);
    expect(() => parseReportTo('wandb')).toThrow(/--report-to wandb: "wandb".*jsonl, tensorboard, all or none.*--report-to tensorboard/);
    expect(() => parseReportTo('tensorbord')).toThrow(/"tensorbord"/);
    expect(() => parseReportTo('none,jsonl')).toThrow(/"none" with other targets/);
  });

  it('tags as HF rewrite_logs: train/<key>, eval/<key>; step is the event step, not a scalar', () => {
    expect(tensorboardTags({ loss: 0.5, 'rewards/chosen': 1, epoch: 0.25, step: 3 })).toEqual({ 'train/loss': 0.5, 'train/rewards/chosen': 1, 'train/epoch': 0.25 });
    expect(tensorboardTags({ eval_loss: 2 })).toEqual({ 'eval/loss': 2 });
    expect(tensorboardTags({ 'pass@1': 0.5 }, 'eval')).toEqual({ 'eval/pass@1': 0.5 });
  });

  it('none writes no metrics.jsonl and no event files; jsonl (the default) no event files', async () => {
    const none = join(root, 'none');
    await train(none, { 'max-steps': 2, 'report-to': 'none' });
    expect(existsSync(join(none, 'metrics.jsonl')) && readJsonl(join(none, 'metrics.jsonl')).length).toBeFalsy();
    expect(existsSync(join(none, 'runs'))).toBe(false);
    expect(() => readMetrics(none, [])).toThrow(/no lines.*--report-to jsonl/); // what `report` says of such a run
    const jsonl = join(root, 'jsonl');
    await train(jsonl, { 'max-steps': 2 });
    expect(readJsonl(join(jsonl, 'metrics.jsonl')).length).toBe(2);
    expect(existsSync(join(jsonl, 'runs'))).toBe(false);
  });
});

describe('TensorBoard event files', () => {
  it('CRC-32C and its TFRecord mask agree with the independent decoder; the check value of "123456789" is 0xE3069283', () => {
    const py = JSON.parse(execFileSync(PYTHON, [DECODER, '--crc', '123456789'], { encoding: 'utf8' }));
    expect(py.crc32c).toBe(0xe3069283); // CRC-32C (Castagnoli) check value, RFC 3720 B.4 / the CRC catalogue
    expect(maskedCrc32c(new TextEncoder().encode('123456789'))).toBe(py.masked);
    const rec = tfRecord(new Uint8Array([1, 2, 3]));
    expect(rec.length).toBe(8 + 4 + 3 + 4);
    expect([...rec.subarray(0, 8)]).toEqual([3, 0, 0, 0, 0, 0, 0, 0]);
  });

  it('a run with --report-to tensorboard,jsonl: file_version first, then one summary per logged step equal to metrics.jsonl', async () => {
    const out = join(root, 'tb');
    const t0 = Date.now() / 1000;
    await train(out, { 'max-steps': 5, 'logging-steps': 1, 'report-to': 'tensorboard,jsonl' },
      { evaluate: async (_lora, step) => ({ 'pass@1': step / 10 }), evalAtSteps: [0, 5] });
    const files = eventFiles(out);
    expect(files.length).toBe(1);
    expect(files[0]).toMatch(/events\.out\.tfevents\.\d{10}\.[^.]+(\.[^.]+)*\.\d+\.\d+$/);
    const [events] = decode(files);
    expect(events[0]).toMatchObject({ file_version: FILE_VERSION, step: 0 });
    expect(events[0].wall_time).toBeGreaterThanOrEqual(Math.floor(t0) - 1);
    const metrics = readJsonl(join(out, 'metrics.jsonl'));
    const trainEvents = events.filter((e) => e.summary?.some((v) => v.tag.startsWith('train/')));
    expect(trainEvents.map((e) => e.step)).toEqual(metrics.map((m) => m.step));
    for (const [i, e] of trainEvents.entries()) {
      const want = Object.fromEntries(Object.entries(metrics[i]).filter(([k]) => k !== 'step' && k !== 'timestamp').map(([k, v]) => [`train/${k}`, f32(v)]));
      expect(Object.fromEntries(e.summary!.map((v) => [v.tag, v.simple_value]))).toEqual(want);
    }
    for (const k of ['train/loss', 'train/rewards/chosen', 'train/rewards/rejected', 'train/rewards/accuracies', 'train/rewards/margins',
      'train/logps/chosen', 'train/logps/rejected', 'train/grad_norm', 'train/learning_rate', 'train/epoch']) {
      expect(trainEvents[0].summary!.map((v) => v.tag)).toContain(k);
    }
    expect(trainEvents[0].summary!.find((v) => v.tag === 'train/loss')!.simple_value).toBeCloseTo(Math.LN2, 6); // B = 0 at step 0
    const evals = events.filter((e) => e.summary?.some((v) => v.tag.startsWith('eval/')));
    expect(evals.map((e) => [e.step, e.summary])).toEqual([[0, [{ tag: 'eval/pass@1', simple_value: 0 }]], [5, [{ tag: 'eval/pass@1', simple_value: f32(0.5) }]]]);
    // Wall times never go back.
    for (let i = 1; i < events.length; i++) expect(events[i].wall_time).toBeGreaterThanOrEqual(events[i - 1].wall_time);
  });

  it('scalars only every --logging-steps (HF on_log), at the log_history steps', async () => {
    const out = join(root, 'tb-every3');
    await train(out, { 'max-steps': 7, 'logging-steps': 3, 'report-to': 'tensorboard' });
    const [events] = decode(eventFiles(out));
    expect(events.filter((e) => e.summary).map((e) => e.step)).toEqual([3, 6, 7]);
  });

  it('a resumed run writes a second file that starts with session_log START at the resume step (TensorBoard purges past it)', async () => {
    const out = join(root, 'tb-resume');
    const flags = { 'max-steps': 4, 'save-steps': 1, 'logging-steps': 1, 'report-to': 'tensorboard,jsonl' };
    await train(out, flags, { stopAfterSteps: 2 });
    await train(out, flags, { resume: 'latest' });
    const files = eventFiles(out);
    expect(files.length).toBe(2);
    const [first, second] = decode(files);
    expect(first.filter((e) => e.summary).map((e) => e.step)).toEqual([1, 2]);
    expect(second[0].file_version).toBe(FILE_VERSION);
    expect(second[1]).toMatchObject({ step: 2, session_log: { status: 1 } });
    expect(second.filter((e) => e.summary).map((e) => e.step)).toEqual([3, 4]);
    const metrics = readJsonl(join(out, 'metrics.jsonl'));
    const loss = [...first, ...second].filter((e) => e.summary).map((e) => e.summary!.find((v) => v.tag === 'train/loss')!.simple_value);
    expect(loss).toEqual(metrics.map((m) => f32(m.loss)));
  });
});

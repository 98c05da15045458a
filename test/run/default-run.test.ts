// Issue 12 item 3: the default run never deletes a complete earlier run. Ctrl-C in the first seconds leaves a folder
// with only scores.jsonl; the next run resumes that folder in place and every earlier complete run keeps its bytes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepareDefaultRun } from '../../src/pipeline/default.js';
import { ADAPTER_WEIGHTS, CHECKPOINT_FILES } from '../../src/run/layout.js';

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'dpo-default-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

function completeRun(dir: string, tag: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, ADAPTER_WEIGHTS), `weights ${tag}`);
  writeFileSync(join(dir, 'metrics.jsonl'), `{"tag": "${tag}"}\n`);
}

describe('the default run folder', () => {
  it('an interrupted run with only scores.jsonl is resumed in place; the complete run in .prev is untouched', () => {
    const run = join(root, 'a', 'default');
    completeRun(`${run}.prev`, 'old');
    mkdirSync(run);
    writeFileSync(join(run, 'scores.jsonl'), '{}\n');
    expect(prepareDefaultRun(run)).toEqual({ resume: null, keptAs: null });
    expect(readFileSync(join(`${run}.prev`, ADAPTER_WEIGHTS), 'utf8')).toBe('weights old');
    expect(readdirSync(run)).toEqual(['scores.jsonl']);
  });

  it('a complete run moves to a free .prev name: two complete earlier runs both survive', () => {
    const run = join(root, 'b', 'default');
    completeRun(`${run}.prev`, 'first');
    completeRun(run, 'second');
    expect(prepareDefaultRun(run)).toEqual({ resume: null, keptAs: `${run}.prev-2` });
    expect(readFileSync(join(`${run}.prev`, ADAPTER_WEIGHTS), 'utf8')).toBe('weights first');
    expect(readFileSync(join(`${run}.prev-2`, ADAPTER_WEIGHTS), 'utf8')).toBe('weights second');
  });

  it('a run with a checkpoint and no final adapter resumes from the latest checkpoint', () => {
    const run = join(root, 'c', 'default');
    mkdirSync(join(run, 'checkpoint-2'), { recursive: true });
    writeFileSync(join(run, 'checkpoint-2', CHECKPOINT_FILES.state), '{}');
    expect(prepareDefaultRun(run)).toEqual({ resume: 'latest', keptAs: null });
    expect(readdirSync(run)).toEqual(['checkpoint-2']);
  });
});

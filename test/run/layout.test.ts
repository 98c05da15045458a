// The run-folder layout: names in one place, checkpoint folders named and parsed by the same two functions, and the
// run logs reset for a fresh run or cut back to the checkpoint's step on resume (a torn last line included).
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RUN_FILES, checkpointDir, checkpointStep, runFile } from '../../src/run/layout.js';
import { resetRunLogs } from '../../src/run/files.js';

describe('run/layout', () => {
  it('names checkpoint folders and parses them back', () => {
    expect(checkpointDir('/r', 12)).toBe(join('/r', 'checkpoint-12'));
    expect(checkpointStep('checkpoint-12')).toBe(12);
    expect(checkpointStep('.checkpoint-12.tmp-1')).toBeNull();
    expect(checkpointStep('checkpoint-x')).toBeNull();
    expect(runFile('/r', 'metrics')).toBe(join('/r', RUN_FILES.metrics));
  });
});

describe('run/files resetRunLogs', () => {
  it('empties the logs of a fresh run; on resume keeps the lines up to the checkpoint step and drops a torn tail', () => {
    const dir = mkdtempSync(join(tmpdir(), 'run-files-'));
    writeFileSync(runFile(dir, 'metrics'), '{"step":1}\n{"step":2}\n{"step":3}\n{"st');
    writeFileSync(runFile(dir, 'eval'), '{"step":0}\n{"step":3}\n');
    resetRunLogs(dir, 2);
    expect(readFileSync(runFile(dir, 'metrics'), 'utf8')).toBe('{"step":1}\n{"step":2}\n');
    expect(readFileSync(runFile(dir, 'eval'), 'utf8')).toBe('{"step":0}\n');
    expect(readFileSync(runFile(dir, 'pairLosses'), 'utf8')).toBe('');
    resetRunLogs(dir, 0);
    expect(readFileSync(runFile(dir, 'metrics'), 'utf8')).toBe('');
  });
});

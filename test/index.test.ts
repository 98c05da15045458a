// The library entry point: package.json "main" names a file the build writes, and it exports what the commands call.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as api from '../src/index.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));

describe('src/index.ts', () => {
  it('is what package.json "main" points at once built', () => {
    const main = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { main: string }).main;
    expect(main).toBe('dist/src/index.js');
    expect(existsSync(join(ROOT, 'src', 'index.ts'))).toBe(true);
    // `npm test` builds first (tsc), so the compiled entry exists when this runs.
    expect(existsSync(join(ROOT, main)), `${main} missing: run npx tsc -p tsconfig.json`).toBe(true);
  });

  it('exports one library call per command', () => {
    for (const f of ['openModel', 'runScore', 'train', 'runTraining', 'runEval', 'runPairs', 'runExperiment', 'runReport', 'runPlan', 'runDoctor', 'writeMergedModel']) {
      expect(typeof (api as Record<string, unknown>)[f], f).toBe('function');
    }
  });
});

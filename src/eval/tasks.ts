// Eval task files -> one normalized Task type: HumanEval jsonl(.gz), MBPP (original jsonl and sanitized json)
// and CodeContests-style stdin/stdout tasks, in any data/formats.ts layout (JSONL/JSON, Parquet such as the Hub's
// openai_humaneval, a save_to_disk folder, a Hub dataset in the HF cache with a split). Field names follow openai/human-eval, google-research/mbpp and
// deepmind/code_contests; a malformed record is an InputError naming `file:line`.
import { InputError, describe } from '../util/errors.js';
import { parseRecords, readRecords, readText, type Located } from '../data/formats.js';

export type TaskFormat = 'humaneval' | 'mbpp' | 'stdio';
export const TASK_FORMATS: readonly TaskFormat[] = ['humaneval', 'mbpp', 'stdio'];

interface TaskBase {
  /** `task_id` as a string (MBPP's integer ids become "2", "3", ...). */
  taskId: string;
  /** What the model sees. */
  prompt: string;
  /** A known-good completion for `prompt`, when the file has one. */
  reference?: string;
}

/** human-eval: the completion continues `prompt`; `test` defines `check(candidate)`. */
export interface HumanEvalTask extends TaskBase {
  format: 'humaneval';
  test: string;
  entryPoint: string;
}

/** MBPP: the completion is a whole program; each entry of `asserts` is one test. */
export interface MbppTask extends TaskBase {
  format: 'mbpp';
  /** The natural-language task (`text` in the original file, `prompt` in the sanitized one). */
  text: string;
  /** `test_setup_code` (original) or `test_imports` joined by newlines (sanitized). */
  setup: string;
  asserts: string[];
}

export interface IoTest {
  input: string;
  output: string;
}

/** CodeContests: the completion is a whole program, run as __main__ once per test with `input` on stdin. */
export interface StdioTask extends TaskBase {
  format: 'stdio';
  tests: IoTest[];
}

export type Task = HumanEvalTask | MbppTask | StdioTask;

/** A completion to score: `task_id` + `completion`, plus whatever else the line carried (kept in results). */
export interface Sample {
  taskId: string;
  completion: string;
  record: Record<string, unknown>;
  /** `file:line` of the sample, for error messages. */
  where: string;
}

/**
 * The MBPP prompt: the task text and the first assert in a docstring, as bigcode-evaluation-harness does
 * (following InCoder). The MBPP paper showed all three asserts; one is enough to pin the function name and
 * signature while keeping most tests unseen.
 */
export function mbppPrompt(text: string, asserts: string[]): string {
  return `"""\n${text}\n${asserts[0] ?? ''}\n"""\n`;
}

// ---- reading records: see data/formats.ts (JSONL/JSON, Parquet, save_to_disk, Hub cache) ----

export { parseRecords, readText };
function asObject(r: Located): Record<string, unknown> {
  if (typeof r.value !== 'object' || r.value === null || Array.isArray(r.value)) {
    const found = Array.isArray(r.value) ? 'an array' : r.value === null ? 'null' : `a ${typeof r.value}`;
    throw new InputError(describe(r.where, found, 'a JSON object'));
  }
  return r.value as Record<string, unknown>;
}

function str(o: Record<string, unknown>, key: string, where: string, what: string): string {
  const v = o[key];
  if (typeof v !== 'string') {
    const found = v === undefined ? `no "${key}"` : `"${key}" is ${JSON.stringify(v).slice(0, 40)}`;
    throw new InputError(describe(where, found, `a string "${key}" in ${what}`));
  }
  return v;
}

function strList(o: Record<string, unknown>, key: string, where: string, what: string): string[] {
  const v = o[key];
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) {
    const found = v === undefined ? `no "${key}"` : `"${key}" is not a list of strings`;
    throw new InputError(describe(where, found, `a list of strings "${key}" in ${what}`));
  }
  return v as string[];
}

function taskIdOf(o: Record<string, unknown>, where: string, keys: string[]): string {
  for (const k of keys) {
    const v = o[k];
    if (typeof v === 'string' && v !== '') return v;
    if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  }
  throw new InputError(describe(where, `no ${keys.map((k) => `"${k}"`).join(' or ')}`, 'a string or integer task id'));
}

// ---- the three formats ----

const HE = 'a HumanEval task (task_id, prompt, canonical_solution, test, entry_point)';
const MBPP = 'an MBPP task (task_id, text or prompt, code, test_list)';
const STDIO = 'a stdio task (name or task_id, description, public_tests/private_tests/generated_tests)';

function humanEvalTask(o: Record<string, unknown>, where: string): HumanEvalTask {
  const task: HumanEvalTask = {
    format: 'humaneval',
    taskId: taskIdOf(o, where, ['task_id']),
    prompt: str(o, 'prompt', where, HE),
    test: str(o, 'test', where, HE),
    entryPoint: str(o, 'entry_point', where, HE),
  };
  if (o.canonical_solution !== undefined) task.reference = str(o, 'canonical_solution', where, HE);
  return task;
}

function mbppTask(o: Record<string, unknown>, where: string): MbppTask {
  // The original file says `text` and `test_setup_code`; the sanitized one says `prompt` and `test_imports`.
  // `challenge_test_list` is not scored: the MBPP paper's results use `test_list`.
  const text = typeof o.text === 'string' ? o.text : str(o, 'prompt', where, MBPP);
  const asserts = strList(o, 'test_list', where, MBPP);
  if (asserts.length === 0) throw new InputError(describe(where, 'an empty "test_list"', 'at least one assert'));
  let setup = '';
  if (o.test_setup_code !== undefined) setup = str(o, 'test_setup_code', where, MBPP);
  else if (o.test_imports !== undefined) setup = strList(o, 'test_imports', where, MBPP).join('\n');
  const task: MbppTask = {
    format: 'mbpp',
    taskId: taskIdOf(o, where, ['task_id']),
    prompt: mbppPrompt(text, asserts),
    text,
    setup,
    asserts,
  };
  if (o.code !== undefined) task.reference = str(o, 'code', where, MBPP);
  return task;
}

const TEST_GROUPS = ['public_tests', 'private_tests', 'generated_tests'] as const;

function ioTests(o: Record<string, unknown>, key: string, where: string): IoTest[] {
  const g = o[key];
  if (g === undefined || g === null) return [];
  const { input, output } = g as { input?: unknown; output?: unknown };
  const ok = (x: unknown): x is string[] => Array.isArray(x) && x.every((s) => typeof s === 'string');
  if (typeof g !== 'object' || !ok(input) || !ok(output)) {
    throw new InputError(describe(where, `"${key}" is not {input: [...], output: [...]} of strings`, STDIO));
  }
  if (input.length !== output.length) {
    throw new InputError(
      describe(where, `"${key}" has ${input.length} inputs and ${output.length} outputs`, 'one output per input'),
    );
  }
  return input.map((inp, i) => ({ input: inp, output: output[i]! }));
}

/** A Python 3 reference: CodeContests' `{language: [..], solution: [..]}` (3 = PYTHON3) or a list of strings. */
function stdioReference(o: Record<string, unknown>, where: string): string | undefined {
  const s = o.solutions;
  if (s === undefined || s === null) return undefined;
  if (Array.isArray(s)) {
    if (s.length > 0 && typeof s[0] === 'string') return s[0];
    if (s.length === 0) return undefined;
  } else if (typeof s === 'object') {
    const { language, solution } = s as { language?: unknown; solution?: unknown };
    if (Array.isArray(solution) && (language === undefined || Array.isArray(language))) {
      const i = Array.isArray(language) ? language.findIndex((l) => l === 3 || l === 'PYTHON3') : 0;
      const code = i >= 0 ? solution[i] : undefined;
      return typeof code === 'string' ? code : undefined;
    }
  }
  throw new InputError(
    describe(where, '"solutions" has an unknown layout', 'a list of strings or {language: [...], solution: [...]}'),
  );
}

function stdioTask(o: Record<string, unknown>, where: string): StdioTask {
  const tests = TEST_GROUPS.flatMap((k) => ioTests(o, k, where));
  if (tests.length === 0) throw new InputError(describe(where, 'no tests', STDIO));
  const task: StdioTask = {
    format: 'stdio',
    taskId: taskIdOf(o, where, ['task_id', 'name']),
    prompt: str(o, 'description', where, STDIO),
    tests,
  };
  const reference = stdioReference(o, where);
  if (reference !== undefined) task.reference = reference;
  return task;
}

/** The format a record looks like, from its keys; undefined when it matches none. */
export function detectFormat(o: Record<string, unknown>): TaskFormat | undefined {
  if ('entry_point' in o && 'test' in o) return 'humaneval';
  if ('test_list' in o) return 'mbpp';
  if (TEST_GROUPS.some((k) => k in o)) return 'stdio';
  return undefined;
}

const BUILD: Record<TaskFormat, (o: Record<string, unknown>, where: string) => Task> = {
  humaneval: humanEvalTask,
  mbpp: mbppTask,
  stdio: stdioTask,
};

/** Parses task records; `format` is detected from the first record when not given. */
export function parseTasks(text: string, file: string, format?: TaskFormat): Task[] {
  return tasksFromRecords(parseRecords(text, file), file, format);
}

/** Task records from any source (`file` names it in messages). */
export function tasksFromRecords(records: Located[], file: string, format?: TaskFormat): Task[] {
  if (records.length === 0) throw new InputError(describe(file, 'no tasks', 'at least one task record'));
  let fmt = format;
  if (!fmt) {
    const first = asObject(records[0]!);
    fmt = detectFormat(first);
    if (!fmt) {
      throw new InputError(
        describe(
          records[0]!.where,
          `a record with keys ${Object.keys(first).slice(0, 8).join(', ')}`,
          'HumanEval (entry_point, test), MBPP (test_list) or stdio (public/private/generated_tests) fields',
          'Pass --format to say which.',
        ),
      );
    }
  }
  const seen = new Map<string, string>();
  return records.map((r) => {
    const task = BUILD[fmt](asObject(r), r.where);
    const prev = seen.get(task.taskId);
    if (prev) {
      throw new InputError(describe(r.where, `task_id ${task.taskId} again (first at ${prev})`, 'unique task ids'));
    }
    seen.set(task.taskId, r.where);
    return task;
  });
}

/** Reads tasks from a file, folder or cached Hub dataset (`split`: default train, or the only one there is). */
export function loadTasks(file: string, format?: TaskFormat, split?: string): Task[] {
  return tasksFromRecords(readRecords(file, { split }).records, file, format);
}

/** Parses a samples file: one `{task_id, completion, ...}` per line, as human-eval's samples.jsonl. */
export function parseSamples(text: string, file: string): Sample[] {
  return samplesFromRecords(parseRecords(text, file));
}

function samplesFromRecords(records: Located[]): Sample[] {
  return records.map((r) => {
    const o = asObject(r);
    const taskId = taskIdOf(o, r.where, ['task_id']);
    const completion = str(o, 'completion', r.where, 'a sample (task_id, completion)');
    return { taskId, completion, record: o, where: r.where };
  });
}

export function loadSamples(file: string): Sample[] {
  return samplesFromRecords(readRecords(file).records);
}

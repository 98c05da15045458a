// The `ast` difficulty: normalized edit distance between the Python ASTs of chosen and rejected, computed by
// Python's own `ast` module in the sandbox (many pairs per program). Leaves out semantics: it is structure only.
//
// Per completion, in Python:
// - Code: a plain pair's completion is parsed after its prompt (a HumanEval body needs its `def`), keeping only the
//   nodes that start in the completion; if that fails, the completion alone, then dedented. A fenced block
//   (```python ... ```) is taken instead of the raw text, and a conversational pair uses its assistant messages.
// - Sequence: pre-order node class names, with Module and Load/Store contexts dropped. Identifiers that are not builtins become
//   their move-to-front rank among the names seen so far ('new' on first use), so a consistent rename costs nothing
//   and `a - b` vs `b - a` still differs; builtins, attribute and keyword names and constants (repr, first 32
//   characters) are kept as written.
// - Distance: Levenshtein(chosen, rejected) / max(len): 0 for identical structure, 1 for nothing in common.
// - Fallback: if either side does not parse, both sides are compared as regex token sequences (identifiers
//   normalized the same way) with the same normalized distance, and the method is reported as 'tokens'.
import { existsSync, readFileSync } from 'node:fs';

/** The part of the sandbox pool this needs (PythonPool and eval's NativeRunner both fit). */
export interface PythonRunner {
  run(req: { code: string; timeoutMs?: number }): Promise<{ passed: boolean; result: string; stdout: string; stderr: string }>;
}

type Text = string | readonly { role: string; content: string }[];

/** The code to compare for one pair; `prompt` is '' when the code stands alone. */
export interface AstInput {
  prompt: string;
  chosen: string;
  rejected: string;
  /** Where the pair came from (file:line), for error messages. */
  where?: string;
}

export interface AstDistance {
  /** In [0, 1]: the difficulty (smaller = easier). */
  distance: number;
  /** 'ast' when both sides parsed, 'tokens' when the token fallback was used. */
  method: 'ast' | 'tokens';
}

export interface AstOptions {
  /** Pairs per Python program (default 32). */
  batchSize?: number;
  /** Wall-clock limit per program (default 60 s). */
  timeoutMs?: number;
}

const FENCE = /```[ \t]*(?:python3?|py)?[ \t]*\r?\n([\s\S]*?)```/i;

/** The first fenced code block's content (python, py or unlabeled), or the text itself when it has none. */
export function codeOf(text: string): string {
  const m = FENCE.exec(text);
  return m ? m[1]! : text;
}

function completionText(t: Text): string {
  if (typeof t === 'string') return t;
  const assistant = t.filter((m) => m.role === 'assistant');
  return (assistant.length > 0 ? assistant : t).map((m) => m.content).join('\n');
}

/** Builds the comparison input of a pair in TRL's standard or conversational format. */
export function astInputOf(pair: { prompt: Text; chosen: Text; rejected: Text }, where?: string): AstInput {
  const chosen = completionText(pair.chosen);
  const rejected = completionText(pair.rejected);
  const fenced = FENCE.test(chosen) || FENCE.test(rejected);
  // A chat prompt is prose, and a fenced answer is standalone code: neither continues the prompt.
  const prompt = typeof pair.prompt === 'string' && !fenced ? pair.prompt : '';
  return { prompt, chosen: codeOf(chosen), rejected: codeOf(rejected), ...(where ? { where } : {}) };
}

/**
 * The Python side, src/curriculum/ast_distance.py, read once from the package (next to this file in the source tree,
 * under src/ when running from dist/). DATA is prepended as base64 UTF-8 JSON, so no quoting issues.
 */
let program: string | null = null;
function programSource(): string {
  if (program === null) {
    const here = new URL('./ast_distance.py', import.meta.url);
    const file = existsSync(here) ? here : new URL('../../../src/curriculum/ast_distance.py', import.meta.url);
    program = readFileSync(file, 'utf8');
  }
  return program;
}

/** The Python program that prints the distances of `inputs` as JSON [[distance, method], ...]. */
export function astProgram(inputs: readonly AstInput[]): string {
  const data = Buffer.from(JSON.stringify(inputs.map((p) => [p.prompt, p.chosen, p.rejected])), 'utf8').toString('base64');
  return `DATA = '${data}'\n${programSource()}`;
}

function parseOutput(stdout: string, count: number): AstDistance[] | null {
  const last = stdout.trimEnd().split('\n').pop() ?? '';
  let rows: unknown;
  try {
    rows = JSON.parse(last);
  } catch {
    return null;
  }
  if (!Array.isArray(rows) || rows.length !== count) return null;
  return rows.map((r) => ({ distance: (r as [number, string])[0], method: (r as [number, string])[1] as AstDistance['method'] }));
}

async function runBatch(inputs: readonly AstInput[], first: number, runner: PythonRunner, timeoutMs: number): Promise<AstDistance[]> {
  const res = await runner.run({ code: astProgram(inputs), timeoutMs });
  const rows = res.passed ? parseOutput(res.stdout, inputs.length) : null;
  if (rows) return rows;
  // One pathological pair should not sink its batch: retry one by one and name the pair that fails alone.
  if (inputs.length > 1) {
    const each = await Promise.all(inputs.map((p, i) => runBatch([p], first + i, runner, timeoutMs)));
    return each.flat();
  }
  const where = inputs[0]!.where ?? `pair ${first}`;
  throw new Error(`${where}: ast difficulty failed in the Python sandbox: ${res.result}${res.stderr ? `\n${res.stderr.slice(-2000)}` : ''}`);
}

/** AST distance of every pair, in input order; batches run concurrently on the runner's workers. */
export async function astDistances(inputs: readonly AstInput[], runner: PythonRunner, opts: AstOptions = {}): Promise<AstDistance[]> {
  const batchSize = opts.batchSize ?? 32;
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const jobs: Promise<AstDistance[]>[] = [];
  for (let i = 0; i < inputs.length; i += batchSize) jobs.push(runBatch(inputs.slice(i, i + batchSize), i, runner, timeoutMs));
  return (await Promise.all(jobs)).flat();
}

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

// The Python side. DATA is replaced by base64 UTF-8 JSON of [[prompt, chosen, rejected], ...], so no quoting issues.
const PROGRAM = String.raw`
import ast, base64, builtins, json, keyword, re, textwrap

BUILTINS = frozenset(dir(builtins))
TOKEN = re.compile(r"[A-Za-z_]\w*|\d+(?:\.\d*)?|\S")

class Names:
    # Move-to-front rank among the identifiers seen so far ('new' the first time): invariant under renaming, and a
    # variable added at the top does not shift every later name (as first-appearance numbering would).
    def __init__(self):
        self.recent = []
    def __call__(self, s):
        if s in BUILTINS:
            return s
        if s in self.recent:
            k = self.recent.index(s)
            del self.recent[k]
        else:
            k = 'new'
        self.recent.insert(0, s)
        return '@%s' % k

def label(node, name):
    kind = type(node).__name__
    if isinstance(node, ast.Name):
        return kind + ':' + name(node.id)
    if isinstance(node, ast.arg):
        return kind + ':' + name(node.arg)
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return kind + ':' + name(node.name)
    if isinstance(node, (ast.Global, ast.Nonlocal)):
        return kind + ':' + ','.join(name(n) for n in node.names)
    if isinstance(node, ast.ExceptHandler) and node.name:
        return kind + ':' + name(node.name)
    if isinstance(node, ast.alias):
        return kind + ':' + node.name + ('=' + name(node.asname) if node.asname else '')
    if isinstance(node, ast.Attribute):
        return kind + ':' + node.attr
    if isinstance(node, ast.keyword):
        return kind + ':' + (node.arg or '**')
    if isinstance(node, ast.Constant):
        return kind + ':' + repr(node.value)[:32]
    return kind

def sequence(tree, start):
    # Pre-order; with a start (line, utf-8 column), only nodes at or after it and their descendants.
    name = Names()
    out = []
    stack = [(tree, start is None)]
    while stack:
        node, inside = stack.pop()
        if isinstance(node, ast.expr_context):
            continue
        if not inside and hasattr(node, 'lineno') and (node.lineno, node.col_offset) >= start:
            inside = True
        if inside and not isinstance(node, ast.Module):
            out.append(label(node, name))
        for child in reversed(list(ast.iter_child_nodes(node))):
            stack.append((child, inside))
    return out

def parse_side(prompt, code):
    if prompt:
        lines = prompt.split('\n')
        start = (len(lines), len(lines[-1].encode('utf-8', 'surrogatepass')))
        try:
            return sequence(ast.parse(prompt + code), start)
        except Exception:
            pass
    for src in (code, textwrap.dedent(code)):
        try:
            return sequence(ast.parse(src), None)
        except Exception:
            pass
    return None

def tokens(text):
    name = Names()
    return [name(t) if (t[0].isalpha() or t[0] == '_') and not keyword.iskeyword(t) else t for t in TOKEN.findall(text)]

def levenshtein(a, b):
    i = 0
    while i < len(a) and i < len(b) and a[i] == b[i]:
        i += 1
    a, b = a[i:], b[i:]
    j = 0
    while j < len(a) and j < len(b) and a[len(a) - 1 - j] == b[len(b) - 1 - j]:
        j += 1
    a, b = a[:len(a) - j], b[:len(b) - j]
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for x in a:
        cur = [prev[0] + 1]
        for k, y in enumerate(b):
            cur.append(min(prev[k + 1] + 1, cur[k] + 1, prev[k] + (x != y)))
        prev = cur
    return prev[-1]

def normalized(a, b):
    m = max(len(a), len(b))
    return 0.0 if m == 0 else levenshtein(a, b) / m

out = []
for prompt, chosen, rejected in json.loads(base64.b64decode(DATA).decode('utf-8')):
    a, b = parse_side(prompt, chosen), parse_side(prompt, rejected)
    if a is not None and b is not None:
        out.append([normalized(a, b), 'ast'])
    else:
        out.append([normalized(tokens(chosen), tokens(rejected)), 'tokens'])
print(json.dumps(out))
`;

/** The Python program that prints the distances of `inputs` as JSON [[distance, method], ...]. */
export function astProgram(inputs: readonly AstInput[]): string {
  const data = Buffer.from(JSON.stringify(inputs.map((p) => [p.prompt, p.chosen, p.rejected])), 'utf8').toString('base64');
  return `DATA = '${data}'\n${PROGRAM}`;
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

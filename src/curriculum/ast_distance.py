# The `ast` difficulty (src/curriculum/ast.ts): normalized edit distance between the pre-order AST node sequences of
# chosen and rejected, names replaced by move-to-front ranks; token sequences when a side does not parse.
# The host prepends DATA = '<base64 UTF-8 JSON of [[prompt, chosen, rejected], ...]>' and reads the last stdout line.
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

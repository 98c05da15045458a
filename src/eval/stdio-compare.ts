// Output comparison of CodeContests-style stdin/stdout tests. Default: DeepMind code_contests'
// execution/tester_sandboxer.cc `OutputsMatch`: whitespace tokens (" \n\t\r\v"), ASCII lower-cased, equal lists
// match; else, token by token, numbers (absl::SimpleAtod) within absolute 1e-5 and other tokens equal as text.
// `strict` keeps our older judge rule: case-sensitive, integers exact as text, floats within 1e-5 abs or relative.

export type StdioCompare = 'deepmind' | 'strict';
export const STDIO_COMPARES: readonly StdioCompare[] = ['deepmind', 'strict'];

/** DeepMind's kDoublePrecision. */
export const FLOAT_TOLERANCE = 1e-5;

/** Tokens as SplitAndLowercase: split on any of " \n\t\r\v", empty parts skipped, absl::AsciiStrToLower. */
function splitAndLowercase(s: string): string[] {
  return s.split(/[ \n\t\r\v]+/).filter((t) => t !== '').map((t) => t.replace(/[A-Z]+/g, (c) => c.toLowerCase()));
}

/**
 * absl::SimpleAtod on one token: an optional '+' (not before '-'), then what std::from_chars (general format)
 * consumes whole: a decimal float with optional exponent, or inf / infinity / nan (any case; tokens are lower-cased
 * already). Out of range gives +-infinity, as SimpleAtod does. null when the token is not a number.
 */
export function simpleAtod(token: string): number | null {
  let s = token;
  if (s.startsWith('+')) {
    s = s.slice(1);
    if (s.startsWith('-')) return null;
  }
  const neg = s.startsWith('-');
  const body = neg ? s.slice(1) : s;
  let v: number;
  if (/^(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(body)) v = Number(body);
  else if (/^(inf|infinity)$/i.test(body)) v = Infinity;
  else if (/^nan(\([0-9a-z_]*\))?$/i.test(body)) v = NaN;
  else return null;
  return neg ? -v : v;
}

/**
 * ValuesMatch: a token that is not a number compares as text. Two numbers compare as doubles, |a - b| < 1e-5
 * (strictly). Every integer also parses as a double, so integers take that path too, as in DeepMind's code: the
 * "both integers" branch there is never reached.
 */
function valuesMatch(a: string, b: string): boolean {
  const ad = simpleAtod(a);
  const bd = simpleAtod(b);
  if (ad === null || bd === null) return a === b;
  return Math.abs(ad - bd) < FLOAT_TOLERANCE;
}

/** DeepMind's OutputsMatch(output, expected). */
export function deepmindOutputsMatch(expected: string, actual: string): boolean {
  const out = splitAndLowercase(actual);
  const exp = splitAndLowercase(expected);
  if (out.length !== exp.length) return false;
  if (out.every((t, i) => t === exp[i])) return true;
  return out.every((t, i) => valuesMatch(t, exp[i]));
}

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const INTEGER = /^[+-]?\d+$/;

/**
 * strict: two tokens match when equal as text, or when both are numbers, at least one written with a point or an
 * exponent, and they differ by at most 1e-5 absolute or relative (testlib's `doubleCompare`). Integers compare as
 * text, so big integers are exact and "0011" is not "11"; letters are case-sensitive.
 */
export function strictTokensMatch(expected: string, actual: string): boolean {
  if (expected === actual) return true;
  if (!NUMBER.test(expected) || !NUMBER.test(actual)) return false;
  if (INTEGER.test(expected) && INTEGER.test(actual)) return false;
  const e = Number(expected);
  const a = Number(actual);
  const diff = Math.abs(a - e);
  return diff <= FLOAT_TOLERANCE || diff <= FLOAT_TOLERANCE * Math.abs(e);
}

/** Program output against the expected output, by `mode` (DeepMind's tester unless asked for strict). */
export function outputMatches(expected: string, actual: string, mode: StdioCompare = 'deepmind'): boolean {
  if (mode === 'deepmind') return deepmindOutputsMatch(expected, actual);
  const e = expected.split(/\s+/).filter((t) => t !== '');
  const a = actual.split(/\s+/).filter((t) => t !== '');
  return e.length === a.length && e.every((t, i) => strictTokensMatch(t, a[i]));
}

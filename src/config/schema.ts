// A tiny typed-config engine: a schema of fields -> defaults <- preset <- --config file <- flags, strict.
// Unknown keys and wrong types are errors naming the key (nanoGPT's configurator, typed). Used by config/run.ts.
import { existsSync, readFileSync } from 'node:fs';
import { load as loadYaml } from 'js-yaml';
import { readJsonObject } from '../io/json.js';
import { InputError, describe } from '../util/errors.js';

export type FieldType = 'string' | 'number' | 'int' | 'boolean';

export interface Field<T> {
  type: FieldType;
  default: T;
  /** One line for --help. */
  describe: string;
  /** Allowed values for a string field. */
  choices?: readonly string[];
  /** Null allowed (an optional path, say). */
  nullable?: boolean;
  /** Minimum for numbers. */
  min?: number;
  /** Exclusive minimum for numbers (`--epochs 0` is refused). */
  above?: number;
  /** Other names (HF TrainingArguments / TRL DPOConfig / PEFT LoraConfig), in snake_case; kebab-case works too. */
  aliases?: readonly string[];
  /** A comma list: a config file may give it as an array (PEFT's `target_modules: [q_proj, v_proj]`). */
  list?: boolean;
}

export type Schema = Record<string, Field<unknown>>;
/** A string field with choices is typed as their union, so a RunConfig needs no casts. */
type Base<F> = F extends { type: 'string'; choices: readonly (infer C extends string)[] } ? C : F extends { type: 'string' } ? string : F extends { type: 'boolean' } ? boolean : number;
type FieldValue<F> = F extends { nullable: true } ? Base<F> | null : Base<F>;
export type Values<S extends Schema> = { [K in keyof S]: FieldValue<S[K]> };

/** camelCase key -> --kebab-case flag. */
export function flagName(key: string): string {
  return key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
}

/** snake_case or kebab-case -> camelCase. */
export function camelKey(name: string): string {
  return name.replace(/[-_]([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** camelCase key -> snake_case, as in HF and TRL. */
export function snakeName(key: string): string {
  return key.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase());
}

/** Every name (camelCase, from the key and its aliases) -> the schema key. */
export function keyIndex(schema: Schema): Map<string, string> {
  const m = new Map<string, string>();
  for (const [k, f] of Object.entries(schema)) {
    m.set(k, k);
    for (const a of f.aliases ?? []) m.set(camelKey(a), k);
  }
  return m;
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0];
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = d[j];
      d[j] = Math.min(d[j] + 1, d[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return d[b.length];
}

/** The closest of `names` to `name` (case, dashes and underscores ignored), or null when none is close. */
export function closest(name: string, names: readonly string[]): string | null {
  const norm = (s: string) => s.toLowerCase().replace(/[-_]/g, '');
  let best: string | null = null;
  let bestD = Infinity;
  for (const n of names) {
    const dist = editDistance(norm(name), norm(n));
    if (dist < bestD) [best, bestD] = [n, dist];
  }
  return best !== null && bestD <= Math.max(2, Math.floor(norm(name).length / 3)) ? best : null;
}

/** Every flag name a schema accepts (kebab-case), aliases included: what "did you mean" picks from. */
export function allFlagNames(schema: Schema): string[] {
  return Object.entries(schema).flatMap(([k, f]) => [flagName(k), ...(f.aliases ?? []).map((a) => a.replace(/_/g, '-'))]);
}

/** Checks one value against its field; `where` names the source (a flag, a config file key). */
export function checkValue(field: Field<unknown>, value: unknown, where: string): unknown {
  if (value === null || value === undefined) {
    if (field.nullable) return null;
    throw new InputError(describe(where, String(value), `a ${field.type}`));
  }
  switch (field.type) {
    case 'string':
      if (field.list && Array.isArray(value) && value.every((v) => typeof v === 'string')) value = value.join(',');
      if (typeof value !== 'string') throw new InputError(describe(where, JSON.stringify(value), 'a string'));
      if (field.choices && !field.choices.includes(value)) {
        throw new InputError(describe(where, JSON.stringify(value), `one of ${field.choices.join('|')}`));
      }
      return value;
    case 'boolean':
      if (typeof value !== 'boolean') throw new InputError(describe(where, JSON.stringify(value), 'true or false'));
      return value;
    case 'number':
    case 'int': {
      const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
      if (typeof n !== 'number' || !Number.isFinite(n)) throw new InputError(describe(where, JSON.stringify(value), 'a number'));
      if (field.type === 'int' && !Number.isInteger(n)) throw new InputError(describe(where, String(n), 'an integer'));
      if (field.min !== undefined && n < field.min) throw new InputError(describe(where, String(n), `>= ${field.min}`));
      if (field.above !== undefined && n <= field.above) throw new InputError(describe(where, String(n), `> ${field.above}`));
      return n;
    }
  }
}

/** Applies a partial object onto `base`, strictly. Keys may be camelCase, snake_case or kebab-case, or an alias. */
export function applyLayer<S extends Schema>(schema: S, base: Values<S>, layer: Record<string, unknown>, source: string): Values<S> {
  const out = { ...base } as Record<string, unknown>;
  const index = keyIndex(schema);
  for (const [rawKey, value] of Object.entries(layer)) {
    const key = index.get(camelKey(rawKey));
    const where = source === 'flags' ? `--${key ? flagName(key) : rawKey}` : `${source}: ${rawKey}`;
    if (!key) {
      const guess = closest(rawKey, source === 'flags' ? allFlagNames(schema) : [...Object.keys(schema).map(snakeName), ...Object.values(schema).flatMap((f) => f.aliases ?? [])]);
      const known = Object.keys(schema).map(flagName).join(', ');
      throw new InputError(describe(where, 'unknown key', `one of ${known}`, guess ? `Did you mean ${source === 'flags' ? '--' : ''}${guess}?` : undefined));
    }
    out[key] = checkValue(schema[key], value, where);
  }
  return out as Values<S>;
}

export function defaults<S extends Schema>(schema: S): Values<S> {
  const out: Record<string, unknown> = {};
  for (const [k, f] of Object.entries(schema)) out[k] = f.default;
  return out as Values<S>;
}

/** Reads a --config file as a layer: YAML (.yaml/.yml, a TRL-style recipe) or JSON. */
export function readConfigFile(path: string): Record<string, unknown> {
  if (!existsSync(path)) throw new InputError(describe(`--config ${path}`, 'file not found'));
  if (!/\.ya?ml$/i.test(path)) return readJsonObject(path, 'a JSON object of settings', InputError, `--config ${path}`);
  let v: unknown;
  try {
    v = loadYaml(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new InputError(describe(`--config ${path}`, `invalid YAML (${(e as Error).message.split('\n')[0]})`, 'a YAML mapping of settings'));
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InputError(describe(`--config ${path}`, 'not a YAML mapping', 'a mapping of settings'));
  return v as Record<string, unknown>;
}

type YargsOption = { type?: 'string' | 'boolean'; describe: string; choices?: readonly string[]; alias?: string[]; requiresArg?: boolean };

/** yargs option specs for every field (no yargs defaults: an absent flag must not override a config file). Each flag
 * also answers to its snake_case spelling and its HF/TRL/PEFT aliases. Numbers get no yargs type: yargs would turn
 * `--batch-size abc` into NaN, and checkValue then could not name the value. */
export function yargsOptions(schema: Schema, only?: readonly string[]): Record<string, YargsOption> {
  const out: Record<string, YargsOption> = {};
  for (const [k, f] of Object.entries(schema)) {
    if (only && !only.includes(k)) continue;
    const flag = flagName(k);
    const alias = [...new Set([snakeName(k), ...(f.aliases ?? []).flatMap((a) => [a, a.replace(/_/g, '-')])])].filter((a) => a !== flag);
    const def = f.default === null ? '' : ` [default: ${JSON.stringify(f.default)}]`;
    const num = f.type === 'int' || f.type === 'number';
    out[flag] = { ...(num ? { requiresArg: true } : { type: f.type as 'string' | 'boolean' }), describe: f.describe + (num ? ` (${f.type})` : '') + def,
      ...(f.choices ? { choices: f.choices } : {}), ...(alias.length ? { alias } : {}) };
  }
  return out;
}

/** Picks the flags the user actually passed out of a yargs argv, as a layer. */
export function flagLayer(schema: Schema, argv: Record<string, unknown>, only?: readonly string[]): Record<string, unknown> {
  const layer: Record<string, unknown> = {};
  for (const k of Object.keys(schema)) {
    if (only && !only.includes(k)) continue;
    const flag = flagName(k);
    if (argv[flag] !== undefined) layer[k] = argv[flag];
  }
  return layer;
}

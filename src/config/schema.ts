// A tiny typed-config engine: a schema of fields -> defaults <- preset <- --config file <- flags, strict.
// Unknown keys and wrong types are errors naming the key (nanoGPT's configurator, typed). Used by config/run.ts.
import { existsSync } from 'node:fs';
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

/** Checks one value against its field; `where` names the source (a flag, a config file key). */
export function checkValue(field: Field<unknown>, value: unknown, where: string): unknown {
  if (value === null || value === undefined) {
    if (field.nullable) return null;
    throw new InputError(describe(where, String(value), `a ${field.type}`));
  }
  switch (field.type) {
    case 'string':
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
      return n;
    }
  }
}

/** Applies a partial object onto `base`, strictly. Keys may be camelCase or snake/kebab case. */
export function applyLayer<S extends Schema>(schema: S, base: Values<S>, layer: Record<string, unknown>, source: string): Values<S> {
  const out = { ...base } as Record<string, unknown>;
  for (const [rawKey, value] of Object.entries(layer)) {
    const key = rawKey.replace(/[-_]([a-z])/g, (_, c: string) => c.toUpperCase());
    const field = schema[key];
    if (!field) {
      const known = Object.keys(schema).map(flagName).join(', ');
      const where = source === 'flags' ? `--${rawKey}` : `${source}: ${rawKey}`;
      throw new InputError(describe(where, 'unknown key', `one of ${known}`));
    }
    const where = source === 'flags' ? `--${flagName(key)}` : `${source}: ${rawKey}`;
    out[key] = checkValue(field, value, where);
  }
  return out as Values<S>;
}

export function defaults<S extends Schema>(schema: S): Values<S> {
  const out: Record<string, unknown> = {};
  for (const [k, f] of Object.entries(schema)) out[k] = f.default;
  return out as Values<S>;
}

/** Reads a --config JSON file as a layer. */
export function readConfigFile(path: string): Record<string, unknown> {
  if (!existsSync(path)) throw new InputError(describe(`--config ${path}`, 'file not found'));
  return readJsonObject(path, 'a JSON object of settings', InputError, `--config ${path}`);
}

/** yargs option specs for every field (no yargs defaults: an absent flag must not override a config file). */
export function yargsOptions(schema: Schema, only?: readonly string[]): Record<string, { type: 'string' | 'number' | 'boolean'; describe: string; choices?: readonly string[] }> {
  const out: Record<string, { type: 'string' | 'number' | 'boolean'; describe: string; choices?: readonly string[] }> = {};
  for (const [k, f] of Object.entries(schema)) {
    if (only && !only.includes(k)) continue;
    const type = f.type === 'int' ? 'number' : f.type;
    const def = f.default === null ? '' : ` [default: ${JSON.stringify(f.default)}]`;
    out[flagName(k)] = { type, describe: f.describe + def, ...(f.choices ? { choices: f.choices } : {}) };
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

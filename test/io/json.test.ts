// The JSON rules written once in io/json.ts: a JSON object or an error naming the file, and JSONL where only the last
// line may be torn (readers skip it, a resuming writer cuts it off), any earlier bad line an error naming file:line.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { appendJsonl, parseJsonl, readJsonObject, readJsonl, repairJsonl } from '../../src/io/json.js';
import { FormatError, InputError } from '../../src/util/errors.js';
import { canonicalJson, hashJson } from '../../src/util/hash.js';

const dir = mkdtempSync(join(tmpdir(), 'io-json-'));
const file = (name: string, text: string) => {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
};

describe('readJsonObject', () => {
  it('returns the object, or throws the chosen class naming the file', () => {
    expect(readJsonObject(file('ok.json', '{"a": 1}'), 'x')).toEqual({ a: 1 });
    expect(() => readJsonObject(file('bad.json', '{"a": '), 'a thing')).toThrow(FormatError);
    expect(() => readJsonObject(join(dir, 'bad.json'), 'a thing', InputError)).toThrow(/bad\.json: invalid JSON .*\(expected a thing\)/);
    expect(() => readJsonObject(file('arr.json', '[1]'), 'an object')).toThrow(/arr\.json: not a JSON object/);
    expect(() => readJsonObject(join(dir, 'none.json'), 'x', InputError, '--config none.json')).toThrow(/^--config none\.json: file not found/);
  });
});

describe('JSONL', () => {
  it('skips blank lines and a BOM, reports a torn last line, and refuses a bad line before it', () => {
    const f = readJsonl(file('a.jsonl', '\uFEFF{"a":1}\n\n{"b":2}\n{"c":'));
    expect(f.rows.map((r) => r.value)).toEqual([{ a: 1 }, { b: 2 }]);
    expect(f.rows[1].where).toMatch(/a\.jsonl:3$/);
    expect(f.torn).toMatch(/a\.jsonl:4$/);
    expect(() => readJsonl(file('b.jsonl', '{"a":1}\nnope\n{"b":2}\n'), InputError)).toThrow(/b\.jsonl:2: invalid JSON/);
    expect(() => readJsonl(join(dir, 'b.jsonl'))).toThrow(FormatError);
    expect(() => parseJsonl(Buffer.from('[1]\n{"a":1}\n'), 'c.jsonl')).toThrow(/c\.jsonl:1: not a JSON object/);
    expect(parseJsonl(Buffer.from('{"a":1}'), 'd.jsonl')).toMatchObject({ torn: null, missingNewline: true });
  });

  it('a resuming writer cuts the torn line or completes the newline, then appends whole lines', () => {
    const f = file('log.jsonl', '{"step":1}\n{"step":2}\n{"st');
    expect(repairJsonl(f).map((r) => r.value)).toEqual([{ step: 1 }, { step: 2 }]);
    appendJsonl(f, [{ step: 3 }]);
    expect(readFileSync(f, 'utf8')).toBe('{"step":1}\n{"step":2}\n{"step":3}\n');
    expect(repairJsonl(join(dir, 'absent.jsonl'))).toEqual([]);
  });
});

describe('canonicalJson', () => {
  it('sorts keys at every depth and drops undefined members, so key order does not change hashes', () => {
    expect(canonicalJson({ b: [{ y: 1, x: 2 }], a: undefined, c: 'z' })).toBe('{"b":[{"x":2,"y":1}],"c":"z"}');
    expect(hashJson({ a: 1, b: 2 })).toBe(hashJson({ b: 2, a: 1 }));
  });
});

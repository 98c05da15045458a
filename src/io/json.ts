// JSON and JSONL files, each rule written once: "read a JSON object or throw naming the file", and the JSONL rule
// for append-only logs (every line a JSON object; only the last one may be torn by a crash). Typed run files: run/files.ts.
import { appendFileSync, closeSync, existsSync, fsyncSync, openSync, readFileSync, truncateSync } from 'node:fs';
import { FormatError, describe } from '../util/errors.js';
import { namePath, writeAll } from './atomic.js';

/** FormatError for our own files and HF/PEFT files; InputError for a file the user wrote (a --config, a samples file). */
type ErrorClass = new (message: string) => Error;

/** Parses `file` as one JSON object, or throws `<where>: invalid JSON (...) (expected <expected>)`; `where` defaults to the file. */
export function readJsonObject(file: string, expected: string, E: ErrorClass = FormatError, where = file): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new E(describe(where, (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : `invalid JSON (${(e as Error).message})`, expected));
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new E(describe(where, 'not a JSON object', expected));
  return v as Record<string, unknown>;
}

/** The object a JSON line holds, or undefined (not JSON, or not an object). */
export function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export interface JsonlLine {
  value: Record<string, unknown>;
  /** `file:line`, 1-based. */
  where: string;
}

export interface JsonlFile {
  rows: JsonlLine[];
  /** `file:line` of a last line that is not a JSON object (a run still writing, or a crash mid-line); skipped. */
  torn: string | null;
  /** Bytes up to the end of the last whole line that parsed: where a writer resuming the file truncates it. */
  goodBytes: number;
  /** The last line parsed but has no newline after it. */
  missingNewline: boolean;
}

/**
 * The JSONL rule: blank lines are skipped and every other line is a JSON object, except that the last non-blank line
 * may be incomplete (it is reported as `torn`). A bad line before the last is damage, not a crash: an error naming
 * `file:line`. A leading BOM is ignored.
 */
export function parseJsonl(buf: Buffer, file: string, E: ErrorClass = FormatError): JsonlFile {
  const bom = buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf ? 3 : 0;
  const lines = buf.subarray(bom).toString('utf8').split('\n');
  let last = lines.length - 1;
  while (last >= 0 && lines[last].trim() === '') last--;
  const rows: JsonlLine[] = [];
  let offset = bom;
  let goodBytes = bom;
  for (let i = 0; i <= last; i++) {
    const bytes = Buffer.byteLength(lines[i]) + 1;
    const text = lines[i].trim();
    if (text !== '') {
      const where = `${file}:${i + 1}`;
      const value = parseObject(text);
      if (value === undefined) {
        if (i === last) return { rows, torn: where, goodBytes, missingNewline: false };
        let found = 'not a JSON object';
        try {
          JSON.parse(text);
        } catch (e) {
          found = `invalid JSON: ${(e as Error).message}`;
        }
        throw new E(describe(where, found, 'one JSON object per line', 'The file is damaged: restore it, or start a new one.'));
      }
      rows.push({ value, where });
    }
    offset += bytes;
    if (text !== '') goodBytes = Math.min(offset, buf.length);
  }
  const missingNewline = last >= 0 && last === lines.length - 1 && lines[last].trim() !== '';
  return { rows, torn: null, goodBytes, missingNewline };
}

/** parseJsonl of a file. */
export function readJsonl(file: string, E: ErrorClass = FormatError): JsonlFile {
  return parseJsonl(readFileSync(file), file, E);
}

/**
 * Opens an append-only JSONL file for a writer that resumes it: a torn last line is cut off, a whole last object that
 * only lacks its newline gets one. Returns the lines kept; [] when the file does not exist.
 */
export function repairJsonl(file: string, log: (line: string) => void = () => {}): JsonlLine[] {
  if (!existsSync(file)) return [];
  const f = readJsonl(file);
  if (f.torn) {
    const size = readFileSync(file).length;
    truncateSync(file, f.goodBytes);
    log(`${file}: removed a torn last line (${size - f.goodBytes} bytes) left by an interrupted run`);
  } else if (f.missingNewline) {
    const fd = openSync(file, 'a');
    try {
      writeAll(fd, Buffer.from('\n'));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    log(`${file}: the last line had no newline; added one`);
  }
  return f.rows;
}

/** Appends JSON lines (not fsynced: metrics are rewritten from the checkpoint on resume). */
export function appendJsonl(file: string, rows: readonly object[]): void {
  if (rows.length === 0) return;
  try {
    appendFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  } catch (e) {
    throw namePath(e, file); // a full disk names the file (util/errors systemErrorLine)
  }
}

/** An append-only JSONL file; every line is fsynced before `append` returns, so a finished unit of work survives a crash. */
export class AppendLog {
  private fd: number;
  constructor(private readonly file: string) {
    this.fd = openSync(file, 'a');
  }
  append(value: Record<string, unknown>): void {
    try {
      writeAll(this.fd, Buffer.from(JSON.stringify(value) + '\n'));
      fsyncSync(this.fd);
    } catch (e) {
      throw namePath(e, this.file); // a full disk names the file (util/errors systemErrorLine)
    }
  }
  close(): void {
    closeSync(this.fd);
  }
}

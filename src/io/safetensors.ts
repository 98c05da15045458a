// The safetensors format, read and written natively: u64 LE header length N, N bytes of JSON header, then the data.
// Follows HF `safetensors` (Rust): header space-padded to 8 bytes, buffer contiguous with no gaps, keys by dtype then name.
// Reads F32/F16/BF16/F64 into Float32Array by offset (never the whole file); writes F32 or BF16. Shards: shards.ts.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { endianness } from 'node:os';
import { FormatError, describe } from '../util/errors.js';
import { writeFileAtomicStream } from './atomic.js';

// ---------------------------------------------------------------------------------------------------------------
// dtypes and conversions

/** Every dtype in the safetensors spec, with its size in bytes. Only the float ones can be `read()` as f32. */
export const DTYPE_BYTES = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1, I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4, F64: 8, I64: 8, U64: 8,
} as const;
export type Dtype = keyof typeof DTYPE_BYTES;
export type WriteDtype = 'F32' | 'BF16';
const READABLE: readonly Dtype[] = ['F32', 'F16', 'BF16', 'F64'];

/** Largest header HF accepts (safetensors `MAX_HEADER_SIZE`); a bigger one is a corrupt length, not a real header. */
export const MAX_HEADER_BYTES = 100_000_000;

function assertLittleEndian(): void {
  if (endianness() !== 'LE') throw new FormatError(describe('safetensors', 'big-endian host', 'a little-endian host', 'Typed-array views assume LE byte order.'));
}

/** bfloat16 bits -> f32: bf16 is the top half of an f32, so this is exact (NaN payloads included). */
export function bf16BitsToF32(h: number): number {
  const u = new Uint32Array([(h & 0xffff) << 16]);
  return new Float32Array(u.buffer)[0]!;
}

/** f32 -> bfloat16 bits, round to nearest even (as torch and HF do). NaN stays NaN (sign kept, quiet bit set); overflow gives inf. */
export function f32ToBf16Bits(x: number): number {
  const b = new Uint32Array(new Float32Array([x]).buffer)[0]!;
  return bitsToBf16(b);
}

function bitsToBf16(b: number): number {
  if ((b & 0x7fffffff) > 0x7f800000) return (b >>> 16) | 0x0040;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/** IEEE binary16 bits -> number: subnormals (exp 0) are m * 2^-24, exp 31 is inf or NaN. */
export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

let f16Table: Uint32Array | null = null;
function f16ToF32Table(): Uint32Array {
  if (f16Table) return f16Table;
  const t = new Uint32Array(65536);
  const f = new Float32Array(t.buffer);
  for (let h = 0; h < 65536; h++) {
    // NaN via bits so the payload survives (a JS NaN would be canonicalised).
    if ((h & 0x7c00) === 0x7c00 && h & 0x3ff) t[h] = ((h & 0x8000) << 16) | 0x7f800000 | ((h & 0x3ff) << 13);
    else f[h] = f16BitsToF32(h);
  }
  return (f16Table = t);
}

/** Decodes raw little-endian bytes of a float dtype into a fresh Float32Array. `raw` must start 8-byte aligned. */
export function decodeToF32(raw: Uint8Array, dtype: Dtype, numel: number): Float32Array {
  assertLittleEndian();
  if (dtype === 'F32') return new Float32Array(raw.buffer, raw.byteOffset, numel);
  if (dtype === 'F64') return Float32Array.from(new Float64Array(raw.buffer, raw.byteOffset, numel));
  const src = new Uint16Array(raw.buffer, raw.byteOffset, numel);
  const out = new Float32Array(numel);
  const bits = new Uint32Array(out.buffer);
  if (dtype === 'BF16') {
    for (let i = 0; i < numel; i++) bits[i] = src[i]! << 16;
  } else if (dtype === 'F16') {
    const t = f16ToF32Table();
    for (let i = 0; i < numel; i++) bits[i] = t[src[i]!]!;
  } else {
    throw new FormatError(describe('safetensors', `dtype ${dtype}`, READABLE.join(', ')));
  }
  return out;
}

/** Encodes f32 values as little-endian bytes of `dtype` (a view for F32, a new buffer for BF16). */
export function encodeFromF32(data: Float32Array, dtype: WriteDtype): Uint8Array {
  assertLittleEndian();
  if (dtype === 'F32') return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const src = new Uint32Array(data.buffer, data.byteOffset, data.length);
  const out = new Uint16Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = bitsToBf16(src[i]!);
  return new Uint8Array(out.buffer);
}

// ---------------------------------------------------------------------------------------------------------------
// reading

export interface TensorEntry {
  name: string;
  dtype: Dtype;
  shape: number[];
  /** Byte offsets relative to the start of the data buffer, as in the header. */
  begin: number;
  end: number;
}

export interface ReadTensor {
  dtype: Dtype;
  shape: number[];
  data: Float32Array;
}

export interface SafetensorsFile {
  path: string;
  /** Tensors in data-offset order. */
  entries: TensorEntry[];
  /** `__metadata__`, or null when absent. */
  metadata: Record<string, string> | null;
  has(name: string): boolean;
  entry(name: string): TensorEntry;
  /** Reads one tensor by offset and converts it to float32. */
  read(name: string): ReadTensor;
  /** The tensor's raw little-endian bytes, any dtype. */
  readRaw(name: string): Uint8Array;
  close(): void;
}

/** A FormatError naming the file and tensor (shared with shards.ts). */
export function fail(file: string, tensor: string | null, found: string, expected?: string, hint?: string): FormatError {
  return new FormatError(describe(tensor === null ? file : `${file}: tensor "${tensor}"`, found, expected, hint));
}

export const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);
export const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/**
 * Validates a parsed header against a data buffer of `dataLen` bytes, as HF does: known dtypes, byte length =
 * numel x dtype size, offsets in range, and the tensors tiling the buffer exactly (no overlap, no gap, no tail).
 */
export function parseHeader(file: string, header: unknown, dataLen: number): { entries: TensorEntry[]; metadata: Record<string, string> | null } {
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw fail(file, null, 'header is not a JSON object', '{name: {dtype, shape, data_offsets}}');
  let metadata: Record<string, string> | null = null;
  const entries: TensorEntry[] = [];
  for (const [name, v] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw fail(file, null, `__metadata__ is ${JSON.stringify(v)}`, 'an object of strings');
      for (const [k, s] of Object.entries(v)) if (typeof s !== 'string') throw fail(file, null, `__metadata__.${k} is ${JSON.stringify(s)}`, 'a string');
      metadata = v as Record<string, string>;
      continue;
    }
    if (typeof v !== 'object' || v === null) throw fail(file, name, `entry is ${JSON.stringify(v)}`, '{dtype, shape, data_offsets}');
    const { dtype, shape, data_offsets: offs } = v as Record<string, unknown>;
    if (typeof dtype !== 'string' || !(dtype in DTYPE_BYTES)) throw fail(file, name, `unknown dtype ${JSON.stringify(dtype)}`, Object.keys(DTYPE_BYTES).join(', '));
    if (!Array.isArray(shape) || !shape.every(isCount)) throw fail(file, name, `shape ${JSON.stringify(shape)}`, 'a list of non-negative integers');
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every(isCount)) throw fail(file, name, `data_offsets ${JSON.stringify(offs)}`, '[begin, end] non-negative integers');
    const [begin, end] = offs as [number, number];
    if (end < begin) throw fail(file, name, `data_offsets [${begin}, ${end}] end before begin`, 'begin <= end');
    if (end > dataLen) throw fail(file, name, `data_offsets [${begin}, ${end}] beyond the ${dataLen}-byte data buffer`, `end <= ${dataLen}`, 'The file is truncated or its header is corrupt.');
    const want = numel(shape) * DTYPE_BYTES[dtype as Dtype];
    if (end - begin !== want) throw fail(file, name, `${end - begin} bytes`, `${want} = ${JSON.stringify(shape)} x ${DTYPE_BYTES[dtype as Dtype]} bytes of ${dtype}`);
    entries.push({ name, dtype: dtype as Dtype, shape: [...shape], begin, end });
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  let prev: string | null = null;
  for (const e of entries) {
    if (e.begin < pos) throw fail(file, e.name, `data_offsets [${e.begin}, ${e.end}] overlap tensor "${prev}" (ends at ${pos})`, 'non-overlapping tensors');
    if (e.begin > pos) throw fail(file, e.name, `${e.begin - pos}-byte gap before data_offsets [${e.begin}, ${e.end}]`, `begin = ${pos}`, 'HF safetensors requires a contiguous buffer.');
    pos = e.end;
    prev = e.name;
  }
  if (pos !== dataLen) throw fail(file, prev, `${dataLen - pos} bytes after the last tensor`, 'the tensors to fill the data buffer exactly', 'The file has trailing data or a corrupt header.');
  return { entries, metadata };
}

const READ_CHUNK = 1 << 30;

function readExact(fd: number, file: string, tensor: string | null, buf: Uint8Array, position: number): void {
  let done = 0;
  while (done < buf.byteLength) {
    const n = readSync(fd, buf, done, Math.min(READ_CHUNK, buf.byteLength - done), position + done);
    if (n === 0) throw fail(file, tensor, `file ended at byte ${position + done}`, `${buf.byteLength} bytes from ${position}`, 'The file was truncated while open.');
    done += n;
  }
}

/** Opens a .safetensors file: reads and validates only the header; tensors are read one at a time by offset. */
export function openSafetensors(path: string): SafetensorsFile {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size < 8) throw fail(path, null, `file is ${size} bytes`, 'at least 8 (the u64 header length)', 'The file is truncated.');
    const lenBuf = new Uint8Array(8);
    readExact(fd, path, null, lenBuf, 0);
    const n = Number(new DataView(lenBuf.buffer).getBigUint64(0, true));
    if (n > size - 8) throw fail(path, null, `header length ${n} larger than the file (${size} bytes)`, `at most ${size - 8}`, 'The file is truncated or not safetensors.');
    if (n > MAX_HEADER_BYTES) throw fail(path, null, `header length ${n}`, `at most ${MAX_HEADER_BYTES}`);
    const headerBuf = new Uint8Array(n);
    readExact(fd, path, null, headerBuf, 8);
    let header: unknown;
    try {
      header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBuf));
    } catch (e) {
      throw fail(path, null, `invalid JSON header (${(e as Error).message})`, 'a UTF-8 JSON object', 'The file is corrupt or not safetensors.');
    }
    const dataStart = 8 + n;
    const { entries, metadata } = parseHeader(path, header, size - dataStart);
    const byName = new Map(entries.map((e) => [e.name, e]));
    let closed = false;
    const entry = (name: string): TensorEntry => {
      const e = byName.get(name);
      if (!e) throw fail(path, name, 'not in this file', `one of ${byName.size} tensors`);
      return e;
    };
    const readRaw = (name: string): Uint8Array => {
      if (closed) throw fail(path, name, 'read after close');
      const e = entry(name);
      // A fresh ArrayBuffer starts 8-byte aligned, so typed-array views on it need no copy.
      const raw = new Uint8Array(e.end - e.begin);
      readExact(fd, path, name, raw, dataStart + e.begin);
      return raw;
    };
    return {
      path,
      entries,
      metadata,
      has: (name) => byName.has(name),
      entry,
      readRaw,
      read(name) {
        const e = entry(name);
        if (!READABLE.includes(e.dtype)) throw fail(path, name, `dtype ${e.dtype} cannot be read as float32`, READABLE.join(', '), 'Model weights must be BF16, F16 or F32.');
        return { dtype: e.dtype, shape: [...e.shape], data: decodeToF32(readRaw(name), e.dtype, numel(e.shape)) };
      },
      close() {
        if (!closed) closeSync(fd);
        closed = true;
      },
    };
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// writing

export interface TensorToWrite {
  name: string;
  shape: number[];
  /** The values, or a thunk that produces them when the writer reaches this tensor (keeps host memory low). */
  data: Float32Array | (() => Float32Array | Promise<Float32Array>);
  /** Overrides the file-level dtype for this tensor. */
  dtype?: WriteDtype;
}

export interface WriteOptions {
  /** Storage dtype, default F32. */
  dtype?: WriteDtype;
  /** `__metadata__`; merged over the default `{format: "pt"}` that transformers checks for. `null` writes none. */
  metadata?: Record<string, string> | null;
}

interface Planned {
  t: TensorToWrite;
  dtype: WriteDtype;
  numel: number;
  begin: number;
  end: number;
}

const DTYPE_ORDER: Record<WriteDtype, number> = { F32: 0, BF16: 1 };

/**
 * Lays out the header. Order as in HF's Rust writer: dtype (wider first, F32 before BF16), then name; the JSON
 * lists `__metadata__` first, then tensors in offset order; spaces pad the header so the data starts 8-aligned.
 */
function plan(file: string, tensors: Iterable<TensorToWrite>, opts: WriteOptions): { header: Uint8Array; items: Planned[] } {
  const seen = new Set<string>();
  const items: Planned[] = [];
  for (const t of tensors) {
    if (t.name === '__metadata__' || seen.has(t.name)) throw fail(file, t.name, seen.has(t.name) ? 'duplicate name' : 'reserved name', 'unique tensor names');
    seen.add(t.name);
    if (!t.shape.every(isCount)) throw fail(file, t.name, `shape ${JSON.stringify(t.shape)}`, 'a list of non-negative integers');
    const n = numel(t.shape);
    if (t.data instanceof Float32Array && t.data.length !== n) throw fail(file, t.name, `${t.data.length} values`, `${n} for shape ${JSON.stringify(t.shape)}`);
    items.push({ t, dtype: t.dtype ?? opts.dtype ?? 'F32', numel: n, begin: 0, end: 0 });
  }
  items.sort((a, b) => DTYPE_ORDER[a.dtype] - DTYPE_ORDER[b.dtype] || (a.t.name < b.t.name ? -1 : a.t.name > b.t.name ? 1 : 0));
  const json: Record<string, unknown> = {};
  const metadata = opts.metadata === null ? null : { format: 'pt', ...opts.metadata };
  if (metadata) json.__metadata__ = metadata;
  let pos = 0;
  for (const it of items) {
    it.begin = pos;
    it.end = pos += it.numel * DTYPE_BYTES[it.dtype];
    json[it.t.name] = { dtype: it.dtype, shape: it.t.shape, data_offsets: [it.begin, it.end] };
  }
  const body = Buffer.from(JSON.stringify(json), 'utf8');
  const padded = Buffer.alloc(body.length + ((8 - (body.length % 8)) % 8), 0x20);
  body.copy(padded);
  const header = new Uint8Array(8 + padded.length);
  new DataView(header.buffer).setBigUint64(0, BigInt(padded.length), true);
  header.set(padded, 8);
  return { header, items };
}

async function resolveData(file: string, it: Planned): Promise<Uint8Array> {
  const data = typeof it.t.data === 'function' ? await it.t.data() : it.t.data;
  if (!(data instanceof Float32Array) || data.length !== it.numel) {
    throw fail(file, it.t.name, `${data instanceof Float32Array ? data.length : typeof data} values`, `${it.numel} for shape ${JSON.stringify(it.t.shape)}`);
  }
  return encodeFromF32(data, it.dtype);
}

/** The whole file in memory, for small tensors with eager data (adapters, tests). */
export function encodeSafetensors(tensors: Iterable<TensorToWrite & { data: Float32Array }>, opts: WriteOptions = {}): Uint8Array {
  const { header, items } = plan('safetensors', tensors, opts);
  const out = new Uint8Array(header.length + (items.at(-1)?.end ?? 0));
  out.set(header, 0);
  for (const it of items) out.set(encodeFromF32(it.t.data as Float32Array, it.dtype), header.length + it.begin);
  return out;
}

/** Writes one .safetensors file atomically, streaming tensor by tensor (lazy data is fetched in file order). */
export async function writeSafetensors(path: string, tensors: Iterable<TensorToWrite>, opts: WriteOptions = {}): Promise<void> {
  const { header, items } = plan(path, tensors, opts);
  await writeFileAtomicStream(path, (async function* () {
    yield header;
    for (const it of items) yield await resolveData(path, it);
  })());
}

// Columnar files -> JSON-like rows: Parquet through hyparquet, Arrow IPC (stream or file, as datasets' save_to_disk
// writes them) through apache-arrow. Values become what JSON would hold: int64 -> number (a string beyond 2^53),
// lists -> arrays, structs and maps -> objects, dates -> ISO strings, binary -> arrays of bytes.
// hyparquet decodes asynchronously only; readers here are synchronous, so it runs in a worker the caller waits on.
import { readFileSync } from 'node:fs';
import { MessageChannel, receiveMessageOnPort, Worker } from 'node:worker_threads';
import { tableFromIPC, Vector } from 'apache-arrow';
import { InputError, describe } from '../util/errors.js';
import type { Located } from './formats.js';

/** A decoded value as JSON would hold it. */
export function plain(v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  if (typeof v !== 'object') return v;
  if (v instanceof Date) return v.toISOString();
  if (v instanceof Vector) return [...v].map(plain);
  if (ArrayBuffer.isView(v)) return Array.from(v as unknown as ArrayLike<number | bigint>, plain);
  if (Array.isArray(v)) return v.map(plain);
  if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [String(k), plain(x)]));
  const o = typeof (v as { toJSON?: unknown }).toJSON === 'function' ? (v as { toJSON(): unknown }).toJSON() : v;
  if (o !== v) return plain(o);
  return Object.fromEntries(Object.entries(o as Record<string, unknown>).map(([k, x]) => [k, plain(x)]));
}

const rows = (file: string, values: unknown[]): Located[] => values.map((value, i) => ({ where: `${file}[${i}]`, line: i + 1, value: plain(value) }));

/** An Arrow IPC file or stream (datasets' data-00000-of-00001.arrow), one record per row. */
export function arrowRecords(file: string): Located[] {
  let table;
  try {
    table = tableFromIPC(readFileSync(file));
  } catch (e) {
    throw new InputError(describe(file, `not an Arrow IPC stream or file (${(e as Error).message})`, "Arrow IPC, as datasets' save_to_disk writes"));
  }
  const out: unknown[] = [];
  for (let i = 0; i < table.numRows; i++) out.push(table.get(i));
  return rows(file, out);
}

// The worker: reads the file, decodes every row with hyparquet, posts them, and always wakes the caller. Only
// import() (valid as a CommonJS or an ES module script), and no inherited flags (node --input-type=module would
// make it a module, where require is undefined and the caller would wait for ever).
const PARQUET_WORKER = `
(async () => {
  const { workerData } = await import('node:worker_threads');
  const { port, signal, file, hyparquet } = workerData;
  try {
    const { readFileSync } = await import('node:fs');
    const { parquetReadObjects } = await import(hyparquet);
    const buf = readFileSync(file);
    const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
    port.postMessage({ rows: await parquetReadObjects({ file: ab }) });
  } catch (e) {
    port.postMessage({ error: String((e && e.message) || e) });
  } finally {
    Atomics.store(signal, 0, 1);
    Atomics.notify(signal, 0);
  }
})();
`;

/** A Parquet file (TRL's and the Hub's datasets ship as these), one record per row, read synchronously. */
export function parquetRecords(file: string, timeoutMs = 30 * 60_000): Located[] {
  const signal = new Int32Array(new SharedArrayBuffer(4));
  const { port1, port2 } = new MessageChannel();
  const worker = new Worker(PARQUET_WORKER, {
    eval: true,
    execArgv: [],
    workerData: { port: port2, signal, file, hyparquet: import.meta.resolve('hyparquet') },
    transferList: [port2],
  });
  try {
    if (Atomics.wait(signal, 0, 0, timeoutMs) === 'timed-out') throw new InputError(describe(file, `not decoded within ${timeoutMs / 1000} s`, 'a Parquet file'));
    const msg = receiveMessageOnPort(port1)?.message as { rows?: unknown[]; error?: string } | undefined;
    if (!msg || msg.error !== undefined || !msg.rows) {
      throw new InputError(describe(file, `cannot be read as Parquet (${msg?.error ?? 'the reader stopped'})`, 'a Parquet file (plain, snappy or uncompressed)'));
    }
    return rows(file, msg.rows);
  } finally {
    port1.close();
    void worker.terminate();
  }
}

// Content hashes that key caches and guard resume: a stale cache or a different run is never reused.
// Model directories are hashed from headers and payload samples, not whole files (checkpoints can be 16 GB).
import { createHash } from 'node:crypto';
import { readFileSync, existsSync, openSync, readSync, closeSync, fstatSync } from 'node:fs';
import { join } from 'node:path';

export function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export function hashFile(path: string): string {
  return sha256(readFileSync(path));
}

/** JSON with sorted keys (undefined members left out), so two equal objects serialize equal whatever their key order. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map((x) => (x === undefined ? 'null' : canonicalJson(x))).join(',')}]`;
  if (typeof v === 'object' && v !== null) {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** Hash of a JSON-able value with sorted keys. */
export function hashJson(v: unknown): string {
  return sha256(canonicalJson(v));
}

/**
 * A model directory's identity without reading gigabytes: config, index, and each safetensors file's size + header.
 * The header holds every tensor's dtype, shape and offsets, so any re-export changes it.
 */
export function hashModelDir(dir: string, weightFiles: string[]): string {
  const h = createHash('sha256');
  for (const f of ['config.json', 'model.safetensors.index.json']) {
    const p = join(dir, f);
    if (existsSync(p)) h.update(f).update(readFileSync(p));
  }
  for (const f of [...weightFiles].sort()) {
    const fd = openSync(join(dir, f), 'r');
    try {
      const size = fstatSync(fd).size;
      const len = Buffer.alloc(8);
      readSync(fd, len, 0, 8, 0);
      const n = Math.min(Number(len.readBigUInt64LE(0)), Math.max(0, size - 8));
      const header = Buffer.alloc(n);
      readSync(fd, header, 0, n, 8);
      // Samples of the payload (8 windows spread over it) catch a retrained or merged file with the same header.
      h.update(f).update(String(size)).update(header);
      const payload = Math.max(0, size - 8 - n);
      const win = Math.min(65536, payload);
      const sample = Buffer.alloc(win);
      for (let k = 0; k < 8 && win > 0; k++) {
        readSync(fd, sample, 0, win, 8 + n + Math.floor(((payload - win) * k) / 7));
        h.update(sample);
      }
    } finally {
      closeSync(fd);
    }
  }
  return h.digest('hex');
}

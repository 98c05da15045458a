// Crash-safe writes: a file or a whole directory is built under a temporary sibling name, fsynced, then renamed
// into place, so a reader sees the old version or the new one, never half of one. POSIX rename semantics.
import {
  closeSync,
  existsSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';

/** A sibling name in the same directory (so rename stays on one filesystem), hidden and unique per call. */
export function tempSibling(finalPath: string, tag: 'tmp' | 'old' = 'tmp'): string {
  const abs = resolve(finalPath);
  return join(dirname(abs), `.${basename(abs)}.${tag}-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/** Flushes a directory entry table so a rename inside it survives a power cut. Unsupported on some OSes. */
export function fsyncDir(dir: string): void {
  let fd: number | null = null;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Windows cannot open a directory for fsync; rename is still atomic there, only durability is weaker.
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

/** Writes every byte of `chunk` at the fd's position (writeSync may write less than asked). */
export function writeAll(fd: number, chunk: Uint8Array): void {
  let off = 0;
  while (off < chunk.byteLength) off += writeSync(fd, chunk, off, chunk.byteLength - off);
}

/** Names the final path in a system error that has none (writeSync's ENOSPC names no file) or names our temporary sibling. */
export function namePath(e: unknown, finalPath: string, tmpPath?: string): unknown {
  const err = e as NodeJS.ErrnoException;
  if (err && typeof err === 'object' && typeof err.code === 'string') {
    if (!err.path) err.path = resolve(finalPath);
    else if (tmpPath && err.path.startsWith(tmpPath)) err.path = resolve(finalPath) + err.path.slice(tmpPath.length);
  }
  return e;
}

function toBytes(data: string | Uint8Array): Uint8Array {
  return typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
}

/** A temp sibling of `finalPath`, open for writing; `commit` fsyncs and renames it in, `abort` removes it. */
function openTemp(finalPath: string): { fd: number; commit(): void; abort(): void } {
  const tmp = tempSibling(finalPath);
  let fd: number;
  try {
    fd = openSync(tmp, 'wx');
  } catch (e) {
    throw namePath(e, finalPath, tmp);
  }
  let open = true;
  return {
    fd,
    commit() {
      fsyncSync(fd);
      open = false;
      closeSync(fd);
      renameSync(tmp, finalPath);
      fsyncDir(dirname(resolve(finalPath)));
    },
    abort() {
      if (open) closeSync(fd);
      rmSync(tmp, { force: true });
    },
  };
}

/**
 * Writes `data` (a string, bytes, or chunks written in order) to `path` atomically:
 * temp file in the same directory, fsync, rename. On any error the temp file is removed and `path` is untouched.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array | Iterable<Uint8Array>): void {
  const t = openTemp(path);
  try {
    if (typeof data === 'string' || data instanceof Uint8Array) writeAll(t.fd, toBytes(data));
    else for (const chunk of data) writeAll(t.fd, chunk);
    t.commit();
  } catch (e) {
    t.abort();
    throw namePath(e, path);
  }
}

/** `writeFileAtomic` for chunks that are produced asynchronously (e.g. tensors read back from a device). */
export async function writeFileAtomicStream(path: string, chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<void> {
  const t = openTemp(path);
  try {
    for await (const chunk of chunks) writeAll(t.fd, chunk);
    t.commit();
  } catch (e) {
    t.abort();
    throw namePath(e, path);
  }
}

/** fsyncs every file and directory under `dir` (depth first), so the tree is durable before it is renamed. */
function fsyncTree(dir: string): void {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = lstatSync(p);
    if (st.isDirectory()) fsyncTree(p);
    else if (st.isFile()) {
      const fd = openSync(p, 'r');
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    }
  }
  fsyncDir(dir);
}

/** The hidden file in a folder written by writeDirAtomic({ manifest }) that lists what it wrote: how a later write knows its own files. */
export const OUTPUT_MANIFEST = '.dpo-trainer-output.json';
const MANIFEST_FORMAT = 'dpo-trainer-output';

export interface DirWriteOptions {
  /** Record the top-level names written in OUTPUT_MANIFEST (value: the writer, e.g. "merge"), so a rewrite may drop them. */
  manifest?: string;
}

/** The names a previous writeDirAtomic({ manifest }) wrote in `dir`, or null when `dir` has no (readable) manifest. */
export function readOutputManifest(dir: string): string[] | null {
  try {
    const m = JSON.parse(readFileSync(join(dir, OUTPUT_MANIFEST), 'utf8')) as { format?: unknown; files?: unknown };
    if (m.format !== MANIFEST_FORMAT || !Array.isArray(m.files)) return null;
    return m.files.filter((f): f is string => typeof f === 'string');
  } catch {
    return null;
  }
}

/**
 * Builds a directory atomically. `fill(tmpDir)` writes into a fresh temporary sibling of `finalDir`;
 * when it resolves, the tree is fsynced and renamed to `finalDir`. An existing `finalDir` is replaced safely: it is
 * renamed aside, the new one renamed in, then every old entry the new tree does not replace is moved back, unless the
 * old folder's manifest says an earlier write of ours made it (`save_pretrained` likewise never deletes files it did
 * not write). If `fill` throws, the temporary directory is removed and `finalDir` is untouched. A crash between the
 * renames leaves the previous version intact under `.<name>.old-*` beside it, never a half-written `finalDir`.
 */
export async function writeDirAtomic(finalDir: string, fill: (tmpDir: string) => Promise<void> | void, o: DirWriteOptions = {}): Promise<void> {
  const abs = resolve(finalDir);
  const parent = dirname(abs);
  mkdirSync(parent, { recursive: true });
  const tmp = tempSibling(abs, 'tmp');
  mkdirSync(tmp);
  try {
    await fill(tmp);
    if (o.manifest) {
      const files = readdirSync(tmp).sort();
      writeFileSync(join(tmp, OUTPUT_MANIFEST), JSON.stringify({ format: MANIFEST_FORMAT, version: 1, writer: o.manifest, files }, null, 1) + '\n');
    }
    fsyncTree(tmp);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw namePath(e, abs, tmp);
  }
  if (existsSync(abs)) {
    const ours = new Set([...(readOutputManifest(abs) ?? []), OUTPUT_MANIFEST]);
    const old = tempSibling(abs, 'old');
    renameSync(abs, old);
    try {
      renameSync(tmp, abs);
    } catch (e) {
      renameSync(old, abs);
      rmSync(tmp, { recursive: true, force: true });
      throw e;
    }
    // Foreign entries go back into the new folder; only what the new tree replaced, or an earlier write of ours made, is dropped.
    const written = new Set(readdirSync(abs));
    for (const name of readdirSync(old)) {
      if (!written.has(name) && !ours.has(name)) renameSync(join(old, name), join(abs, name));
    }
    fsyncDir(abs);
    fsyncDir(parent);
    rmSync(old, { recursive: true, force: true });
  } else {
    try {
      renameSync(tmp, abs);
    } catch (e) {
      rmSync(tmp, { recursive: true, force: true });
      throw e;
    }
    fsyncDir(parent);
  }
}

/**
 * Removes `.<name>.tmp-<pid>-<hex>` siblings (tempSibling's names) in `dir` left by a process that is no longer running:
 * what a crash or a full disk leaves behind. Returns the removed paths.
 */
export function removeStaleTemps(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const removed: string[] = [];
  for (const name of readdirSync(dir)) {
    const m = /^\..+\.tmp-(\d+)-[0-9a-f]{8}$/.exec(name);
    if (!m || pidAlive(Number(m[1]))) continue;
    rmSync(join(dir, name), { recursive: true, force: true });
    removed.push(join(dir, name));
  }
  return removed;
}

function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes a file if present (used to drop stale files after a new version is in place). */
export function unlinkIfExists(path: string): void {
  try {
    unlinkSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

// Crash-safe writes: a file or a whole directory is built under a temporary sibling name, fsynced, then renamed
// into place, so a reader sees the old version or the new one, never half of one. POSIX rename semantics.
import {
  closeSync,
  existsSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  unlinkSync,
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

function toBytes(data: string | Uint8Array): Uint8Array {
  return typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
}

/** A temp sibling of `finalPath`, open for writing; `commit` fsyncs and renames it in, `abort` removes it. */
function openTemp(finalPath: string): { fd: number; commit(): void; abort(): void } {
  const tmp = tempSibling(finalPath);
  const fd = openSync(tmp, 'wx');
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
    throw e;
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
    throw e;
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

/**
 * Builds a directory atomically. `fill(tmpDir)` writes into a fresh temporary sibling of `finalDir`;
 * when it resolves, the tree is fsynced and renamed to `finalDir`. An existing `finalDir` is replaced safely:
 * it is renamed aside, the new one renamed in, then the old one removed. If `fill` throws, the temporary
 * directory is removed and `finalDir` is untouched. A crash between the two renames leaves the previous
 * version intact under `.<name>.old-*` beside it (and no `finalDir`), never a half-written `finalDir`.
 */
export async function writeDirAtomic(finalDir: string, fill: (tmpDir: string) => Promise<void> | void): Promise<void> {
  const abs = resolve(finalDir);
  const parent = dirname(abs);
  mkdirSync(parent, { recursive: true });
  const tmp = tempSibling(abs, 'tmp');
  mkdirSync(tmp);
  try {
    await fill(tmp);
    fsyncTree(tmp);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  if (existsSync(abs)) {
    const old = tempSibling(abs, 'old');
    renameSync(abs, old);
    try {
      renameSync(tmp, abs);
    } catch (e) {
      renameSync(old, abs);
      rmSync(tmp, { recursive: true, force: true });
      throw e;
    }
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

/** Removes a file if present (used to drop stale files after a new version is in place). */
export function unlinkIfExists(path: string): void {
  try {
    unlinkSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

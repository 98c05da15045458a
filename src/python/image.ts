// The pristine interpreter memory as an immutable image that every worker's rewind copies from: a WebAssembly module
// whose one passive data segment holds the bytes, and whose one function copies a range of them into the memory it
// is instantiated with (memory.init). Compiled once, by the pool process's first worker, and handed to the others,
// it is one copy in memory for all workers (V8 shares a module's bytes between the threads it is posted to), where
// each held its own: two workers rewinding at once then read 12 MB less between them, and the rewind is the largest
// cost of a short program. No JS can write a module's bytes, so no program can poison what later programs start
// from (the snapshot once could be patched, when it was one SharedArrayBuffer shared by every worker).
// Leaves out: when to rewind and what (realm.ts), and making the pristine memory (attach, realm.ts).

/** The bytes of a module importing `env.memory` and exporting `restore(start, length)`, which copies image bytes
 * [start, start + length) to the same addresses of that memory. */
export function imageModuleBytes(image: Uint8Array): Uint8Array<ArrayBuffer> {
  const out: number[] = [];
  const u32 = (n: number): number[] => {
    const b: number[] = [];
    do {
      let byte = n & 0x7f;
      n >>>= 7;
      if (n !== 0) byte |= 0x80;
      b.push(byte);
    } while (n !== 0);
    return b;
  };
  const name = (s: string): number[] => [...u32(s.length), ...Buffer.from(s, 'utf8')];
  const section = (id: number, body: number[]): void => {
    out.push(id, ...u32(body.length), ...body);
  };
  out.push(0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00);
  section(1, [1, 0x60, 2, 0x7f, 0x7f, 0]); // type 0: (i32, i32) -> ()
  section(2, [1, ...name('env'), ...name('memory'), 0x02, 0x00, 0x00]); // memory, no maximum, minimum 0
  section(3, [1, 0]); // function 0 has type 0
  section(7, [1, ...name('restore'), 0x00, 0]);
  section(12, [1]); // one data segment (memory.init needs the count up front)
  // restore(start, length): memory.init 0 (dest = start, source offset = start, length)
  const body = [0, 0x20, 0, 0x20, 0, 0x20, 1, 0xfc, 0x08, 0, 0, 0x0b];
  section(10, [1, ...u32(body.length), ...body]);
  const head = [1, 0x01, ...u32(image.length)]; // one passive segment
  const dataSize = u32(head.length + image.length);
  const prefix = Uint8Array.from([...out, 11, ...dataSize, ...head]);
  const bytes = new Uint8Array(prefix.length + image.length);
  bytes.set(prefix);
  bytes.set(image, prefix.length);
  return bytes;
}

/** The image's restore function on `memory`, once the image is checked to hold exactly `pristine`; else where it
 * differs (an image from an instance whose start was not this one's). */
export function imageRestorer(image: WebAssembly.Module, memory: WebAssembly.Memory, pristine: Uint8Array):
  { restore: (start: number, length: number) => void } | { differs: string } {
  const scratch = new WebAssembly.Memory({ initial: Math.ceil(pristine.length / 65536) });
  const probe = new WebAssembly.Instance(image, { env: { memory: scratch } }).exports.restore as (s: number, n: number) => void;
  try {
    probe(0, pristine.length);
  } catch {
    return { differs: `the image is shorter than ${pristine.length} bytes` };
  }
  const copy = new Uint8Array(scratch.buffer, 0, pristine.length);
  // Compared as 32-bit words (the pristine copy starts at offset 0 of its own buffer: aligned).
  const words = Math.floor(pristine.length / 4);
  const a = new Uint32Array(copy.buffer, 0, words);
  const b = new Uint32Array(pristine.buffer, pristine.byteOffset, words);
  let w = 0;
  while (w < words && a[w] === b[w]) w++;
  // From the first word that differs (or the tail past the last whole word), byte by byte.
  for (let i = w * 4; i < pristine.length; i++) if (copy[i] !== pristine[i]) return { differs: `at byte ${i}` };
  const restore = new WebAssembly.Instance(image, { env: { memory } }).exports.restore as (s: number, n: number) => void;
  return { restore };
}

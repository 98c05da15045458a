// Pyodide's module laid out for the rewind: every byte of an instance's memory is restored or zeroed after each
// program (realm.ts), so the memory holds no more than the interpreter uses. Two in-place patches of the module's
// bytes, for the pinned Pyodide (realm.ts PYODIDE_VERSION), each refusing a module that is not laid out as expected:
// - the memory's minimum, lowered so that a restored instance's memory ends at its heap's end;
// - the stack, 4 MiB instead of 10: the heap starts right above it, and the 6 MiB of stack that hardly any program
//   reaches but every rewind zeroed are gone. Pure Python recursion takes no C stack; recursion through C (a sort
//   key that sorts, max() over a generator that recurses) takes about 1.7 KiB a level, so it now meets its
//   RecursionError about 2100 levels deep instead of 5500 (Python's default limit, 1000 frames, comes first).
// Leaves out: booting, snapshots and the rewind itself (realm.ts).

/**
 * The memory the module starts with, in 64 KiB pages (its own minimum is 480, 30 MiB): less than a booted
 * interpreter needs, so that an instance restored from a snapshot grows to exactly the snapshot's size.
 */
export const MEMORY_MIN_PAGES = 200;

/**
 * The C stack's bounds as Pyodide's linker laid them out (the stack grows down from `STACK_HIGH` to `STACK_LOW`, and
 * the heap starts at `STACK_HIGH`), and the stack this module gets instead. CPython takes its stack limits from the
 * same bounds (emscripten_stack_get_base/end), so deep C recursion is a RecursionError, not an overflow.
 */
const STACK_LOW = 4053456;
const STACK_HIGH = 14539216;
export const STACK_BYTES = 4 << 20;

interface Section {
  id: number;
  start: number;
  end: number;
}

function sections(wasm: Uint8Array): Section[] {
  const out: Section[] = [];
  let p = 8;
  while (p < wasm.length) {
    const id = wasm[p++]!;
    let size = 0;
    for (let shift = 0; ; shift += 7) {
      const byte = wasm[p++]!;
      size += (byte & 127) * 2 ** shift;
      if (!(byte & 128)) break;
    }
    out.push({ id, start: p, end: p + size });
    p += size;
  }
  return out;
}

/** `value` as the 4-byte signed LEB128 immediate of an i32.const (0x41), for values in [2^21, 2^27). */
function i32Const(value: number): Uint8Array {
  if (value < 2 ** 21 || value >= 2 ** 27) throw new RangeError(`i32Const: ${value} does not take 4 bytes`);
  return Uint8Array.of(0x41, (value & 127) | 128, ((value >> 7) & 127) | 128, ((value >> 14) & 127) | 128, value >> 21);
}

/** Replaces every occurrence of `from` by `to` (same length) within `section`; returns how many it replaced. */
function replaceIn(wasm: Uint8Array, section: Section, from: Uint8Array, to: Uint8Array): number {
  let n = 0;
  for (let p = section.start; p + from.length <= section.end; p++) {
    let same = true;
    for (let i = 0; same && i < from.length; i++) same = wasm[p + i] === from[i];
    if (same) {
      wasm.set(to, p);
      n++;
      p += from.length - 1;
    }
  }
  return n;
}

/** A copy of Pyodide's module bytes with the memory minimum and the stack above (see the file header). */
export function layoutForRewind(wasm: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  const out = wasm.slice();
  const all = sections(out);
  const only = (id: number): Section => {
    const s = all.filter((x) => x.id === id);
    if (s.length !== 1) throw new Error(`pyodide.asm.wasm: ${s.length} sections of id ${id} (expected 1)`);
    return s[0]!;
  };
  // The memory section: one memory, whose minimum (two LEB128 bytes) is rewritten in place.
  const memory = only(5);
  const at = memory.start + 2;
  const min = (out[at]! & 127) + (out[at + 1]! << 7);
  if (out[memory.start] !== 1 || !(out[at]! & 128) || out[at + 1]! & 128 || MEMORY_MIN_PAGES > min) {
    throw new Error(`pyodide.asm.wasm: unexpected memory section (minimum ${min} pages)`);
  }
  out[at] = (MEMORY_MIN_PAGES & 127) | 128;
  out[at + 1] = MEMORY_MIN_PAGES >> 7;
  // The stack's top (also the heap's base): the stack pointer's start and the __stack_high and __heap_base globals
  // (3, global section), the code that reads them (7), and sbrk's starting value (1, data). A count that differs
  // means another build: refuse it rather than patch half of it.
  const top = STACK_LOW + STACK_BYTES;
  const code = [replaceIn(out, only(6), i32Const(STACK_HIGH), i32Const(top)),
    replaceIn(out, only(10), i32Const(STACK_HIGH), i32Const(top))];
  const le = (v: number): Uint8Array => new Uint8Array(new Uint32Array([v]).buffer);
  const data = replaceIn(out, only(11), le(STACK_HIGH), le(top));
  if (code[0] !== 3 || code[1] !== 7 || data !== 1) {
    throw new Error(`pyodide.asm.wasm: the stack's top ${STACK_HIGH} found ${code.join(' + ')} times in globals and ` +
      `code and ${data} in data (expected 3 + 7 and 1): not the Pyodide build this sandbox lays out`);
  }
  return out;
}

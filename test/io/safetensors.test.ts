// safetensors bytes pinned by hand from the spec, dtype conversions at known bit patterns, malformed files,
// sharded checkpoints, and the atomic writers. Fixtures come from test/fixtures/io/make_fixtures.py (no shared code).
import { describe, expect, it, beforeEach, afterEach } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  decodeToF32,
  encodeFromF32,
  encodeSafetensors,
  f16BitsToF32,
  f32ToBf16Bits,
  bf16BitsToF32,
  openSafetensors,
  writeSafetensors,
} from '../../src/io/safetensors.js';
import { iterateSafetensors, readSafetensorsIndex, writeShardedSafetensors } from '../../src/io/shards.js';
import { writeDirAtomic, writeFileAtomic } from '../../src/io/atomic.js';
import { FormatError } from '../../src/util/errors.js';

const FIX = join(import.meta.dirname, '..', 'fixtures', 'io');
let tmp: string;
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'st-test-'));
});
afterEach(() => rmSync(tmp, { recursive: true, force: true }));

const f32Bits = (x: number): number => new Uint32Array(new Float32Array([x]).buffer)[0]!;
const fromBits = (b: number): number => new Float32Array(new Uint32Array([b]).buffer)[0]!;
const ascii = (s: string): number[] => [...Buffer.from(s, 'latin1')];

/** A raw file: u64 LE length, the header text exactly as given, then the data bytes. */
function rawFile(name: string, header: string | object, data: number[]): string {
  const h = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  const p = join(tmp, name);
  writeFileSync(p, Buffer.concat([len, h, Buffer.from(data)]));
  return p;
}

function expectFormatError(fn: () => unknown, ...parts: string[]): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, 'expected a FormatError').toBeInstanceOf(FormatError);
  for (const p of parts) expect((err as Error).message).toContain(p);
}

describe('safetensors layout (bytes by hand)', () => {
  const header = '{"__metadata__":{"format":"pt"},"ab":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]}}';
  // 141 header chars -> padded with 3 spaces to 144 so the data starts at 8 + 144 = 152, a multiple of 8.
  const expected = [
    144, 0, 0, 0, 0, 0, 0, 0,
    ...ascii(header), 0x20, 0x20, 0x20,
    0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0, // 1.0f, -2.0f little-endian
    0x80, 0x3f, 0x40, 0xc0, // bf16 1.0 = 0x3F80, -3.0 = 0xC040
  ];
  const tensors = [
    { name: 'y', shape: [2], data: new Float32Array([1, -3]), dtype: 'BF16' as const },
    { name: 'ab', shape: [2], data: new Float32Array([1, -2]) },
  ];

  it('writes the exact bytes of a 2-tensor file (u64 length, padded header, F32 before BF16, LE payload)', async () => {
    expect(header.length).toBe(141);
    const bytes = encodeSafetensors(tensors);
    expect([...bytes]).toEqual(expected);
    const p = join(tmp, 'two.safetensors');
    await writeSafetensors(p, tensors);
    expect([...readFileSync(p)]).toEqual(expected);
    expect((8 + 144) % 8).toBe(0);
  });

  it('reads that file back', () => {
    const p = rawFile('two.safetensors', header + '   ', expected.slice(8 + 144));
    const st = openSafetensors(p);
    expect(st.metadata).toEqual({ format: 'pt' });
    expect(st.entries.map((e) => [e.name, e.dtype, e.begin, e.end])).toEqual([['ab', 'F32', 0, 8], ['y', 'BF16', 8, 12]]);
    expect([...st.read('ab').data]).toEqual([1, -2]);
    expect(st.read('y')).toEqual({ dtype: 'BF16', shape: [2], data: new Float32Array([1, -3]) });
    st.close();
  });

  it('matches the Python-built HF layout byte for byte', () => {
    const want = readFileSync(join(FIX, 'hf_layout.safetensors'));
    const got = encodeSafetensors([
      { name: 'weight', shape: [2, 2], data: new Float32Array([1, -2, 0.5, 3]) },
      { name: 'emb', shape: [3], data: new Float32Array([1.0, 1.00390625, -0.1]), dtype: 'BF16' },
      { name: 'bias', shape: [2], data: new Float32Array([0.25, -0.125]) },
    ]);
    expect(Buffer.from(got).equals(want)).toBe(true);
  });

  it('reads F32, F16 and BF16 from the Python fixture', () => {
    const st = openSafetensors(join(FIX, 'mixed.safetensors'));
    expect(st.read('a.f32')).toEqual({ dtype: 'F32', shape: [2, 3], data: new Float32Array([0, 1, -2.5, 3.25, 1e-3, 65504]) });
    const h = st.read('b.f16');
    expect(h.shape).toEqual([2, 5]);
    const v = [...h.data];
    expect(v.slice(0, 5)).toEqual([1, -2, 65504, 5.960464477539063e-8, Infinity]);
    expect(Number.isNaN(v[5])).toBe(true);
    expect(Object.is(v[6], -0)).toBe(true);
    expect(v.slice(7)).toEqual([-Infinity, 6.103515625e-5, 6.097555160522461e-5]);
    const b = [...st.read('c.bf16').data];
    expect(b.slice(0, 3)).toEqual([1, -3, Infinity]);
    expect(Number.isNaN(b[3])).toBe(true);
    st.close();
  });
});

describe('dtype conversions', () => {
  it('rounds f32 -> bf16 to nearest even', () => {
    expect(f32ToBf16Bits(1.0)).toBe(0x3f80);
    expect(f32ToBf16Bits(1.00390625)).toBe(0x3f80); // exactly halfway 0x3F80|0x3F81 -> even 0x3F80
    expect(f32ToBf16Bits(1.01171875)).toBe(0x3f82); // halfway 0x3F81|0x3F82 -> even 0x3F82
    expect(f32ToBf16Bits(fromBits(0x3f808001))).toBe(0x3f81); // one ulp above halfway -> up
    expect(f32ToBf16Bits(fromBits(0x3f807fff))).toBe(0x3f80); // one ulp below halfway -> down
    expect(f32ToBf16Bits(-1.00390625)).toBe(0xbf80);
    expect(f32ToBf16Bits(fromBits(0xbf808001))).toBe(0xbf81);
    expect(f32ToBf16Bits(-0.1)).toBe(0xbdcd); // 0xBDCCCCCD: low half 0xCCCD > 0x8000
    expect(f32ToBf16Bits(-0)).toBe(0x8000);
    expect(f32ToBf16Bits(Infinity)).toBe(0x7f80);
    expect(f32ToBf16Bits(-Infinity)).toBe(0xff80);
    expect(f32ToBf16Bits(fromBits(0x7f7fffff))).toBe(0x7f80); // max finite f32 overflows to inf (as torch)
    expect(f32ToBf16Bits(fromBits(0x7f7f7fff))).toBe(0x7f7f); // stays at max finite bf16
    expect(f32ToBf16Bits(fromBits(0x00008000))).toBe(0x0000); // subnormal halfway -> even
    expect(f32ToBf16Bits(fromBits(0x00018000))).toBe(0x0002);
    const nan = f32ToBf16Bits(NaN);
    expect(nan & 0x7f80).toBe(0x7f80);
    expect(nan & 0x007f).not.toBe(0);
  });

  it('keeps NaN a NaN even when its payload is only in the dropped low bits', () => {
    const bits = new Uint32Array([0x7f800001, 0xff800001, 0x7fc00000]);
    const out = new Uint16Array(encodeFromF32(new Float32Array(bits.buffer), 'BF16').buffer);
    expect([...out]).toEqual([0x7fc0, 0xffc0, 0x7fc0]);
    for (const h of out) expect(Number.isNaN(bf16BitsToF32(h))).toBe(true);
  });

  it('decodes bf16 as the top half of an f32', () => {
    expect(bf16BitsToF32(0x3f80)).toBe(1);
    expect(bf16BitsToF32(0xc040)).toBe(-3);
    expect(bf16BitsToF32(0x7f7f)).toBe(3.3895313892515355e38);
  });

  it('decodes f16 bit patterns', () => {
    expect(f16BitsToF32(0x3c00)).toBe(1);
    expect(f16BitsToF32(0xc000)).toBe(-2);
    expect(f16BitsToF32(0x7bff)).toBe(65504);
    expect(f16BitsToF32(0x0001)).toBe(5.960464477539063e-8);
    expect(f16BitsToF32(0x0400)).toBe(6.103515625e-5);
    expect(f16BitsToF32(0x3555)).toBe(0.333251953125);
    expect(f16BitsToF32(0x7c00)).toBe(Infinity);
    expect(f16BitsToF32(0xfc00)).toBe(-Infinity);
    expect(Number.isNaN(f16BitsToF32(0x7e00))).toBe(true);
    expect(Object.is(f16BitsToF32(0x8000), -0)).toBe(true);
  });

  it('table decode equals scalar decode for all 65536 f16 patterns, NaN payloads kept', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const out = decodeToF32(new Uint8Array(all.buffer), 'F16', 65536);
    const bits = new Uint32Array(out.buffer);
    let bad = 0;
    for (let h = 0; h < 65536; h++) {
      const want = f16BitsToF32(h);
      if (Number.isNaN(want)) {
        if (bits[h] !== ((((h & 0x8000) << 16) | 0x7f800000 | ((h & 0x3ff) << 13)) >>> 0)) bad++;
      } else if (!Object.is(out[h], Math.fround(want))) bad++;
    }
    expect(bad).toBe(0);
  });
});

describe('round trips', () => {
  it('F32 is bit exact (including -0, inf, NaN)', async () => {
    const data = new Float32Array([0, -0, 1e-45, -3.4e38, Infinity, -Infinity, NaN, Math.PI, -1e-7, 12345.678]);
    const p = join(tmp, 'f32.safetensors');
    await writeSafetensors(p, [{ name: 'w', shape: [2, 5], data }], { metadata: { step: '7' } });
    const st = openSafetensors(p);
    expect(st.metadata).toEqual({ format: 'pt', step: '7' });
    const back = st.read('w');
    expect(back.shape).toEqual([2, 5]);
    expect([...new Uint32Array(back.data.buffer, back.data.byteOffset, 10)]).toEqual([...new Uint32Array(data.buffer)]);
    st.close();
  });

  it('BF16 returns the rounded value, within 2^-8 relative', async () => {
    const data = new Float32Array(257).map((_, i) => Math.sin(i) * 10 ** ((i % 9) - 4));
    const p = join(tmp, 'bf16.safetensors');
    await writeSafetensors(p, [{ name: 'w', shape: [257], data: () => data }], { dtype: 'BF16', metadata: null });
    const st = openSafetensors(p);
    expect(st.metadata).toBeNull();
    const back = st.read('w').data;
    let maxRel = 0;
    for (let i = 0; i < data.length; i++) {
      expect(back[i]).toBe(fromBits((f32ToBf16Bits(data[i]!) << 16) >>> 0));
      if (data[i] !== 0) maxRel = Math.max(maxRel, Math.abs(back[i]! - data[i]!) / Math.abs(data[i]!));
    }
    expect(maxRel, `max rel diff ${maxRel}`).toBeLessThanOrEqual(2 ** -8);
    expect(f32Bits(back[0]!)).toBe(0);
    st.close();
  });

  it('readRaw returns the stored bytes; read() refuses integer dtypes', () => {
    const p = rawFile('int.safetensors', { ids: { dtype: 'I32', shape: [2], data_offsets: [0, 8] } }, [1, 0, 0, 0, 2, 0, 0, 0]);
    const st = openSafetensors(p);
    expect([...new Int32Array(st.readRaw('ids').buffer)]).toEqual([1, 2]);
    expectFormatError(() => st.read('ids'), 'int.safetensors', '"ids"', 'I32');
    expectFormatError(() => st.read('nope'), 'int.safetensors', '"nope"');
    st.close();
  });
});

describe('malformed files give a FormatError naming the file and tensor', () => {
  const x = (offs: number[], shape = [2], dtype = 'F32'): object => ({ dtype, shape, data_offsets: offs });
  const zeros = (n: number): number[] => new Array(n).fill(0);

  it('truncated below 8 bytes', () => {
    const p = join(tmp, 'tiny.safetensors');
    writeFileSync(p, Buffer.from([1, 2, 3]));
    expectFormatError(() => openSafetensors(p), 'tiny.safetensors', '3 bytes');
  });

  it('header length larger than the file', () => {
    const p = join(tmp, 'long.safetensors');
    const b = Buffer.alloc(16);
    b.writeBigUInt64LE(1000n);
    writeFileSync(p, b);
    expectFormatError(() => openSafetensors(p), 'long.safetensors', 'header length 1000');
  });

  it('invalid JSON header', () => {
    expectFormatError(() => openSafetensors(rawFile('json.safetensors', '{"x": {', [])), 'json.safetensors', 'invalid JSON');
  });

  it('offsets beyond the buffer (truncated data)', () => {
    const p = rawFile('trunc.safetensors', { a: x([0, 8]), b: x([8, 16]) }, zeros(12));
    expectFormatError(() => openSafetensors(p), 'trunc.safetensors', '"b"', 'beyond the 12-byte data buffer');
  });

  it('overlapping offsets', () => {
    const p = rawFile('overlap.safetensors', { a: x([0, 8]), b: x([4, 12]) }, zeros(12));
    expectFormatError(() => openSafetensors(p), 'overlap.safetensors', '"b"', 'overlap tensor "a"');
  });

  it('a gap between tensors (HF requires a contiguous buffer)', () => {
    const p = rawFile('gap.safetensors', { a: x([0, 8]), b: x([12, 20]) }, zeros(20));
    expectFormatError(() => openSafetensors(p), 'gap.safetensors', '"b"', '4-byte gap');
  });

  it('trailing bytes after the last tensor', () => {
    const p = rawFile('tail.safetensors', { a: x([0, 8]) }, zeros(10));
    expectFormatError(() => openSafetensors(p), 'tail.safetensors', '"a"', '2 bytes after the last tensor');
  });

  it('byte length that does not match shape x dtype size', () => {
    const p = rawFile('len.safetensors', { a: x([0, 8], [3]) }, zeros(8));
    expectFormatError(() => openSafetensors(p), 'len.safetensors', '"a"', '8 bytes', '12 = [3] x 4');
  });

  it('unknown dtype, bad shape, bad offsets, bad metadata', () => {
    expectFormatError(() => openSafetensors(rawFile('dt.safetensors', { a: x([0, 8], [2], 'F33') }, zeros(8))), 'dt.safetensors', '"a"', 'unknown dtype "F33"');
    expectFormatError(() => openSafetensors(rawFile('sh.safetensors', { a: x([0, 8], [-2]) }, zeros(8))), 'sh.safetensors', '"a"', 'shape [-2]');
    expectFormatError(() => openSafetensors(rawFile('of.safetensors', { a: x([8, 0]) }, zeros(8))), 'of.safetensors', '"a"', 'end before begin');
    expectFormatError(() => openSafetensors(rawFile('md.safetensors', { __metadata__: { n: 1 }, a: x([0, 8]) }, zeros(8))), 'md.safetensors', '__metadata__.n');
    expectFormatError(() => openSafetensors(rawFile('arr.safetensors', '[1,2]', [])), 'arr.safetensors', 'not a JSON object');
  });

  it('the writer refuses data that does not match the shape, and duplicate names', async () => {
    const p = join(tmp, 'bad.safetensors');
    await expect(writeSafetensors(p, [{ name: 'w', shape: [3], data: new Float32Array(2) }])).rejects.toThrow(/bad\.safetensors: tensor "w": 2 values/);
    await expect(writeSafetensors(p, [{ name: 'w', shape: [3], data: () => new Float32Array(4) }])).rejects.toThrow(/"w": 4 values/);
    await expect(writeSafetensors(p, [{ name: 'w', shape: [1], data: new Float32Array(1) }, { name: 'w', shape: [1], data: new Float32Array(1) }])).rejects.toThrow(/duplicate/);
    expect(readdirSync(tmp)).toEqual([]);
  });
});

describe('sharded checkpoints', () => {
  const mk = (name: string, n: number, base: number): { name: string; shape: number[]; data: Float32Array } => ({
    name, shape: [n], data: new Float32Array(n).map((_, i) => base + i),
  });
  const tensors = [mk('z.first', 4, 0), mk('a.second', 4, 100), mk('m.third', 2, 200), mk('big', 10, 300), mk('tail', 1, 400)];

  it('packs greedily in input order, names shards like transformers, writes the index last', async () => {
    const calls: string[] = [];
    const lazy = tensors.map((t) => ({ ...t, data: () => (calls.push(t.name), t.data) }));
    const res = await writeShardedSafetensors(tmp, lazy, { maxShardBytes: 32 });
    // 16+16 fill shard 1; 8 starts shard 2; 40 > 32 alone in shard 3; 4 in shard 4.
    expect(res.files).toEqual(['model-00001-of-00004.safetensors', 'model-00002-of-00004.safetensors', 'model-00003-of-00004.safetensors', 'model-00004-of-00004.safetensors']);
    expect(res.indexFile).toBe('model.safetensors.index.json');
    expect(res.totalSize).toBe(84);
    expect(readdirSync(tmp).sort()).toEqual([...res.files, 'model.safetensors.index.json'].sort());
    expect(calls).toEqual(['a.second', 'z.first', 'm.third', 'big', 'tail']); // within a shard: by name
    const text = readFileSync(join(tmp, 'model.safetensors.index.json'), 'utf8');
    expect(text).toBe(`{
  "metadata": {
    "total_size": 84
  },
  "weight_map": {
    "a.second": "model-00001-of-00004.safetensors",
    "big": "model-00003-of-00004.safetensors",
    "m.third": "model-00002-of-00004.safetensors",
    "tail": "model-00004-of-00004.safetensors",
    "z.first": "model-00001-of-00004.safetensors"
  }
}
`);
    const idx = readSafetensorsIndex(join(tmp, 'model.safetensors.index.json'));
    expect(idx.totalSize).toBe(84);
    const got = [...iterateSafetensors(join(tmp, 'model.safetensors.index.json'))];
    expect(got.map((t) => t.name).sort()).toEqual(tensors.map((t) => t.name).sort());
    for (const t of got) expect(t.data).toEqual(tensors.find((s) => s.name === t.name)!.data);
    const shard1 = openSafetensors(join(tmp, res.files[0]!));
    expect(shard1.metadata).toEqual({ format: 'pt' });
    shard1.close();
  });

  it('writes a single model.safetensors when one shard suffices, and drops the stale sharded files', async () => {
    await writeShardedSafetensors(tmp, tensors, { maxShardBytes: 32, dtype: 'BF16' });
    const res = await writeShardedSafetensors(tmp, (async function* () { yield* tensors; })(), { dtype: 'BF16' });
    expect(res).toEqual({ files: ['model.safetensors'], indexFile: null, totalSize: 42 });
    expect(readdirSync(tmp)).toEqual(['model.safetensors']);
    const got = [...iterateSafetensors(join(tmp, 'model.safetensors'))];
    expect(got.every((t) => t.dtype === 'BF16')).toBe(true);
    expect(got.find((t) => t.name === 'tail')!.data[0]).toBe(400);
  });

  it('an error mid-way leaves no shards and no temp files', async () => {
    const bad = [...tensors.slice(0, 3), { name: 'boom', shape: [1], data: (): Float32Array => { throw new Error('device lost'); } }];
    await expect(writeShardedSafetensors(tmp, bad, { maxShardBytes: 32 })).rejects.toThrow('device lost');
    expect(readdirSync(tmp)).toEqual([]);
  });

  it('a shard that disagrees with the index is an error naming both', async () => {
    await writeShardedSafetensors(tmp, tensors, { maxShardBytes: 32 });
    const ip = join(tmp, 'model.safetensors.index.json');
    const j = JSON.parse(readFileSync(ip, 'utf8'));
    j.weight_map['tail'] = 'model-00001-of-00004.safetensors';
    writeFileSync(ip, JSON.stringify(j));
    expect(() => [...iterateSafetensors(ip)]).toThrow(/model-00001-of-00004\.safetensors: tensor "tail": missing/);
    j.weight_map['tail'] = '../evil.safetensors';
    writeFileSync(ip, JSON.stringify(j));
    expectFormatError(() => readSafetensorsIndex(ip), 'model.safetensors.index.json', '"tail"', 'a file name in the same directory');
  });
});

describe('atomic writes', () => {
  it('writeFileAtomic replaces a file and leaves no temp; a failing writer keeps the old content', () => {
    const p = join(tmp, 'state.json');
    writeFileAtomic(p, '{"v":1}');
    writeFileAtomic(p, new Uint8Array([0x7b, 0x7d]));
    expect(readFileSync(p, 'utf8')).toBe('{}');
    function* chunks(): Generator<Uint8Array> {
      yield Buffer.from('{"partial":');
      throw new Error('disk full');
    }
    expect(() => writeFileAtomic(p, chunks())).toThrow('disk full');
    expect(readFileSync(p, 'utf8')).toBe('{}');
    expect(readdirSync(tmp)).toEqual(['state.json']);
  });

  it('writeDirAtomic: a failing fill leaves no final dir and no temp', async () => {
    const d = join(tmp, 'checkpoint-5');
    await expect(writeDirAtomic(d, (t) => {
      writeFileSync(join(t, 'adapter_model.safetensors'), 'half');
      throw new Error('killed');
    })).rejects.toThrow('killed');
    expect(existsSync(d)).toBe(false);
    expect(readdirSync(tmp)).toEqual([]);
  });

  it('writeDirAtomic builds a new dir and replaces an existing one whole', async () => {
    const d = join(tmp, 'out');
    await writeDirAtomic(d, (t) => {
      writeFileSync(join(t, 'a.txt'), 'old');
      writeFileSync(join(t, 'stale.txt'), 'x');
    }, { manifest: 'test' });
    await writeDirAtomic(d, async (t) => {
      mkdirSync(join(t, 'sub'));
      await writeSafetensors(join(t, 'sub', 'w.safetensors'), [{ name: 'w', shape: [1], data: new Float32Array([2]) }]);
      writeFileSync(join(t, 'a.txt'), 'new');
    });
    expect(readdirSync(d).sort()).toEqual(['a.txt', 'sub']);
    expect(readFileSync(join(d, 'a.txt'), 'utf8')).toBe('new');
    expect(readdirSync(tmp)).toEqual(['out']);
    await expect(writeDirAtomic(d, () => { throw new Error('again'); })).rejects.toThrow('again');
    expect(readFileSync(join(d, 'a.txt'), 'utf8')).toBe('new');
    expect(readdirSync(tmp)).toEqual(['out']);
  });
});

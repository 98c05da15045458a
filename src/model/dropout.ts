// LoRA dropout masks made on the device from a counter-based hash, so no random values are drawn or uploaded by the
// host (tf.dropout fills a JS buffer with randomUniform and uploads it). The mask of element (m, i) of an [M, in]
// adapter input is a pure function of (call seed, m, i); the call seed is the nth draw of the step's Rng, itself derived
// from (run seed, step), and the draws follow the fixed (layer, module) order, so a mask is a function of
// (seed, step, layer, module, position): resume and gradient-checkpoint recomputation replay it exactly.
//
// Exact on every backend: integers below 2^24 held in float32 (faster than int32 on wasm), only add, mul, floorDiv and
// mod by powers of two, then one gather, so every backend (webgl/webgpu compute int32 in float32 too) gives the same bits.
//
// Construction, for N = L^2 >= max(M, in, M*in/64) (L = 2^b, b <= 12):
//   R = P_r(m), C = P_c(i): 4-round Feistel permutations of [0, N) (halves of b bits, round function the middle bits
//   of (hi + k1 mod L)(hi + k2 mod L) + k3), keyed from the call seed by murmur3's fmix32 on the host;
//   keep(m, i) = T[(R + C) mod N] with T[j] = [P_t(j) >= round(p N)], so T holds exactly N - round(p N) ones.
// Two positions of a row (or a column) never share a table slot, since P_r and P_c are bijections; positions in other
// rows and columns share one with probability 1/N. Leaves out anything but Bernoulli dropout (no DropConnect).
import * as tf from '@tensorflow/tfjs';

const ROUNDS = 4;
const MAX_BITS = 12; // L^2 = 2^24: every product stays exact in float32

/** murmur3's 32-bit finalizer (exact in JS through Math.imul). */
function fmix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

/** Half width b of the table for an [M, in] input: N = 2^(2b) >= max(M, in, ceil(M*in/64), 16) (the table costs ~40 ops a slot). */
export function tableBits(M: number, inp: number): number {
  const need = Math.max(M, inp, Math.ceil((M * inp) / 64), 16);
  let e = Math.ceil(Math.log2(need));
  e += e % 2;
  const b = e / 2;
  if (b > MAX_BITS) throw new RangeError(`lora dropout: an input of [${M}, ${inp}] needs a hash table above 2^24 slots (split the batch)`);
  return b;
}

/** The 3 permutations' round keys (k1, k2, k3 per round), each in [0, L), from the call seed. */
export function roundKeys(seed: number, b: number): number[] {
  const L = 1 << b;
  return Array.from({ length: 3 * ROUNDS * 3 }, (_, i) => fmix32((seed + Math.imul(0x9e3779b9, i + 1)) >>> 0) % L);
}

/**
 * A Feistel permutation of [0, L^2) on j = hi * L + lo, given as broadcastable integer-valued halves (each in [0, L)); `k` holds
 * the round keys, `L` and `shift` = 2^(b/2) the constants. Returns P(j) with the broadcast shape.
 */
function permute(hi0: tf.Tensor, lo0: tf.Tensor, k: tf.Tensor[], L: tf.Tensor, shift: tf.Tensor): tf.Tensor {
  let hi = hi0;
  let lo = lo0;
  for (let r = 0; r < ROUNDS; r++) {
    const a = tf.mod(tf.add(hi, k[3 * r]), L);
    const c = tf.mod(tf.add(hi, k[3 * r + 1]), L);
    const f = tf.mod(tf.floorDiv(tf.add(tf.mul(a, c), k[3 * r + 2]), shift), L); // middle b bits of a product < 2^24
    [hi, lo] = [tf.mod(tf.add(lo, f), L), hi];
  }
  return tf.add(tf.mul(hi, L), lo);
}

/** P(0 .. n-1) for n <= L^2, from the counter 0 .. L-1 alone: j = q L + r over [ceil(n / L), L], then the first n. */
function permuteCounter(n: number, lin: tf.Tensor1D, L: number, k: tf.Tensor[], Lt: tf.Tensor, shift: tf.Tensor): tf.Tensor1D {
  const q = Math.ceil(n / L);
  const out = permute(tf.reshape(tf.slice(lin, [0], [q]), [q, 1]), tf.reshape(lin, [1, L]), k, Lt, shift); // [q, L]
  return tf.slice(tf.reshape(out, [q * L]), [0], [n]) as tf.Tensor1D;
}

/**
 * The keep mask (1 = kept, 0 = dropped; the caller scales by 1 / (1 - rate)) of an [M, in] input, float32. Where the
 * backend's memory is the host's (cpu, wasm), the host computes it (one pass, no transfer to save: measured 70 ms on
 * the device path against about 1 ms here for a [1024, 512] input on wasm); elsewhere it is made on the device.
 * Both give the same bits (test/model/dropout.test.ts).
 */
export function dropoutKeepMask(M: number, inp: number, rate: number, seed: number): tf.Tensor2D {
  // DPO_DROPOUT_MASK=device|host forces a path (tests count the device path's uploads on cpu).
  const forced = process.env.DPO_DROPOUT_MASK;
  const backend = tf.getBackend();
  const host = forced ? forced === 'host' : backend === 'cpu' || backend === 'wasm';
  return host ? tf.tensor2d(hostKeepMask(M, inp, rate, seed), [M, inp]) : deviceKeepMask(M, inp, rate, seed);
}

/** The Feistel permutation of `permute`, on one j = hi * L + lo, in exact integer arithmetic. */
function permuteOne(j: number, k: number[], off: number, L: number, shift: number): number {
  let hi = Math.floor(j / L);
  let lo = j % L;
  for (let r = 0; r < ROUNDS; r++) {
    const a = (hi + k[off + 3 * r]!) % L;
    const c = (hi + k[off + 3 * r + 1]!) % L;
    const f = Math.floor((a * c + k[off + 3 * r + 2]!) / shift) % L;
    [hi, lo] = [(lo + f) % L, hi];
  }
  return hi * L + lo;
}

/** The keep mask computed on the host: the same construction as `deviceKeepMask`, element by element. */
export function hostKeepMask(M: number, inp: number, rate: number, seed: number): Float32Array {
  const b = tableBits(M, inp);
  const L = 1 << b;
  const N = L * L;
  const shift = 1 << (b >> 1);
  const k = roundKeys(seed >>> 0, b);
  const per = 3 * ROUNDS;
  const thresh = Math.round(rate * N);
  const rows = Float64Array.from({ length: M }, (_, m) => permuteOne(m, k, 0, L, shift));
  const cols = Float64Array.from({ length: inp }, (_, i) => permuteOne(i, k, per, L, shift));
  const table = new Uint8Array(N);
  for (let j = 0; j < N; j++) table[j] = permuteOne(j, k, 2 * per, L, shift) >= thresh ? 1 : 0;
  const out = new Float32Array(M * inp);
  for (let m = 0; m < M; m++) {
    const r = rows[m]!;
    const base = m * inp;
    for (let i = 0; i < inp; i++) {
      const j = r + cols[i]!;
      out[base + i] = table[j >= N ? j - N : j]!;
    }
  }
  return out;
}

/**
 * The keep mask made on the device. The host uploads one float32 vector per call: the round keys, three constants
 * and the counter 0 .. L-1 (at most 4096 values; tf.range would be computed on the host and uploaded at full length
 * on webgl/webgpu).
 */
export function deviceKeepMask(M: number, inp: number, rate: number, seed: number): tf.Tensor2D {
  return tf.tidy(() => {
    const b = tableBits(M, inp);
    const L = 1 << b;
    const N = L * L;
    const nk = 3 * ROUNDS * 3;
    const host = new Float32Array(nk + 3 + L); // integers below 2^24: exact in float32
    host.set(roundKeys(seed >>> 0, b));
    host.set([L, 1 << (b >> 1), Math.round(rate * N)], nk);
    for (let i = 0; i < L; i++) host[nk + 3 + i] = i;
    const all = tf.tensor1d(host, 'float32'); // the one upload
    const scalars = tf.unstack(tf.slice(all, [0], [nk + 3]));
    const lin = tf.slice(all, [nk + 3], [L]) as tf.Tensor1D; // [L] = 0 .. L-1
    const [Lt, shift, thresh] = scalars.slice(nk);
    const per = 3 * ROUNDS;
    const rows = permuteCounter(M, lin, L, scalars.slice(0, per), Lt, shift); // [M]
    const cols = permuteCounter(inp, lin, L, scalars.slice(per, 2 * per), Lt, shift); // [in]
    const table = tf.cast(tf.greaterEqual(permuteCounter(N, lin, L, scalars.slice(2 * per), Lt, shift), thresh), 'float32'); // [N]
    // R + C < 2N: a doubled table replaces the mod on the [M, in] grid.
    const idx = tf.cast(tf.add(tf.reshape(rows, [M, 1]), tf.reshape(cols, [1, inp])), 'int32'); // [M, in]
    return tf.gather(tf.concat([table, table]), idx) as tf.Tensor2D; // [M, in]
  });
}

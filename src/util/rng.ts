// A small seeded PRNG: mulberry32 for uniform 32-bit draws, Box-Muller for normals, Fisher-Yates shuffle.
// Not cryptographic. Its whole state is two numbers, so a checkpoint can store it and a resume continue the stream.

/** Everything needed to continue a stream exactly: the mulberry32 word and the cached second Box-Muller normal. */
export interface RngState {
  s: number;
  spare: number | null;
}

/** Folds any safe integer seed into 32 bits, so seeds above 2^32 still differ. */
function seedWord(seed: number): number {
  if (!Number.isSafeInteger(seed)) throw new RangeError(`rng seed: ${seed} (expected a safe integer)`);
  const hi = Math.floor(seed / 2 ** 32);
  return (seed ^ hi) >>> 0;
}

export class Rng {
  private s: number;
  private spare: number | null = null;

  constructor(seed: number) {
    this.s = seedWord(seed);
  }

  static fromState(state: RngState): Rng {
    const r = new Rng(0);
    r.setState(state);
    return r;
  }

  /** mulberry32 (Tommy Ettinger): one 32-bit unsigned integer. */
  nextU32(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform in [lo, hi). */
  uniform(lo = 0, hi = 1): number {
    return lo + (hi - lo) * this.next();
  }

  /** Integer in [0, n). */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 2 ** 32) throw new RangeError(`rng.int: ${n} (expected an integer in 1..2^32)`);
    return Math.floor(this.next() * n);
  }

  /** Normal by Box-Muller; the second value of each pair is cached in the state. */
  normal(mean = 0, std = 1): number {
    if (this.spare !== null) {
      const z = this.spare;
      this.spare = null;
      return mean + std * z;
    }
    // 1 - u keeps the log argument in (0, 1].
    const u1 = 1 - this.next();
    const u2 = this.next();
    const r = Math.sqrt(-2 * Math.log(u1));
    this.spare = r * Math.sin(2 * Math.PI * u2);
    return mean + std * r * Math.cos(2 * Math.PI * u2);
  }

  /** Shuffles in place (Fisher-Yates) and returns the same array. */
  shuffle<T>(a: T[]): T[] {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i] as T;
      a[i] = a[j] as T;
      a[j] = t;
    }
    return a;
  }

  /** A child stream seeded from this one: gives a sub-task its own stream without sharing draws. */
  split(): Rng {
    return new Rng(this.nextU32());
  }

  getState(): RngState {
    return { s: this.s, spare: this.spare };
  }

  setState(state: RngState): void {
    if (!Number.isInteger(state.s) || state.s < 0 || state.s > 0xffffffff) throw new RangeError(`rng state.s: ${state.s} (expected a uint32)`);
    if (state.spare !== null && !Number.isFinite(state.spare)) throw new RangeError(`rng state.spare: ${state.spare} (expected a number or null)`);
    this.s = state.s;
    this.spare = state.spare;
  }
}

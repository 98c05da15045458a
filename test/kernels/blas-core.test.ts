// OpenBLAS core selection (kernels/blas-core.ts): CPU features from /proc/cpuinfo text, the strongest matching core,
// a user's OPENBLAS_CORETYPE left alone, and, with the real addon, a generic detection raised to this CPU's core
// after the float64 check (the detection is emulated by giving the probe OPENBLAS_CORETYPE=Prescott).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { bestCore, chooseCore, readCpuInfo } from '../../kernels/blas-core.js';

const cpuinfo = (flags: string) => `processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Test CPU\nflags\t\t: ${flags}\n`;
const SPR = 'fpu sse3 ssse3 sse4_1 sse4_2 avx avx2 fma avx512f avx512dq avx512cd avx512bw avx512vl avx512_bf16 amx_tile';
const addon = join(import.meta.dirname, '..', '..', 'native', 'build', 'blas.node');

describe('OpenBLAS core selection', () => {
  const saved = process.env.OPENBLAS_CORETYPE;
  afterEach(() => {
    if (saved === undefined) delete process.env.OPENBLAS_CORETYPE;
    else process.env.OPENBLAS_CORETYPE = saved;
  });

  it('reads the model and flags, and picks the strongest core the flags allow', () => {
    const spr = readCpuInfo(cpuinfo(SPR));
    expect(spr.model).toBe('Test CPU');
    expect(bestCore(spr)).toBe('SkylakeX');
    expect(bestCore(readCpuInfo(cpuinfo('sse3 ssse3 sse4_1 sse4_2 avx avx2 fma')))).toBe('Haswell');
    expect(bestCore(readCpuInfo(cpuinfo('sse3 ssse3 sse4_1 sse4_2 avx')))).toBe('Sandybridge');
    expect(bestCore(readCpuInfo(cpuinfo('avx512f avx2 fma')))).toBe(null); // no sse3: not an x86 we know
    expect(bestCore(readCpuInfo(''))).toBe(null);
  });

  it("never overrides the user's OPENBLAS_CORETYPE", () => {
    const c = chooseCore('/nonexistent/blas.node', readCpuInfo(cpuinfo(SPR)), 'Haswell');
    expect(c.coretype).toBeUndefined();
    expect(c.line).toContain('OPENBLAS_CORETYPE=Haswell set by the user');
  });

  it.skipIf(!existsSync(addon) || bestCore(readCpuInfo()) === null || bestCore(readCpuInfo()) === 'Prescott')(
    'raises a generic detection to this CPU core, after checking it against float64', () => {
      const cpu = readCpuInfo();
      process.env.OPENBLAS_CORETYPE = 'Prescott'; // what a misdetecting OpenBLAS would pick; the probes inherit it
      const c = chooseCore(addon, cpu, null);
      expect(c.coretype).toBe(bestCore(cpu));
      expect(c.line).toMatch(/detected Prescott, below what this CPU runs: OPENBLAS_CORETYPE=\w+ \(checked against float64: max relative error/);
    });
});

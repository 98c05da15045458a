// Which OpenBLAS kernels the BLAS addon runs. Debian's OpenBLAS 0.3.21 often does not recognise a virtualised CPU
// and picks generic kernels (Prescott: SSE3, about 5x slower than SkylakeX on the same AVX-512 machine). Before the
// addon loads OpenBLAS, this reads the CPU's features (/proc/cpuinfo), asks OpenBLAS in a child process which core
// it would pick, and when that core is below what the CPU can run, sets OPENBLAS_CORETYPE to the matching one
// after checking its results against a float64 reference matmul in another child. A user's OPENBLAS_CORETYPE is
// never overridden. Leaves out: loading the addon and the tfjs kernel (matmul-blas.ts).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';

/** OpenBLAS x86 core names, weakest first; a core is usable when the CPU has every flag it needs. */
const CORES: { name: string; needs: string[] }[] = [
  { name: 'Prescott', needs: ['sse3'] },
  { name: 'Nehalem', needs: ['ssse3', 'sse4_1', 'sse4_2'] },
  { name: 'Sandybridge', needs: ['avx'] },
  { name: 'Haswell', needs: ['avx2', 'fma'] },
  { name: 'SkylakeX', needs: ['avx512f', 'avx512bw', 'avx512vl', 'avx512dq', 'avx512cd'] },
];
/** Names OpenBLAS reports for the same kernel families (corename is lower- or mixed-case by version). */
const ALIASES: Record<string, string> = {
  prescott: 'Prescott', core2: 'Prescott', penryn: 'Prescott', dunnington: 'Prescott', atom: 'Prescott',
  nehalem: 'Nehalem', sandybridge: 'Sandybridge', haswell: 'Haswell', zen: 'Haswell', skylakex: 'SkylakeX',
  cooperlake: 'SkylakeX', sapphirerapids: 'SkylakeX',
};

export interface CpuInfo {
  model: string;
  flags: Set<string>;
}

export function readCpuInfo(text = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : ''): CpuInfo {
  const model = /^model name\s*:\s*(.*)$/m.exec(text)?.[1]?.trim() ?? 'unknown';
  const flags = new Set((/^flags\s*:\s*(.*)$/m.exec(text)?.[1] ?? '').trim().split(/\s+/).filter(Boolean));
  return { model, flags };
}

/** The strongest OpenBLAS core whose instructions the CPU has, or null off x86. */
export function bestCore(cpu: CpuInfo): string | null {
  let best: string | null = null;
  for (const c of CORES) {
    if (!c.needs.every((f) => cpu.flags.has(f))) break; // each core also runs every weaker core's instructions
    best = c.name;
  }
  return best;
}

function rank(core: string): number {
  return CORES.findIndex((c) => c.name === (ALIASES[core.toLowerCase()] ?? core));
}

export interface CoreChoice {
  /** What OPENBLAS_CORETYPE should be set to before the addon loads; undefined: leave it. */
  coretype?: string;
  /** One line for the log and `doctor`: CPU, detected core, choice and why. */
  line: string;
}

/** Loads the addon in a child (with `coretype`, if given) and returns [core, max relative error vs float64]. */
function probe(addonPath: string, coretype?: string): [string, number] | undefined {
  const code = `const m = require(${JSON.stringify(addonPath)});
    let s = 12345; const r = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5;
    const M = 67, N = 45, K = 131, a = Float32Array.from({ length: M * K }, r), b = Float32Array.from({ length: K * N }, r);
    const c = new Float32Array(M * N); m.sgemm(false, false, M, N, K, a, 0, 0, b, 0, 0, c, 0, 1);
    let err = 0;
    for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
      let x = 0, mag = 0; for (let k = 0; k < K; k++) { x += a[i * K + k] * b[k * N + j]; mag += Math.abs(a[i * K + k] * b[k * N + j]); }
      err = Math.max(err, Math.abs(c[i * N + j] - x) / Math.max(mag, 1e-30));
    }
    process.stdout.write(JSON.stringify([m.core, err]));`;
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (coretype) env.OPENBLAS_CORETYPE = coretype;
  const r = spawnSync(process.execPath, ['-e', code], { env, encoding: 'utf8', timeout: 20_000 });
  if (r.status !== 0) return undefined;
  try {
    return JSON.parse(r.stdout) as [string, number];
  } catch {
    return undefined;
  }
}

/** float32 dot products of length 131 agree with float64 to a few ulps of the summed magnitudes. */
const MAX_REL_ERROR = 1e-5;

/** Decides OPENBLAS_CORETYPE for the addon at `addonPath` (see the file header). */
export function chooseCore(addonPath: string, cpu: CpuInfo = readCpuInfo(),
  userSet: string | null = process.env.OPENBLAS_CORETYPE ?? null): CoreChoice {
  const best = bestCore(cpu);
  if (userSet) return { line: `cpu ${cpu.model}; OPENBLAS_CORETYPE=${userSet} set by the user (left as it is)` };
  const detected = probe(addonPath);
  if (!detected) return { line: `cpu ${cpu.model}; the addon did not load in a probe (OpenBLAS core unknown)` };
  const [core] = detected;
  if (!best || rank(core) < 0 || rank(core) >= rank(best)) {
    return { line: `cpu ${cpu.model}; OpenBLAS core ${core}${best ? ` (best for this CPU: ${best})` : ''}` };
  }
  const chosen = probe(addonPath, best);
  if (!chosen || chosen[1] > MAX_REL_ERROR) {
    const why = chosen ? `max relative error ${chosen[1].toExponential(2)} against float64` : 'it did not load';
    return { line: `cpu ${cpu.model}; OpenBLAS detected ${core}; ${best} was refused (${why}); keeping ${core}` };
  }
  return {
    coretype: best,
    line: `cpu ${cpu.model}; OpenBLAS detected ${core}, below what this CPU runs: OPENBLAS_CORETYPE=${best} ` +
      `(checked against float64: max relative error ${chosen[1].toExponential(2)})`,
  };
}

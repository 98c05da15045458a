// Builds the optional CBLAS matmul + fused-kernel addon (native/blas/sgemm.cc, fused.cc, attention.cc, layer.cc -> native/build/blas.node) with the system C++ compiler:
// OpenBLAS (or another CBLAS) on Linux, Accelerate on macOS. Never fails: any problem prints "skipped (reason)", exit 0.
// Run by `npm install` (the prepare script) and `npm run build:native`. DPO_NATIVE=0 skips it.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'native', 'blas', 'sgemm.cc');
const fused = join(root, 'native', 'blas', 'fused.cc');
const attention = join(root, 'native', 'blas', 'attention.cc');
const layer = join(root, 'native', 'blas', 'layer.cc');
const outDir = join(root, 'native', 'build');
const out = join(outDir, 'blas.node');

function run(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 180_000 });
  return { ok: r.status === 0, text: `${r.error ? r.error.message : ''}${r.stderr ?? ''}`.trim() };
}

function compiler() {
  for (const c of [process.env.CXX, 'c++', 'g++', 'clang++'].filter(Boolean)) {
    if (run(c, ['--version']).ok) return c;
  }
  return null;
}

/** node_api.h ships with Node in <prefix>/include/node; node-gyp's header cache is the second place to look. */
function nodeHeaders() {
  const home = process.env.HOME ?? '';
  const dirs = [
    join(dirname(process.execPath), '..', 'include', 'node'),
    join(home, '.cache', 'node-gyp', process.versions.node, 'include', 'node'),
    join(home, 'Library', 'Caches', 'node-gyp', process.versions.node, 'include', 'node'),
  ];
  return dirs.find((d) => existsSync(join(d, 'node_api.h'))) ?? null;
}

/** Loads the fresh addon in a child process and checks a 2x2 product, so a broken link never reaches the trainer. */
function selfTest(file) {
  const code = `const m = require(${JSON.stringify(file)}); const a = new Float32Array([1,2,3,4]), c = new Float32Array(4);
m.sgemm(false, true, 2, 2, 2, a, 0, 0, a, 0, 0, c, 0, 1);
if (String(Array.from(c)) !== '5,11,11,25') throw new Error('wrong product ' + Array.from(c));
const y = new Float32Array(4), r = new Float32Array(2); m.rmsNormForward(a, new Float32Array([1, 1]), y, r, 2, 2, 0);
if (Math.abs(y[3] - 4 / Math.sqrt(12.5)) > 1e-6) throw new Error('wrong rmsnorm ' + Array.from(y));`;
  return run(process.execPath, ['-e', code]);
}

function build() {
  if (process.env.DPO_NATIVE === '0') return 'skipped (DPO_NATIVE=0)';
  if (process.platform === 'win32') return 'skipped (no Windows build; the XNNPACK kernel is used)';
  if (!existsSync(src)) return `skipped (${src} missing)`;
  const cxx = compiler();
  if (!cxx) return 'skipped (no C++ compiler: install g++ or clang)';
  const inc = nodeHeaders();
  if (!inc) return 'skipped (Node headers with node_api.h not found)';
  mkdirSync(outDir, { recursive: true });
  const tmp = join(outDir, `blas-${process.pid}.tmp.node`); // require() loads addons by the .node suffix
  const common = ['-O3', '-std=c++17', '-shared', '-fPIC', '-pthread', '-DNODE_GYP_MODULE_NAME=blas', `-I${inc}`, src, fused, attention, layer, '-o', tmp];
  const links = process.platform === 'darwin'
    ? [['-framework', 'Accelerate', '-undefined', 'dynamic_lookup']]
    : [['-I/usr/include/openblas', '-lopenblas'], ['-lcblas'], ['-lblas']];
  let first = '';
  for (const link of links) {
    const r = run(cxx, [...common, ...link]);
    if (!r.ok) {
      first ||= r.text.split('\n').find((l) => /error|cannot find/.test(l)) ?? r.text.split('\n')[0];
      continue;
    }
    const t = selfTest(tmp);
    if (!t.ok) {
      first ||= `built with ${link.join(' ')} but failed to load: ${t.text.split('\n').find((l) => /Error/.test(l)) ?? t.text}`;
      continue;
    }
    renameSync(tmp, out);
    return `built (${link.join(' ')}) -> ${out}`;
  }
  rmSync(tmp, { force: true });
  return `skipped (no usable CBLAS, e.g. apt-get install libopenblas-dev: ${first})`;
}

let line;
try {
  line = build();
} catch (e) {
  line = `skipped (${e instanceof Error ? e.message : String(e)})`;
}
console.log(`native BLAS kernels: ${line}`);
process.exitCode = 0;

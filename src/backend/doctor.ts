// The `doctor` report: what to know before a long run. The backend, whether a GPU really computes (a timed matmul), the CUDA 11 /
// cuDNN 8 libraries libtensorflow 2.9.1 needs, the CUDA JIT cache settings, the tfjs-node(-gpu) install, the memory plan.
// Also the guard the train command calls: no long run on a silent CPU fallback when `--backend tensorflow` was asked.
// For webgpu: the Dawn adapter (vendor, architecture, limits) and the Vulkan ICDs the loader would read.
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { selectBackend, type BackendInfo, type BackendName } from './index.js';
import { formatBytes, probeWebGpu } from './webgpu.js';
import { loraTargets, RUN_SCHEMA } from '../config/run.js';
import { defaults } from '../config/schema.js';
import { env, type Env } from '../config/env.js';
import { BackendError, describe } from '../util/errors.js';
import { runPlan } from '../plan/memory.js';
import { defaultSandbox, openPool } from '../config/sandbox.js';
import { loadBlasAddon, type BlasAddon } from '../../kernels/matmul-blas.js';
import { readCpuInfo } from '../../kernels/blas-core.js';

/** DPO_BLAS_ADDON (runDoctor's own `env` is the process environment it reports on). */
const blasOverride = (): string | null => env().blasAddon;

/** GFLOP/s of the addon's sgemm on an n x n x n product (best of 3). */
function blasGflops(addon: BlasAddon, n: number): number {
  const a = new Float32Array(n * n).fill(0.5), c = new Float32Array(n * n);
  let best = Infinity;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    addon.sgemm(false, false, n, n, n, a, 0, 0, a, 0, 0, c, 0, 1);
    best = Math.min(best, performance.now() - t0);
  }
  return (2 * n ** 3) / (best * 1e6);
}

/** CUDA 11.2 / cuDNN 8.1 sonames that libtensorflow 2.9.1 (tfjs-node-gpu 4.22) dlopens. */
export const REQUIRED_LIBS: readonly { name: string; pattern: RegExp }[] = [
  { name: 'libcudart.so.11', pattern: /^libcudart\.so\.11/ },
  { name: 'libcublas.so.11', pattern: /^libcublas\.so\.11/ },
  { name: 'libcublasLt.so.11', pattern: /^libcublasLt\.so\.11/ },
  { name: 'libcufft.so.10', pattern: /^libcufft\.so\.10/ },
  { name: 'libcurand.so.10', pattern: /^libcurand\.so\.10/ },
  { name: 'libcusolver.so.11', pattern: /^libcusolver\.so\.11/ },
  { name: 'libcusparse.so.11', pattern: /^libcusparse\.so\.11/ },
  { name: 'libcudnn.so.8', pattern: /^libcudnn\.so\.8/ },
];
/** Other majors are found but unusable by libtensorflow 2.9.1; naming them saves a confused hour. */
const OTHER_MAJORS = /^lib(cudart|cublas|cudnn)\.so\.(\d+)/;

/** Matmul speeds (GFLOP/s, float32 1024^2) below which a "GPU" backend is really on the CPU. */
export const GPU_MIN_GFLOPS = 500;

export interface LibraryScan {
  found: Record<string, string[]>;
  missing: string[];
  otherMajors: string[];
}

/** Parses `ldconfig -p` lines ("\tlibcudart.so.11.0 (libc6,x86-64) => /usr/lib/.../libcudart.so.11.0"). */
export function parseLdconfig(text: string): { name: string; path: string }[] {
  const out: { name: string; path: string }[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*(\S+)\s+\(.*\)\s+=>\s+(\S+)/.exec(line);
    if (m) out.push({ name: m[1], path: m[2] });
  }
  return out;
}

/** Which required libraries are among `entries` (from ldconfig and LD_LIBRARY_PATH listings). Pure. */
export function scanLibraries(entries: readonly { name: string; path: string }[]): LibraryScan {
  const found: Record<string, string[]> = {};
  for (const lib of REQUIRED_LIBS) {
    const paths = [...new Set(entries.filter((e) => lib.pattern.test(e.name)).map((e) => e.path))];
    if (paths.length > 0) found[lib.name] = paths;
  }
  const otherMajors = new Set<string>();
  for (const e of entries) {
    const m = OTHER_MAJORS.exec(e.name);
    if (!m) continue;
    const want = m[1] === 'cudnn' ? '8' : '11';
    if (m[2] !== want) otherMajors.add(`lib${m[1]}.so.${m[2]}`);
  }
  return { found, missing: REQUIRED_LIBS.map((l) => l.name).filter((n) => !found[n]), otherMajors: [...otherMajors].sort() };
}

/** Library files visible to the dynamic loader: `ldconfig -p`, then each LD_LIBRARY_PATH directory and CUDA's default. */
export function listLibraries(env: NodeJS.ProcessEnv = process.env): { entries: { name: string; path: string }[]; sources: string[] } {
  const entries: { name: string; path: string }[] = [];
  const sources: string[] = [];
  for (const bin of ['ldconfig', '/sbin/ldconfig', '/usr/sbin/ldconfig']) {
    const r = spawnSync(bin, ['-p'], { encoding: 'utf8', timeout: 5000 });
    if (r.status === 0 && r.stdout) {
      entries.push(...parseLdconfig(r.stdout));
      sources.push(`${bin} -p`);
      break;
    }
  }
  const dirs = (env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean);
  for (const d of [...dirs, '/usr/local/cuda/lib64']) {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      continue;
    }
    sources.push(d);
    for (const n of names) if (n.startsWith('lib')) entries.push({ name: n, path: join(d, n) });
  }
  return { entries, sources };
}

export interface NodePackage {
  name: string;
  version: string | null;
  /** The native binding and libtensorflow files the package's install script downloads. */
  binding: string | null;
  libtensorflow: string | null;
}

const require = createRequire(import.meta.url);

function findFile(dir: string, test: (name: string) => boolean, depth = 3): string | null {
  if (depth < 0 || !existsSync(dir)) return null;
  let names: string[];
  try {
    names = readdirSync(dir, { withFileTypes: true }).map((d) => d.name + (d.isDirectory() ? '/' : ''));
  } catch {
    return null;
  }
  for (const n of names) if (!n.endsWith('/') && test(n)) return join(dir, n);
  for (const n of names) {
    if (n.endsWith('/') && n !== 'node_modules/') {
      const hit = findFile(join(dir, n.slice(0, -1)), test, depth - 1);
      if (hit) return hit;
    }
  }
  return null;
}

/** Install status of tfjs-node-gpu and tfjs-node: version, native binding, libtensorflow. */
export function nodePackages(): NodePackage[] {
  return ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'].map((name) => {
    let pkgJson: string;
    try {
      pkgJson = require.resolve(`${name}/package.json`);
    } catch {
      return { name, version: null, binding: null, libtensorflow: null };
    }
    const root = dirname(pkgJson);
    const version = (JSON.parse(readFileSync(pkgJson, 'utf8')) as { version?: string }).version ?? '?';
    return {
      name, version,
      binding: findFile(join(root, 'lib'), (n) => n === 'tfjs_binding.node'),
      libtensorflow: findFile(join(root, 'deps'), (n) => /^libtensorflow\.so/.test(n) || n === 'tensorflow.dll'),
    };
  });
}

export interface MatmulTiming {
  size: number;
  firstMs: number;
  gflops: number;
}

/** Times an n x n float32 matmul: the first call (kernel load, cuBLAS init, PTX JIT) apart, then repeats for ~1 s. */
export async function timeMatmul(n: number): Promise<MatmulTiming> {
  const a = tf.randomNormal([n, n]);
  const b = tf.randomNormal([n, n]);
  try {
    let t0 = performance.now();
    // `await data()`, not dataSync: webgpu has no synchronous read in Node.
    const run = async () => {
      const c = tf.tidy(() => tf.matMul(a, b));
      await c.data();
      c.dispose();
    };
    await run();
    const firstMs = performance.now() - t0;
    let reps = 0;
    t0 = performance.now();
    while (reps < 50 && (reps === 0 || performance.now() - t0 < 1000)) {
      await run();
      reps++;
    }
    const ms = (performance.now() - t0) / reps;
    return { size: n, firstMs, gflops: (2 * n ** 3) / (ms * 1e6) };
  } finally {
    tf.dispose([a, b]);
  }
}

export interface GpuQuery {
  name: string;
  memoryGiB: number;
  computeCap: string;
}

/** `nvidia-smi` GPUs, or null when there is none (or no driver). */
export function queryGpus(): GpuQuery[] | null {
  const r = spawnSync('nvidia-smi', ['--query-gpu=name,memory.total,compute_cap', '--format=csv,noheader,nounits'], { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0 || !r.stdout) return null;
  return r.stdout.trim().split('\n').map((l) => {
    const [name, mem, cap] = l.split(',').map((s) => s.trim());
    return { name, memoryGiB: Number(mem) / 1024, computeCap: cap };
  });
}

export interface VulkanIcd {
  file: string;
  /** ICD.library_path, or null when the file is missing or not an ICD manifest. */
  library: string | null;
  apiVersion: string | null;
  problem: string | null;
}

/** One Vulkan ICD manifest ({"ICD": {"library_path", "api_version"}}), as the loader reads it. Pure but for the read. */
export function readIcd(file: string): VulkanIcd {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return { file, library: null, apiVersion: null, problem: 'missing' };
  }
  try {
    const icd = (JSON.parse(text) as { ICD?: { library_path?: string; api_version?: string } }).ICD;
    if (!icd?.library_path) return { file, library: null, apiVersion: null, problem: 'no ICD.library_path' };
    return { file, library: icd.library_path, apiVersion: icd.api_version ?? null, problem: null };
  } catch (e) {
    return { file, library: null, apiVersion: null, problem: `not JSON (${(e as Error).message})` };
  }
}

/** The ICD manifests the Vulkan loader would use: VK_DRIVER_FILES / VK_ICD_FILENAMES when set, else the standard folders. */
export function findVulkanIcds(env: NodeJS.ProcessEnv = process.env): { source: string; icds: VulkanIcd[] } {
  const forced = env.VK_DRIVER_FILES ? 'VK_DRIVER_FILES' : env.VK_ICD_FILENAMES ? 'VK_ICD_FILENAMES' : null;
  if (forced) return { source: forced, icds: (env[forced] as string).split(':').filter(Boolean).map(readIcd) };
  const dirs = ['/etc/vulkan/icd.d', '/usr/share/vulkan/icd.d', '/usr/local/share/vulkan/icd.d'];
  const icds: VulkanIcd[] = [];
  for (const d of dirs) {
    let names: string[];
    try {
      names = readdirSync(d).filter((n) => n.endsWith('.json')).sort();
    } catch {
      continue;
    }
    for (const n of names) icds.push(readIcd(join(d, n)));
  }
  return { source: dirs.join(', '), icds };
}

/** NVIDIA_DRIVER_CAPABILITIES without graphics (or all): the container runtime mounts no Vulkan ICD. Null when fine or unset. */
export function nvidiaCapabilityProblem(env: NodeJS.ProcessEnv = process.env): string | null {
  const caps = env.NVIDIA_DRIVER_CAPABILITIES;
  if (caps === undefined) return null;
  const list = caps.split(',').map((c) => c.trim());
  if (list.includes('all') || list.includes('graphics')) return null;
  return `NVIDIA_DRIVER_CAPABILITIES=${caps} lacks graphics: the NVIDIA container runtime then mounts no Vulkan ICD (set compute,utility,graphics or all)`;
}

/** The doctor's webgpu and vulkan sections, as lines. */
export async function webgpuReport(env: NodeJS.ProcessEnv = process.env): Promise<string[]> {
  const out: string[] = [];
  const probe = await probeWebGpu();
  if (probe.ok) {
    const a = probe.adapter;
    out.push(`adapter: ${a.description}`);
    out.push(`vendor ${a.vendor}, architecture ${a.architecture}, device ${a.device}${a.fallback ? ' (fallback/software adapter)' : ''}`);
    out.push(`limits: maxStorageBufferBindingSize ${formatBytes(a.limits.maxStorageBufferBindingSize)} (${a.limits.maxStorageBufferBindingSize}), ` +
      `maxBufferSize ${formatBytes(a.limits.maxBufferSize)} (${a.limits.maxBufferSize}), maxComputeWorkgroupStorageSize ${a.limits.maxComputeWorkgroupStorageSize}, ` +
      `maxComputeWorkgroupsPerDimension ${a.limits.maxComputeWorkgroupsPerDimension}`);
    out.push(a.fallback
      ? 'verdict: only a software adapter: --backend webgpu computes correctly but slower than wasm'
      : 'verdict: --backend webgpu can run here (an embedding or lm_head above maxStorageBufferBindingSize is split by rows; any other tensor above it is refused by name)');
  } else out.push(`adapter: none (${probe.reason})`);
  const { source, icds } = findVulkanIcds(env);
  out.push(`vulkan icds (${source}):${icds.length === 0 ? ' none' : ''}`);
  for (const i of icds) out.push(`  ${i.file}: ${i.problem ?? `${i.library}${i.apiVersion ? `, api ${i.apiVersion}` : ''}`}`);
  if (!icds.some((i) => /nvidia/i.test(i.file)) && queryGpus()) out.push('  no nvidia_icd.json: the NVIDIA driver\'s Vulkan ICD is not installed or not mounted, so Dawn cannot see the GPU');
  const caps = nvidiaCapabilityProblem(env);
  if (caps) out.push(`  ${caps}`);
  out.push('check: `vulkaninfo --summary` lists the devices the Vulkan loader finds');
  return out;
}

/**
 * The train command's guard: with `--backend tensorflow` and tfjs-node-gpu loaded but no GPU in use (CUDA 11 /
 * cuDNN 8 missing, so libtensorflow quietly runs on the CPU), refuse to start. DPO_ALLOW_CPU_FALLBACK=1 accepts it.
 */
export function assertGpuWhenAsked(requested: BackendName, info: BackendInfo, switches: Env = env()): void {
  if (requested !== 'tensorflow' || info.gpu || !info.package.endsWith('-gpu')) return;
  if (switches.allowCpuFallback) return;
  throw new BackendError(describe('--backend tensorflow', `${info.package} loaded but TensorFlow is running on the CPU`, 'a CUDA GPU in use',
    'libtensorflow 2.9.1 needs CUDA 11.2 (libcudart.so.11.0, libcublas.so.11, ...) and cuDNN 8.1 (libcudnn.so.8) on the loader path. ' +
    'Run `node train.js doctor` to see what is missing, or set DPO_ALLOW_CPU_FALLBACK=1 to train on the CPU anyway.'));
}

export interface DoctorOptions {
  backend: BackendName;
  model: string | null;
  matmulSize: number;
  env?: NodeJS.ProcessEnv;
}

/** Every section of the report, as lines. Starts the backend (once per process). */
export async function runDoctor(o: DoctorOptions): Promise<string[]> {
  const env = o.env ?? process.env;
  const out: string[] = [];
  const section = (title: string) => out.push('', `== ${title} ==`);

  section('backend');
  const info = await selectBackend(o.backend);
  out.push(info.name === 'webgpu'
    ? `backend: webgpu (${info.package}); hardware adapter: ${info.gpu ? 'yes' : 'no (software)'}`
    : `backend: ${info.name} (${info.package}); TensorFlow reports a GPU device: ${info.gpu ? 'yes' : 'no'}`);
  out.push(`tfjs ${tf.version.tfjs}, node ${process.version}, ${process.platform}-${process.arch}`);

  section('gpu check');
  const gpus = queryGpus();
  if (gpus) for (const g of gpus) out.push(`nvidia-smi: ${g.name}, ${g.memoryGiB.toFixed(1)} GiB, compute capability ${g.computeCap}`);
  else out.push('nvidia-smi: not found or no GPU (no NVIDIA driver visible)');
  const t = await timeMatmul(o.matmulSize);
  out.push(`matmul ${t.size}x${t.size} float32: ${t.gflops.toFixed(1)} GFLOP/s (first call ${(t.firstMs / 1000).toFixed(2)} s)`);
  const fast = t.gflops >= GPU_MIN_GFLOPS;
  if (info.gpu && fast) out.push('verdict: the GPU is used');
  else if (info.gpu) out.push(`verdict: a GPU is reported but the matmul is slow (< ${GPU_MIN_GFLOPS} GFLOP/s): first-use JIT still running, or a CPU fallback`);
  else if (info.package.endsWith('-gpu')) out.push('verdict: CPU FALLBACK: tfjs-node-gpu loaded but TensorFlow found no usable GPU (see cuda libraries)');
  else out.push(`verdict: no GPU in use (backend ${info.name}); expected ~0.5 (cpu), ~30 (wasm) or ~100+ (tensorflow CPU) GFLOP/s, several thousand on a GPU`);
  if (gpus?.some((g) => Number(g.computeCap) > 7.5)) {
    out.push('note: libtensorflow 2.9.1 ships GPU code up to sm_75; this GPU JIT-compiles PTX at first use (minutes) unless the CUDA cache keeps it');
  }

  section('webgpu');
  out.push(...(await webgpuReport(env)));

  section('cuda libraries');
  const { entries, sources } = listLibraries(env);
  const scan = scanLibraries(entries);
  out.push(`searched: ${sources.length > 0 ? sources.join(', ') : '(nothing: no ldconfig, no LD_LIBRARY_PATH)'}`);
  for (const lib of REQUIRED_LIBS) out.push(`${lib.name.padEnd(18)} ${scan.found[lib.name] ? scan.found[lib.name].join(', ') : 'MISSING'}`);
  if (scan.otherMajors.length > 0) out.push(`other versions found (not usable by libtensorflow 2.9.1): ${scan.otherMajors.join(', ')}`);
  out.push(scan.missing.length === 0 ? 'CUDA 11 + cuDNN 8: complete' : `CUDA 11 + cuDNN 8: ${scan.missing.length} missing; tfjs-node-gpu would run on the CPU`);

  section('jit cache');
  const show = (k: string, advice: string) => out.push(`${k}=${env[k] ?? '(unset)'}${env[k] ? '' : `  -> ${advice}`}`);
  show('CUDA_CACHE_MAXSIZE', 'set 4294967296 (the default 256 MiB cannot hold the PTX JIT output of TensorFlow)');
  show('CUDA_CACHE_PATH', 'set a persistent directory (default ~/.nv/ComputeCache, lost with a fresh container)');
  if (env.CUDA_CACHE_DISABLE === '1') out.push('CUDA_CACHE_DISABLE=1  -> unset it, or every process JIT-compiles again');
  show('TF_FORCE_GPU_ALLOW_GROWTH', 'set true so TensorFlow does not reserve the whole GPU at start');

  section('tfjs-node');
  for (const p of nodePackages()) {
    if (!p.version) out.push(`${p.name}: not installed`);
    else out.push(`${p.name} ${p.version}: binding ${p.binding ?? 'MISSING (install script did not finish)'}; libtensorflow ${p.libtensorflow ?? 'MISSING'}`);
  }

  section('cpu blas');
  const blas = loadBlasAddon(blasOverride());
  out.push(blas.core ?? `cpu ${readCpuInfo().model}`);
  if (blas.addon) {
    const g = blasGflops(blas.addon, 512);
    out.push(`addon: ${blas.reason}; sgemm 512x512x512: ${g.toFixed(1)} GFLOP/s (1 thread)`);
  } else out.push(`addon: not loaded (${blas.reason})`);

  section('python sandbox');
  const pool = await openPool({ ...defaultSandbox(), workers: 1 }, () => {});
  try {
    out.push(`layers active: ${pool.layers().join(', ')}`);
    const absent = pool.absentLayers();
    out.push(absent.length ? `layers absent: ${absent.join('; ')}` : 'layers absent: none (--sandbox strict can run here)');
  } finally {
    await pool.close();
  }

  if (o.model) {
    section('memory plan');
    const gpuMem = gpus?.[0]?.memoryGiB ?? null;
    const d = defaults(RUN_SCHEMA);
    const { text } = runPlan({
      model: o.model, maxLength: d.maxLength, batchSize: d.batchSize, gradientCheckpointing: d.gradientCheckpointing,
      loraR: d.loraR, loraTargets: loraTargets(d), deviceMemoryGB: gpuMem, gpu: info.gpu || gpuMem !== null,
    });
    out.push(...text.split('\n'));
  }
  return out;
}
